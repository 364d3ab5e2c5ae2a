"""Image inputs at the API's edges: byte order, Pillow errors, 16-bit and float images past the
working size, very wide or tall images under each size policy, and codes that behave as
ordinary tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from image_helpers import tiny_config

from mmtok.core.errors import ImageError
from mmtok.image.io import load_image
from mmtok.image.tokenizer import ImageTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: one thread is steadier


@pytest.fixture(scope="module")
def tok() -> ImageTokenizer:
    torch.manual_seed(0)
    t = ImageTokenizer(tiny_config())
    t.train()
    t(torch.rand(4, 3, 64, 64))  # k-means init so the codebook is data-shaped
    return t.eval()


def test_big_endian_arrays_are_read_as_their_values() -> None:
    rng = np.random.default_rng(0)
    native = rng.integers(0, 65536, (8, 9, 3)).astype(np.uint16)
    assert torch.equal(load_image(native.astype(">u2")), load_image(native))
    floats = rng.random((8, 9)).astype(np.float32)
    assert torch.equal(load_image(floats.astype(">f4")), load_image(floats))


def test_decode_names_ragged_and_unsigned_codes(tok: ImageTokenizer) -> None:
    with pytest.raises(ImageError, match="ragged"):
        tok.decode([[1, 2], [3]])
    grid = np.arange(16).reshape(4, 4)
    want = tok.decode(torch.from_numpy(grid))
    for dtype in (np.uint16, np.uint32, np.uint64):
        assert torch.equal(tok.decode(grid.astype(dtype)), want)
