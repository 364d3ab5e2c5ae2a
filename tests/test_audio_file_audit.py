"""Audio files that loaded short without a word: MP3 files joined end to end (a Xing/Info header that
declares fewer frames than follow it), RF64, Wave64 and compressed WAV files cut short; a file too short
for one sample at the target rate, an empty file; and the PAD_CODE hint, said only of PAD_CODE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmtok.audio.codes import PAD_CODE, check_codes
from mmtok.audio.file_checks import Mp3Frames, check_mp3, mp3_frames
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.io import load_audio
from mmtok.audio.pcm_headers import DataChunk, data_chunk
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.errors import AudioError
from tests.test_audio_mp3 import encode, signal

FRAME = b"\xff\xfb\x90\xc4" + bytes(413)  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, mono: 417 bytes


def tone(seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def one_line(e: pytest.ExceptionInfo[AudioError]) -> str:
    assert "\n" not in str(e.value)
    return str(e.value)


# --------------------------------------------------------------------------- MP3s joined end to end


def test_mp3s_joined_end_to_end_are_refused_and_a_single_one_loads(tmp_path: Path) -> None:
    one = tmp_path / "a.mp3"
    sf.write(one, tone(2.0, 44_100), 44_100, format="MP3")  # LAME, with a Xing/Info header
    assert load_audio(one).numel() == 2 * SAMPLE_RATE
    walk = mp3_frames(one)
    assert walk is not None and walk.declared == walk.frames
    joined = tmp_path / "ab.mp3"
    joined.write_bytes(one.read_bytes() * 2)  # cat a.mp3 a.mp3 > ab.mp3
    with pytest.raises(AudioError) as e:
        load_audio(joined)  # before: the first file alone, 2.0 s
    assert one_line(e) == (f"audio file {joined} holds {2 * walk.frames + 1} MPEG frames, its Xing/Info header "
                           f"declares {walk.frames} (MP3 files joined end to end?); re-encode it or join with "
                           "ffmpeg -f concat")


def test_an_mp3_whose_xing_count_was_never_filled_in_loads_whole(tmp_path: Path) -> None:
    """A Xing/Info header with a frame count of 0 (an encoder stopped before it wrote the count) has no count:
    the file is read whole, neither refused as joined nor cut to nothing."""
    one = tmp_path / "a.mp3"
    sf.write(one, tone(2.0, 44_100), 44_100, format="MP3")
    data = bytearray(one.read_bytes())
    at = max(data.find(b"Xing"), data.find(b"Info"))
    assert at > 0 and int.from_bytes(data[at + 4 : at + 8], "big") & 1  # the frame-count field is present
    data[at + 8 : at + 12] = bytes(4)
    zero = tmp_path / "zero.mp3"
    zero.write_bytes(bytes(data))
    walk = mp3_frames(zero)
    assert walk is not None and walk.declared is None
    assert abs(load_audio(zero).numel() - 2 * SAMPLE_RATE) < 1152


def test_an_mp3_from_ffmpeg_with_a_xing_header_still_loads(tmp_path: Path) -> None:
    path = encode(tmp_path / "a.mp3", signal(seconds=2), fmt="mp3", codec="libmp3lame", vbr=True, xing=True)
    walk = mp3_frames(path)
    assert walk is not None and walk.declared is not None
    assert abs(load_audio(path).numel() - 2 * SAMPLE_RATE) < 1152


def test_a_frame_past_the_declared_count_is_tolerated_two_are_not(tmp_path: Path) -> None:
    path = tmp_path / "a.mp3"
    path.write_bytes(FRAME * 8)
    check_mp3(path, Mp3Frames(9 * 1152, 9, 8, False))  # an encoder that left its tag frame out of the count
    check_mp3(path, Mp3Frames(8 * 1152, 8, None, False))  # no Xing/Info header: nothing to hold it against
    with pytest.raises(AudioError, match=r"a\.mp3 holds 10 MPEG frames, its Xing/Info header declares 8 "):
        check_mp3(path, Mp3Frames(10 * 1152, 10, 8, False))


# --------------------------------------------------------------------------- WAV-family files cut short

CUT = [  # (soundfile keywords): containers and codecs whose cut files loaded short
    {"format": "RF64", "subtype": "PCM_16"},
    {"format": "W64", "subtype": "PCM_16"},
    {"format": "WAV", "subtype": "IMA_ADPCM"},
    {"format": "WAV", "subtype": "MS_ADPCM"},
    {"format": "WAV", "subtype": "GSM610"},
]


@pytest.mark.parametrize("kw", CUT, ids=lambda kw: f"{kw['format']}-{kw['subtype']}")
def test_a_wav_family_file_cut_short_is_refused(tmp_path: Path, kw: dict) -> None:
    whole, cut = tmp_path / "whole.wav", tmp_path / "cut.wav"
    sf.write(whole, tone(2.0), SAMPLE_RATE, **kw)
    assert abs(load_audio(whole).numel() - 2 * SAMPLE_RATE) < 1024  # compressed blocks round the length up
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"cut\.wav is truncated: its header "):
        load_audio(cut)  # before: about 1.0 s of 2.0, no error


@pytest.mark.parametrize("fmt", ["RF64", "W64"])
def test_rf64_and_wave64_headers_give_their_data_size(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros((1000, 2), np.float32), SAMPLE_RATE, format=fmt, subtype="PCM_24")
    assert data_chunk(path) == DataChunk(6000, 6000, 1000)
    path.write_bytes(path.read_bytes()[:-600])
    assert data_chunk(path) == DataChunk(6000, 5400, 1000)
    with pytest.raises(AudioError, match=r"a\.wav is truncated: its header promises 1000 frames, 900 could be read"):
        load_audio(path)


def test_a_compressed_wav_cut_short_names_its_bytes_and_pcm_keeps_its_message(tmp_path: Path) -> None:
    ima, pcm = tmp_path / "ima.wav", tmp_path / "pcm.wav"
    sf.write(ima, tone(2.0), SAMPLE_RATE, subtype="IMA_ADPCM")
    declared = data_chunk(ima).declared  # type: ignore[union-attr]
    ima.write_bytes(ima.read_bytes()[:-declared // 2])
    with pytest.raises(AudioError) as e:
        load_audio(ima)
    assert f"ima.wav is truncated: its header declares {declared} bytes of samples, " in one_line(e)
    sf.write(pcm, tone(2.0), SAMPLE_RATE, subtype="PCM_16")
    pcm.write_bytes(pcm.read_bytes()[:-2000])
    with pytest.raises(AudioError, match=r"pcm\.wav is truncated: its header promises 32000 frames, 31000 could be read$"):
        load_audio(pcm)


# --------------------------------------------------------------------------- too short, or empty


def test_a_file_under_one_sample_at_the_target_rate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.wav"
    sf.write(path, np.full(1, 0.1, np.float32), 48_001, subtype="PCM_16")
    with pytest.raises(AudioError) as e:
        load_audio(path)  # before: shape (0,), and encode then said "all chunks were empty"
    assert one_line(e) == f"audio file {path} holds 1 sample at 48001 Hz: under one sample at 16000 Hz"
    assert load_audio(path, target_rate=48_001).numel() == 1


def test_an_empty_file_says_it_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError) as e:
        load_audio(path)  # before: libsndfile's "Format not recognised"
    assert one_line(e) == f"audio file {path} is empty (0 bytes)"


# --------------------------------------------------------------------------- the PAD_CODE hint


def test_the_pad_code_hint_is_given_only_for_pad_code() -> None:
    assert PAD_CODE == AudioTokenizer.PAD_CODE
    for codes, bad in (([3, 7, 5888], 5888), ([3, 99999], 99999), ([3, -2, 5], -2)):
        with pytest.raises(AudioError) as e:
            check_codes(codes, codebook_size=5888)
        assert f"got index {bad} " in str(e.value) and "PAD_CODE" not in str(e.value)
    with pytest.raises(AudioError, match=r"got index -1 \(values -1\.\.5888\) \(cut PAD_CODE padding off with"):
        check_codes([[3, 5888], [2, PAD_CODE]], codebook_size=5888)


def test_a_file_of_digital_silence_is_read_with_a_warning_naming_it(tmp_path: Path) -> None:
    silent, quiet = tmp_path / "silent.wav", tmp_path / "quiet.wav"
    sf.write(silent, np.zeros(8000, np.float32), SAMPLE_RATE, subtype="PCM_16")
    sf.write(quiet, tone(0.5) * 1e-3, SAMPLE_RATE, subtype="FLOAT")
    with pytest.warns(UserWarning, match=rf"^audio file {silent} is digital silence once mixed to mono"):
        assert load_audio(silent).numel() == 8000
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_audio(quiet).numel() == 8000  # quiet is not silent
