"""Several processes: ranks that must resume from the same checkpoint, PackedDataset's equal slices per rank,
and SIGTERM, which ends a run as Ctrl-C does (the run folder's lock released)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mmtok.core.run_lock import LOCK_NAME, hold_run_folder
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.packing import PackedDataset
from mmtok.lm.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ddp-corpus")
    docs = folder / "docs.jsonl"
    rng = np.random.default_rng(0)
    words = ["tok", "ens", "pack", "rank", "wind", "ow", "seed", "loss"]
    docs.write_text("".join(json.dumps({"segments": [" ".join(rng.choice(words, int(rng.integers(5, 40))))]}) + "\n"
                            for _ in range(40)))
    tokenize_corpus(docs, folder / "shards", shard_tokens=400)
    return folder / "shards"


# --------------------------------------------------------------------------- PackedDataset ranks


def test_every_rank_gets_as_many_windows_as_distributed_sampler_gives(shards: Path) -> None:
    whole = PackedDataset(shards, 9, shuffle=False)
    n = whole.num_windows
    for world in (2, 3, 4):
        assert n % world, "windows that split evenly test nothing"
        parts = [PackedDataset(shards, 9, shuffle=False, rank=r, world_size=world) for r in range(world)]
        assert {len(p) for p in parts} == {-(-n // world)}  # padded by wrapping around, the same on every rank
        for r, p in enumerate(parts):
            sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False)
            assert p._mine.tolist() == list(sampler)
        dropped = [PackedDataset(shards, 9, shuffle=False, rank=r, world_size=world, drop_last=True)
                   for r in range(world)]
        assert {len(p) for p in dropped} == {n // world}
        for r, p in enumerate(dropped):
            sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False,
                                                          drop_last=True)
            assert p._mine.tolist() == list(sampler)
    # shuffled: every window at least once per epoch, the same length on every rank in every epoch
    parts = [PackedDataset(shards, 9, seed=3, rank=r, world_size=3) for r in range(3)]
    for epoch in (0, 1):
        for p in parts:
            p.set_epoch(epoch)
        seen = [int(w) for p in parts for w in p._mine]
        assert {len(p) for p in parts} == {-(-n // 3)} and sorted(set(seen)) == list(range(n))
    assert PackedDataset(shards, 9, seed=3, rank=0, world_size=1)._mine.tolist() == PackedDataset(shards, 9,
                                                                                                   seed=3)._mine.tolist()


def test_a_rank_without_its_world_size_or_out_of_range_is_refused(shards: Path) -> None:
    with pytest.raises(ValueError, match=r"rank=1 without world_size=.*give both"):
        PackedDataset(shards, 9, rank=1)
    with pytest.raises(ValueError, match=r"world_size=2 without rank=.*give both"):
        PackedDataset(shards, 9, world_size=2)
    with pytest.raises(ValueError, match=r"rank=2 is not in \[0, world_size=2\)"):
        PackedDataset(shards, 9, rank=2, world_size=2)
    with pytest.raises(ValueError, match=r"world_size=0 .*at least 1"):
        PackedDataset(shards, 9, rank=0, world_size=0)
    with pytest.raises(TypeError, match=r"rank=True"):
        PackedDataset(shards, 9, rank=True, world_size=2)  # type: ignore[arg-type]
    n = PackedDataset(shards, 1000, shuffle=False).num_windows
    with pytest.raises(ValueError, match=rf"drop_last=True leaves no window to each of {n + 1} ranks"):
        PackedDataset(shards, 1000, rank=0, world_size=n + 1, drop_last=True)


# --------------------------------------------------------------------------- resume agreement


def test_ranks_that_found_different_checkpoints_are_named() -> None:
    from mmtok.lm.ranks import disagreement

    seen = [{"host": "a", "checkpoint": "ckpt-0000004", "step": 4, "consumed": 16, "error": None},
            {"host": "a", "checkpoint": "ckpt-0000004", "step": 4, "consumed": 16, "error": None},
            {"host": "b", "checkpoint": None, "step": 0, "consumed": 0, "error": None}]
    assert disagreement(seen, folder=Path("run")) == (
        "the processes of this run found different checkpoints to resume from in run: ranks 0-1 (host a) "
        "ckpt-0000004 (step 4), rank 2 (host b) none (a new run); --out must be one folder shared by every node "
        "(the same path on a shared file system): put the run there, or resume it on one node")
    assert disagreement(seen[:2], folder=Path("run")) is None
    failed = [*seen[:2], {**seen[0], "host": "c", "error": "ResumeMismatchError: other shards"}]
    assert disagreement(failed, folder=Path("run")) == "rank 2 (host c) could not resume from run: " \
                                                       "ResumeMismatchError: other shards"


WORKER = """
import os, sys
from mmtok.cli import main
sys.exit(main(["train", "--data", {data!r}, "--out", os.path.join({base!r}, "node" + os.environ["{var}"]),
               "--seq-len", "16", "--batch-size", "2", "--steps", "4", "--warmup", "1", "--save-every", "2",
               "--threads", "1", "--no-progress", "--resume"]))
