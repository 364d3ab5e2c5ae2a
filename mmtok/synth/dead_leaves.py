"""Synthetic training pictures for the image tokenizer: the dead-leaves model.

A dead-leaves picture is a stack of opaque discs dropped one after another, each
hiding what lies under it (drawn here front to back, which samples the same
picture exactly and stops as soon as the view is covered), with radii drawn
from a power law ``p(r) ∝ r^-3``. That density makes the picture statistically
scale invariant, and the occlusions give it sharp edges, T-junctions and flat
regions. These are the traits of natural photos that matter to a patch codec. Each disc takes a colour
from a palette (for example random pixels of real training images, so the
colours are natural ones). It gets a soft shading gradient, and some discs also
get a sinusoidal texture. The picture is drawn at twice its size and reduced
with an antialiasing filter, so the edges are smooth like a camera's.

>>> import torch
>>> img = dead_leaves(64, generator=torch.Generator().manual_seed(0))
>>> img.shape, img.dtype
(torch.Size([3, 64, 64]), torch.uint8)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["PALETTE_PIXELS", "dead_leaves", "palette_from", "synthetic_corpus", "training_pictures"]

SUPERSAMPLE = 2  # drawn at this many times the size, then reduced with antialiasing
PALETTE_PIXELS = 4096  # training pixels the colours of training_pictures are drawn from


def _radii(n: int, r_min: float, r_max: float, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` radii with density ``∝ r^-3`` on ``[r_min, r_max]`` (inverse of the CDF)."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    lo, hi = r_min**-2, r_max**-2
    return (lo - u * (lo - hi)).pow(-0.5).float()


def dead_leaves(
    side: int,
    *,
    generator: torch.Generator | None = None,
    palette: torch.Tensor | None = None,
    leaves: int | None = None,
    r_min: float = 4.0,
    r_max: float | None = None,
    texture_prob: float = 0.5,
) -> torch.Tensor:
    """One dead-leaves picture, uint8 ``[3, side, side]``.

    ``palette`` is float ``[P, 3]`` in [0, 1]; each disc takes one of its rows
    (default: uniform random colours). Discs are drawn front to back until every
    pixel is covered, at most ``leaves`` of them (default ``40 * side``; a pixel
    still bare then keeps the ground colour); radii from ``r_min`` to ``r_max``
    pixels (default ``side / 3``).
    Shading: every disc gets a linear gradient of up to ±10 % across it; with
    probability ``texture_prob`` it also gets a sinusoidal grating of random
    period, direction and amplitude.
    """
    if side < 2:
        raise ValueError(f"dead_leaves needs side >= 2, got {side}")
    if not 0.0 <= texture_prob <= 1.0:
        raise ValueError(f"texture_prob must be in [0, 1], got {texture_prob}")
    r_max = side / 3 if r_max is None else r_max
    if not 0 < r_min <= r_max:
        raise ValueError(f"dead_leaves needs 0 < r_min <= r_max, got {r_min}, {r_max}")
    if palette is not None and (palette.dim() != 2 or palette.shape[1] != 3 or palette.shape[0] == 0):
        raise ValueError(f"palette must be a non-empty [P, 3] tensor, got shape {tuple(palette.shape)}")
    g = generator
    n = 40 * side if leaves is None else leaves
    s = SUPERSAMPLE
    big = side * s
    radii = _radii(n, r_min * s, r_max * s, g)  # (n,) in supersampled pixels
    centres = torch.rand(n, 2, generator=g) * (big + 2 * radii[:, None]) - radii[:, None]  # discs may overhang
    if palette is None:
        colours = torch.rand(n + 1, 3, generator=g)
    else:
        colours = palette.float()[torch.randint(0, palette.shape[0], (n + 1,), generator=g)]
    shade = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.1  # (n, 2) gradient across the disc
    tex = torch.rand(n, 4, generator=g)  # (n, 4): on?, period, angle, amplitude
    canvas = colours[n][:, None, None].expand(3, big, big).clone()  # the ground, seen only if discs run out
    free = torch.ones(big, big, dtype=torch.bool)  # pixels no disc covers yet
    # front to back: each new disc lies *under* the ones before it, so it only fills free pixels;
    # the picture is complete (an exact dead-leaves sample) once no pixel is free
    for i in range(n):
        if i % 256 == 0 and not bool(free.any()):
            break
        cy, cx, r = float(centres[i, 0]), float(centres[i, 1]), float(radii[i])
        y0, y1 = max(0, math.floor(cy - r)), min(big, math.ceil(cy + r) + 1)
        x0, x1 = max(0, math.floor(cx - r)), min(big, math.ceil(cx + r) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy = (torch.arange(y0, y1, dtype=torch.float32) + 0.5 - cy)[:, None]  # (h, 1)
        xx = (torch.arange(x0, x1, dtype=torch.float32) + 0.5 - cx)[None, :]  # (1, w)
        hole = free[y0:y1, x0:x1]
        paint = (yy.square() + xx.square() <= r * r) & hole  # (h, w)
        if not bool(paint.any()):
            continue
        value = 1.0 + (shade[i, 0] * yy + shade[i, 1] * xx) / r  # (h, w) shading
        if tex[i, 0] < texture_prob:
            period = 2.0 * s * (1.0 + 7.0 * float(tex[i, 1]))  # 2..16 output pixels
            angle = math.pi * float(tex[i, 2])
            wave = torch.sin(2 * math.pi * (math.cos(angle) * xx + math.sin(angle) * yy) / period)
            value = value + 0.25 * float(tex[i, 3]) * wave
        patch = canvas[:, y0:y1, x0:x1]
        patch[:, paint] = (colours[i][:, None, None] * value)[:, paint]
        hole[paint] = False
    small = F.interpolate(canvas[None], size=(side, side), mode="bilinear", antialias=True)[0]
    return (small.clamp(0, 1) * 255).round().to(torch.uint8)


def palette_from(corpus: Sequence[torch.Tensor], n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` random pixels of uint8 ``[3, H, W]`` pictures (each picture equally likely) as float ``[n, 3]``."""
    if not corpus:
        raise ValueError("palette_from needs at least one picture")
    which = torch.randint(0, len(corpus), (n,), generator=generator).tolist()
    out = torch.empty(n, 3)
    for j, i in enumerate(which):
        img = corpus[i]
        y = int(torch.randint(0, img.shape[-2], (1,), generator=generator))
        x = int(torch.randint(0, img.shape[-1], (1,), generator=generator))
        out[j] = img[:, y, x].float() / 255.0
    return out


def synthetic_corpus(
    count: int, side: int, *, palette: torch.Tensor | None = None, generator: torch.Generator | None = None,
    progress: bool = False,
) -> list[torch.Tensor]:
    """``count`` dead-leaves pictures (uint8 ``[3, side, side]``), to mix into a training corpus."""
    from tqdm import tqdm

    steps = tqdm(range(count), desc="dead-leaves pictures", disable=not progress, leave=False)
    return [dead_leaves(side, generator=generator, palette=palette) for _ in steps]


def training_pictures(
    corpus: Sequence[torch.Tensor], count: int, side: int, *, seed: int, progress: bool = False
) -> list[torch.Tensor]:
    """The ``count`` dead-leaves pictures ``train-tokenizer image --synthetic`` adds to ``corpus``.

    Colours come from :data:`PALETTE_PIXELS` random pixels of ``corpus``; everything is
    drawn from one generator seeded by ``seed``, so the same corpus and seed give the
    same pictures (on resume, and for a baseline shown the same data).
    """
    g = torch.Generator().manual_seed(seed)
    palette = palette_from(corpus, PALETTE_PIXELS, generator=g)
    return synthetic_corpus(count, side, palette=palette, generator=g, progress=progress)
