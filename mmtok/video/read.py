"""Video files -> frames sampled at a fixed rate, and their soundtrack: the reading half of video.

Data flow: any container/codec FFmpeg reads -> :func:`iter_video` (PyAV, streamed:
decoded frame by frame, only the sampled ones converted) -> float ``[T, 3, H, W]``
in [0, 1]; :func:`read_audio` gives the soundtrack, mono, resampled.

Frame sampling: frame ``k`` is what is on screen at ``start + k / fps`` (the last
decoded frame whose timestamp is at or before that time), for every such time
before the end of the stream. This holds for variable frame rate files too: the
container's timestamps decide, never an assumed constant rate. Over a gap in the timestamps the frame
before it stays on screen (and the soundtrack is silent); timestamps that jump back (files joined end to
end, a clock reset) are read as following on, with a warning.

Of several video or audio streams the one every reader takes is read
(:func:`~mmtok.audio.av_read.pick_stream`: the one marked default, else FFmpeg's pick), and a
warning names it; a cover picture (an MP3's or M4A's art) is never taken for video.

One clock for frames and sound: times count from the file's origin, the earliest
start of the video stream and the audio stream read (a clip cut from a longer recording
may start at 1.4 s: its frame 0 is then its first frame). Before the video's first
frame that frame is shown; a soundtrack that starts after the origin is padded with
silence, and it ends where its stream says (not with the codec's padding).

Frames come out as displayed: pixels stretched by the sample aspect ratio, then
turned by the display rotation (a phone video comes out upright).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from mmtok.audio.av_read import INSTALL_AV, open_container, optional_av, pick_stream, take_stream
from mmtok.audio.mp4_box import mp4_cut_box
from mmtok.core.errors import VideoError
from mmtok.core.seconds import check_max_seconds
from mmtok.core.warning_filters import user_stacklevel
from mmtok.video.frame_settings import frame_size, target_size, video_fps
from mmtok.video.soundtrack import decode_soundtrack, on_clock, too_long_message

__all__ = ["AUDIO_RATE", "CHUNK_FRAMES", "MAX_VIDEO_BYTES", "VideoClip", "frames_to_float", "iter_video",
           "no_frames_message", "pyav", "read_audio", "read_video"]

TIME_EPS = 1e-6  # seconds: timestamps closer than this count as equal (half a tick on a clock that rounds: _time_eps)
CHUNK_FRAMES = 16  # frames converted at once when streaming a file
TRUNCATED_S = 0.1  # seconds frames or sound may end before their stream's stated end (or two frames): more is a cut
MAX_VIDEO_BYTES = 8 * 2**30  # read_video refuses more float32 frames by default: 52 min of 640x360 at 1 fps
FLOAT_PIXEL_BYTES = 3 * 4  # bytes of one pixel of read_video's frames: three float32 channels
AUDIO_RATE = 16_000  # Hz read_audio resamples to by default
MAX_SOUNDTRACK_SECONDS = 4 * 3600.0  # read_audio refuses longer soundtracks by default: 4 h at 16 kHz is 0.9 GB
AV_TIME_BASE = 1_000_000  # FFmpeg's unit of a container's start_time and duration: microseconds


class VideoClip(NamedTuple):
    """What :func:`read_video` returns (unpacks as ``frames, timestamps``)."""

    frames: torch.Tensor  # float32 [T, 3, H, W] in [0, 1]
    timestamps: torch.Tensor  # float64 [T]: the time in seconds each frame shows


def pyav() -> Any:
    """The ``av`` module (:func:`~mmtok.audio.av_read.optional_av`); without PyAV an ``ImportError`` saying
    how to install it (:data:`~mmtok.audio.av_read.INSTALL_AV`)."""
    av = optional_av()
    if av is None:
        raise ImportError(f"reading video files needs PyAV: {INSTALL_AV}")
    return av


def _open_container(path: str | os.PathLike[str], where: str) -> Any:
    """``av.open`` for reading, with FFmpeg's errors turned into a :class:`VideoError` naming the file (an
    empty one says so). An MP4-family file (an ``ftyp`` box first) one of whose top-level boxes runs past its
    end is refused before FFmpeg opens it (:func:`~mmtok.audio.mp4_box.mp4_cut_box`): with its index first
    FFmpeg would decode what is left and hold the last frame, with its index last it cannot open it."""
    av = pyav()
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise VideoError(f"{where} is empty (0 bytes)")
    box = mp4_cut_box(Path(path))
    if box is not None:
        raise VideoError(f"{where} is truncated or corrupt: its MP4 '{box.kind}' box declares {box.declared:,} "
                         f"bytes, the file ends {box.present:,} bytes into it")
    return open_container(av, path, where, VideoError)


def _frame_time(frame: Any, index: int, rate: float, origin: float) -> float:
    """Seconds from the file's origin (see the module docstring) at which ``frame`` is shown."""
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base) - origin
    return index / rate  # a stream without timestamps: assume its nominal rate


