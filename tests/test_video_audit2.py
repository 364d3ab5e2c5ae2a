"""Video files whose timestamps jump (a paused recording, MPEG-TS files joined end to end), and frames handed
to ``VideoTokenizer.encode`` as numpy arrays laid out channels last or as iterables.

Every clip is made here with PyAV: small flat-gray frames that name their index (tests.test_video).
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from mmtok.video.read import iter_video, read_audio, read_video
from mmtok.video.tokenizer import VideoTokenizer
from tests.test_video import _index, _levels, tiny_tokenizer

av = pytest.importorskip("av", reason="PyAV (the video extra: pip install mmtok[video]) is not installed")

RATE = 16_000  # Hz of the generated soundtracks


def _paused_clip(path: Path, *, before: float, pause: float, after: float) -> Path:
    """10 fps frames and a PCM soundtrack (0.1 before the pause, 0.5 after) whose timestamps both jump ahead by
    ``pause`` seconds after ``before`` seconds: a recording paused and resumed."""
    n_before, n_after = round(before * 10), round(after * 10)
    with av.open(str(path), "w", format="matroska") as c:
        v = c.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("pcm_s16le", rate=RATE, layout="mono")
        for i, img in enumerate(_levels(n_before + n_after)):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts, f.time_base = i + (round(pause * 10) if i >= n_before else 0), Fraction(1, 10)
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        step = RATE // 10
        for k in range(0, round((before + after) * RATE), step):
            level = 0.1 if k < before * RATE else 0.5
            f = av.AudioFrame.from_ndarray(np.full((1, step), round(level * 32767), np.int16), format="s16",
                                           layout="mono")
            f.sample_rate, f.time_base = RATE, Fraction(1, RATE)
            f.pts = k + (round(pause * RATE) if k >= before * RATE else 0)
            c.mux(a.encode(f))
        c.mux(a.encode(None))
    return path


def _ts_clip(path: Path, n: int = 20) -> Path:
    """``n`` frames at 10 fps with an AAC soundtrack as long, in MPEG-TS."""
    with av.open(str(path), "w", format="mpegts") as c:
        v = c.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=RATE, layout="mono")
        for i, img in enumerate(_levels(n)):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 10)
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n * RATE // 10) / RATE)).astype(np.float32)
        for k in range(0, wave.size, 1024):
            f = av.AudioFrame.from_ndarray(wave[None, k : k + 1024], format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = RATE, k, Fraction(1, RATE)
            c.mux(a.encode(f))
        c.mux(a.encode(None))
    return path


@pytest.fixture(scope="module")
def joined_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two copies of a 2 s MPEG-TS clip joined byte for byte (``cat a.ts a.ts``): the timestamps jump back."""
    one = _ts_clip(tmp_path_factory.mktemp("ts") / "a.ts")
    joined = one.with_name("joined.ts")
    joined.write_bytes(one.read_bytes() * 2)
    return joined


# --------------------------------------------------------------------------- timestamps that jump


def test_a_gap_in_the_sounds_timestamps_is_silence_on_the_frames_clock(tmp_path: Path) -> None:
    """Before: the soundtrack's samples were laid end to end, so it ended 3 s early and was refused as
    truncated ("its soundtrack ends at 2.000 s, but its audio stream says 5.000 s")."""
    clip = _paused_clip(tmp_path / "paused.mkv", before=1.0, pause=3.0, after=1.0)
    wave, _ = read_audio(clip)  # type: ignore[misc]
    assert wave.numel() == 5 * RATE
    seconds = [float(wave[s * RATE : (s + 1) * RATE].abs().mean()) for s in range(5)]
    assert seconds == pytest.approx([0.1, 0, 0, 0, 0.5], abs=0.01)  # sound, the pause silent, sound again
    frames, times = read_video(clip, fps=1)
    assert times.tolist() == [0, 1, 2, 3, 4] and _index(frames) == [0, 9, 9, 9, 10]  # the same clock


def test_a_gap_is_counted_against_max_seconds_before_it_is_filled(tmp_path: Path) -> None:
    from mmtok.core.errors import VideoError

    clip = _paused_clip(tmp_path / "long_pause.mkv", before=0.5, pause=600.0, after=0.5)
    with pytest.raises(VideoError, match=r"long_pause\.mkv.*longer than max_seconds=60"):
        read_audio(clip, max_seconds=60)


def test_joined_mpegts_files_are_read_end_to_end_frames_and_sound_alike(joined_ts: Path) -> None:
    """Before: the frames after the jump back were dropped silently (2 s of frames) while the soundtrack
    ran on to 4 s."""
    with pytest.warns(UserWarning, match=r"joined\.ts.*timestamps jump back.*following on"):
        frames, times = read_video(joined_ts, fps=5)
    seen = _index(frames)
    assert len(times) == 21 and seen[1:10] == seen[11:20] == [1, 3, 5, 7, 9, 11, 13, 15, 17]  # again, 2 s later
    wave, rate = read_audio(joined_ts)  # type: ignore[misc]
    assert abs(wave.numel() / rate - 4.0) < 0.3  # in step with the frames (AAC padding in it: TS states no end)


