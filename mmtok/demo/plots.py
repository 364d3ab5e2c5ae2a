"""Small matplotlib figures for the demo page (matplotlib is the ``plot`` extra)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmtok.core import plotting
from mmtok.core.errors import DemoError


def pyplot() -> Any:
    """matplotlib's ``pyplot`` drawing to files, or a :class:`DemoError` when matplotlib is not installed."""
    return plotting.pyplot("the demo's page", required=True, error=DemoError)


def usage_plot(path: Path, counts: Mapping[str, torch.Tensor], *, title: str, ylabel: str = "tokens") -> Path:
    """Per-code counts sorted by use, one line per codebook (log y)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    for name, c in counts.items():
        c = torch.as_tensor(c).float()
        used = int((c > 0).sum())
        ax.plot(torch.sort(c, descending=True).values.numpy(), label=f"{name}: {used}/{c.numel()} codes used")
    ax.set(xlabel="code (sorted by use)", ylabel=ylabel, yscale="symlog", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def mel_pair(path: Path, before: torch.Tensor, after: torch.Tensor, *, title: str, hop_seconds: float) -> Path:
    """Log-mel before (top) and after tokenization (bottom), on one colour scale."""
    plt = pyplot()
    n = min(before.shape[1], after.shape[1])
    lo, hi = float(before.min()), float(before.max())
    fig, axes = plt.subplots(2, 1, figsize=(6.4, 3.6), dpi=100, sharex=True)
    for ax, m, name in zip(axes, (before, after), ("original", "from tokens"), strict=True):
        ax.imshow(m[:, :n].numpy(), origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma",
                  extent=(0, n * hop_seconds, 0, m.shape[0]))
        ax.set_ylabel(f"{name}\nmel band", fontsize=8)
    axes[-1].set_xlabel("seconds")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def save_png(path: Path, img: torch.Tensor, *, scale: int = 1) -> Path:
    """Save float ``[3, H, W]`` in [0, 1] as a PNG, optionally enlarged ``scale`` times (nearest)."""
    from PIL import Image

    a = (img.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    pic = Image.fromarray(a)
    if scale > 1:
        pic = pic.resize((pic.width * scale, pic.height * scale), Image.Resampling.NEAREST)
    pic.save(path)
    return path


PEAK = 0.99  # loudest sample written to a WAV: louder sound is scaled down to it, never clipped


def save_wav(path: Path, wave: torch.Tensor, sample_rate: int) -> Path:
    """Save a mono float waveform as 16-bit PCM WAV, scaled down (never clipped) if its peak is above ``PEAK``."""
    import soundfile as sf

    x = wave.detach().cpu().float().reshape(-1).numpy()
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > PEAK:
        x = x * (PEAK / peak)
    sf.write(path, x, sample_rate, subtype="PCM_16")
    return path


def overview(path: Path, panels: list[tuple[Path, str]], *, title: str, cols: int = 3) -> Path:
    """One picture of several of the page's PNGs (``(file, caption)``), ``cols`` per row."""
    from PIL import Image

    plt = pyplot()
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (file, caption) in zip(axes.ravel(), panels, strict=False):
        with Image.open(file) as im:
            ax.imshow(np.asarray(im.convert("RGB")), interpolation="antialiased")
        ax.set_title(caption, fontsize=10)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
