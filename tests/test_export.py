"""Exports: shards as parquet / datasets / tokens.bin with the manifest's token count, OBELICS-layout corpora,
and a run as a transformers LlamaForCausalLM with the same logits."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmtok.cli import main
from mmtok.core.checkpoint import save_checkpoint
from mmtok.core.errors import MmtokError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.shards import open_shards
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.stream.vocab import Vocabulary
from tests.test_data import SPEC, make_corpus

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    tokenize_corpus(make_corpus(root / "corpus", n_docs=30), root / "shards", tokenizers=SPEC, shard_tokens=300)
    return root / "shards"


def test_parquet_datasets_and_bin_hold_every_token(shards: Path, tmp_path: Path) -> None:
    manifest = json.loads((shards / "manifest.json").read_text())
    ref = open_shards(shards)
    docs = list(ref.documents())
    lines = [ln for p in sorted(shards.glob("shard-*.json")) for ln in json.loads(p.read_text())["doc_lines"]]

    assert main(["export", str(shards), "--to", "parquet", "--out", str(tmp_path / "docs.parquet")]) == 0
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "docs.parquet"), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert sum(len(r) for r in ds["ids"]) == manifest["tokens"]["total"]
    table = pq.read_table(tmp_path / "docs.parquet")
    types = [table.schema.field(c).type for c in ("doc", "ids", "modality", "source")]
    assert types[0] == pa.int64() and types[3] == pa.string()
    assert pa.types.is_list(types[1]) and types[1].value_type == pa.int32()
    assert pa.types.is_list(types[2]) and types[2].value_type == pa.int8()
    assert table["doc"].to_pylist() == lines and set(table["source"].to_pylist()) == {"docs.jsonl"}
    row = 3
    assert table["ids"][row].as_py() == docs[row].tolist()
    assert table["modality"][row].as_py() == ref.vocab.stream_modality(docs[row]).tolist()

    assert main(["export", str(shards), "--to", "datasets", "--out", str(tmp_path / "ds")]) == 0
    disk = datasets.load_from_disk(str(tmp_path / "ds"))
    assert disk["doc"] == lines and [list(x) for x in disk["ids"]] == [d.tolist() for d in docs]

    assert main(["export", str(shards), "--to", "bin", "--out", str(tmp_path / "flat")]) == 0
    meta = json.loads((tmp_path / "flat" / "meta.json").read_text())
    tokens = np.memmap(tmp_path / "flat" / "tokens.bin", dtype=meta["dtype"], mode="r")
    starts = np.load(tmp_path / "flat" / "index.npy")
    assert meta["dtype"] == "uint16" and meta["fingerprint"] == manifest["fingerprint"]
    assert tokens.size == manifest["tokens"]["total"] and starts.dtype == np.int64 and starts.size == len(docs)
    ends = [*starts[1:].tolist(), tokens.size]
    assert all(np.array_equal(tokens[a:b], d) for a, b, d in zip(starts.tolist(), ends, docs, strict=True))



def test_shards_of_no_documents_export_as_empty_rows_in_every_format(shards: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "skipped.jsonl"
    corpus.write_text('{"segments": [{"image": "missing.png"}]}\n')  # its only line is skipped
    tokenize_corpus(corpus, tmp_path / "none", tokenizers=SPEC)
    for to, out in (("parquet", "none.parquet"), ("datasets", "none-ds"), ("bin", "none-bin")):
        assert main(["export", str(tmp_path / "none"), "--to", to, "--out", str(tmp_path / out)]) == 0, to
    assert pq.read_table(tmp_path / "none.parquet").num_rows == 0
    assert np.load(tmp_path / "none-bin" / "index.npy").size == 0
    empty = datasets.load_from_disk(str(tmp_path / "none-ds"))
    assert main(["export", str(shards), "--to", "datasets", "--out", str(tmp_path / "ds")]) == 0
    assert len(empty) == 0 and empty.features == datasets.load_from_disk(str(tmp_path / "ds")).features
    assert main(["export", str(tmp_path / "none"), "--to", "datasets", "--out", str(tmp_path / "none-ds")]) == 0

def test_export_replaces_only_an_earlier_export_and_never_the_shards(
        shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for to, out in (("bin", tmp_path / "flat"), ("datasets", tmp_path / "ds"), ("parquet", tmp_path / "docs.parquet")):
        assert main(["export", str(shards), "--to", to, "--out", str(out)]) == 0
        assert main(["export", str(shards), "--to", to, "--out", str(out)]) == 0  # an earlier export: replaced
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "a.txt").write_text("keep me")
    (tmp_path / "notes.parquet").write_text("not parquet")
    before = sorted(p.name for p in shards.iterdir())
    refused = [(to, out) for to in ("bin", "datasets", "parquet")
               for out in (precious, shards, shards.parent, shards / "inside", tmp_path / "notes.parquet")]
    refused += [("bin", tmp_path / "ds"), ("datasets", tmp_path / "flat"), ("parquet", tmp_path / "flat")]
    for to, out in refused:
        capsys.readouterr()
        assert main(["export", str(shards), "--to", to, "--out", str(out)]) == 2, (to, out)
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"--out {out}" in err, err
    monkeypatch.chdir(precious)
    assert main(["export", str(shards), "--to", "bin", "--out", "."]) == 2
    assert (precious / "a.txt").read_text() == "keep me" and sorted(p.name for p in precious.iterdir()) == ["a.txt"]
    assert (tmp_path / "notes.parquet").read_text() == "not parquet"
    assert sorted(p.name for p in shards.iterdir()) == before and not (shards / "inside").exists()
    assert len(open_shards(shards).offsets) >= 1  # the shards still read


def test_export_never_replaces_a_parquet_file_or_datasets_folder_it_did_not_write(
        shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only a marked export is replaced: a user's Parquet corpus, a datasets folder of theirs and an export
    without the mark (an older mmtok's) stay as they were, each refused in one line naming --out."""
    rows = {"texts": [["a cat", None]], "images": [[None, {"bytes": b"x", "path": None}]]}
    corpus = tmp_path / "rows.parquet"
    pq.write_table(pa.table(rows), corpus)
    theirs = tmp_path / "theirs-ds"
    datasets.Dataset.from_dict(rows).save_to_disk(str(theirs))
    assert main(["export", str(shards), "--to", "parquet", "--out", str(tmp_path / "old.parquet")]) == 0
    mark = json.loads(pq.read_schema(tmp_path / "old.parquet").metadata[b"mmtok_export"])
    assert mark["format"] == "mmtok-export-parquet" and mark["fingerprint"] == open_shards(shards).vocab.fingerprint
    pq.write_table(pq.read_table(tmp_path / "old.parquet").replace_schema_metadata(None), tmp_path / "old.parquet")
    assert main(["export", str(shards), "--to", "datasets", "--out", str(tmp_path / "old-ds")]) == 0
    assert len(datasets.load_from_disk(str(tmp_path / "old-ds"))) == len(open_shards(shards))  # the mark file is fine
    (tmp_path / "old-ds" / "mmtok_export.json").unlink()
    kept = {p: p.read_bytes() for p in (corpus, *theirs.iterdir(), tmp_path / "old.parquet")}
    for to, out, why in (("parquet", corpus, "without the mark"), ("datasets", theirs, "without the mark"),
                         ("parquet", tmp_path / "old.parquet", "older mmtok"),
                         ("datasets", tmp_path / "old-ds", "older mmtok")):
        capsys.readouterr()
        assert main(["export", str(shards), "--to", to, "--out", str(out)]) == 2, (to, out)
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"--out {out}" in err and why in err, err
    assert {p: p.read_bytes() for p in kept} == kept and pq.read_table(corpus).to_pydict() == rows


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 16), color).save(buf, format="PNG")
    return buf.getvalue()


