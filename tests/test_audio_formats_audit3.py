"""Audio files as users have them: how channels are mixed to mono (and channels that cancel), where a file's
or array's NaN/inf samples are, and a CAF file cut short."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmtok.audio.arrays import CancelledChannelsWarning
from mmtok.audio.io import load_audio
from mmtok.audio.pcm_headers import DataChunk, data_chunk
from mmtok.core.errors import AudioError

RATE = 16_000


def _tone(seconds: float = 0.5, hz: float = 440.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _cancelled(x: object, *args: object) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        load_audio(x, *args)  # type: ignore[arg-type]
    return [w for w in got if issubclass(w.category, CancelledChannelsWarning)]


def test_inverted_channel_of_a_stereo_file_is_warned_about(tmp_path: Path) -> None:
    x = _tone()
    path = tmp_path / "inverted.wav"
    sf.write(path, np.stack([x, -x], 1), RATE, subtype="PCM_16")  # int16 rounding: the mix is ~1e-5, not 0
    got = _cancelled(path)
    assert len(got) == 1
    said = str(got[0].message)
    assert str(path) in said and "2 channels cancel" in said and "pan=mono" in said
    assert got[0].message.path == str(path)  # type: ignore[union-attr]


@pytest.mark.parametrize("layout", ["silent_right", "same", "five_one", "uncorrelated"])
def test_channels_that_do_not_cancel_give_no_warning(tmp_path: Path, layout: str) -> None:
    x = _tone()
    noise = np.random.default_rng(0).standard_normal((x.size, 6)).astype(np.float32) * 0.1
    frames = {"silent_right": np.stack([x, 0 * x], 1), "same": np.stack([x, x], 1),
              "five_one": np.stack([x] * 6, 1), "uncorrelated": noise}[layout]
    path = tmp_path / f"{layout}.wav"
    sf.write(path, frames, RATE, subtype="PCM_16")
    assert _cancelled(path) == []


def test_downmix_is_the_mean_of_the_channels(tmp_path: Path) -> None:
    x = _tone()
    sf.write(tmp_path / "mono.wav", x, RATE, subtype="FLOAT")
    sf.write(tmp_path / "left.wav", np.stack([x, 0 * x], 1), RATE, subtype="FLOAT")
    mono, left = load_audio(tmp_path / "mono.wav"), load_audio(tmp_path / "left.wav")
    assert np.allclose(left.numpy(), mono.numpy() / 2)  # one silent channel: -6 dB, as documented


def test_inverted_channel_of_an_array_is_warned_about() -> None:
    x = _tone()
    got = _cancelled(np.stack([x, -x]), RATE)
    assert len(got) == 1 and "audio array" in str(got[0].message) and "x[0]" in str(got[0].message)
    assert _cancelled(np.stack([x, 0.5 * x]), RATE) == []


def test_nan_in_a_file_names_where_and_what_to_do(tmp_path: Path) -> None:
    x = _tone(rate=8000)
    x[100] = np.nan
    x[300] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, x, 8000, subtype="FLOAT")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    said = str(e.value)
    assert str(path) in said and "2 NaN/inf sample(s)" in said
    assert "0.013 s (frame 100)" in said and "nan_to_num" in said


def test_nan_in_an_array_names_where_and_what_to_do() -> None:
    x = _tone()
    x[7] = np.nan
    with pytest.raises(AudioError, match=r"1 NaN/inf sample\(s\), the first at sample 7; .*nan_to_num"):
        load_audio(x, RATE)


def test_nan_past_the_first_block_is_placed_by_its_frame(tmp_path: Path) -> None:
    frames = np.full((400_000, 2), 0.1, dtype=np.float32)  # two decode blocks of a stereo file
    frames[300_001, 1] = np.inf
    path = tmp_path / "late.wav"
    sf.write(path, frames, 48_000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"the first at 6\.250 s \(frame 300001\)"):
        load_audio(path)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT", "ULAW"])
def test_caf_cut_short_is_refused(tmp_path: Path, subtype: str) -> None:
    x = _tone(1.0)
    whole = tmp_path / "whole.caf"
    sf.write(whole, np.stack([x, x], 1), RATE, format="CAF", subtype=subtype)
    assert load_audio(whole).numel() == RATE
    width = {"PCM_16": 2, "FLOAT": 4, "ULAW": 1}[subtype] * 2
    assert data_chunk(whole) == DataChunk(RATE * width, RATE * width, RATE)
    cut = tmp_path / "cut.caf"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) - 400])  # libsndfile reads what is left without a word
    with pytest.raises(AudioError, match=rf"{cut.name} is truncated"):
        load_audio(cut)
