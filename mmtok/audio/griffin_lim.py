"""The classical way back from log-mel to a waveform, with nothing learned: non-negative least
squares from mel power back to a linear power spectrogram, then Griffin-Lim's phase
reconstruction. ``AudioTokenizer.decode(codes, vocoder="griffin-lim")`` uses it, and it is the
fallback of a tokenizer without a learned vocoder.

Every step is local in time: NNLS works frame by frame, and one Griffin-Lim iteration mixes a
frame only with the frames its STFT window overlaps. So a long clip can be inverted in windows,
each with :func:`reach_frames` frames of real context each side, and the pieces equal the whole
clip's inversion: memory stays bounded however long the clip.

>>> from mmtok.audio.features import log_mel, mel_filters
>>> fb = mel_filters(16000, 1024, 80, 0.0, 8000.0)
>>> wave = torch.sin(torch.arange(16000) / 5.0)
>>> mel = log_mel(wave[None], fb, n_fft=1024, hop_length=160)[0]          # (M, F)
>>> tuple(griffin_lim(mel, fb, n_fft=1024, hop_length=160, n_iter=8).shape)  # (F - 1) * hop
(16000,)
>>> whole = griffin_lim(mel, fb, n_fft=1024, hop_length=160, n_iter=8)
>>> windowed = griffin_lim(mel, fb, n_fft=1024, hop_length=160, n_iter=8, chunk_frames=30)  # 30 + 2 * 63 frames
>>> bool(torch.allclose(windowed, whole, atol=1e-5))
True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from mmtok.audio.windows import context_windows

__all__ = ["griffin_lim", "reach_frames"]

NNLS_SCALE_ABOVE = 2.0**40  # mel power past which NNLS runs scaled (a real clip's peak is under 2**20)
NNLS_ITERS = 16  # multiplicative updates from mel power back to linear power


def reach_frames(*, n_fft: int, hop_length: int, n_iter: int) -> int:
    """Frames each side that one output frame of :func:`griffin_lim` can depend on: each of the
    ``n_iter`` iterations and the final inverse STFT mixes a frame with those within ``n_fft`` samples.

    >>> reach_frames(n_fft=1024, hop_length=160, n_iter=32)
    231
    """
    return (n_iter + 1) * -(-n_fft // hop_length)


def griffin_lim(logmel: torch.Tensor, filters: torch.Tensor, *, n_fft: int, hop_length: int,
                n_iter: int, chunk_frames: int | None = None) -> torch.Tensor:
    """Waveform ``[(F - 1) * hop_length]`` from natural-log mel power ``[M, F]``, whose mel
    ``filters`` are ``[M, n_fft // 2 + 1]``: NNLS back to a linear power spectrogram, then
    torchaudio's Griffin-Lim (``n_iter`` iterations, momentum 0.99, a deterministic start).

    A clip of more than ``chunk_frames`` frames is windowed: at most ``chunk_frames`` frames at a time,
    the windows sharing the frames out evenly (none under half of ``chunk_frames``), each with
    :func:`reach_frames` frames of real context each side, so memory stays bounded; the pieces
    joined equal the whole clip's inversion within float rounding. A clip that fits in one window
    (and any clip when ``chunk_frames`` is None) is inverted whole.
    """
    frames = logmel.shape[-1]
    if chunk_frames is not None and chunk_frames < 1:
        raise ValueError(f"chunk_frames must be positive, got {chunk_frames}")
    if chunk_frames is None or frames <= chunk_frames:
        return _invert(logmel, filters, n_fft=n_fft, hop_length=hop_length, n_iter=n_iter)
    ctx = reach_frames(n_fft=n_fft, hop_length=hop_length, n_iter=n_iter)
    out = logmel.new_empty((frames - 1) * hop_length)  # (S,)
    for a, b, lo, hi in context_windows(frames, chunk_frames, ctx, even=True):
        wave = _invert(logmel[:, lo:hi], filters, n_fft=n_fft, hop_length=hop_length, n_iter=n_iter)
        piece = wave[(a - lo) * hop_length : (b - lo) * hop_length]  # the last window ends a hop early
        out[a * hop_length : a * hop_length + piece.numel()] = piece
    return out


def _invert(logmel: torch.Tensor, filters: torch.Tensor, *, n_fft: int, hop_length: int,
            n_iter: int) -> torch.Tensor:
    """:func:`griffin_lim` of one whole clip or window ``[M, F]`` -> ``[(F - 1) * hop_length]``."""
    mel = logmel.exp()  # (M, F)
    frames = mel.shape[-1]
    fb = filters.to(mel.device)  # (M, K)
    # NNLS squares its figures: a power far louder than any signal in [-1, 1] gives (lin * num) past float32
    # (inf / inf = NaN). Solved at a peak near 1 there, by a power of two, so the result is that of the exact
    # arithmetic scaled back (and unchanged for every ordinary clip, which is never scaled)
    peak = float(mel.amax()) if mel.numel() else 0.0
    scale = 2.0 ** math.floor(math.log2(peak)) if math.isfinite(peak) and peak > NNLS_SCALE_ABOVE else 1.0
    num = fb.t() @ (mel / scale)  # (K, F), also the initial guess
    lin = num.clone()
    for _ in range(NNLS_ITERS):  # multiplicative NNLS updates (Lee-Seung): lin stays >= 0
        lin = lin * num / (fb.t() @ (fb @ lin) + 1e-10 / scale)
    lin = lin * scale
    # Griffin-Lim's STFT reflects n_fft/2 samples at each end, so it needs a longer signal than
    # that: a clip of a few frames gets silent frames after it, cut off again below
    lin = F.pad(lin, (0, max(0, n_fft // (2 * hop_length) + 2 - frames)))
    window = torch.hann_window(n_fft, device=mel.device)
    wave = AF.griffinlim(
        lin.sqrt()[None], window, n_fft, hop_length, n_fft, power=1.0,
        n_iter=n_iter, momentum=0.99, length=None, rand_init=False,
    )[0]
    return wave[: max(0, frames - 1) * hop_length]