def test_obelics_parquet_and_datasets_folder(tmp_path: Path) -> None:
    """Parallel texts/images lists; images as a relative path, bytes or null; bad rows are skipped."""
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (16, 32), (0, 200, 0)).save(tmp_path / "pics" / "green.png")
    rows = {
        "texts": [["a cat", None, "the end"], [None, "after"], ["text only"], ["both", None]],
        "images": [[None, {"bytes": _png((200, 0, 0)), "path": None}, None],
                   [{"bytes": None, "path": "pics/green.png"}, None], [None],
                   [{"bytes": b"not an image", "path": None}, None]],
    }
    pq.write_table(pa.table(rows), tmp_path / "docs.parquet")
    m = tokenize_corpus(tmp_path / "docs.parquet", tmp_path / "a", tokenizers=SPEC)
    assert m["docs"] == 3 and [s["line"] for s in m["skipped"]] == [4]
    assert "both a text and an image" in m["skipped"][0]["reason"] and m["tokens"]["image"] > 0

    # the same rows as a datasets folder, and the same ids as the equivalent JSONL
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    (tmp_path / "ds" / "pics").mkdir()
    (tmp_path / "ds" / "pics" / "green.png").write_bytes((tmp_path / "pics" / "green.png").read_bytes())
    m2 = tokenize_corpus(tmp_path / "ds", tmp_path / "b", tokenizers=SPEC)
    assert m2["tokens"] == m["tokens"] and m2["skipped"] == m["skipped"]
    got = list(open_shards(tmp_path / "b").documents())
    (tmp_path / "red.png").write_bytes(_png((200, 0, 0)))
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(json.dumps({"segments": ["a cat", {"image": "red.png"}, "the end"]}) + "\n")
    tokenize_corpus(jsonl, tmp_path / "c", tokenizers=SPEC)
    assert got[0].tolist() == next(open_shards(tmp_path / "c").documents()).tolist()