def _time_eps(stream: Any) -> float:
    """Seconds by which a frame's timestamp may miss a sample time and still count as that time:
    :data:`TIME_EPS`, or half a tick of the stream's clock when its ticks cannot hold the frame period
    (Matroska and WebM count milliseconds: a 30 fps frame due at 66.67 ms is stored as 67 ms, and is on
    screen at 66.67 ms all the same). A clock whose ticks do hold it (AVI's 1/25 s at 25 fps, MP4's
    1/12800 s) keeps exact times: a frame there is never taken half a tick before it shows."""
    tick = Fraction(stream.time_base) if stream.time_base else None
    rate = stream.average_rate or stream.guessed_rate
    if tick is None or (rate and (1 / (Fraction(rate) * tick)).denominator == 1):
        return TIME_EPS
    return max(TIME_EPS, 0.5 * float(tick))


def _stream_start(stream: Any) -> float | None:
    """The stream's first timestamp in seconds, or None if the file does not say."""
    if stream.start_time is None or not stream.time_base:
        return None
    return float(stream.start_time * stream.time_base)


def _time_origin(container: Any) -> float:
    """The time in the file that is 0 s for frames and soundtrack alike: the earliest start of the video stream
    and the audio stream read (:func:`~mmtok.audio.av_read.pick_stream`), 0 when neither states one."""
    streams = [pick_stream(container, "video"), pick_stream(container, "audio")]
    starts = [_stream_start(s.stream) for s in streams if s is not None]
    known = [t for t in starts if t is not None]
    return min(known) if known else 0.0


def _clock_seconds(text: Any) -> float | None:
    """``"HH:MM:SS.fraction"`` (Matroska's per-track DURATION tag) -> seconds, or None."""
    parts = str(text).split(":") if text else []
    try:
        return float(parts[0]) * 3600 + float(parts[1]) * 60 + float(parts[2]) if len(parts) == 3 else None
    except ValueError:
        return None


def _stated_end(stream: Any, container: Any) -> float | None:
    """When ``stream`` ends by the file's own account (seconds on the file's clock), or None if it does not
    say: its duration; else its DURATION tag (Matroska states no stream duration, FFmpeg and mkvmerge write the
    tag); else, for a file with this one stream, the container's duration (Matroska's counts from 0)."""
    if stream.duration and stream.time_base:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
    tag = _clock_seconds(stream.metadata.get("DURATION"))
    if tag is not None:
        return tag
    if container.duration and len(container.streams) == 1:
        return container.duration / AV_TIME_BASE
    return None


