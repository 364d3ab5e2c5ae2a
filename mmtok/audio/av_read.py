"""Audio decoded through PyAV (FFmpeg), an optional dependency (extras ``video``, ``test``, ``vocoder-train``):
for what libsndfile cannot read (AAC/M4A) or reads short (an MP3 without a Xing/Info header, where
libsndfile stops at its guess of the length), and for a video's soundtrack.

:func:`decoded_audio` is the one decode loop: each frame of a stream through one FFmpeg resampler
to float32 planes ``[channels, n]``. :func:`mmtok.audio.io.load_audio` reads a file through
:class:`AvReader` at the stream's own rate and channels, then mixes and resamples exactly as it does
what libsndfile decodes; :func:`mmtok.video.read.read_audio` decodes a soundtrack the same way and mixes
and resamples it as :func:`~mmtok.audio.io.load_audio` does a file. Both end a stream where its container says (:func:`stated_samples`), without the codec's padding
(:func:`padding_end`): an AAC encoder fills its last frame, 128 samples past 3 s at 16 kHz.

:func:`pick_stream` is the one rule for which stream of a kind every reader takes (these, the vocoder's cache
and :mod:`mmtok.video.read`): the one marked default, else FFmpeg's pick, never a cover picture.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mmtok.core.errors import AudioError, MmtokError

__all__ = ["INSTALL_AV", "AvReader", "StreamChoice", "decoded_audio", "ffmpeg_only_kind", "ffmpeg_reason",
           "missing_stream", "open_container", "optional_av", "padding_end", "pick_stream", "stated_samples"]

INSTALL_AV = "pip install av (or pip install mmtok[video])"  # how to get PyAV, said in refusals (audio and video)
HEIF_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis")  # ftyp brands of pictures, not sound
DISPOSITION_DEFAULT = 0x0001  # FFmpeg's AV_DISPOSITION_DEFAULT: the stream a player picks of several of its kind
DISPOSITION_ATTACHED_PIC = 0x0400  # AV_DISPOSITION_ATTACHED_PIC: cover art (of an MP3, M4A, FLAC), not video


def optional_av() -> Any | None:
    """The ``av`` module, or None when PyAV is not installed."""
    try:
        import av
    except ImportError:
        return None
    return av


def sound_only(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a container of sound alone: an audio stream and no video stream (cover pictures
    aside), such as speech saved as ``.mp4``. False without PyAV, or for a file FFmpeg cannot open (its reader
    says why)."""
    av = optional_av()
    if av is None:
        return False
    try:
        with av.open(os.fspath(path), mode="r") as container:
            return pick_stream(container, "video") is None and pick_stream(container, "audio") is not None
    except (av.error.FFmpegError, OSError, ValueError):
        return False


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


class StreamChoice(NamedTuple):
    """The stream :func:`pick_stream` takes of its kind, and why."""

    stream: Any  # the PyAV stream
    why: str  # how it was told from the others: "the one marked default", "FFmpeg's pick: none is marked default"
    of: int  # streams of its kind it was chosen among, cover pictures not counted (1: there was no choice)

    def note(self, where: str, taken: str) -> str | None:
        """What a reader says of a choice among several streams (None when there was none): ``where`` names the
        file, ``taken`` what the stream is to the reader (``"its soundtrack is"``).

        >>> StreamChoice(None, "the one marked default", 1).note("a.mkv", "its sound is") is None
        True
        """
        if self.of < 2:
            return None
        return f"{where} has {self.of} {self.stream.type} streams: {taken} stream #{self.stream.index} ({self.why})"


def _disposition(stream: Any) -> int:
    """FFmpeg's disposition flags of ``stream`` (PyAV before 12 does not say: none)."""
    return int(getattr(stream, "disposition", 0) or 0)


def _covers(container: Any) -> list[Any]:
    """The cover pictures among ``container``'s streams: each an attached picture that FFmpeg lists as a
    one-frame video stream (the art of an MP3, M4A or FLAC file), which no reader takes for video."""
    return [s for s in container.streams.video if _disposition(s) & DISPOSITION_ATTACHED_PIC]


