"""Training hardening: a run folder in the way, a second process, a non-finite loss, a damaged checkpoint,
a one-rank torchrun launch, and the GPU check script's no-GPU branch."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmtok.core.errors import MmtokError, TrainingError
from mmtok.core.run_lock import LOCK_NAME, RunLock
from mmtok.data.corpus import tokenize_corpus
from mmtok.lm import train as train_module
from mmtok.lm.runs import clear_run, latest_checkpoint
from mmtok.lm.train import TrainConfig, check_config, train
from tests.test_data import SPEC, make_corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hardening-corpus")
    tokenize_corpus(make_corpus(folder, n_docs=30), folder / "shards", tokenizers=SPEC, shard_tokens=400)
    return folder / "shards"


def small(shards: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(data=str(shards), out=str(out), seq_len=32, batch_size=2, steps=4, warmup=1, save_every=2,
                keep_last=2, threads=1)
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def steps_logged(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_an_existing_run_is_refused_without_resume_or_overwrite(shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()  # an empty folder is no run
    train(small(shards, run), progress=False)
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(TrainingError, match=r"already holds a run .*--resume.*--overwrite") as err:
        train(small(shards, run, steps=6), progress=False)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in run.iterdir()) == before and steps_logged(run) == [1, 2, 3, 4]  # untouched
    train(small(shards, run, steps=6), resume=True, progress=False)
    assert steps_logged(run) == [1, 2, 3, 4, 5, 6]
    train(small(shards, run, steps=2), overwrite=True, progress=False)
    assert steps_logged(run) == [1, 2] and [p.name for p in run.glob("ckpt-*")] == ["ckpt-0000002"]
    assert not (run / LOCK_NAME).exists()


def test_a_second_process_is_locked_out_and_a_stale_lock_taken_over(shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK_NAME).write_text(f"{sleeper.pid}\n")
        with pytest.raises(TrainingError, match=rf"in use by process {sleeper.pid}"):
            train(small(shards, run), progress=False)
        assert (run / LOCK_NAME).read_text().strip() == str(sleeper.pid)  # not ours to remove
    finally:
        sleeper.kill()
        sleeper.wait()
    (run / LOCK_NAME).write_text(f"{dead_pid()}\n")  # its process is gone: stale
    train(small(shards, run), progress=False)
    assert steps_logged(run) == [1, 2, 3, 4] and not (run / LOCK_NAME).exists()


def test_run_lock_is_released_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), RunLock(tmp_path / "r") as lock:
        assert lock.path.read_text().split()[0] == str(os.getpid())
        raise RuntimeError("boom")
    assert not (tmp_path / "r" / LOCK_NAME).exists()


def test_a_non_finite_loss_stops_training_before_any_nan_checkpoint(shards: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    forward = train_module.Transformer.forward

    def poisoned(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        out = forward(self, *args, **kwargs)
        calls["n"] += 1
        return out * float("nan") if calls["n"] >= 3 else out  # one micro-batch per step: step 3 is NaN

    monkeypatch.setattr(train_module.Transformer, "forward", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"non-finite loss \(nan\) at step 3.*newest: ckpt-0000002") as err:
        train(small(shards, run, steps=6), progress=False)
    assert "\n" not in str(err.value)
    assert [p.name for p in run.glob("ckpt-*")] == ["ckpt-0000002"] and steps_logged(run) == [1, 2]
    assert not (run / LOCK_NAME).exists()
    from mmtok.core.checkpoint import load_checkpoint

    assert all(torch.isfinite(t).all() for t in load_checkpoint(run / "ckpt-0000002").tensors.values())


def test_resume_passes_over_a_damaged_newest_checkpoint(shards: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # the 2 steps before ckpt-2 in warmup: the same rates whatever --steps the cosine ends at
    ref = train(small(shards, tmp_path / "ref", steps=6, warmup=2), progress=False)
    run = train(small(shards, tmp_path / "run", warmup=2), progress=False)  # ckpt-2 and ckpt-4
    weights = run / "ckpt-0000004" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    capsys.readouterr()
    train(small(shards, run, steps=6, warmup=2), resume=True, progress=False)
    err = capsys.readouterr().err
    assert "ckpt-0000004 is damaged" in err and "resuming from" in err and "ckpt-0000002" in err
    assert steps_logged(run) == list(range(1, 7))
    ref_loss = [json.loads(x)["loss"] for x in (ref / "log.jsonl").read_text().splitlines()]
    assert [json.loads(x)["loss"] for x in (run / "log.jsonl").read_text().splitlines()] == ref_loss
    assert latest_checkpoint(run).name == "ckpt-0000006"  # type: ignore[union-attr]


def test_every_checkpoint_damaged_is_an_error(shards: Path, tmp_path: Path) -> None:
    from mmtok.core.errors import CheckpointError

    run = train(small(shards, tmp_path / "run", steps=2), progress=False)
    (run / "ckpt-0000002" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        train(small(shards, run, steps=4), resume=True, progress=False)



def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resume_and_overwrite_refuse_a_folder_that_holds_no_train_run(shards: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A vocoder's run (its own log.jsonl, no ckpt-*) is neither continued nor cleared: nothing in it changes."""
    from mmtok.cli import main

    other = tmp_path / "vocoder"
    (other / "train-state").mkdir(parents=True)
    (other / "train-state" / "config.json").write_text("{}\n")
    (other / "log.jsonl").write_text('{"step": 100, "mel_l1": 0.5, "lr": 0.0002, "grad_norm": 1.2}\n')
    (other / "notes.txt").write_text("keep\n")
    before = files(other)
    with pytest.raises(TrainingError, match=rf"--resume: {re.escape(str(other))} holds no mmtok train run to continue "
                       r"\(no ckpt-\*.*it holds log\.jsonl, notes\.txt, train-state\)") as e:
        train(small(shards, other), resume=True, progress=False)
    assert "\n" not in str(e.value)
    with pytest.raises(TrainingError, match=rf"--overwrite: {re.escape(str(other))} holds no mmtok train run"):
        train(small(shards, other), overwrite=True, progress=False)
    with pytest.raises(TrainingError, match="holds no mmtok train run"):
        clear_run(other)
    capsys.readouterr()
    assert main(["train", "--data", str(shards), "--out", str(other), "--resume", "--steps", "2", "--threads", "1"]) == 2
    assert "holds no mmtok train run" in capsys.readouterr().err
    assert files(other) == before


