"""Damaged code files, empty video frames, edited shard offsets and totals, a damaged verify cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mmtok
from mmtok.cli import main
from mmtok.core.errors import CorpusError, StreamError, UsageError
from mmtok.data.codes import load_codes, save_codes
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.shard_checks import check_document_bounds
from mmtok.data.shards import VERIFIED, is_verified_cache, open_shards

EDITED = "was edited by hand"


# --------------------------------------------------------------------------- damaged code files


def test_a_damaged_code_file_is_named_and_the_others_decoded(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    image = mmtok.load("image")
    meta = {"kind": "image", "model": "image", "fingerprint": image.fingerprint,
            "codebook_size": image.codebook_size, "source": "x.png"}
    good = save_codes(tmp_path / "good.png.npz", np.zeros((2, 2), np.int64), meta)
    blob = good.read_bytes()
    (tmp_path / "short.png.npz").write_bytes(blob[: len(blob) // 2])
    flipped = bytearray(blob)
    flipped[blob.index(b"\x93NUMPY") + 130] ^= 0xFF  # inside the codes' data: a bad CRC
    (tmp_path / "crc.png.npz").write_bytes(bytes(flipped))
    for name in ("short.png.npz", "crc.png.npz"):
        with pytest.raises(UsageError, match=rf"{name}: damaged: "):
            load_codes(tmp_path / name)
    files = [str(tmp_path / n) for n in ("good.png.npz", "short.png.npz", "crc.png.npz")]
    assert main(["decode", *files, "--out", str(tmp_path / "back")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'short.png.npz'}: damaged: File is not a zip file" in err
    assert f"{tmp_path / 'crc.png.npz'}: damaged: Bad CRC-32" in err
    assert [p.name for p in (tmp_path / "back").iterdir()] == ["good.png.decoded.png"]


# --------------------------------------------------------------------------- empty video frames


@pytest.fixture(scope="module")
def il() -> mmtok.Interleaver:
    image = mmtok.load("image")
    return mmtok.Interleaver(None, image=image, video=mmtok.VideoTokenizer(image, fps=1.0, temporal="repeat"))


def _ids(il: mmtok.Interleaver, *names: str | int) -> np.ndarray:
    v0 = il.vocab.range("video").start
    return np.array([il.vocab.id(n) if isinstance(n, str) else v0 + n for n in names])


@pytest.mark.parametrize("names", [
    ("<bos>", "<bov>", "<eof>", 5, "<eol>", "<eof>", "<eov>", "<eos>"),
    ("<bos>", "<bov>", 5, "<eol>", "<eof>", "<eof>", "<eov>", "<eos>"),
    ("<bos>", "<bov>", 5, "<eol>", "<eof>", "<eol>", "<eof>", "<eov>", "<eos>"),
])
def test_an_empty_video_frame_is_refused_or_listed_as_dropped(il: mmtok.Interleaver, names: tuple) -> None:
    ids = _ids(il, *names)
    with pytest.raises(StreamError, match=r"expected a video code( or <eol>, got <eof>|, got <eol>)"):
        il.decode(ids)
    fixed = il.decode(ids, repair=True)
    assert "dropped the empty frame" in [r.action for r in fixed.repairs]
    assert fixed[0]["video_codes"].tolist() == [[[5]]]
    assert il.encode(fixed).ids.tolist() == _ids(il, "<bos>", "<bov>", 5, "<eol>", "<eof>", "<eov>", "<eos>").tolist()


def test_a_repeat_code_after_an_empty_first_frame_is_in_the_first_frame(il: mmtok.Interleaver) -> None:
    rep = il.video.repeat_id
    ids = _ids(il, "<bos>", "<bov>", "<eof>", 7, rep, "<eol>", "<eof>", rep, rep, "<eol>", "<eof>", "<eov>", "<eos>")
    with pytest.raises(StreamError, match=r"^position 2: expected a video code"):  # the empty frame comes first
        il.decode(ids)
    ids[2:3] = _ids(il, 7)  # the empty frame given a code: the repeat is still in the first frame
    with pytest.raises(StreamError, match=r"^position 4: expected a code in a video's first frame") as e:
        il.decode(ids)
    assert e.value.position == 4
    ids = _ids(il, "<bos>", "<bov>", "<eof>", 7, rep, "<eol>", "<eof>", rep, rep, "<eol>", "<eof>", "<eov>", "<eos>")
    fixed = il.decode(ids, repair=True)
    assert fixed[0]["video_codes"].tolist() == [[[7, 7]], [[rep, rep]]]
    assert il.decode(il.encode(fixed).ids).repairs == []


def test_strict_decode_names_the_first_problem_before_a_later_first_frame_repeat(il: mmtok.Interleaver) -> None:
    """A stray token before a video whose first frame holds the repeat code: the stray one, at position 1, is
    named, as the same stream repaired lists it first."""
    rep = il.video.repeat_id
    ids = _ids(il, "<bos>", "<eol>", "<bov>", rep, "<eol>", "<eof>", "<eov>", "<eos>")
    with pytest.raises(StreamError, match=r"^position 1: ") as e:
        il.decode(ids)
    assert e.value.position == 1
    fixed = il.decode(ids, repair=True)
    assert [r.position for r in fixed.repairs] == [1, 3]


# --------------------------------------------------------------------------- shards


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"segments": [f"text number {k}"]}) + "\n" for k in range(6)))
    tokenize_corpus(corpus, tmp_path / "out", shard_tokens=40)
    return tmp_path / "out"


def _edit(path: Path, change: object) -> None:
    obj = json.loads(path.read_text())
    change(obj)  # type: ignore[operator]
    path.write_text(json.dumps(obj))


def test_offsets_moved_off_the_document_bounds_are_refused(shards: Path) -> None:
    s = open_shards(shards)
    bos, eos = s.vocab.id("<bos>"), s.vocab.id("<eos>")
    index = json.loads((shards / "shard-00000.json").read_text())
    offsets = np.asarray(index["offsets"], np.int64)
    check_document_bounds(shards / "shard-00000.bin", index, offsets, bos, eos)
    for moved in (offsets[1] + 1, offsets[2]):  # into a document; onto the next bound (an empty document)
        edited = offsets.copy()
        edited[1] = moved
        with pytest.raises(CorpusError, match=r"shard-00000\.bin: document [01] .*its offsets were changed") as e:
            check_document_bounds(shards / "shard-00000.bin", index, edited, bos, eos)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("change", [
    lambda m: m["tokens"].update(image=None),
    lambda m: m["tokens"].update(text=m["tokens"]["text"] + 5, special=m["tokens"]["special"] - 5),
    lambda m: m["tokens"].update(image=3),
    lambda m: m.update(tokens=[1]),
])
def test_edited_tokens_by_modality_in_the_manifest_are_refused(shards: Path, change: object,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    _edit(shards / "manifest.json", change)
    for verify in (False, True):
        with pytest.raises(CorpusError, match=rf"manifest\.json.*{EDITED}"):
            open_shards(shards, verify=verify)
    assert main(["info", str(shards)]) != 0
    err = capsys.readouterr().err
    assert "manifest.json" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_a_verify_cache_with_a_value_that_is_not_a_number_checks_the_shards_again(shards: Path) -> None:
    open_shards(shards)
    _edit(shards / VERIFIED, lambda c: c["shard-00000.bin"].update(max_id=None))
    assert is_verified_cache(json.loads((shards / VERIFIED).read_text()))  # its shape: --restart still removes it
    assert open_shards(shards).num_docs == 6  # the entry is checked again ...
    assert isinstance(json.loads((shards / VERIFIED).read_text())["shard-00000.bin"]["max_id"], int)  # ... and mended
