"""Checkpoint files that do not belong together, or were saved by an editor, and code files named by a string:
a config.json with a byte-order mark loads; a config.json copied in from another kind of checkpoint is named as
such, not as a long tensor list; a config of another class is not blamed on a newer mmtok; ``save_codes`` takes
a str path; a CUDA device asked for from Python without a GPU names the Python spelling too."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import mmtok
from mmtok.core.checkpoint import config_from_dict, load_checkpoint, read_metadata
from mmtok.core.errors import CheckpointError, DeviceError
from mmtok.image.config import ImageTokenizerConfig
from mmtok.pretrained import resolve_checkpoint
from mmtok.vq import VectorQuantizer, VQConfig


def _copy(name: str, to: Path) -> Path:
    shutil.copytree(resolve_checkpoint(name), to)
    return to


def test_a_config_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    mmtok.save(VectorQuantizer(VQConfig(dim=4, codebook_size=8)), tmp_path / "vq")
    config = tmp_path / "vq" / "config.json"
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())  # as Notepad saves UTF-8
    assert mmtok.load(tmp_path / "vq").cfg.codebook_size == 8  # before: "config.json is not valid JSON"
    assert load_checkpoint(tmp_path / "vq").kind == "vq"


def test_a_config_copied_in_from_another_kind_is_named(tmp_path: Path) -> None:
    folder = _copy("image", tmp_path / "img")
    shutil.copy(Path(resolve_checkpoint("audio")) / "config.json", folder / "config.json")
    assert read_metadata(folder / "model.safetensors") == {"kind": "image"}
    for load in (mmtok.load, load_checkpoint):
        with pytest.raises(CheckpointError) as err:
            load(folder)
        assert str(err.value) == (  # before (mmtok.load): missing tensors [...], unexpected [...], 122 more
            f"checkpoint {folder}: config.json says kind 'audio', but model.safetensors was saved as kind 'image': "
            "the two files come from different checkpoints; put back the config.json saved with these weights")


def test_weights_that_record_no_kind_are_not_refused_for_it(tmp_path: Path) -> None:
    assert read_metadata(tmp_path / "none.safetensors") == {}
    (tmp_path / "junk.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}")
    assert read_metadata(tmp_path / "junk.safetensors") == {}


def test_a_config_of_another_class_is_not_blamed_on_a_newer_version() -> None:
    with pytest.raises(CheckpointError) as err:
        config_from_dict(ImageTokenizerConfig, dataclasses.asdict(VQConfig(dim=4, codebook_size=8)), where="x")
    said = str(err.value)
    assert said.startswith("x: the config does not fit ImageTokenizerConfig: 14 of its 14 field(s) are not its (")
    assert "different mmtok version" not in said
    with pytest.raises(CheckpointError, match="probably written by a different mmtok version"):  # one new field
        config_from_dict(VQConfig, {"dim": 4, "codebook_size": 8, "shiny_new": 1}, where="x")


def test_save_codes_takes_a_str_path(tmp_path: Path) -> None:
    from mmtok.data.codes import load_codes, save_codes

    out = save_codes(str(tmp_path / "sub" / "x.npz"), np.arange(6).reshape(2, 3), {"kind": "image"})
    assert out == tmp_path / "sub" / "x.npz"  # before: AttributeError: 'str' object has no attribute 'parent'
    assert load_codes(str(out), check_video=False).codes.tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message of a machine without a GPU")
def test_a_gpu_asked_for_from_python_names_the_python_spelling() -> None:
    with pytest.raises(DeviceError) as err:
        mmtok.load("image", device="cuda")
    assert str(err.value).endswith("use --device cpu (device='cpu' from Python)")
