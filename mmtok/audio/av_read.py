"""Audio decoded through PyAV (FFmpeg), an optional dependency (extras ``video``, ``test``, ``vocoder-train``):
for what libsndfile cannot read (AAC/M4A) or reads short (an MP3 without a Xing/Info header, where
libsndfile stops at its guess of the length), and for a video's soundtrack.

:func:`decoded_audio` is the one decode loop: each frame of a stream through one FFmpeg resampler
to float32 planes ``[channels, n]``. :func:`mmtok.audio.io.load_audio` reads a file through
:class:`AvReader` at the stream's own rate and channels, then mixes and resamples exactly as it does
what libsndfile decodes; :func:`mmtok.video.read.read_audio` decodes a soundtrack the same way and mixes
and resamples it as :func:`~mmtok.audio.io.load_audio` does a file. Both end a stream where its container says (:func:`stated_samples`), without the codec's padding
(:func:`padding_end`): an AAC encoder fills its last frame, 128 samples past 3 s at 16 kHz.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmtok.core.errors import AudioError, MmtokError

__all__ = ["INSTALL_AV", "AvReader", "decoded_audio", "ffmpeg_only_kind", "ffmpeg_reason", "open_container",
           "optional_av", "padding_end", "stated_samples"]

INSTALL_AV = "pip install av (or pip install mmtok[video])"  # how to get PyAV, said in refusals (audio and video)
HEIF_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis")  # ftyp brands of pictures, not sound


def optional_av() -> Any | None:
    """The ``av`` module, or None when PyAV is not installed."""
    try:
        import av
    except ImportError:
        return None
    return av


def ffmpeg_only_kind(path: Path) -> str | None:
    """What ``path`` is by its first bytes when it is audio libsndfile does not read but FFmpeg does:
    ``"AAC/M4A"`` for an MP4-family file (``ftyp`` box: .m4a, .mp4, .mov; not a HEIF/AVIF picture) or
    raw AAC (an ADTS sync word: 12 bits set, then a layer of 0); None otherwise."""
    with open(path, "rb") as f:
        head = f.read(12)
    mp4 = head[4:8] == b"ftyp" and head[8:12] not in HEIF_BRANDS
    if mp4 or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0):
        return "AAC/M4A"
    return None


def open_container(av: Any, path: str | os.PathLike[str], where: str, error: type[MmtokError], *,
                   kind: str | None = None) -> Any:
    """``av.open`` for reading, FFmpeg's errors turned into one-line ``error`` naming ``where`` (and
    ``kind``, what the file's first bytes say it is, e.g. ``"AAC/M4A"``, when given)."""
    try:
        return av.open(os.fspath(path), mode="r")
    except av.error.FFmpegError as e:
        if kind is not None:
            raise error(f"cannot read {where}: not a readable {kind} file (cut short or damaged: "
                        f"{ffmpeg_reason(e)})") from e
        raise error(f"{where} is corrupt or not a container FFmpeg can read: {ffmpeg_reason(e)}") from e


def ffmpeg_reason(e: Exception) -> str:
    """FFmpeg's words for an error, without its number and the file or function it names: ``"Invalid
    data found when processing input"``, not ``"[Errno 1094995529] Invalid data found when processing
    input: 'a.m4a'"``."""
    return str(getattr(e, "strerror", None) or e)


def decoded_audio(av: Any, container: Any, stream: Any, where: str, error: type[MmtokError], *,
                  layout: str | None = None, rate: int | None = None) -> Iterator[tuple[Any, list[np.ndarray]]]:
    """``stream`` decoded frame by frame, every frame through one FFmpeg resampler to float32 planes
    ``[channels, n]``: ``(the decoded frame, the planes the resampler gave for it)`` (none while it
    fills its buffer), then ``(None, planes)`` for what it held back. ``layout``/``rate`` None keep the
    first frame's channels and rate (later frames are converted to them); ``"mono"``/a rate have FFmpeg
    mix and resample. A decoding error is ``error`` naming ``where`` (packets FFmpeg cannot decode
    after the last good frame are skipped: see :func:`_frames`)."""
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    try:
        for frame in _frames(av, container, stream):
            yield frame, [out.to_ndarray() for out in resampler.resample(frame)]
        yield None, [out.to_ndarray() for out in resampler.resample(None)]
    except av.error.FFmpegError as e:
        raise error(f"{where}: the audio stream is corrupt ({ffmpeg_reason(e)})") from e


