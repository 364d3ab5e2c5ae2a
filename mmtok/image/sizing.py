"""Size policies and patches: float ``[B, 3, H, W]`` -> the size the encoder sees -> patch rows.

:func:`apply_size_policy` brings a batch to the encoder's size under one of
:data:`~mmtok.image.sizes.SIZE_POLICIES`: ``"crop"`` (short side to ``image_size``, centre square; an image too
elongated to resize whole is cut to the pixels its centre reads first, :func:`crop_window`
and :func:`crop_first`), ``"pad"`` (long side to ``image_size``, edge pixels repeated) or
``"native"`` (the size kept up to :data:`~mmtok.image.sizes.MAX_SIDE` on the long side, :func:`~mmtok.image.sizes.working_size`
past it, padded to a multiple of the patch). :func:`patchify` and :func:`unpatchify` cut
an image into non-overlapping patches and back. Resizes are antialiased bicubic, clamped
to [0, 1].

>>> import torch
>>> x = apply_size_policy(torch.rand(2, 3, 48, 80), policy="crop", image_size=32, multiple=16)
>>> tuple(x.shape), tuple(patchify(x, 16).shape)
((2, 3, 32, 32), (2, 4, 768))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from mmtok.image.resample import input_span, resample_span
from mmtok.image.sizes import MAX_SIDE, SIZE_POLICIES, working_size

__all__ = [
    "apply_size_policy",
    "crop_first",
    "crop_window",
    "patchify",
    "unpatchify",
]

def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bicubic resize of ``[B, 3, H, W]``, clamped to [0, 1]."""
    if (x.shape[-2], x.shape[-1]) == (height, width):
        return x
    y = F.interpolate(x, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return y.clamp_(0.0, 1.0)


def _pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad ``[B, 3, H, W]`` at the bottom and right by repeating the edge pixels."""
    ph, pw = height - x.shape[-2], width - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def _crop_geometry(h: int, w: int, image_size: int) -> tuple[int, int, int, int]:
    """``(nh, nw, top, left)``: the ``"crop"`` policy resizes ``h×w`` to ``nh×nw`` (the short side to
    ``image_size``) and keeps rows ``[top, top + image_size)``, columns ``[left, left + image_size)``."""
    s = image_size / min(h, w)
    nh, nw = max(image_size, round(h * s)), max(image_size, round(w * s))
    return nh, nw, (nh - image_size) // 2, (nw - image_size) // 2


def crop_window(h: int, w: int, image_size: int) -> tuple[int, int, int, int] | None:
    """The pixels ``(left, top, right, bottom)`` of an ``h×w`` image that the ``"crop"`` policy reads when
    it crops before resizing: for an image whose resized long side would pass ``max(MAX_SIDE,
    image_size)``. None for other images, which it resizes whole.

    >>> crop_window(16, 8000, 256), crop_window(480, 640, 256)
    ((3990, 0, 4010, 16), None)
    """
    nh, nw, top, left = _crop_geometry(h, w, image_size)
    if max(nh, nw) <= max(MAX_SIDE, image_size):
        return None
    if nw > nh:  # wide: every row, the columns under the kept ones
        a, b = input_span(w, nw, left, image_size)
        return a, 0, b, h
    a, b = input_span(h, nh, top, image_size)
    return 0, a, w, b


def crop_first(x: torch.Tensor, h: int, w: int, image_size: int) -> torch.Tensor:
    """The ``"crop"`` policy for an ``h×w`` image with a :func:`crop_window`, given only that window's
    pixels ``x`` ``[B, 3, bottom - top, right - left]``: the long axis resampled at just the kept
    pixels (:func:`~mmtok.image.resample.resample_span`), then the short one. Equal, to float rounding,
    to resizing the whole image and keeping its centre."""
    box = crop_window(h, w, image_size)
    assert box is not None and tuple(x.shape[-2:]) == (box[3] - box[1], box[2] - box[0]), (box, x.shape)
    nh, nw, top, left = _crop_geometry(h, w, image_size)
    if nw > nh:  # columns first, as torch resizes (rows are the short side: nh == image_size)
        x = resample_span(x, -1, in_len=w, out_len=nw, start=left, count=image_size, offset=box[0])
    else:
        x = resample_span(x, -2, in_len=h, out_len=nh, start=top, count=image_size, offset=box[1])
    return _resize(x, image_size, image_size)


def apply_size_policy(x: torch.Tensor, *, policy: str, image_size: int, multiple: int) -> torch.Tensor:
    """Bring ``[B, 3, H, W]`` to the size the encoder sees.

    - ``"crop"``: resize the shorter side to ``image_size``, center-crop to a square (an image
      too elongated to resize whole cheaply is cropped first, see :func:`crop_window`).
    - ``"pad"``: resize the longer side to ``image_size``, pad (edge pixels,
      bottom/right) to ``image_size × image_size``.
    - ``"native"``: keep the size, pad (bottom/right) to a multiple of ``multiple``; an image longer
      than ``MAX_SIDE`` is first reduced to it on its long side (aspect kept, :func:`working_size`),
      as :func:`~mmtok.image.io.load_image` reads a file, so an array and a file of the same pixels
      give the same size.

    >>> tuple(apply_size_policy(torch.rand(1, 3, 40, 90), policy="native", image_size=64, multiple=16).shape)
    (1, 3, 48, 96)
    """
    h, w = x.shape[-2:]
    if policy == "crop":
        box = crop_window(h, w, image_size)
        if box is not None:
            return crop_first(x[..., box[1] : box[3], box[0] : box[2]], h, w, image_size)
        nh, nw, top, left = _crop_geometry(h, w, image_size)
        x = _resize(x, nh, nw)
        return x[..., top : top + image_size, left : left + image_size]
    if policy == "pad":
        s = image_size / max(h, w)
        nh, nw = min(image_size, max(1, round(h * s))), min(image_size, max(1, round(w * s)))
        return _pad_to(_resize(x, nh, nw), image_size, image_size)
    if policy == "native":
        w, h = working_size(w, h)
        x = _resize(x, h, w)
        return _pad_to(x, -(-h // multiple) * multiple, -(-w // multiple) * multiple)
    raise ValueError(f"unknown size policy {policy!r}; expected one of {SIZE_POLICIES}")


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, h*w, C*patch*patch]`` non-overlapping patches, row-major.

    >>> tuple(patchify(torch.rand(2, 3, 32, 48), 16).shape)
    (2, 6, 768)
    """
    return rearrange(x, "b c (h p) (w q) -> b (h w) (c p q)", p=patch, q=patch)


def unpatchify(patches: torch.Tensor, patch: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``[B, h*w, C*patch*patch]`` -> ``[B, C, h*patch, w*patch]``."""
    return rearrange(patches, "b (h w) (c p q) -> b c (h p) (w q)", h=h, w=w, p=patch, q=patch)
