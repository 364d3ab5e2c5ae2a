"""The audio trainer's extra loss terms (mmtok.audio.losses) on small, seeded log-mel."""

from __future__ import annotations

import math

import pytest
import torch

from mmtok.audio.features import mel_filters
from mmtok.audio.losses import band_matrix, compressed_l1, envelope_correlation_loss

BANDS = band_matrix(16000, 1024, 80, 0.0, 8000.0)


def _speechlike(batch: int = 3, frames: int = 96, seed: int = 0) -> torch.Tensor:
    """Log-mel [B, 80, F] whose band levels rise and fall at syllable-like rates (2-8 Hz), over a floor."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames) / 100.0  # seconds at a 10 ms hop
    rate = 2 + 6 * torch.rand(batch, 80, 1, generator=g)
    phase = 2 * math.pi * torch.rand(batch, 80, 1, generator=g)
    level = -4 + 3 * torch.sin(2 * math.pi * rate * t + phase)  # natural-log power
    return level + 0.1 * torch.randn(batch, 80, frames, generator=g)


def test_bands_are_one_third_octaves_over_the_mel_channels() -> None:
    fb = mel_filters()
    freqs = torch.linspace(0, 8000, fb.shape[1])
    centre = (fb @ freqs) / fb.sum(1)
    assert BANDS.shape == (16, 80)
    assert bool((BANDS.sum(1) >= 1).all()) and bool((BANDS.sum(0) <= 1).all())  # no empty band, no shared channel
    for k, row in enumerate(BANDS):
        fc = 150.0 * 2 ** (k / 3)
        inside = centre[row.bool()]
        # every channel of a band lies in it, or the band is narrower than one channel and got the nearest
        assert bool(((inside >= fc * 2 ** (-1 / 6)) & (inside < fc * 2 ** (1 / 6))).all()) or row.sum() == 1
    # a lower f_max leaves the bands above it out
    assert band_matrix(16000, 1024, 80, 0.0, 4000.0).shape[0] < 16


def test_envelope_loss_ignores_level_and_sees_shape() -> None:
    target = _speechlike()
    assert float(envelope_correlation_loss(target, target, BANDS)) == pytest.approx(0.0, abs=1e-4)
    # a constant gain in every channel (log-mel + c) keeps each band's envelope shape
    assert float(envelope_correlation_loss(target + 2.0, target, BANDS)) == pytest.approx(0.0, abs=1e-4)
    # smearing the envelope in time (what a blurry decoder does) costs, and more smear costs more
    blur3 = torch.nn.functional.avg_pool1d(target, 9, 1, 4, count_include_pad=False)
    blur9 = torch.nn.functional.avg_pool1d(target, 25, 1, 12, count_include_pad=False)
    a, b = (float(envelope_correlation_loss(x, target, BANDS)) for x in (blur3, blur9))
    assert 0.0 < a < b
    # an envelope turned upside down scores near 2
    flipped = 2 * target.mean(-1, keepdim=True) - target
    assert float(envelope_correlation_loss(flipped, target, BANDS)) > 1.5


def test_envelope_loss_leaves_silence_out_and_has_gradients() -> None:
    target = _speechlike(batch=2)
    target[1] = -11.5  # the second crop is silence at the log floor, 70 dB under the first one's
    noise = torch.randn(2, 80, 96, generator=torch.Generator().manual_seed(1))
    recon = target.clone()
    recon[1] = recon[1] + noise[1]  # wrong only where nothing is heard: it costs nothing
    assert float(envelope_correlation_loss(recon, target, BANDS)) == pytest.approx(0.0, abs=1e-4)
    # a loud crop and a silent one: silence inside a crop relative to its own loudest frame
    quiet = target.clone()
    quiet[0, :, 60:] = -11.5
    recon = quiet.clone()
    recon[0, :, 60:] = recon[0, :, 60:] + noise[0, :, 60:]
    windows = (96 - 38) // 10 + 1
    assert float(envelope_correlation_loss(recon, quiet, BANDS)) < 1e-4 + 1.0 / windows  # only mixed windows count
    x = (target + 0.3 * noise).requires_grad_(True)
    loss = envelope_correlation_loss(x, target, BANDS)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad[0].abs().sum() > 0 and float(x.grad[1].abs().sum()) == 0.0


def test_envelope_loss_on_short_and_flat_crops() -> None:
    target = _speechlike(frames=20)  # shorter than one window: one window of all of it
    assert float(envelope_correlation_loss(target, target, BANDS)) == pytest.approx(0.0, abs=1e-4)
    flat = torch.full((1, 80, 96), -3.0)  # a steady sound: no shape to follow, and a finite loss
    value = envelope_correlation_loss(flat + 0.01 * torch.randn(1, 80, 96), flat, BANDS)
    assert math.isfinite(float(value)) and 0.0 <= float(value) <= 2.0


def test_compressed_l1_weighs_loud_misses_more() -> None:
    t = torch.tensor([[0.0, -10.0]])
    assert float(compressed_l1(t, t)) == 0.0
    loud = compressed_l1(t + torch.tensor([[1.0, 0.0]]), t)
    quiet = compressed_l1(t + torch.tensor([[0.0, 1.0]]), t)
    assert float(loud) > float(quiet) > 0.0