def test_a_start_in_the_second_of_joined_files_finds_its_frames(joined_ts: Path) -> None:
    """Before: the seek looked for 3 s among the stored timestamps (0..2 s), found nothing, and the call
    failed with "has a video stream but no frame could be decoded (corrupt or empty)"."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames, times = read_video(joined_ts, fps=5, start=3.0, duration=0.6)
        whole, _ = read_video(joined_ts, fps=5)
    assert times.tolist() == pytest.approx([3.0, 3.2, 3.4])
    assert torch.equal(frames, whole[15:18]) and _index(frames) == _index(whole[5:8])  # the second copy's


def test_a_start_late_in_an_h264_transport_stream(tmp_path: Path) -> None:
    """Before: a seek to 25 s of this 30 s H.264 MPEG-TS file (a camera's or a broadcast's format) decoded
    nothing, and the call failed with "has a video stream but no frame could be decoded (corrupt or empty)"."""
    path = tmp_path / "cam.m2ts"
    with av.open(str(path), "w", format="mpegts") as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        for i, img in enumerate(np.repeat(_levels(30, 32, 32), 10, axis=0)):  # level i over second i
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 10)
            c.mux(v.encode(f))
        c.mux(v.encode(None))
    frames, times = read_video(path, fps=1, start=25.0)
    assert times.tolist() == [25, 26, 27, 28, 29] and _index(frames) == [25, 26, 27, 28, 29]


# --------------------------------------------------------------------------- frames given to encode


@pytest.fixture(scope="module")
def vt() -> VideoTokenizer:
    return VideoTokenizer(tiny_tokenizer(), fps=10.0, chunk_frames=4)


def test_numpy_frames_channels_last_as_iter_video_gives_them(vt: VideoTokenizer, tmp_path: Path) -> None:
    """Before: ``encode`` of a numpy ``[T, H, W, 3]`` (what iter_video yields, and how ImageTokenizer.encode
    takes a numpy batch) was refused: "frames must be [T, 3, H, W]"."""
    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 40, 3), dtype=np.uint8)
    first = torch.from_numpy(frames).permute(0, 3, 1, 2)  # (T, H, W, C) -> (T, C, H, W)
    assert torch.equal(vt.encode(frames), vt.encode(first))
    assert torch.equal(vt.encode(frames), vt.encode(np.ascontiguousarray(first.numpy())))  # channels first too
    clip = _paused_clip(tmp_path / "c.mkv", before=1.0, pause=0.0, after=0.0)
    chunks = [c for c, _ in iter_video(clip, vt.fps)]
    assert torch.equal(vt.encode(np.concatenate(chunks)), vt.encode(clip))


def test_iterables_of_images_or_of_chunks(vt: VideoTokenizer, tmp_path: Path) -> None:
    """Before: a generator was a TypeError ("takes a file path, a [T, 3, H, W] tensor or a list of images")."""
    images = [torch.rand(3, 32, 32) for _ in range(6)]
    assert torch.equal(vt.encode(im for im in images), vt.encode(images))
    clip = _paused_clip(tmp_path / "c.mkv", before=1.0, pause=0.0, after=0.0)
    from_path = vt.encode(clip)
    assert torch.equal(vt.encode(c for c, _ in iter_video(clip, vt.fps, chunk=3)), from_path)
    assert torch.equal(vt.encode([f for f, _ in vt.frames(clip)]), from_path)
    rep = VideoTokenizer(vt.image, fps=10.0, temporal="repeat")
    assert torch.equal(rep.encode(c for c, _ in iter_video(clip, rep.fps, chunk=3)), rep.encode(clip))


def test_start_and_duration_with_frames_are_refused_not_ignored(vt: VideoTokenizer) -> None:
    """Before: ``encode(frames, start=1.0)`` returned the codes of every frame."""
    with pytest.raises(ValueError, match=r"start and duration select a window of a video file.*frames\[a:b\]"):
        vt.encode(torch.rand(4, 3, 32, 32), start=1.0)
    with pytest.raises(ValueError, match="duration=2"):
        vt.encode([torch.rand(3, 32, 32)], duration=2)


def test_an_empty_video_file_says_it_is_empty(tmp_path: Path) -> None:
    """Before: "is corrupt or not a container FFmpeg can read: Invalid data found when processing input", where
    an empty image or sound file says "is empty (0 bytes)"."""
    from mmtok.core.errors import VideoError

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for read in (read_video, read_audio, VideoTokenizer(tiny_tokenizer()).encode):
        with pytest.raises(VideoError, match=r"empty\.mp4' is empty \(0 bytes\)$"):
            read(empty)
