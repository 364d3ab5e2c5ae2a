"""The range a numeric option takes, and the one way a trainer refuses a value outside it.

Every tokenizer trainer (image, audio, vocoder) checks its numeric options before any work with
:func:`out_of_range`; NaN and infinities are outside every range, and a number that becomes float32 goes
no higher than float32 holds it (:data:`LEARNING_RATE`, :data:`FLOAT32_AT_LEAST_0`).

>>> str(Range(1)), str(Range(0, low_open=True)), str(Range(0, 1, high_open=True)), str(LEARNING_RATE)
('>= 1', '> 0', 'in [0, 1)', '> 0, at most 3.4e+37')
>>> Range(0, 1).holds(float("nan")), Range(1).holds(3)
(False, True)

A count or size whose arrays this machine cannot hold is refused by :mod:`mmtok.core.limits`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["ABOVE_0", "FLOAT32_AT_LEAST_0", "FLOAT32_MAX", "INT64_MAX", "LEARNING_RATE", "LR_MAX", "MAX_ITERATIONS",
           "MAX_THREADS", "SEED", "THREADS", "Range", "count_arg", "iterations", "out_of_range", "seed_arg",
           "threads_arg"]


@dataclass(frozen=True)
class Range:
    """The values an option takes: a finite number from ``low`` to ``high``, each end kept unless ``open``;
    ``why``, when set, says why a value above ``high`` cannot go (a refusal adds it)."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    why: str = ""

    def holds(self, value: float) -> bool:
        if not _finite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def beyond(self, value: float) -> str:
        """`` (why)`` when ``value`` is a finite number above the range and it says :attr:`why`, else ``""``: what a
        refusal adds.

        >>> print(LEARNING_RATE.beyond(1e39))
         (AdamW's first step, the rate / (1 - beta1), must be a float32 number)
        >>> LEARNING_RATE.beyond(-1.0), Range(0, 1).beyond(2.0)
        ('', '')
        """
        return f" ({self.why})" if self.why and _finite(value) and value > self.high else ""

    def phrase(self, *, whole: bool = False) -> str:
        """What a value must be, in words: ``at least N`` for a whole number with no upper end, else :meth:`__str__`.

        >>> Range(1).phrase(whole=True), Range(1).phrase(), Range(0, 1, high_open=True).phrase(whole=True)
        ('at least 1', '>= 1', 'in [0, 1)')
        """
        if whole and math.isinf(self.high) and not self.low_open:
            return f"at least {_end(self.low)}"
        return str(self)

    def __str__(self) -> str:
        """``>= 1``, ``in [0, 1)``; a range whose top is a number type's limit (it says :attr:`why`) as its bottom
        first: ``> 0, at most 3.4e+37``."""
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '>='} {_end(self.low)}"
        if self.why:
            return f"{'>' if self.low_open else '>='} {_end(self.low)}, {'below' if self.high_open else 'at most'} " \
                   f"{_end(self.high)}"
        return f"in {'(' if self.low_open else '['}{_end(self.low)}, {_end(self.high)}{')' if self.high_open else ']'}"


def _finite(value: float) -> bool:
    """Whether ``value`` is a finite number: any whole number is (one past float's range too), a float unless it is
    NaN or infinite."""
    return isinstance(value, int) or math.isfinite(value)


def _end(value: float) -> str:
    """An end of a range as written: a whole number in full (``2**63 - 1`` is not ``9.223372037e+18``), else
    ten significant digits.

    >>> _end(2**63 - 1), _end(0.5), _end(1e-4), _end(3.0)
    ('9223372036854775807', '0.5', '0.0001', '3')
    """
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e21):
        return str(int(value))
    return f"{value:.10g}"


INT64_MAX = 2**63 - 1  # the largest whole number torch and NumPy hold: no whole-number option goes past it
ABOVE_0 = Range(0, low_open=True)
SEED = Range(0, 2**32 - 1)  # what NumPy and torch take as a seed
FLOAT32_MAX = float.fromhex("0x1.fffffep+127")  # float32's largest finite number, about 3.4e38
FLOAT32_AT_LEAST_0 = Range(0, FLOAT32_MAX, why="float32's range")  # a factor that becomes float32 (weight decay)
# the largest learning rate an AdamW step takes: torch refuses, with an overflow error in the middle of a run, a
# step size (the rate over 1 - beta1 in the first step: times 10 at mmtok's largest beta1, 0.9) past float32's range;
# FLOAT32_MAX / 10 rounded down, as 1 - 0.9 is a little under 0.1 in floating point
LR_MAX = 3.4e37
LEARNING_RATE = Range(0, LR_MAX, low_open=True,
                      why="AdamW's first step, the rate / (1 - beta1), must be a float32 number")
