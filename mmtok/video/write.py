"""Writing a video file with PyAV: frames (and a mono soundtrack) -> MP4 (H.264 and AAC).

>>> import io, torch
>>> buf = io.BytesIO()
>>> write_video(buf, torch.rand(3, 3, 64, 64), fps=2.0, audio=torch.zeros(24000), sample_rate=16000)
>>> buf.getbuffer().nbytes > 0
True
"""

from __future__ import annotations

import fractions
from collections.abc import Iterable
from typing import IO, Any

import numpy as np
import torch

from mmtok.core.errors import VideoError
from mmtok.video.frame_settings import video_fps

__all__ = ["write_video"]

AUDIO_FRAME = 1024  # samples per AAC frame
CHUNK = 16  # frames turned into pixels at once
# the frame rate is written as the nearest fraction with a denominator up to this (30000/1001 exactly, one frame an
# hour as 1/3600: a cap of 1,000 once wrote rates under 1/2000 as 0, and the file came out at 24 fps)
RATE_DENOMINATOR = 10**6
MAX_RATE_TERM = 2**31 - 1  # the numerator's limit (a time base's terms are 32-bit integers)


def write_video(file: IO[bytes], frames: torch.Tensor | Iterable[torch.Tensor], *, fps: float,
                audio: torch.Tensor | None = None, sample_rate: int | None = None,
                metadata: dict[str, str] | None = None) -> None:
    """MP4 of ``frames`` (float ``[T, 3, H, W]`` in [0, 1], even H and W, or chunks of them ``[n, 3, H, W]`` one
    after another: :meth:`~mmtok.video.tokenizer.VideoTokenizer.decode_chunks`) at ``fps``, H.264 (yuv420p), with
    ``audio`` (float ``[S]`` at ``sample_rate``, mono) as AAC when given, and the container tags ``metadata``
    (``{"comment": ...}``). Frames are turned into pixels :data:`CHUNK` at a time, so chunks are written
    without the clip ever being held whole."""
    from mmtok.video.read import pyav

    rate = fractions.Fraction(video_fps(fps)).limit_denominator(RATE_DENOMINATOR)
    if rate <= 0 or rate.numerator > MAX_RATE_TERM:  # the stream's rate is a fraction of 32-bit integers
        raise VideoError(f"write_video cannot write {fps:g} frames per second: an MP4's frame rate lies between "
                         f"1/{RATE_DENOMINATOR:,} and {MAX_RATE_TERM:,}")
    av = pyav()
    chunks = frames.split(CHUNK) if isinstance(frames, torch.Tensor) else frames
    if isinstance(frames, torch.Tensor):
        _check_chunk(frames, None)
    if audio is not None and sample_rate is None:
        raise VideoError("write_video got audio without its sample_rate")
    with av.open(file, "w", format="mp4") as container:
        container.metadata.update(metadata or {})
        video, sound = None, None
        for chunk in chunks:
            _check_chunk(chunk, None if video is None else (video.height, video.width))
            if video is None:
                video = container.add_stream("libx264", rate=rate)
                video.width, video.height, video.pix_fmt = chunk.shape[-1], chunk.shape[-2], "yuv420p"
                if audio is not None:
                    sound = container.add_stream("aac", rate=sample_rate)
                    sound.layout = "mono"
            pixels = (chunk.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            for frame in pixels:
                _mux(container, video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        if video is None:
            raise VideoError("write_video needs frames [T, 3, H, W] with T >= 1, got no frames")
        _mux(container, video.encode())
        if sound is not None and audio is not None:
            _write_audio(av, container, sound, audio.detach().cpu().float().numpy(), int(sample_rate or 0))


def _check_chunk(frames: Any, hw: tuple[int, int] | None) -> None:
    """Refuse ``frames`` that are not ``[T, 3, H, W]`` with T >= 1 and an even H and W, or (``hw``) not the size of the
    frames before them."""
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise VideoError(f"write_video needs frames [T, 3, H, W] with T >= 1, got {shape}")
    h, w = frames.shape[-2:]
    if h % 2 or w % 2:
        raise VideoError(f"write_video needs an even frame size for yuv420p, got {w}×{h}")
    if hw is not None and (h, w) != hw:
        raise VideoError(f"write_video needs frames of one size, got {w}×{h} after {hw[1]}×{hw[0]}")


def _write_audio(av: Any, container: Any, stream: Any, wave: np.ndarray, rate: int) -> None:
    resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)  # flt -> the encoder's fltp
    for i in range(0, wave.size, AUDIO_FRAME):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[None, i : i + AUDIO_FRAME]), format="flt",
                                           layout="mono")
        # explicit timestamps: the encoder then starts at -priming, and the muxer writes the edit list that
        # makes a reader skip the priming (without them the sound would start 1,024 samples late)
        frame.sample_rate, frame.pts, frame.time_base = rate, i, fractions.Fraction(1, rate)
        for f in resampler.resample(frame):
            _mux(container, stream.encode(f))
    _mux(container, stream.encode())


def _mux(container: Any, packets: Any) -> None:
    for packet in packets:
        container.mux(packet)
