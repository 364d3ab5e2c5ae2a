"""Tokenize runs keyed on what the tokenizers are, not how they are spelt (checkpoint folders recorded as
absolute paths, folders written by earlier versions still resumed); shards read without holding one file open
per shard; empty documents skipped as "no segments" by both engines."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmtok.cli import main
from mmtok.core.errors import CorpusError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.ray_engine import TokenizeDocuments
from mmtok.data.shards import open_shards
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver
from mmtok.stream.text import train_bpe

ROOT = Path(__file__).resolve().parents[1]


def write_docs(path: Path, docs: list[Any]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def bins(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.bin"))}


def kill(folder: Path) -> None:
    """What a run killed before its end leaves: no manifest, its last shard never committed."""
    (folder / "manifest.json").unlink()
    last = sorted(folder.glob("shard-*.json"))[-1]
    last.unlink()


# --------------------------------------------------------------------------- 1. tokenizers: identity, not spelling


@pytest.fixture
def bpe_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A corpus and a BPE text tokenizer folder ``bpe`` beside it, the working folder set there."""
    train_bpe(["xxxx yyyy zzzz"] * 20, vocab_size=260).save(tmp_path / "bpe")
    monkeypatch.chdir(tmp_path)
    return write_docs(tmp_path / "docs.jsonl", [{"segments": [f"xxxx yyyy {k} " * (1 + k % 4)]} for k in range(12)])