def _frames(av: Any, container: Any, stream: Any) -> Iterator[Any]:
    """The frames of ``stream`` decoded packet by packet. A packet FFmpeg finds invalid is skipped
    while no frame follows it: bytes after the last frame (zero padding, an appended tag, junk) make
    such a packet, which FFmpeg's own decode loop would abort on. A good frame after an invalid
    packet (frames damaged mid-stream), or an invalid packet and no frame at all, raises its error."""
    failed: Exception | None = None  # the first invalid packet's error since the last good frame
    decoded = False
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError as e:
            failed = failed or e
            continue
        if frames and failed is not None and packet.size:  # (the last, empty packet flushes earlier frames)
            raise failed
        decoded = decoded or bool(frames)
        yield from frames
    if failed is not None and not decoded:
        raise failed


def stated_samples(stream: Any, rate: int) -> int | None:
    """Samples at ``rate`` from the start of ``stream`` to its end as its container's index states it (an
    MP4's sample table, its edit list applied: without the codec's priming and padding); None for a
    stream without an index (raw AAC and MP3, whose length FFmpeg only estimates from the bitrate)."""
    if not (stream.frames and stream.duration and stream.time_base):
        return None
    return round(stream.duration * stream.time_base * rate)


def padding_end(decoded: int, stated: int, frame_len: int) -> int:
    """How many of the ``decoded`` samples of a stream to keep when its container states ``stated``:
    ``stated`` when the decode runs past it by at most two frames of ``frame_len`` samples (the codec's
    padding: an AAC encoder fills its last frame), else all of them (a stated end further off is not
    trusted with real sound).

    >>> padding_end(48128, 48000, 1024), padding_end(52000, 48000, 1024), padding_end(47000, 48000, 1024)
    (48000, 52000, 47000)
    """
    return stated if 0 < decoded - stated <= 2 * frame_len else decoded


def _to_stated_end(decoded: Iterator[tuple[Any, list[np.ndarray]]], stated: int | None) -> Iterator[np.ndarray]:
    """The planes of ``decoded`` (:func:`decoded_audio`) up to ``stated`` samples: those past it are held
    back until the stream ends, and then dropped as the codec's padding if :func:`padding_end` says so, or
    given out once they run on too far for padding."""
    given = frame_len = 0  # samples decoded so far, those held included
    held: list[np.ndarray] = []  # planes past the stated end
    for frame, planes in decoded:
        frame_len = max(frame_len, frame.samples if frame is not None else 0)
        for p in planes:
            keep = p.shape[1] if stated is None else max(0, min(p.shape[1], stated - given))
            if keep:
                yield p[:, :keep]
            if keep < p.shape[1]:
                held.append(p[:, keep:])
            given += p.shape[1]
        if stated is not None and padding_end(given, stated, frame_len) > stated:  # runs on: sound, not padding
            yield from held
            held, stated = [], None


class AvReader:
    """The first audio stream of a file decoded by PyAV, read in blocks as a ``soundfile.SoundFile`` is:
    ``read(frames)`` gives float32 ``(frames, channels)`` at the stream's rate, fewer only at the end,
    which is where the container's index says when it has one (:func:`stated_samples`, :func:`padding_end`).
    ``kind``, what the file's first bytes say it is (:func:`ffmpeg_only_kind`), is named in the error
    when FFmpeg cannot open it."""

    format = "FFMPEG"  # what soundfile calls the container: PyAV's files are told apart from libsndfile's
    frames = 0  # frames the header promises: not trusted here (raw AAC states a guess), FFmpeg's decode decides

    def __init__(self, av: Any, path: Path, kind: str | None = None) -> None:
        where = f"audio file {path}"
        self._container = open_container(av, path, where, AudioError, kind=kind)
        if not self._container.streams.audio:
            self._container.close()
            raise AudioError(f"{where} has no audio stream")
        stream = self._container.streams.audio[0]
        self.samplerate = int(stream.rate or stream.codec_context.sample_rate or 0)
        self.channels = max(1, int(stream.channels or 1))
        self._planes = _to_stated_end(decoded_audio(av, self._container, stream, where, AudioError),
                                      stated_samples(stream, self.samplerate))
        self._held: list[np.ndarray] = []  # decoded planes [channels, n] not read yet
        self._count = 0  # frames in _held

    def read(self, frames: int, dtype: str = "float32", always_2d: bool = True) -> np.ndarray:
        """Up to ``frames`` frames ``(frames, channels)`` (``dtype``, ``always_2d``: as soundfile's, only
        float32 2-D is made)."""
        while self._count < frames:
            planes = next(self._planes, None)
            if planes is None:
                break
            self._held.append(planes)
            self._count += planes.shape[1]
        held = np.concatenate(self._held, axis=1) if self._held else np.zeros((self.channels, 0), np.float32)
        self._held = [held[:, frames:]] if held.shape[1] > frames else []
        self._count = max(0, held.shape[1] - frames)
        return np.ascontiguousarray(held[:, :frames].T, dtype=np.float32)

    def __enter__(self) -> AvReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()
