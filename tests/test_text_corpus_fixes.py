"""Text and corpus inputs: a long run without spaces trains a BPE in pieces (the vocabulary of ordinary text
unchanged), a document of an invalid shape brings no tokenizer, UTF-16 JSONL is refused, a null ``images``
list is a text-only row, a run that tokenizes nothing says so, ``.JSONL`` is JSONL, and a byte order mark
where two files were joined is stripped."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmtok.cli import main
from mmtok.core.errors import CorpusError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.documents import BOM, media_kinds, open_source
from mmtok.stream import text as text_mod
from mmtok.stream.text import TRAIN_PIECE_CHARS, BPETokenizer, train_bpe
from tests.test_text_train import train

# --------------------------------------------------------------------------- BPE training in pieces


def test_a_long_run_without_spaces_reaches_the_trainer_in_bounded_pieces() -> None:
    run = "w" * 200_000 + "\u4e00\u4e8c" * 30_000  # a 2.5-minute training before: one word of 260,000
    pieces = list(text_mod._pieces(run))
    assert "".join(pieces) == run
    assert max(len(p) for p in pieces) == TRAIN_PIECE_CHARS
    tok = train_bpe(["w" * 120_000], vocab_size=270)  # more than 10 s in one piece; one word of 2,048 now
    assert tok.decode(tok.encode("w" * 5000)) == "w" * 5000


def test_long_texts_are_cut_where_a_word_starts_and_short_ones_not_at_all() -> None:
    text = ("lorem  ipsum\r\n dolor\tsit, amet " * 400)[: 3 * TRAIN_PIECE_CHARS]
    pieces = list(text_mod._pieces(text))
    assert "".join(pieces) == text and len(pieces) > 1
    for before, after in itertools.pairwise(pieces):
        assert len(before) <= TRAIN_PIECE_CHARS and after[0] in " \t\r\n" and not after[1].isspace()
    assert list(text_mod._pieces("x" * TRAIN_PIECE_CHARS)) == ["x" * TRAIN_PIECE_CHARS]
    assert list(text_mod._pieces("")) == [""]


def test_the_vocabulary_is_the_one_whole_texts_give(monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(0)
    words = ["".join(rnd.choice("abcdeé1'") for _ in range(rnd.randint(1, 8))) for _ in range(2500)]
    seps = [" ", "  ", "\n", " \n ", "\t", ", ", " '", "\r\n", "\u3000", "\x1c "]
    long = "".join(w + rnd.choice(seps) for w in words)  # over 5 pieces, every cut where a word starts
    texts = ["the quick brown fox\n", long, long[:1500], "jumps over the lazy dog\n"]
    assert len(list(text_mod._pieces(long))) > 5
    pieced = train_bpe(texts, vocab_size=600)
    monkeypatch.setattr(text_mod, "_pieces", lambda t: iter([t]))  # every text whole, as the trainer had them
    whole = train_bpe(texts, vocab_size=600)
    assert pieced.fingerprint == whole.fingerprint and pieced.vocab_size == 600


# --------------------------------------------------------------------------- train-tokenizer text's files


def test_an_upper_case_jsonl_suffix_is_read_as_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "up.JSONL"
    corpus.write_text(json.dumps({"segments": ["zqzq " * 40]}) + "\n" + "not json\n")
    code, err = train(capsys, str(corpus), "--vocab-size", "300", "--out", str(tmp_path / "tok"))
    assert code == 0 and f"skipped 1 of 2 documents of {corpus}" in err
    tok = BPETokenizer.load(tmp_path / "tok")
    learned = {tok.token_bytes(i) for i in range(256, tok.vocab_size)}
    assert b" zqzq" in learned and not any(b'"' in t or b"segments" in t for t in learned)  # no JSON syntax


def test_utf16_and_parquet_files_are_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    u16 = tmp_path / "u16.jsonl"
    u16.write_bytes(json.dumps({"segments": ["hi"]}).encode("utf-16"))  # with its byte order mark
    code, err = train(capsys, str(u16), "--vocab-size", "300", "--out", str(tmp_path / "a"))
    assert code == 2 and f"{u16} is UTF-16 text" in err and "latin1" not in err
    table = tmp_path / "rows.PARQUET"
    pq.write_table(pa.table({"texts": [["hi"]], "images": [[None]]}), table)
    code, err = train(capsys, str(table), "--vocab-size", "300", "--out", str(tmp_path / "b"))
    assert code == 2 and f"{table} is a Parquet file" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_byte_order_mark_on_a_joined_line_is_not_learned(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    line = BOM + json.dumps({"segments": ["zqzq " * 40]}).encode() + b"\n"
    corpus = tmp_path / "joined.jsonl"
    corpus.write_bytes(line + line)  # two files that each start with a byte order mark
    code, err = train(capsys, str(corpus), "--vocab-size", "300", "--out", str(tmp_path / "tok"))
    assert code == 0 and "skipped" not in err
    tok = BPETokenizer.load(tmp_path / "tok")
    assert b"\xef\xbb\xbf" not in b"".join(tok.token_bytes(i) for i in range(256, tok.vocab_size))


# --------------------------------------------------------------------------- tokenize


def test_a_document_of_an_invalid_shape_brings_no_tokenizer(tmp_path: Path) -> None:
    corpus = tmp_path / "b.jsonl"
    docs = [{"segments": ["hello"]}, {"segments": [{"text": "caption", "image": "none.png"}]},
            {"segments": ["a", {"image": "x.png", "chunk_seconds": 1}, {"audio": "y.wav"}]}]
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    assert media_kinds(open_source(corpus)) == (set(), 3)
    m = tokenize_corpus(corpus, tmp_path / "s")
    assert m["docs"] == 1 and m["vocab"]["size"] == 288 and m["tokenizers"]["image"] is None
    # a valid media segment before the invalid one is asked for, as the run asks for its tokenizer first
    corpus.write_text(json.dumps({"segments": [{"image": "x.png"}, {"text": "a", "audio": "y.wav"}]}) + "\n")
    assert media_kinds(open_source(corpus)) == ({"image"}, 1)


def test_a_utf16_jsonl_is_refused_before_any_work(tmp_path: Path) -> None:
    for encoding, name in (("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32")):
        corpus = tmp_path / f"{encoding}.jsonl"
        corpus.write_bytes("\ufeff".encode(encoding) + '{"segments": ["hi"]}\n'.encode(encoding))
        with pytest.raises(CorpusError, match=rf"{encoding}\.jsonl is {name} text .* must be UTF-8"):
            tokenize_corpus(corpus, tmp_path / encoding)
        assert not (tmp_path / encoding).exists()


def test_null_images_are_a_text_only_row(tmp_path: Path) -> None:
    pandas_like = tmp_path / "texts.parquet"  # an images column of nulls, as pandas writes a text-only table
    pq.write_table(pa.table({"texts": [["a b"], ["c", None]], "images": pa.nulls(2)}), pandas_like)
    m = tokenize_corpus(pandas_like, tmp_path / "a")
    assert (m["docs"], m["skipped"], m["tokens"]["total"]) == (2, [], 8)
    rows = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"texts": [["only text"], ["a", "b"], None], "images": [None, [None], None]},
                            schema=pa.schema([("texts", pa.list_(pa.string())), ("images", pa.list_(pa.string()))])),
                   rows)
    m = tokenize_corpus(rows, tmp_path / "b")
    assert m["docs"] == 1
    assert m["skipped"] == [{"line": 2, "reason": "expected parallel lists texts and images of one length "
                                                  "(got 2 texts and 1 images)"},
                            {"line": 3, "reason": "no segments"}]


def test_a_run_that_tokenizes_nothing_says_so_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('nope\n{"segments": 1}\nbad\n')
    code = main(["tokenize", str(corpus), "--out", str(tmp_path / "s"), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2 and json.loads(out)["skipped"] == 3
    said = [line for line in err.splitlines() if line.startswith("mmtok: error:")]
    assert said == [f"mmtok: error: {corpus}: no document was tokenized, all 3 were skipped; the most common "
                    f"reason (2 of 3, first at {corpus}:1): invalid JSON (Expecting value at column 1)"]
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["docs"] == 0  # what was written stays
    corpus.write_text('{"segments": ["hi"]}\nbad\n')
    assert main(["tokenize", str(corpus), "--out", str(tmp_path / "t"), "--no-progress"]) == 0
    assert "mmtok: error" not in capsys.readouterr().err


def test_a_byte_order_mark_where_two_files_were_joined_is_stripped(tmp_path: Path) -> None:
    line = BOM + json.dumps({"segments": ["hi"]}).encode() + b"\n"
    corpus = tmp_path / "joined.jsonl"
    corpus.write_bytes(line + b"\n" + line)
    m = tokenize_corpus(corpus, tmp_path / "s")
    assert (m["docs"], m["skipped"]) == (2, [])
