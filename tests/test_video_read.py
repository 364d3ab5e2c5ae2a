"""Reading video files as they play: one clock for frames and soundtrack, display rotation and pixel
aspect, cut Matroska files, frame-rate gaps in bounded chunks, soundtrack ends and lengths.

Every clip is made here with PyAV: a few small frames, flat grays that name their index.
"""

from __future__ import annotations

import functools
import io
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from mmtok.core.errors import VideoError
from tests.test_video import _index, _levels, tiny_tokenizer

av = pytest.importorskip("av", reason="PyAV (the video extra: pip install mmtok[video]) is not installed")

RATE = 16_000  # Hz of the generated soundtracks
TONE_AT = 1.0  # seconds into the clip where the generated soundtrack's tone starts


def make_clip(path: Path, frames: np.ndarray, times: list[float], *, sound_start: float | None = None,
              sound_seconds: float = 0.0, rotation: int | None = None, sar: Fraction | None = None,
              codec: str = "mpeg4") -> Path:
    """Frames shown at ``times`` (file clock, seconds); a PCM soundtrack from ``sound_start`` for ``sound_seconds``
    (silent until :data:`TONE_AT` s of the file clock less the clip's first time, then a 440 Hz tone)."""
    with av.open(str(path), "w") as c:
        v = c.add_stream(codec, rate=1000)
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if rotation is not None:
            v.set_display_rotation(rotation)  # degrees counterclockwise, as frame.rotation reads it back
        if sar is not None:
            v.codec_context.sample_aspect_ratio = sar
        a = None if sound_start is None else c.add_stream("pcm_s16le", rate=RATE, layout="mono")
        for img, t in zip(frames, times, strict=True):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts, f.time_base = round(t * 1000), Fraction(1, 1000)
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        if a is not None and sound_start is not None:
            _write_sound(c, a, sound_start, sound_seconds, tone_from=times[0] + TONE_AT)
    return path


def _write_sound(c, a, start: float, seconds: float, *, tone_from: float) -> None:  # type: ignore[no-untyped-def]
    t = start + np.arange(round(seconds * RATE)) / RATE
    wave = np.where(t >= tone_from, 8000 * np.sin(2 * np.pi * 440 * t), 0).astype(np.int16)
    for k in range(0, wave.size, 1600):
        f = av.AudioFrame.from_ndarray(wave[None, k : k + 1600], format="s16", layout="mono")
        f.sample_rate, f.pts, f.time_base = RATE, k + round(start * RATE), Fraction(1, RATE)
        c.mux(a.encode(f))
    c.mux(a.encode(None))


def _onset(wave: torch.Tensor, rate: int) -> float:
    return int(np.argmax(wave.abs().numpy() > 0.05)) / rate


# --------------------------------------------------------------------------- one clock


def test_streams_that_start_late_are_timed_from_the_files_first_timestamp(tmp_path: Path) -> None:
    """Video and sound both start at 1.4 s (a cut from a longer recording): frame 0 is the first frame, and
    the tone one second in is one second into the soundtrack, where frame 10 is."""
    from mmtok.video.read import read_audio, read_video

    times = [1.4 + i / 10 for i in range(30)]
    path = make_clip(tmp_path / "late.mkv", _levels(30), times, sound_start=1.4, sound_seconds=3.0)
    frames, at = read_video(path, fps=1.0)
    assert _index(frames) == [0, 10, 20] and at.tolist() == [0.0, 1.0, 2.0]
    frames, at = read_video(path, fps=10.0, start=1.0, duration=0.5)
    assert _index(frames) == [10, 11, 12, 13, 14]
    wave, rate = read_audio(path)
    assert wave.numel() == 3 * RATE and abs(_onset(wave, rate) - TONE_AT) < 0.01


