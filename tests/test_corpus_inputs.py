"""Odd corpus inputs tokenize either skips one document for (with a reason that is the same on every run) or
refuses with one line naming the file: part folders of different splits or corpus versions, a datasets
folder with .map() cache files, unreadable or oversized image bytes, symlink loops and over-long names,
JSON nested too deep, a chunk_seconds too large to count frames in, media the pre-scan must not open, and
Parquet files that are not OBELICS tables."""

from __future__ import annotations

import io
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mmtok.core.errors import CorpusError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.documents import media_kinds, open_source
from mmtok.data.shards import open_shards
from mmtok.data.tokenizer_spec import TokenizerSpec
from tests.test_interleave import PaletteVideo

PALETTE = TokenizerSpec(image="tests.test_interleave:PaletteImages")


def write_docs(path: Path, docs: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def png_bytes(size: int = 16, value: int = 200) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def one_line_error(e: pytest.ExceptionInfo[CorpusError]) -> str:
    assert "\n" not in str(e.value)
    return str(e.value)


# --------------------------------------------------------------------------- 1. part folders of one split


def test_open_shards_refuses_part_folders_of_different_splits_or_corpus_versions(tmp_path: Path) -> None:
    corpus = write_docs(tmp_path / "docs.jsonl", [{"segments": [f"doc {k}"]} for k in range(8)])
    mixed = tmp_path / "mixed"
    tokenize_corpus(corpus, mixed, part=(0, 2))
    tokenize_corpus(corpus, mixed, part=(1, 3))  # another split: overlaps part 0 of 2, leaves documents out
    with pytest.raises(CorpusError, match=r"mixes part folders of 2 different --part splits \(of 2: "
                                          r"part-00000-of-00002; of 3: part-00001-of-00003\)") as e:
        open_shards(mixed)
    one_line_error(e)

    missing = tmp_path / "missing"
    tokenize_corpus(corpus, missing, part=(0, 3))
    tokenize_corpus(corpus, missing, part=(2, 3))
    with pytest.raises(CorpusError, match=r"2 of 3 parts finished \(missing part-00001-of-00003\)"):
        open_shards(missing)

    versions = tmp_path / "versions"
    tokenize_corpus(corpus, versions, part=(0, 2))
    write_docs(corpus, [{"segments": [f"edited {k}"]} for k in range(8)])
    tokenize_corpus(corpus, versions, part=(1, 2))
    with pytest.raises(CorpusError, match=r"part folders were made from different versions of the corpus "
                                          r"\(source sha256 part-00000-of-00002: \w{12}, part-00001-of-00002") as e:
        open_shards(versions)
    one_line_error(e)

    tokenize_corpus(corpus, versions, part=(0, 2), restart=True)  # one version again: reads
    assert len(open_shards(versions)) == 8
    extra = versions / "part-00002-of-00002"
    extra.mkdir()
    (extra / "manifest.json").write_bytes((versions / "part-00000-of-00002" / "manifest.json").read_bytes())
    with pytest.raises(CorpusError, match=r"outside a split into 2 parts \(part-00002-of-00002\)"):
        open_shards(versions)


def test_a_whole_corpus_and_part_folders_never_share_a_shard_folder(tmp_path: Path) -> None:
    """Writing parts beside a whole corpus (or the reverse) is refused before any work, and a folder that holds
    both (made by hand, or by an older release) is refused when read, naming what it holds."""
    corpus = write_docs(tmp_path / "docs.jsonl", [{"segments": [f"doc {k}"]} for k in range(8)])
    parts = tmp_path / "parts"
    tokenize_corpus(corpus, parts, part=(0, 2))
    tokenize_corpus(corpus, parts, part=(1, 2))
    before = sorted(p.name for p in parts.iterdir())
    with pytest.raises(CorpusError, match=r"holds part folders \(part-00000-of-00002, part-00001-of-00002\); the whole "
                                          r"corpus \(--part 0/1\) would go beside them") as e:
        tokenize_corpus(corpus, parts)
    one_line_error(e)
    assert sorted(p.name for p in parts.iterdir()) == before and len(open_shards(parts)) == 8

    whole = tmp_path / "whole"
    tokenize_corpus(corpus, whole)
    with pytest.raises(CorpusError, match=r"holds a whole corpus \(manifest.json at its top\); part 1/2 would go"):
        tokenize_corpus(corpus, whole, part=(1, 2))
    assert not list(whole.glob("part-*")) and len(open_shards(whole)) == 8

    (whole / "part-00000-of-00002").mkdir()  # both, made by hand: neither is read
    with pytest.raises(CorpusError, match=r"and part folders too \(part-00000-of-00002\)"):
        open_shards(whole)


# --------------------------------------------------------------------------- 2. datasets folders


def test_a_datasets_folder_is_read_from_the_files_its_state_json_lists(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = {"texts": [["one", None], ["two"], ["three"]], "images": [[None, None], [None], [None]]}
    folder = tmp_path / "ds"
    datasets.Dataset.from_dict(rows).save_to_disk(str(folder))
    clean = tokenize_corpus(folder, tmp_path / "clean")
    loaded = datasets.load_from_disk(str(folder))
    loaded.map(lambda row: {"n": len(row["texts"])})  # writes cache-*.arrow files into the folder
    loaded.filter(lambda row: row["texts"][0] != "two").map(lambda row: {"texts": [row["texts"][0].upper()]},
                                                               remove_columns=["texts"])
    assert len(list(folder.glob("cache-*.arrow"))) >= 2
    m = tokenize_corpus(folder, tmp_path / "cached")
    assert m["docs"] == 3 and m["skipped"] == [] and m["source"] == clean["source"]
    assert [d.tolist() for d in open_shards(tmp_path / "cached")] == [d.tolist() for d in open_shards(tmp_path / "clean")]

    state = json.loads((folder / "state.json").read_text())
    (folder / "state.json").write_text(json.dumps({**state, "_data_files": [{"filename": "nope.arrow"}]}))
    with pytest.raises(CorpusError, match=r"state\.json lists the data file 'nope\.arrow', which is not a file"):
        tokenize_corpus(folder, tmp_path / "nope")

    other = tmp_path / "other"
    datasets.Dataset.from_dict({"text": ["a", "b"]}).save_to_disk(str(other))
    with pytest.raises(CorpusError, match=r"data-00000-of-00001\.arrow has no \(single\) 'texts' column "
                                          r"\(its columns: text\)") as e:
        tokenize_corpus(other, tmp_path / "o")
    one_line_error(e)


# --------------------------------------------------------------------------- 3 and 6. image bytes in Parquet rows


def obelics_parquet(path: Path, images: list[Any]) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"texts": [["hi", None] for _ in images], "images": [[None, i] for i in images]}), path)
    return path


