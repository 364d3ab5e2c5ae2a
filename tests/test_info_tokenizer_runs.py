"""`mmtok info RUN` of a tokenizer trainer's run folder (image, audio, vocoder): the step its train state reached
next to the steps asked for, a damaged train state or model named with its file and problem, what --resume does,
and the exported model (and a vocoder run's best/) against the state. Runs are tiny and stopped in-process."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
import torch
from image_helpers import save_smooth_picture, tiny_config
from safetensors.torch import load_file, save_file

from mmtok.cli import main as cli
from mmtok.core.errors import CheckpointError
from mmtok.core.trainstate import OPTIMIZER_NAME, check_train_state, save_train_state
from mmtok.info import describe, format_info
from tests.test_audio import speechlike
from tests.test_run_recovery import kill_mid_swap

pytestmark = pytest.mark.usefixtures("one_thread")


def _stopped(monkeypatch: pytest.MonkeyPatch, module: object, name: str, when: Callable[[Any], bool], *,
             after: bool) -> None:
    """Ctrl-C in ``module.name(run)`` once ``when(run)``: before it runs, or ``after`` it."""
    real = getattr(module, name)

    def stop(run: Any) -> Any:
        if not after and when(run):
            raise KeyboardInterrupt
        out = real(run)
        if after and when(run):
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(module, name, stop)


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """``done``: 4 steps of 4; ``part``: the same run resumed with --steps 10 and stopped at step 6. The options."""
    from mmtok.image import train

    root = tmp_path_factory.mktemp("image-runs")
    (root / "data").mkdir()
    for i in range(3):
        save_smooth_picture(root / "data" / f"{i}.png", 80, seed=i)
    (root / "cfg.json").write_text(json.dumps({k: v for k, v in asdict(tiny_config()).items() if k != "vq"}))
    args = ["--data", str(root / "data"), "--batch-size", "2", "--crop", "32", "--config", str(root / "cfg.json"),
            "--base-side", "64", "--codebook-size", "64", "--latent-dim", "8", "--no-progress", "--init-crops", "64",
            "--save-every", "2", "--warmup", "1"]
    assert train.main([*args, "--out", str(root / "done"), "--steps", "4"]) == 0
    shutil.copytree(root / "done", root / "part")
    with pytest.MonkeyPatch.context() as m:
        _stopped(m, train, "_train_step", lambda run: run.step == 6, after=False)
        with pytest.raises(KeyboardInterrupt):
            train.main([*args, "--out", str(root / "part"), "--steps", "10", "--resume"])
    return root, args


def _copy(src: Path, to: Path) -> Path:
    shutil.copytree(src, to)
    (to / ".lock").unlink(missing_ok=True)
    return to


def test_a_run_stopped_part_way_reports_the_step_it_reached_of_the_steps_asked(
        image_runs: tuple[Path, list[str]]) -> None:
    root, _ = image_runs
    d = describe(root / "part")
    assert (d["kind"], d["step"], d["steps"]) == ("image", 6, 10)  # summary.json says steps 6: the step reached
    assert d["resume"] == "continues from step 6 to 10" and "damaged" not in d
    assert d["model"]["step"] == 6 and d["model_note"] is None
    summary = json.loads((root / "part" / "summary.json").read_text())
    assert d["last_loss"] == summary["running_means"]["loss"]
    text = format_info(d)
    assert "\n  step " in text and text.split("\n  step ")[1].split("\n")[0].strip() == "6 of 10"
    assert "\n  steps " not in text
    done = describe(root / "done")
    assert (done["step"], done["steps"]) == (4, 4) and done["resume"].startswith("nothing to train")


@pytest.mark.parametrize("damage", ["weights cut", "optimizer cut", "config cut", "nan"])
def test_a_damaged_train_state_is_named_and_resume_is_said_to_refuse_it(
        image_runs: tuple[Path, list[str]], tmp_path: Path, damage: str) -> None:
    root, _ = image_runs
    run = _copy(root / "part", tmp_path / "run")
    state = run / "train-state"
    file = {"weights cut": "model.safetensors", "optimizer cut": OPTIMIZER_NAME, "config cut": "config.json",
            "nan": "model.safetensors"}[damage]
    if damage == "nan":
        tensors = load_file(str(state / file))
        name = next(k for k, t in tensors.items() if t.is_floating_point() and t.dim() == 2)
        tensors[name][0, 0] = float("nan")
        save_file(tensors, str(state / file))
    else:
        (state / file).write_bytes((state / file).read_bytes()[: (state / file).stat().st_size // 2])
    d = describe(run)
    assert d["step"] is None and len(d["damaged"]) == 1
    saved = "train-state: " if damage == "config cut" else "train-state (saved at step 6): "
    assert d["damaged"][0].startswith(saved) and file in d["damaged"][0]
    assert d["resume"].startswith("refused (exit 2): its train-state/ is damaged")
    assert f"--init-from {run / 'model'}" in d["resume"]  # the model is intact: a new run may start from it
    assert d["model"]["step"] == 6 and d["steps"] == (None if damage == "config cut" else 10)
    assert "\n  damaged " in format_info(d) and "\n  resume " in format_info(d)


def test_resume_refuses_the_state_info_calls_damaged(image_runs: tuple[Path, list[str]], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root, args = image_runs
    run = _copy(root / "part", tmp_path / "run")
    weights = run / "train-state" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert describe(run)["resume"].startswith("refused (exit 2)")
    assert cli(["train-tokenizer", "image", *args, "--out", str(run), "--resume"]) == 2
    said = capsys.readouterr().err
    assert "model.safetensors" in said
    assert said.rstrip().endswith(  # before: the file and its problem, nothing on what to do
        "; --resume cannot go on from this run: train into a new --out, or start a new run from its model with "
        f"--init-from {run / 'model'} (a fresh schedule)")


def test_a_damaged_model_is_named_and_the_state_still_described(image_runs: tuple[Path, list[str]],
                                                                tmp_path: Path) -> None:
    root, _ = image_runs
    run = _copy(root / "part", tmp_path / "run")
    weights = run / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    d = describe(run)  # was: the model's error, and nothing about the run
    assert (d["step"], d["steps"]) == (6, 10) and d["model"] is None
    assert d["damaged"] == [f"model: {d['damaged'][0].removeprefix('model: ')}"] and "model.safetensors" in d["damaged"][0]
    assert d["resume"] == "continues from step 6 to 10"


def test_a_state_left_as_its_backup_and_a_run_without_one(image_runs: tuple[Path, list[str]], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    root, args = image_runs
    run = _copy(root / "part", tmp_path / "run")
    backup = kill_mid_swap(run / "train-state")
    d = describe(run)
    assert d["step"] == 6 and d["read_from"].startswith(f"{backup} (a save stopped") and "damaged" not in d
    assert not (run / "train-state").exists()  # nothing put back by describing
    bare = _copy(root / "part", tmp_path / "bare")
    shutil.rmtree(bare / "train-state")
    d = describe(bare)  # the model alone: still the run's folder
    assert d["what"] == "tokenizer run" and d["step"] is None and d["model"]["step"] == 6
    assert d["resume"].startswith("refused (exit 2): it holds no train-state/ to continue from")
    assert cli(["train-tokenizer", "image", *args, "--out", str(bare), "--resume"]) == 2
    assert "holds no train-state/" in capsys.readouterr().err


def test_an_exported_model_and_a_train_state_name_their_step(image_runs: tuple[Path, list[str]]) -> None:
    root, _ = image_runs
    assert describe(root / "part" / "model")["step"] == describe(root / "part" / "train-state")["step"] == 6
    assert "\n  step " in format_info(describe(root / "done" / "model"))


def test_check_train_state_reads_a_state_whole_as_resume_does(tmp_path: Path) -> None:
    m = torch.nn.Linear(2, 2)
    state = save_train_state(tmp_path / "s", kind="demo", config={}, model=m, optimizer=None, step=3)
    assert check_train_state(state) == 3
    (state / OPTIMIZER_NAME).unlink()
    with pytest.raises(CheckpointError, match=f"has no {OPTIMIZER_NAME} to resume from"):
        check_train_state(state)


def test_an_audio_run_stopped_part_way_has_no_model_yet(tmp_path: Path) -> None:
    from mmtok.audio import train
    from mmtok.audio.front_end import SAMPLE_RATE

    (tmp_path / "data").mkdir()
    for i in range(4):
        sf.write(tmp_path / "data" / f"clip-{i}.wav", speechlike(1.5, seed=40 + i), SAMPLE_RATE)
    args = ["--data", str(tmp_path / "data"), "--crop-tokens", "8", "--batch-size", "2", "--threads", "1",
            "--no-progress", "--save-every", "2", "--encoder", "conv", "--codebook-size", "24", "--encoder-channels",
            "16", "--decoder-channels", "16", "--warmup", "1", "--out", str(tmp_path / "run"), "--steps", "10"]
    with pytest.MonkeyPatch.context() as m:
        _stopped(m, train, "save_state", lambda run: run.step == 4, after=True)
        with pytest.raises(KeyboardInterrupt):
            train.main(args)
    d = describe(tmp_path / "run")  # was: step 4 and no steps (no summary.json yet)
    assert (d["kind"], d["step"], d["steps"]) == ("audio", 4, 10) and d["resume"] == "continues from step 4 to 10"
    assert d["model"] is None and d["model_note"].startswith("none yet: the audio trainer writes model/ when")
    extra = json.loads((tmp_path / "run" / "train-state" / "config.json").read_text())["train"]["extra"]
    assert d["last_loss"] == extra["loss"]


def test_a_vocoder_run_stopped_after_its_train_state_says_model_and_best_are_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.audio import vocoder_train
    from mmtok.audio.vocoder_data import build_cache
    from tests.test_vocoder_cli import run_args, stop_after_state_at, write_corpus

    build_cache(write_corpus(tmp_path / "corpus"), tmp_path / "cache", progress=False)
    run = tmp_path / "run"
    stop_after_state_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        vocoder_train.main(run_args(tmp_path / "cache", run, "--steps", "10"))
    d = describe(run)
    assert (d["kind"], d["step"], d["steps"]) == ("vocoder", 4, 10) and d["model"]["step"] == 2
    assert d["model_note"] == "model/ holds step 2, behind the train state's step 4: --resume writes it anew"
    extra = json.loads((run / "train-state" / "config.json").read_text())["train"]["extra"]
    held = json.loads((run / "best" / "config.json").read_text())["provenance"]["steps"]
    assert d["best"].startswith(f"step {extra['best_step']}, mel_l1 {extra['best_score']:.4g}")
    assert (f"(best/ holds step {held} until --resume writes it)" in d["best"]) == (held != extra["best_step"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert d["last_loss"] == next(r["loss"] for r in reversed(log) if r["step"] <= 4)


def test_a_tokenizer_run_held_by_a_live_process_says_resume_waits(image_runs: tuple[Path, list[str]],
                                                                  tmp_path: Path) -> None:
    import os
    import socket

    root, _ = image_runs
    run = _copy(root / "part", tmp_path / "run")
    (run / ".lock").write_text(f"{os.getpid()} {socket.gethostname()}\n")
    d = describe(run)  # before: "continues from step 6 to 10", although a --resume now is refused
    assert d["running"].startswith(f"yes, by process {os.getpid()} on host ")
    assert d["resume"] == (f"refused while process {os.getpid()} on host {socket.gethostname()} (lock "
                           f"{run / '.lock'}) holds the folder: wait for that run to end")


def test_a_vocoder_run_that_tuned_its_tokenizer_names_the_tuned_tokenizers(tmp_path: Path) -> None:
    from mmtok.core.module_io import save_module
    from mmtok.vq import VectorQuantizer, VQConfig

    run = tmp_path / "run"
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8))
    save_train_state(run / "train-state", kind="vq", config=vq.cfg, model=vq, optimizer=None, step=6)
    save_module(vq, run / "tokenizer", provenance={"steps": 6})
    save_module(vq, run / "best-tokenizer", provenance={"steps": 4})
    d = describe(run)  # before: nothing said of tokenizer/ and best-tokenizer/
    assert d["tuned_tokenizers"] == ("tokenizer/ (step 6), for model/; best-tokenizer/ (step 4), for best/: the "
                                     "audio tokenizer whose decoder --train-decoder tuned")
    weights = run / "best-tokenizer" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:10])
    assert describe(run)["tuned_tokenizers"].startswith("tokenizer/ (step 6), for model/; best-tokenizer/ damaged: ")
    assert "tuned_tokenizers" not in {k for k, v in describe(tmp_path / "run" / "train-state").items() if v}
