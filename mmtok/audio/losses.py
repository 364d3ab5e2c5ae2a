"""Extra reconstruction terms of the audio tokenizer trainer, on natural-log mel power.

The trainer's base loss is an L1 on log-mel (every bin weighs alike, loud or near-silent).
These terms look at the decoded log-mel the way listeners' measures do:

- :func:`compressed_l1` (``--compressed-weight``): an L1 between power-law compressed mel
  magnitudes, so a miss in a loud frame costs more than the same miss in near-silence.
- :func:`envelope_correlation_loss` (``--envelope-weight``): one minus the correlation of
  short-time band envelopes (about 384 ms of one-third-octave bands between 150 Hz and 5 kHz), the
  quantity the STOI intelligibility measure is built on. A decoded envelope that follows the
  rise and fall of the original's scores well however its level differs.

Axis legend: B batch, M mel channels, F frames, K bands, W windows, N frames per window.
"""

from __future__ import annotations

import functools
import math

import torch

from mmtok.audio.features import mel_filters

__all__ = ["COMPRESSION", "band_matrix", "compressed_l1", "envelope_correlation_loss"]

COMPRESSION = 0.3  # --compressed-weight compares mel magnitudes raised to this power

BAND_LOWEST_HZ = 150.0  # centre of the lowest one-third-octave band (as STOI's)
BANDS = 16  # one-third-octave bands from 150 Hz: the highest is centred near 4.8 kHz
WINDOW_FRAMES = 38  # envelope window: 380 ms at a 10 ms hop (STOI: 30 frames of 12.8 ms)
WINDOW_STRIDE = 10  # frames between window starts
SILENCE_DB = 40.0  # windows this far below the crop's loudest frame do not count (as STOI drops silent frames)
FLOOR_MARGIN_DB = 10.0  # nor windows within this of the log floor in every channel (a crop of silence)


def compressed_l1(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between power-law compressed mel magnitudes, relative to the target's mean magnitude.

    ``recon`` and ``target`` are natural-log mel power, so the magnitude ``|X|^c`` is
    ``exp(c/2 · log-mel)``. Where the log-mel L1 weighs a 10 dB miss the same in speech and
    in near-silence, this weighs it by how loud the frame is.

    >>> t = torch.tensor([[0.0, -10.0]])
    >>> float(compressed_l1(t, t))
    0.0
    >>> bool(compressed_l1(t + torch.tensor([[1.0, 0.0]]), t) > compressed_l1(t + torch.tensor([[0.0, 1.0]]), t))
    True
    """
    r, t = (recon * (COMPRESSION / 2)).exp(), (target * (COMPRESSION / 2)).exp()
    return (r - t).abs().mean() / t.mean().clamp_min(1e-8)


@functools.lru_cache(maxsize=8)
def band_matrix(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float,
                bands: int = BANDS, lowest_hz: float = BAND_LOWEST_HZ) -> torch.Tensor:
    """``[K, M]`` 0/1 matrix: which mel channels (by the centroid of their filter) make up each
    one-third-octave band ``[f_c·2^(-1/6), f_c·2^(1/6))``, ``f_c = lowest_hz·2^(k/3)``.

    A band narrower than the mel channels near it gets the one nearest its centre, so no band is
    empty. Bands above the mel range are left out.

    >>> b = band_matrix(16000, 1024, 80, 0.0, 8000.0)
    >>> tuple(b.shape), bool((b.sum(1) >= 1).all()), bool((b.sum(0) <= 1).all())
    ((16, 80), True, True)
    """
    fb = mel_filters(sample_rate, n_fft, n_mels, f_min, f_max)  # (M, n_fft//2 + 1)
    freqs = torch.linspace(0, sample_rate / 2, fb.shape[1], dtype=torch.float64)
    centre = (fb.double() @ freqs) / fb.double().sum(1).clamp_min(1e-12)  # (M,) Hz
    rows = []
    for k in range(bands):
        fc = lowest_hz * 2 ** (k / 3)
        if fc * 2 ** (1 / 6) > f_max:
            break
        row = ((centre >= fc * 2 ** (-1 / 6)) & (centre < fc * 2 ** (1 / 6))).float()
        if not row.any():
            row[int((centre - fc).abs().argmin())] = 1.0
        rows.append(row)
    return torch.stack(rows).float()


def envelope_correlation_loss(recon: torch.Tensor, target: torch.Tensor, bands: torch.Tensor, *,
                              window: int = WINDOW_FRAMES, stride: int = WINDOW_STRIDE,
                              silence_db: float = SILENCE_DB, log_floor: float = math.log(1e-5)) -> torch.Tensor:
    """``1 -`` the mean correlation between decoded and original band envelopes.

    ``recon`` and ``target`` are ``[B, M, F]`` natural-log mel power; ``bands`` is
    :func:`band_matrix`. Each band's magnitude envelope (the square root of its summed power) is
    cut into windows of ``window`` frames every ``stride`` frames; in each window both envelopes
    lose their mean, and their normalised inner product is the correlation (1: the same shape,
    whatever the level). Windows whose original is ``silence_db`` below the crop's loudest frame,
    or within 10 dB of ``log_floor`` (the features' floor) in every channel, count for nothing; every
    other window counts the same. A crop shorter than one window is one
    window. Returns a scalar in [0, 2].

    >>> t = torch.randn(2, 80, 96)
    >>> b = band_matrix(16000, 1024, 80, 0.0, 8000.0)
    >>> float(envelope_correlation_loss(t, t, b)) < 1e-4, float(envelope_correlation_loss(t + 3.0, t, b)) < 1e-4
    (True, True)
    """
    frames = target.shape[-1]
    window = min(window, frames)
    bands = bands.to(target)
    env_t = torch.einsum("km,bmf->bkf", bands, target.exp()).clamp_min(1e-10).sqrt()  # (B, K, F)
    env_r = torch.einsum("km,bmf->bkf", bands, recon.exp()).clamp_min(1e-10).sqrt()
    seg_t = env_t.unfold(-1, window, stride)  # (B, K, W, N)
    seg_r = env_r.unfold(-1, window, stride)
    dt = seg_t - seg_t.mean(-1, keepdim=True)
    dr = seg_r - seg_r.mean(-1, keepdim=True)
    # a flat window (a steady tone, a pause) has no shape to follow: eps keeps its correlation finite
    eps = (1e-3 * seg_t.mean(-1)) ** 2 * window  # (B, K, W)
    corr = (dt * dr).sum(-1) / ((dt.pow(2).sum(-1) + eps).sqrt() * (dr.pow(2).sum(-1) + eps).sqrt())
    power = target.exp().sum(1)  # (B, F) frame power over all channels
    floor = (power.amax(-1, keepdim=True) * 10 ** (-silence_db / 10)).clamp_min(
        target.shape[1] * math.exp(log_floor) * 10 ** (FLOOR_MARGIN_DB / 10))  # (B, 1)
    loud = (power.unfold(-1, window, stride).mean(-1) > floor).float()  # (B, W)
    score = (corr.mean(1) * loud).sum() / loud.sum().clamp_min(1.0)
    return 1.0 - score

