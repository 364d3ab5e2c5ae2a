"""How much memory a trainer's numeric options ask for, refused before any work when this machine cannot hold it.

A count of pictures, crops or clips, a crop side or a model width is checked by an estimate of the bytes its
arrays need (:class:`MemoryUse`: a lower bound, the arrays the code allocates at once) against this machine's
memory (:func:`machine_memory`); a value past it is refused in one line that names the flags, their values,
the bytes needed, the machine's memory and the largest value of each flag that fits
(:func:`memory_refusal`). Model sizes are measured by building the model on the meta device, which allocates
nothing (:func:`training_bytes`).

>>> said_bytes(3 * 2**30), said_bytes(1536)
('3.0 GiB', '1.5 KiB')
>>> import argparse
>>> p = argparse.ArgumentParser(); _ = p.add_argument("--clips", type=int, default=10)
>>> use = MemoryUse("the clips (1 GiB each)", ("clips",), lambda a: a.clips * 2**30)
>>> print(memory_refusal(p, p.parse_args(["--clips", "64"]), [use], memory=8 * 2**30))
--clips 64: the clips (1 GiB each): about 64.0 GiB, more than this machine's 8.0 GiB of memory; give --clips at most 8
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FLOAT32", "TENSOR_BYTES", "TRAINED_PARAMETER_BYTES", "MemoryUse", "machine_memory", "memory_refusal", "said_bytes",
           "training_bytes"]

FLOAT32 = 4  # bytes of a float32 number
TRAINED_PARAMETER_BYTES = 4 * FLOAT32  # a trained float32 parameter: its value, gradient and AdamW's two moments
TENSOR_BYTES = 512  # what one more tensor in a list costs besides its numbers (the Python object, its storage's)
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def machine_memory() -> int:
    """This machine's memory in bytes: the physical memory, or the container's limit where that is lower."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: no bound known
        total = 2**62
    for name in _CGROUP_LIMITS:
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def said_bytes(n: float) -> str:
    """A number of bytes as a person reads it: ``1.5 KiB``, ``3.0 GiB``, ``1.1 EiB``; beyond that ``1e+30 bytes``."""
    if not math.isfinite(n) or n >= 2**70:
        return f"{n:.3g} bytes"
    for unit, scale in (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20),
                        ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


@dataclass(frozen=True)
class MemoryUse:
    """Memory that some options' values ask for at once: ``need(args)`` bytes, growing with each of ``flags``
    (argparse dests, in the order a refusal offers them); ``what`` says what the bytes hold, for the refusal."""

    what: str
    flags: tuple[str, ...]
    need: Callable[[argparse.Namespace], float]


def _need(use: MemoryUse, args: argparse.Namespace, **values: Any) -> float:
    """``use``'s bytes with ``values`` in place of the options', never an error: a size too large to compute is
    more than any machine holds."""
    try:
        return float(use.need(argparse.Namespace(**{**vars(args), **values})))
    except (OverflowError, MemoryError):
        return math.inf
    except ValueError:  # sizes the model refuses whatever the memory: the checks of their own say so
        return 0.0


