"""An image tensor held channels last is refused with the permute that fixes it, as a batch of them is."""

from __future__ import annotations

import pytest
import torch

from mmtok.core.errors import ImageError
from mmtok.image.io import load_image


def test_a_channels_last_tensor_is_told_how_to_permute() -> None:
    with pytest.raises(ImageError, match=r"\[3, H, W\].*; for channels last pass x\.permute\(2, 0, 1\)"):
        load_image(torch.rand(64, 48, 3))
    assert load_image(torch.rand(64, 48, 3).permute(2, 0, 1)).shape == (3, 64, 48)


def test_a_tensor_of_no_image_shape_gets_no_permute_hint() -> None:
    with pytest.raises(ImageError) as said:
        load_image(torch.rand(7, 64, 48))
    assert "permute" not in str(said.value)
