"""A MODEL argument (--image, --audio of encode, decode, eval, tokenize) takes a tokenizer trainer's run folder as
its exported model, as the trainers' --init-from does (it was refused: 'load RUN/model')."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from image_helpers import fitted_tiny_tokenizer, save_smooth_picture

from mmtok.cli import main
from mmtok.core.errors import CheckpointError
from mmtok.core.module_io import save_module
from mmtok.data.codes import load_codes
from mmtok.pretrained import load, load_tokenizer


@pytest.fixture
def run(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    save_module(fitted_tiny_tokenizer(), folder / "model")
    return folder


def test_encode_eval_and_decode_take_a_run_folder(run: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    picture = save_smooth_picture(tmp_path / "p.png", 64)
    assert main(["encode", str(picture), "--image", str(run), "--out", str(tmp_path / "codes")]) == 0
    assert f"--image {run} is a training run's folder: reading its model, {run / 'model'}" in capsys.readouterr().err
    codes, _, _ = load_codes(tmp_path / "codes" / "p.png.npz")
    assert np.array_equal(codes, load(run / "model").encode(picture).numpy())
    assert main(["decode", str(tmp_path / "codes" / "p.png.npz"), "--image", str(run), "--out",
                 str(tmp_path / "back")]) == 0
    assert main(["eval", str(picture), "--image", str(run), "--json"]) == 0


def test_python_load_still_names_the_model_to_load(run: Path) -> None:
    with pytest.raises(CheckpointError, match="is a tokenizer training run, not a checkpoint: load"):
        load(run)
    assert torch.equal(load_tokenizer(str(run), kind="image").vq.embed, load(run / "model").vq.embed)


def test_a_run_with_two_models_is_left_to_the_loader_to_refuse(run: Path) -> None:
    save_module(fitted_tiny_tokenizer(), run / "best")
    with pytest.raises(CheckpointError, match="training run"):
        load_tokenizer(str(run), kind="image")
