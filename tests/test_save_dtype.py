"""A tokenizer saved after ``.half()`` (or ``.to(torch.bfloat16)``) loads back in that dtype, its codebook float32
as it keeps it, so the copy gives the saved tokenizer's codes; a float32 checkpoint loads as float32 whatever the
caller's default dtype."""

from __future__ import annotations

import copy

import pytest
import torch

import mmtok


@pytest.fixture(scope="module")
def image():
    return mmtok.load("image")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_half_tokenizer_saved_loads_back_half_with_its_codes(image, tmp_path, dtype) -> None:
    low = copy.deepcopy(image).to(dtype)
    mmtok.save(low, tmp_path / "low")
    back = mmtok.load(tmp_path / "low")
    assert back.dtype == dtype and back.vq.embed.dtype == torch.float32
    x = torch.rand(6, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    assert torch.equal(back.encode(x), low.encode(x))
    assert back.fingerprint == low.fingerprint


def test_a_float32_checkpoint_loads_float32_under_a_float64_default(image, tmp_path) -> None:
    mmtok.save(image, tmp_path / "f32")
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        back = mmtok.load(tmp_path / "f32")
    finally:
        torch.set_default_dtype(before)
    assert back.dtype == torch.float32 and back.fingerprint == image.fingerprint
