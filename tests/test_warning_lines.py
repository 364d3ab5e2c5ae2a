"""Warnings name the user's line, however deep in mmtok they were given (mmtok.core.warning_filters.user_stacklevel):
an animated GIF read through the image tokenizer, digital silence read through the audio tokenizer or load_audio,
a many-channel array mixed to mono."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import mmtok
from mmtok.audio.arrays import MixedChannelsWarning
from mmtok.audio.io import SilenceWarning
from mmtok.core.warning_filters import user_stacklevel


def test_the_level_counts_the_frames_inside_mmtok() -> None:
    assert user_stacklevel() == 1  # called from here: this line is the user's


def test_an_animation_read_by_the_image_tokenizer_warns_at_the_callers_line(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = [Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")) for _ in range(2)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    tok = mmtok.load("image")
    with pytest.warns(UserWarning, match="animation of 2 frames") as caught:
        tok.encode(tmp_path / "anim.gif")
    assert [w.filename for w in caught] == [__file__]


def test_silence_read_by_the_audio_tokenizer_warns_at_the_callers_line(tmp_path: Path) -> None:
    sf.write(tmp_path / "s.wav", np.zeros(3200, np.float32), 16000)
    tok = mmtok.load("audio")
    with pytest.warns(SilenceWarning) as caught:
        tok.encode(tmp_path / "s.wav")
    assert [w.filename for w in caught] == [__file__]


def test_a_many_channel_array_warns_at_the_callers_line() -> None:
    with pytest.warns(MixedChannelsWarning) as caught:
        mmtok.load_audio(torch.zeros(16000, 4).numpy() + 0.1, sample_rate=16000)
    assert [w.filename for w in caught] == [__file__]
