"""The image tokenizer's decode as a Python user calls it: big batches, lists of batches, refused shapes
that say how to mend them, and the README's word on re-encoding a decoded picture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from image_helpers import fitted_tiny_tokenizer

import mmtok
from mmtok.core.errors import ImageError
from mmtok.image.tokenizer import CHUNK, ImageTokenizer

EXAMPLE_PHOTOS = ("astronaut.jpg", "coffee.jpg", "rocket.jpg")


@pytest.fixture(scope="module")
def tok() -> ImageTokenizer:
    return fitted_tiny_tokenizer()


def _codes(tok: ImageTokenizer, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, tok.codebook_size, (n, *tok.grid), generator=g)  # (n, h, w)


def test_decode_of_a_big_batch_runs_the_decoder_chunk_by_chunk(tok: ImageTokenizer) -> None:
    codes = _codes(tok, CHUNK + 8)
    seen: list[int] = []
    hook = tok.decoder.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    try:
        out = tok.decode(codes)
    finally:
        hook.remove()
    assert seen == [CHUNK, 8]  # the decoder's activations never for the whole batch at once
    assert out.shape == (CHUNK + 8, 3, tok.image_size, tok.image_size) and out.dtype == torch.float32
    assert torch.equal(out, torch.cat([tok.decode(codes[:CHUNK]), tok.decode(codes[CHUNK:])]))
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_decode_gives_float32_whatever_the_default_dtype(tok: ImageTokenizer) -> None:
    codes = _codes(tok, 2)
    expected = tok.decode(codes)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        out = tok.decode(codes)
    finally:
        torch.set_default_dtype(before)
    assert out.dtype == torch.float32 and torch.equal(out, expected)


def test_decode_checks_every_code_before_decoding_any(tok: ImageTokenizer) -> None:
    codes = _codes(tok, CHUNK + 2)
    codes[-1, 0, 0] = tok.codebook_size  # out of range in the last chunk only
    calls: list[int] = []
    hook = tok.decoder.register_forward_hook(lambda m, args, out: calls.append(1))
    try:
        with pytest.raises(ImageError, match=rf"0\.\.{tok.codebook_size - 1}"):
            tok.decode(codes)
    finally:
        hook.remove()
    assert calls == []


def test_decode_takes_a_list_of_batches(tok: ImageTokenizer) -> None:
    a, b = _codes(tok, 2, seed=1), _codes(tok, 3, seed=2)
    whole = tok.decode(torch.cat([a, b]))
    assert torch.equal(tok.decode([a, b]), whole)  # e.g. what encode([img]) gave, call by call
    assert torch.equal(tok.decode([a[:1], a[1:2].numpy()]), whole[:2])
    with pytest.raises(ImageError, match=r"grids \[h, w\] or of batches \[b, h, w\].*one at a time"):
        tok.decode([a[0], b])
    with pytest.raises(ImageError, match=r"one shape .*\(4, 4\), \(4, 5\)"):
        tok.decode([a, torch.zeros(1, 4, 5, dtype=torch.long)])


def test_flat_codes_are_refused_saying_how_to_reshape(tok: ImageTokenizer) -> None:
    h, w = tok.grid
    codes = _codes(tok, 1)[0]
    with pytest.raises(ImageError, match=rf"shape \({h * w},\).*codes\.reshape\({h}, {w}\)"):
        tok.decode(codes.flatten())
    with pytest.raises(ImageError, match=r"shape \(6,\).*codes\.reshape\(rows, columns\)"):
        tok.decode(codes.flatten()[:6])
    with pytest.raises(ImageError, match=r"shape \(2, 1, 4, 4\).*codes\.squeeze\(1\)"):
        tok.decode(torch.stack([codes[None], codes[None]]))
    with pytest.raises(ImageError, match=r"got shape \(0,\)$"):
        tok.decode([])
    assert torch.equal(tok.decode(codes.flatten().reshape(h, w)), tok.decode(codes))


def test_readme_says_how_many_codes_a_re_encode_changes() -> None:
    """README's Quickstart: decoding is lossy, about 6 % of a photograph's codes change when re-encoded."""
    root = Path(__file__).parents[1]
    assert "about 6 % change on photographs" in (root / "README.md").read_text(encoding="utf-8")
    shipped = mmtok.load("image")
    codes = torch.stack([shipped.encode(root / "examples" / "data" / name) for name in EXAMPLE_PHOTOS])
    again = shipped.encode(shipped.decode(codes))
    changed = (again != codes).float().mean().item()
    assert 0.03 <= changed <= 0.10, changed
