"""AAC files read through PyAV: an M4A ends where its container says, without the encoder's padding (as
many samples as were encoded, in step with the original), and a raw AAC (ADTS) file cut short or damaged
in the middle is refused, judged by its frame headers."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mmtok.audio.io import load_audio
from mmtok.core.errors import AudioError

RATE = 16_000
SECONDS = 3
N = SECONDS * RATE
AAC_FRAME = 1024  # samples in one AAC frame


def chirp() -> np.ndarray:
    """Three seconds of a tone swept from 200 Hz to 4 kHz at 16 kHz: one peak of correlation, at the true lag."""
    t = np.arange(N) / RATE
    return (0.3 * np.sin(2 * np.pi * (200 * t + (3800 / (2 * SECONDS)) * t * t))).astype(np.float32)


def encode(path: Path, x: np.ndarray, fmt: str) -> Path:
    """``x`` (mono at 16 kHz) encoded by PyAV's AAC encoder into ``path`` (``fmt``: "ipod"/"mp4" for M4A,
    "adts" for raw AAC), each frame timed as ffmpeg times it."""
    av = pytest.importorskip("av", reason="PyAV builds the test files")
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("aac", rate=RATE)
        stream.layout = "mono"
        for i in range(0, x.size, AAC_FRAME):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None, i : i + AAC_FRAME]), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, i, Fraction(1, RATE)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def best_lag(x: np.ndarray, y: np.ndarray, most: int = 2 * AAC_FRAME) -> int:
    """The delay of ``y`` against ``x`` (samples, within ``most``) that correlates best."""
    n = min(x.size, y.size) - 2 * most
    return max(range(-most, most + 1), key=lambda lag: float(np.dot(x[most : most + n], y[most + lag : most + lag + n])))


def frame_starts(data: bytes) -> list[int]:
    """Offsets of the ADTS frames of a whole raw AAC file, each length read from its header by hand."""
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        pos += (data[pos + 3] & 3) << 11 | data[pos + 4] << 3 | data[pos + 5] >> 5
    assert pos == len(data)
    return starts


# --------------------------------------------------------------------------- M4A


@pytest.mark.parametrize("fmt", ["ipod", "mp4"])
def test_an_m4a_loads_as_many_samples_as_were_encoded_in_step(tmp_path: Path, fmt: str) -> None:
    x = chirp()
    path = encode(tmp_path / "a.m4a", x, fmt)
    audio = load_audio(path).numpy()
    assert audio.size == N  # before: 48,128, the encoder's padding of its last frame kept
    assert abs(best_lag(x, audio)) <= 2
    assert float(np.corrcoef(x[: N - 2048], audio[: N - 2048])[0, 1]) > 0.95


def test_an_m4a_loads_as_long_as_the_video_reader_reads_it(tmp_path: Path) -> None:
    from mmtok.video.read import read_audio

    path = encode(tmp_path / "a.m4a", chirp(), "ipod")
    sound = read_audio(path)
    assert sound is not None and load_audio(path).numel() == sound[0].numel() == N


# --------------------------------------------------------------------------- raw AAC (ADTS)


def test_adts_frames_count_what_ffmpeg_decodes(tmp_path: Path) -> None:
    from mmtok.audio.adts import adts_frames
    from mmtok.audio.file_checks import FrameChain

    path = encode(tmp_path / "a.aac", chirp(), "adts")
    frames = len(frame_starts(path.read_bytes()))
    assert adts_frames(path) == FrameChain(frames * AAC_FRAME, frames, None, None, None)
    assert load_audio(path).numel() == frames * AAC_FRAME
    assert adts_frames(encode(tmp_path / "a.m4a", chirp(), "ipod")) is None


@pytest.mark.parametrize("into", [3, 100], ids=["in a header", "in a frame"])
def test_a_cut_aac_file_is_truncated(tmp_path: Path, into: int) -> None:
    path = encode(tmp_path / "a.aac", chirp(), "adts")
    whole = path.read_bytes()
    path.write_bytes(whole + b"TAG" + bytes(125))  # an ID3v1 tag after the last frame is no cut
    assert load_audio(path).numel() > N
    last = frame_starts(whole)[30]
    declared = frame_starts(whole)[31] - last
    path.write_bytes(whole[: last + into])  # before: loaded, 30 frames of 47
    with pytest.raises(AudioError) as e:
        load_audio(path)
    if into < 7:
        assert str(e.value) == (f"audio file {path} is truncated: its last ADTS frame's header is cut off, the file "
                                f"ends {into} bytes into it")
    else:
        assert str(e.value) == (f"audio file {path} is truncated: its last ADTS frame declares {declared} bytes, "
                                f"the file ends {into} bytes into it")


def test_an_aac_file_damaged_in_the_middle_is_refused(tmp_path: Path) -> None:
    path = encode(tmp_path / "a.aac", chirp(), "adts")
    data = bytearray(path.read_bytes())
    starts = frame_starts(bytes(data))
    data[starts[20] : starts[22]] = np.random.default_rng(0).integers(0, 255, starts[22] - starts[20], np.uint8).tobytes()
    path.write_bytes(bytes(data))  # before: loaded, FFmpeg re-syncing past the bytes
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert str(e.value) == (f"audio file {path}: the audio stream is corrupt, damaged at byte {starts[20]}: no "
                            "ADTS frame starts there, yet whole frames follow (damaged in the middle, not cut short)")
