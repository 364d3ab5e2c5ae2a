"""Bring a waveform's log-mel to the log-mel it was rendered from: a level correction after a vocoder.

A learned vocoder renders loud bins a little quieter than the log-mel it reads (audio v7's, in
the loudest 1 % of mel bins: -2.6 dB on true log-mel, -0.9 dB on its decoded log-mel).
:func:`match_log_mel` measures the output's log-mel with the tokenizer's own front end, takes
per frame and mel channel the log-power ratio to the target (clamped to ``± max_gain_db``:
it mends a level error of a few dB and does not repaint the spectrum), spreads it over the
STFT bins with the area-normalised filterbank (each bin gets the average of the ratios of the
channels it feeds, weighted by their filters), scales each bin's amplitude by the square root
of that power ratio and resynthesises with the inverse STFT. The phases are the waveform's own.
``iterations`` passes repeat it on the result.

Its reach: output sample ``s`` depends on input samples within ``iterations · n_fft`` of ``s``
(:func:`reach_frames` in frames), which a chunked decode adds to its context.

Axis legend used in shape comments:
    B  batch      M  mel channels      K  STFT bins (n_fft // 2 + 1)
    T  frames     S  samples (T · hop)

>>> from mmtok.audio.features import log_mel, mel_filters
>>> fb = mel_filters()
>>> wave = 0.1 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(0))   # 0.5 s of noise
>>> target = log_mel(wave, fb)[..., :50] + 0.3                # the same, 0.3 nats (1.3 dB) louder
>>> out = match_log_mel(wave, target, fb)
>>> err = lambda w: float((log_mel(w, fb)[..., 10:40] - target[..., 10:40]).abs().mean())
>>> round(err(wave), 3), err(out) < 0.01
(0.3, True)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mmtok.audio.features import front_stft
from mmtok.audio.front_end import HOP_LENGTH, LOG_FLOOR, N_FFT
from mmtok.audio.vocoder_config import MAX_GAIN_DB

__all__ = ["match_log_mel", "reach_frames"]


def reach_frames(iterations: int, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> int:
    """Frames each side that ``iterations`` passes of :func:`match_log_mel` read beyond a sample's own
    frame: ``n_fft / 2`` samples of analysis window and ``n_fft / 2`` of synthesis overlap per pass.

    >>> reach_frames(0), reach_frames(1), reach_frames(2)
    (0, 7, 13)
    """
    return math.ceil(iterations * n_fft / hop_length)


def match_log_mel(
    wave: torch.Tensor, target: torch.Tensor, filters: torch.Tensor, *, iterations: int = 1,
    n_fft: int = N_FFT, hop_length: int = HOP_LENGTH, floor: float = LOG_FLOOR, max_gain_db: float = MAX_GAIN_DB,
) -> torch.Tensor:
    """``wave [B, S]`` (or ``[S]``) with its STFT rescaled so its log-mel approaches ``target
    [B, M, T]`` (or ``[M, T]``), ``T = S // hop_length``: the frames a vocoder read to write ``wave``.

    The log-mel is :func:`mmtok.audio.features.log_mel` with ``filters [M, n_fft//2 + 1]`` (frame
    ``i`` centred on sample ``i · hop``, zero padding); the frame after the last (``T``) keeps its
    level. Returns a new tensor of ``wave``'s shape; ``iterations`` 0 returns ``wave`` itself.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if iterations == 0:
        return wave
    single = wave.dim() == 1
    x = wave[None] if single else wave  # (B, S)
    tgt = target[None] if target.dim() == 2 else target  # (B, M, T)
    frames = tgt.shape[-1]
    if x.dim() != 2 or tgt.dim() != 3 or tgt.shape[0] != x.shape[0] or x.shape[-1] != frames * hop_length:
        raise ValueError(f"match_log_mel wants wave [B, T*hop] and target [B, M, T] (hop {hop_length}), got "
                         f"{tuple(wave.shape)} and {tuple(target.shape)}")
    fb = filters.to(x)
    spread = fb / fb.sum(0, keepdim=True).clamp_min(1e-12)  # (M, K): each bin's weights over channels
    limit = max_gain_db * math.log(10.0) / 10.0  # in nats of power
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    length = x.shape[-1]
    for _ in range(iterations):
        spec = front_stft(x, n_fft=n_fft, hop_length=hop_length)  # (B, K, T+1), framed as the front end
        have = (fb @ (spec.real.square() + spec.imag.square())).clamp_min(floor).log()[..., :frames]  # (B, M, T)
        ratio = (tgt - have).clamp(-limit, limit)  # (B, M, T): log power, target over output
        gain = torch.exp(0.5 * (spread.t() @ ratio))  # (B, K, T): amplitude
        gain = F.pad(gain, (0, spec.shape[-1] - frames), value=1.0)  # (B, K, T+1)
        x = torch.istft(spec * gain, n_fft, hop_length, window=window, center=True, length=length)
    return x[0] if single else x

