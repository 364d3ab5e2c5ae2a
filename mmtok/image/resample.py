"""Part of one axis of an antialiased bicubic resize, computed alone.

``F.interpolate(x, mode="bicubic", antialias=True)`` always produces whole axes. The
``crop`` size policy keeps ``image_size`` pixels of a long axis that can resize to
hundreds of thousands (a 16×8000 strip becomes 256×128000 before its centre is kept).
:func:`resample_span` computes only the output pixels kept, from only the input pixels
under them (:func:`input_span`), with torch's filter and positions: Keys' cubic with
``a = -0.5``, widened by the scale when shrinking, sample ``j`` centred on input
coordinate ``scale * (j + 0.5)``, weights computed in float32 as torch computes them.
The kept pixels equal those of the whole resize to float rounding.

>>> import torch, torch.nn.functional as F
>>> x = torch.rand(1, 3, 8, 200)
>>> whole = F.interpolate(x, size=(8, 700), mode="bicubic", antialias=True)[..., 300:320]
>>> part = resample_span(x, -1, in_len=200, out_len=700, start=300, count=20)
>>> bool((part - whole).abs().max() < 1e-5)
True
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["input_span", "resample_span"]

CUBIC_A = -0.5  # Keys' cubic convolution parameter torch (and Pillow) use when antialiasing
CUBIC_SUPPORT = 2.0  # the cubic's half-width in input pixels, before widening by the scale

f32 = np.float32


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel at ``x`` (float32)."""
    a = f32(CUBIC_A)
    x = np.abs(x).astype(f32)
    near = ((a + f32(2)) * x - (a + f32(3))) * x * x + f32(1)
    far = ((a * x - f32(5) * a) * x + f32(8) * a) * x - f32(4) * a
    return np.where(x < 1, near, np.where(x < 2, far, f32(0))).astype(f32)


def _bounds(in_len: int, out_len: int, start: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, f32]:
    """Centres, first and end input pixel of output pixels ``[start, start + count)``, and the inverse scale."""
    scale = f32(in_len) / f32(out_len)
    support = f32(CUBIC_SUPPORT) * scale if scale >= 1 else f32(CUBIC_SUPPORT)
    centre = (np.float64(scale) * (np.arange(start, start + count, dtype=np.float64) + 0.5)).astype(f32)
    lo = np.maximum(np.trunc(centre.astype(np.float64) - np.float64(support) + 0.5), 0).astype(np.int64)
    hi = np.minimum(np.trunc(centre.astype(np.float64) + np.float64(support) + 0.5), in_len).astype(np.int64)
    return centre, lo, hi, (f32(1) / scale if scale >= 1 else f32(1))


def input_span(in_len: int, out_len: int, start: int, count: int) -> tuple[int, int]:
    """The input pixels ``[a, b)`` that output pixels ``[start, start + count)`` of a resize of an axis
    from ``in_len`` to ``out_len`` pixels read.

    >>> input_span(8000, 128000, 63872, 256)
    (3990, 4010)
    """
    _, lo, hi, _ = _bounds(in_len, out_len, start, count)
    return int(lo.min()), int(hi.max())


def resample_span(x: torch.Tensor, axis: int, *, in_len: int, out_len: int, start: int, count: int,
                  offset: int = 0) -> torch.Tensor:
    """Output pixels ``[start, start + count)`` along ``axis`` of an antialiased bicubic resize of that
    axis from ``in_len`` to ``out_len`` pixels. ``x`` holds input pixels ``[offset, offset + x.shape[axis])``
    of the axis, which must cover :func:`input_span`; the other axes are left as they are."""
    centre, lo, hi, inv = _bounds(in_len, out_len, start, count)
    a, b = int(lo.min()), int(hi.max())
    if a < offset or b > offset + x.shape[axis]:
        raise ValueError(f"resample_span needs input pixels {a}..{b - 1}, got {offset}..{offset + x.shape[axis] - 1}")
    k = np.arange(a, b)[None, :]  # (1, b - a) input pixels
    at = ((k.astype(f32) - centre[:, None]).astype(np.float64) + 0.5) * np.float64(inv)
    w = np.where((k >= lo[:, None]) & (k < hi[:, None]), _cubic(at.astype(f32)), f32(0))  # (count, b - a)
    w = (w / w.sum(1, keepdims=True, dtype=f32)).astype(f32)
    span = x.narrow(axis, a - offset, b - a).movedim(axis, -1)  # (..., b - a)
    out = span.float() @ torch.from_numpy(w.T.copy()).to(span.device)  # (..., count)
    return out.movedim(-1, axis)
