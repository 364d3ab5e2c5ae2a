"""Exports of part folders with an empty part, OBELICS columns of the wrong item type, and what `mmtok info`
says of a Parquet or datasets export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
datasets = pytest.importorskip("datasets")

from mmtok.core.errors import CorpusError  # noqa: E402
from mmtok.data import documents  # noqa: E402
from mmtok.data.corpus import tokenize_corpus  # noqa: E402
from mmtok.data.documents import open_source  # noqa: E402
from mmtok.data.export import export_shards  # noqa: E402
from mmtok.data.shards import open_shards  # noqa: E402
from mmtok.info import describe  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet() -> None:
    datasets.disable_progress_bars()


def _parts_with_an_empty_first_part(tmp_path: Path) -> Path:
    """A folder of two parts whose part 0 (lines 1 and 3) holds no document: both its lines are skipped."""
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"segments": []}\n{"segments": ["bb"]}\n{"segments": [""]}\n{"segments": ["dd"]}\n')
    out = tmp_path / "parts"
    for i in range(2):
        tokenize_corpus(corpus, out, part=(i, 2))
    return out


def test_parquet_export_with_an_empty_part_loads_in_datasets(tmp_path: Path) -> None:
    parts = _parts_with_an_empty_first_part(tmp_path)
    export_shards(parts, to="parquet", out=tmp_path / "docs.parquet")
    meta = pq.ParquetFile(tmp_path / "docs.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [2]  # no empty row group
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "docs.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert ds["doc"] == [2, 4]
    shards = open_shards(parts)
    assert all(np.array_equal(a, shards[i]) for i, a in enumerate(ds["ids"]))


def test_datasets_export_with_an_empty_part(tmp_path: Path) -> None:
    parts = _parts_with_an_empty_first_part(tmp_path)
    summary = export_shards(parts, to="datasets", out=tmp_path / "docs-ds")
    assert summary["docs"] == 2
    ds = datasets.load_from_disk(str(tmp_path / "docs-ds"))
    assert ds["doc"] == [2, 4]
    assert [bytes(ids[1:-1]).decode() for ids in ds["ids"]] == ["bb", "dd"]


def test_export_of_no_documents_reads_back(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"segments": []}\n')
    tokenize_corpus(corpus, tmp_path / "shards")
    export_shards(tmp_path / "shards", to="parquet", out=tmp_path / "none.parquet")
    table = pq.read_table(tmp_path / "none.parquet")
    assert table.num_rows == 0 and table.column_names == ["doc", "ids", "modality", "source"]
    assert describe(tmp_path / "none.parquet")["documents"] == 0


def _obelics(path: Path, texts: object, images: object) -> Path:
    pq.write_table(pa.table({"texts": texts, "images": images}), path)
    return path


@pytest.mark.parametrize(("texts", "images", "column", "got"), [
    (pa.array([[1, 2]]), pa.array([[None, None]], pa.list_(pa.string())), "texts", "int64"),
    (pa.array([[b"hi"]], pa.list_(pa.binary())), pa.array([[None]], pa.list_(pa.string())), "texts", "binary"),
    (pa.array([[None], ["t"]]), pa.array([[5], [None]]), "images", "int64"),
])
def test_obelics_column_of_wrong_item_type_is_refused_before_any_row(
        tmp_path: Path, texts: object, images: object, column: str, got: str) -> None:
    path = _obelics(tmp_path / "corpus.parquet", texts, images)
    with pytest.raises(CorpusError) as e:
        list(open_source(path).items())
    said = str(e.value)
    assert str(path) in said and f"column {column!r} holds lists of {got}" in said and "cast the column" in said
    with pytest.raises(CorpusError, match=f"column '{column}' holds lists of {got}"):
        tokenize_corpus(path, tmp_path / "shards")
    assert not (tmp_path / "shards" / "manifest.json").exists()


@pytest.mark.parametrize("images", [
    pa.array([[None, b"\x89PNG"]], pa.list_(pa.binary())),
    pa.array([[None, "a.png"]], pa.list_(pa.large_string())),
    pa.array([[None, {"bytes": None, "path": "a.png"}]], pa.list_(pa.struct([("bytes", pa.binary()),
                                                                             ("path", pa.string())]))),
    pa.array([[None, None]], pa.list_(pa.null())),
    pa.array([None], pa.null()),  # pandas' column of nulls: a text-only corpus
])
def test_obelics_image_columns_that_stay_accepted(tmp_path: Path, images: object) -> None:
    path = _obelics(tmp_path / "corpus.parquet", pa.array([["x", None]], pa.list_(pa.large_string())), images)
    assert [n for n, _ in open_source(path).items()] == [1]


def test_obelics_image_struct_of_nothing_says_so() -> None:
    with pytest.raises(ValueError, match="position 3: the image struct has neither bytes nor a path"):
        documents._row_image({"bytes": b"", "path": None}, 3, None)  # type: ignore[arg-type]


def test_info_names_the_tokenizers_a_parquet_or_datasets_export_records(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"segments": ["hi"]}\n')
    tokenize_corpus(corpus, tmp_path / "shards")
    for to, out in (("parquet", tmp_path / "d.parquet"), ("datasets", tmp_path / "d-ds"), ("bin", tmp_path / "flat")):
        export_shards(tmp_path / "shards", to=to, out=out)
        said = describe(out)
        assert said["tokenizers"]["text"].startswith("256 ids"), (to, said)
    old = pq.read_table(tmp_path / "d.parquet").replace_schema_metadata(None)
    pq.write_table(old, tmp_path / "old.parquet")  # an export of an earlier mmtok: no mark, no vocabulary
    said = describe(tmp_path / "old.parquet")
    assert said["tokenizers"] is None and said["mark"].startswith("none")


def test_obelics_image_url_is_named_as_a_url(tmp_path: Path) -> None:
    path = _obelics(tmp_path / "corpus.parquet", pa.array([[None, "caption"]]),
                    pa.array([["https://example.com/a.jpg", None]]))
    row = dict(open_source(path).items())[1]
    with pytest.raises(ValueError, match=r"position 0: the image 'https://example.com/a.jpg' is a URL.*fetch the images"):
        documents._row_image(row["images"][0], 0, None)  # type: ignore[arg-type]


def test_bin_export_of_parts_records_each_documents_line(tmp_path: Path) -> None:
    parts = _parts_with_an_empty_first_part(tmp_path)
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"segments": ["aa"]}\n{"segments": ["bb"]}\n{"segments": ["cc"]}\n')
    for i in range(2):
        tokenize_corpus(corpus, tmp_path / "three", part=(i, 2))
    export_shards(tmp_path / "three", to="bin", out=tmp_path / "flat")
    export_shards(tmp_path / "three", to="parquet", out=tmp_path / "three.parquet")
    lines = np.load(tmp_path / "flat" / "doc.npy")
    assert lines.dtype == np.int64 and lines.tolist() == [1, 3, 2]  # part 0 (lines 1, 3), then part 1
    assert lines.tolist() == pq.read_table(tmp_path / "three.parquet").column("doc").to_pylist()
    (tmp_path / "flat" / "doc.npy").unlink()  # as an export of an earlier mmtok: still replaced
    export_shards(parts, to="bin", out=tmp_path / "flat")
    assert np.load(tmp_path / "flat" / "doc.npy").tolist() == [2, 4]


def test_parquet_and_datasets_marks_say_what_the_modality_numbers_mean(tmp_path: Path) -> None:
    import json

    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"segments": ["hi"]}\n')
    tokenize_corpus(corpus, tmp_path / "shards")
    export_shards(tmp_path / "shards", to="parquet", out=tmp_path / "d.parquet")
    export_shards(tmp_path / "shards", to="datasets", out=tmp_path / "d-ds")
    table = pq.read_table(tmp_path / "d.parquet")
    marks = [json.loads(table.schema.metadata[b"mmtok_export"]),
             json.loads((tmp_path / "d-ds" / "mmtok_export.json").read_text())]
    for mark in marks:
        assert mark["modalities"] == {"text": 0, "special": 1, "image": 2, "audio": 3, "video": 4}
    names = {v: k for k, v in marks[0]["modalities"].items()}
    assert [names[m] for m in table.column("modality")[0].as_py()] == ["special", "text", "text", "special"]
