"""What every benchmark script shares: one JSON object per measurement on standard output.

    from common import emit
    emit({"bench": "vq_encode", "seconds": 0.47})   # or emit(bench="vq_encode", seconds=0.47)

Values that JSON cannot hold as numbers (NaN, infinity) are written as null, so
every line parses with any JSON reader.

A peer measured side by side (EnCodec, GPT-2, VQGAN) that is not installed is
checked once at startup with :func:`check_peer`, which prints one row saying so;
the benchmark then runs without that side:

    if not check_peer("speed", "encodec"):   # {"bench": "speed", "peer": "encodec", "skipped": "not installed: ..."}
        skip.add("encodec")

Every speed and speed ratio comes from :func:`time_sides` (warm-up calls, then rounds that call every
side once, in alternating order), whose :class:`Timing` per side gives ``min``, ``median`` and ``n``;
a row with a ratio says which statistic it is of (``"ratio_of": RATIO_OF``, the sides' medians).
A script runs its ``main`` through :func:`run_script`: mmtok's errors (a missing file, a bad value, a
device this machine lacks) end it with one line, ``<script>: error: <message>``, and exit status 2, as
the ``mmtok`` command says them, and a ``raise SystemExit("message")`` with the same line and exit status 1,
so that in a pipeline the line names the script that stopped; ``MMTOK_DEBUG=1`` shows the traceback instead. :func:`pick_device`
gives ``--device`` its one-line refusal; :func:`positive` (:func:`positives`), :func:`finite`, :func:`share`,
:func:`skip_parts` and :func:`preset` check numbers and names, :func:`existing_path`, :func:`file_to_write` and
:func:`folder_to_fill` paths, all before any work.

Paired differences of per-item scores come from :func:`mmtok.core.metrics.paired_difference`: each
metric's interval is drawn from a generator of its own, so it does not move with the other metrics of the row.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mmtok.core.errors import MmtokError, UsageError, debugging

if TYPE_CHECKING:
    import torch

__all__ = ["LAUNCHES", "PEER_INSTALL", "RATIO_OF", "ROUND_RATIO_OF", "Timing", "check_peer", "emit", "existing_path",
           "file_to_write", "finite", "folder_to_fill", "host_waits", "json_line", "kernel_launches", "missing_peer",
           "pick_device", "positive", "positives", "preset", "ratio", "round_ratios", "run_script", "share", "skip_parts",
           "time_sides"]

LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")  # profiler events
PEER_INSTALL = "pip install mmtok[bench]"  # what installs every peer the benchmarks compare with
RATIO_OF = "median"  # a speed ratio is the ratio of the two sides' median seconds
ROUND_RATIO_OF = "median of per-round ratios"  # ... or, where rows say so, the median of the rounds' ratios

Side = TypeVar("Side")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def json_line(row: Mapping[str, Any]) -> str:
    """``row`` as one line of JSON, NaN and infinity written as null (the line :func:`emit` prints).

    >>> json_line({"bench": "x", "seconds": float("nan"), "sizes": [1.5, float("inf")]})
    '{"bench": "x", "seconds": null, "sizes": [1.5, null]}'
    """
    return json.dumps(_clean(row))


def emit(row: Mapping[str, Any] | None = None, /, **fields: Any) -> None:
    """Print ``row`` (and/or keyword ``fields``) as one JSON line and flush it at once."""
    print(json_line({**(row or {}), **fields}), file=sys.stdout, flush=True)


def missing_peer(module: str) -> str | None:
    """Why the peer package ``module`` cannot be used here, or None when it imports.

    >>> missing_peer("json") is None
    True
    >>> missing_peer("no_such_peer_package")
    'not installed: pip install mmtok[bench]'
    """
    try:
        if importlib.util.find_spec(module) is None:
            return f"not installed: {PEER_INSTALL}"
        importlib.import_module(module)
    except Exception as e:  # a stub, a broken or half-installed package: its side is skipped, said why
        return f"cannot be imported ({type(e).__name__}: {e}): {PEER_INSTALL}"
    return None


def check_peer(bench: str, module: str) -> bool:
    """True when ``module`` imports; else print ``{"bench", "peer", "skipped"}`` and return False."""
    why = missing_peer(module)
    if why is not None:
        emit(bench=bench, peer=module, skipped=why)
    return why is None


def ratio(a: float | None, b: float | None, digits: int = 1) -> float | None:
    """``a / b`` to ``digits`` decimals, or None when either side was not measured.

    >>> ratio(3.0, 2.0), ratio(None, 2.0), ratio(3.0, None), ratio(2.0, 3.0, 3)
    (1.5, None, None, 0.667)
    """
    return None if a is None or b is None else round(a / b, digits)


@dataclass(frozen=True)
class Timing:
    """One side's timed calls: their ``seconds`` in the order they ran, what each call returned and, with
    ``around`` (:func:`time_sides`), what its context gave (``as``) around each call."""

    seconds: tuple[float, ...]
    results: tuple[Any, ...] = ()
    around: tuple[Any, ...] = ()

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def n(self) -> int:
        return len(self.seconds)

    def summary(self, digits: int = 6) -> dict[str, float | int]:
        """``{"min_s", "median_s", "n"}``: what a row's ``timings`` field holds for this side.

        >>> Timing((0.3, 0.1, 0.2)).summary()
        {'min_s': 0.1, 'median_s': 0.2, 'n': 3}
        """
        return {"min_s": round(self.min, digits), "median_s": round(self.median, digits), "n": self.n}


def time_sides(sides: Mapping[Side, Callable[[], Any]], *, repeats: int, warmup: int = 1,
               sync: Callable[[], object] | None = None,
               around: Callable[[Side], AbstractContextManager[Any]] | None = None) -> dict[Side, Timing]:
    """Seconds of ``repeats`` calls of each side, after ``warmup`` untimed calls of each.

    The timed calls run in rounds, every side once a round, the order reversed every other round
    (A B, B A, A B, ...), so that a change in the machine's load during the run hits every side alike.
    ``sync`` (a device synchronize) runs before each clock start and before each stop. ``around(side)``
    gives a context entered before the clock starts and left after it stops (a memory probe such as
    ``PeakMemory``, the side's own random stream). A side may keep state from call to call (the next
    segment of a training run).

    >>> order = []
    >>> t = time_sides({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, warmup=0)
    >>> "".join(order), t["a"].n, t["a"].min <= t["a"].median
    ('abbaab', 3, True)
    """
    if repeats < 1 or warmup < 0:
        raise UsageError(f"timing needs at least 1 timed call and no negative warm-up (got {repeats} and {warmup})")
    for fn in sides.values():
        for _ in range(warmup):
            fn()
    names = list(sides)
    seconds: dict[Side, list[float]] = {name: [] for name in names}
    results: dict[Side, list[Any]] = {name: [] for name in names}
    kept: dict[Side, list[Any]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            with around(name) if around is not None else nullcontext() as seen:
                if sync is not None:
                    sync()
                t0 = time.perf_counter()
                out = sides[name]()
                if sync is not None:
                    sync()
                seconds[name].append(time.perf_counter() - t0)
            results[name].append(out)
            kept[name].append(seen)
    return {name: Timing(tuple(seconds[name]), tuple(results[name]), tuple(kept[name]) if around else ())
            for name in names}


def round_ratios(slow: Timing, fast: Timing) -> list[float]:
    """``slow`` over ``fast`` seconds, round by round (both timed in the same :func:`time_sides` run).

    >>> round_ratios(Timing((2.0, 9.0)), Timing((1.0, 3.0)))
    [2.0, 3.0]
    """
    return [s / f for s, f in zip(slow.seconds, fast.seconds, strict=True)]


def run_script(main: Callable[[], Any], prog: str | None = None) -> int:
    """Run a script's ``main`` and return its exit status: what ``main`` returns (0 for None), or 2 after one
    line on stderr, ``<prog>: error: <message>``, when it raises one of mmtok's errors (:class:`MmtokError`,
    :class:`UsageError` among them). A ``SystemExit`` with a message (``raise SystemExit("--manifest m: no such
    file")``, in the script or a module it uses) is said the same way and returns 1, its status; one whose message
    names the script already (``fetch_corpus: ...``) is said as it is. ``prog`` defaults to the script's file
    name. With ``MMTOK_DEBUG=1`` the error is raised with its traceback.

        if __name__ == "__main__":
            sys.exit(run_script(main))
    """
    prog = prog or Path(sys.argv[0]).name
    try:
        status = main()
    except MmtokError as e:
        if debugging():
            raise
        print(f"{prog}: error: {' '.join(str(e).split()) or type(e).__name__}", file=sys.stderr)
        return 2
    except SystemExit as e:
        if not isinstance(e.code, str) or debugging():  # a status (argparse's 2, sys.exit(main())) goes as it is
            raise
        said = " ".join(e.code.split())
        named = said.split(":")[0].split(" ")[0] in (prog, Path(prog).stem)
        print(said if named else f"{prog}: error: {said}", file=sys.stderr)
        return 1
    return 0 if status is None else int(status)


def pick_device(name: str | None) -> torch.device:
    """``--device`` as a torch device (None: CUDA when available, else the CPU); a device this machine does
    not have is a :class:`UsageError` of one line (:func:`mmtok.core.device.pick_device`'s)."""
    from mmtok.core.device import pick_device as pick

    try:
        return pick(name)
    except MmtokError as e:
        raise UsageError(str(e)) from None


def positive(flag: str, value: float) -> None:
    """Refuse a ``flag`` whose ``value`` is not above zero.

    >>> positive("--repeats", 0)
    Traceback (most recent call last):
    mmtok.core.errors.UsageError: --repeats 0: give a number above 0
    """
    if not value > 0:
        raise UsageError(f"{flag} {value:g}: give a number above 0")


def positives(args: argparse.Namespace, *flags: str) -> None:
    """:func:`positive` for each of ``flags`` given, read from ``args`` (``--kmeans-iters``: ``args.kmeans_iters``;
    one left out, None, is not checked).

    >>> positives(argparse.Namespace(threads=None, repeats=0), "--threads", "--repeats")
    Traceback (most recent call last):
    mmtok.core.errors.UsageError: --repeats 0: give a number above 0
    """
    for flag in flags:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            positive(flag, value)


def finite(text: str) -> float:
    """An ``argparse`` type: a float that is finite (NaN and infinities refused in argparse's one line).

    >>> finite("-20")
    -20.0
    """
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number")
    return value


def share(flag: str, value: float) -> None:
    """Refuse a ``flag`` whose ``value`` is not a share from 0 to 1.

    >>> share("--synthetic-fraction", 2)
    Traceback (most recent call last):
    mmtok.core.errors.UsageError: --synthetic-fraction 2: give a share from 0 to 1
    """
    if not 0 <= value <= 1:
        raise UsageError(f"{flag} {value:g}: give a share from 0 to 1")


def skip_parts(flag: str, given: str, parts: Collection[str]) -> set[str]:
    """The parts a comma list ``given`` names, each one of ``parts``; another name is refused.

    >>> skip_parts("--skip", "speed,memroy", ("reconstruction", "speed", "memory"))
    Traceback (most recent call last):
    mmtok.core.errors.UsageError: --skip speed,memroy: unknown parts ['memroy']; choose from reconstruction, speed, memory
    """
    named = set(filter(None, given.split(",")))
    if named - set(parts):
        raise UsageError(f"{flag} {given}: unknown parts {sorted(named - set(parts))}; choose from {', '.join(parts)}")
    return named


def preset(flag: str, *names: str) -> None:
    """Refuse any of ``names`` that is not one of the transformer's presets, naming them.

    >>> preset("--models", "tiny", "huge")
    Traceback (most recent call last):
    mmtok.core.errors.UsageError: --models huge: no such preset; choose one of base, small, tiny
    """
    from mmtok.lm.model import PRESETS

    for name in names:
        if name not in PRESETS:
            raise UsageError(f"{flag} {name}: no such preset; choose one of {', '.join(sorted(PRESETS))}")


def file_to_write(flag: str, path: str | Path) -> Path:
    """``path`` of ``flag``, a file the run will write, when the folder it goes in exists: checked before any work.

    >>> file_to_write("--plot", "/no/such/folder/levels.png")
    Traceback (most recent call last):
    mmtok.core.errors.UsageError: --plot /no/such/folder/levels.png: no folder /no/such/folder to write it in
    """
    p = Path(path)
    if not p.parent.is_dir():
        raise UsageError(f"{flag} {p}: no folder {p.parent} to write it in")
    return p


def folder_to_fill(flag: str, path: str | Path) -> Path:
    """``path`` of ``flag`` made (with its parents) if absent; one that cannot be made is a :class:`UsageError`.

    >>> folder_to_fill("--out", "/dev/null/out")
    Traceback (most recent call last):
    mmtok.core.errors.UsageError: --out /dev/null/out: cannot make this folder (Not a directory)
    """
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{flag} {p}: cannot make this folder ({e.strerror or e})") from None
    return p


def existing_path(flag: str, path: str | Path, *, what: str = "file or folder", made_by: str = "") -> Path:
    """``path`` of ``flag`` when it exists, else a :class:`UsageError` naming it (and ``made_by``: what makes it).

    >>> existing_path("--wav", "/no/such.wav", what="file")
    Traceback (most recent call last):
    mmtok.core.errors.UsageError: --wav /no/such.wav: no such file
    """
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{flag} {p}: no such {what}{f' ({made_by})' if made_by else ''}")
    return p


def host_waits(call: Callable[[], object], calls: int, device: torch.device) -> float | None:
    """On CUDA, the calls per ``call()`` (over ``calls`` of them) that made the host wait for the device:
    ``torch.cuda.set_sync_debug_mode`` warns at each. None elsewhere. A step that waits cannot queue its next
    kernels while the device runs the last ones. The one warning torch's own switch gives (from
    ``torch/cuda/__init__.py``) is not counted."""
    if device.type != "cuda":
        return None
    import warnings

    import torch

    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(calls):
                call()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    waits = [w for w in caught if "synchroniz" in str(w.message)
             and not (Path(w.filename).parts[-2:] == ("cuda", "__init__.py") and "torch" in Path(w.filename).parts)]
    return round(len(waits) / calls, 2)


def kernel_launches(events: Any, calls: int) -> float:
    """Kernels launched per call, from a profiler's ``key_averages()`` ``events`` over ``calls`` calls."""
    return round(sum(e.count for e in events if e.key in LAUNCHES) / calls, 1)
