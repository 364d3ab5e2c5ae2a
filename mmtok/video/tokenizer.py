"""Video -> frames sampled at a fixed rate -> per-frame image tokens, and back.

Data flow: any container/codec FFmpeg reads -> :func:`iter_video` (PyAV, streamed:
decoded frame by frame, only the sampled ones converted) -> float ``[T, 3, H, W]``
in [0, 1] -> the image tokenizer, frame by frame -> int64 codes ``[T, h, w]``.

Frame sampling: frame ``k`` is what is on screen at ``start + k / fps`` (the last
decoded frame whose timestamp is at or before that time), for every such time
before the end of the stream. This holds for variable frame rate files too: the
container's timestamps decide, never an assumed constant rate.

Temporal compression (optional, exact inverse):

- ``temporal="repeat"``: a code equal to the one at the same (row, column) of the
  previous frame becomes ``REPEAT`` (= the image codebook size, so the video
  codebook has one more code). The grid keeps its shape, so the stream layout is
  unchanged; what changes is that static regions become one predictable token.
- :func:`run_length_encode` goes further and drops tokens: a run of ``r``
  repeats inside a frame becomes one token ``K + r - 1`` (``r <= max_run``).
  :func:`compression_stats` reports both figures for a clip.

Those functions live in :mod:`mmtok.video.temporal`.

>>> import torch
>>> from mmtok.image.tokenizer import ImageTokenizer, ImageTokenizerConfig
>>> vt = VideoTokenizer(ImageTokenizer(ImageTokenizerConfig(image_size=32)).eval(), fps=2.0)
>>> codes = vt.encode(torch.rand(3, 3, 32, 32))  # three frames
>>> tuple(codes.shape), tuple(vt.decode(codes).shape)
((3, 2, 2), (3, 3, 32, 32))
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from mmtok.core.codes import integer_codes
from mmtok.core.errors import VideoError
from mmtok.core.protocol import module_fingerprint, ordinary_outputs
from mmtok.image.io import load_image
from mmtok.image.tokenizer import ImageTokenizer, ImageTokenizerConfig
from mmtok.video.temporal import repeat_decode, repeat_encode

__all__ = [
    "TEMPORAL_MODES",
    "VideoClip",
    "VideoTokenizer",
    "VideoTokenizerConfig",
    "iter_video",
    "read_audio",
    "read_video",
]

TEMPORAL_MODES = ("none", "repeat")  # see the module docstring
CHUNK_FRAMES = 16  # frames converted and tokenized at once when streaming a file
TIME_EPS = 1e-6  # seconds: timestamps closer than this count as equal
TRUNCATED_S = 0.5  # seconds the frames may end before the stream's stated end (past that: a cut file)
AUDIO_RATE = 16_000  # Hz read_audio resamples to by default
MAX_SOUNDTRACK_SECONDS = 600.0  # read_audio refuses longer soundtracks by default (bounded memory)
INSTALL_HINT = "reading video files needs PyAV: pip install mmtok[video]"


class VideoClip(NamedTuple):
    """What :func:`read_video` returns (unpacks as ``frames, timestamps``)."""

    frames: torch.Tensor  # float32 [T, 3, H, W] in [0, 1]
    timestamps: torch.Tensor  # float64 [T]: the time in seconds each frame shows


def _av() -> Any:
    try:
        import av
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(INSTALL_HINT) from e
    return av


def _open_container(path: str | os.PathLike[str], where: str) -> Any:
    """``av.open`` for reading, with FFmpeg's errors turned into a :class:`VideoError` naming the file."""
    av = _av()
    try:
        return av.open(os.fspath(path), mode="r")
    except av.error.FFmpegError as e:
        raise VideoError(f"{where} is corrupt or not a container FFmpeg can read: {e}") from e


class _ShrinkTo(int):
    """A ``size`` (shorter side) that frames are only shrunk to: shorter ones keep their size."""


