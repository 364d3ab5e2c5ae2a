"""Whole-token counts of a planned video: frames, latent frames, chunks, markers, and what a window holds.

The arithmetic :func:`mmtok.context.planner.plan` runs on a checked :class:`~mmtok.context.presets.Preset`:
frames are sampled at ``0, 1/fps, 2/fps, ... < duration``; a started frame or audio token counts whole.
With ``chunk_seconds`` the video is cut as ``mmtok tokenize`` cuts a ``{"video": ..., "chunk_seconds": S}``
segment: chunks of ``S * fps`` frames (rounded half up, at least one), each with its own per-video markers
and, when the video has soundtrack tokens, its own per-soundtrack markers.

>>> from mmtok.context.presets import Preset
>>> p = Preset("x", "", resolution=(32, 32), downsample=16, tokens_per_video=2, chunk_seconds=1.0)
>>> chunks(p, 3), video_tokens(p, 4, 3)  # 3 frames at 1 fps in chunks of one: <bov> <eov> each
(3, (3, 18))
"""

from __future__ import annotations

import math

from mmtok.context.presets import Preset

__all__ = ["chunk_rate", "chunks", "counts", "holds", "latent_frame_tokens", "video_tokens"]


def latent_frame_tokens(p: Preset) -> tuple[tuple[int, int] | None, int]:
    """The token grid ``(h, w)`` of one latent frame (None for a fixed count) and its tokens with separators."""
    if p.fixed_tokens_per_frame is not None:
        return None, p.fixed_tokens_per_frame + p.tokens_per_frame_overhead
    assert p.resolution is not None
    grid = (-(-p.resolution[0] // p.downsample), -(-p.resolution[1] // p.downsample))
    return grid, grid[0] * grid[1] + grid[0] * p.tokens_per_row + p.tokens_per_frame_overhead


def chunks(p: Preset, frames: int) -> int:
    """How many chunks ``frames`` sampled frames are cut into: ``chunk_seconds * fps`` frames each, rounded half
    up and at least one (:meth:`mmtok.video.tokenizer.VideoTokenizer.segments`' rule); 1 without ``chunk_seconds``."""
    if p.chunk_seconds is None:
        return 1
    per = p.chunk_seconds * p.fps
    per_chunk = frames if per >= frames else max(1, math.floor(per + 0.5))
    return -(-frames // per_chunk)


def chunk_rate(p: Preset) -> float:
    """Chunks per second of a long video (0 without ``chunk_seconds``): one per ``chunk_seconds * fps`` frames,
    rounded half up and at least one."""
    if p.chunk_seconds is None:
        return 0.0
    return p.fps / max(1, math.floor(p.chunk_seconds * p.fps + 0.5))


def video_tokens(p: Preset, per_latent: int, frames: int) -> tuple[int, int]:
    """(latent frames, video tokens with the per-video markers of every chunk) of ``frames`` sampled frames."""
    t = p.temporal
    latent = (1 + -(-(frames - 1) // t)) if p.causal_first_frame else -(-frames // t)
    return latent, latent * per_latent + p.tokens_per_video * chunks(p, frames)


def _audio_marks(p: Preset, frames: int) -> int:
    """The soundtrack markers of ``frames`` sampled frames: ``tokens_per_audio`` per chunk, when it has tokens."""
    return p.tokens_per_audio * chunks(p, frames) if p.audio_tokens_per_second > 0 else 0


def counts(p: Preset, per_latent: int, duration_s: float) -> tuple[int, int, int, int]:
    """(frames, latent frames, video tokens, audio tokens) of ``duration_s`` seconds: whole frames and audio
    tokens, each rounded up; the audio with its markers (``tokens_per_audio`` per chunk) when it has any token."""
    frames = max(1, math.ceil(duration_s * p.fps - 1e-9))
    latent, video = video_tokens(p, per_latent, frames)
    audio = math.ceil(p.audio_tokens_per_second * duration_s - 1e-9)
    return frames, latent, video, audio + (_audio_marks(p, frames) if audio > 0 else 0)


def holds(p: Preset, per_latent: int, size: int) -> float:
    """The longest duration whose plan fits ``size`` tokens (0 when one frame does not).

    Not ``size`` over the mean rate: frames and audio tokens are whole (a started frame or audio token
    counts) and a causal first frame is a latent frame of its own, so the search runs over frame counts:
    ``k`` frames last at most ``k / fps``, and the audio the window has room for beside them at most
    ``room / rate``; the first grows with ``k`` and the second shrinks, so the best ``k`` is where they cross.
    """
    a = p.audio_tokens_per_second

    def fixed(k: int) -> int:  # the tokens of k frames that do not grow with the audio: video and markers
        return video_tokens(p, per_latent, k)[1] + _audio_marks(p, k)

    def longest(k: int) -> float:  # the longest video of at most k frames that fits
        return k / p.fps if a == 0 else min(k / p.fps, max(size - fixed(k), 0) / a)

    if fixed(1) > size:
        return 0.0
    if per_latent == 0 and p.chunk_seconds is None:  # the video part never grows: only audio fills the window
        return math.inf if a == 0 else (size - fixed(1)) / a
    lo, hi = 1, 2
    while fixed(hi) <= size and hi < 1 << 62:  # the frame counts whose video and markers fit: [1, hi)
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fixed(mid) <= size else (lo, mid)
    k_max = lo
    lo, hi = 1, k_max
    while lo < hi:  # the largest k whose frames end before its audio room does
        mid = (lo + hi + 1) // 2
        if a == 0 or mid * a <= (size - fixed(mid)) * p.fps:
            lo = mid
        else:
            hi = mid - 1
    best = max(longest(k) for k in range(max(1, lo - 1), min(k_max, lo + 2) + 1))
    if sum(counts(p, per_latent, best)[2:]) > size:  # float rounding at a boundary: the largest float that fits
        low, high = 0.0, best
        for _ in range(200):
            mid_s = (low + high) / 2
            low, high = (mid_s, high) if sum(counts(p, per_latent, mid_s)[2:]) <= size else (low, mid_s)
        best = low
    return best
