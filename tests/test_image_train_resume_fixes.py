"""``mmtok train-tokenizer image --resume``: the images are checked by content (other pictures in files of the
same names and sizes are refused; a run saved when names and sizes were recorded still resumes by that rule),
a folder without a train state starts afresh and says so in the words of every trainer (one holding the run's
model alone is refused), and ``--save-every`` and ``--threads`` left out are the run's own."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from image_helpers import smooth_picture, tiny_config
from PIL import Image

from mmtok.audio import train as audio_train
from mmtok.audio import vocoder_checks
from mmtok.cli import main as cli
from mmtok.core import run_folder
from mmtok.image import train as image_train
from mmtok.image.train_checks import data_material

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny runs: one thread is steadier

AFRESH = "holds no train-state/ to resume (a run stopped before its first checkpoint, or none yet): starting it afresh"


def _save(path: Path, seed: int, *, flip: bool = False) -> None:
    """A generated 80x80 picture as an uncompressed PNG: its size in bytes depends on its shape alone."""
    pixels = (smooth_picture(80, seed=seed).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    Image.fromarray(pixels[::-1].copy() if flip else pixels).save(path, compress_level=0)


def _data(folder: Path) -> Path:
    folder.mkdir()
    for i in range(3):
        _save(folder / f"{i}.png", i)
    return folder


def _other(data: Path, dst: Path) -> Path:
    """``data`` copied to ``dst`` with the picture of ``1.png`` turned upside down: other pixels in a file of the
    same name and size."""
    shutil.copytree(data, dst)
    _save(dst / "1.png", 1, flip=True)
    assert (dst / "1.png").stat().st_size == (data / "1.png").stat().st_size
    assert (dst / "1.png").read_bytes() != (data / "1.png").read_bytes()
    return dst


def _args(tmp_path: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """A tiny run (K = 16, 32-pixel crops) on ``data`` into ``out``; ``extra`` flags after."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**{k: v for k, v in asdict(tiny_config()).items() if k != "vq"},
                               "vq": {"codebook_size": 16}}))
    return ["--data", str(data), "--out", str(out), "--config", str(cfg), "--batch-size", "2", "--crop", "32",
            "--base-side", "64", "--init-crops", "16", "--no-progress", *extra]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = cli(["train-tokenizer", "image", *argv])
    return rc, capsys.readouterr().err


def _extra(out: Path) -> dict:
    return json.loads((out / "train-state" / "config.json").read_text())["train"]["extra"]


def _as_saved_before(out: Path, material: str) -> None:
    """Rewrite the train state as an earlier version saved it: no content digest, ``material`` its names and
    sizes digest."""
    path = out / "train-state" / "config.json"
    meta = json.loads(path.read_text())
    meta["train"]["extra"].pop("content_digest", None)
    meta["train"]["extra"]["material"] = material
    path.write_text(json.dumps(meta))


def test_resume_refuses_other_pictures_in_files_of_the_same_names_and_sizes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = _data(tmp_path / "data"), tmp_path / "run"
    assert image_train.main(_args(tmp_path, data, out, "--steps", "1", "--threads", "1")) == 0
    other = _other(data, tmp_path / "other")
    rc, err = _cli(capsys, "--data", str(other), "--out", str(out), "--resume", "--steps", "2")
    assert rc == 2 and err.strip() == (
        f"mmtok: error: --data {other} holds other images than the run in {out} trained on (other files, or other "
        "pictures in them); resume with its own data (moved is fine), or train into a new --out")
    assert json.loads((out / "model" / "config.json").read_text())["provenance"]["steps"] == 1
    moved = shutil.move(str(data), str(tmp_path / "moved"))
    assert image_train.main(["--data", moved, "--out", str(out), "--resume", "--steps", "2", "--no-progress"]) == 0


def test_a_run_saved_with_names_and_sizes_resumes_by_that_rule(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Its other images (one fewer) are refused; its own resume, even in a copy with other pixels in files of the
    same names and sizes, which that rule cannot tell apart; its next checkpoint records the content."""
    data, out = _data(tmp_path / "data"), tmp_path / "run"
    assert image_train.main(_args(tmp_path, data, out, "--steps", "1", "--threads", "1")) == 0
    files = sorted(data.glob("*.png"))
    _as_saved_before(out, data_material(files[1:], data))  # what other files gave
    rc, err = _cli(capsys, "--data", str(data), "--out", str(out), "--resume", "--steps", "2")
    assert rc == 2 and f"--data {data} holds other images than the run in {out}" in err, err
    _as_saved_before(out, data_material(files, data))
    other = _other(data, tmp_path / "other")
    assert image_train.main(["--data", str(other), "--out", str(out), "--resume", "--steps", "2",
                             "--no-progress"]) == 0
    extra = _extra(out)
    assert "material" not in extra and extra["content_digest"]
    rc, err = _cli(capsys, "--data", str(data), "--out", str(out), "--resume", "--steps", "3")
    assert rc == 2 and "(other files, or other pictures in them)" in err  # checked by content from then on


def test_resume_without_a_train_state_starts_afresh_and_says_so(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    data, out = _data(tmp_path / "data"), tmp_path / "run"
    rc, err = _cli(capsys, *_args(tmp_path, data, out, "--steps", "1", "--threads", "1", "--resume"))
    assert rc == 0 and f"mmtok: {out} {AFRESH} with the flags given" in err.splitlines(), err
    assert not any(line.startswith("resuming") for line in err.splitlines())
    shutil.rmtree(out / "train-state")  # its model alone: nothing to continue, and the model is not overwritten
    before = (out / "model" / "model.safetensors").read_bytes()
    rc, err = _cli(capsys, *_args(tmp_path, data, out, "--steps", "2", "--resume"))
    assert rc == 2 and err.startswith(f"mmtok: error: --resume: {out} holds no train-state/ to continue from (it "
                                      "holds codebook-usage.png, model, reconstructions.png, ...)"), err
    assert len(err.strip().splitlines()) == 1
    assert (out / "model" / "model.safetensors").read_bytes() == before
    # the words and the check of the audio trainers too
    assert audio_train.check_resume_folder is run_folder.check_resume_folder
    assert vocoder_checks.say_starting_afresh is run_folder.say_starting_afresh


def test_resume_keeps_the_runs_save_every_and_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, out = _data(tmp_path / "data"), tmp_path / "run"
    threads: list[int] = []
    monkeypatch.setattr(image_train.torch, "set_num_threads", threads.append)  # said, not done: one thread here
    assert image_train.main(_args(tmp_path, data, out, "--steps", "2", "--save-every", "2", "--threads", "2")) == 0
    settings = _extra(out)["settings"]
    assert settings["save_every"] == 2 and settings["threads"] == 2 and threads == [2]
    saved, real = [], image_train.save_train_state

    def saving(*a: object, **k: object) -> None:
        saved.append(k["step"])
        real(*a, **k)

    monkeypatch.setattr(image_train, "save_train_state", saving)
    assert image_train.main(["--data", str(data), "--out", str(out), "--resume", "--steps", "6",
                             "--no-progress"]) == 0
    assert saved == [4, 6] and threads == [2, 2]  # every 2 steps on 2 threads, as the run was started
    saved.clear()
    assert image_train.main(["--data", str(data), "--out", str(out), "--resume", "--steps", "9", "--no-progress",
                             "--save-every", "4", "--threads", "3"]) == 0  # given: they replace the run's
    assert saved == [8, 9] and threads[-1] == 3 and _extra(out)["settings"]["threads"] == 3
