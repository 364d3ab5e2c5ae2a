"""Every shipped tokenizer keeps the written MediaTokenizer contract, and the Interleaver takes any
object that keeps it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import mmtok
from mmtok.core.protocol import GridTokenizer, MediaTokenizer, RateTokenizer
from mmtok.stream.vocab import tokenizer_fingerprint

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


def _sample(name: str) -> object:
    if name == "image":
        return str(DATA / "coffee.jpg")
    if name == "audio":
        return torch.from_numpy(np.sin(np.linspace(0, 2000, 16000)).astype(np.float32) * 0.3)
    return str(DATA / "pan.mp4")


@pytest.mark.parametrize(("name", "refinement"), [("image", GridTokenizer), ("audio", RateTokenizer),
                                                  ("video", GridTokenizer)])
def test_shipped_tokenizers_keep_the_contract(name: str, refinement: type) -> None:
    tok = mmtok.load(name)
    assert isinstance(tok, MediaTokenizer) and isinstance(tok, refinement)
    k = tok.codebook_size
    assert isinstance(k, int) and k > 0
    codes = tok.encode(_sample(name), sample_rate=16000) if name == "audio" else tok.encode(_sample(name))
    assert codes.dtype == torch.int64 and int(codes.min()) >= 0 and int(codes.max()) < k
    back = tok.decode(codes)
    assert isinstance(back, torch.Tensor) and back.numel() > 0 and torch.isfinite(back).all()
    fp = tok.fingerprint
    assert isinstance(fp, str) and len(fp) == 16 and fp == tokenizer_fingerprint(tok)
    assert mmtok.load(name).fingerprint == fp  # stable across loads
    if refinement is GridTokenizer:
        assert tuple(codes.shape[-2:]) == tok.grid
    else:
        assert tok.sample_rate == 16000 and tok.tokens_per_second == 50
        assert codes.shape == (50,)  # one second


def test_the_fingerprint_changes_with_the_weights() -> None:
    tok = mmtok.load("image")
    before = tok.fingerprint
    with torch.no_grad():
        tok.vq.embed[0, 0] += 1.0
    assert tok.fingerprint != before


class Palette:
    """A user's own tokenizer: no mmtok base class, only the protocol's members."""

    codebook_size = 4
    grid = (2, 2)
    fingerprint = "palette-v1"

    def encode(self, x: object) -> torch.Tensor:
        return torch.as_tensor(x).long()

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.clone()


def test_a_users_tokenizer_fits_the_interleaver() -> None:
    tok = Palette()
    assert isinstance(tok, GridTokenizer) and not isinstance(tok, RateTokenizer)
    il = mmtok.Interleaver(None, image=tok)
    stream = il.encode(["four colours ", {"image": [[0, 1], [2, 3]]}])
    segments = il.decode(stream)
    assert segments[1]["image_codes"].tolist() == [[0, 1], [2, 3]]
    assert il.vocab.sources["image"] == "palette-v1"


def test_an_object_without_decode_is_not_a_media_tokenizer() -> None:
    class EncodeOnly:
        codebook_size = 4
        fingerprint = "x"

        def encode(self, x: object) -> torch.Tensor:
            return torch.zeros(1, dtype=torch.long)

    assert not isinstance(EncodeOnly(), MediaTokenizer)
