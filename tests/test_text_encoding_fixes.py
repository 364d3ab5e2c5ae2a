"""Text files saved in another encoding than UTF-8: UTF-16 or UTF-32 without a byte order mark (as Windows tools
write them) is refused naming the file and the encoding to convert from, ambiguous bytes are never guessed at,
a UTF-8 byte order mark is read past, and Latin-1 bytes are named by their line and byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmtok.core.errors import CorpusError
from mmtok.data.documents import open_source

DOCS = [{"segments": ["héllo wörld"]}, {"segments": ["plain text"]}]
TEXT = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in DOCS)


@pytest.mark.parametrize("encoding", ["UTF-16LE", "UTF-16BE", "UTF-32LE", "UTF-32BE"])
def test_a_jsonl_corpus_in_a_wide_encoding_without_a_byte_order_mark_is_refused_naming_it(
        tmp_path: Path, encoding: str) -> None:
    corpus = tmp_path / "windows.jsonl"
    corpus.write_bytes(TEXT.encode(encoding))
    with pytest.raises(CorpusError, match=rf"windows\.jsonl is {encoding} text \(no byte order mark, .*\); a JSONL "
                                          rf"corpus must be UTF-8: convert it first, e\.g\. iconv -f {encoding} -t utf-8"):
        open_source(corpus)


def test_tokenize_refuses_a_utf16_corpus_without_a_mark_before_writing_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main

    corpus, out = tmp_path / "c.jsonl", tmp_path / "out"
    corpus.write_bytes(TEXT.encode("utf-16-le"))
    assert main(["tokenize", str(corpus), "--out", str(out), "--no-progress"]) != 0
    assert f"{corpus} is UTF-16LE text" in capsys.readouterr().err
    assert not out.exists()


def test_train_tokenizer_text_names_utf16_without_a_mark_not_latin1(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.stream.text_command import main

    for name, text in (("accents.txt", "héllo wörld\n" * 20), ("ascii.txt", "hello world\n" * 20)):
        path = tmp_path / name
        path.write_bytes(text.encode("utf-16-le"))
        with pytest.raises(SystemExit):
            main([str(path), "--vocab-size", "300", "--out", str(tmp_path / "bpe")])
        err = capsys.readouterr().err
        assert f"{path} is UTF-16LE text (no byte order mark" in err and "iconv -f UTF-16LE" in err
        assert "latin1" not in err
    assert not (tmp_path / "bpe").exists()


@pytest.mark.parametrize("head", [
    TEXT.encode("utf-8"),  # UTF-8: no NUL at all
    "{}".encode("utf-16-le"),  # too short to tell
    ("中文文本没有拉丁字母" * 20).encode("utf-16-le"),  # UTF-16 without an ASCII character: nothing shows it
    bytes(range(256)) * 4,  # binary: NULs on both sides
    b"a\x00b\x00c\x00d\x00\x00e\x00f\x00g\x00h\x00i",  # NULs on both sides of the pairs
], ids=["utf-8", "short", "no-ascii", "binary", "both-sides"])
def test_bytes_that_are_not_clearly_wide_text_are_not_guessed_at(head: bytes) -> None:
    from mmtok.stream.text_files import unmarked_wide_encoding

    assert unmarked_wide_encoding(head) is None


def test_a_byte_order_mark_still_names_its_encoding() -> None:
    from mmtok.stream.text_files import wide_text

    assert wide_text("{}".encode("utf-16")) == ("UTF-16", "it starts with a UTF-16 byte order mark")
    assert wide_text(TEXT.encode("utf-8")) is None


def test_utf8_with_a_mark_is_read_and_latin1_is_named_by_line_and_byte(tmp_path: Path) -> None:
    from mmtok.data.corpus import tokenize_corpus

    marked = tmp_path / "marked.jsonl"
    marked.write_bytes(b"\xef\xbb\xbf" + TEXT.encode("utf-8"))
    assert tokenize_corpus(marked, tmp_path / "a", progress=False)["docs"] == 2
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(TEXT.encode("latin-1"))
    manifest = tokenize_corpus(latin, tmp_path / "b", progress=False)
    assert manifest["docs"] == 1
    assert manifest["skipped"] == [{"line": 1, "reason": "line is not valid UTF-8 (invalid continuation byte at "
                                                          "byte 16)"}]
    with pytest.raises(CorpusError, match=r"latin\.jsonl:1: line is not valid UTF-8 \(invalid continuation byte at "
                                          r"byte 16\)"):
        tokenize_corpus(latin, tmp_path / "c", progress=False, strict=True)
