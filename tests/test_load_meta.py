"""Loading checks a checkpoint's shapes on the meta device before reading its weights: for every shipped kind,
without torch's slow meta fallbacks (random codes, filterbanks, windows are not computed there)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mmtok
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.checkpoint_names import models_dir
from mmtok.core.errors import CheckpointError
from mmtok.core.module_io import _meta_shapes
from mmtok.image.tokenizer import ImageTokenizer


@pytest.mark.parametrize(("cls", "name"), [(AudioTokenizer, "audio"), (ImageTokenizer, "image")])
def test_the_meta_build_gives_every_shape_of_the_shipped_models(cls: type, name: str) -> None:
    tok = mmtok.load(name)
    shapes = _meta_shapes(cls, tok.cfg)  # None (the check skipped) for audio while its filterbank was computed
    assert shapes is not None
    assert shapes == {k: tuple(v.shape) for k, v in tok.state_dict().items()}


def test_an_audio_checkpoint_whose_config_does_not_fit_its_weights_is_refused_before_they_are_read(
        tmp_path: Path) -> None:
    copy = tmp_path / "audio"
    shutil.copytree(models_dir() / "audio", copy)
    meta = json.loads((copy / "config.json").read_text())
    meta["config"]["decoder_channels"] = 320  # the weights are 384 wide
    (copy / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"decoder_channels = 320"):
        mmtok.load(copy)


def test_loading_the_shipped_models_imports_no_symbolic_machinery() -> None:
    """sympy and torch._dynamo came in with the meta fallbacks: about a second of every process that loads."""
    code = ("import sys, mmtok; mmtok.load('image'); mmtok.load('audio'); "
            "print(sorted(m for m in ('sympy', 'torch._dynamo') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