class _Sampler:
    """Frame ``k`` is what is on screen at ``start + k / fps``: collects those frames in chunks.

    A frame shown several times in a row is converted to pixels once.
    """

    def __init__(self, start: float, fps: float, size: int | tuple[int, int] | None, aspect: float = 1.0) -> None:
        self.start, self.fps, self.size, self.aspect = start, fps, size, aspect
        self.turns = 0  # quarter turns counterclockwise from the stored to the displayed picture
        self.k = 0
        self.target = start  # the time of the next frame to show
        self.size_wh: tuple[int, int] | None = None
        self.out: list[np.ndarray] = []
        self.times: list[float] = []
        self._last: tuple[Any, Any] = (None, None)  # the frame converted last and its pixels

    def show(self, frame: Any) -> None:
        """``frame`` is on screen at the current target time; move on to the next one."""
        if self.size_wh is None:
            self.turns = _quarter_turns(frame)
            self.size_wh = target_size(*_display_size(frame, self.aspect, self.turns), self.size)
        if self._last[0] is not frame:
            w, h = self.size_wh if self.turns % 2 == 0 else self.size_wh[::-1]  # stored orientation
            pixels = frame.to_ndarray(format="rgb24", width=w, height=h)
            self._last = (frame, np.rot90(pixels, self.turns) if self.turns else pixels)
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


def _quarter_turns(frame: Any) -> int:
    """Quarter turns counterclockwise that show ``frame`` as meant: PyAV's ``frame.rotation`` is FFmpeg's
    ``av_display_rotation_get``, the degrees counterclockwise (a phone held upright records -90, which
    ``ffmpeg`` plays turned clockwise). Angles between quarter turns round to the nearest; flips are ignored."""
    return round((getattr(frame, "rotation", 0) or 0) / 90) % 4


def _pixel_aspect(stream: Any) -> float:
    """Width over height of one stored pixel as displayed (the sample aspect ratio; 1 when unknown)."""
    sar = stream.sample_aspect_ratio or getattr(stream.codec_context, "sample_aspect_ratio", None)
    return float(sar) if sar and float(sar) > 0 else 1.0


def _display_size(frame: Any, aspect: float, turns: int) -> tuple[int, int]:
    """(width, height) of ``frame`` as displayed: its width stretched by ``aspect``, then turned."""
    width, height = max(1, round(frame.width * aspect)), frame.height
    return (height, width) if turns % 2 else (width, height)


def _check_video_args(path: str | os.PathLike[str], fps: object, start: float, duration: float | None
                      ) -> tuple[str, float]:
    """``iter_video``'s argument checks; returns the file's name for messages and ``fps`` as a float."""
    where = f"video file {os.fspath(path)!r}"
    fps = video_fps(fps)
    if start < 0 or (duration is not None and not duration > 0):
        raise ValueError(f"start must be >= 0 and duration > 0, got start={start!r}, duration={duration!r}")
    if not Path(path).exists():
        raise FileNotFoundError(f"{where} does not exist")
    if Path(path).is_dir():
        raise VideoError(f"{os.fspath(path)!r} is a folder, not a video file")
    return where, fps


def _decode_from(stream: Any, container: Any, start: float, origin: float, av: Any) -> Iterator[Any]:
    """The frames of ``stream``, the video stream read, decoded from a seek to just before ``start`` (seconds
    after the file's ``origin``). A format whose timestamps may jump back (MPEG-TS and -PS: files joined end to
    end) is decoded from its beginning: a seek finds a time among the stored timestamps, which may name a
    moment of any of the joined files."""
    stream.thread_type = "AUTO"
    if start > 0 and not container.format.flags & av.format.Flags.ts_discont.value:
        try:
            container.seek(int((origin + start) / stream.time_base), stream=stream, backward=True)
        except av.error.FFmpegError:
            container.seek(0, stream=stream)
    return container.decode(stream)


