"""A video file's soundtrack decoded and laid on the frames' clock: the decoding half of
:func:`mmtok.video.read.read_audio`.

:func:`decode_soundtrack` has FFmpeg decode, mix to mono and resample a stream frame by frame
(:func:`~mmtok.audio.av_read.decoded_audio`), refusing one longer than asked; :func:`on_clock` pads or
trims the result so that sample 0 is at the file's origin and the codec's padding past the stream's
stated end is cut.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mmtok.audio.av_read import decoded_audio, padding_end
from mmtok.core.errors import VideoError

__all__ = ["decode_soundtrack", "on_clock", "too_long_message"]


def too_long_message(where: str, max_seconds: float, seconds: float) -> str:
    """Why a soundtrack of ``seconds`` is refused under ``max_seconds``, and the ways round it."""
    return (f"{where}: its soundtrack ({seconds:.1f} s) is longer than max_seconds={max_seconds:g} s (it is held "
            "in memory whole); cut the video (ffmpeg -t), or leave its sound out with \"soundtrack\": false in the "
            "video's segment (a JSONL document for mmtok tokenize, or one for Interleaver), or in Python read it "
            "all with read_audio(path, max_seconds=None)")


def decode_soundtrack(av: Any, container: Any, stream: Any, where: str, sample_rate: int,
                      max_seconds: float | None) -> tuple[list[np.ndarray], float | None, int]:
    """The stream decoded to mono float32 parts at ``sample_rate`` (FFmpeg mixes and resamples:
    :func:`~mmtok.audio.av_read.decoded_audio`); the first frame's time on the file's clock (None without
    a timestamp); the most samples one frame gave. Past ``max_seconds`` (and two frames, which may be the
    codec's padding): a :class:`VideoError`."""
    limit = math.inf if max_seconds is None else max_seconds * sample_rate
    parts: list[np.ndarray] = []
    first: float | None = None
    total = frame_len = 0
    for index, (frame, planes) in enumerate(
            decoded_audio(av, container, stream, where, VideoError, layout="mono", rate=sample_rate)):
        if index == 0 and frame is not None and frame.pts is not None and frame.time_base:
            first = float(frame.pts * frame.time_base)
        parts += [p[0] for p in planes]
        total += sum(p.shape[1] for p in planes)
        if frame is not None:
            frame_len = max(frame_len, math.ceil(frame.samples * sample_rate / frame.sample_rate))
        if total > limit + 2 * frame_len:
            raise VideoError(too_long_message(where, max_seconds or 0.0, total / sample_rate))
    return parts, first, frame_len


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
