"""Extra reconstruction terms of the audio tokenizer trainer, on natural-log mel power.

The trainer's base loss is an L1 on log-mel (every bin weighs alike, loud or near-silent).
These terms look at the decoded log-mel the way listeners' measures do:

- :func:`compressed_l1` (``--compressed-weight``): an L1 between power-law compressed mel
  magnitudes, so a miss in a loud frame costs more than the same miss in near-silence.
- :func:`channel_weights` (``--band-weight LO-HI:W``): weights per mel channel for the L1 and
  squared-error terms, so the channels of one frequency band (by their centres) count W times
  as much as the others; the weights average 1, so the loss keeps its scale.
- :func:`envelope_correlation_loss` (``--envelope-weight``): one minus the correlation of
  short-time band envelopes (about 384 ms of one-third-octave bands between 150 Hz and 5 kHz), the
  quantity the STOI intelligibility measure is built on. A decoded envelope that follows the
  rise and fall of the original's scores well however its level differs.

Axis legend: B batch, M mel channels, F frames, K bands, W windows, N frames per window.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from mmtok.audio.features import mel_centres

__all__ = ["COMPRESSION", "band_matrix", "channel_weights", "compressed_l1", "envelope_correlation_loss",
           "parse_band_weight"]

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


def parse_band_weight(text: str) -> tuple[float, float, float]:
    """``"LO-HI:W"`` (Hz, Hz, weight) -> ``(lo, hi, w)``; anything else is refused with the form it needs.

    >>> parse_band_weight("0-500:2.5")
    (0.0, 500.0, 2.5)
    """
    try:
        band, weight = text.split(":")
        lo, hi = band.split("-")
        out = (float(lo), float(hi), float(weight))
    except ValueError:
        raise ValueError(f"--band-weight {text!r}: give LO-HI:W, e.g. 0-500:2.5 (Hz, Hz, weight)") from None
    if not (0 <= out[0] < out[1] and out[2] > 0 and all(map(math.isfinite, out))):
        raise ValueError(f"--band-weight {text!r}: needs 0 <= LO < HI and a weight W > 0")
    return out


def channel_weights(bands: Sequence[tuple[float, float, float]], centres: torch.Tensor) -> torch.Tensor:
    """``[M, 1]`` weights of the mel channels with ``centres`` (Hz): a channel whose centre lies in
    ``[lo, hi)`` of one of ``bands`` gets that band's weight (the last such band), the others 1; then
    all are scaled to average 1, so a weighted mean error is on the scale of the plain one. A band with
    no centre in it would weigh nothing: a ValueError naming the centres nearest it.

    >>> w = channel_weights([(0.0, 500.0, 3.0)], torch.tensor([100.0, 400.0, 1000.0, 4000.0]))
    >>> w.flatten().tolist()
    [1.5, 1.5, 0.5, 0.5]
    >>> channel_weights([(150.0, 300.0, 2.0)], torch.tensor([100.0, 400.0]))
    Traceback (most recent call last):
    ValueError: --band-weight 150-300:2: no mel channel has its centre in [150, 300) Hz (the nearest: 100.0 and 400.0 Hz)
    """
    w = torch.ones(centres.shape[0], dtype=torch.float32)
    for lo, hi, weight in bands:
        inside = (centres >= lo) & (centres < hi)
        if not inside.any():
            below, above = centres[centres < lo], centres[centres >= hi]
            near = ([float(below.max())] if below.numel() else []) + ([float(above.min())] if above.numel() else [])
            raise ValueError(f"--band-weight {lo:g}-{hi:g}:{weight:g}: no mel channel has its centre in [{lo:g}, "
                             f"{hi:g}) Hz (the nearest: {' and '.join(f'{c:.1f}' for c in near)} Hz)")
        w[inside] = weight
    return (w / w.mean())[:, None]


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
    centre = mel_centres(sample_rate, n_fft, n_mels, f_min, f_max)  # (M,) Hz
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