def test_a_run_with_no_intact_checkpoint_still_resumes_from_scratch_or_starts_over(shards: Path, tmp_path: Path) -> None:
    """What counts as a run: its checkpoints, the ones set aside as damaged, or its own log (a run stopped before
    its first checkpoint); --overwrite removes the run's files only."""
    run = train(small(shards, tmp_path / "run", steps=2), progress=False)
    (run / "ckpt-0000002").rename(run / "damaged-ckpt-0000002")  # every checkpoint set aside by an earlier resume
    (run / "log.jsonl").write_text("")
    train(small(shards, run, steps=2), resume=True, progress=False)
    assert steps_logged(run) == [1, 2] and (run / "damaged-ckpt-0000002").is_dir()
    shutil.rmtree(run / "ckpt-0000002")  # a run stopped before its first checkpoint: its log alone
    (run / "damaged-ckpt-0000002").rename(tmp_path / "aside")
    (run / "loss.png").unlink()
    (run / "notes.txt").write_text("mine\n")
    train(small(shards, run, steps=2), resume=True, progress=False)
    assert steps_logged(run) == [1, 2]
    train(small(shards, run, steps=2), overwrite=True, progress=False)
    assert steps_logged(run) == [1, 2] and (run / "notes.txt").read_text() == "mine\n"
    shutil.rmtree(run / "ckpt-0000002")
    train(small(shards, run, steps=2), overwrite=True, progress=False)
    assert sorted(p.name for p in run.iterdir()) == ["ckpt-0000002", "log.jsonl", "loss.png", "notes.txt"]


def test_a_failed_start_leaves_no_empty_run_folder(shards: Path, tmp_path: Path) -> None:
    skipped = tmp_path / "skipped.jsonl"
    skipped.write_text('{"segments": [{"image": "missing.png"}]}\n')  # its only line is skipped
    tokenize_corpus(skipped, tmp_path / "no-docs", tokenizers=SPEC)
    for data in (tmp_path / "no-such-shards", tmp_path / "no-docs"):
        with pytest.raises(MmtokError):
            train(small(data, tmp_path / "new" / "run"), progress=False)
        assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(MmtokError):
        train(small(tmp_path / "no-such-shards", mine), progress=False)
    assert mine.is_dir()  # there before: not this call's to remove

