"""The pictures a ``train-tokenizer image`` run (:mod:`mmtok.image.train`) writes at each checkpoint: originals over
their reconstructions, and the codebook's usage."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmtok.core.files import write_atomic
from mmtok.core.metrics import psnr
from mmtok.core.plotting import pyplot
from mmtok.image.tokenizer import ImageTokenizer

__all__ = ["save_reconstruction_grid", "save_usage_histogram"]


def save_reconstruction_grid(tok: ImageTokenizer, images: torch.Tensor, path: Path) -> float:
    """Originals (top row) over reconstructions (bottom row) as one PNG; returns mean PSNR."""
    was = tok.training
    tok.eval()
    recon = tok.decode(tok.encode(images))  # (B, 3, H, W)
    tok.train(was)
    grid = torch.cat([torch.cat(list(images), -1), torch.cat(list(recon.cpu()), -1)], -2)  # (3, 2H, B*W)
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    png = io.BytesIO()
    Image.fromarray(arr).save(png, format="PNG")
    write_atomic(path, png.getvalue())
    return float(psnr(recon.cpu(), images).mean())


def save_usage_histogram(counts: torch.Tensor, path: Path, title: str) -> bool:
    """Bar chart of code counts (sorted, most used first); False when matplotlib is missing."""
    plt = pyplot(str(path))
    if plt is None:
        return False
    c = counts.sort(descending=True).values.numpy()
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(np.arange(len(c)), c, width=1.0)
    ax.set_xlabel("code (sorted by count)")
    ax.set_ylabel("count")
    ax.set_title(title)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, png.getvalue())
    return True
