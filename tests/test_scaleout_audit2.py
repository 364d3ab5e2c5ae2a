"""Scale-out workflows: a torchrun launcher killed outright takes its ranks with it, shards changed under a
training run stop it before a checkpoint records them, and a finished tokenize run is read back from a
read-only folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmtok.core.errors import CorpusError, TrainingError, UsageError
from mmtok.data.corpus import tokenize_corpus
from mmtok.lm import train as train_module
from mmtok.lm.train import train
from tests.test_hardening_train import shards as hardening_shards
from tests.test_hardening_train import small

ROOT = Path(__file__).resolve().parents[1]
shards = hardening_shards  # the same small corpus, made once for this module

# a launcher (as torchrun is) that starts one rank in a session of its own, prints its pid and waits
LAUNCHER = """
import subprocess, sys, time
rank = subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=True, stderr=open(sys.argv[2], "w"))
print(rank.pid, flush=True)
time.sleep(60)
"""
RANK = """
import os, sys, time
from pathlib import Path
os.environ["TORCHELASTIC_RUN_ID"] = "test"
from mmtok.lm.watch import stop_with_launcher
assert stop_with_launcher(Path("runs/x"), rank=1)
print("watching", file=sys.stderr, flush=True)
time.sleep(60)
"""


def _state(pid: int) -> str:
    """A process's state letter (``Z`` once it has exited and not been reaped), ``gone`` when there is none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_rank_ends_when_its_torchrun_is_killed_outright(tmp_path: Path) -> None:
    err = tmp_path / "rank.err"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, RANK, str(err)], stdout=subprocess.PIPE, text=True,
                                env=env)
    assert launcher.stdout is not None
    rank = int(launcher.stdout.readline())
    try:
        deadline = time.monotonic() + 30
        while "watching" not in err.read_text() and time.monotonic() < deadline:  # ranks start slowly
            time.sleep(0.05)
        assert _state(rank) not in ("Z", "gone"), err.read_text()
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 5
        while _state(rank) not in ("Z", "gone") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(rank) in ("Z", "gone"), "the rank trains on after its launcher was killed"
        said = err.read_text()
        assert "rank 1 stops: the torchrun that launched it" in said and "runs/x" in said and "--resume" in said
    finally:
        if _state(rank) not in ("Z", "gone"):
            os.kill(rank, signal.SIGKILL)


def test_no_launcher_is_watched_outside_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.lm.watch import stop_with_launcher

    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert not stop_with_launcher(Path("run"), rank=0)


def _rewrite_after(monkeypatch: pytest.MonkeyPatch, shard: Path, new: bytes, *, step: int) -> None:
    """The run's shard file ``shard`` is written anew with ``new`` (a new file renamed over it, as a tokenize
    run writes) once ``step`` optimizer steps are done."""
    step_once = train_module._optimisation_step

    def stepped(r, batches):  # type: ignore[no-untyped-def]
        out = step_once(r, batches)
        if r.step == step:
            tmp = shard.with_name(shard.name + ".new")
            tmp.write_bytes(new)
            os.replace(tmp, shard)
        return out

    monkeypatch.setattr(train_module, "_optimisation_step", stepped)


def _copy(shards: Path, data: Path) -> Path:
    """A copy of the shard folder ``shards`` at ``data``, to change under a run."""
    data.mkdir()
    for f in shards.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    return data


