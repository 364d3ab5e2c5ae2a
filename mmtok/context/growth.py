"""What a sequence length costs: one training step's time and peak memory, fits and plots.

Used by ``benchmarks/context_growth.py`` and ``mmtok demo``. A step is one
forward and backward pass of a :class:`~mmtok.lm.model.Transformer` preset over one
sequence, with PyTorch's SDPA dispatch (``"sdpa"``: flash/efficient kernels,
memory linear in length) or the math backend (``"math"``: materializes the T×T
scores, the quadratic term). Peak memory is :class:`mmtok.core.memory.PeakMemory`
over the step: on CUDA the allocator's peak, on the CPU the process's peak resident
set (0 where ``/proc`` is unavailable), each above what was in use before it.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmtok.core.memory import PeakMemory
from mmtok.lm.model import ModelConfig, Transformer

__all__ = ["BACKENDS", "fit_power", "measure_step", "plot_cost_vs_length", "plot_tokens_vs_minutes", "project"]

BACKENDS = ("sdpa", "math")


def _trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def measure_step(model: str | ModelConfig, backend: str, ids: torch.Tensor, vocab_size: int,
                 device: torch.device | str = "cpu") -> dict[str, float]:
    """One forward+backward over ``ids`` ``[L]``: ``seconds``, ``peak_mib`` and ``train_flops``."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    device = torch.device(device)
    torch.manual_seed(0)
    cfg = (ModelConfig.preset(model, vocab_size=vocab_size, max_seq_len=ids.numel()) if isinstance(model, str)
           else model)
    net = Transformer(cfg).to(device)
    x = ids[None].to(device)
    kernels = [SDPBackend.MATH] if backend == "math" else [
        SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH]
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    _trim()
    with PeakMemory(device) as mem:
        start = time.perf_counter()
        with sdpa_kernel(kernels), autocast:
            logits = net(x[:, :-1])  # (1, L-1, V)
            loss = F.cross_entropy(logits.float().view(-1, cfg.vocab_size), x[0, 1:])
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    del logits, loss
    return {"seconds": round(seconds, 4), "peak_mib": round(mem.peak_mib, 1),
            "train_flops": int(ids.numel()) * net.flops_per_token(int(ids.numel()))}


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


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_tokens_vs_minutes(path: str | Path, *, measured: Sequence[tuple[float, int]] = (),
                           measured_label: str = "measured", max_minutes: float = 180.0) -> Path:
    """Tokens vs minutes of video for every planner preset, with the context windows as lines.

    ``measured``: (seconds of video, stream tokens) points drawn on top. Needs matplotlib.
    """
    from mmtok.context.planner import PRESETS, WINDOWS
    from mmtok.context.shipped import plan

    plt = _pyplot()
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


def plot_cost_vs_length(path: str | Path, series: Mapping[str, Sequence[Mapping[str, float]]], *,
                        where: str) -> Path:
    """Step time and peak memory vs sequence length, log-log, one line per series (rows of measure_step)."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for label, rows in series.items():
        xs = [r["tokens"] for r in rows]
        style = "--s" if "math" in label else "-o"
        a1.plot(xs, [r["seconds"] for r in rows], style, label=label)
        a2.plot(xs, [max(r["peak_mib"], 1e-1) for r in rows], style, label=label)
    a1.set(xscale="log", yscale="log", xlabel="sequence length (tokens)", ylabel="forward+backward (s)")
    a2.set(xscale="log", yscale="log", xlabel="sequence length (tokens)", ylabel="peak step memory (MiB)")
    for a in (a1, a2):
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(f"Transformer cost vs length on {where}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