def _target_size(width: int, height: int, size: int | tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) the frames are converted to: ``size`` is the shorter side, or ``(H, W)``."""
    if size is None or (isinstance(size, _ShrinkTo) and min(width, height) <= size):
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
    av = _av()
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


def _to_float(frames: np.ndarray) -> torch.Tensor:
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
        raise VideoError(_no_frames(path, start, duration))
    frames = _to_float(np.concatenate([c for c, _ in chunks]))
    times = torch.from_numpy(np.concatenate([t for _, t in chunks]))
    return VideoClip(frames, times)


def _no_frames(path: Any, start: float, duration: float | None) -> str:
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
    av = _av()
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


# --------------------------------------------------------------------------- the tokenizer


def _token_edge(sample: float, samples_per_token: int) -> int:
    """Sample index ``sample`` (rounded) moved down to a multiple of ``samples_per_token``."""
    return round(sample) // samples_per_token * samples_per_token


@dataclass
class VideoTokenizerConfig:
    """Settings of a :class:`VideoTokenizer` (the image tokenizer brings its own config)."""

    fps: float = 1.0  # frames sampled per second of video
    size: int | tuple[int, int] | None = None  # frames resized on decode: shorter side or (H, W); None: auto
    temporal: str = "none"  # "none" (per-frame codes) or "repeat" (repeated-code token, exact inverse)
    chunk_frames: int = CHUNK_FRAMES  # frames tokenized at once
    image: ImageTokenizerConfig | None = None  # the image tokenizer's config (None: not an ImageTokenizer)

    def __post_init__(self) -> None:
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be > 0, got {self.fps!r}")
        if self.temporal not in TEMPORAL_MODES:
            raise ValueError(f"temporal must be one of {TEMPORAL_MODES}, got {self.temporal!r}")
        if self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {self.chunk_frames}")


class VideoTokenizer(nn.Module):
    """Videos <-> int64 codes ``[T, h, w]``: frames sampled at ``fps``, each tokenized by an image tokenizer.

    ``encode`` takes a video file path (streamed), frames ``[T, 3, H, W]`` (float in
    [0, 1] or uint8) or a list of images; ``decode`` returns float frames ``[T, 3, H, W]``.
    With ``temporal="repeat"`` the codebook has one more code, :attr:`repeat_id`,
    meaning "same code as this position in the previous frame". Fits the
    :class:`~mmtok.stream.interleave.Interleaver` (``video=``), whose layout is
    ``<bov>`` (rows with ``<eol>``, then ``<eof>``) per frame ``<eov>``.
    """

    KIND = "video"  # checkpoint kind: the image tokenizer's weights under "image.", this config beside them
    CONFIG_CLASS = VideoTokenizerConfig

    def __init__(
        self,
        image_tokenizer: ImageTokenizer | VideoTokenizerConfig,
        fps: float = 1.0,
        *,
        size: int | tuple[int, int] | None = None,
        temporal: str = "none",
        chunk_frames: int = CHUNK_FRAMES,
    ) -> None:
        super().__init__()
        if isinstance(image_tokenizer, VideoTokenizerConfig):  # rebuilt from a checkpoint's config
            cfg = image_tokenizer
            if cfg.image is None:
                raise ValueError("a VideoTokenizerConfig without an image config cannot build its image tokenizer")
            image_tokenizer = ImageTokenizer(cfg.image)
            fps, size, temporal, chunk_frames = cfg.fps, cfg.size, cfg.temporal, cfg.chunk_frames
        for attr in ("encode", "decode", "codebook_size"):
            if not hasattr(image_tokenizer, attr):
                raise TypeError(f"image_tokenizer needs encode, decode and codebook_size; "
                                f"{type(image_tokenizer).__name__} has no {attr}")
        self.image = image_tokenizer
        image_cfg = image_tokenizer.cfg if isinstance(image_tokenizer, ImageTokenizer) else None
        self.cfg = VideoTokenizerConfig(fps=fps, size=size, temporal=temporal, chunk_frames=chunk_frames,
                                        image=image_cfg)

    @property
    def fps(self) -> float:
        return float(self.cfg.fps)

    @property
    def repeat_id(self) -> int | None:
        """The repeated-code code (``temporal="repeat"``), else None."""
        return int(self.image.codebook_size) if self.cfg.temporal == "repeat" else None

    @property
    def codebook_size(self) -> int:
        return int(self.image.codebook_size) + (1 if self.cfg.temporal == "repeat" else 0)

    @property
    def downsample(self) -> int:
        return int(getattr(self.image, "downsample", 1))

    @property
    def grid(self) -> tuple[int, int]:
        """``(rows, columns)`` of codes per frame: the image tokenizer's grid."""
        grid = getattr(self.image, "grid", None)
        if grid is None:
            raise AttributeError(f"the image tokenizer {type(self.image).__name__} states no grid")
        return (int(grid[0]), int(grid[1]))

    @property
    def fingerprint(self) -> str:
        """Names this tokenizer's codes: a hash of its class, config and the image tokenizer's weights."""
        return module_fingerprint(self)

    def _read_size(self) -> int | tuple[int, int] | None:
        """Shrink while decoding (cheap, in FFmpeg) to what the image tokenizer will crop to; frames
        already that small are left to its own resize, so they give the codes ``read_video``'s do."""
        if self.cfg.size is not None:
            return self.cfg.size
        cfg = getattr(self.image, "cfg", None)
        if getattr(cfg, "size_policy", None) == "crop":
            return _ShrinkTo(cfg.image_size)
        return None

    def frames(self, path: str | os.PathLike[str], **kwargs: Any) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        """Stream ``(float [n, 3, H, W], seconds [n])`` chunks of a file, as ``encode`` sees them."""
        for chunk, times in iter_video(path, self.fps, self._read_size(), chunk=self.cfg.chunk_frames, **kwargs):
            yield _to_float(chunk), times

    def _encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[1] not in (1, 3, 4):
            raise VideoError(f"frames must be [T, 3, H, W], got shape {tuple(frames.shape)}")
        if frames.shape[0] == 0:
            raise VideoError("got zero frames")
        n = self.cfg.chunk_frames
        return torch.cat([self.image.encode(frames[i : i + n]) for i in range(0, frames.shape[0], n)])

    @ordinary_outputs
    def encode(self, x: Any, *, start: float = 0.0, duration: float | None = None) -> torch.Tensor:
        """A video file, frames ``[T, 3, H, W]`` or a list of images -> int64 codes ``[T, h, w]``.

        A file gives the codes of ``encode(read_video(x, fps).frames)``, except under the ``"crop"``
        policy (no ``size`` set) for frames over ``image_size`` on their shorter side: FFmpeg shrinks
        those while decoding, not the image tokenizer's antialiased bicubic resize, so some codes differ.
        """
        if isinstance(x, (str, os.PathLike)):
            parts = [self.image.encode(f) for f, _ in self.frames(x, start=start, duration=duration)]
            if not parts:
                raise VideoError(_no_frames(x, start, duration))
            codes = torch.cat(parts)
        elif isinstance(x, (torch.Tensor, np.ndarray)):
            t = torch.as_tensor(x)
            if t.dtype == torch.uint8:
                t = t.float() / 255.0
            codes = self._encode_frames(t)
        elif isinstance(x, (list, tuple)):
            images = [load_image(f) for f in x]
            if len({tuple(i.shape) for i in images}) > 1:  # each brought to the tokenizer's size on its own
                images = [self.image.preprocess(i) for i in images]
            codes = self._encode_frames(torch.stack(images) if images else torch.zeros(0, 3, 1, 1))
        else:
            raise TypeError(f"VideoTokenizer.encode takes a file path, a [T, 3, H, W] tensor or a list of images, "
                            f"got {type(x).__name__}")
        codes = codes.cpu()
        return repeat_encode(codes, self.repeat_id) if self.repeat_id is not None else codes

    def expand(self, codes: Any) -> torch.Tensor:
        """Codes ``[T, h, w]`` with repeat codes resolved to image codes (identity without ``temporal``)."""
        codes = integer_codes(codes, what="video codes", error=VideoError).cpu()
        if codes.dim() != 3:
            raise VideoError(f"video codes must be [T, h, w], got shape {tuple(codes.shape)}")
        return repeat_decode(codes, self.repeat_id) if self.repeat_id is not None else codes

    @ordinary_outputs
    def decode(self, codes: Any) -> torch.Tensor:
        """Codes ``[T, h, w]`` -> frames float32 ``[T, 3, H, W]`` in [0, 1]."""
        flat = self.expand(codes)
        if flat.shape[0] == 0:
            raise VideoError("video codes have zero frames: nothing to decode")
        n = self.cfg.chunk_frames
        return torch.cat([self.image.decode(flat[i : i + n]) for i in range(0, flat.shape[0], n)])

    def segments(
        self, path: str | os.PathLike[str], *, chunk_seconds: float | None = None, audio: bool = True,
        sample_rate: int = AUDIO_RATE, duration: float | None = None, samples_per_token: int = 1,
    ) -> list[dict[str, Any]]:
        """Interleaver segments of a file: video codes, then its soundtrack, per chunk of ``chunk_seconds``.

        ``[{"video_codes": [t, h, w]}, {"audio": waveform, "sample_rate": sr}, ...]``;
        the Interleaver tokenizes the audio with its audio tokenizer. Without a
        soundtrack (or ``audio=False``) only video segments. ``duration``: only
        the first ``duration`` seconds. A chunk holds ``chunk_seconds`` rounded to
        whole frames (half up, at least one). Its sound starts at its first frame's
        time, moved down to a multiple of ``samples_per_token`` (the audio
        tokenizer's), so that no chunk's sound ends in a part-filled token: the chunks'
        audio tokens then add up to the whole soundtrack's.
        """
        codes = self.expand(self.encode(path, duration=duration))  # chunks re-encoded: each starts without repeats
        sound = read_audio(path, sample_rate) if audio else None
        if sound is not None and duration is not None:
            sound = (sound[0][: round(duration * sound[1])], sound[1])
        if int(samples_per_token) < 1:
            raise VideoError(f"samples_per_token must be a whole number >= 1, got {samples_per_token!r}")
        per = codes.shape[0] if chunk_seconds is None else max(1, math.floor(chunk_seconds * self.fps + 0.5))
        out: list[dict[str, Any]] = []
        for i in range(0, codes.shape[0], per):
            piece = codes[i : i + per]
            out.append({"video_codes": repeat_encode(piece, self.repeat_id) if self.repeat_id is not None else piece})
            if sound is not None:
                wave, sr = sound
                a, b = (_token_edge(k / self.fps * sr, int(samples_per_token)) for k in (i, i + per))
                if i + per >= codes.shape[0]:
                    b = wave.numel()
                if b > a:
                    out.append({"audio": wave[a:b], "sample_rate": sr})
        return out