def pick_stream(container: Any, kind: str) -> StreamChoice | None:
    """The stream of ``kind`` (``"audio"`` or ``"video"``) that every reader takes, as a player does; None when
    the file has none (cover pictures aside).

    Cover pictures (attached pictures: the art of an MP3, M4A or FLAC file) are never taken. Of the other
    streams of that kind: the one marked default (its disposition); of several so marked, or none, the one
    FFmpeg ranks best (``container.streams.best``, ``av_find_best_stream``: a stream not marked for the hearing
    or visually impaired, then one it saw more frames of while probing, then the higher bitrate), or the first
    when FFmpeg's pick is not among them. :meth:`StreamChoice.note` says which one was taken when there was a
    choice."""
    art = _covers(container)
    streams = [s for s in getattr(container.streams, kind) if s not in art]
    if not streams:
        return None
    marked = [s for s in streams if _disposition(s) & DISPOSITION_DEFAULT]
    if len(marked) == 1:
        return StreamChoice(marked[0], "the one marked default", len(streams))
    pool = marked or streams
    try:
        best = container.streams.best(kind)
    except (AttributeError, ValueError):  # PyAV before 11 has no best()
        best = None
    among = f" of the {len(marked)} marked default" if marked else ": none is marked default"
    if best is not None and best in pool and best is not pool[0]:
        return StreamChoice(best, f"FFmpeg's pick{among}", len(streams))
    return StreamChoice(pool[0], f"the first{among}", len(streams))


def missing_stream(container: Any, kind: str, where: str) -> str:
    """Why ``where`` (``container``) gives no ``kind`` stream, when :func:`pick_stream` found none: the kinds of
    stream it has, or, for video, that all it has is cover art (a sound file's picture)."""
    art = _covers(container) if kind == "video" else []
    if not art:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        return f"{where} has no {kind} stream (streams: {', '.join(kinds)})"
    which = (f"its only picture is cover art (stream #{art[0].index}, an attached picture)" if len(art) == 1 else
             f"its only pictures are cover art (streams {', '.join(f'#{s.index}' for s in art)}, attached pictures)")
    return (f"{where} has no {kind} stream: {which}; it is a sound file: give it as audio (a document's "
            '{"audio": path}, or the audio tokenizer)')


def take_stream(container: Any, kind: str, where: str, error: type[MmtokError], taken: str, *,
                stacklevel: int) -> Any:
    """The stream of ``kind`` :func:`pick_stream` takes, warning at ``stacklevel`` (counted from the caller) what
    :meth:`StreamChoice.note` says of a choice among several (``taken``: ``"its sound is"``); a file with none is
    ``error`` saying why (:func:`missing_stream`)."""
    choice = pick_stream(container, kind)
    if choice is None:
        raise error(missing_stream(container, kind, where))
    note = choice.note(where, taken)
    if note is not None:
        warnings.warn(note, stacklevel=stacklevel + 1)
    return choice.stream


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
    """The audio stream of a file that :func:`pick_stream` takes (a warning names it when there are several),
    decoded by PyAV, read in blocks as a ``soundfile.SoundFile`` is: ``read(frames)`` gives float32
    ``(frames, channels)`` at the stream's rate, fewer only at the end, which is where the container's index
    says when it has one (:func:`stated_samples`, :func:`padding_end`).
    ``kind``, what the file's first bytes say it is (:func:`ffmpeg_only_kind`), is named in the error
    when FFmpeg cannot open it."""

    format = "FFMPEG"  # what soundfile calls the container: PyAV's files are told apart from libsndfile's
    frames = 0  # frames the header promises: not trusted here (raw AAC states a guess), FFmpeg's decode decides

    def __init__(self, av: Any, path: Path, kind: str | None = None) -> None:
        where = f"audio file {path}"
        self._container = open_container(av, path, where, AudioError, kind=kind)
        try:  # a note goes to the caller of load_audio, which opens this reader four calls down
            stream = take_stream(self._container, "audio", where, AudioError, "its sound is", stacklevel=6)
        except AudioError:
            self._container.close()
            raise
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
