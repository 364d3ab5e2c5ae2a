"""``mmtok train-tokenizer text``: it never replaces what is not a text tokenizer, refuses a vocabulary too large
before any work, reads JSONL documents as ``mmtok tokenize`` does, and learns the text as tokenize will see it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from mmtok.cli import main
from mmtok.core.checkpoint import save_checkpoint
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.tokenizer_spec import TokenizerSpec
from mmtok.stream import text_command as text_mod
from mmtok.stream.text import MAX_VOCAB_SIZE, BPETokenizer, train_bpe

WORDS = "the quick brown fox jumps over the lazy dog\n" * 40
PALETTE = "tests.test_interleave:PaletteImages"  # a tiny deterministic image tokenizer


def train(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The command's exit status (argparse's SystemExit too) and its stderr."""
    try:
        code = main(["train-tokenizer", "text", *args])
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def test_an_out_holding_another_checkpoint_or_other_files_is_refused_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "t.txt").write_text(WORDS)
    image = save_checkpoint(tmp_path / "image", kind="image", config={"patch": 4}, tensors={},
                            provenance={"model_version": "image v3"})
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    before = {p: p.read_bytes() for p in [*image.iterdir(), tmp_path / "notes" / "todo.txt"]}

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained before refusing --out")

    monkeypatch.setattr(text_mod, "train_bpe", no_training)
    code, err = train(capsys, str(tmp_path / "t.txt"), "--vocab-size", "300", "--out", str(image))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "holds a checkpoint of kind 'image'" in err and "'image v3'" in err and "format version 1" in err
    code, err = train(capsys, str(tmp_path / "t.txt"), "--vocab-size", "300", "--out", str(tmp_path / "notes"))
    assert code == 2 and "holds files and no checkpoint" in err
    assert {p: p.read_bytes() for p in before} == before  # nothing was replaced
    monkeypatch.undo()
    # an earlier text tokenizer is replaced, as --help says
    assert "an earlier text tokenizer checkpoint" in " ".join(text_mod._parser().format_help().split())
    for size in ("300", "280"):
        assert train(capsys, str(tmp_path / "t.txt"), "--vocab-size", size, "--out", str(tmp_path / "tok"))[0] == 0
    assert BPETokenizer.load(tmp_path / "tok").vocab_size == 280


