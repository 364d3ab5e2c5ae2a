"""Video files -> frames sampled at a fixed rate, and their soundtrack: the reading half of video.

Data flow: any container/codec FFmpeg reads -> :func:`iter_video` (PyAV, streamed:
decoded frame by frame, only the sampled ones converted) -> float ``[T, 3, H, W]``
in [0, 1]; :func:`read_audio` gives the soundtrack, mono, resampled.

Frame sampling: frame ``k`` is what is on screen at ``start + k / fps`` (the last
decoded frame whose timestamp is at or before that time), for every such time
before the end of the stream. This holds for variable frame rate files too: the
container's timestamps decide, never an assumed constant rate.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from mmtok.core.errors import VideoError

__all__ = ["AUDIO_RATE", "CHUNK_FRAMES", "ShrinkTo", "VideoClip", "frames_to_float", "iter_video", "no_frames_message", "pyav",
           "read_audio", "read_video"]

TIME_EPS = 1e-6  # seconds: timestamps closer than this count as equal
CHUNK_FRAMES = 16  # frames converted at once when streaming a file
TRUNCATED_S = 0.5  # seconds the frames may end before the stream's stated end (past that: a cut file)
AUDIO_RATE = 16_000  # Hz read_audio resamples to by default
MAX_SOUNDTRACK_SECONDS = 600.0  # read_audio refuses longer soundtracks by default (bounded memory)
INSTALL_HINT = "reading video files needs PyAV: pip install mmtok[video]"


class VideoClip(NamedTuple):
    """What :func:`read_video` returns (unpacks as ``frames, timestamps``)."""

    frames: torch.Tensor  # float32 [T, 3, H, W] in [0, 1]
    timestamps: torch.Tensor  # float64 [T]: the time in seconds each frame shows


def pyav() -> Any:
    try:
        import av
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(INSTALL_HINT) from e
    return av


def _open_container(path: str | os.PathLike[str], where: str) -> Any:
    """``av.open`` for reading, with FFmpeg's errors turned into a :class:`VideoError` naming the file."""
    av = pyav()
    try:
        return av.open(os.fspath(path), mode="r")
    except av.error.FFmpegError as e:
        raise VideoError(f"{where} is corrupt or not a container FFmpeg can read: {e}") from e


class ShrinkTo(int):
    """A ``size`` (shorter side) that frames are only shrunk to: shorter ones keep their size."""


def _target_size(width: int, height: int, size: int | tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) the frames are converted to: ``size`` is the shorter side, or ``(H, W)``."""
    if size is None or (isinstance(size, ShrinkTo) and min(width, height) <= size):
        return width, height
    if isinstance(size, int):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        s = size / min(width, height)
        return max(1, round(width * s)), max(1, round(height * s))
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"size (H, W) must be positive, got {size}")
    return w, h


def _frame_time(frame: Any, index: int, rate: float) -> float:
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    return index / rate  # a stream without timestamps: assume its nominal rate


class _Sampler:
    """Frame ``k`` is what is on screen at ``start + k / fps``: collects those frames in chunks.

    A frame shown several times in a row is converted to pixels once.
    """

    def __init__(self, start: float, fps: float, size: int | tuple[int, int] | None) -> None:
        self.start, self.fps, self.size = start, fps, size
        self.k = 0
        self.target = start  # the time of the next frame to show
        self.size_wh: tuple[int, int] | None = None
        self.out: list[np.ndarray] = []
        self.times: list[float] = []
        self._last: tuple[Any, Any] = (None, None)  # the frame converted last and its pixels

    def show(self, frame: Any) -> None:
        """``frame`` is on screen at the current target time; move on to the next one."""
        if self.size_wh is None:
            self.size_wh = _target_size(frame.width, frame.height, self.size)
        if self._last[0] is not frame:
            w, h = self.size_wh
            self._last = (frame, frame.to_ndarray(format="rgb24", width=w, height=h))
        self.out.append(self._last[1])
        self.times.append(self.target)
        self.k += 1
        self.target = self.start + self.k / self.fps

    def full(self, chunk: int) -> bool:
        return len(self.out) >= chunk

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """The frames collected so far (``uint8 [n, H, W, 3]``, ``float64 [n]`` seconds)."""
        chunk = np.stack(self.out), np.asarray(self.times)
        self.out, self.times = [], []
        return chunk


def _check_video_args(path: str | os.PathLike[str], fps: float, start: float, duration: float | None) -> str:
    """``iter_video``'s argument checks; returns the file's name for messages."""
    where = f"video file {os.fspath(path)!r}"
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
    if start < 0 or (duration is not None and not duration > 0):
        raise ValueError(f"start must be >= 0 and duration > 0, got start={start!r}, duration={duration!r}")
    if not Path(path).exists():
        raise FileNotFoundError(f"{where} does not exist")
    if Path(path).is_dir():
        raise VideoError(f"{os.fspath(path)!r} is a folder, not a video file")
    return where


def _video_stream(container: Any, where: str, start: float, av: Any) -> Any:
    """The first video stream, seeked to just before ``start``."""
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoError(f"{where} has no video stream (streams: {', '.join(kinds)})")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if start > 0:
        try:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        except av.error.FFmpegError:
            container.seek(0, stream=stream)
    return stream


def _stream_end(stream: Any, last_frame_end: float, stop: float, where: str, frame_len: float) -> float:
    """When the last frame leaves the screen: its end, or the stream's stated end if a little later; at most
    ``stop``. Frames that end well before the stated end (more than :data:`TRUNCATED_S` and three frames)
    mean a cut file: a :class:`VideoError`, not the last frame held to the end."""
    end = last_frame_end
    if stream.duration and stream.time_base:
        stated = float((stream.start_time or 0) + stream.duration) * float(stream.time_base)
        if min(stated, stop) - last_frame_end > max(TRUNCATED_S, 3 * frame_len):
            raise VideoError(f"{where} is truncated or corrupt: its frames end at {last_frame_end:.3f} s, but its "
                             f"video stream says {stated:.3f} s")
        end = max(end, stated)
    return min(end, stop)


def iter_video(
    path: str | os.PathLike[str],
    fps: float = 1.0,
    size: int | tuple[int, int] | None = None,
    *,
    start: float = 0.0,
    duration: float | None = None,
    chunk: int = CHUNK_FRAMES,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream frames sampled at ``fps`` as chunks ``(uint8 [n, H, W, 3], float64 [n] seconds)``.

    Decodes one frame at a time (memory does not grow with the file) and converts
    only the frames it keeps. ``size``: None (native), an int (shorter side) or
    ``(H, W)``. ``start``/``duration`` select a window in seconds.
    """
    where = _check_video_args(path, fps, start, duration)
    av = pyav()
    with _open_container(path, where) as container:
        stream = _video_stream(container, where, start, av)
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        stop = math.inf if duration is None else start + duration
        s = _Sampler(start, fps, size)
        prev: Any = None
        prev_time, last_len = 0.0, 1.0 / rate
        try:
            for index, frame in enumerate(container.decode(stream)):
                t = _frame_time(frame, index, rate)
                while s.target < stop and s.target < t - TIME_EPS:
                    s.show(prev if prev is not None else frame)  # before the first frame: show the first
                if s.full(chunk):
                    yield s.flush()
                if s.target >= stop:
                    break
                prev, prev_time = frame, t
                last_len = (float(frame.duration * frame.time_base) if frame.duration and frame.time_base
                            else 1.0 / rate)
        except av.error.FFmpegError as e:
            raise VideoError(f"{where} is corrupt: decoding failed after {prev_time:.3f} s ({e})") from e
        if prev is None and not s.out:
            raise VideoError(f"{where} has a video stream but no frame could be decoded (corrupt or empty)")
        if prev is not None and s.target < stop:
            end = _stream_end(stream, prev_time + last_len, stop, where, last_len)
            while s.target < end - TIME_EPS:
                s.show(prev)
                if s.full(chunk):
                    yield s.flush()
        if s.out:
            yield s.flush()


