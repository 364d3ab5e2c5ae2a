"""Corpora as people have them: a messy JSONL read as documented; a compressed file, a JSON array, JSON spread over
lines, standard input and a folder of JSONL files refused before any work, saying what to do; a media path that is
a URL or starts with ``~`` skipped with the reason; and ``--strict`` finding a bad document before any is tokenized."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from PIL import Image

from mmtok.core.errors import CorpusError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.media_paths import MediaPaths
from mmtok.data.tokenizer_spec import TokenizerSpec
from tests.test_corpus_reading_settings import small_image  # noqa: F401 (a fixture)

DOC = b'{"segments": ["ab"]}'




def test_a_messy_jsonl_is_read_as_documented(tmp_path: Path) -> None:
    lines = [b"\xef\xbb\xbf" + DOC + b"\r\n", b"\n", b"  \t \r\n", b"not json\n", b"42\n", b'"text"\n',
             b'{"segments": [{"text": "x", "lang": "en"}]}\n', b'{"segments": [], "id": 3}\n', DOC + b"\n",
             b'{"segments": ["abc"], "id": "kept"}\n', DOC]  # the last without a newline
    (tmp_path / "docs.jsonl").write_bytes(b"".join(lines))
    m = tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "out")
    assert m["docs"] == 4 and m["tokens"]["text"] == 2 + 2 + 3 + 2 and m["tokens"]["special"] == 8
    assert [s["line"] for s in m["skipped"]] == [4, 5, 6, 7, 8]
    assert "'lang'" in m["skipped"][3]["reason"] and m["skipped"][4]["reason"] == "no segments"


@pytest.mark.parametrize(("pack", "said"), [(gzip.compress, r"gzip-compressed.*gunzip -k docs\.jsonl\.gz"),
                                            (lambda b: b"BZh91AY&SY" + b, r"bzip2-compressed")],
                         ids=["gzip", "bzip2"])
def test_a_compressed_corpus_is_refused_before_any_work(tmp_path: Path, pack, said: str) -> None:
    corpus = tmp_path / "docs.jsonl.gz"
    corpus.write_bytes(pack(DOC + b"\n"))
    with pytest.raises(CorpusError, match=said):
        tokenize_corpus(corpus, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # no folder of skipped lines


@pytest.mark.parametrize(("name", "text", "said"), [
    ("arr.json", '[{"segments": ["a"]},\n {"segments": ["b"]}]', r"arr\.json holds a JSON array.*> arr\.jsonl"),
    ("docs.jsonl", '\ufeff  [{"segments": ["a"]}]', r"JSON array.*jq -c '\.\[\]' docs\.jsonl > docs\.lines\.jsonl"),
    ("one.json", '{\n  "segments": ["a"]\n}\n', r"JSON spread over several lines.*jq -c \. one\.json > one\.jsonl"),
], ids=["array", "array-in-jsonl", "spread-object"])
def test_json_that_is_not_lines_is_refused_naming_a_conversion(tmp_path: Path, name: str, text: str,
                                                               said: str) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError, match=said):
        tokenize_corpus(tmp_path / name, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "lines.json").write_text('{"segments": ["a"]}\n')  # JSONL under a .json name is read
    assert tokenize_corpus(tmp_path / "lines.json", tmp_path / "ok")["docs"] == 1


def test_standard_input_and_a_folder_of_jsonl_say_what_to_do(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CorpusError, match=r"not read from standard input \('-'\).*save it to a file first"):
        tokenize_corpus("-", tmp_path / "out")
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_bytes(DOC + b"\n")
    with pytest.raises(CorpusError, match=r"no state.json.*it holds a\.jsonl, b\.jsonl: tokenize each"):
        tokenize_corpus(tmp_path, tmp_path / "out")


def test_a_url_or_a_home_folder_path_says_why_it_names_no_file(tmp_path: Path) -> None:
    where = MediaPaths(tmp_path, allow_outside=False)
    with pytest.raises(ValueError, match=r"'https://example\.com/a\.jpg' does not exist: it is a URL, and mmtok "
                                         "downloads nothing"):
        where.media("https://example.com/a.jpg", "segment 0: image file")
    with pytest.raises(ValueError, match=r"'~/a\.jpg' does not exist: a leading '~' is not expanded"):
        where.media("~/a.jpg", "segment 0: image file")
    with pytest.raises(ValueError, match=r"'a\.jpg' does not exist$"):
        where.media("a.jpg", "segment 0: image file")


def test_strict_finds_a_bad_line_before_any_document_is_tokenized(tmp_path: Path) -> None:
    lines = [b'{"segments": ["doc %d"]}' % i for i in range(1, 61)]
    lines[54] = b"not json"
    (tmp_path / "docs.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(CorpusError, match=r"docs\.jsonl:55: invalid JSON .*found before any document was tokenized"):
        tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "out", shard_tokens=20, strict=True)
    assert not (tmp_path / "out").exists()  # not 54 documents' shards first


def test_strict_finds_a_missing_picture_before_any_work(tmp_path: Path, small_image: str) -> None:  # noqa: F811 (the imported fixture)
    Image.new("RGB", (40, 40), (200, 80, 20)).save(tmp_path / "p.png")
    docs = [{"segments": ["x", {"image": "p.png"}]}] * 6 + [{"segments": [{"image": "gone.png"}]}]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    with pytest.raises(CorpusError, match=r"docs\.jsonl:7: segment 0: image file 'gone\.png' does not exist "
                                          r"\(found before any"):
        tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "out", tokenizers=TokenizerSpec(image=small_image),
                        shard_tokens=10, strict=True, workers=2)
    assert not (tmp_path / "out").exists()
    m = tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "out", tokenizers=TokenizerSpec(image=small_image),
                        shard_tokens=10)
    assert m["docs"] == 6 and [s["line"] for s in m["skipped"]] == [7]
