"""The planner with mmtok's own rate: the ``"mmtok"`` preset read from the shipped tokenizers' configs.

:mod:`mmtok.context.planner` is arithmetic on numbers; this module looks up the
numbers of mmtok's image and audio tokenizers (image side, pixels per token, size
policy, audio tokens per second) through :func:`mmtok.pretrained.load_config`,
without reading any weights (the audio tokenizer's own ``tokens_per_second``, from one
built on the meta device), and hands them to :func:`~mmtok.context.planner.mmtok_preset`.
Its :func:`plan` is the one ``mmtok.plan`` and ``mmtok context`` call.

>>> p = plan(60, preset="gemini")
>>> p.tokens_per_second
290.0
>>> shipped_preset().tokens_per_video  # <bov> <eov>
2
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mmtok.context import planner
from mmtok.context.planner import ContextPlan, mmtok_preset
from mmtok.context.presets import Preset
from mmtok.core.checkpoint import CONFIG_NAME
from mmtok.core.checkpoint_names import resolve_checkpoint
from mmtok.core.errors import CheckpointError
from mmtok.image.sizes import working_size
from mmtok.lm.model_config import ModelConfig
from mmtok.pretrained import default_config, load_config
from mmtok.stream.text import ByteTokenizer
from mmtok.stream.vocab import Vocabulary

__all__ = ["plan", "shipped_preset", "shipped_vocab"]



def _folder(name_or_path: str | os.PathLike[str]) -> Path | None:
    """The checkpoint folder a shipped name or a path stands for, by :func:`~mmtok.core.checkpoint_names.resolve_checkpoint`'s
    rule (as ``mmtok.load`` finds it: a folder of pictures or recordings called ``image`` or ``audio`` in the working
    folder does not hide the shipped checkpoint); None when there is none. A folder that is there but holds no
    checkpoint is handed back, for :func:`~mmtok.pretrained.load_config` to say so."""
    try:
        return resolve_checkpoint(name_or_path)
    except CheckpointError:
        path = Path(name_or_path)
        named = isinstance(name_or_path, str) and "/" not in name_or_path and os.sep not in name_or_path
        return path if path.is_dir() and not named else None


def _image_numbers(image: str | os.PathLike[str]) -> tuple[Any, str]:
    """The image tokenizer's config (the default one when there is no checkpoint) and where it came from."""
    folder = _folder(image)
    if folder is None:
        return default_config("image"), f"no image tokenizer at {image}: default ImageTokenizerConfig"
    return load_config(folder, kind="image"), f"read from {folder / CONFIG_NAME}"


def _audio_rate(audio: str | os.PathLike[str] | None) -> tuple[float, str]:
    """Tokens per second of the audio tokenizer (0 when there is none), and a note."""
    folder = None if audio is None else _folder(audio)
    if folder is None:
        return 0.0, f"none (no audio tokenizer at {audio})"
    rate = load_config(folder, kind="audio").tokens_per_second  # the tokenizer's own rule, its weights not read
    return float(rate), (f"{rate} tokens/s read from {folder / CONFIG_NAME}, with <boa> <eoa> around the soundtrack; "
                         "a video cut by chunk_seconds adds <bov> <eov> <boa> <eoa> per further chunk "
                         "(counted with chunk_seconds, --chunk-seconds)")


def shipped_preset(image: str | os.PathLike[str] = "image",
                   audio: str | os.PathLike[str] | None = "audio") -> Preset:
    """The ``"mmtok"`` :class:`~mmtok.context.presets.Preset` of an image and an audio tokenizer.

    ``image`` and ``audio`` are shipped names or checkpoint folders (their configs are
    read, not their weights). Without an image checkpoint the default
    ``ImageTokenizerConfig`` gives the rate; without an audio one (or ``audio=None``)
    the video has no soundtrack tokens. The preset's ``source`` and ``note`` say which. It carries the
    image tokenizer's ``size_policy`` and, for ``"native"``, :func:`~mmtok.image.sizes.working_size`: planned
    anywhere, a frame longer than ``MAX_SIDE`` on its long side is counted at the size the tokenizer reduces it to.
    """
    cfg, where = _image_numbers(image)
    audio_rate, sound = _audio_rate(audio)
    note = (f"image_size {cfg.image_size}, downsample {cfg.downsample}, size_policy {cfg.size_policy!r} ({where}); "
            f"per frame: codes + one <eol> per row + <eof>; <bov> <eov> per video; soundtrack: {sound}")
    return mmtok_preset(
        image_size=None if cfg.size_policy == "native" else cfg.image_size, downsample=cfg.downsample,
        audio_tokens_per_second=audio_rate, source=f"mmtok's own image tokenizer ({where}) and audio tokenizer",
        note=note, size_policy=cfg.size_policy, working_size=working_size if cfg.size_policy == "native" else None,
    )


