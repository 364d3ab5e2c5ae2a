"""Training: the loss falls, a SIGKILLed run resumes on the same curve, 2 gloo ranks = 1 process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mmtok.core.errors import MmtokError, ResumeMismatchError, TrainingError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.shards import open_shards
from mmtok.lm.runs import latest_checkpoint, load_run
from mmtok.lm.train import TrainConfig, train
from tests.test_data import SPEC, make_corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("train-corpus")
    out = folder / "shards"
    tokenize_corpus(make_corpus(folder, n_docs=60), out, tokenizers=SPEC, shard_tokens=400)
    return out


def log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def small(shards: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(data=str(shards), out=str(out), seq_len=64, batch_size=4, steps=12, warmup=3,
                save_every=4, keep_last=2, lr=3e-3, threads=1)
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_training_learns_and_logs(shards: Path, tmp_path: Path) -> None:
    run = train(small(shards, tmp_path / "run", steps=40, save_every=10), progress=False)
    rows = log(run)
    assert [r["step"] for r in rows] == list(range(1, 41))
    first = sum(r["loss"] for r in rows[:5]) / 5
    last = sum(r["loss"] for r in rows[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    for key in ("loss_text", "loss_image", "loss_audio", "tokens_per_s", "mfu", "lr"):
        assert any(key in r for r in rows), key
    assert (run / "loss.png").stat().st_size > 1000
    assert sorted(p.name for p in run.glob("ckpt-*")) == ["ckpt-0000030", "ckpt-0000040"]
    model, vocab, cfg = load_run(run)
    assert model.cfg.vocab_size == vocab.size and cfg["train"]["steps"] == 40


TRAIN_CMD = [sys.executable, "-m", "mmtok.cli", "train", "--seq-len", "64", "--batch-size", "4", "--steps", "16",
             "--warmup", "3", "--save-every", "2", "--threads", "1"]


def test_sigkill_then_resume_continues_the_same_curve(shards: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ref = tmp_path / "ref"
    subprocess.run([*TRAIN_CMD, "--data", str(shards), "--out", str(ref)], check=True, env=env,
                   capture_output=True, timeout=600)
    run = tmp_path / "killed"
    proc = subprocess.Popen([*TRAIN_CMD, "--data", str(shards), "--out", str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it mid-run, once a few checkpoints exist
        ck = latest_checkpoint(run)
        if ck is not None and ck.name >= "ckpt-0000006":
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(log(run)) < 16, "the run finished before it could be killed"
    subprocess.run([*TRAIN_CMD, "--data", str(shards), "--out", str(run), "--resume"], check=True, env=env,
                   capture_output=True, timeout=600)
    assert [r["loss"] for r in log(run)] == [r["loss"] for r in log(ref)]
    assert [r["step"] for r in log(run)] == list(range(1, 17))


def test_two_gloo_ranks_match_one_process(shards: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = ["--data", str(shards), "--seq-len", "64", "--steps", "6", "--warmup", "2", "--save-every", "6",
            "--threads", "1"]
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                    "29533", "-m", "mmtok.cli", "train", *args, "--batch-size", "2", "--out", str(tmp_path / "ddp")],
                   check=True, env=env, capture_output=True, timeout=600)
    train(small(shards, tmp_path / "solo", batch_size=4, steps=6, warmup=2, save_every=6), progress=False)
    ddp, solo = log(tmp_path / "ddp"), log(tmp_path / "solo")
    assert len(ddp) == len(solo) == 6
    for a, b in zip(ddp, solo, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)


def test_resume_refuses_other_shards(shards: Path, tmp_path: Path) -> None:
    run = train(small(shards, tmp_path / "run", steps=2, save_every=2), progress=False)
    other = tmp_path / "other"
    text_only = tmp_path / "text.jsonl"
    text_only.write_text("".join(json.dumps({"segments": [{"text": f"doc {k} " * 20}]}) + "\n" for k in range(30)))
    tokenize_corpus(text_only, other, shard_tokens=400)  # a vocabulary without media ranges
    # said before any weight is loaded: no "shape mismatch embed.weight" from the embedding of another size
    with pytest.raises(ResumeMismatchError, match=r"was trained on other shards .*vocabulary .*--resume continues a "
                       r"run on its own shards") as e:
        train(small(other, run, steps=4, save_every=2), resume=True, progress=False)
    assert "\n" not in str(e.value) and "shape" not in str(e.value) and str(other) in str(e.value)


def test_resume_refuses_other_shards_of_the_same_vocabulary_and_follows_moved_ones(shards: Path, tmp_path: Path) -> None:
    run = train(small(shards, tmp_path / "run", steps=2, save_every=2), progress=False)
    other = tmp_path / "other"
    tokenize_corpus(make_corpus(tmp_path / "c", n_docs=20, seed=1), other, tokenizers=SPEC, shard_tokens=400)
    assert open_shards(other).vocab == open_shards(shards).vocab  # only the contents differ
    with pytest.raises(TrainingError, match=r"was trained on other shards .* --resume continues a run on its own"):
        train(small(other, run, steps=4, save_every=2), resume=True, progress=False)
    moved = tmp_path / "moved"
    shutil.copytree(shards, moved)  # the same shards elsewhere: the run goes on
    train(small(moved, run, steps=4, save_every=2), resume=True, progress=False)
    assert [r["step"] for r in log(run)] == [1, 2, 3, 4]


def test_resume_with_another_preset_says_so_in_one_short_line(shards: Path, tmp_path: Path) -> None:
    run = train(small(shards, tmp_path / "run", steps=2, save_every=2), progress=False)  # the tiny preset
    with pytest.raises(TrainingError, match=r"trained with --preset tiny and another model shape: n_layer") as e:
        train(small(shards, run, steps=4, save_every=2, preset="small"), resume=True, progress=False)
    assert len(str(e.value)) < 400 and "\n" not in str(e.value)


def test_overwrite_with_a_mistyped_data_folder_keeps_the_old_run(shards: Path, tmp_path: Path) -> None:
    run = train(small(shards, tmp_path / "run", steps=2, save_every=2), progress=False)
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(MmtokError):
        train(small(tmp_path / "no-such-shards", run, steps=2, save_every=2), overwrite=True, progress=False)
    assert sorted(p.name for p in run.iterdir()) == before and len(log(run)) == 2


def test_a_damaged_newest_checkpoint_is_moved_aside_and_a_cut_log_line_dropped(shards: Path, tmp_path: Path) -> None:
    ref = train(small(shards, tmp_path / "ref", steps=6, save_every=2, keep_last=3, dropout=0.1), progress=False)
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    shutil.rmtree(run / "ckpt-0000006")
    config = run / "ckpt-0000004" / "config.json"
    config.write_text(config.read_text()[:50])  # the newest checkpoint damaged
    lines = (run / "log.jsonl").read_text().splitlines()
    (run / "log.jsonl").write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])  # a row cut by a kill
    train(small(shards, run, steps=6, save_every=2, keep_last=3, dropout=0.1), resume=True, progress=False)
    assert (run / "damaged-ckpt-0000004").is_dir() and latest_checkpoint(run).name == "ckpt-0000006"
    # from step 2 on the same curve, dropout included (its masks come from the restored generator)
    assert [r["loss"] for r in log(run)] == [r["loss"] for r in log(ref)]


def test_resume_keeps_the_runs_own_settings(shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main
    from mmtok.lm.runs import run_settings

    run = train(small(shards, tmp_path / "run", steps=2, save_every=2, seq_len=32, batch_size=2), progress=False)
    with pytest.raises(TrainingError, match=r"--seq-len 64 \(the run's: 32\); --batch-size 4 \(the run's: 2\);"):
        train(small(shards, run, steps=4, save_every=2), resume=True, progress=False)
    assert main(["train", "--data", str(shards), "--out", str(run), "--resume", "--seq-len", "64"]) == 2  # a flag refused
    capsys.readouterr()
    # the command line takes them from the run when their flags are left out; --steps extends it
    assert main(["train", "--data", str(shards), "--out", str(run), "--resume", "--steps", "4", "--threads", "1"]) == 0
    saved = run_settings(run)
    assert saved is not None and (saved["seq_len"], saved["batch_size"], saved["steps"]) == (32, 2, 4)
    assert [r["step"] for r in log(run)] == [1, 2, 3, 4]


def test_every_modality_has_its_loss_column_and_dropout_is_a_probability() -> None:
    from mmtok.lm.runs import MODALITIES
    from mmtok.lm.train import check_config
    from mmtok.stream.vocab import Modality

    assert set(MODALITIES) == {m.name.lower() for m in Modality} - {"special"}
    with pytest.raises(TrainingError, match=r"dropout must be in \[0, 1\) \(a finite number\), got 1\.5"):
        check_config(TrainConfig(dropout=1.5))


def test_lr_schedule() -> None:
    from mmtok.lm.train import lr_at

    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup=10, steps=110)
    assert lr_at(cfg, 0) == pytest.approx(0.1) and lr_at(cfg, 9) == pytest.approx(1.0)
    assert lr_at(cfg, 59) == pytest.approx(0.55) and lr_at(cfg, 110) == pytest.approx(0.1)
    assert lr_at(cfg, 109) == pytest.approx(0.1)  # the run's last step is at --min-lr
    assert lr_at(cfg, 10) < lr_at(cfg, 9)  # the peak is used once
    assert torch.isfinite(torch.tensor(lr_at(cfg, 500)))


def test_a_video_cut_anywhere_keeps_the_positions_of_the_whole() -> None:
    """A window that ends inside a video (inside its first frame too) gives each token the (t, row, column) it
    has in the whole video: the last token of a cut frame is a code or an <eol>, not the frame's <eof>."""
    from mmtok.stream.interleave import Interleaver
    from mmtok.stream.positions import positions_thw
    from mmtok.stream.vocab import Vocabulary

    il = Interleaver(Vocabulary(256, ranges={"video": 4}))
    ids = il.encode([{"video_codes": [[[0, 1, 2], [3, 0, 1]], [[2, 3, 0], [1, 2, 3]]]}]).ids  # 2 frames of 2×3
    whole = positions_thw(il.vocab, ids)
    for stop in range(2, len(ids) + 1):
        assert torch.equal(positions_thw(il.vocab, ids[:stop]), whole[:stop]), stop