def frames_to_float(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``[n, H, W, 3]`` -> float32 ``[n, 3, H, W]`` in [0, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)


def read_video(
    path: str | os.PathLike[str],
    fps: float = 1.0,
    size: int | tuple[int, int] | None = None,
    *,
    start: float = 0.0,
    duration: float | None = None,
) -> VideoClip:
    """Frames of a video file sampled at ``fps``: ``(float32 [T, 3, H, W] in [0, 1], seconds [T])``.

    Any container and codec FFmpeg reads, constant or variable frame rate (see
    the module docstring for which frame is taken). ``size`` is None (native), an
    int (shorter side, aspect kept) or ``(H, W)``. Raises :class:`VideoError`
    naming the file for a corrupt file or one without a video stream, and
    ``ValueError`` for ``fps <= 0``. Needs the ``video`` extra (PyAV). What
    ``VideoTokenizer.encode(path)`` sees, but for frames it shrinks while decoding (see there).

    >>> frames, times = read_video("clip.mp4", fps=2.0, size=128)  # doctest: +SKIP
    >>> frames.shape, times[:3].tolist()  # doctest: +SKIP
    (torch.Size([20, 3, 128, 227]), [0.0, 0.5, 1.0])
    """
    chunks = list(iter_video(path, fps, size, start=start, duration=duration))
    if not chunks:
        raise VideoError(no_frames_message(path, start, duration))
    frames = frames_to_float(np.concatenate([c for c, _ in chunks]))
    times = torch.from_numpy(np.concatenate([t for _, t in chunks]))
    return VideoClip(frames, times)


def no_frames_message(path: Any, start: float, duration: float | None) -> str:
    span = f"from {start:g} s" + (f" for {duration:g} s" if duration is not None else "")
    return f"video file {path}: no frames {span} (is start past the end of the video?)"


def read_audio(path: str | os.PathLike[str], sample_rate: int = AUDIO_RATE, *,
               max_seconds: float | None = MAX_SOUNDTRACK_SECONDS) -> tuple[torch.Tensor, int] | None:
    """The soundtrack of a media file as mono float32 ``[S]`` at ``sample_rate``, or None without one.

    Decoded and resampled frame by frame; a soundtrack longer than ``max_seconds``
    (None: no limit) is a :class:`~mmtok.core.errors.VideoError`, so memory stays bounded.
    """
    where = f"video file {os.fspath(path)!r}"
    limit = None if max_seconds is None else int(max_seconds * sample_rate)
    if not Path(path).is_file():
        raise FileNotFoundError(f"{where} does not exist")
    av = pyav()
    with _open_container(path, where) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        parts: list[np.ndarray] = []
        try:
            total = 0
            for frame in container.decode(stream):
                new = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
                parts += new
                total += sum(len(q) for q in new)
                if limit is not None and total > limit:
                    raise VideoError(f"{where}: the soundtrack is longer than max_seconds={max_seconds:g} s; "
                                     "pass a larger max_seconds (or None) to read it")
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        except av.error.FFmpegError as e:
            raise VideoError(f"{where}: the audio stream is corrupt ({e})") from e
    wave = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return torch.from_numpy(wave.astype(np.float32, copy=False)), sample_rate
