"""The Ray Data engine on a local 2-CPU cluster: shards byte-identical to the local engine's, resume after a
driver that stopped part-way, the ``mmtok tokenize --engine ray`` command, and ``import mmtok`` without Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mmtok.core.errors import CorpusError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.tokenizer_spec import TokenizerSpec
from tests.test_data import BAD_LINES, SPEC, make_corpus

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local 2-CPU Ray cluster for this module; stopped, and its leftover processes killed by PID."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), old]))  # workers import tests.*
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 << 20)
    try:
        yield
    finally:
        started = _descendants(os.getpid())
        ray.shutdown()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in started):
            time.sleep(0.2)
        for pid in started:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".lock"}


def test_engine_ray_writes_the_local_engines_bytes_and_resumes(tmp_path: Path, cluster: None) -> None:
    from mmtok.cli import main
    from mmtok.data.ray_engine import RayEngine

    corpus = make_corpus(tmp_path / "corpus", n_docs=40)
    local = tmp_path / "local"
    m = tokenize_corpus(corpus, local, tokenizers=SPEC, shard_tokens=300)
    assert len(m["shards"]) >= 4 and {s["line"] for s in m["skipped"]} == set(BAD_LINES)

    remote = tmp_path / "ray"
    media = ["--image", SPEC.image, "--audio", SPEC.audio]
    assert main(["tokenize", str(corpus), "--out", str(remote), "--quiet", "--shard-tokens", "300", *media,
                 "--engine", "ray", "--workers", "3"]) == 0  # --workers is ignored under ray
    assert _files(remote) == _files(local)

    # a driver killed after four shards: the next run keeps them and writes the rest
    for p in [*sorted(remote.glob("shard-*"))[8:], remote / "manifest.json"]:
        p.unlink()
    assert tokenize_corpus(corpus, remote, tokenizers=SPEC, shard_tokens=300, engine=RayEngine()) == m
    assert _files(remote) == _files(local)


def test_a_carriage_return_inside_a_line_gives_the_local_engines_bytes(tmp_path: Path, cluster: None) -> None:
    """JSON allows ``\\r`` between tokens: both engines split lines on ``\\n`` alone, so the shards and the
    skipped lines' numbers are the same."""
    from mmtok.data.ray_engine import RayEngine
    from tests.test_ray_lines import CORPUS

    (tmp_path / "docs.jsonl").write_bytes((CORPUS + b"\n") * 3)
    m = tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "local", tokenizers=TokenizerSpec(), shard_tokens=40)
    assert m["docs"] == 12 and len(m["shards"]) >= 2
    r = tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "ray", tokenizers=TokenizerSpec(), shard_tokens=40,
                        engine=RayEngine())
    assert r == m and _files(tmp_path / "ray") == _files(tmp_path / "local")


def test_tokenize_documents_contract(tmp_path: Path) -> None:
    """The map_batches callable, called as Ray calls it (one actor's view)."""
    from mmtok.data import TokenizeDocuments

    tok = TokenizeDocuments(TokenizerSpec(), base=tmp_path)
    batch = {"line": np.array([3, 5, 8]), "json": np.array([json.dumps({"segments": ["hi"]}), "{", ""], dtype=object),
             "skip_reason": np.array(["", "", "line is not valid UTF-8"], dtype=object)}
    out = tok(batch)
    assert out["line"].tolist() == [3, 5, 8] and out["line"].dtype == np.int64
    assert out["ids"][0].tolist() == [257, 104, 105, 258] and out["ids"][1].size == 0
    assert out["skip_reason"][0] == "" and out["skip_reason"][1].startswith("invalid JSON")
    assert out["skip_reason"][2] == "line is not valid UTF-8"
    with pytest.raises(CorpusError, match="no image tokenizer"):  # a mistake in the call stops the run
        tok({"line": np.array([1]), "json": np.array([json.dumps({"segments": [{"image": "x.png"}]})])})


def test_import_mmtok_does_not_import_ray() -> None:
    code = "import sys, mmtok, mmtok.data; assert 'ray' not in sys.modules; mmtok.data.TokenizeDocuments"
    subprocess.run([sys.executable, "-c", code + "; assert 'ray' not in sys.modules"], check=True, cwd=ROOT)


def test_the_ray_engine_counts_silent_audio_as_the_local_engine_does(tmp_path: Path, cluster: None) -> None:
    """Silence warnings given in Ray's actors come back to the driver: the same indexes, manifest and count."""
    from mmtok.data.ray_engine import RayEngine
    from tests.test_media_fixes import SILENT, silent_corpus, tokenized

    corpus = silent_corpus(tmp_path / "c")
    local, said = tokenized(corpus, tmp_path / "local")
    remote, said_ray = tokenized(corpus, tmp_path / "ray", engine=RayEngine())
    assert remote == local and remote["silent_audio"] == SILENT
    assert [w for w in said_ray if "silence" in w] == [w for w in said if "silence" in w] != []
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")


def test_a_silent_sound_among_many_documents_is_counted_once_blocks_are_joined(tmp_path: Path,
                                                                              cluster: None) -> None:
    """More documents than one batch per block: Ray joins the batches' columns, which an object column of lists
    did not survive (the batches without silence came back as None)."""
    import soundfile as sf

    from mmtok.data.ray_engine import RayEngine
    from tests.test_media_fixes import tokenized

    corpus = tmp_path / "c"
    corpus.mkdir()
    sf.write(corpus / "quiet.wav", np.zeros(1600, np.float32), 16000, subtype="PCM_16")
    docs = [{"segments": [f"document {k}"]} for k in range(120)]
    docs[97] = {"segments": ["silence", {"audio": "quiet.wav"}]}
    (corpus / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    local, _ = tokenized(corpus / "docs.jsonl", tmp_path / "local")
    remote, said = tokenized(corpus / "docs.jsonl", tmp_path / "ray", engine=RayEngine())
    assert remote == local and remote["silent_audio"] == 1 and remote["docs"] == 120
    assert [w for w in said if "silence" in w] != []
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