@pytest.mark.parametrize("seq_len", [37, 64])
def test_window_positions_equal_the_interleavers_even_inside_a_cut_image(shards: Path, seq_len: int) -> None:
    from mmtok.data.packing import PackedDataset
    from mmtok.stream.positions import positions_thw

    ds = PackedDataset(shards, seq_len, shuffle=False, positions_3d=True)
    docs = list(open_shards(shards).documents())
    whole = torch.cat([positions_thw(ds.vocab, d) for d in docs])  # each document from its start
    starts = np.cumsum([0] + [len(d) for d in docs])
    boi, cut = ds.vocab.id("<boi>"), 0
    for k in range(ds.num_windows):
        w, a = ds.window(k), k * seq_len
        for d in w["doc"].unique().tolist():
            if d < 0:
                continue
            piece = torch.nonzero(w["doc"] == d).flatten()
            got, true = w["pos"][piece], whole[a + piece]
            assert torch.equal(got - got[0], true - true[0]), (k, d)  # the same relative (t, row, column)
        first_doc = int(np.searchsorted(starts, a, side="right")) - 1
        inside = docs[first_doc][: a - starts[first_doc]]
        cut += int(a > starts[first_doc] and boi in inside.tolist()
                   and (inside == boi).nonzero()[0][-1] > (inside == ds.vocab.id("<eoi>")).nonzero()[0].max(initial=-1))
    assert cut > 0  # some windows do start inside an image
    assert "pos" not in PackedDataset(shards, seq_len)[0]