@pytest.mark.parametrize(("field", "value", "match"), [
    ("steps", 0, "steps must be at least 1"), ("batch_size", 0, "batch_size"), ("grad_accum", 0, "grad_accum"),
    ("save_every", 0, "save_every"), ("preset", "nope", "tiny, small, base"), ("lr", math.nan, "lr must be"),
    ("seed", -1, r"seed must be in \[0, 4294967295\]"), ("seed", 2**63, "seed must be"), ("seed", 1.5, "seed"),
])
def test_bad_settings_are_refused_before_anything_is_written(tmp_path: Path, field: str, value: object,
                                                             match: str) -> None:
    cfg = TrainConfig(data=str(tmp_path / "shards"), out=str(tmp_path / "run"), **{field: value})  # type: ignore[arg-type]
    with pytest.raises(TrainingError, match=match):
        check_config(cfg)
    with pytest.raises(TrainingError, match=match):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_one_rank_torchrun_joins_a_process_group(shards: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--master-port",
                          "29547", "-m", "mmtok.cli", "train", "--data", str(shards), "--out", str(tmp_path / "r"),
                          "--seq-len", "32", "--batch-size", "2", "--steps", "2", "--save-every", "2",
                          "--warmup", "1", "--threads", "1"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert steps_logged(tmp_path / "r") == [1, 2]
    assert f"run {tmp_path / 'r'}: newest checkpoint {tmp_path / 'r' / 'ckpt-0000002'}, final loss" in out.stdout


def test_image_tokenizer_training_stops_at_a_non_finite_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.image import train as image_train
    from tests.test_image_train import _train_args

    monkeypatch.setattr(image_train, "ssim", lambda a, b: torch.full((a.shape[0],), float("nan")))
    with pytest.raises(TrainingError, match=r"non-finite loss \(nan\) at step 1"):
        image_train.main([*_train_args(tmp_path, "--save-every", "1", "--ssim-weight", "0.1"), "--steps", "2"])
    assert not (tmp_path / "run" / "model").exists()


def test_audio_tokenizer_training_stops_at_a_non_finite_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    from mmtok.audio import train as audio_train
    from mmtok.audio.tokenizer import AudioTokenizer
    from tests.test_audio import speechlike

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        sf.write(data / f"clip-{i}.wav", speechlike(1.0, seed=i), 16000)
    forward = AudioTokenizer.forward

    def nan_loss(self, mel):  # type: ignore[no-untyped-def]
        out = forward(self, mel)
        return dataclasses.replace(out, loss=out.loss * float("nan")) if self.training else out

    monkeypatch.setattr(AudioTokenizer, "forward", nan_loss)
    with pytest.raises(TrainingError, match=r"non-finite loss \(nan\) at step 1"):
        audio_train.main(["--data", str(data), "--out", str(tmp_path / "run"), "--steps", "2", "--codebook-size",
                          "16", "--decoder-channels", "16", "--crop-tokens", "8", "--batch-size", "2",
                          "--kmeans-iters", "2", "--kmeans-balance", "0", "--threads", "1", "--no-progress"])
    assert not (tmp_path / "run" / "model").exists()


def test_gpu_check_script_parses_and_refuses_a_machine_without_cuda(tmp_path: Path) -> None:
    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script would run for real")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHON": sys.executable, "GPU_CHECK_DIR": str(tmp_path)}
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode != 0
    assert "no CUDA device" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert shutil.which("bash")


FAKE_PYTHON = """\
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
out = Path(args[args.index("--out") + 1]) if "--out" in args else None
if args[:1] == ["-c"] and "cuda.is_available" in args[1]:
    sys.exit(0)  # the machine has a GPU
if args[:1] == ["-"] and args[1].endswith("docs.jsonl"):
    sys.stdin.read()
    Path(args[1]).write_text("")
elif args[:3] == ["-m", "mmtok.cli", "tokenize"]:
    out.mkdir(parents=True)
    (out / "manifest.json").write_text(json.dumps({"docs": int(os.environ["FAKE_DOCS"]), "tokens": {"total": 9}}))
elif args[:3] == ["-m", "mmtok.cli", "train"] or args[:2] == ["-m", "torch.distributed.run"]:
    out.mkdir(parents=True, exist_ok=True)
    n = 40 if "torch.distributed.run" in args else 4
    (out / "log.jsonl").write_text("".join(json.dumps({"step": i + 1, "loss": 5.0 - i / n, "tokens_per_s": 9.0,
                                                       "mfu": 0.1}) + "\\n" for i in range(n)))
    (out / "ckpt-0000040").mkdir()
    (out / "ckpt-0000040" / "config.json").write_text("{}")
elif args[:3] == ["-m", "mmtok.cli", "sample"]:
    print("the first of the words.")
elif args[:3] == ["-m", "mmtok.cli", "demo"]:
    out.mkdir(parents=True)
    (out / "index.html").write_text("<html></html>")
    steps = ("VQ core", "images", "audio", "stream", "corpus", "train", "sample", "context")
    print(json.dumps({"page": str(out / "index.html"), "device": "cuda:0", "steps": {k: {"summary": "x"} for k in steps}}))
elif any(a.endswith(("vq.py", "gpu_media.py", "gpu_trainers.py")) for a in args):
    key = {"vq.py": "FAKE_VQ", "gpu_media.py": "FAKE_MEDIA", "gpu_trainers.py": "FAKE_TRAINERS"}
    print(Path(os.environ[key[Path(args[0]).name]]).read_text(), end="")
else:  # the script's own verdicts
    os.execv(sys.executable, [sys.executable, "-S", *args])
"""


