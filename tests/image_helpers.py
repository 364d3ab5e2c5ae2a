"""Shared by the image tests: a tiny tokenizer config (and a fitted tokenizer of it) and a generated natural-ish picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.vq.quantizer import VQConfig


def tiny_config(**kw: object) -> ImageTokenizerConfig:
    base: dict[str, object] = dict(
        image_size=64,
        enc_channels=(8, 16, 32),
        enc_blocks=1,
        latent_dim=8,
        dec_channels=(32, 16, 8),
        dec_blocks=1,
        vq=VQConfig(dim=8, codebook_size=64),
    )
    base.update(kw)
    return ImageTokenizerConfig(**base)  # type: ignore[arg-type]


def fitted_tiny_tokenizer() -> ImageTokenizer:
    """A seeded :func:`tiny_config` tokenizer whose codebook was k-means-initialised on random pictures, in eval mode."""
    torch.manual_seed(0)
    t = ImageTokenizer(tiny_config())
    t.train()
    t(torch.rand(4, 3, 64, 64))  # k-means init so the codebook is data-shaped
    return t.eval()


def smooth_picture(size: int = 256, seed: int = 0) -> torch.Tensor:
    """A natural-ish test image: smooth color fields plus a few soft-edged disks."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    img = torch.stack([0.3 + 0.5 * xx, 0.2 + 0.6 * yy, 0.6 - 0.3 * xx * yy])
    for _ in range(5):
        cy, cx, r = torch.rand(3, generator=g).tolist()
        color = torch.rand(3, 1, 1, generator=g)
        d = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
        mask = torch.sigmoid((0.1 + 0.2 * r - d) * 60.0)
        img = img * (1 - mask) + color * mask
    return img.clamp(0, 1)


def save_smooth_picture(path: Path, size: int = 256, seed: int = 0) -> Path:
    """:func:`smooth_picture` written to ``path`` as 8-bit RGB (the format from its suffix)."""
    Image.fromarray((smooth_picture(size, seed=seed).permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(path)
    return path