def test_a_bad_option_is_refused_before_out_is_held_or_recovered(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """As the other trainers do: the command line is checked before --out's lock is taken and what a killed save
    left there is put back, so a refused one touches nothing (and is refused for its option, exit 2)."""
    (tmp_path / "t.txt").write_text(WORDS)
    out = tmp_path / "tok"
    (tmp_path / ".tok.lock").write_text(f"{os.getppid()}\n")  # a live process trains into --out
    bad = [(["--vocab-size", "10"], "--vocab-size must be"), (["--vocab-size", "300", "--min-frequency", "0"],
                                                               "--min-frequency must be")]
    for args, why in bad:
        code, err = train(capsys, str(tmp_path / "t.txt"), *args, "--out", str(out))
        assert code == 2 and why in err and "in use" not in err
    code, err = train(capsys, str(tmp_path / "missing.txt"), "--vocab-size", "300", "--out", str(out))
    assert code == 2 and "no such file" in err
    (tmp_path / ".tok.lock").unlink()
    save_checkpoint(tmp_path / ".tok.old-deadbeef", kind="text", config={}, tensors={})  # a killed save's backup
    code, err = train(capsys, str(tmp_path / "t.txt"), "--vocab-size", "10", "--out", str(out))
    assert code == 2 and "put back" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tok.old-deadbeef", "t.txt"]


def test_a_vocabulary_too_large_is_refused_before_reading_the_corpus(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "latin1.txt").write_bytes("un café\n".encode("latin-1"))  # read: refused for its encoding
    monkeypatch.setattr(text_mod, "train_bpe", lambda *a, **k: pytest.fail("trained"))
    for size in (str(MAX_VOCAB_SIZE + 1), str(2**40)):
        code, err = train(capsys, str(tmp_path / "latin1.txt"), "--vocab-size", size, "--out", str(tmp_path / "o"))
        assert code == 2 and f"at most {MAX_VOCAB_SIZE:,}" in err and "UTF-8" not in err
    assert not (tmp_path / "o").exists()
    monkeypatch.undo()
    with pytest.raises(ValueError, match="at most"):
        train_bpe(["x"], vocab_size=2**40)
    assert MAX_VOCAB_SIZE + 32 == 2**24  # with the special block: the largest size a checkpoint config holds


def test_fewer_ids_than_asked_are_noted_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.txt").write_text(WORDS)
    code, err = train(capsys, str(tmp_path / "t.txt"), "--vocab-size", "5000", "--out", str(tmp_path / "tok"))
    got = BPETokenizer.load(tmp_path / "tok").vocab_size
    assert code == 0 and got < 5000
    assert f"the corpus gave {got:,} ids, not the 5,000 asked for" in err and "--min-frequency (2)" in err


def test_jsonl_documents_are_read_as_tokenize_reads_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "docs.jsonl"
    good = json.dumps({"segments": [{"text": "zqzq " * 30}, "kxkx " * 30, {"image": "a.png"}]})
    lines = [
        "\ufeff" + good,  # a byte order mark before line 1
        '{"segments": null}', '{"segments": 5}', '{"segments": "abc"}', '{"segments": {"text": "x"}}', "[1, 2]",
        json.dumps({"segments": [{"text": 5}, "wvwv " * 30]}),  # tokenize skips the whole document
        json.dumps({"segments": ["wvwv " * 30, {"picture": "a.png"}]}),
        "",
    ]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, err = train(capsys, str(corpus), "--vocab-size", "300", "--out", str(tmp_path / "tok"))
    assert code == 0
    assert f"skipped 7 of 8 documents of {corpus}, as mmtok tokenize skips them (first: {corpus}:2: " in err
    tok = BPETokenizer.load(tmp_path / "tok")
    assert len(tok.encode(" zqzq")) == len(tok.encode(" kxkx")) == 1  # line 1 was learned, BOM and all
    assert len(tok.encode(" wvwv")) > 1  # a document tokenize skips teaches nothing
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")  # tokenize reads it: present, so line 1 stays
    manifest = tokenize_corpus(corpus, tmp_path / "shards", tokenizers=TokenizerSpec(image=PALETTE))
    assert [s["line"] for s in manifest["skipped"]] == [2, 3, 4, 5, 6, 7, 8]


def test_a_media_segment_with_options_only_video_takes_is_skipped_as_tokenize_skips_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "docs.jsonl"
    lines = [json.dumps({"segments": ["zqzq " * 30, {"image": "a.png"}]}),
             json.dumps({"segments": ["wvwv " * 30, {"image": "a.png", "chunk_seconds": 2}]})]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, err = train(capsys, str(corpus), "--vocab-size", "300", "--out", str(tmp_path / "tok"))
    assert code == 0 and f"skipped 1 of 2 documents of {corpus}" in err and f"{corpus}:2: segment 1 must be" in err
    tok = BPETokenizer.load(tmp_path / "tok")
    assert len(tok.encode(" zqzq")) == 1 and len(tok.encode(" wvwv")) > 1
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    manifest = tokenize_corpus(corpus, tmp_path / "shards", tokenizers=TokenizerSpec(image=PALETTE))
    assert [s["line"] for s in manifest["skipped"]] == [2]


def test_a_corpus_of_skipped_documents_is_refused_saying_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.jsonl").write_text('{"segments": null}\n5\n')
    code, err = train(capsys, str(tmp_path / "bad.jsonl"), "--vocab-size", "300", "--out", str(tmp_path / "tok"))
    assert code == 2 and "no text to learn from" in err and "skipped 2 of 2 documents" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "tok").exists()


def test_crlf_text_is_learned_as_tokenize_will_see_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "crlf.txt").write_bytes(b"hello there\r\n" * 60)
    assert train(capsys, str(tmp_path / "crlf.txt"), "--vocab-size", "300", "--out", str(tmp_path / "tok"))[0] == 0
    tok = BPETokenizer.load(tmp_path / "tok")
    assert [tok.token_bytes(i) for i in tok.encode("hello there\r\n")][-1] == b"\r\n"
