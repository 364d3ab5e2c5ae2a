"""Careless inputs to the stream layer and the shipped-name lookup get clear answers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import mmtok
from mmtok.core.errors import DocumentError, ImageError, StreamError
from mmtok.stream.interleave import Interleaver
from mmtok.stream.vocab import Vocabulary


@pytest.fixture
def il() -> Interleaver:
    return Interleaver(Vocabulary(256, ranges={"image": 8, "audio": 8}))


def test_float_ids_are_refused_not_truncated(il: Interleaver) -> None:
    ids = il.encode(["hi"]).ids
    with pytest.raises(StreamError, match="must be integers, got dtype float"):
        il.decode(ids.double() + 0.4)
    with pytest.raises(StreamError, match="must be integers"):
        il.stream(np.asarray(ids, dtype=np.float32))
    assert il.decode(ids.numpy())[0]["text"] == "hi"  # integer arrays of any kind still work


def test_float_codes_are_refused(il: Interleaver) -> None:
    with pytest.raises(StreamError, match="must be integers"):
        il.encode(["x", {"image_codes": torch.tensor([[0.0, 1.5], [2.0, 3.0]])}])
    with pytest.raises(StreamError, match="must be integers"):
        il.encode([{"audio_codes": [1.0, 2.0]}])
    stream = il.encode([{"image_codes": torch.tensor([[0, 1], [2, 3]])}])
    assert il.decode(stream)[0]["image_codes"].tolist() == [[0, 1], [2, 3]]


def test_an_empty_grid_is_a_clear_decode_error() -> None:
    tok = mmtok.load("image")
    with pytest.raises(ImageError, match="at least 1×1 codes"):
        tok.decode(torch.zeros(0, 4, dtype=torch.long))


def test_a_folder_named_like_a_shipped_model_does_not_hide_it(tmp_path: Path) -> None:
    """``mmtok.load("image")`` in a working folder that happens to hold an ``image/`` folder of pictures."""
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "cat.png").write_bytes(b"not a checkpoint")
    (tmp_path / "video").mkdir()
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert isinstance(mmtok.load("image"), mmtok.ImageTokenizer)
        assert isinstance(mmtok.load("video"), mmtok.VideoTokenizer)
    finally:
        os.chdir(here)


@pytest.mark.parametrize("doc", [
    [{"image_codes": [[1, 8]]}],  # a code outside the image range
    [{"audio_codes": [-1]}],
    [{"image_codes": [1, 2]}],  # wrong number of dimensions
    [{"image_codes": np.zeros((0, 0), np.int64)}],  # empty
    [{"imgae": "x.png"}],  # a misspelt key
    [{"video_codes": np.zeros((1, 2, 2), np.int64)}],  # no video range in this vocabulary
    [{"image": "photo.png"}],  # no image tokenizer given
    [Path("photo.xyz")],  # a path of no known media kind
    [{"text": "x", "image_codes": [[1]]}],  # two kinds in one tagged segment
])
def test_bad_documents_raise_one_error_family(il: Interleaver, doc: list) -> None:
    """Every refusal of a document's content is a DocumentError: a ValueError that
    ``except mmtok.MmtokError`` also catches, naming the segment."""
    with pytest.raises(DocumentError, match="segment 0"):
        il.encode(doc)
