"""Streamed resampling of one mono signal, block by block, so memory follows the block, never the
signal's length:

- rates whose ratio to the target reduces to ``p/q`` with ``p, q <= EXACT_RATIO_MAX``
  (8000, 11025, 22050, 24000, 32000, 44100, 48000, 96000, 384000 -> 16000, ...)
  keep the windowed-sinc resampler of ``torchaudio.functional.resample``
  (Hann window, 6 zero crossings, rolloff 0.99), streamed: the samples are the
  ones it gives for the whole signal, so codes made before stay the same;
- any other ratio (48001 -> 16000 reduces to 48001/16000, whose sinc kernel
  would take gigabytes) goes through soxr's bounded polyphase resampler (HQ).
"""

from __future__ import annotations

import functools
import math
from typing import Protocol

import soxr
import torch
import torch.nn.functional as F

__all__ = ["EXACT_RATIO_MAX", "Resampler", "resampler"]

EXACT_RATIO_MAX = 1000  # reduced ratios p/q with p, q up to this keep the exact sinc resampler
SINC_ZEROS = 6  # zero crossings on each side of the sinc kernel (torchaudio's lowpass_filter_width)
SINC_ROLLOFF = 0.99  # cutoff as a fraction of the lower Nyquist rate (torchaudio's rolloff)
SINC_KERNELS_KEPT = 16  # pairs of rates whose kernels are kept (the largest, near 1000/999, is about 8 MB)


@functools.lru_cache(maxsize=SINC_KERNELS_KEPT)
def _sinc_kernel(orig: int, new: int) -> tuple[torch.Tensor, int]:
    """The windowed-sinc kernel ``[new, 1, 2 * width + orig]`` and ``width`` for reduced rates ``orig -> new``.

    The same float32 numbers as ``torchaudio.functional.resample`` (sinc_interp_hann) computes. Made once per pair
    of rates and kept (read only, as the resamplers' convolution weights): for 44.1 -> 16 kHz it takes about as
    long as encoding a tenth of a second of audio, which every short clip paid again. Made outside inference mode,
    so that a kernel kept from a call inside it serves every later call alike.
    """
    with torch.inference_mode(False):
        return _make_sinc_kernel(orig, new)


def _make_sinc_kernel(orig: int, new: int) -> tuple[torch.Tensor, int]:
    """:func:`_sinc_kernel`, worked out."""
    base = min(orig, new) * SINC_ROLLOFF
    width = math.ceil(SINC_ZEROS * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float32)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float32)[:, None, None] / new + idx  # (new, 1, K)
    t *= base
    t = t.clamp_(-SINC_ZEROS, SINC_ZEROS)
    window = torch.cos(t * math.pi / SINC_ZEROS / 2) ** 2
    t *= math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernel *= window * (base / orig)
    return kernel, width


class Resampler(Protocol):
    """One signal's resampler, fed block by block: ``push`` gives the output samples each block completes."""

    def push(self, x: torch.Tensor, *, last: bool) -> torch.Tensor: ...


class _SincStream:
    """``torchaudio.functional.resample`` fed block by block: one strided conv per block.

    Output frame ``j`` (``new`` samples) reads input ``[j*orig - width, j*orig + orig + width)``
    of the zero-padded signal, so a block needs only ``2 * width`` samples of overlap.
    """

    def __init__(self, orig: int, new: int) -> None:
        self.orig, self.new = orig, new
        self.kernel, self.width = _sinc_kernel(orig, new)
        self.buf = torch.zeros(self.width, dtype=self.kernel.dtype)  # the left zero padding, then samples not yet consumed
        self.seen = 0  # input samples pushed
        self.made = 0  # output samples returned

    def push(self, x: torch.Tensor, *, last: bool) -> torch.Tensor:
        self.seen += x.numel()
        parts = [self.buf, x] + ([torch.zeros(self.width + self.orig, dtype=self.kernel.dtype)] if last else [])
        buf = torch.cat(parts)
        span = 2 * self.width + self.orig  # input samples under one output frame
        frames = (buf.numel() - span) // self.orig + 1 if buf.numel() >= span else 0
        y = torch.zeros(0, dtype=self.kernel.dtype)
        if frames:
            used = buf[: (frames - 1) * self.orig + span]
            y = F.conv1d(used[None, None], self.kernel, stride=self.orig)  # (1, new, frames)
            y = y.transpose(1, 2).reshape(-1)
        self.buf = buf[frames * self.orig :]
        if last:  # the length torchaudio keeps: ceil(new * S / orig)
            y = y[: max(0, -(-self.new * self.seen // self.orig) - self.made)]
        self.made += y.numel()
        return y


class _SoxrStream:
    """soxr's streaming polyphase resampler (quality HQ): bounded memory for any ratio."""

    def __init__(self, orig: int, new: int) -> None:
        self.rs = soxr.ResampleStream(orig, new, 1, dtype="float32", quality="HQ")

    def push(self, x: torch.Tensor, *, last: bool) -> torch.Tensor:
        return torch.from_numpy(self.rs.resample_chunk(x.numpy(), last=last).copy())


class _Identity:
    def push(self, x: torch.Tensor, *, last: bool) -> torch.Tensor:
        return x


def resampler(rate: int, target_rate: int) -> Resampler:
    """The streaming resampler for ``rate -> target_rate`` (see the module docstring for the rule)."""
    if rate == target_rate:
        return _Identity()
    g = math.gcd(rate, target_rate)
    if max(rate // g, target_rate // g) <= EXACT_RATIO_MAX:
        return _SincStream(rate // g, target_rate // g)
    return _SoxrStream(rate, target_rate)
