"""The streamed sinc resampler's kernels: made once per pair of rates and kept (mmtok.audio.resample), the same
numbers as torchaudio, and usable whether the first call came inside inference mode or not."""

from __future__ import annotations

import torch
import torchaudio.functional as AF

from mmtok.audio.resample import _sinc_kernel, resampler


def test_a_kernel_is_made_once_per_pair_of_rates() -> None:
    _sinc_kernel.cache_clear()
    first = _sinc_kernel(441, 160)
    assert _sinc_kernel(441, 160)[0] is first[0]
    assert _sinc_kernel.cache_info().misses == 1


def test_a_kernel_first_made_under_inference_mode_serves_a_signal_with_gradients() -> None:
    _sinc_kernel.cache_clear()
    x = torch.randn(4410, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        kept = resampler(44100, 16000).push(x, last=True)
    assert not _sinc_kernel(441, 160)[0].is_inference()
    y = x.clone().requires_grad_(True)
    out = resampler(44100, 16000).push(y, last=True)
    out.sum().backward()  # the kept kernel can be saved for backward
    assert y.grad is not None and torch.equal(out.detach(), kept)
    torch.testing.assert_close(kept, AF.resample(x, 44100, 16000), rtol=0, atol=1e-6)
