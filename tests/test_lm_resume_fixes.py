"""mmtok train --resume: the global batch is kept across another number of processes (and any split of it is
taken), and --steps may not fall below the step reached; another --steps redraws the cosine, said on stderr."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmtok.core.checkpoint import read_config
from mmtok.core.errors import ResumeMismatchError
from mmtok.lm import train as train_module
from mmtok.lm.train import lr_at, train
from mmtok.lm.train_checks import global_batch
from tests.test_hardening_train import shards as hardening_shards
from tests.test_hardening_train import small

ROOT = Path(__file__).resolve().parents[1]
shards = hardening_shards  # the same small corpus, made once for this module


def log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def cut_back(run: Path, to: Path) -> Path:
    """A copy of ``run`` as a kill right after its checkpoint of step 2 leaves it."""
    shutil.copytree(run, to)
    shutil.rmtree(to / "ckpt-0000004")
    (to / ".lock").unlink(missing_ok=True)
    return to


def as_two_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run that follows counts itself as rank 0 of 2 processes (no process group: the checks alone)."""
    monkeypatch.setattr(train_module, "_init_process", lambda cfg: (torch.device("cpu"), 2, 0))


def test_a_run_of_two_processes_records_them_and_is_refused_on_one_with_its_per_process_batch(
        shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        as_two_ranks(m)
        run = train(small(shards, tmp_path / "run"), progress=False)
    config = read_config(run / "ckpt-0000004")["config"]
    assert config["batch"] == {"world_size": 2, "global": 4}
    before = log(run)
    with pytest.raises(ResumeMismatchError) as e:
        train(small(shards, run, steps=6), resume=True, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and msg == (
        f"--resume {run}: a global batch of 2 windows on 1 process (the run's: 4 = --batch-size 2 × --grad-accum 1 "
        "× 2 processes); these fix its data order and positions: keep them with --batch-size 4 on 1 process, or "
        "train into a new --out")
    assert log(run) == before
    # 3 windows do not split over 2 processes: the run's own split is named
    with monkeypatch.context() as m, pytest.raises(ResumeMismatchError, match=r"keep them with --batch-size 2 on 2 "
                                                   r"processes \(4 windows do not split over 3 processes\)"):
        m.setattr(train_module, "_init_process", lambda cfg: (torch.device("cpu"), 3, 0))
        train(small(shards, run, steps=6), resume=True, progress=False)


def test_the_same_global_batch_split_otherwise_goes_on_with_the_same_windows(
        shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = train(small(shards, tmp_path / "ref", grad_accum=2), progress=False)
    run = cut_back(ref, tmp_path / "run")
    capsys.readouterr()
    train(small(shards, run, batch_size=4, grad_accum=1), resume=True, progress=False)
    err = capsys.readouterr().err
    assert (f"mmtok train: {run} goes on with its global batch of 4 windows split as --batch-size 4 × --grad-accum 1 "
            "× 1 process (the run's: 2 × 2 × 1 process): the same windows in every step and the same schedule; the "
            "loss agrees with an unbroken run's to float rounding, not bit for bit") in err
    for a, b in zip(log(run), log(ref), strict=True):
        assert (a["step"], a["lr"]) == (b["step"], b["lr"])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
    assert read_config(run / "ckpt-0000004")["config"]["batch"] == {"world_size": 1, "global": 4}


def test_a_run_saved_before_the_processes_were_recorded_counts_them_from_its_data_position() -> None:
    old = {"train": {"batch_size": 2, "grad_accum": 3}}
    assert global_batch(old, step=5, consumed=60) == (2, 12)  # 60 windows in 5 steps of 6 a process: 2 processes
    assert global_batch(old, step=5, consumed=30) == (1, 6)
    assert global_batch(old, step=5, consumed=45) == (1, 6)  # no whole number: 1
    assert global_batch({**old, "batch": {"world_size": 4, "global": 24}}, step=5, consumed=30) == (4, 24)


def test_steps_below_the_step_reached_are_refused_in_the_tokenizer_trainers_words(
        shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main

    run = train(small(shards, tmp_path / "run"), progress=False)
    before = log(run)
    with pytest.raises(ResumeMismatchError) as e:
        train(small(shards, run, steps=3), resume=True, progress=False)
    assert str(e.value) == (f"--steps 3: {run} has already reached step 4; give --steps 4 or more to extend it, "
                            "or leave --steps out")
    capsys.readouterr()
    assert main(["train", "--data", str(shards), "--out", str(run), "--resume", "--steps", "2"]) == 2
    assert "--steps 2: " in capsys.readouterr().err
    assert log(run) == before and sorted(p.name for p in run.glob("ckpt-*")) == ["ckpt-0000002", "ckpt-0000004"]


def test_another_steps_redraws_the_cosine_and_says_so(shards: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cfg = small(shards, tmp_path / "run", steps=6, warmup=1, lr=3e-3, min_lr=3e-4)
    run = train(cfg, progress=False)
    capsys.readouterr()
    longer = small(shards, run, steps=10, warmup=1, lr=3e-3, min_lr=3e-4)
    train(longer, resume=True, progress=False)
    err = capsys.readouterr().err
    assert (f"mmtok train: --steps 10 (the run's: 6) stretches the cosine of {run} to end at step 10: the learning "
            f"rate at step 7 is {lr_at(longer, 6):.3g} (by the run's own schedule: 0.0003)") in err
    rows = log(run)
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert [r["lr"] for r in rows[6:]] == [lr_at(longer, s) for s in range(6, 10)]
    # resumed again with its own --steps: nothing to say
    train(small(shards, run, steps=10, warmup=1, lr=3e-3, min_lr=3e-4), resume=True, progress=False)
    assert "cosine" not in capsys.readouterr().err


@pytest.mark.slow
def test_two_gloo_ranks_cut_and_resumed_on_one_process_keep_the_curve(shards: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = ["--data", str(shards), "--seq-len", "32", "--batch-size", "2", "--steps", "4", "--warmup", "1",
            "--save-every", "2", "--threads", "1", "--out", str(tmp_path / "ddp")]
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29561",
                    "-m", "mmtok.cli", "train", *args], check=True, env=env, capture_output=True, timeout=300)
    ddp = tmp_path / "ddp"
    assert read_config(ddp / "ckpt-0000004")["config"]["batch"] == {"world_size": 2, "global": 4}
    run = cut_back(ddp, tmp_path / "run")
    with pytest.raises(ResumeMismatchError, match="keep them with --batch-size 4 on 1 process"):
        train(small(shards, run), resume=True, progress=False)
    train(small(shards, run, batch_size=4), resume=True, progress=False)
    for a, b in zip(log(run), log(ddp), strict=True):
        assert (a["step"], a["lr"]) == (b["step"], b["lr"])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)


def test_a_warmup_as_long_as_the_run_is_said_and_the_last_step_runs_at_the_floor(
        shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = train(small(shards, tmp_path / "long", steps=4, warmup=8, lr=3e-3, min_lr=3e-4), progress=False)
    err = capsys.readouterr().err
    assert "mmtok train: --warmup 8 is not below --steps 4: the learning rate climbs for the whole run, its last " \
           "step at 50% of --lr" in err
    assert [r["lr"] for r in log(run)] == pytest.approx([3e-3 * k / 8 for k in (1, 2, 3, 4)])
    run = train(small(shards, tmp_path / "short", steps=4, warmup=1, lr=3e-3, min_lr=3e-4), progress=False)
    assert "--warmup" not in capsys.readouterr().err
    assert log(run)[-1]["lr"] == pytest.approx(3e-4)  # the last step at --min-lr
