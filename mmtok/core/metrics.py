"""Measurements that several parts of mmtok report, each written once.

Reconstruction quality (:func:`psnr`, :func:`ssim`) for images in ``[0, 1]`` (uint8 ones in ``[0, 255]``),
with scikit-image's conventions: ``peak_signal_noise_ratio(ref, rec, data_range=1)`` and
``structural_similarity(ref, rec, data_range=1, channel_axis=0, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)`` of each image (pixels and channels together), the reconstruction clipped to the
range first and identical images giving 100 dB rather than infinity; codebook health
(:func:`codebook_usage`: the share of the K codes used and the perplexity of their distribution;
:func:`usage_over`: the share of the codes a run of that many tokens could have used), and two methods scored on the same items
(:func:`paired_difference`: the mean per-item difference with a bootstrap interval).

>>> import torch
>>> a = torch.zeros(1, 3, 8, 8); b = a + 0.1
>>> round(float(psnr(a, b)), 2)
20.0
>>> codebook_usage(torch.tensor([3, 1, 0, 0]))
(0.5, 1.754...)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TIE_RTOL", "code_counts", "codebook_usage", "codebook_usage_tensors", "key_seed", "paired_difference",
           "perplexity", "psnr", "ssim", "usage_over"]

SSIM_WINDOW = 11  # Gaussian window side (Wang et al. 2004)
SSIM_SIGMA = 1.5  # its standard deviation in pixels
SSIM_K1, SSIM_K2 = 0.01, 0.03  # stabilisers, times the dynamic range 1.0
TIE_RTOL = 1e-9  # two paired scores this close (relative) differ by float rounding alone: a tie


def _images(a: torch.Tensor, b: torch.Tensor, what: str, peak: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``a`` and ``b`` as float32 ``[B, C, H, W]`` in ``[0, peak]`` (uint8 ones scaled from ``[0, 255]``), and whether
    they came batched; a ValueError or TypeError that says what to pass for other shapes and element types."""
    if a.shape != b.shape:
        raise ValueError(f"{what} needs two tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if not 2 <= a.dim() <= 4:
        raise ValueError(f"{what} needs images [B, C, H, W], [C, H, W] or [H, W], got a tensor of shape "
                         f"{tuple(a.shape)}")
    out = []
    for t in (a, b):
        if t.dtype == torch.uint8:  # 8-bit pixels: 0..255 is the whole range
            t = t.float() / 255.0 * peak
        elif not t.is_floating_point():
            raise TypeError(f"{what} needs float images in [0, {peak:g}] or uint8 ones in [0, 255], got {t.dtype}; "
                            f"convert with .float() / (the type's largest value) * {peak:g}")
        out.append(t.float().reshape(-1, *t.shape[-3:]) if t.dim() >= 3 else t.float()[None, None])  # (B, C, H, W)
    return out[0], out[1], a.dim() == 4


def psnr(a: torch.Tensor, b: torch.Tensor, *, peak: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB of ``[B, C, H, W]`` (or one image ``[C, H, W]`` or ``[H, W]``) tensors in ``[0, peak]``;
    uint8 tensors are read as ``[0, 255]`` and give the same figure as their float ones.

    ``a`` (the reconstruction) is clipped to the valid range first; the mean squared error over the
    pixels and channels of each image is floored at 1e-10 so identical images give a finite 100 dB
    (scikit-image's ``peak_signal_noise_ratio`` gives infinity).

    >>> float(psnr(torch.full((8, 8), 100, dtype=torch.uint8), torch.full((8, 8), 110, dtype=torch.uint8)))
    28.1308...
    """
    a4, b4, batched = _images(a, b, "psnr", peak)
    mse = (a4.clamp(0, peak) - b4).pow(2).flatten(1).mean(1).clamp_min(1e-10)  # (B,)
    out = 10.0 * torch.log10(peak**2 / mse)
    return out if batched else out[0]


def _gaussian_window(channels: int, device: torch.device) -> torch.Tensor:
    x = torch.arange(SSIM_WINDOW, dtype=torch.float32, device=device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW).contiguous()  # (C, 1, k, k)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image structural similarity of ``[B, C, H, W]`` (or one image ``[C, H, W]`` or ``[H, W]``) tensors in
    [0, 1]; uint8 tensors are read as ``[0, 255]``.

    The standard definition (Wang et al. 2004): an 11×11 Gaussian window with
    σ = 1.5, per channel, averaged over the valid region and the channels; the
    same figure ``pytorch-msssim``'s ``ssim(..., data_range=1)`` gives, and scikit-image's
    ``structural_similarity`` with ``gaussian_weights=True, use_sample_covariance=False, data_range=1``.
    ``a`` (the reconstruction) is clipped to [0, 1] first. Two constant images of levels ``u`` and ``v``
    give ``(2uv + C1) / (u² + v² + C1)``.
    """
    x, y, batched = _images(a, b, "ssim")
    x = x.clamp(0, 1)
    c = x.shape[1]
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels, got {tuple(x.shape[-2:])}")
    w = _gaussian_window(c, x.device)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)  # (B, C, H-k+1, W-k+1), valid region only

    # (co)variances do not change when each image's channel is shifted by a constant: taken about its mean, the
    # E[x²] - E[x]² below does not lose float32 digits to a bright flat region (a constant image's is exactly 0)
    mx, my = x.mean((2, 3), keepdim=True), y.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
    x, y = x - mx, y - my
    bx, by = blur(x), blur(y)
    var_x = blur(x * x) - bx**2
    var_y = blur(y * y) - by**2
    cov = blur(x * y) - bx * by
    mu_x, mu_y = bx + mx, by + my
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    out = s.flatten(1).mean(1)  # (B,)
    return out if batched else out[0]


def code_counts(idx: torch.Tensor, k: int) -> torch.Tensor:
    """``[k]`` int64: how often each code of ``idx`` comes. ``torch.bincount`` on the CPU; elsewhere an index-add,
    since a GPU's bincount reads the largest index on the host first and so waits for the device.

    >>> code_counts(torch.tensor([2, 0, 2]), 4).tolist()
    [1, 0, 2, 0]
    """
    idx = idx.flatten()
    if idx.device.type == "cpu":
        return torch.bincount(idx, minlength=k)
    return torch.zeros(k, dtype=torch.long, device=idx.device).index_add_(0, idx, torch.ones_like(idx))


def codebook_usage_tensors(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(share of the K codes used at least once, perplexity)`` from per-code ``counts`` ``[K]``, as two float64
    0-d tensors on ``counts``' device, read nowhere on the host: a training step on a GPU reports them without
    waiting for the device. :func:`codebook_usage` and :func:`perplexity` give them as floats.

    >>> [round(float(t), 4) for t in codebook_usage_tensors(torch.tensor([3, 1, 0, 0]))]
    [0.5, 1.7548]
    >>> [float(t) for t in codebook_usage_tensors(torch.zeros(3))]
    [0.0, 0.0]
    """
    c = counts.detach().double().flatten()
    if c.numel() == 0:
        return c.new_zeros(()), c.new_zeros(())
    p = c / c.sum()  # (K,) NaN when nothing was counted: the perplexity is then 0, below
    entropy = torch.special.xlogy(p, p).sum().neg_()  # xlogy(0, 0) = 0: unused codes add nothing
    # the entropy is at most log K, so exp() is finite: NaN (nothing counted) is the only value to replace
    return torch.mean(c > 0, dtype=torch.float64), entropy.exp_().nan_to_num_(0.0, posinf=torch.inf)


def perplexity(counts: torch.Tensor) -> float:
    """``exp`` of the entropy of the code distribution given by ``counts`` ``[K]`` (0 when empty)."""
    return float(codebook_usage_tensors(counts)[1])


def codebook_usage(counts: torch.Tensor) -> tuple[float, float]:
    """``(share of the K codes used at least once, perplexity)`` from per-code ``counts`` ``[K]``."""
    usage, ppl = codebook_usage_tensors(counts)
    return float(usage), float(ppl)


def usage_over(counts: torch.Tensor) -> tuple[float, int, int]:
    """``(usage, distinct, tokens)`` of per-code ``counts`` ``[K]``, usage unrounded: distinct codes over
    ``min(K, tokens)``, since a run of fewer tokens than codes cannot use more codes than it has tokens
    (0.0 with no tokens).

    >>> usage_over(torch.tensor([3, 1, 0, 0]))
    (0.5, 2, 4)
    >>> usage_over(torch.tensor([1, 0, 0, 0]))
    (1.0, 1, 1)
    """
    c = counts.flatten()
    tokens, distinct = int(c.sum()), int((c > 0).sum())
    return (distinct / min(c.numel(), tokens) if tokens else 0.0), distinct, tokens


def key_seed(seed: int, key: str) -> int:
    """The seed of ``key``'s own generator: from ``seed`` and the key's name, the same in every run and
    process (a digest of the bytes; Python's ``hash()`` of a string changes from process to process).

    >>> key_seed(0, "stoi")
    5522932457878408169
    """
    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big")


def _tidy(value: float) -> float:
    """``value`` rounded to 4 places, a rounded -0.0 written as 0.0 (no "-0.0000" for a tie)."""
    return round(float(value), 4) + 0.0


def paired_difference(a: Sequence[Mapping[str, float]], b: Sequence[Mapping[str, float]], keys: Iterable[str], *,
                      resamples: int = 2000, seed: int = 0, lower_better: Iterable[str] = ()) -> dict[str, Any]:
    """Per key: ``mean`` of ``a[i][key] - b[i][key]`` over the items where both are finite, its 95 %
    percentile-bootstrap interval ``ci95`` (``resamples`` draws of the items by a generator of the key's own,
    seeded by :func:`key_seed`: a key's interval is the same whichever other keys are listed; None for a single
    item, whose every resample is itself and so says nothing of the spread), ``wins`` (items
    where ``a`` is better: higher, or lower for the keys in ``lower_better``, such as an error) and
    ``n``. ``a`` and ``b`` are the same items in the same order. Two scores that differ only in their last
    digits (within :data:`TIE_RTOL` of each other, as a score invariant to loudness gives for a sound and
    its quieter copy) are a tie: a difference of 0, a win for neither.

    A difference of means over 40 clips moves by a few hundredths from one model to the next for
    reasons that have nothing to do with the models; pairing each item with itself and resampling the
    items says how far such a difference can be trusted.

    >>> r = paired_difference([{"x": 1.0}, {"x": 2.0}, {"x": 4.0}], [{"x": 0.5}, {"x": 1.5}, {"x": 3.5}], ["x"])
    >>> r["x"]
    {'mean': 0.5, 'ci95': [0.5, 0.5], 'wins': 3, 'n': 3}
    >>> paired_difference([{"err": 1.0}], [{"err": 2.0}], ["err"], lower_better=["err"])["err"]["wins"]
    1
    """
    if len(a) != len(b):
        raise ValueError(f"paired rows must cover the same items: {len(a)} against {len(b)}")
    out: dict[str, Any] = {"items": len(a)}
    lower = set(lower_better)
    for key in keys:
        pairs = np.array([(x[key], y[key]) for x, y in zip(a, b, strict=True)
                          if key in x and key in y and math.isfinite(x[key]) and math.isfinite(y[key])], dtype=float)
        if pairs.size == 0:
            continue
        d = pairs[:, 0] - pairs[:, 1]  # (n,)
        d[np.isclose(pairs[:, 0], pairs[:, 1], rtol=TIE_RTOL, atol=0.0)] = 0.0  # float noise is a tie
        ci: list[float] | None = None
        if d.size > 1:
            rng = np.random.default_rng(key_seed(seed, key))
            means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
            ci = [_tidy(v) for v in np.quantile(means, [0.025, 0.975])]
        out[key] = {"mean": _tidy(d.mean()), "ci95": ci,
                    "wins": int((d < 0).sum() if key in lower else (d > 0).sum()), "n": int(d.size)}
    return out