def test_rope_3d_training_runs(shards: Path, tmp_path: Path) -> None:
    run = train(small(shards, tmp_path / "r3", steps=3, save_every=3, rope_3d=True), progress=False)
    assert len(log(run)) == 3 and all(r["loss"] > 0 for r in log(run))


def test_each_target_is_counted_in_the_loss_column_of_its_stream_modality(shards: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An <eol> or <eoi> target is an image token, a <boa> an audio one, in every column of a window, its last
    one too: one step over every window counts each modality's targets as the whole documents hold them."""
    from mmtok.data.packing import PackedDataset
    from mmtok.lm import train as train_module
    from mmtok.lm.runs import MODALITIES
    from mmtok.stream.vocab import Modality

    docs = list(open_shards(shards).documents())
    vocab, stream = open_shards(shards).vocab, np.concatenate(docs)
    special = vocab.modality_of(stream) == Modality.SPECIAL
    whole = np.concatenate([vocab.stream_modality(d) for d in docs])
    # a window length at which some window's last target is a grid or audio mark
    seq_len = next(n for n in range(16, 80) if any(special[j] and whole[j] != Modality.SPECIAL
                                                   for j in range(n, stream.size, n)))
    counted: dict[str, float] = dict.fromkeys(MODALITIES, 0.0)
    loss_sums = train_module._loss_sums

    def counting(ce: torch.Tensor, b: dict[str, torch.Tensor]) -> torch.Tensor:
        sums = loss_sums(ce, b)
        for j, m in enumerate(MODALITIES):
            counted[m] += float(sums[3 + 2 * j])
        return sums

    ds = PackedDataset(shards, seq_len, shuffle=False)
    for k in range(ds.num_windows):  # each window's target_modality: the whole stream's, one token on
        w, a = ds.window(k), k * seq_len
        n = int((w["doc"] >= 0).sum())
        assert w["target_modality"][:n].tolist() == whole[a + 1 : a + 1 + n].tolist(), k
    monkeypatch.setattr(train_module, "_loss_sums", counting)
    windows = ds.num_windows
    train(small(shards, tmp_path / "run", seq_len=seq_len, batch_size=windows, steps=1, warmup=0), progress=False)
    expected = {m: float(sum((vocab.stream_modality(d)[1:] == Modality[m.upper()]).sum() for d in docs))
                for m in MODALITIES}
    assert counted == expected


def test_a_kill_while_resume_cuts_the_log_back_loses_no_row(shards: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """--resume rewrites log.jsonl to the step it resumes at; a kill part-way through that write (here: half the
    bytes written, then the process dies) must leave the old log whole, not truncated."""
    import mmtok.core.files as files

    run = train(small(shards, tmp_path / "run", steps=4, save_every=2), progress=False)
    rows = log(run)
    shutil.rmtree(run / "ckpt-0000004")  # the run resumes at step 2 and cuts the log back to it
    real_open = open

    def dying_open(path, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        f = real_open(path, mode, *args, **kwargs)
        if "w" in mode and Path(path).name.startswith((".log.jsonl", "log.jsonl")):
            real_write = f.write
            f.write = lambda data: (real_write(data[: len(data) // 2]), (_ for _ in ()).throw(SystemExit(137)))
        return f

    monkeypatch.setattr(files, "open", dying_open, raising=False)
    monkeypatch.setattr(Path, "write_text", lambda self, data, *a, **k: (dying_open(self, "w").write(data)))
    with pytest.raises(SystemExit):
        train(small(shards, run, steps=4, save_every=2), resume=True, progress=False)
    assert log(run) == rows
    assert not list(run.glob(".log.jsonl.tmp-*"))


def test_a_run_killed_before_its_first_log_row_resumes_and_restarts(shards: Path, tmp_path: Path) -> None:
    """A kill between creating log.jsonl and writing its first row leaves an empty log (and a stale lock): --resume
    and --overwrite take the folder as the run it is, as a plain run already did."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").write_text("")
    (out / ".lock").write_text("999999999\n")  # no such process
    train(small(shards, out, steps=2, save_every=2), resume=True, progress=False)
    assert [r["step"] for r in log(out)] == [1, 2]
    (out / "log.jsonl").write_text("")
    train(small(shards, out, steps=2, save_every=2), overwrite=True, progress=False)
    assert [r["step"] for r in log(out)] == [1, 2]
