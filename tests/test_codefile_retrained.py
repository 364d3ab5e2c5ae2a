"""``mmtok decode`` of codes whose model was retrained in its folder since: one line saying that the model at
that folder changed (the fingerprint in the codes and the one now) and what to do, not the folder twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from image_helpers import tiny_config
from PIL import Image

import mmtok
from mmtok.cli import main
from mmtok.image.tokenizer import ImageTokenizer


def tokenizer(seed: int) -> ImageTokenizer:
    torch.manual_seed(seed)
    return ImageTokenizer(tiny_config()).eval()


@pytest.fixture
def codes(tmp_path: Path) -> Path:
    """photo.png encoded by the tiny tokenizer in ``tmp_path/model``, which was then retrained (new weights)."""
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    mmtok.save(tokenizer(0), tmp_path / "model")
    assert main(["encode", str(tmp_path / "photo.png"), "--image", str(tmp_path / "model"),
                 "--out", str(tmp_path / "codes")]) == 0
    mmtok.save(tokenizer(1), tmp_path / "model")
    return tmp_path / "codes" / "photo.png.npz"


def errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("mmtok: error: ")]


def test_decode_with_the_retrained_model_says_it_changed_in_one_line(
        codes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    capsys.readouterr()
    assert main(["decode", str(codes), "--image", str(model), "--out", str(tmp_path / "back")]) == 2
    was, now = tokenizer(0).fingerprint, mmtok.load(model).fingerprint
    assert was != now
    (line,) = errors(capsys)
    assert line == (f"mmtok: error: {codes}: the image model at {model} changed since these codes were made "
                    f"(fingerprint {was} in the codes, {now} now); decode them with the model that made them, "
                    "or encode photo.png again")
    assert line.count(str(model)) == 1 and not (tmp_path / "back" / "photo.png.decoded.png").exists()


def test_the_same_folder_named_another_way_is_the_same_model(
        codes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["decode", str(codes), "--image", "./model/", "--out", "back"]) == 2
    (line,) = errors(capsys)
    assert "the image model at model changed since these codes were made" in line


def test_another_models_folder_is_still_named_beside_the_one_that_made_the_codes(
        codes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = mmtok.save(tokenizer(2), tmp_path / "other")
    capsys.readouterr()
    assert main(["decode", str(codes), "--image", str(other), "--out", str(tmp_path / "back")]) == 2
    (line,) = errors(capsys)
    assert f"made by {tmp_path / 'model'} (fingerprint {tokenizer(0).fingerprint}), but the image model given is " \
           f"{other} (fingerprint {tokenizer(2).fingerprint}); decode with --image naming the model" in line
    assert "changed since" not in line