def _stream_end(stated: float | None, last_start: float, last_frame_end: float, stop: float, where: str,
                frame_len: float) -> float:
    """When the last frame (shown from ``last_start``) leaves the screen: the stream's ``stated`` end (from the
    origin) when it falls after that start; else (none stated, or one before the last frame, which the frames
    overrule) the end by the frame's own duration, ``last_frame_end`` (after B-frame reordering an MP4's last
    frame may carry another packet's duration: the stated end decides while there is one); at most ``stop``.
    Frames that end well before the stated end (more than :data:`TRUNCATED_S` and two frames) mean a cut file:
    a :class:`VideoError`, not the last frame held to the end."""
    end = last_frame_end
    if stated is not None:
        if min(stated, stop) - last_frame_end > max(TRUNCATED_S, 2 * frame_len):
            raise VideoError(f"{where} is truncated or corrupt: its frames end at {last_frame_end:.3f} s, but its "
                             f"video stream says {stated:.3f} s")
        if stated > last_start:
            end = stated
    return min(end, stop)


def _jump_back(where: str, shift: float, prev_time: float, t: float, joined: float) -> float:
    """Seconds to move the timestamps from a frame at ``t`` on, whose timestamp is further back than the frame
    before (at ``prev_time``) (files joined end to end, a clock reset): they follow on at ``joined``, as the
    soundtrack's do (:mod:`~mmtok.video.soundtrack`). The first jump of a file is a warning."""
    if shift == 0.0:
        warnings.warn(f"{where}: its video timestamps jump back from {prev_time:.3f} s to {t - shift:.3f} s "
                      "(joined files or a reset clock): what follows is read as following on, frames and sound "
                      "alike", stacklevel=user_stacklevel())
    return joined - t


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
    ``(H, W)``. ``start``/``duration`` select a window in seconds (an MPEG-TS or -PS file, whose timestamps
    may jump back, is decoded from its beginning up to ``start``).
    """
    where, fps = _check_video_args(path, fps, start, duration)
    size = frame_size(size)
    av = pyav()
    with _open_container(path, where) as container:
        origin = _time_origin(container)
        stream = take_stream(container, "video", where, VideoError, "its frames are", stacklevel=2)
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        stop = math.inf if duration is None else start + duration
        s = _Sampler(start, fps, size, _pixel_aspect(stream))
        prev: Any = None
        prev_time, last_len, eps = 0.0, 1.0 / rate, _time_eps(stream)
        shift = 0.0  # seconds added to the timestamps after a jump back (see _jump_back)
        try:
            for index, frame in enumerate(_decode_from(stream, container, start, origin, av)):
                t = _frame_time(frame, index, rate, origin) + shift
                if prev is not None and t < prev_time - max(TRUNCATED_S, 2 * last_len):
                    shift += _jump_back(where, shift, prev_time, t, prev_time + last_len)
                    t = prev_time + last_len
                while s.target < stop and s.target < t - eps:
                    s.show(prev if prev is not None else frame)  # before the first frame: show the first
                    if s.full(chunk):  # inside the loop: a frame held over a long gap still comes in chunks
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
            stated = _stated_end(stream, container)
            end = _stream_end(None if stated is None else stated - origin, prev_time, prev_time + last_len, stop,
                              where, last_len)
            while s.target < end - eps:
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
    max_bytes: int | None = MAX_VIDEO_BYTES,
) -> VideoClip:
    """Frames of a video file sampled at ``fps``: ``(float32 [T, 3, H, W] in [0, 1], seconds [T])``.

    Any container and codec FFmpeg reads, constant or variable frame rate (see
    the module docstring for which frame is taken). ``size`` is None (native), an
    int (shorter side, aspect kept) or ``(H, W)``. Raises :class:`VideoError`
    naming the file for a corrupt file or one without a video stream, and
    ``ValueError`` for ``fps <= 0``. Needs the ``video`` extra (PyAV). What
    ``VideoTokenizer.encode(path)`` sees, but for frames it shrinks while decoding (see there).
    Frames are as displayed (pixel aspect and rotation applied), times from the file's
    origin (see the module docstring).

    The frames are held whole, 12 bytes a pixel (a minute of 640x360 at 1 fps: 166 MB), filled
    into one tensor as they are decoded. More than ``max_bytes`` (default :data:`MAX_VIDEO_BYTES`,
    8 GiB; None: no limit) is a :class:`VideoError`, before any decoding when the file states its
    length: :func:`iter_video` streams any length in uint8 chunks. A 10 s clip of 16:9:

    >>> frames, times = read_video("clip.mp4", fps=2.0, size=128)  # doctest: +SKIP
    >>> frames.shape, times[:3].tolist()  # doctest: +SKIP
    (torch.Size([20, 3, 128, 228]), [0.0, 0.5, 1.0])
    """
    where, fps = _check_video_args(path, fps, start, duration)
    size = frame_size(size)
    if max_bytes is not None and not max_bytes > 0:
        raise ValueError(f"max_bytes must be > 0 or None, got {max_bytes!r}")
    planned, (w, h) = _planned_frames(path, where, fps, size, start, duration)
    limit = math.inf if max_bytes is None else max_bytes
    if planned is not None and planned * w * h * FLOAT_PIXEL_BYTES > limit:
        raise VideoError(_too_big(where, planned, (w, h), fps, limit, decoding=False))
    frames, times = _gather(iter_video(path, fps, size, start=start, duration=duration), planned or 0, limit,
                            lambda n, wh: _too_big(where, n, wh, fps, limit, decoding=True))
    if not times:
        raise VideoError(no_frames_message(path, start, duration))
    return VideoClip(frames, torch.from_numpy(np.concatenate(times)))


def _planned_frames(path: str | os.PathLike[str], where: str, fps: float, size: int | tuple[int, int] | None,
                    start: float, duration: float | None) -> tuple[int | None, tuple[int, int]]:
    """What :func:`read_video` will hold by the file's own account: the frames sampled before its video
    stream's stated end (None when it states none) and their (width, height)."""
    with _open_container(path, where) as container:
        choice = pick_stream(container, "video")
        if choice is None:
            return None, (0, 0)  # iter_video says so
        stream = choice.stream
        stated, origin, eps = _stated_end(stream, container), _time_origin(container), _time_eps(stream)
        ctx = stream.codec_context
        wh = target_size(max(1, round(ctx.width * _pixel_aspect(stream))), max(1, ctx.height), size)
    if stated is None:
        return None, wh
    end = min(stated - origin, math.inf if duration is None else start + duration) - eps
    return max(0, math.ceil((end - start) * fps)), wh


