"""The pictures a ``train-tokenizer image`` run (:mod:`mmtok.image.train`) writes at each checkpoint: originals over
their reconstructions (of the fixed crops :func:`grid_crops` cuts), and the codebook's usage."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmtok.core.files import write_atomic
from mmtok.core.metrics import psnr
from mmtok.core.plotting import pyplot
from mmtok.image.crops import random_crops
from mmtok.image.tokenizer import ImageTokenizer

__all__ = ["GRID_CROPS", "grid_crops", "save_reconstruction_grid", "save_usage_histogram"]

GRID_CROPS = 6  # crops the reconstruction grid shows


def grid_crops(corpus: Sequence[torch.Tensor], side: int, base_side: int) -> torch.Tensor:
    """The fixed, seeded crops of the reconstruction grid -> float ``[GRID_CROPS, 3, side, side]``: one
    ``side``-pixel crop (at the ``base_side`` scale, no flip) of each of ``GRID_CROPS`` different pictures, or
    of every picture in turn when the corpus has fewer."""
    g = torch.Generator().manual_seed(1)
    order = torch.randperm(len(corpus), generator=g).tolist()
    return torch.cat([random_crops([corpus[order[i % len(order)]]], 1, side, scale=(1.0, 1.0), flip=False,
                                   generator=g, base_side=base_side) for i in range(GRID_CROPS)])


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