def shipped_vocab(image: str | os.PathLike[str] = "image",
                  audio: str | os.PathLike[str] | None = "audio") -> tuple[int, str]:
    """The vocabulary size of the shards ``mmtok tokenize`` makes of videos with their soundtracks, and how
    it is made up: byte-level text, the special tokens, the video tokenizer's codes (the image tokenizer's, on
    every frame) and the audio tokenizer's (none without one), read from their configs, not their weights.

    >>> size, parts = shipped_vocab(audio=None)
    >>> parts.startswith("256 bytes + 32 special + ")
    True
    """
    cfg, _ = _image_numbers(image)
    ranges = {"video": int(cfg.vq.codebook_size)}  # VideoTokenizer(temporal="none"): the image codes
    folder = None if audio is None else _folder(audio)
    if folder is not None:
        ranges["audio"] = int(load_config(folder, kind="audio").vq.codebook_size)
    vocab = Vocabulary(ByteTokenizer.vocab_size, ranges=ranges)
    parts = " + ".join(f"{len(vocab.range(k)):,} {k}" for k in vocab.media)
    return vocab.size, f"{vocab.text_size} bytes + {vocab.n_special} special + {parts}: mmtok's shards of such video"


def plan(
    duration_s: float,
    *,
    preset: str | Preset = "mmtok",
    image: str | os.PathLike[str] = "image",
    audio: str | os.PathLike[str] | None = "audio",
    fps: float | None = None,
    resolution: tuple[int, int] | int | None = None,
    downsample: int | None = None,
    tokens_per_frame_overhead: int | None = None,
    audio_tokens_per_second: float | None = None,
    model: str | ModelConfig = "small",
    kv_dtype: str = "bf16",
    chunk_seconds: float | None = None,
) -> ContextPlan:
    """:func:`mmtok.context.planner.plan`, where ``preset="mmtok"`` (the default) is :func:`shipped_preset`.

    ``image`` and ``audio`` (shipped names or checkpoint folders) are the tokenizers
    the ``"mmtok"`` preset is read from, and whose codes make up the vocabulary a model
    size is priced with (:func:`shipped_vocab`, whatever the preset: the model is mmtok's,
    trained on mmtok's shards); the other arguments are the planner's. When that image
    tokenizer's size policy is ``"native"``, a ``resolution`` longer than ``MAX_SIDE`` on its
    long side is counted at the size the tokenizer reduces such frames to
    (:func:`~mmtok.image.sizes.working_size`), and the plan's note says so (as it is for any
    :func:`shipped_preset` passed as ``preset``).

    >>> p = plan(600, preset="mmtok")
    >>> p.preset, p.frames, p.total_tokens == p.video_tokens + p.audio_tokens
    ('mmtok', 600, True)
    """
    if isinstance(preset, str) and preset == "mmtok":
        preset = shipped_preset(image, audio)
    vocab_size, vocab_source = shipped_vocab(image, audio) if not isinstance(model, ModelConfig) else (None, "")
    return planner.plan(  # checks every number, the resolution too
        duration_s, preset=preset, fps=fps, resolution=resolution, downsample=downsample,
        tokens_per_frame_overhead=tokens_per_frame_overhead, audio_tokens_per_second=audio_tokens_per_second,
        model=model, kv_dtype=kv_dtype, vocab_size=vocab_size, vocab_source=vocab_source, chunk_seconds=chunk_seconds,
    )