def test_a_run_goes_on_however_its_tokenizer_folder_is_spelt(bpe_corpus: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    m = tokenize_corpus(bpe_corpus, out, tokenizers=TokenizerSpec(text="bpe"), shard_tokens=40)
    assert m["tokenizers"]["text"] == str((tmp_path / "bpe").resolve())  # found from any working folder
    assert tokenize_corpus(bpe_corpus, out, tokenizers=TokenizerSpec(text="./bpe"), shard_tokens=40) == m
    kill(out)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # another working folder, another spelling of the same folder
    assert tokenize_corpus(bpe_corpus, out, tokenizers=TokenizerSpec(text="../bpe"), shard_tokens=40) \
        == tokenize_corpus(bpe_corpus, fresh, tokenizers=TokenizerSpec(text=str(tmp_path / "bpe")), shard_tokens=40)
    assert bins(out) == bins(fresh) and len(bins(out)) > 2
    spec = TokenizerSpec.from_file_record(m["tokenizers"], where="manifest")
    assert build_interleaver(spec).vocab == open_shards(out).vocab


def test_shipped_names_and_custom_tokenizers_are_recorded_as_given(tmp_path: Path) -> None:
    spec = TokenizerSpec(image="tests.test_interleave:PaletteImages")
    assert spec.resolved() == spec and TokenizerSpec().resolved() == TokenizerSpec()
    docs = write_docs(tmp_path / "docs.jsonl", [{"segments": ["hi"]}])
    assert tokenize_corpus(docs, tmp_path / "o", tokenizers=spec)["tokenizers"] == {
        "text": "byte", "image": spec.image, "audio": None, "video": None}


def as_spelt(out: Path, spelt: dict[str, Any]) -> str:
    """Rewrite ``out`` as earlier versions wrote it: the run id hashes the tokenizers as spelt with the other
    settings, the corpus's sha256 and the vocabulary's fingerprint, and the manifest records that spelling."""
    m = json.loads((out / "manifest.json").read_text())
    settings = {"part": m["part"], "shard_tokens": m["shard_tokens"], "dtype": m["dtype"], "tokenizers": spelt}
    key = {**settings, "source_sha256": m["source"]["sha256"], "vocab": m["fingerprint"]}
    run = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    for index in out.glob("shard-*.json"):
        index.write_text(json.dumps({**json.loads(index.read_text()), "run": run}, indent=1) + "\n")
    (out / "manifest.json").write_text(json.dumps({**m, "run": run, "tokenizers": spelt}, indent=1) + "\n")
    return run


def test_a_folder_written_with_the_spelling_in_its_run_id_still_resumes(bpe_corpus: Path, tmp_path: Path) -> None:
    spelt = {"text": "bpe", "image": None, "audio": None, "video": None}
    out, fresh = tmp_path / "old", tmp_path / "fresh"
    tokenize_corpus(bpe_corpus, fresh, tokenizers=TokenizerSpec(text="bpe"), shard_tokens=40)
    tokenize_corpus(bpe_corpus, out, tokenizers=TokenizerSpec(text="bpe"), shard_tokens=40)
    run = as_spelt(out, spelt)
    old = json.loads((out / "manifest.json").read_text())
    for spelling in ("bpe", "./bpe"):  # finished: read as it is, whatever the spelling
        assert tokenize_corpus(bpe_corpus, out, tokenizers=TokenizerSpec(text=spelling), shard_tokens=40) == old
    assert len(open_shards(out)) == 12
    kill(out)
    with pytest.raises(CorpusError, match="holds shards of a different run") as e:  # its id holds the spelling
        tokenize_corpus(bpe_corpus, out, tokenizers=TokenizerSpec(text="./bpe"), shard_tokens=40)
    assert "\n" not in str(e.value)
    m = tokenize_corpus(bpe_corpus, out, tokenizers=TokenizerSpec(text="bpe"), shard_tokens=40)
    assert m["run"] == run and {json.loads(p.read_text())["run"] for p in out.glob("shard-*.json")} == {run}
    assert bins(out) == bins(fresh) and m["docs"] == 12 and len(open_shards(out)) == 12
    assert tokenize_corpus(bpe_corpus, out, tokenizers=TokenizerSpec(text="./bpe"), shard_tokens=40) == m


def test_another_tokenizer_is_still_refused_and_named(bpe_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    tokenize_corpus(bpe_corpus, out, tokenizers=TokenizerSpec(text="bpe"), shard_tokens=40)
    with pytest.raises(CorpusError, match=rf"other settings \(saved vs now: --text {tmp_path / 'bpe'} vs byte; "
                                          r"text_size: 260 vs 256; text tokenizer: [0-9a-f]{16} vs byte-utf8"):
        tokenize_corpus(bpe_corpus, out, shard_tokens=40)
    with pytest.raises(CorpusError, match=r"saved vs now: --shard-tokens 40 vs 30\)"):
        tokenize_corpus(bpe_corpus, out, tokenizers=TokenizerSpec(text="./bpe"), shard_tokens=30)


# --------------------------------------------------------------------------- 2. no file held open per shard

FEW_FILES = """
import os, resource, sys
import numpy as np
from mmtok.data.export import export_shards
from mmtok.data.packing import PackedDataset
from mmtok.data.shards import open_shards

folder, out = sys.argv[1], sys.argv[2]
used = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 64
resource.setrlimit(resource.RLIMIT_NOFILE, (used + 40, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
shards = open_shards(folder)
ds = PackedDataset(folder, 16, shuffle=True)
windows = sum(int((ds[k]["loss_weight"] > 0).sum()) for k in range(len(ds)))
summary = export_shards(folder, to="bin", out=out)
flat = np.fromfile(os.path.join(out, "tokens.bin"), dtype=np.uint16)
whole = np.concatenate([np.asarray(t) for t in shards.tokens])
print(len(shards.tokens), len(shards), sum(d.size for d in shards), windows > 0, bool((flat == whole).all()),
      summary["docs"])
"""


def test_hundreds_of_shards_open_under_a_low_file_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("resource")
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # 300 shard commits: their durability is not the point here
    docs = write_docs(tmp_path / "docs.jsonl", [{"segments": [f"d{k}"]} for k in range(300)])
    m = tokenize_corpus(docs, tmp_path / "s", shard_tokens=1)
    assert len(m["shards"]) == 300
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", FEW_FILES, str(tmp_path / "s"), str(tmp_path / "flat")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["300", "300", str(m["tokens"]["total"]), "True", "True", "300"]


def test_a_shard_reads_what_its_memory_map_would(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs.jsonl", [{"segments": ["x" * (5 + k)]} for k in range(9)])
    tokenize_corpus(docs, tmp_path / "s", shard_tokens=20)
    shards = open_shards(tmp_path / "s")
    for f in shards.tokens:
        mapped = np.memmap(f.path, dtype=f.dtype, mode="r")
        assert (f.size, f.shape, f.nbytes, len(f)) == (mapped.size, mapped.shape, mapped.nbytes, len(mapped))
        for key in (slice(None), slice(2, 7), slice(-3, None), slice(5, 2), slice(0, 99), slice(1, None, 2),
                    np.array([0, 3]), np.arange(f.size) % 2 == 0):
            assert f[key].tolist() == mapped[key].tolist(), key
        assert [int(f[k]) for k in (0, -1)] == [int(mapped[0]), int(mapped[-1])]
        assert np.asarray(f, dtype=np.int64).tolist() == mapped.tolist() and not f[1:3].flags.writeable
        with pytest.raises(IndexError):
            f[f.size]
    blob = pickle.dumps(shards)  # a DataLoader worker's copy: paths, not ids
    assert [t.tolist() for t in pickle.loads(blob)] == [t.tolist() for t in shards]


def test_a_shard_cut_or_removed_after_opening_is_one_line(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs.jsonl", [{"segments": ["x" * 30]} for _ in range(2)])
    tokenize_corpus(docs, tmp_path / "s", shard_tokens=20)
    shards = open_shards(tmp_path / "s")
    first = shards.tokens[0].path
    first.write_bytes(first.read_bytes()[:10])
    with pytest.raises(CorpusError, match=r"shard-00000\.bin is shorter than the 32 ids its index lists") as e:
        shards[0]
    shards.tokens[1].path.unlink()
    with pytest.raises(CorpusError, match=r"shard-00001\.bin cannot be read \(No such file or directory\)") as f:
        shards[1]
    assert "\n" not in str(e.value) + str(f.value)


# --------------------------------------------------------------------------- 3. empty documents


EMPTY = [{"segments": []}, {"segments": [""]}, {"segments": [{"text": ""}, ""]}]


def test_empty_documents_are_skipped_as_no_segments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = write_docs(tmp_path / "docs.jsonl", [{"segments": ["a"]}, *EMPTY, {"segments": [" "]}])
    m = tokenize_corpus(docs, tmp_path / "o")
    assert m["docs"] == 2 and m["tokens"]["total"] == 6  # <bos> a <eos>, <bos> " " <eos>
    assert m["skipped"] == [{"line": line, "reason": "no segments"} for line in (2, 3, 4)]
    assert main(["tokenize", str(docs), "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["docs"], summary["skipped"]) == (2, 3)
    with pytest.raises(CorpusError, match=r"docs\.jsonl:2: no segments \(found before any document was tokenized.*without --strict to skip it"):
        tokenize_corpus(docs, tmp_path / "strict", strict=True)


def test_rows_of_nulls_are_skipped_as_no_segments(tmp_path: Path) -> None:
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"texts": [["hi"], [None, None], [], [""]], "images": [[None], [None, None], [], [None]]}),
                   tmp_path / "rows.parquet")
    m = tokenize_corpus(tmp_path / "rows.parquet", tmp_path / "o")
    assert m["docs"] == 1 and [s["line"] for s in m["skipped"]] == [2, 3, 4]
    assert {s["reason"] for s in m["skipped"]} == {"no segments"}


def test_the_ray_engines_callable_skips_them_the_same_way() -> None:
    tok = TokenizeDocuments(TokenizerSpec(), base=Path.cwd())
    lines = ["{\"segments\": [\"hi\"]}", *map(json.dumps, EMPTY), "not json"]
    out = tok({"line": np.arange(1, len(lines) + 1), "json": np.array(lines, dtype=object)})
    assert out["ids"][0].tolist() == [257, 104, 105, 258] and out["ids"][0].dtype == np.uint16
    assert list(out["skip_reason"][:4]) == ["", "no segments", "no segments", "no segments"]
    assert out["skip_reason"][4].startswith("invalid JSON") and all(ids.size == 0 for ids in out["ids"][1:])
