"""Hardening of tokenize and the shard reader: resume keyed on content, media kept inside the
corpus folder, no code imported because a file names it, checked shards, odd inputs, the front door."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmtok.core.errors import CorpusError
from mmtok.data import shards as shards_mod
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.documents import media_kinds, open_source
from mmtok.data.packing import PackedDataset
from mmtok.data.shards import VERIFIED, open_shards
from mmtok.data.tokenizer_spec import TokenizerSpec, detect_tokenizers

PALETTE = TokenizerSpec(image="tests.test_interleave:PaletteImages")


def write_docs(path: Path, docs: list[object]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def text_corpus(path: Path, words: list[str]) -> Path:
    return write_docs(path, [{"segments": [w]} for w in words])


def bins(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.bin"))}


# --------------------------------------------------------------------------- 1. resume keys on content


def test_resume_onto_an_edited_corpus_is_refused_and_restart_starts_over(tmp_path: Path) -> None:
    words = [f"document number {k:02d}" for k in range(12)]
    corpus = text_corpus(tmp_path / "docs.jsonl", words)
    out = tmp_path / "out"
    tokenize_corpus(corpus, out, shard_tokens=40)
    assert len(list(out.glob("shard-*.json"))) > 2
    (out / "manifest.json").unlink()  # as if killed after some shards
    for p in sorted(out.glob("shard-*"))[-2:]:
        p.unlink()
    text_corpus(corpus, [w.replace("number", "NUMBER") for w in words])  # same size, other content
    assert corpus.stat().st_size == sum(len(json.dumps({"segments": [w]})) + 1 for w in words)
    with pytest.raises(CorpusError, match=r"changed since .*--restart.*--out") as e:
        tokenize_corpus(corpus, out, shard_tokens=40)
    assert "\n" not in str(e.value)
    m = tokenize_corpus(corpus, out, shard_tokens=40, restart=True)
    fresh = tmp_path / "fresh"
    assert m == tokenize_corpus(corpus, fresh, shard_tokens=40)
    assert bins(out) == bins(fresh)
    text_corpus(corpus, words)  # a finished run, corpus edited again (same size): no stale manifest
    with pytest.raises(CorpusError, match="changed since"):
        tokenize_corpus(corpus, out, shard_tokens=40)
    index = json.loads((out / "shard-00000.json").read_text())
    assert index["source_sha256"] == m["source"]["sha256"]
    other = text_corpus(tmp_path / "other.jsonl", [w.upper() for w in words])  # another corpus, same --out
    with pytest.raises(CorpusError, match=r"made from another corpus \(docs\.jsonl\), not .*other\.jsonl; pass --restart"):
        tokenize_corpus(other, out, shard_tokens=40)


def test_an_unchanged_corpus_still_resumes_under_another_name(tmp_path: Path) -> None:
    corpus = text_corpus(tmp_path / "docs.jsonl", [f"doc {k}" for k in range(8)])
    out = tmp_path / "out"
    m = tokenize_corpus(corpus, out, shard_tokens=20)
    (out / "manifest.json").unlink()
    moved = corpus.rename(tmp_path / "renamed.jsonl")
    again = tokenize_corpus(moved, out, shard_tokens=20)
    assert again["run"] == m["run"] and again["docs"] == m["docs"]


# --------------------------------------------------------------------------- 2. media stay inside the corpus folder


def picture(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(path)
    return str(path)


def test_media_paths_that_lead_outside_are_skipped_unless_allowed(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    picture(root / "in" / "a.png")
    outside = picture(tmp_path / "secret" / "b.png")
    (root / "link.png").symlink_to(outside)
    docs = [
        {"segments": [{"image": "in/a.png"}]},  # 1: fine
        {"segments": [{"image": "../secret/b.png"}]},  # 2: .. out
        {"segments": [{"image": outside}]},  # 3: absolute, outside
        {"segments": [{"image": "link.png"}]},  # 4: a symlink that leads out
        {"segments": [{"image": str(root / "in" / "a.png")}]},  # 5: absolute but inside: fine
    ]
    corpus = write_docs(root / "docs.jsonl", docs)
    m = tokenize_corpus(corpus, tmp_path / "o", tokenizers=PALETTE)
    assert [s["line"] for s in m["skipped"]] == [2, 3, 4] and m["docs"] == 2
    assert all("outside the corpus folder" in s["reason"] and "--allow-outside" in s["reason"] for s in m["skipped"])
    m = tokenize_corpus(corpus, tmp_path / "o2", tokenizers=PALETTE, allow_outside=True)
    assert m["skipped"] == [] and m["docs"] == 5


def test_obelics_image_paths_stay_inside_too(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    root = tmp_path / "corpus"
    picture(root / "a.png")
    picture(tmp_path / "b.png")
    table = pa.table({"texts": [["hi", None], ["yo", None]], "images": [[None, "a.png"], [None, "../b.png"]]})
    pq.write_table(table, root / "rows.parquet")
    m = tokenize_corpus(root / "rows.parquet", tmp_path / "o", tokenizers=PALETTE)
    assert [s["line"] for s in m["skipped"]] == [2] and "outside the corpus folder" in m["skipped"][0]["reason"]
    assert tokenize_corpus(root / "rows.parquet", tmp_path / "o2", tokenizers=PALETTE,
                           allow_outside=True)["skipped"] == []


# --------------------------------------------------------------------------- 3. no file makes mmtok import code


def test_a_file_naming_module_callable_is_refused_without_importing_it() -> None:
    record = {"text": "byte", "image": "tests.never_imported_module:build", "audio": None, "video": None}
    with pytest.raises(CorpusError, match=r"run/config\.json .*custom image tokenizer.*mmtok sample --image "
                                          r"tests\.never_imported_module:build") as e:
        TokenizerSpec.from_file_record(record, where="run/config.json")
    assert "\n" not in str(e.value) and "tests.never_imported_module" not in sys.modules
    ok = TokenizerSpec.from_file_record({"text": "byte", "image": "image", "audio": None}, where="x")
    assert ok == TokenizerSpec(image="image")
    trusted = TokenizerSpec.from_file_record({"image": "mmtok.pretrained:native_image_tokenizer"}, where="x")
    assert trusted.image == "mmtok.pretrained:native_image_tokenizer"
    explicit = TokenizerSpec.from_file_record(record, where="x", overrides={"image": "tests.other:build", "audio": None})
    assert explicit.image == "tests.other:build" and "tests.other" not in sys.modules
    with pytest.raises(CorpusError, match="not a text/image/audio/video mapping"):
        TokenizerSpec.from_file_record({"image": "image", "evil": "os:system"}, where="x")


def test_a_checkpoint_folder_with_a_colon_in_a_file_still_resolves(tmp_path: Path) -> None:
    folder = tmp_path / "ck:1"
    folder.mkdir()
    assert TokenizerSpec.from_file_record({"image": str(folder)}, where="x").image == str(folder)


# --------------------------------------------------------------------------- 4. open_shards checks each shard once


def test_open_shards_checks_sha_and_vocabulary_once_per_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = text_corpus(tmp_path / "docs.jsonl", [f"some text {k}" for k in range(10)])
    out = tmp_path / "out"
    tokenize_corpus(corpus, out, shard_tokens=30)
    open_shards(out)
    cache = json.loads((out / VERIFIED).read_text())
    assert set(cache) == {p.name for p in out.glob("shard-*.bin")}
    calls: list[Path] = []
    monkeypatch.setattr(shards_mod, "files_sha256", lambda p: calls.append(p) or "x")
    open_shards(out)  # remembered: no file read again
    assert calls == []
    monkeypatch.undo()
    bin1 = out / "shard-00001.bin"
    data = bytearray(bin1.read_bytes())
    data[3] ^= 0x10
    bin1.write_bytes(bytes(data))
    with pytest.raises(CorpusError, match=r"shard-00001\.bin does not match the sha256") as e:
        PackedDataset(out, 8)
    assert "\n" not in str(e.value)


def test_ids_outside_the_vocabulary_are_refused_at_open(tmp_path: Path) -> None:
    import hashlib

    corpus = text_corpus(tmp_path / "docs.jsonl", ["abc"])
    out = tmp_path / "out"
    m = tokenize_corpus(corpus, out)
    bin0, ix0 = out / "shard-00000.bin", out / "shard-00000.json"
    ids = np.fromfile(bin0, dtype=m["dtype"])
    ids[1] = 60000  # far beyond the byte vocabulary
    bin0.write_bytes(ids.tobytes())
    index = json.loads(ix0.read_text())
    index["sha256"] = hashlib.sha256(ids.tobytes()).hexdigest()
    ix0.write_text(json.dumps(index))
    with pytest.raises(CorpusError, match=r"shard-00000\.bin holds id 60000, outside the vocabulary"):
        open_shards(out)


# --------------------------------------------------------------------------- 5. odd inputs and outputs


def test_a_bom_an_empty_corpus_and_an_out_that_is_a_file(tmp_path: Path) -> None:
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"segments": ["hi"]}).encode() + b"\n")
    m = tokenize_corpus(bom, tmp_path / "b")
    assert m["docs"] == 1 and m["skipped"] == []
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    with pytest.raises(CorpusError, match="holds no documents"):
        tokenize_corpus(empty, tmp_path / "e")
    assert not (tmp_path / "e").exists()
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile, afile / "below"):
        with pytest.raises(CorpusError, match="cannot tokenize into") as e:
            tokenize_corpus(bom, out)
        assert "\n" not in str(e.value)
    assert afile.read_text() == "x"


def test_a_failed_run_releases_its_lock_and_keeps_committed_shards(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = text_corpus(tmp_path / "docs.jsonl", [f"document {k}" for k in range(10)])
    out = tmp_path / "out"
    real = shards_mod.write_atomic
    count = {"n": 0}

    def full_disk(path: Path, data: bytes) -> None:
        count["n"] += 1
        if count["n"] == 5:  # two shards are committed (bin + index each), then the disk is full
            raise OSError(28, os.strerror(28), str(path))
        real(path, data)

    monkeypatch.setattr(shards_mod, "write_atomic", full_disk)
    with pytest.raises(CorpusError, match="No space left on device") as e:
        tokenize_corpus(corpus, out, shard_tokens=20)
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in out.glob("shard-*.json")) == ["shard-00000.json", "shard-00001.json"]
    monkeypatch.undo()
    m = tokenize_corpus(corpus, out, shard_tokens=20)  # the lock was released: resumes
    assert m == tokenize_corpus(corpus, tmp_path / "fresh", shard_tokens=20)
    assert bins(out) == bins(tmp_path / "fresh")


# --------------------------------------------------------------------------- 6. the front door


def test_the_pre_scan_picks_the_tokenizers_for_every_part(tmp_path: Path) -> None:
    docs = [{"segments": ["just text"]}, {"segments": [{"image": "a.png"}]},
            {"segments": [{"video": "v.mp4", "soundtrack": True}]}, {"segments": ["text mentioning \"image\""]}]
    corpus = write_docs(tmp_path / "docs.jsonl", docs)
    kinds, count = media_kinds(open_source(corpus))
    assert kinds == {"image", "video", "audio"} and count == 4
    write_docs(corpus, [docs[0], docs[1], {"segments": [{"video": "v.mp4", "soundtrack": False}]}])
    assert media_kinds(open_source(corpus))[0] == {"image", "video"}
    given = TokenizerSpec(image="tests.test_interleave:PaletteImages")
    assert detect_tokenizers({"image", "audio"}, given) == TokenizerSpec(image=given.image, audio="audio")


def test_tokenize_without_tokenizer_flags_loads_the_shipped_ones(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main

    picture(tmp_path / "a.png")
    corpus = write_docs(tmp_path / "docs.jsonl", [{"segments": ["hi"]}, {"segments": ["look", {"image": "a.png"}]}])
    assert main(["tokenize", str(corpus), "--out", str(tmp_path / "o"), "--quiet", "--part", "0/2"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["docs"] == 1  # part 0 has no image, yet the image tokenizer loaded
    assert "tokenizers: text=byte, image=image" in captured.err
    m = json.loads((tmp_path / "o" / "part-00000-of-00002" / "manifest.json").read_text())
    assert m["tokenizers"]["image"] == "image"


def test_open_shards_names_a_missing_folder_and_a_file(tmp_path: Path) -> None:
    """A path that is not there and a file in place of the shard folder each get their own message."""
    with pytest.raises(CorpusError, match="does not exist"):
        open_shards(tmp_path / "nowhere")
    (tmp_path / "docs.jsonl").write_text("{}\n")
    with pytest.raises(CorpusError, match="is a file, not a shard folder"):
        open_shards(tmp_path / "docs.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"has no manifest\.json"):
        open_shards(tmp_path / "empty")