def _largest(use: MemoryUse, args: argparse.Namespace, dest: str, low: float, step: int | None,
             memory: int) -> float | int | None:
    """The largest value of ``dest`` from ``low`` up to its value now (a whole number, a multiple of ``step``; None:
    a float) for which ``use`` fits ``memory``, the other options as they are; None when not even ``low`` fits."""
    hi = getattr(args, dest)
    if step is None:  # a float: bisection on its logarithm, from low (or a trillionth) up
        low = max(low, 1e-12)
        if _need(use, args, **{dest: low}) > memory:
            return None
        a, b = math.log(low), math.log(hi)
        for _ in range(200):
            if b - a <= 1e-9:
                break
            mid = (a + b) / 2
            a, b = (mid, b) if _need(use, args, **{dest: math.exp(mid)}) <= memory else (a, mid)
        return math.exp(a)
    lo = -(-int(low) // step) * step  # whole numbers throughout: a size a module is built with stays an int
    if _need(use, args, **{dest: lo}) > memory:
        return None
    while hi - lo > step:  # bisection: the need grows with the value
        mid = (lo + hi) // 2 // step * step
        if mid <= lo:
            break
        lo, hi = (mid, hi) if _need(use, args, **{dest: mid}) <= memory else (lo, mid)
    return lo


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def memory_refusal(parser: argparse.ArgumentParser, args: argparse.Namespace, uses: Sequence[MemoryUse], *,
                   lows: Mapping[str, float] | None = None, multiples: Mapping[str, int] | None = None,
                   memory: int | None = None) -> str | None:
    """The refusal of the first of ``uses`` whose bytes pass this machine's memory (``memory``, default
    :func:`machine_memory`), else None: the flags and their values, the bytes needed and the memory, and for
    each flag the largest value that fits with the others as given (``lows``: the least value each takes, by
    dest, default 1; ``multiples``: what a whole-number option's value must be a multiple of, default 1). An
    option left at None is the use's to take a default for."""
    memory = machine_memory() if memory is None else memory
    actions = {a.dest: a for a in parser._actions}
    for use in uses:
        need = _need(use, args)
        if need <= memory:
            continue
        given = [d for d in use.flags if getattr(args, d) is not None]
        named = ", ".join(f"{actions[d].option_strings[0]} {_value(getattr(args, d))}" for d in given)
        offers = []
        for dest in given:
            whole = actions[dest].type is not float
            step = (multiples or {}).get(dest, 1) if whole else None
            fits = _largest(use, args, dest, (lows or {}).get(dest, 1), step, memory)
            if fits is None:
                continue
            others = [f"{actions[d].option_strings[0]} {_value(getattr(args, d))}" for d in given if d != dest]
            shown = str(fits) if whole else f"{fits:.4g}"
            offers.append(f"{actions[dest].option_strings[0]} at most {shown}"
                          + (f" (with {', '.join(others)})" if others else ""))
        fix = ("give " + ", or ".join(offers)) if offers else "no value of them fits: give smaller values"
        amount = f"about {said_bytes(need)}" if math.isfinite(need) else "sizes past what torch can describe"
        return f"{named}: {use.what}: {amount}, more than this machine's {said_bytes(memory)} of memory; {fix}"
    return None


def training_bytes(build: Callable[..., Any], *, repeats: Mapping[str, int] | None = None, trained: bool = True,
                   ) -> float:
    """Bytes of the module ``build(**sizes)`` makes while it trains: each float parameter with its gradient
    and AdamW's two moments (:data:`TRAINED_PARAMETER_BYTES`; or its value alone when not ``trained``), and its
    buffers. The module is built on the meta device: nothing is allocated, and no weight is drawn.

    ``repeats``: counts of identical blocks (``{"blocks": 1_000_000}``), passed to ``build`` by name; the module
    is built with one and two of each and the difference scaled, so a count in the millions costs no more
    than a small one. ``inf`` when the sizes are too large for torch to describe, 0 when the module cannot be
    built on the meta device (not measured); a size the module refuses (its ``ValueError``) is raised.

    >>> import torch
    >>> training_bytes(lambda blocks: torch.nn.Sequential(*[torch.nn.Linear(10, 10) for _ in range(blocks)]),
    ...                repeats={"blocks": 1000})
    1760000.0
    """
    import torch
    import torch.fx.experimental._config as fx_config

    from mmtok.core.module_io import weights_from_checkpoint

    per_parameter = TRAINED_PARAMETER_BYTES if trained else FLOAT32

    def measure(**counts: int) -> float:
        try:
            with fx_config.patch(meta_nonzero_assume_all_nonzero=True), torch.device("meta"), \
                    weights_from_checkpoint():
                module = build(**counts)
        except (OverflowError, MemoryError):  # sizes past what a tensor can be
            return math.inf
        except (RuntimeError, NotImplementedError) as e:  # too large for torch to describe, or not built on meta
            return math.inf if "overflow" in str(e).lower() else math.nan
        params = sum(p.numel() * (per_parameter if p.is_floating_point() else p.element_size())
                     for p in module.parameters())
        return float(params + sum(b.numel() * b.element_size() for b in module.buffers()))

    repeats = dict(repeats or {})
    ones = {name: 1 for name in repeats}
    base = measure(**ones)
    total = base
    for name, count in repeats.items():
        if count != 1 and math.isfinite(total):
            total += (count - 1) * (measure(**{**ones, name: 2}) - base)
    return 0.0 if math.isnan(total) else total  # a module that cannot be built on meta: not measured
