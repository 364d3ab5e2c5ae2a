"""A video file's soundtrack decoded and laid on the frames' clock: the decoding half of
:func:`mmtok.video.read.read_audio`.

:func:`decode_soundtrack` has FFmpeg decode a stream frame by frame at its own rate and channels
(:func:`~mmtok.audio.av_read.decoded_audio`), then averages the channels and resamples as
:func:`mmtok.audio.io.load_audio` does a file's, refusing one longer than asked; :func:`on_clock` pads or
trims the result so that sample 0 is at the file's origin and the codec's padding past the stream's
stated end is cut.

The soundtrack keeps to its timestamps as the frames do: a gap in them (a recording paused and resumed) is
filled with silence, and a jump back (files joined end to end, a clock reset) is read as following on, as the
frames are (:func:`mmtok.video.read.iter_video`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mmtok.audio.arrays import BLOCK_SAMPLES, mono_chunks
from mmtok.audio.av_read import decoded_audio, padding_end
from mmtok.audio.resample import Resampler, resampler
from mmtok.core.errors import VideoError

__all__ = ["GAP_S", "decode_soundtrack", "on_clock", "too_long_message"]

GAP_S = 0.02  # seconds a frame's timestamp may miss where the samples before it end: more is a gap or a jump back


def too_long_message(where: str, max_seconds: float, seconds: float) -> str:
    """Why a soundtrack of ``seconds`` is refused under ``max_seconds``, and the ways round it."""
    return (f"{where}: its soundtrack ({seconds:.1f} s) is longer than max_seconds={max_seconds:g} s (it is held "
            "in memory whole); cut the video (ffmpeg -t), or leave its sound out with \"soundtrack\": false in the "
            "video's segment (a JSONL document for mmtok tokenize, or one for Interleaver), or in Python read it "
            "all with read_audio(path, max_seconds=None)")


@dataclass
class _Clock:
    """What the decode of a soundtrack learns from its frames."""

    first: float | None = None  # the first frame's time on the file's clock (None without a timestamp)
    rate: int = 0  # Hz: the stream's own rate (its first frame's; 0 before it)
    frame: int = 0  # the most samples one frame gave, at ``rate``
    block: int = 1  # frames per block: BLOCK_SAMPLES over the channels, as load_audio reads a file
    skew: float = 0.0  # seconds the timestamps have jumped back so far (those pieces are read as following on)

    def gap(self, frame: Any, read: int) -> int:
        """Samples of silence to put before ``frame`` so that it starts at its timestamp, ``read`` samples having
        come before it (0 without a timestamp, or when it starts within :data:`GAP_S` of where they end). A frame
        that starts further back than that is read as following on: the later timestamps are moved by as much."""
        if frame.pts is None or not frame.time_base or self.first is None or not self.rate:
            return 0
        late = float(frame.pts * frame.time_base) + self.skew - (self.first + read / self.rate)
        if late < -GAP_S:
            self.skew -= late
        return round(late * self.rate) if late > GAP_S else 0


def decode_soundtrack(av: Any, container: Any, stream: Any, where: str, sample_rate: int,
                      max_seconds: float | None) -> tuple[list[np.ndarray], float | None, int]:
    """The stream decoded frame by frame at its own rate and channels (:func:`~mmtok.audio.av_read.decoded_audio`),
    then in blocks as :func:`~mmtok.audio.io.load_audio` reads a file: channels averaged
    (:func:`~mmtok.audio.arrays.mono_chunks`) and resampled to ``sample_rate``
    (:func:`~mmtok.audio.resample.resampler`), so the same sound gives the same samples from a video as from
    an audio file. Returns the mono float32 parts, the first frame's time on the file's clock (None without a
    timestamp) and the most samples one frame gave, at ``sample_rate``. Past ``max_seconds`` (and two frames,
    which may be the codec's padding): a :class:`VideoError`."""
    clock = _Clock()
    blocks = _blocks(decoded_audio(av, container, stream, where, VideoError), where, max_seconds, clock)
    parts: list[np.ndarray] = []
    to_rate: Resampler | None = None
    full = True  # whether the last block was a whole one: then an empty last block ends the stream, as for a file
    for mono in mono_chunks(blocks, caller=where, channels_first=False):
        to_rate = to_rate or resampler(clock.rate, sample_rate)
        full = mono.numel() == clock.block
        parts.append(to_rate.push(mono, last=not full).numpy())
    if to_rate is not None and full:
        parts.append(to_rate.push(torch.zeros(0), last=True).numpy())
    return parts, clock.first, math.ceil(clock.frame * sample_rate / clock.rate) if clock.rate else 0


def _blocks(decoded: Iterator[tuple[Any, list[np.ndarray]]], where: str, max_seconds: float | None,
            clock: _Clock) -> Iterator[np.ndarray]:
    """The planes of ``decoded`` as float32 blocks ``(clock.block, channels)``, the last one shorter (none if
    empty), noting in ``clock`` what the frames say; past ``max_seconds`` and two frames a :class:`VideoError`."""
    held: list[np.ndarray] = []  # planes [channels, n] not given out yet
    count = read = 0  # samples per channel in held, and decoded in all
    for frame, planes in decoded:
        if frame is not None:
            if not clock.rate:
                clock.rate = int(frame.sample_rate)
                clock.first = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
            clock.frame = max(clock.frame, int(frame.samples))
            silence = clock.gap(frame, read)
            if silence and held:  # counted before it is made: a gap past max_seconds is refused, not allocated
                _check_length(read + silence, where, max_seconds, clock)
                planes = [np.zeros((held[-1].shape[0], silence), np.float32), *planes]
        for p in planes:
            clock.block = max(1, BLOCK_SAMPLES // p.shape[0])
            held.append(p)
            count += p.shape[1]
            read += p.shape[1]
        _check_length(read, where, max_seconds, clock)
        if count >= clock.block:
            data = np.concatenate(held, axis=1)
            whole = count // clock.block * clock.block
            for i in range(0, whole, clock.block):
                yield np.ascontiguousarray(data[:, i : i + clock.block].T)
            held, count = [data[:, whole:]], count - whole
    if count:
        yield np.ascontiguousarray(np.concatenate(held, axis=1).T)


def _check_length(samples: int, where: str, max_seconds: float | None, clock: _Clock) -> None:
    """A :class:`VideoError` when ``samples`` at ``clock.rate`` pass ``max_seconds`` and two frames."""
    if max_seconds is not None and samples > max_seconds * clock.rate + 2 * clock.frame:
        raise VideoError(too_long_message(where, max_seconds, samples / clock.rate))


def on_clock(wave: np.ndarray, offset: float, end: float | None, sample_rate: int, frame_len: int) -> np.ndarray:
    """``wave``, which starts ``offset`` s after the origin, from the origin on: silence before it (or its
    samples before the origin dropped), and cut at ``end`` (s from the origin) when what runs past is at most
    two frames, the codec's padding (a stated end further off is not trusted with real sound)."""
    lead = round(offset * sample_rate)
    if lead > 0:
        wave = np.concatenate([np.zeros(lead, np.float32), wave])
    elif lead < 0:
        wave = wave[-lead:]
    if end is not None:
        keep = max(0, round(end * sample_rate))
        wave = wave[:padding_end(wave.size, keep, frame_len)]
    return wave
