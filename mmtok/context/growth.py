"""What a sequence length costs: one training step's time and peak memory, fits and plots.

Used by ``benchmarks/context_growth.py`` and ``mmtok demo``. A step is one
forward and backward pass of a :class:`~mmtok.lm.model.Transformer` preset over one
sequence, with PyTorch's SDPA dispatch (``"sdpa"``: flash/efficient kernels,
memory linear in length) or the math backend (``"math"``: materializes the T×T
scores, the quadratic term). Peak memory is :class:`mmtok.core.memory.PeakMemory`
over the step: on CUDA the allocator's peak, on the CPU the process's peak resident
set (0 where ``/proc`` is unavailable), each above what was in use before it.

:func:`measure_growth` runs a whole series within a memory budget: before each
length it estimates the step's peak (:func:`estimate_peak_mib`: the largest
measured point scaled linearly, plus the math backend's T×T scores by formula) and
skips, with the reason, a length that would not fit. Each length is measured
``repeats`` times and the fastest kept; the fits report their R² and are marked
unreliable when other processes used the CPU meanwhile (:class:`CpuShare`), when
fewer than three lengths were measured or when the R² is low, rather than giving an exponent nobody should quote.
"""

from __future__ import annotations

import ctypes
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmtok.core.memory import PeakMemory, rss_mib
from mmtok.core.plotting import pyplot
from mmtok.lm.model import ModelConfig, Transformer

__all__ = ["BACKENDS", "CpuShare", "Fit", "Growth", "estimate_peak_mib", "fit", "fit_power", "load_average",
           "measure_growth", "measure_step", "plot_cost_vs_length", "plot_tokens_vs_minutes", "project"]

BACKENDS = ("sdpa", "math")
MAX_MEMORY_GB = 2.0  # default budget of a growth series: the process's memory (GiB) no step may take it past
REPEATS = 3  # measurements per length; the fastest is kept
BUSY_MARGIN = 0.5  # CPU cores other processes may use during a series before its fits are marked unreliable
MIN_R2 = 0.95  # a log-log fit below this R² is marked unreliable
MIN_POINTS = 3  # a fit through fewer lengths is marked unreliable: two points give R² 1.0 whatever they are


def _trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def _config(model: str | ModelConfig, vocab_size: int, tokens: int) -> ModelConfig:
    return ModelConfig.preset(model, vocab_size=vocab_size, max_seq_len=tokens) if isinstance(model, str) else model


