"""What decides which media a tokenize run reads is part of the run: ``--allow-outside`` and
``MMTOK_MAX_IMAGE_PIXELS`` changed between a run and its resumption (or its re-run) are refused, naming them;
``--strict`` refuses a folder whose earlier run skipped documents. And a few corpus edges: a line of only a byte
order mark is blank, skip reasons say what a media path is, ids the shards' dtype cannot hold are refused, a
launcher's RANK that is no number is said so, and ``mmtok info`` knows a Parquet export by its bytes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmtok
from mmtok.core.errors import CorpusError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.run_key import run_key
from mmtok.data.shards import ShardWriter
from mmtok.data.tokenizer_spec import TokenizerSpec
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.stream.vocab import Modality, Vocabulary

BOM = b"\xef\xbb\xbf"


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    return str(mmtok.save(ImageTokenizer(ImageTokenizerConfig(image_size=32)).eval(),
                          tmp_path_factory.mktemp("models") / "small"))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Twelve documents in ``c/``; every third names a picture outside that folder."""
    (tmp_path / "c").mkdir()
    Image.new("RGB", (40, 40), (10, 200, 30)).save(tmp_path / "outside.png")
    docs = [{"segments": [f"doc {k} " * 5, *([{"image": "../outside.png"}] if k % 3 == 0 else [])]} for k in range(12)]
    path = tmp_path / "c" / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _spec(small_image: str) -> TokenizerSpec:
    return TokenizerSpec(text="byte", image=small_image)


def _killed(folder: Path) -> None:
    """What a run killed before its end leaves: no manifest, its last shard never committed."""
    (folder / "manifest.json").unlink()
    sorted(folder.glob("shard-*.json"))[-1].unlink()


def test_allow_outside_is_part_of_a_killed_run(corpus: Path, tmp_path: Path, small_image: str) -> None:
    out = tmp_path / "out"
    m = tokenize_corpus(corpus, out, tokenizers=_spec(small_image), shard_tokens=60)
    assert m["docs"] == 8 and len(m["skipped"]) == 4 and m["shards"][2:]
    _killed(out)
    with pytest.raises(CorpusError, match=r"holds shards of a different run \(--allow-outside not given vs given\)"):
        tokenize_corpus(corpus, out, tokenizers=_spec(small_image), shard_tokens=60, allow_outside=True)
    whole = tokenize_corpus(corpus, tmp_path / "whole", tokenizers=_spec(small_image), shard_tokens=60,
                            allow_outside=True)
    assert whole["docs"] == 12 and whole["reading"] == {"allow_outside": True}
    assert tokenize_corpus(corpus, tmp_path / "whole", tokenizers=_spec(small_image), shard_tokens=60,
                           allow_outside=True)["docs"] == 12  # the same run again: its manifest


def test_allow_outside_and_the_pixel_limit_are_part_of_a_finished_run(corpus: Path, tmp_path: Path, small_image: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    done = tokenize_corpus(corpus, out, tokenizers=_spec(small_image))
    assert "reading" not in done  # a run without them keys, and records, as before
    with pytest.raises(CorpusError, match=r"other settings \(saved vs now: --allow-outside not given vs given\)"):
        tokenize_corpus(corpus, out, tokenizers=_spec(small_image), allow_outside=True)
    monkeypatch.setenv("MMTOK_MAX_IMAGE_PIXELS", "500000000")
    with pytest.raises(CorpusError, match=r"MMTOK_MAX_IMAGE_PIXELS unset vs 500000000"):
        tokenize_corpus(corpus, out, tokenizers=_spec(small_image))


def test_a_default_run_keys_as_before() -> None:
    key = run_key((0, 1), 10, np.dtype(np.uint16), "ab" * 32, Vocabulary(256), {})
    assert key == run_key((0, 1), 10, np.dtype(np.uint16), "ab" * 32, Vocabulary(256))
    assert "reading" not in key


def test_strict_refuses_what_an_earlier_run_skipped(corpus: Path, tmp_path: Path, small_image: str) -> None:
    out = tmp_path / "out"
    tokenize_corpus(corpus, out, tokenizers=_spec(small_image), shard_tokens=60)
    with pytest.raises(CorpusError, match=r"docs\.jsonl:1: segment 1: image file '\.\./outside\.png' is outside .* "
                                          r"\(and 3 more\): the earlier run into .* skipped it, and --strict skips"):
        tokenize_corpus(corpus, out, tokenizers=_spec(small_image), shard_tokens=60, strict=True)
    _killed(out)  # and a killed one
    with pytest.raises(CorpusError, match=r"the earlier run into .* skipped it"):
        tokenize_corpus(corpus, out, tokenizers=_spec(small_image), shard_tokens=60, strict=True)


def test_a_line_of_only_a_byte_order_mark_is_blank(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(BOM)
    with pytest.raises(CorpusError, match="holds no documents"):
        tokenize_corpus(empty, tmp_path / "o1")
    one = tmp_path / "one.jsonl"
    one.write_bytes(BOM + b"\r\n" + b'{"segments": ["a"]}\n')
    m = tokenize_corpus(one, tmp_path / "o2")
    assert m["docs"] == 1 and m["skipped"] == []


def test_skip_reasons_say_what_a_media_path_is(tmp_path: Path, small_image: str) -> None:
    (tmp_path / "media").mkdir()
    docs = [{"segments": ["a", {"image": "media"}]}, {"segments": ["b", {"image": "media/x.png\u0000y"}]}]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    reasons = [s["reason"] for s in tokenize_corpus(path, tmp_path / "out", tokenizers=_spec(small_image))["skipped"]]
    assert reasons == ["segment 1: image file 'media' is a folder, not a file",
                       "segment 1: image file 'media/x.png\\x00y' holds a NUL character, which no file name can"]


def test_ids_the_shards_cannot_hold_are_refused(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path, "r", np.dtype(np.uint16), 100, 1, 0)
    counts = np.zeros(len(Modality), np.int64)
    for ids, said in (([257, 70000], r"ids must lie in 0\.\.65,535 .* got 257\.\.70,000"),
                      ([-1, 3], r"got -1\.\.3"), ([1.5], "ids must be integers, got float64")):
        with pytest.raises(CorpusError, match=said):
            w.add(1, np.array(ids), counts)
    w.add(1, np.array([0, 65535]), counts)
    w.commit(2)
    assert np.fromfile(tmp_path / "shard-00000.bin", np.uint16).tolist() == [0, 65535]


def test_a_rank_that_is_no_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"segments": ["a"]}\n')
    monkeypatch.setenv("RANK", "abc")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(CorpusError, match="RANK='abc' and WORLD_SIZE='2' must be whole numbers"):
        tokenize_corpus(path, tmp_path / "out")


def test_info_knows_a_parquet_export_by_its_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyarrow")
    from mmtok.cli import main

    path = tmp_path / "d.jsonl"
    path.write_text('{"segments": ["abc"]}\n')
    tokenize_corpus(path, tmp_path / "shards")
    assert main(["export", str(tmp_path / "shards"), "--to", "parquet", "--out", str(tmp_path / "noext")]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "noext")]) == 0
    assert "parquet (mmtok export --to parquet)" in capsys.readouterr().out
    (tmp_path / "notes.json").write_text("{}")
    assert main(["info", str(tmp_path / "notes.json")]) == 2
    assert "is a file 'mmtok info' does not describe" in capsys.readouterr().err
    assert os.path.isfile(tmp_path / "noext")
