"""``train-tokenizer audio --init-from MODEL``: the memory its batches ask for is worked out on that
tokenizer's front end (its mel channels), not the default one's."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_helpers import small_tokenizer

from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.train_checks import MEMORY_USES, check_args, memory_uses
from mmtok.audio.train_options import build_parser
from mmtok.core import limits
from mmtok.core.checkpoint import config_from_dict, read_config
from mmtok.core.module_io import save_module

pytestmark = pytest.mark.usefixtures("one_thread")


def _args(tmp_path: Path, model: Path, batch: int) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    clips = tmp_path / "clips"
    clips.mkdir(exist_ok=True)
    sf.write(clips / "a.wav", (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32), 16000)
    parser = build_parser()
    return parser, parser.parse_args(["--data", str(clips), "--out", str(tmp_path / "run"), "--init-from", str(model),
                                      "--batch-size", str(batch), "--crop-tokens", "1000"])


def test_batches_of_a_tokenizer_with_more_mel_channels_are_counted_on_its_channels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "wide-mels"
    save_module(small_tokenizer(n_mels=128), model)
    parser, args = _args(tmp_path, model, 200_000)
    default_need = MEMORY_USES[0].need(args)  # on the default 80 channels
    source = config_from_dict(AudioTokenizerConfig, read_config(model, kind="audio")["config"])
    own_need = memory_uses(source)[0].need(args)
    assert own_need == pytest.approx(default_need * 128 / 80)
    monkeypatch.setattr(limits, "machine_memory", lambda: int((default_need + own_need) / 2))  # between the two
    with pytest.raises(SystemExit):
        check_args(parser, args)


def test_the_refusal_says_the_batch_that_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "wide-mels"
    save_module(small_tokenizer(n_mels=128), model)
    parser, args = _args(tmp_path, model, 200_000)
    memory = int(MEMORY_USES[0].need(args) * 1.3)  # the default front end's batch fits; this tokenizer's does not
    monkeypatch.setattr(limits, "machine_memory", lambda: memory)
    with pytest.raises(SystemExit):
        check_args(parser, args)
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--batch-size 200000, --crop-tokens 1000: one batch of log-mel crops" in said
    assert f"(with --init-from {model})" in said
    fits = memory // (3 * 128 * 2 * 1000 * 4)
    assert f"--batch-size at most {fits} (with --crop-tokens 1000)" in said


def test_the_same_batch_from_a_default_sized_tokenizer_is_taken(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "default-mels"
    save_module(small_tokenizer(), model)
    parser, args = _args(tmp_path, model, 200_000)
    monkeypatch.setattr(limits, "machine_memory", lambda: int(MEMORY_USES[0].need(args) * 1.3))
    check_args(parser, args)  # nothing refused