def test_a_shard_changed_under_a_training_run_stops_it_before_the_next_checkpoint(
        shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _copy(shards, tmp_path / "shards")
    shard = data / "shard-00001.bin"
    ids = np.fromfile(shard, dtype=json.loads((data / "manifest.json").read_text())["dtype"])
    other = ids.copy()
    other[1:-1] = other[1:-1][::-1]  # the same ids in another order: the same size, other documents
    assert not np.array_equal(other, ids)
    _rewrite_after(monkeypatch, shard, other.tobytes(), step=3)
    run = tmp_path / "run"
    with pytest.raises(TrainingError) as e:
        train(small(data, run, steps=6, save_every=2))
    said = str(e.value)
    assert str(shard) in said and "changed while this run trained" in said
    assert "since ckpt-0000002" in said and "no checkpoint is written for step 4" in said
    assert sorted(p.name for p in run.glob("ckpt-*")) == ["ckpt-0000002"]  # what the shards it records made


def test_a_shard_written_again_with_the_same_bytes_is_no_change(
        shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _copy(shards, tmp_path / "shards")
    shard = data / "shard-00001.bin"
    _rewrite_after(monkeypatch, shard, shard.read_bytes(), step=1)  # the same corpus tokenized again
    run = train(small(data, tmp_path / "run", steps=4, save_every=2))
    assert sorted(p.name for p in run.glob("ckpt-*")) == ["ckpt-0000002", "ckpt-0000004"]


def _unwritable(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``folder`` as a read-only mount shows it (root writes through permission bits, so they are faked here)."""
    import mmtok.data.corpus as corpus_module
    import mmtok.data.outdir as outdir_module

    access = os.access
    monkeypatch.setattr(outdir_module.os, "access", lambda p, mode: access(p, mode) and not (
        Path(p) == folder and mode & os.W_OK))

    def claimed(out: Path, *, restart: bool = False):  # type: ignore[no-untyped-def]
        raise CorpusError(f"cannot tokenize into {out}: Read-only file system ({out / '.lock'})")

    monkeypatch.setattr(corpus_module, "claimed", claimed)


def test_a_finished_run_is_read_back_from_a_folder_that_cannot_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"segments": [f"document {i}"]}) + "\n" for i in range(5)))
    out = tmp_path / "shards"
    done = tokenize_corpus(corpus, out, shard_tokens=20)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _unwritable(monkeypatch, out)
    assert tokenize_corpus(corpus, out, shard_tokens=20) == done  # a pipeline run again is a no-op
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(CorpusError, match="--shard-tokens 20 vs 30"):  # other settings: refused as ever
        tokenize_corpus(corpus, out, shard_tokens=30)


def test_an_out_that_cannot_be_made_says_what_to_do(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(json.dumps({"segments": ["hello"]}) + "\n")
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(CorpusError, match=r"cannot tokenize into .*a-file/shards: .*give another --out"):
        tokenize_corpus(corpus, tmp_path / "a-file" / "shards")
    assert (tmp_path / "a-file").read_text() == "mine"


def test_a_world_size_left_in_the_shell_is_refused_before_anything_is_written(
        shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    run = tmp_path / "run"
    with pytest.raises(UsageError, match=r"WORLD_SIZE=2 and RANK=0 .* torchrun --nproc-per-node 2 .* unset RANK"):
        train(small(shards, run))
    assert not run.exists()


def test_a_part_the_environment_chose_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main

    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"segments": [f"document {i}"]}) + "\n" for i in range(4)))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["tokenize", str(corpus), "--out", str(tmp_path / "shards"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "part 1/2 (RANK and WORLD_SIZE in the environment): lines 2, 4, 6, ..." in err
    assert str(tmp_path / "shards" / "part-00001-of-00002") in err and "--part 0/1" in err
    assert main(["tokenize", str(corpus), "--out", str(tmp_path / "whole"), "--no-progress", "--part", "0/1"]) == 0
    assert "environment" not in capsys.readouterr().err  # a part given is not the environment's


def test_a_corpus_appended_to_while_it_is_tokenized_gets_no_manifest(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import mmtok.data.corpus as corpus_module

    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"segments": [f"document {i}"]}) + "\n" for i in range(6)))
    write = corpus_module._write

    def appended_meanwhile(results, writer, *args, **kwargs):  # type: ignore[no-untyped-def]
        with open(corpus, "a") as f:  # a live corpus, still being written while the run reads it
            f.write(json.dumps({"segments": ["a late document"]}) + "\n")
        return write(results, writer, *args, **kwargs)

    monkeypatch.setattr(corpus_module, "_write", appended_meanwhile)
    out = tmp_path / "shards"
    with pytest.raises(CorpusError, match=r"docs.jsonl changed while it was tokenized .* no manifest was written.*"
                                          r"--restart"):
        tokenize_corpus(corpus, out, shard_tokens=20)
    assert not (out / "manifest.json").exists() and list(out.glob("shard-*.bin"))  # the shards stay
    monkeypatch.undo()
    with pytest.raises(CorpusError, match="changed since the shards"):  # a rerun does not take them as this corpus's
        tokenize_corpus(corpus, out, shard_tokens=20)
    assert tokenize_corpus(corpus, out, shard_tokens=20, restart=True)["docs"] == 7


@pytest.mark.parametrize(("kw", "said"), [({"workers": 0}, r"workers \(--workers\) must be at least 1 .*got 0$"),
                                          ({"shard_tokens": -5}, r"shard_tokens \(--shard-tokens\) .*got -5$")])
def test_a_count_below_one_is_refused_naming_that_count_alone(tmp_path: Path, kw: dict, said: str) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(json.dumps({"segments": ["hello"]}) + "\n")
    with pytest.raises(CorpusError, match=said) as e:
        tokenize_corpus(corpus, tmp_path / "shards", **kw)
    assert "16777216" not in str(e.value) and not (tmp_path / "shards").exists()