def _gather(chunks: Iterator[tuple[np.ndarray, np.ndarray]], planned: int, limit: float,
            too_big: Callable[[int, tuple[int, int]], str]) -> tuple[torch.Tensor, list[np.ndarray]]:
    """The ``chunks`` as one float32 ``[T, 3, H, W]``, and their times: the first ``planned`` frames filled into
    one tensor as they come (no second copy); any past them (a file that states no end, or runs past the end it
    states) wait as uint8 and join it at the end. Past ``limit`` bytes: a :class:`VideoError` saying
    ``too_big(frames, (width, height))``."""
    out, extra, times, n = torch.empty(0), [], [], 0
    for frames, t in chunks:
        if not times:
            out = torch.empty(planned, 3, frames.shape[1], frames.shape[2])
        times.append(t)
        fit = min(len(frames), planned - n)
        out[n : n + fit] = frames_to_float(frames[:fit])
        n += fit
        if fit < len(frames):
            extra.append(frames[fit:])
        count = n + sum(len(e) for e in extra)
        if count * frames.shape[1] * frames.shape[2] * FLOAT_PIXEL_BYTES > limit:
            raise VideoError(too_big(count, (frames.shape[2], frames.shape[1])))
    if not extra:
        return out[:n], times
    whole = torch.empty(n + sum(len(e) for e in extra), *out.shape[1:])
    whole[:n] = out[:n]
    del out
    for chunk in extra:
        whole[n : n + len(chunk)] = frames_to_float(chunk)
        n += len(chunk)
    return whole, times


