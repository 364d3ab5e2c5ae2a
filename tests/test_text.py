"""Text tokenizers: exact round trips (property-based), a known answer, BPE folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmtok
import mmtok.cli
from mmtok.core.errors import CheckpointError
from mmtok.stream.text import BPETokenizer, ByteTokenizer, load_text_tokenizer, train_bpe
from mmtok.stream.text_command import main

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a tokenizer turns text into ids and back again",
    "héllo wörld, 你好世界, emoji 🙂 and tabs\tand\nnewlines",
] * 40

# any str, lone surrogates included (hypothesis's text() excludes them by default)
any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()))


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return train_bpe(CORPUS, vocab_size=320)


def test_bytes_known_answer() -> None:
    tok = ByteTokenizer()
    assert tok.encode("A€") == [65, 0xE2, 0x82, 0xAC]
    assert tok.decode([65, 0xE2, 0x82, 0xAC]) == "A€"
    assert tok.encode("\ud800") == [0xED, 0xA0, 0x80]  # lone surrogate: its 3-byte form
    assert tok.vocab_size == 256


@settings(max_examples=300, deadline=None, derandomize=True)
@given(any_text)
def test_bytes_round_trip_every_str(text: str) -> None:
    tok = ByteTokenizer()
    assert tok.decode(tok.encode(text), errors="strict") == text


def test_bytes_invalid_utf8() -> None:
    tok = ByteTokenizer()
    assert tok.decode([0xFF, 65]) == "\ufffdA"
    with pytest.raises(UnicodeDecodeError):
        tok.decode([0xFF], errors="strict")
    with pytest.raises(ValueError, match="256"):
        tok.decode([300])
    with pytest.raises(TypeError):
        tok.encode(b"bytes")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(any_text)
def test_bpe_round_trip_every_str(bpe: BPETokenizer, text: str) -> None:
    assert bpe.decode(bpe.encode(text), errors="strict") == text


def test_bpe_compresses_and_batches(bpe: BPETokenizer) -> None:
    text = CORPUS[0]
    ids = bpe.encode(text)
    assert len(ids) < 0.6 * len(text.encode())  # trained text merges well
    assert max(ids) < bpe.vocab_size == 320
    assert bpe.encode_batch(CORPUS[:3]) == [bpe.encode(t) for t in CORPUS[:3]]
    assert bpe.encode_batch(["x\udc00y"]) == [bpe.encode("x\udc00y")]


def test_bpe_folder_round_trip(bpe: BPETokenizer, tmp_path: Path) -> None:
    folder = bpe.save(tmp_path / "bpe")
    meta = json.loads((folder / "config.json").read_text())
    assert meta["kind"] == "text" and meta["config"]["vocab_size"] == 320
    for again in (BPETokenizer.load(folder), mmtok.load(folder), load_text_tokenizer(folder)):
        assert isinstance(again, BPETokenizer)
        assert again.fingerprint == bpe.fingerprint
        assert again.encode(CORPUS[2]) == bpe.encode(CORPUS[2])
    assert isinstance(load_text_tokenizer("byte"), ByteTokenizer)


def test_bpe_folder_errors(bpe: BPETokenizer, tmp_path: Path) -> None:
    folder = bpe.save(tmp_path / "bpe")
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json"):
        BPETokenizer.load(folder)
    with pytest.raises(CheckpointError, match="does not exist"):
        BPETokenizer.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match="at least 256"):
        train_bpe(["x"], vocab_size=100)


def test_train_command(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text("\n".join(json.dumps({"segments": [{"text": t}, {"image": "a.png"}]}) for t in CORPUS))
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(CORPUS))
    assert main([str(src), str(plain), "--vocab-size", "300", "--out", str(tmp_path / "tok")]) == 0
    tok = BPETokenizer.load(tmp_path / "tok")
    assert tok.vocab_size == 300
    assert tok.provenance["files"] == ["docs.jsonl", "plain.txt"]
    assert mmtok.cli.main(["train-tokenizer", "text", str(plain), "--vocab-size", "280",
                           "--out", str(tmp_path / "tok2")]) == 0
    assert BPETokenizer.load(tmp_path / "tok2").vocab_size == 280