# torch's CPU thread pool: far more threads fail part-way (a MemoryError, an overflow, a crash), and threads past
# the machine's CPUs only slow a run
MAX_THREADS = 1024
THREADS = Range(1, MAX_THREADS, why="torch's CPU thread pool; threads past the machine's CPUs only slow a run")
MAX_ITERATIONS = 10_000  # of a k-means fit: it settles in tens, and each one passes over every training vector


def iterations(low: int) -> Range:
    """The range of a count of k-means iterations (or rounds) from ``low``: at most :data:`MAX_ITERATIONS`.

    >>> str(iterations(0))
    '>= 0, at most 10000'
    """
    return Range(low, MAX_ITERATIONS, why="k-means settles in tens of iterations, and each one passes over every "
                                          "training vector: more would run for days")


def count_arg(text: str) -> int:
    """argparse type of a count (``--threads``, ``--steps``, ...) checked as it is parsed: a whole number >= 1.

    >>> count_arg("3")
    3
    >>> count_arg("0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be at least 1, got 0
    """
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def threads_arg(text: str) -> int:
    """argparse type of a ``--threads`` checked as it is parsed: a whole number in :data:`THREADS`.

    >>> threads_arg("4")
    4
    >>> threads_arg("100000")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be a whole number >= 1, at most 1024 (torch's CPU thread pool; threads past the machine's CPUs only slow a run), got 100000
    """
    n = count_arg(text)
    if not THREADS.holds(n):
        raise argparse.ArgumentTypeError(f"must be a whole number {THREADS}{THREADS.beyond(n)}, got {n}")
    return n


def seed_arg(text: str) -> int:
    """argparse type of a ``--seed`` checked as it is parsed: a whole number in :data:`SEED`.

    >>> seed_arg("7")
    7
    >>> seed_arg("-1")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be a whole number in [0, 4294967295], got -1
    """
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not SEED.holds(n):
        raise argparse.ArgumentTypeError(f"must be a whole number {SEED}, got {n}")
    return n


def _said(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def out_of_range(parser: argparse.ArgumentParser, args: argparse.Namespace, ranges: Mapping[str, Range],
                 notes: Mapping[str, str] | None = None) -> str | None:
    """The refusal of the first option of ``parser`` (by ``dest``) whose value lies outside its range in
    ``ranges`` (one line: the flag, the value, what to give and the default; ``notes`` says what an option
    means where its name does not), or None when all hold. An option left at None is not checked.

    >>> p = argparse.ArgumentParser(); _ = p.add_argument("--steps", type=int, default=10)
    >>> out_of_range(p, p.parse_args(["--steps", "0"]), {"steps": Range(1)})
    '--steps must be at least 1 (got 0); give --steps >= 1 (a whole number) or leave the flag out (default: 10)'
    """
    actions = {a.dest: a for a in parser._actions}
    for dest, allowed in ranges.items():
        value = getattr(args, dest)
        if value is None or (allowed.holds(value) and not (isinstance(value, int) and value > INT64_MAX)):
            continue
        action = actions[dest]
        flag, whole = action.option_strings[0], action.type is int
        if isinstance(value, int) and value > INT64_MAX and allowed.high > INT64_MAX:  # past what a tensor holds
            allowed = replace(allowed, high=INT64_MAX, why=allowed.why or "the largest whole number torch holds, in 64 bits")
        phrase = allowed.phrase(whole=whole)
        note = (f" ({notes[dest]})" if notes and dest in notes else "") + allowed.beyond(value)
        default = "" if action.default is None else f" (default: {_said(action.default)})"
        return (f"{flag} must be {phrase}{note} (got {_said(value)}); give {flag} {allowed} "
                f"({'a whole number' if whole else 'a finite number'}) or leave the flag out{default}")
    return None
