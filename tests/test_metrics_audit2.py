"""PSNR and SSIM against closed forms and scikit-image: 8-bit pictures, constant pictures, one grayscale picture."""

from __future__ import annotations

import math

import pytest
import torch

from mmtok.core.metrics import SSIM_K1, psnr, ssim


def _picture(seed: int, size: int = 48) -> torch.Tensor:
    """A [3, size, size] picture in [0, 1]: a bright flat sky over a noisy ground (seeded)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, size, size, generator=g)
    x[:, : size // 2] = 0.9  # a flat region: where E[x²] - E[x]² loses float32 digits
    return x


def test_uint8_pictures_are_read_as_0_to_255() -> None:
    a = torch.full((3, 16, 16), 100, dtype=torch.uint8)
    b = torch.full((3, 16, 16), 110, dtype=torch.uint8)
    assert float(psnr(a, b)) == pytest.approx(20 * math.log10(25.5), abs=1e-4)  # peak 255, error 10
    u = (_picture(0) * 255).round().to(torch.uint8)
    v = ((_picture(0) * 255).round() + torch.randint(-9, 10, u.shape, generator=torch.Generator().manual_seed(1))
         ).clamp(0, 255).to(torch.uint8)
    assert float(psnr(u, v)) == pytest.approx(float(psnr(u.float() / 255, v.float() / 255)), abs=1e-4)
    assert float(ssim(u, v)) == pytest.approx(float(ssim(u.float() / 255, v.float() / 255)), abs=1e-6)
    assert float(ssim(u, v)) > 0.8  # before: 8-bit values clipped to [0, 1] against 0..255 gave about 0


def test_other_integer_pictures_are_refused_with_what_to_pass() -> None:
    a = torch.zeros(3, 16, 16, dtype=torch.int16)
    with pytest.raises(TypeError, match="uint8"):
        psnr(a, a)
    with pytest.raises(TypeError, match="float images"):
        ssim(a, a)


def test_ssim_of_two_constant_pictures_is_the_closed_form() -> None:
    c1 = SSIM_K1**2
    for u, v in ((0.5, 0.6), (0.9, 0.95), (0.2, 0.2)):
        want = (2 * u * v + c1) / (u * u + v * v + c1)  # no structure: only the luminance term is left
        got = float(ssim(torch.full((3, 32, 32), u), torch.full((3, 32, 32), v)))
        assert got == pytest.approx(want, abs=2e-6)  # before: 0.98380 for 0.98361 (float32 cancellation)


def test_psnr_and_ssim_agree_with_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    ref = _picture(2)
    g = torch.Generator().manual_seed(3)
    rec = (ref + 0.04 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    r, d = ref.double().numpy(), rec.double().numpy()
    assert float(psnr(rec, ref)) == pytest.approx(metrics.peak_signal_noise_ratio(r, d, data_range=1), abs=1e-4)
    want = metrics.structural_similarity(r, d, data_range=1, channel_axis=0, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False)
    assert float(ssim(rec, ref)) == pytest.approx(want, abs=5e-6)  # before: 3e-5 off (float32 cancellation)


def test_one_grayscale_picture_hw_is_scored() -> None:
    x = _picture(4)[0]
    y = (x + 0.1).clamp(0, 1)
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)  # before: a conv2d RuntimeError about groups
    assert float(ssim(y, x)) == pytest.approx(float(ssim(y[None], x[None])), abs=1e-7)
    assert float(psnr(y, x)) == pytest.approx(float(psnr(y[None], x[None])), abs=1e-6)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        ssim(torch.zeros(16), torch.zeros(16))


def test_identical_pictures_give_100_db_not_infinity() -> None:
    x = _picture(5)
    assert float(psnr(x, x)) == pytest.approx(100.0)
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