def _tiny_run(folder: Path, *, rope_3d: bool = False, tie: bool = True) -> Path:
    vocab = Vocabulary(256, ranges={"image": 40, "audio": 24})
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=vocab.size, n_layer=2, n_head=4, n_kv_head=2, d_model=64, max_seq_len=64,
                      rope_3d=rope_3d, tie_embeddings=tie)
    model = Transformer(cfg)
    with torch.no_grad():  # norms away from 1 so a wrong mapping of them shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    save_checkpoint(folder / "ckpt-0000010", kind=Transformer.KIND, tensors=tensors,
                    config={"model": asdict(cfg), "vocab": vocab.to_dict()})
    return folder


@pytest.mark.parametrize("tie", [True, False])
def test_export_hf_gives_the_same_logits(tmp_path: Path, tie: bool) -> None:
    transformers = pytest.importorskip("transformers")
    import mmtok

    run = _tiny_run(tmp_path / "run", tie=tie)
    assert main(["export-hf", "--run", str(run), "--out", str(tmp_path / "hf")]) == 0
    assert main(["export-hf", "--run", str(run), "--out", str(tmp_path / "hf")]) == 0  # an earlier export: replaced
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text("{}")
    for bad in ("afile", "other"):
        assert main(["export-hf", "--run", str(run), "--out", str(tmp_path / bad)]) == 2
    assert (tmp_path / "afile").read_text() == "mine" and [p.name for p in (tmp_path / "other").iterdir()] == ["config.json"]
    model, vocab, _ = mmtok.load_run(run)
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    ids = torch.randint(0, vocab.size, (2, 37), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(ids), hf(ids).logits
    assert ours.shape == theirs.shape == (2, 37, vocab.size)
    diff = (ours - theirs).abs().max().item()
    print(f"export-hf logits max abs diff {diff:.3g}")
    assert diff < 1e-4, diff
    saved = json.loads((tmp_path / "hf" / "mmtok_vocab.json").read_text())
    assert saved["fingerprint"] == vocab.fingerprint and saved["ranges"]["image"] == [vocab.range("image").start, vocab.range("image").stop]
    assert Vocabulary.from_dict(saved["vocab"]) == vocab


def test_export_hf_refuses_3d_rope(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _tiny_run(tmp_path / "run", rope_3d=True)
    assert main(["export-hf", "--run", str(run), "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--rope-3d" in err
    from mmtok.lm.hf import export_hf

    with pytest.raises(MmtokError, match="rope-3d"):
        export_hf(run, tmp_path / "hf")