"""


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::mmtok.lm.windows.LongDocumentsWarning")
def test_torchrun_ranks_that_see_different_run_folders_stop_with_one_error(shards: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(data=str(shards), out=str(tmp_path / "node0"), seq_len=16, batch_size=4, steps=2, warmup=1,
                      save_every=2, threads=1)
    train(cfg, progress=False)  # node 0's copy of the run; node 1 sees none
    before = (tmp_path / "node0" / "log.jsonl").read_text()
    for var, port in (("RANK", 29571), ("NONE", 29572)):  # each rank its own --out, then one --out shared by both
        script = tmp_path / f"worker-{var}.py"
        script.write_text(WORKER.format(data=str(shards), base=str(tmp_path), var=var))
        env = {**ENV, "NONE": "0"}
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                               "--master-port", str(port), str(script)], env=env, capture_output=True, text=True,
                              timeout=90)
        if var == "RANK":
            assert done.returncode != 0
            assert ("found different checkpoints to resume from in " in done.stderr
                    and "rank 0 (host " in done.stderr and ") ckpt-0000002 (step 2), rank 1 (host " in done.stderr
                    and ") none (a new run); --out must be one folder shared by every node" in done.stderr), \
                done.stderr[-3000:]
            assert (tmp_path / "node0" / "log.jsonl").read_text() == before  # nothing written was lost
            assert not (tmp_path / "node0" / LOCK_NAME).exists()
        else:
            assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "node0" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]


# --------------------------------------------------------------------------- SIGTERM


HOLDER = """
import os, signal, sys, time
from mmtok.core.run_lock import hold_run_folder
out = sys.argv[1]
mine = lambda *a: print("own handler", flush=True)
if sys.argv[2] == "own":
    signal.signal(signal.SIGTERM, mine)
before = signal.getsignal(signal.SIGTERM)
try:
    with hold_run_folder(out, checkpoint=sys.argv[3] == "checkpoint"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(2)
        print("not stopped", flush=True)
except KeyboardInterrupt as e:
    print("interrupted:", e, flush=True)
print("handler restored" if signal.getsignal(signal.SIGTERM) is before else "handler changed", flush=True)
"""


@pytest.mark.parametrize("checkpoint", ["folder", "checkpoint"])
def test_sigterm_while_a_run_folder_is_held_releases_its_lock(tmp_path: Path, checkpoint: str) -> None:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, str(script), str(out), "default", checkpoint], env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.splitlines() == ["interrupted: SIGTERM", "handler restored"]
    assert not [p for p in tmp_path.rglob("*.lock")]
    # a handler of the program's own is left to do its work
    done = subprocess.run([sys.executable, str(script), str(out), "own", checkpoint], env=ENV, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.splitlines() == ["own handler", "not stopped", "handler restored"], done.stderr[-2000:]


def test_a_run_folder_held_in_another_thread_leaves_sigterm_alone(tmp_path: Path) -> None:
    before, failures = signal.getsignal(signal.SIGTERM), []

    def hold() -> None:
        try:
            with hold_run_folder(tmp_path / "run"):
                assert signal.getsignal(signal.SIGTERM) is before
        except BaseException as e:
            failures.append(e)

    worker = threading.Thread(target=hold)
    worker.start()
    worker.join()
    assert not failures and not (tmp_path / "run" / LOCK_NAME).exists()


@pytest.mark.slow
def test_sigterm_ends_mmtok_train_as_ctrl_c_does(shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mmtok.cli", "train", "--data", str(shards), "--out", str(run),
                             "--seq-len", "16", "--batch-size", "2", "--steps", "100000", "--warmup", "1",
                             "--save-every", "2", "--threads", "1", "--no-progress"],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "ckpt-0000002").is_dir() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert "mmtok: interrupted after" in err
    assert not (run / LOCK_NAME).exists()
    assert (run / "ckpt-0000002").is_dir() and (run / "log.jsonl").exists()  # what was saved is kept