def _whole(value: Any, what: str, least: int) -> int:
    """``value`` as an int once it is a whole number of at least ``least``; else a ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ValueError(f"{what} must be a whole number of at least {least}, got {value!r}")
    return int(value)


def _check_ids(model: str | ModelConfig, ids: Any, vocab_size: int, least: int) -> None:
    """A ValueError unless ``ids`` is a 1-D integer tensor of at least ``least`` ids, each below the vocabulary the
    step's model has (``vocab_size``, or a :class:`ModelConfig`'s own)."""
    if isinstance(model, ModelConfig):
        vocab, whose = model.vocab_size, "the ModelConfig's vocab_size"
    else:
        vocab, whose = _whole(vocab_size, "vocab_size", 1), "vocab_size"
    if (not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.dtype == torch.bool
            or ids.dtype.is_floating_point or ids.dtype.is_complex):
        got = f"a {ids.dim()}-D {ids.dtype} tensor" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids must be a 1-D tensor of integer token ids [L], got {got}")
    if ids.numel() < least:
        why = "a step predicts each token from the ones before it" if least > 1 else "repeated to each length"
        raise ValueError(f"ids must hold at least {least} token id{'s' if least > 1 else ''} ({why}), "
                         f"got {ids.numel()}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab:
        raise ValueError(f"ids must lie in [0, {vocab}) ({whose}), got ids from {low} to {high}; "
                         f"pass a vocabulary of at least {high + 1} ids")


def _checked_lengths(model: str | ModelConfig, lengths: Any) -> dict[str, list[int]]:
    """``lengths`` per backend, each a whole number of at least 2 tokens, shortest first and once each (the memory
    estimate of a length scales from the shorter ones, and a length that does not fit stops the longer ones)."""
    if not isinstance(lengths, Mapping) or not lengths:
        raise ValueError(f"lengths must map a backend {BACKENDS} to sequence lengths, e.g. {{'sdpa': [256, 512]}}, "
                         f"got {lengths!r}")
    out: dict[str, list[int]] = {}
    for backend, series in lengths.items():
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if isinstance(series, (str, bytes)) or not isinstance(series, Sequence):
            raise ValueError(f"lengths[{backend!r}] must be a list of sequence lengths, got {series!r}")
        out[backend] = sorted({_whole(n, f"lengths[{backend!r}]: each length (tokens a step reads)", 2)
                               for n in series})
        longest = max(out[backend], default=0)
        if isinstance(model, ModelConfig) and longest - 1 > model.max_seq_len:
            raise ValueError(f"lengths[{backend!r}] reaches {longest:,} tokens, past what the ModelConfig's "
                             f"max_seq_len {model.max_seq_len:,} lets a step read ({model.max_seq_len + 1:,}); "
                             "raise its max_seq_len or pass a preset name")
    return out


def measure_step(model: str | ModelConfig, backend: str, ids: torch.Tensor, vocab_size: int,
                 device: torch.device | str = "cpu", *, repeats: int = 1) -> dict[str, float]:
    """Forward+backward over ``ids`` ``[L]``, ``repeats`` times: ``seconds`` (the fastest), ``peak_mib``
    (the largest) and ``train_flops`` (of the ``L - 1`` tokens the step reads). ``ids`` holds at least 2 integer ids below ``vocab_size`` (a
    :class:`ModelConfig`'s own vocabulary and length when ``model`` is one); ``repeats`` is at least 1."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    _check_ids(model, ids, vocab_size, 2)
    repeats = _whole(repeats, "repeats", 1)
    if isinstance(model, ModelConfig) and ids.numel() - 1 > model.max_seq_len:
        raise ValueError(f"ids hold {ids.numel():,} tokens, past what the ModelConfig's max_seq_len "
                         f"{model.max_seq_len:,} lets a step read ({model.max_seq_len + 1:,})")
    device = torch.device(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(0)  # the same weights every time; the caller's generators are left as they were
        cfg = _config(model, vocab_size, ids.numel())
        net = Transformer(cfg).to(device)
        x = ids[None].to(device)
        kernels = [SDPBackend.MATH] if backend == "math" else [
            SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH]
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                    else torch.autocast("cpu", enabled=False))
        seconds, peak = math.inf, 0.0
        for _ in range(repeats):
            net.zero_grad(set_to_none=True)
            _trim()
            with PeakMemory(device) as mem:
                start = time.perf_counter()
                with sdpa_kernel(kernels), autocast:
                    logits = net(x[:, :-1])  # (1, L-1, V)
                    loss = F.cross_entropy(logits.float().view(-1, cfg.vocab_size), x[0, 1:])
                loss.backward()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)  # the device the step ran on, not the current one
                seconds = min(seconds, time.perf_counter() - start)
            del logits, loss
            peak = max(peak, mem.peak_mib)
        read = int(ids.numel()) - 1  # the step reads ids[:-1] and predicts ids[1:]
        return {"seconds": round(seconds, 4), "peak_mib": round(peak, 1),
                "train_flops": read * net.flops_per_token(read)}


def math_scores_mib(cfg: ModelConfig, tokens: int) -> float:
    """MiB the math backend holds for T×T attention at its peak, in float32: the probabilities every
    layer keeps for the backward pass, plus scores and their gradients of about two layers in flight.

    >>> round(math_scores_mib(ModelConfig.preset("tiny"), 8192))  # 6 × 4 heads × 8192² × 4 bytes
    6144
    """
    return (cfg.n_layer + 2) * cfg.n_head * tokens**2 * 4 / 2**20


