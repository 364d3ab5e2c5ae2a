"""Exports: a datasets folder the datasets library has used is replaced, a stopped datasets export leaves
nothing the next one keeps, Parquet and datasets exports carry the vocabulary, tables are built a slice of
documents at a time, and a run's damaged newest checkpoint names the intact one."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

import mmtok.data.export as export
from mmtok.cli import main
from mmtok.core.errors import MmtokError
from mmtok.data.shard_ids import ShardFile
from mmtok.data.shards import open_shards
from mmtok.lm.runs import load_run
from mmtok.stream.vocab import Vocabulary
from tests import test_export
from tests.test_export import _tiny_run

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
datasets = pytest.importorskip("datasets")


shards = test_export.shards  # the export tests' corpus: 30 documents in shards of 300 tokens


def test_a_datasets_export_the_datasets_library_used_is_replaced(shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    assert main(["export", str(shards), "--to", "datasets", "--out", str(out)]) == 0
    ds = datasets.load_from_disk(str(out))
    ds.shuffle(seed=0).map(lambda row: {"n": len(row["ids"])}).filter(lambda row: row["n"] > 3)
    with tempfile.NamedTemporaryFile("wb", dir=out, delete=False):  # what a map stopped part-way leaves
        pass
    names = sorted(p.name for p in out.iterdir())
    assert any(n.startswith("cache-") for n in names) and any(n.startswith("tmp") for n in names), names
    assert main(["export", str(shards), "--to", "datasets", "--out", str(out)]) == 0
    assert not any(p.name.startswith(("cache-", "tmp")) for p in out.iterdir())
    assert len(datasets.load_from_disk(str(out))) == len(open_shards(shards))
    (out / "notes.txt").write_text("mine")  # a file of the user's: the folder is not replaced
    assert main(["export", str(shards), "--to", "datasets", "--out", str(out)]) == 2
    assert (out / "notes.txt").read_text() == "mine"


class _Killed(BaseException):
    """Stands for a kill: raised part-way, with nothing removed on the way out."""


def test_a_stopped_datasets_export_leaves_nothing_the_next_one_keeps(
        shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"

    def killed(*args: object, **kwargs: object) -> None:
        raise _Killed

    with monkeypatch.context() as m:
        m.setattr(datasets.Dataset, "from_parquet", killed)
        m.setattr(shutil, "rmtree", lambda *args, **kwargs: None)  # a kill cleans nothing up
        with pytest.raises(_Killed):
            export.export_shards(shards, to="datasets", out=out)
    left = [p.name for p in tmp_path.iterdir()]
    assert left and all(n.startswith(".ds.tmp-") for n in left), left  # named after --out, as a stopped export's
    capsys.readouterr()
    assert main(["export", str(shards), "--to", "datasets", "--out", str(out)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]
    assert "recovered what a stopped export left" in capsys.readouterr().err


def test_parquet_and_datasets_exports_carry_the_vocabulary(shards: Path, tmp_path: Path) -> None:
    vocab = open_shards(shards).vocab
    assert main(["export", str(shards), "--to", "parquet", "--out", str(tmp_path / "docs.parquet")]) == 0
    assert main(["export", str(shards), "--to", "datasets", "--out", str(tmp_path / "ds")]) == 0
    assert main(["export", str(shards), "--to", "bin", "--out", str(tmp_path / "flat")]) == 0
    marks = [json.loads(pq.read_schema(tmp_path / "docs.parquet").metadata[b"mmtok_export"]),
             json.loads((tmp_path / "ds" / "mmtok_export.json").read_text())]
    binary = json.loads((tmp_path / "flat" / "meta.json").read_text())["vocab"]
    for mark in marks:
        assert mark["vocab"] == binary and Vocabulary.from_dict(mark["vocab"]) == vocab
        assert mark["fingerprint"] == vocab.fingerprint


def test_document_slices_keep_each_document_whole() -> None:
    offsets = np.array([0, 3, 5, 20, 21, 22, 30], np.int64)  # a document of 15 ids, longer than a slice
    assert export._slices(offsets, 6) == [(0, 2), (2, 3), (3, 5), (5, 6)]
    assert export._slices(offsets, 100) == [(0, 6)]
    assert export._slices(np.zeros(1, np.int64), 6) == [(0, 0)]  # a shard of no documents: one empty table


def test_tables_built_a_slice_at_a_time_match_whole_shards(
        shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "SLICE_TOKENS", 1 << 40)
    for to, name in (("parquet", "whole.parquet"), ("datasets", "whole-ds")):
        export.export_shards(shards, to=to, out=tmp_path / name)
    limit = 40
    reads: list[int] = []
    read = ShardFile.read

    def counted(self: ShardFile, start: int, stop: int) -> np.ndarray:
        reads.append(stop - start)
        return read(self, start, stop)

    monkeypatch.setattr(ShardFile, "read", counted)
    monkeypatch.setattr(export, "SLICE_TOKENS", limit)
    for to, name in (("parquet", "sliced.parquet"), ("datasets", "sliced-ds")):
        export.export_shards(shards, to=to, out=tmp_path / name)
    opened = open_shards(shards)
    longest = max(int(np.diff(o).max()) for o in opened.offsets)
    assert longest > limit and max(reads) <= longest  # no read of a whole shard (300 ids)
    whole, sliced = (pq.read_table(tmp_path / f"{n}.parquet") for n in ("whole", "sliced"))
    assert pq.ParquetFile(tmp_path / "sliced.parquet").num_row_groups > len(opened.tokens)
    assert sliced.equals(whole) and sliced.schema.metadata == whole.schema.metadata
    a, b = (datasets.load_from_disk(str(tmp_path / f"{n}-ds")) for n in ("whole", "sliced"))
    assert a.to_dict() == b.to_dict() and len(a) == len(opened)


def test_load_run_names_the_intact_checkpoint_beside_a_damaged_newest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _tiny_run(tmp_path / "run")
    shutil.copytree(run / "ckpt-0000010", run / "ckpt-0000020")
    weights = run / "ckpt-0000020" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(MmtokError, match=r"ckpt-0000020.*ckpt-0000010"):
        load_run(run)
    capsys.readouterr()
    assert main(["export-hf", "--run", str(run), "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--run {run / 'ckpt-0000010'}" in err, err
    assert not (tmp_path / "hf").exists()
    assert load_run(run / "ckpt-0000010")[1].size == Vocabulary(256, ranges={"image": 40, "audio": 24}).size


def test_load_run_of_no_such_folder_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(MmtokError, match="no such folder"):
        load_run(tmp_path / "nonexistent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MmtokError, match="holds no checkpoint"):
        load_run(tmp_path / "empty")
    assert main(["export-hf", "--run", str(tmp_path / "nonexistent"), "--out", str(tmp_path / "hf")]) == 2
    assert "no such folder" in capsys.readouterr().err