def test_a_soundtrack_that_starts_late_is_padded_with_silence(tmp_path: Path) -> None:
    """Video from 0 s, sound from 0.5 s: the soundtrack starts with half a second of silence, not early."""
    from mmtok.video.read import read_audio, read_video

    times = [i / 10 for i in range(30)]
    path = make_clip(tmp_path / "late_sound.mkv", _levels(30), times, sound_start=0.5, sound_seconds=2.5)
    wave, rate = read_audio(path)
    assert wave.numel() == 3 * RATE and not bool(wave[: RATE // 2].any())
    assert abs(_onset(wave, rate) - TONE_AT) < 0.01
    frames, _ = read_video(path, fps=1.0)
    assert _index(frames) == [0, 10, 20]


def test_a_video_that_starts_after_its_sound_holds_its_first_frame(tmp_path: Path) -> None:
    from mmtok.video.read import read_audio, read_video

    times = [0.5 + i / 10 for i in range(25)]  # the picture from 0.5 s to 3.0 s, the sound from 0 s
    path = make_clip(tmp_path / "late_picture.mkv", _levels(25), times, sound_start=0.0, sound_seconds=3.0)
    frames, _ = read_video(path, fps=2.0)
    assert _index(frames) == [0, 0, 5, 10, 15, 20]
    wave, rate = read_audio(path)
    assert abs(_onset(wave, rate) - (0.5 + TONE_AT)) < 0.01  # the tone is 1 s after the first frame


# --------------------------------------------------------------------------- as displayed


def _corner_frames(n: int = 3) -> np.ndarray:
    """64 wide, 32 high, a white top-left quarter on black."""
    frames = np.zeros((n, 32, 64, 3), np.uint8)
    frames[:, :16, :32] = 255
    return frames


def _white_corner(frame: torch.Tensor) -> tuple[str, str]:
    """(top|bottom, left|right): where the white quarter of ``frame [3, H, W]`` is."""
    h, w = frame.shape[-2:]
    rows, cols = torch.nonzero(frame.mean(0) > 0.5, as_tuple=True)
    return ("top" if rows.float().mean() < h / 2 else "bottom", "left" if cols.float().mean() < w / 2 else "right")


@pytest.mark.parametrize(("degrees", "corner"), [(90, ("bottom", "left")), (-90, ("top", "right")),
                                                 (180, ("bottom", "right")), (0, ("top", "left"))])
def test_display_rotation_is_applied(tmp_path: Path, degrees: int, corner: tuple[str, str]) -> None:
    """PyAV's ``frame.rotation`` is FFmpeg's ``av_display_rotation_get``: the degrees the picture is turned
    counterclockwise for display (a phone held upright records -90: turned clockwise, as ``ffmpeg`` plays it)."""
    from mmtok.video.read import read_video

    path = make_clip(tmp_path / f"rot{degrees}.mp4", _corner_frames(), [0.0, 0.1, 0.2], rotation=degrees)
    frames, _ = read_video(path, fps=10.0)
    assert frames.shape[-2:] == ((64, 32) if degrees % 180 else (32, 64))
    assert _white_corner(frames[0]) == corner
    small, _ = read_video(path, fps=10.0, size=16)  # the shorter side of the picture as shown
    assert small.shape[-2:] == ((32, 16) if degrees % 180 else (16, 32))
    assert _white_corner(small[0]) == corner


def test_non_square_pixels_are_sized_as_displayed(tmp_path: Path) -> None:
    from mmtok.video.read import read_video

    frames = _corner_frames()[:, :, :32]  # 32 wide, 32 high: the white quarter is the top half's left half
    path = make_clip(tmp_path / "sar.mkv", frames, [0.0, 0.1, 0.2], sar=Fraction(2, 1))  # shown 64 wide
    shown, _ = read_video(path, fps=10.0)
    assert shown.shape[-2:] == (32, 64) and _white_corner(shown[0]) == ("top", "left")
    assert read_video(path, fps=10.0, size=16).frames.shape[-2:] == (16, 32)
    assert read_video(path, fps=10.0, size=(8, 8)).frames.shape[-2:] == (8, 8)  # (H, W) asked: as asked


# --------------------------------------------------------------------------- cut files, gaps


def test_a_cut_matroska_file_is_refused(tmp_path: Path) -> None:
    """Matroska states no stream duration: the track's DURATION tag (or the file's) tells a cut download."""
    from mmtok.video.read import read_video

    noise = np.random.default_rng(0).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    whole = make_clip(tmp_path / "whole.mkv", noise, [i / 10 for i in range(30)])
    assert read_video(whole, fps=10.0).frames.shape[0] == 30
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(VideoError, match=r"cut\.mkv' is truncated or corrupt: its frames end at .* says 2\.90\d s"):
        read_video(cut, fps=10.0)


def test_a_long_gap_between_frames_comes_in_bounded_chunks(tmp_path: Path, monkeypatch) -> None:
    """One frame held for 40 s (variable frame rate) is 40 frames at 1 fps: no chunk holds more than asked,
    and the image tokenizer never sees more than ``chunk_frames`` at once."""
    from mmtok.video.read import iter_video
    from mmtok.video.tokenizer import VideoTokenizer

    path = make_clip(tmp_path / "gap.mkv", _levels(3), [0.0, 0.5, 40.5])
    sizes = [len(c) for c, _ in iter_video(path, fps=1.0, chunk=4)]
    assert sum(sizes) == 41 and max(sizes) == 4
    vt = VideoTokenizer(tiny_tokenizer(), fps=1.0, chunk_frames=4)
    batches: list[int] = []
    encode = vt.image.encode
    monkeypatch.setattr(vt.image, "encode", lambda x: batches.append(len(x)) or encode(x))
    assert vt.encode(path).shape[0] == 41 and max(batches) == 4
    tensor = torch.rand(10, 3, 32, 32)
    batches.clear()
    assert vt.encode(tensor).shape[0] == 10 and batches == [4, 4, 2]


# --------------------------------------------------------------------------- soundtrack length


def test_the_soundtrack_ends_where_its_stream_says(tmp_path: Path) -> None:
    """AAC pads its last frame: 2 s written read back as 2 s (32,000 samples), not 32,768."""
    from mmtok.video.read import read_audio
    from mmtok.video.write import write_video

    buf = io.BytesIO()
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * torch.arange(2 * RATE) / RATE)
    write_video(buf, torch.rand(4, 3, 32, 32), fps=2.0, audio=tone, sample_rate=RATE)
    path = tmp_path / "aac.mp4"
    path.write_bytes(buf.getvalue())
    wave, rate = read_audio(path)
    assert (wave.numel(), rate) == (2 * RATE, RATE)
    assert float(wave[-RATE // 10 :].abs().max()) > 0.1  # its end is the tone, not cut short


def test_a_soundtrack_over_ten_minutes_is_read(tmp_path: Path) -> None:
    from mmtok.video.read import MAX_SOUNDTRACK_SECONDS, read_audio

    assert MAX_SOUNDTRACK_SECONDS >= 3600
    path = tmp_path / "long.mkv"
    with av.open(str(path), "w") as c:
        a = c.add_stream("pcm_s16le", rate=1000)
        a.layout = "mono"
        block = np.zeros((1, 60_000), np.int16)  # a minute at 1 kHz
        for k in range(11):
            f = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            f.sample_rate, f.pts, f.time_base = 1000, k * 60_000, Fraction(1, 1000)
            c.mux(a.encode(f))
        c.mux(a.encode(None))
    wave, _ = read_audio(path, 1000)
    assert wave.numel() == 660_000


def test_a_soundtrack_too_long_is_refused_before_any_frame_is_encoded(tmp_path: Path, monkeypatch) -> None:
    import mmtok.video.read as read
    import mmtok.video.tokenizer as tokenizer
    from mmtok.video.read import read_audio
    from mmtok.video.tokenizer import VideoTokenizer

    path = make_clip(tmp_path / "av.mkv", _levels(30), [i / 10 for i in range(30)], sound_start=0.0,
                     sound_seconds=3.0)
    with pytest.raises(VideoError, match=r"av\.mkv.*longer than max_seconds=1 s.*\"soundtrack\": false.*"
                                         r"max_seconds=None"):
        read_audio(path, max_seconds=1.0)
    with monkeypatch.context() as m:  # a file that states no length: refused once decoding passes the limit
        m.setattr(read, "_stated_end", lambda stream, container: None)
        with pytest.raises(VideoError, match=r"longer than max_seconds=1 s"):
            read_audio(path, max_seconds=1.0)
        assert read_audio(path, max_seconds=3.0)[0].numel() == 3 * RATE
    monkeypatch.setattr(tokenizer, "read_audio", functools.partial(read_audio, max_seconds=1.0))
    vt = VideoTokenizer(tiny_tokenizer(), fps=2.0)

    def no_frames(x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("frames were encoded before the soundtrack's length was checked")

    monkeypatch.setattr(vt.image, "encode", no_frames)
    with pytest.raises(VideoError, match="longer than max_seconds"):
        vt.segments(path)


def test_video_finds_pyav_through_audio_with_one_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from mmtok.audio import av_read
    from mmtok.video import read

    assert read.pyav() is av_read.optional_av()
    assert not hasattr(read, "INSTALL_HINT")  # one install hint: av_read's
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now fails as if PyAV were not installed
    with pytest.raises(ImportError, match=r"^reading video files needs PyAV: " + re.escape(av_read.INSTALL_AV) + "$"):
        read.pyav()


# --------------------------------------------------------------------------- the docstring


def test_read_videos_docstring_example_is_true(tmp_path: Path) -> None:
    """10 s of 16:9 at 2 fps, shorter side 128: the shape the docstring prints."""
    from mmtok.video.read import read_video

    claimed = re.search(r"torch\.Size\(\[([\d, ]+)\]\)", read_video.__doc__ or "")
    assert claimed is not None
    path = make_clip(tmp_path / "clip.mp4", _levels(20, h=36, w=64), [i / 2 for i in range(20)])
    frames, times = read_video(path, fps=2.0, size=128)
    assert list(frames.shape) == [int(v) for v in claimed.group(1).split(",")]
    assert times[:3].tolist() == [0.0, 0.5, 1.0]
