"""The checks on what sampling is asked for, made before any model work: each setting of
:func:`~mmtok.lm.sample.generate` and ``mmtok sample`` that cannot work is one error naming the Python argument
(``top_k``) or, with ``flags``, the option (``--top-k``).
"""

from __future__ import annotations

import argparse
import math
from numbers import Integral, Real
from typing import Any

from mmtok.core.ranges import SEED

__all__ = ["check_limits", "check_sampling", "check_seed", "int_pair"]


def _name(key: str, flags: bool) -> str:
    return "--" + key.replace("_", "-") if flags else key


def _whole(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_sampling(*, max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None,
                   num_samples: int, flags: bool = False) -> None:
    """One clear error for each sampling setting that cannot work (0 temperature is greedy decoding); with
    ``flags`` the settings are named as ``mmtok sample``'s options (``--top-k``, not ``top_k``).

    >>> check_sampling(max_new_tokens=1, temperature=1.0, top_k=0, top_p=None, num_samples=1, flags=True)
    Traceback (most recent call last):
    ...
    ValueError: --top-k must be ≥ 1 (or left out for no cut), got 0
    >>> check_sampling(max_new_tokens=1, temperature=1.0, top_k=2.5, top_p=None, num_samples=1)
    Traceback (most recent call last):
    ...
    TypeError: top_k must be a whole number ≥ 1 (or None for no cut), got 2.5 (float)
    """
    none = "left out" if flags else "None"
    for key, value in (("max_new_tokens", max_new_tokens), ("num_samples", num_samples), ("top_k", top_k)):
        if not (_whole(value) or (key == "top_k" and value is None)):
            low = "1" if key != "max_new_tokens" else "0"
            cut = f" (or {none} for no cut)" if key == "top_k" else ""
            raise TypeError(f"{_name(key, flags)} must be a whole number ≥ {low}{cut}, got {value!r} "
                            f"({type(value).__name__})")
    for key, value in (("temperature", temperature), ("top_p", top_p)):
        if not (_number(value) or (key == "top_p" and value is None)):
            raise TypeError(f"{_name(key, flags)} must be a number, got {value!r} ({type(value).__name__})")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"{_name('temperature', flags)} must be a finite number ≥ 0 (0: greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"{_name('top_k', flags)} must be ≥ 1 (or {none} for no cut), got {top_k}")
    if top_p is not None and not (math.isfinite(top_p) and 0 < top_p <= 1):
        raise ValueError(f"{_name('top_p', flags)} must be in (0, 1] (or {none} for no cut), got {top_p}")
    if max_new_tokens < 0:
        raise ValueError(f"{_name('max_new_tokens', flags)} must be ≥ 0, got {max_new_tokens}")
    if num_samples < 1:
        raise ValueError(f"{_name('num_samples', flags)} must be ≥ 1, got {num_samples}")


def check_seed(seed: Any) -> None:
    """A clear error for a ``seed`` that is neither None nor a whole number in [0, 2**32).

    >>> check_seed(2**40)
    Traceback (most recent call last):
    ...
    ValueError: seed must be a whole number in [0, 4294967295] (or None for a new draw), got 1099511627776
    """
    if seed is None:
        return
    if not _whole(seed):
        raise TypeError(f"seed must be a whole number {SEED} (or None for a new draw), got {seed!r} "
                        f"({type(seed).__name__})")
    if not SEED.holds(int(seed)):
        raise ValueError(f"seed must be a whole number {SEED} (or None for a new draw), got {seed}")


def check_limits(image_grid: Any, audio_tokens: Any) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """``image_grid`` (rows, columns ≥ 1) and ``audio_tokens`` (fewest ≥ 1, most ≥ fewest) as pairs of ints, or
    a clear error naming the argument: a grid of 2.5 rows would never close the image it opens.

    >>> check_limits((2, 3), None)
    ((2, 3), None)
    >>> check_limits((2.5, 2), None)
    Traceback (most recent call last):
    ...
    TypeError: image_grid must be two whole numbers (rows, columns), each ≥ 1, such as (16, 16); got (2.5, 2)
    """
    checked = []
    for key, value, what in (("image_grid", image_grid, "(rows, columns), each ≥ 1, such as (16, 16)"),
                             ("audio_tokens", audio_tokens, "(fewest, most), 1 ≤ fewest ≤ most, such as (1, 250)")):
        if value is None:
            checked.append(None)
            continue
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2 \
                or not all(_whole(v) for v in value):
            raise TypeError(f"{key} must be two whole numbers {what}; got {value!r}")
        a, b = int(value[0]), int(value[1])
        if min(a, b) < 1 or (key == "audio_tokens" and a > b):
            raise ValueError(f"{key} must be two whole numbers {what}; got {value!r}")
        checked.append((a, b))
    return checked[0], checked[1]


def int_pair(text: str, sep: str) -> tuple[int, int]:
    """``"16x16"`` -> ``(16, 16)`` (``sep`` = ``"x"``), for the command line."""
    try:
        a, b = (int(v) for v in text.lower().split(sep))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two integers separated by {sep!r}, got {text!r}") from None
    return a, b