def test_unreadable_image_bytes_get_a_reason_without_an_object_address(tmp_path: Path) -> None:
    corpus = obelics_parquet(tmp_path / "rows.parquet", [png_bytes(), b"not an image at all", png_bytes(value=20)])
    m = tokenize_corpus(corpus, tmp_path / "a", tokenizers=PALETTE)
    assert m["skipped"] == [{"line": 2, "reason": "position 1: the image bytes are not an image Pillow can read"}]
    tokenize_corpus(corpus, tmp_path / "b", tokenizers=PALETTE, workers=2)
    assert (tmp_path / "a" / "shard-00000.json").read_bytes() == (tmp_path / "b" / "shard-00000.json").read_bytes()


def test_a_rows_empty_positions_keep_the_reasons_numbered_as_the_row(tmp_path: Path) -> None:
    """A position with neither text nor image adds no token, and a reason names a later segment by its position
    in the row, as the reader's own reasons do."""
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "good.png").write_bytes(png_bytes())
    pq.write_table(pa.table({"texts": [[None, "hi", None], [None, "hi", None], ["hi", None]],
                             "images": [[None, None, "bad.png"], [None, None, "good.png"], [None, "good.png"]]}),
                   tmp_path / "rows.parquet")
    m = tokenize_corpus(tmp_path / "rows.parquet", tmp_path / "o", tokenizers=PALETTE)
    assert [s["line"] for s in m["skipped"]] == [1] and m["skipped"][0]["reason"].startswith("segment 2 (image ")
    docs = list(open_shards(tmp_path / "o"))
    assert len(docs) == 2 and docs[0].tolist() == docs[1].tolist()  # the empty position adds nothing


