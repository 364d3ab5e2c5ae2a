"""mmtok.load's device checked before anything is read, and default_config of a kind without a config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mmtok
from mmtok import pretrained
from mmtok.core.errors import CheckpointError, DeviceError
from mmtok.pretrained import default_config


def _never(*args: object, **kwargs: object) -> None:
    raise AssertionError("the checkpoint was read before the device was checked")


def test_a_device_that_is_not_here_is_refused_before_the_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = mmtok.save(mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8)), tmp_path / "vq")
    monkeypatch.setattr(pretrained, "resolve_checkpoint", _never)
    monkeypatch.setattr(pretrained, "_shipped_video", _never)
    missing = ["bogus", "cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"])
    for device in missing:
        for where in (folder, "video"):
            with pytest.raises(DeviceError, match=rf"device '{device}'"):
                mmtok.load(where, device=device)
    monkeypatch.undo()
    assert mmtok.load(folder, device="cpu").embed.device.type == "cpu"


def test_text_has_no_config_to_build() -> None:
    with pytest.raises(CheckpointError, match="'text' is a BPE vocabulary") as err:
        default_config("text")
    assert "not one this mmtok can build" not in str(err.value)
    with pytest.raises(CheckpointError, match=r"not one this mmtok can build \(known: vq, image, audio, vocoder, video\)$"):
        default_config("nope")
