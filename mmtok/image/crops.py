"""The image trainer's pictures: find them (a folder or a corpus manifest), load them at a
working size, and cut random crops at random scales, flips and quarter turns.

>>> import torch
>>> pics = [torch.randint(0, 255, (3, 64, 80), dtype=torch.uint8)]
>>> random_crops(pics, 4, 32, scale=(0.5, 1.0), generator=torch.Generator().manual_seed(0)).shape
torch.Size([4, 3, 32, 32])
"""

from __future__ import annotations

import argparse
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from mmtok.core.corpus_manifest import is_manifest, split_files
from mmtok.core.errors import ImageError, MissingFileError
from mmtok.core.suffixes import IMAGE_SUFFIXES
from mmtok.core.warning_filters import user_stacklevel
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.io import load_image, load_sized
from mmtok.image.sizing import crop_window

__all__ = ["DEFAULT_PATCH", "find_images", "load_corpus", "random_crops", "train_crops"]

DEFAULT_PATCH = ImageTokenizerConfig().downsample  # pixels per code side of the default tokenizer
SHOWN_UNREADABLE = 3  # unreadable files a refusal of a corpus names (it counts them all)
ENLARGED_WARN = 2.0  # a picture enlarged more than this many times to the base side is warned about (blurred crops)


def find_images(folder: str | os.PathLike[str], *, split: str | None = None) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted, so runs see them in the same order.

    ``folder`` may also be a corpus manifest (``manifest.jsonl``, one JSON object per
    file with ``path`` relative to the manifest's folder and ``split``): then the
    files of ``split`` (None: :data:`~mmtok.core.corpus_manifest.DEFAULT_SPLIT`) are taken, as ``benchmarks/fetch_corpus.py`` writes them;
    rows whose file is not there are refused first, all at once, by line (a :class:`MissingFileError`).
    """
    root = Path(folder)
    if is_manifest(root):
        return split_files(root, split, suffixes=IMAGE_SUFFIXES, media="image", error=ImageError, present=True)
    if not root.is_dir():
        raise MissingFileError(f"--data {str(root)!r} is not a folder or a manifest.jsonl")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise MissingFileError(f"--data {str(root)!r} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def load_corpus(files: Sequence[Path], base_side: int, *, max_zoom: float = 1.0,
                patch: int = DEFAULT_PATCH) -> list[torch.Tensor]:
    """Every file as uint8 ``[3, H, W]`` with the shorter side resized to ``base_side`` (antialiased).

    With ``max_zoom > 1`` an image larger than that is kept at up to ``max_zoom *
    base_side`` (never enlarged beyond its own size), so :func:`random_crops` can
    also show its finer detail; its zoom is then ``min(H, W) / base_side``.

    Files are read as the tokenizer's ``encode`` reads them: one smaller than one ``patch×patch`` patch
    (the tokenizer's downsample) is an :class:`ImageError` naming it, and one so elongated that its long
    side would pass ``MAX_SIDE`` at that scale is kept as the centre square the ``"crop"`` size policy
    reads (:func:`~mmtok.image.sizing.crop_window`), so memory stays bounded whatever the aspect ratio.
    Every file is read before a file that cannot be (corrupt, not an image, too small) is refused: one
    such file is refused with ``encode``'s error, several with one :class:`ImageError` that counts them
    all and names the first :data:`SHOWN_UNREADABLE`. Pictures enlarged more than :data:`ENLARGED_WARN` times
    to reach ``base_side`` (thumbnails, icons) give blurred crops: one warning counts them and names the most.
    """
    if max_zoom < 1:
        raise ValueError(f"max_zoom must be >= 1, got {max_zoom}")
    out, unreadable, enlarged = [], [], []
    for f in files:
        try:
            img = load_image(f, patch=patch)[None]  # (1, 3, H, W)
        except (ImageError, MissingFileError) as e:
            unreadable.append(e)
            continue
        short = min(img.shape[-2:])
        s = base_side * min(max_zoom, max(1.0, short / base_side)) / short
        if s > ENLARGED_WARN:
            enlarged.append((s, f, img.shape[-1], img.shape[-2]))
        h, w = round(img.shape[-2] * s), round(img.shape[-1] * s)
        if crop_window(*img.shape[-2:], min(h, w)) is not None:  # too elongated to resize whole
            img = load_sized(f, policy="crop", image_size=min(h, w), multiple=patch)
        else:
            img = F.interpolate(img, size=(h, w), mode="bicubic", antialias=True).clamp(0, 1)
        out.append((img[0] * 255).round().to(torch.uint8))
    if len(unreadable) == 1:
        raise unreadable[0]
    if unreadable:
        shown = "; ".join(str(e) for e in unreadable[:SHOWN_UNREADABLE])
        more = f"; and {len(unreadable) - SHOWN_UNREADABLE} more" if len(unreadable) > SHOWN_UNREADABLE else ""
        raise ImageError(f"{len(unreadable)} of the {len(files)} images cannot be read: {shown}{more}; "
                         "remove or replace them (from a manifest: their rows) and run again")
    if enlarged:
        s, f, w, h = max(enlarged, key=lambda e: e[0])
        one = len(enlarged) == 1
        warnings.warn(f"{len(enlarged)} of the {len(files)} images {'is' if one else 'are'} enlarged more than "
                      f"{ENLARGED_WARN:g}× to a shorter side of {base_side} px, so {'its' if one else 'their'} crops "
                      f"are blurred (the most: '{f}', {w}×{h} px, "
                      f"{s:.1f}×); leave out pictures this small to learn from sharp detail only",
                      stacklevel=user_stacklevel())
    return out


def random_crops(
    corpus: Sequence[torch.Tensor],
    n: int,
    size: int,
    *,
    scale: tuple[float, float],
    flip: bool = True,
    generator: torch.Generator | None = None,
    base_side: int | None = None,
    zoom_prob: float = 0.0,
    rotate: bool = False,
) -> torch.Tensor:
    """``n`` random square crops -> float ``[n, 3, size, size]`` in [0, 1].

    Each crop picks an image, a side ``size * U(scale)`` (in pixels of the image
    seen with its shorter side at ``base_side``, so the content is zoomed in or
    out), a position and a horizontal flip. An image stored larger than
    ``base_side`` (see :func:`load_corpus`) is cropped at that same scale, except
    that with probability ``zoom_prob`` a crop is taken at a zoom drawn
    log-uniformly between 1 and the image's own, showing detail finer than
    ``base_side`` allows. ``zoom_prob = 0`` draws no extra random numbers, so the
    crops are those of a corpus stored at ``base_side``. With ``rotate`` each crop
    is also turned by a random multiple of 90° (with the flip: any of the 8
    symmetries of the square); without it no extra random numbers are drawn.
    """
    g = generator
    which = torch.randint(0, len(corpus), (n,), generator=g).tolist()
    u = torch.rand(n, 4, generator=g).tolist()
    z = torch.rand(n, 2, generator=g).tolist() if zoom_prob > 0 else [[1.0, 0.0]] * n
    turns = torch.randint(0, 4, (n,), generator=g).tolist() if rotate else [0] * n
    crops = []
    for i, (a, b, c, d), (zp, ze), t in zip(which, u, z, turns, strict=True):
        img = corpus[i]
        hh, ww = img.shape[-2:]
        own = min(hh, ww) / base_side if base_side else 1.0  # this image's zoom as stored
        seen = own**ze if zp < zoom_prob else 1.0  # the zoom this crop shows, in [1, own]
        side = min(hh, ww, max(8, round(size * (scale[0] + a * (scale[1] - scale[0])) * own / seen)))
        top, left = int(b * (hh - side + 1)), int(c * (ww - side + 1))
        crop = img[None, :, top : top + side, left : left + side].float() / 255.0
        crop = F.interpolate(crop, size=(size, size), mode="bicubic", antialias=True) if side != size else crop
        if flip and d < 0.5:
            crop = crop.flip(-1)
        if t:
            crop = crop.rot90(t, (-2, -1))
        crops.append(crop)
    return torch.cat(crops).clamp_(0.0, 1.0)


def train_crops(corpus: Sequence[torch.Tensor], n: int, args: argparse.Namespace,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` training crops as the options ask: ``--crop``, ``--scale-*``, ``--zoom-*``, ``--rotate``."""
    return random_crops(corpus, n, args.crop, scale=(args.scale_min, args.scale_max), generator=generator,
                        base_side=args.base_side, zoom_prob=args.zoom_prob if args.zoom_max > 1 else 0.0,
                        rotate=args.rotate)