def test_image_bytes_over_twice_the_decompression_bomb_limit_are_skipped(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """As an image file is: over twice the limit refused (Pillow's error), over it only read (Pillow's warning), and
    the limit taken from MMTOK_MAX_IMAGE_PIXELS when that is set."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    corpus = obelics_parquet(tmp_path / "rows.parquet", [png_bytes(32), png_bytes(32, value=20)])
    m = tokenize_corpus(corpus, tmp_path / "o", tokenizers=PALETTE)
    assert m["docs"] == 0 and [s["line"] for s in m["skipped"]] == [1, 2]
    assert m["skipped"][0]["reason"] == ("position 1: the image bytes have 1,024 pixels, over twice the "
                                         "decompression-bomb limit of 100 (PIL.Image.MAX_IMAGE_PIXELS); to read it set "
                                         "the environment variable MMTOK_MAX_IMAGE_PIXELS=512 (or raise "
                                         "PIL.Image.MAX_IMAGE_PIXELS)")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # over the limit only
    assert tokenize_corpus(corpus, tmp_path / "o2", tokenizers=PALETTE)["docs"] == 2
    monkeypatch.setenv("MMTOK_MAX_IMAGE_PIXELS", "100")
    assert tokenize_corpus(corpus, tmp_path / "o3", tokenizers=PALETTE)["docs"] == 0


# --------------------------------------------------------------------------- 4. paths the OS refuses


def test_a_symlink_loop_or_a_name_too_long_skips_the_document(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(root / "a.png")
    (root / "loop.png").symlink_to(root / "loop.png")
    docs = [{"segments": [{"image": "a.png"}]}, {"segments": [{"image": "loop.png"}]},
            {"segments": [{"image": "x" * 300 + ".png"}]}]
    corpus = write_docs(root / "docs.jsonl", docs)
    for out, allow in (("inside", False), ("anywhere", True)):
        m = tokenize_corpus(corpus, tmp_path / out, tokenizers=PALETTE, allow_outside=allow)
        assert m["docs"] == 1 and [s["line"] for s in m["skipped"]] == [2, 3]
        reasons = [s["reason"] for s in m["skipped"]]
        assert reasons[0] == "segment 0: image file 'loop.png' cannot be opened: Too many levels of symbolic links"
        assert reasons[1] == f"segment 0: image file {'x' * 300 + '.png'!r} cannot be opened: File name too long"


# --------------------------------------------------------------------------- 5. JSON nested too deep, chunk_seconds


class SegmentedVideo(PaletteVideo):
    """:class:`PaletteVideo` with ``segments()``, which counts a chunk's frames as ``mmtok.VideoTokenizer`` does."""

    def segments(self, path: str, *, chunk_seconds: float | None = None, audio: bool = True,
                 sample_rate: int = 16000) -> list[dict[str, Any]]:
        codes = self.encode(path)
        per = codes.shape[0] if chunk_seconds is None else max(1, round(chunk_seconds * self.fps))
        return [{"video_codes": codes[i:i + per]} for i in range(0, codes.shape[0], per)]


def test_json_nested_too_deep_and_a_huge_chunk_seconds_skip_the_line(tmp_path: Path) -> None:
    np.save(tmp_path / "clip.npy", np.random.default_rng(0).random((3, 3, 16, 16), dtype=np.float32))
    deep = '{"segments": [{"video": "clip.npy"}, ' + "[" * 5000 + "]" * 5000 + "]}"  # the pre-scan parses it too
    lines = [json.dumps({"segments": [{"video": "clip.npy", "chunk_seconds": 0.5}]}), deep,
             '{"segments": [{"video": "clip.npy", "chunk_seconds": 1e308}]}',
             '{"segments": [{"video": "clip.npy", "chunk_seconds": Infinity}]}',
             '{"segments": [{"video": "clip.npy", "chunk_seconds": 1' + "0" * 400 + "}]}"]
    (tmp_path / "v.jsonl").write_text("\n".join(lines) + "\n")
    spec = TokenizerSpec(video="tests.test_corpus_inputs:SegmentedVideo")
    assert media_kinds(open_source(tmp_path / "v.jsonl")) == ({"video"}, 5)
    m = tokenize_corpus(tmp_path / "v.jsonl", tmp_path / "out", tokenizers=spec)
    assert m["docs"] == 1 and [s["line"] for s in m["skipped"]] == [2, 3, 4, 5]
    reasons = [s["reason"] for s in m["skipped"]]
    assert reasons[0] == "invalid JSON (nested too deeply to parse)"
    assert all(r.startswith("segment 0: chunk_seconds must be at most 1.8e+302 seconds (absent: one chunk), got ")
               for r in reasons[1:])
    assert reasons[1].endswith("got 1e+308") and reasons[2].endswith("got inf")


# --------------------------------------------------------------------------- 7. what the pre-scan opens


def test_the_pre_scan_opens_no_video_outside_the_corpus_or_that_is_not_a_regular_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    class Container:
        streams = types.SimpleNamespace(audio=[])

        def __enter__(self) -> Container:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def fake_open(path: str) -> Container:
        opened.append(Path(path).name)
        return Container()

    monkeypatch.setitem(sys.modules, "av", types.SimpleNamespace(open=fake_open))
    root = tmp_path / "corpus"
    root.mkdir()
    (tmp_path / "outside.mp4").write_bytes(b"x")
    (root / "inside.mp4").write_bytes(b"x")
    os.mkfifo(root / "pipe.mp4")  # opening it would block for ever
    docs = [{"segments": [{"video": name}]} for name in ("../outside.mp4", "pipe.mp4", "inside.mp4")]
    corpus = write_docs(root / "docs.jsonl", docs)
    assert media_kinds(open_source(corpus)) == ({"video"}, 3)
    assert opened == ["inside.mp4"]
    opened.clear()
    assert media_kinds(open_source(corpus, allow_outside=True)) == ({"video"}, 3)
    assert opened == ["outside.mp4", "inside.mp4"]


# --------------------------------------------------------------------------- 8. Parquet files that are not OBELICS


def test_a_parquet_file_that_is_truncated_or_not_obelics_is_refused_naming_it(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    good = obelics_parquet(tmp_path / "good.parquet", [png_bytes()])
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(CorpusError, match=r"cut\.parquet cannot be read as Parquet: Parquet magic bytes") as e:
        tokenize_corpus(cut, tmp_path / "a", tokenizers=PALETTE)
    one_line_error(e)
    pq.write_table(pa.table({"texts": [["hi"]], "images": pa.array([3], pa.int64())}), tmp_path / "ints.parquet")
    with pytest.raises(CorpusError, match=r"ints\.parquet: column 'images' holds int64, not lists") as e:
        tokenize_corpus(tmp_path / "ints.parquet", tmp_path / "b", tokenizers=PALETTE)
    one_line_error(e)


def test_a_media_key_spelt_with_a_json_escape_is_found_by_the_pre_scan(tmp_path: Path) -> None:
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "red.png")
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"segments": ["a red square: ", {"\\u0069mage": "red.png"}]}\n')  # "image", escaped
    m = tokenize_corpus(corpus, tmp_path / "out", detect_media=True, progress=False)
    assert m["docs"] == 1 and not m["skipped"] and m["tokens"]["image"] > 0
