"""Image inputs of a near-miss kind are refused saying the one call that fixes them: a channels-first numpy array,
integer pixels that are not uint8/uint16, a file object or bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import mmtok
from mmtok.core.errors import ImageError
from mmtok.image.io import load_image


@pytest.fixture(scope="module")
def tok():
    return mmtok.load("image")


def test_a_channels_first_array_is_told_the_transpose(tok) -> None:
    a = np.random.default_rng(0).random((3, 64, 64), dtype=np.float32)
    with pytest.raises(ImageError, match=r"channels first pass x\.transpose\(1, 2, 0\)"):
        tok.encode(a)
    assert tok.encode(a.transpose(1, 2, 0)).shape == (16, 16)


@pytest.mark.parametrize(("values", "says"), [((0, 255), "uint8"), ((0, 4000), "uint16"), ((-3, 9), "float in")])
def test_integer_pixels_are_told_the_dtype_that_holds_them(tok, values, says) -> None:
    lo, hi = values
    t = torch.linspace(lo, hi, 3 * 64 * 64).round().long().reshape(3, 64, 64)
    with pytest.raises(ImageError, match=rf"got int64 with values {lo}\.\.{hi}: convert it to {says}"):
        tok.encode(t)
    with pytest.raises(ImageError, match=r"convert it to"):
        load_image(t.permute(1, 2, 0).numpy().astype(np.int32))


def test_bytes_and_file_objects_are_told_how_to_open_them(tok) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buf, format="PNG")
    with pytest.raises(TypeError, match=r"PIL\.Image\.open\(io\.BytesIO\(x\)\).*os\.fsdecode\(x\)"):
        tok.encode(buf.getvalue())
    buf.seek(0)
    with pytest.raises(TypeError, match=r"an open file: PIL\.Image\.open\(x\)"):
        tok.encode(buf)
    buf.seek(0)
    assert tok.encode(Image.open(buf)).shape == (16, 16)