def run_gpu_check(tmp_path: Path, vq_rows: list[dict], docs: int = 6000) -> tuple[int, list[dict]]:
    """benchmarks/gpu_check.sh with every command it runs faked (a GPU "found", each step's files and output
    canned: ``vq_rows`` are what benchmarks/vq.py prints): its exit status and JSON lines."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    fake = tmp_path / "python"
    fake.write_text(f"#!{sys.executable} -S\n{FAKE_PYTHON}")  # -S: no site packages, a faster start
    fake.chmod(0o755)
    (tmp_path / "vq.out").write_text("".join(json.dumps(r) + "\n" for r in vq_rows))
    (tmp_path / "media.out").write_text(json.dumps({"check": "image_device", "ok": True}) + "\n")
    (tmp_path / "trainers.out").write_text(json.dumps({"check": "train_image", "ok": True}) + "\n")
    env = {**os.environ, "PYTHON": str(fake), "GPU_CHECK_DIR": str(tmp_path / "dir"), "STEPS": "4",
           "FAKE_VQ": str(tmp_path / "vq.out"), "FAKE_MEDIA": str(tmp_path / "media.out"),
           "FAKE_TRAINERS": str(tmp_path / "trainers.out"), "FAKE_DOCS": str(docs)}
    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                         env=env, timeout=60)
    return out.returncode, [json.loads(x) for x in out.stdout.splitlines()]


VQ_MACHINE = {"bench": "machine", "device": "cuda", "gpu": "a GPU"}
VQ_NO_PEER = {"bench": "vq", "peer": "vector_quantize_pytorch", "skipped": "not installed: pip install mmtok[bench]"}


def vq_mmtok_rows(ks: tuple[int, ...] = (1024, 8192), shares: tuple[float, ...] = (0.0, 0.3)) -> list[dict]:
    """What benchmarks/vq.py prints on CUDA without its peer: mmtok's rows, the ratio rows' peer columns null."""
    rows: list[dict] = [VQ_MACHINE, VQ_NO_PEER]
    for k in ks:
        rows += [{"bench": "vq_encode", "impl": "mmtok", "codebook_size": k, "device": "cuda", "vectors_per_s": 1e9},
                 {"bench": "vq_encode", "metric": "ratio", "codebook_size": k, "device": "cuda",
                  "speedup_vs_vector_quantize": None, "peer": VQ_NO_PEER["skipped"]}]
    for share in shares:
        rows += [{"bench": "vq_train", "impl": "mmtok", "repeated_share": share, "mse": 0.01,
                  "host_waits": {"host_waits_per_step": 2.0, "kernel_launches_per_step": 139.0, "steps_counted": 20}},
                 {"bench": "vq_train", "metric": "ratio", "repeated_share": share, "vector_quantize_mse": None}]
    return rows


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_says_ok_only_when_mmtoks_own_vq_rows_are_there(tmp_path: Path) -> None:
    # vq.py printed its machine row and the peer's "skipped" row, and nothing of mmtok's: every one of them was
    # wrapped as {"check": "vq_cuda", "ok": true} and the script ended {"check": "done", "ok": true}
    status, rows = run_gpu_check(tmp_path / "peerless", [VQ_MACHINE, VQ_NO_PEER])
    vq = [r for r in rows if r["check"] == "vq_cuda"]
    assert status == 1 and vq and not any(r["ok"] for r in vq), rows
    assert "mmtok vq_encode row for codebook_size 1024 on cuda" in vq[-1]["missing"]
    assert vq[-1]["read"].endswith("vq.log") and "done" not in [r["check"] for r in rows]
    # mmtok's rows there (the peer's missing): ok, and the script goes on to its end
    status, rows = run_gpu_check(tmp_path / "ours", vq_mmtok_rows())
    assert status == 0 and [r["check"] for r in rows][-4:] == ["image_device", "train_image", "demo_cuda", "done"], rows
    assert all(r["ok"] for r in rows)
    sample = next(r for r in rows if r["check"] == "sample_cuda")  # was a constant too
    assert sample["text"] == "the first of the words." and sample["max_new_tokens"] == 300


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_shards_line_reads_the_manifest(tmp_path: Path) -> None:
    """The shards line was ``"ok": True`` whatever the manifest said."""
    status, rows = run_gpu_check(tmp_path, vq_mmtok_rows(), docs=5999)
    assert status == 1 and rows == [{"check": "shards", "ok": False, "docs": 5999, "docs_in_corpus": 6000,
                                     "tokens": 9, "read": str(tmp_path / "dir" / "shards" / "manifest.json")}]


def test_gpu_verdicts_of_what_the_programs_printed(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_verdict

    assert not gpu_verdict.sample_verdict("the first \n", "the first ", max_new_tokens=3, wall_s=0.5)["ok"]
    assert not gpu_verdict.sample_verdict("Traceback ...\n", "the first ", max_new_tokens=3, wall_s=0.5)["ok"]
    log = tmp_path / "vq.log"
    log.write_text("a warning\n" + "".join(json.dumps(r) + "\n" for r in vq_mmtok_rows((16,), ())))
    assert gpu_verdict.main(["vq", str(log), "--ks", "16"]) == 0
    assert gpu_verdict.main(["vq", str(log), "--ks", "16", "--device", "cpu"]) == 1  # measured on another device
    # a codebook size missing, or a train row's MSE NaN (written null), is not ok
    assert gpu_verdict.main(["vq", str(log), "--ks", "16", "64"]) == 1
    nan = [{**r, "mse": None} if r.get("bench") == "vq_train" else r for r in vq_mmtok_rows((16,), (0.0, 0.3))]
    rows = gpu_verdict.vq_verdict(nan, device="cuda", ks=[16], shares=[0.0, 0.3])
    assert rows[-1] == {"check": "vq_cuda", "ok": False,
                        "missing": ["mmtok vq_train row with a finite mse for repeated_share 0",
                                    "mmtok vq_train row with a finite mse for repeated_share 0.3"]}
    # on CUDA a training step that waits for the device more than twice (or a row without the count) is not ok
    slow = [{**r, "host_waits": {"host_waits_per_step": 3.05}} if r.get("repeated_share") == 0.3
            and r.get("impl") == "mmtok" else r for r in vq_mmtok_rows((16,), (0.0, 0.3))]
    rows = gpu_verdict.vq_verdict(slow, device="cuda", ks=[16], shares=[0.0, 0.3])
    assert rows[-1]["missing"] == ["mmtok vq_train row for repeated_share 0.3 with at most 2 host waits a step "
                                   "(counted: 3.05)"]
    uncounted = [{k: v for k, v in r.items() if k != "host_waits"} for r in vq_mmtok_rows((16,), (0.0,))]
    assert gpu_verdict.vq_verdict(uncounted, device="cuda", ks=[16], shares=[0.0])[-1]["ok"] is False
    assert gpu_verdict.vq_verdict(vq_mmtok_rows((16,), (0.0, 0.3)), device="cuda", ks=[16],
                                  shares=[0.0, 0.3])[-1]["ok"] is True


def test_gpu_media_check_runs_its_comparisons_on_the_cpu() -> None:
    """benchmarks/gpu_media.py (step 5 of gpu_check.sh) compares a device with the CPU; run against the CPU
    itself, every comparison must hold and every figure be there."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_media.py"), "--device", "cpu"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {r["check"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert rows["image_device"]["codes_equal_share"] == 1.0 and rows["image_device"]["decode_max_diff"] == 0.0
    audio = rows["audio_device"]
    assert audio["ok"] and audio["codes_equal_share"] == 1.0 and audio["stream_max_diff"] < 1e-2
    assert audio["decode_snr_db_vs_cpu"] is None  # the CPU against itself: the same samples
    assert audio["stream_snr_db_vs_whole"] > 40


def test_checkpoint_folders_keeps_only_numbered_checkpoints_in_step_order(tmp_path: Path) -> None:
    """A ``ckpt-old`` folder with a config.json is no checkpoint (resume would not pick it, clear_run would not
    remove it), and checkpoints come oldest first by step, not by name."""
    from mmtok.lm.runs import checkpoint_folders

    for name in ("ckpt-0000004", "ckpt-old", "ckpt-12345678", "ckpt-0000002"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    (tmp_path / "ckpt-0000006").mkdir()  # no config.json: not complete
    names = [p.name for p in checkpoint_folders(tmp_path)]
    assert names == ["ckpt-0000002", "ckpt-0000004", "ckpt-12345678"]
    assert latest_checkpoint(tmp_path).name == "ckpt-12345678"  # type: ignore[union-attr]
