"""config.json read back as the config it was written from: sequence types per the field's type hint,
and a config.json that names no kind refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from image_helpers import tiny_config

import mmtok
from mmtok.core.checkpoint import (
    CONFIG_NAME,
    config_from_dict,
    load_checkpoint,
    save_checkpoint,
    write_refusal,
)
from mmtok.core.errors import CheckpointError
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.pretrained import load_config
from mmtok.video.tokenizer import VideoTokenizer, VideoTokenizerConfig


def test_a_list_for_a_union_with_a_tuple_comes_back_a_tuple() -> None:
    assert config_from_dict(VideoTokenizerConfig, {"size": [64, 96]}).size == (64, 96)
    assert config_from_dict(VideoTokenizerConfig, {"size": 128}).size == 128
    assert config_from_dict(VideoTokenizerConfig, {"size": None}).size is None


def test_a_video_tokenizer_of_a_height_and_width_keeps_its_fingerprint(tmp_path: Path) -> None:
    video = VideoTokenizer(ImageTokenizer(tiny_config()), fps=2.0, size=(64, 96))
    back = mmtok.load(mmtok.save(video, tmp_path / "video"))
    assert back.cfg == video.cfg and back.cfg.size == (64, 96)
    assert back.fingerprint == video.fingerprint


@pytest.mark.parametrize(("edit", "found"), [(lambda m: m.pop("kind"), "it has none"),
                                             (lambda m: m.update(kind=3), "it has 3")])
def test_a_config_that_names_no_kind_is_refused_by_name(tmp_path: Path, edit: object, found: str) -> None:
    folder = save_checkpoint(tmp_path / "ck", kind="vq", config={}, tensors={"w": torch.zeros(1)})
    meta = json.loads((folder / CONFIG_NAME).read_text())
    edit(meta)  # type: ignore[operator]
    (folder / CONFIG_NAME).write_text(json.dumps(meta))
    message = rf"checkpoint {folder}: {CONFIG_NAME} names no kind of checkpoint \(.*{found}\)"
    for read in (mmtok.load, load_checkpoint, load_config):
        with pytest.raises(CheckpointError, match=message):
            read(folder)
    refusal = write_refusal(folder, kind="vq")
    assert refusal is not None and "names no kind" in refusal and "kind None" not in refusal