def estimate_peak_mib(cfg: ModelConfig, backend: str, tokens: int, measured: Sequence[Mapping[str, float]]) -> float:
    """A step's peak memory (MiB) at ``tokens``, before running it, from smaller ``measured`` points
    (rows of :func:`measure_step` with ``tokens``) of the same series.

    The part that is not T×T attention grows linearly: it is scaled from the largest
    measured point. The math backend adds :func:`math_scores_mib`; SDPA's fused kernels
    add nothing quadratic. Without a measured point only the quadratic part is known.

    >>> cfg = ModelConfig.preset("tiny")
    >>> estimate_peak_mib(cfg, "sdpa", 4096, [{"tokens": 1024, "peak_mib": 50.0}])
    200.0
    >>> round(estimate_peak_mib(cfg, "math", 8192, [{"tokens": 1024, "peak_mib": 146.0}]))
    6544
    """
    quad = (lambda t: math_scores_mib(cfg, t)) if backend == "math" else (lambda t: 0.0)
    pts = sorted((int(p["tokens"]), float(p["peak_mib"])) for p in measured if p["tokens"] <= tokens)
    if not pts:
        return quad(tokens)
    t0, m0 = pts[-1]
    return max(m0 - quad(t0), 0.0) * tokens / t0 + quad(tokens)


def load_average() -> float:
    """The 1-minute load average (processes running or wanting a CPU; 0.0 where the system has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def fit_power(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """(exponent b, log-intercept log a) of ``y = a x^b`` by least squares in log-log; None with < 2 points.

    >>> b, a = fit_power([1, 2, 4, 8], [3, 12, 48, 192])
    >>> round(b, 6), round(math.exp(a), 6)
    (2.0, 3.0)
    """
    pts = [(x, y) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return None
    b, a = np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)
    return float(b), float(a)


def project(fit: tuple[float, float] | None, x: float) -> float | None:
    """The fitted ``a x^b`` at ``x`` (None without a fit)."""
    return None if fit is None else math.exp(fit[1]) * x ** fit[0]


class CpuShare:
    """Context manager: how busy the machine was with other work while the block ran.

    ``others`` is the mean number of CPU cores other processes kept busy (from
    ``/proc/stat`` less this process's own CPU time; None where ``/proc`` is
    unavailable); ``load_average`` the 1-minute load average at the end
    (:func:`os.getloadavg`), which counts this process's own threads too.
    """

    def __init__(self) -> None:
        self.cores = os.cpu_count() or 1
        self.others: float | None = None
        self.load_average = 0.0

    @staticmethod
    def _busy_seconds() -> float | None:
        try:
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> CpuShare:
        self._busy, self._own, self._wall = self._busy_seconds(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        busy, wall = self._busy_seconds(), max(time.perf_counter() - self._wall, 1e-9)
        if busy is not None and self._busy is not None:
            self.others = max(0.0, (busy - self._busy - (time.process_time() - self._own)) / wall)
        self.load_average = load_average()

    @property
    def busy(self) -> bool:
        """Other processes used more than :data:`BUSY_MARGIN` cores (without ``/proc``: the load average
        was above the core count less the margin)."""
        if self.others is not None:
            return self.others > BUSY_MARGIN
        return self.load_average > self.cores - BUSY_MARGIN

    def describe(self) -> str:
        others = f"other processes used {self.others:.1f} of {self.cores} cores, " if self.others is not None else ""
        return f"{others}load average {self.load_average:.1f}"


@dataclass(frozen=True)
class Fit:
    """``y = a x^b`` fitted in log-log: the exponent, its R², and whether to trust it."""

    exponent: float
    log_intercept: float
    r2: float
    reliable: bool
    why: str = ""  # why not, when not reliable


def fit(xs: Sequence[float], ys: Sequence[float], *, busy: bool = False) -> Fit | None:
    """:func:`fit_power` with its R²; unreliable when ``busy`` (the machine was loaded), when fewer than
    :data:`MIN_POINTS` lengths were measured (a line through two points has R² 1.0) or R² < :data:`MIN_R2`.

    >>> f = fit([1, 2, 4, 8], [3, 12, 48, 192])
    >>> round(f.exponent, 3), round(f.r2, 3), f.reliable
    (2.0, 1.0, True)
    >>> f = fit([602, 1202], [0.35, 0.77])
    >>> round(f.r2, 3), f.reliable, f.why
    (1.0, False, 'only 2 lengths')
    """
    got = fit_power(xs, ys)
    if got is None:
        return None
    lx = np.log([x for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0])
    ly = np.log([y for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0])
    resid = ly - (got[0] * lx + got[1])
    total = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / total if total > 0 else 1.0
    lengths = len(set(lx.tolist()))
    why = ("the machine was busy with other work" if busy else f"only {lengths} lengths" if lengths < MIN_POINTS
           else f"R² {r2:.2f} < {MIN_R2}" if r2 < MIN_R2 else "")
    return Fit(got[0], got[1], r2, not why, why)


@dataclass
class Growth:
    """A measured growth run: rows per series, the lengths skipped and why, the machine's load."""

    series: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)  # (series, tokens, reason)
    load: CpuShare = field(default_factory=CpuShare)
    max_memory_gb: float = MAX_MEMORY_GB

    def fits(self, label: str, key: str = "seconds") -> Fit | None:
        """The fit of ``key`` (``seconds`` or ``peak_mib``) against tokens for series ``label``."""
        pts = self.series.get(label, [])
        return fit([p["tokens"] for p in pts], [p[key] for p in pts], busy=self.load.busy)