def _too_big(where: str, frames: int, wh: tuple[int, int], fps: float, limit: float, *, decoding: bool) -> str:
    held = f"{frames * wh[0] * wh[1] * FLOAT_PIXEL_BYTES / 2**30:.1f} GiB as float32"
    what = (f"passes max_bytes={limit:,.0f} at {frames:,} frames of {wh[0]}x{wh[1]} ({held})" if decoding else
            f"would hold {frames:,} frames of {wh[0]}x{wh[1]}, {held}, more than max_bytes={limit:,.0f}")
    return (f"{where}: read_video at {fps:g} fps {what}; stream it in uint8 chunks with iter_video, or pass a "
            "smaller size, fps or duration (max_bytes=None: no limit)")


def no_frames_message(path: Any, start: float, duration: float | None) -> str:
    span = f"from {start:g} s" + (f" for {duration:g} s" if duration is not None else "")
    return f"video file {path}: no frames {span} (is start past the end of the video?)"


def read_audio(path: str | os.PathLike[str], sample_rate: int = AUDIO_RATE, *,
               max_seconds: float | None = MAX_SOUNDTRACK_SECONDS) -> tuple[torch.Tensor, int] | None:
    """The soundtrack of a media file as mono float32 ``[S]`` at ``sample_rate``, or None without one. Of
    several audio streams the one marked default is read, else FFmpeg's pick
    (:func:`~mmtok.audio.av_read.pick_stream`); a warning says which.

    On the frames' clock (see the module docstring): sample 0 is at the file's origin, so a
    soundtrack that starts later begins with silence; it ends where its stream says, without
    the codec's padding. Decoded frame by frame, its channels averaged and resampled block by block
    as :func:`mmtok.audio.io.load_audio` reads an audio file (the same sound gives the same samples either
    way; mmtok's resampler takes about 12 s for 30 minutes of 48 kHz stereo on one core, where FFmpeg's
    took 3.5 s), but held whole in memory (at 16 kHz, 230 MB an hour): one longer than ``max_seconds`` (default
    :data:`MAX_SOUNDTRACK_SECONDS`, 4 hours; None: no limit) is a
    :class:`~mmtok.core.errors.VideoError`, before any decoding when the file states its length.
    So is a soundtrack that ends more than :data:`TRUNCATED_S` (or two of its frames) before its
    stream's stated end: a cut file, not short sound.
    """
    where = f"video file {os.fspath(path)!r}"
    max_seconds = check_max_seconds(max_seconds)
    if not Path(path).is_file():
        raise FileNotFoundError(f"{where} does not exist")
    av = pyav()
    with _open_container(path, where) as container:
        choice = pick_stream(container, "audio")
        if choice is None:
            return None
        note = choice.note(where, "its soundtrack is")
        if note is not None:
            warnings.warn(note, stacklevel=user_stacklevel())
        stream = choice.stream
        origin, stated = _time_origin(container), _stated_end(stream, container)
        end = None if stated is None else stated - origin
        if max_seconds is not None and end is not None and end > max_seconds:
            raise VideoError(too_long_message(where, max_seconds, end))
        parts, first, frame_len = decode_soundtrack(av, container, stream, where, sample_rate, max_seconds)
    start = first if first is not None else _stream_start(stream)
    wave = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    wave = on_clock(wave, 0.0 if start is None else start - origin, end, sample_rate, frame_len)
    if end is not None and end - wave.size / sample_rate > max(TRUNCATED_S, 2 * frame_len / sample_rate):
        raise VideoError(f"{where} is truncated or corrupt: its soundtrack ends at {wave.size / sample_rate:.3f} s, "
                         f"but its audio stream says {end:.3f} s")
    if max_seconds is not None and wave.size > max_seconds * sample_rate:
        raise VideoError(too_long_message(where, max_seconds, wave.size / sample_rate))
    return torch.from_numpy(wave.astype(np.float32, copy=False)), sample_rate
