"""The image trainer's ``--export`` keeps other models and other runs' train states, and a manifest may list its
pictures by absolute paths inside its folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from image_helpers import save_smooth_picture

import mmtok
from mmtok.cli import main
from mmtok.vq.quantizer import VectorQuantizer
from tests.test_image_train import _train_args

pytestmark = pytest.mark.usefixtures("one_thread")


def _status(argv: list[str]) -> int:
    """The exit status of ``mmtok argv``: returned, or raised as a usage error is (argparse's SystemExit)."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code or 0)


def test_export_refuses_another_kind_of_model_and_a_train_state(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    vq = mmtok.save(VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8)), tmp_path / "vq")
    args = _train_args(tmp_path, "--steps", "2")
    assert _status(["train-tokenizer", "image", *args, "--export", str(vq)]) == 2
    assert "holds a checkpoint of kind 'vq'" in capsys.readouterr().err
    assert mmtok.load(vq).cfg.codebook_size == 8  # kept
    assert main(["train-tokenizer", "image", *args]) == 0
    state = tmp_path / "run" / "train-state"  # another run's, from a second run into run2
    other = [tmp_path / "run2" if a == str(tmp_path / "run") else a for a in args]
    assert _status(["train-tokenizer", "image", *map(str, other), "--export", str(state)]) == 2
    assert "is a run's train state" in capsys.readouterr().err


def test_a_manifest_of_absolute_paths_inside_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "man"
    folder.mkdir()
    rows = []
    for i in range(3):
        save_smooth_picture(folder / f"{i}.png", 80, seed=i)
        rows.append(json.dumps({"path": os.path.abspath(folder / f"{i}.png"), "split": "train"}))
    (folder / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)  # --data given relative, the rows absolute
    (tmp_path / "x").mkdir()
    args = _train_args(tmp_path / "x", "--steps", "2")
    args[args.index("--data") + 1] = "man/manifest.jsonl"
    assert main(["train-tokenizer", "image", *args]) == 0
    assert torch.isfinite(mmtok.load(tmp_path / "x" / "run" / "model").decode(torch.zeros(2, 2, dtype=torch.long))).all()
