"""Video -> frames sampled at a fixed rate -> per-frame image tokens, and back.

Data flow: a file -> frames sampled at ``fps`` (:mod:`mmtok.video.read`, which says
which frame is taken) -> float ``[T, 3, H, W]`` in [0, 1] -> the image tokenizer,
frame by frame -> int64 codes ``[T, h, w]``.

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
import numbers
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mmtok.core.codes import integer_codes
from mmtok.core.errors import VideoError
from mmtok.core.protocol import module_fingerprint, ordinary_outputs
from mmtok.core.seconds import check_chunk_seconds
from mmtok.core.tensors import as_tensor
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.io import load_image
from mmtok.image.tokenizer import CHANNELS, ImageTokenizer
from mmtok.video.frame_settings import ShrinkTo, frame_size, video_fps
from mmtok.video.read import (
    AUDIO_RATE,
    CHUNK_FRAMES,
    frames_to_float,
    iter_video,
    no_frames_message,
    read_audio,
)
from mmtok.video.temporal import repeat_decode, repeat_encode

__all__ = ["TEMPORAL_MODES", "VideoTokenizer", "VideoTokenizerConfig"]

TEMPORAL_MODES = ("none", "repeat")  # see the module docstring


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
        """Every setting checked where it is given (a wrong one named now, not at the first encode), and numbers
        of other types (a ``Fraction`` fps, numpy integers) held as the float and ints they stand for."""
        self.fps = video_fps(self.fps)
        self.size = frame_size(self.size)
        if self.temporal not in TEMPORAL_MODES:
            raise ValueError(f"temporal must be one of {TEMPORAL_MODES}, got {self.temporal!r}")
        whole = isinstance(self.chunk_frames, numbers.Integral) and not isinstance(self.chunk_frames, (bool, np.bool_))
        if not whole or self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be an integer >= 1, got {self.chunk_frames!r}")
        self.chunk_frames = int(self.chunk_frames)


class VideoTokenizer(nn.Module):
    """Videos <-> int64 codes ``[T, h, w]``: frames sampled at ``fps``, each tokenized by an image tokenizer.

    ``encode`` takes a video file path (streamed), frames ``[T, 3, H, W]`` (float in
    [0, 1] or uint8; a numpy array ``[T, H, W, 3]``) or a list or other iterable of images;
    ``decode`` returns float frames ``[T, 3, H, W]``.
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
        self._label: str | None = None  # set by loading (see checkpoint_label)
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

    @property
    def checkpoint_label(self) -> str:
        """What it is, in words, for a vocabulary's labels and messages: the label it was loaded with (a checkpoint
        folder's, or ``mmtok.load("video")``'s), else what it is built from: ``"video: {image} at {fps} fps"``
        and each setting off its default, ``{image}`` being the image tokenizer's checkpoint label while its
        weights are as loaded, else its fingerprint."""
        if self._label is not None:
            return self._label
        fps = str(int(self.fps)) if self.fps.is_integer() else repr(self.fps)
        default = VideoTokenizerConfig()
        changed = [f", {k} {getattr(self.cfg, k)}" for k in ("size", "temporal", "chunk_frames")
                   if getattr(self.cfg, k) != getattr(default, k)]
        return f"video: {self._image_label()} at {fps} fps{''.join(changed)}"

    @checkpoint_label.setter
    def checkpoint_label(self, label: str) -> None:
        self._label = str(label)

    def _image_label(self) -> str:
        """The image tokenizer in words: its checkpoint label while it is as loaded, else its fingerprint."""
        image, label = self.image, getattr(self.image, "checkpoint_label", None)
        module = isinstance(image, nn.Module)
        if isinstance(label, str) and (not module or module_fingerprint(image) == getattr(image, "loaded_fingerprint", None)):
            return label
        own = getattr(image, "fingerprint", None)
        if isinstance(own, str) or module:
            return f"an image tokenizer of fingerprint {own if isinstance(own, str) else module_fingerprint(image)}"
        return f"a {type(image).__name__} without a fingerprint"

    def _read_size(self) -> int | tuple[int, int] | None:
        """Shrink while decoding (cheap, in FFmpeg) to what the image tokenizer will crop to; frames
        already that small are left to its own resize, so they give the codes ``read_video``'s do."""
        if self.cfg.size is not None:
            return self.cfg.size
        cfg = getattr(self.image, "cfg", None)
        if getattr(cfg, "size_policy", None) == "crop":
            return ShrinkTo(cfg.image_size)
        return None

    def frames(self, path: str | os.PathLike[str], **kwargs: Any) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        """Stream ``(float [n, 3, H, W], seconds [n])`` chunks of a file, as ``encode`` sees them."""
        for chunk, times in iter_video(path, self.fps, self._read_size(), chunk=self.cfg.chunk_frames, **kwargs):
            yield frames_to_float(chunk), times

    def _encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[1] not in CHANNELS:
            raise VideoError(f"frames must be [T, 3, H, W] (a numpy array may hold its channels last, [T, H, W, 3]), "
                             f"got shape {tuple(frames.shape)}")
        if frames.shape[0] == 0:
            raise VideoError("got zero frames")
        n = self.cfg.chunk_frames
        return torch.cat([self.image.encode(frames[i : i + n]) for i in range(0, frames.shape[0], n)])

    def _check_frame_size(self, path: str | os.PathLike[str], frames: torch.Tensor) -> None:
        """A :class:`VideoError` naming the file when its frames (as read) are smaller than one token's patch."""
        p, (h, w) = self.downsample, frames.shape[-2:]
        if h < p or w < p:
            raise VideoError(f"video file {os.fspath(path)!r}: its frames are {w}×{h} pixels, smaller than one "
                             f"{p}×{p} patch; use a video at least {p} pixels on each side")

    def _encode_array(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Frames as a tensor ``[T, C, H, W]`` or a numpy array ``[T, H, W, C]`` (channels last, as
        :func:`~mmtok.video.read.iter_video` gives them and a numpy image is; ``[T, C, H, W]`` is taken too)
        -> codes ``[T, h, w]``."""
        t = as_tensor(x)  # numpy frames of any byte order and strides, in read-only memory too
        if isinstance(x, np.ndarray) and t.dim() == 4 and t.shape[-1] in CHANNELS:
            t = t.permute(0, 3, 1, 2)  # (T, H, W, C) -> (T, C, H, W)
        if t.dtype == torch.uint8:
            t = t.float() / 255.0
        return self._encode_frames(t)

    def _encode_items(self, items: list[Any] | tuple[Any, ...]) -> torch.Tensor:
        """Frames given as a list: images one by one, or chunks of frames (all 4-D arrays or tensors, as
        :meth:`_encode_array` takes them) -> codes ``[T, h, w]``."""
        if items and all(isinstance(f, (torch.Tensor, np.ndarray)) and f.ndim == 4 for f in items):
            parts = [self._encode_array(f) for f in items]
            grids = sorted({tuple(p.shape[1:]) for p in parts})
            if len(grids) > 1:
                raise VideoError(f"the chunks of frames give code grids of different sizes {grids}, and a video's "
                                 "frames share one size: give frames of one size")
            return torch.cat(parts)
        try:
            images = [load_image(f) for f in items]
        except ValueError as e:  # an ImageError; for a list of video files, say what a list is
            if not any(isinstance(f, (str, os.PathLike)) for f in items):
                raise
            raise VideoError(f"{e}; a list is the frames of one video (images): encode video files one at "
                             "a time, encode(path) for each") from e
        if len({tuple(i.shape) for i in images}) > 1:  # each brought to the tokenizer's size on its own
            images = [self.image.preprocess(i) for i in images]
            sizes = sorted({tuple(i.shape[-2:]) for i in images})
            if len(sizes) > 1:  # a policy that keeps each image's own size ("native")
                policy = getattr(getattr(self.image, "cfg", None), "size_policy", None)
                raise VideoError(f"the frames preprocess to different sizes {sizes}"
                                 f"{f' under size_policy {policy!r}' if policy else ''}, and a video's frames "
                                 "share one size: give frames of one size, or use an image tokenizer whose "
                                 "policy brings them to one ('crop' or 'pad')")
        return self._encode_frames(torch.stack(images) if images else torch.zeros(0, 3, 1, 1))

    @ordinary_outputs
    def encode(self, x: Any, *, start: float = 0.0, duration: float | None = None) -> torch.Tensor:
        """A video file, frames or images one by one -> int64 codes ``[T, h, w]``.

        Frames: a tensor ``[T, 3, H, W]``, a numpy array ``[T, H, W, 3]`` (float in [0, 1] or uint8), or
        a list or any other iterable of images (a generator too), or of such chunks of frames (what
        :func:`~mmtok.video.read.iter_video` or :meth:`decode_chunks` give). ``start`` and ``duration``
        select a window of a file; for frames, slice them.

        A file gives the codes of ``encode(read_video(x, fps).frames)``, except under the ``"crop"``
        policy (no ``size`` set) for frames over ``image_size`` on their shorter side: FFmpeg shrinks
        those while decoding, not the image tokenizer's antialiased bicubic resize, so some codes differ.
        """
        if not isinstance(x, (str, os.PathLike)) and (start != 0.0 or duration is not None):
            raise ValueError(f"start and duration select a window of a video file, got them with a "
                             f"{type(x).__name__} (start={start!r}, duration={duration!r}); slice the frames "
                             "instead (frames[a:b])")
        if isinstance(x, (str, os.PathLike)):
            parts: list[torch.Tensor] = []
            for f, _ in self.frames(x, start=start, duration=duration):
                if not parts:
                    self._check_frame_size(x, f)
                parts.append(self._encode_frames(f))
            if not parts:
                raise VideoError(no_frames_message(x, start, duration))
            codes = torch.cat(parts)
        elif isinstance(x, (torch.Tensor, np.ndarray)):
            codes = self._encode_array(x)
        elif isinstance(x, Iterable) and not isinstance(x, (bytes, Mapping)):
            codes = self._encode_items(x if isinstance(x, (list, tuple)) else list(x))
        else:
            raise TypeError(f"VideoTokenizer.encode takes a file path, a [T, 3, H, W] tensor, a [T, H, W, 3] numpy "
                            f"array or a list (or other iterable) of images, got {type(x).__name__}")
        codes = codes.cpu()
        return repeat_encode(codes, self.repeat_id) if self.repeat_id is not None else codes

    def expand(self, codes: Any) -> torch.Tensor:
        """Codes ``[T, h, w]`` with repeat codes resolved to image codes (identity without ``temporal``)."""
        codes = integer_codes(codes, what="video codes", error=VideoError).cpu()
        if codes.dim() != 3:
            raise VideoError(f"video codes must be [T, h, w], got shape {tuple(codes.shape)}")
        return repeat_decode(codes, self.repeat_id) if self.repeat_id is not None else codes

    def _frame_codes(self, codes: Any) -> torch.Tensor:
        """:meth:`expand`, refusing codes of zero frames."""
        flat = self.expand(codes)
        if flat.shape[0] == 0:
            raise VideoError("video codes have zero frames: nothing to decode")
        return flat

    @ordinary_outputs
    def _decode_chunk(self, flat: torch.Tensor) -> torch.Tensor:
        return self.image.decode(flat)  # (n, 3, H, W)

    def decode_chunks(self, codes: Any) -> Iterator[torch.Tensor]:
        """Codes ``[T, h, w]`` -> frames float32 ``[n, 3, H, W]`` in [0, 1], ``chunk_frames`` at a time, each
        decoded when it is asked for: memory does not grow with the clip (``mmtok decode`` writes a video so,
        :func:`~mmtok.video.write.write_video` taking the chunks). The codes are checked before it returns.

        >>> import torch
        >>> from mmtok.image.tokenizer import ImageTokenizer, ImageTokenizerConfig
        >>> vt = VideoTokenizer(ImageTokenizer(ImageTokenizerConfig(image_size=32)).eval(), chunk_frames=2)
        >>> [tuple(f.shape) for f in vt.decode_chunks(torch.zeros(3, 2, 2, dtype=torch.long))]
        [(2, 3, 32, 32), (1, 3, 32, 32)]
        """
        flat, n = self._frame_codes(codes), self.cfg.chunk_frames
        return (self._decode_chunk(flat[i : i + n]) for i in range(0, flat.shape[0], n))

    @ordinary_outputs
    def decode(self, codes: Any) -> torch.Tensor:
        """Codes ``[T, h, w]`` -> frames float32 ``[T, 3, H, W]`` in [0, 1], held whole (:meth:`decode_chunks`
        streams them)."""
        flat, n = self._frame_codes(codes), self.cfg.chunk_frames
        out = torch.empty(0)
        for i in range(0, flat.shape[0], n):
            piece = self._decode_chunk(flat[i : i + n])
            if i == 0:
                with torch.inference_mode(False):  # an ordinary tensor: handed back as it is, not copied
                    out = torch.empty(flat.shape[0], *piece.shape[1:], dtype=piece.dtype, device=piece.device)
            out[i : i + len(piece)] = piece
        return out

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
        audio tokens then add up to the whole soundtrack's. A chunk whose frames start
        after the sound has ended carries no audio segment. ``chunk_seconds`` is None or a number > 0 of at
        most :data:`~mmtok.core.seconds.MAX_CHUNK_SECONDS` (the Interleaver's rule); else a :class:`VideoError`.
        """
        seconds = check_chunk_seconds(chunk_seconds, error=VideoError, whole="None: all frames in one chunk")
        if int(samples_per_token) < 1:
            raise VideoError(f"samples_per_token must be a whole number >= 1, got {samples_per_token!r}")
        sound = read_audio(path, sample_rate) if audio else None  # first: one too long is refused before any frame
        if sound is not None and duration is not None:
            sound = (sound[0][: round(duration * sound[1])], sound[1])
        codes = self.expand(self.encode(path, duration=duration))  # chunks re-encoded: each starts without repeats
        frames = math.inf if seconds is None else seconds * self.fps  # frames per chunk, before rounding
        per = max(1, codes.shape[0] if frames >= codes.shape[0] else math.floor(frames + 0.5))
        out: list[dict[str, Any]] = []
        for i in range(0, codes.shape[0], per):
            piece = codes[i : i + per]
            out.append({"video_codes": repeat_encode(piece, self.repeat_id) if self.repeat_id is not None else piece})
            if sound is not None:
                wave, sr = sound
                a, b = (min(_token_edge(k / self.fps * sr, int(samples_per_token)), wave.numel())
                        for k in (i, i + per))
                if i + per >= codes.shape[0]:
                    b = wave.numel()
                if b > a:
                    out.append({"audio": wave[a:b], "sample_rate": sr})
        return out