def _base_mib(device: torch.device) -> float:
    """Memory in use now: the process's resident set on the CPU, the allocator's on CUDA."""
    return torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else rss_mib()


def measure_growth(model: str | ModelConfig, lengths: Mapping[str, Sequence[int]], ids: torch.Tensor,
                   vocab_size: int, device: torch.device | str = "cpu", *, max_memory_gb: float = MAX_MEMORY_GB,
                   repeats: int = REPEATS, progress: Callable[[Any], Any] = iter) -> Growth:
    """Step time and peak memory of ``model`` over ``lengths`` per backend (``{"sdpa": [256, ...]}``).

    ``ids`` (a 1-D tensor of ids below ``vocab_size``, repeated as needed) feed every length. Each
    series runs shortest first, each length (a whole number of at least 2 tokens) once. A length
    whose estimated peak (:func:`estimate_peak_mib`), on top of the memory in use, would pass
    ``max_memory_gb`` GiB (a finite number above 0) is skipped with the reason, and so are the longer
    ones of its series. ``progress`` wraps the list of jobs (e.g. ``tqdm``). Arguments out of range
    are a ValueError before any step runs.
    """
    series = _checked_lengths(model, lengths)
    _check_ids(model, ids, vocab_size, 1)
    if not (isinstance(max_memory_gb, numbers.Real) and math.isfinite(max_memory_gb) and max_memory_gb > 0):
        raise ValueError(f"max_memory_gb must be a finite number of GiB above 0, got {max_memory_gb!r}")
    repeats = _whole(repeats, "repeats", 1)
    device = torch.device(device)
    out = Growth(max_memory_gb=max_memory_gb)
    measure_step(model, next(iter(series)), ids[:64].repeat(2), vocab_size, device)  # first-call overheads
    jobs = [(b, n) for b in series for n in series[b]]
    stopped: dict[str, int] = {}
    with out.load:
        for backend, n in progress(jobs):
            label = f"{model if isinstance(model, str) else 'custom'} {backend}"
            rows = out.series.setdefault(label, [])
            if backend in stopped:
                out.skipped.append((label, n, f"a shorter length ({stopped[backend]:,}) did not fit"))
                continue
            need = estimate_peak_mib(_config(model, vocab_size, n), backend, n, rows)
            base = _base_mib(device)
            if base + need > max_memory_gb * 1024:
                stopped[backend] = n
                out.skipped.append((label, n, f"estimated {need / 1024:.2f} GiB for the step on top of "
                                    f"{base / 1024:.2f} GiB in use: over the {max_memory_gb:g} GiB budget"))
                continue
            seq = ids.repeat(n // ids.numel() + 1)[:n]
            rows.append({"tokens": n, "estimated_mib": round(need, 1),
                         **measure_step(model, backend, seq, vocab_size, device, repeats=repeats)})
    return out


def plot_tokens_vs_minutes(path: str | Path, *, measured: Sequence[tuple[float, int]] = (),
                           measured_label: str = "measured", max_minutes: float = 180.0) -> Path:
    """Tokens vs minutes of video for every planner preset, with the context windows as lines.

    ``measured``: (seconds of video, stream tokens) points drawn on top; the minutes run from one second to
    ``max_minutes`` (at most a year). Needs matplotlib (a :class:`~mmtok.core.errors.UsageError` before
    drawing without it).
    """
    from mmtok.context.planner import MAX_DURATION_S, WINDOWS
    from mmtok.context.presets import PRESETS
    from mmtok.context.shipped import plan

    longest = MAX_DURATION_S / 60
    if isinstance(max_minutes, bool) or not (isinstance(max_minutes, numbers.Real)
                                             and 1 < max_minutes * 60 <= MAX_DURATION_S):
        raise ValueError(f"max_minutes must be a number above 1/60 (the plot starts at one second) and at most "
                         f"{longest:,.0f} (a year), got {max_minutes!r}")
    plt = pyplot(f"plot_tokens_vs_minutes ({path})", required=True)
    minutes = np.geomspace(1 / 60, max_minutes, 80)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name in (*PRESETS, "mmtok"):
        tok = [plan(m * 60, preset=name).total_tokens for m in minutes]
        ax.plot(minutes, tok, label=f"{name} ({plan(60, preset=name).tokens_per_second:.0f} tok/s)")
    if measured:
        ax.plot([d / 60 for d, _ in measured], [n for _, n in measured], "ko", label=measured_label)
    for wname, size in WINDOWS.items():
        ax.axhline(size, color="gray", ls=":", lw=0.8)
        ax.text(minutes[0], size * 1.08, wname, color="gray", fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="minutes of video", ylabel="tokens",
           title="Context length vs video duration (preset rates at their default fps)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _length_ticks(lengths: Sequence[float], *, spread: float = 1.4) -> list[int]:
    """The lengths to label on a log axis: each measured one, shortest first, leaving out any within ``spread``
    times the last one labelled (their labels would run together).

    >>> _length_ticks([512, 256, 1024, 1100, 256])
    [256, 512, 1024]
    """
    out: list[int] = []
    for n in sorted({int(n) for n in lengths if n > 0}):
        if not out or n >= out[-1] * spread:
            out.append(n)
    return out


def plot_cost_vs_length(path: str | Path, series: Mapping[str, Sequence[Mapping[str, float]]], *,
                        where: str) -> Path:
    """Step time and peak memory vs sequence length, log-log, one line per series (rows of measure_step)."""
    plt = pyplot(f"plot_cost_vs_length ({path})", required=True)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for label, rows in series.items():
        xs = [r["tokens"] for r in rows]
        style = "--s" if "math" in label else "-o"
        a1.plot(xs, [r["seconds"] for r in rows], style, label=label)
        a2.plot(xs, [max(r["peak_mib"], 1e-1) for r in rows], style, label=label)
    a1.set(xscale="log", yscale="log", xlabel="sequence length (tokens)", ylabel="forward+backward (s)")
    a2.set(xscale="log", yscale="log", xlabel="sequence length (tokens)", ylabel="peak step memory (MiB)")
    from matplotlib.ticker import NullFormatter

    ticks = _length_ticks([r["tokens"] for rows in series.values() for r in rows])
    for a in (a1, a2):
        a.grid(True, which="both", alpha=0.3)
        if ticks:  # the lengths measured, by name: within one decade a log axis has no labelled tick at all
            a.set_xticks(ticks, [f"{n:,}" for n in ticks], fontsize=8)
        a.xaxis.set_minor_formatter(NullFormatter())  # 3×10², 4×10², ... ran together
        if series:
            a.legend(fontsize=8)
        else:  # every length skipped (the memory budget): say so where the lines would be
            a.text(0.5, 0.5, "no length measured", ha="center", va="center", transform=a.transAxes, color="0.4")
    fig.suptitle(f"Transformer cost vs length on {where}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
