"""The published video tokenizers' token rates, as data: :class:`Preset` and :data:`PRESETS`.

A :class:`Preset` is a tokenizer's numbers (frames per second, the size frames are
tokenized at, pixels per token side, frames per latent frame, separators);
:mod:`~mmtok.context.planner` does the arithmetic on them and checks them.

>>> PRESETS["lwm"].tokens_per_frame_overhead, PRESETS["cosmos"].temporal
(1, 8)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CUSTOM_SOURCE", "PRESETS", "PRESET_NAMES", "Preset", "presets_help"]


@dataclass(frozen=True)
class Preset:
    """A video tokenizer's token rate: a fixed count per frame, or a grid of downsampled patches."""

    name: str
    source: str  # where the published figure comes from
    fps: float = 1.0  # frame rate the preset samples at by default
    resolution: tuple[int, int] | None = (256, 256)  # (H, W) frames are resized to; None: fixed count
    downsample: int = 16  # pixels per token side
    temporal: int = 1  # frames per latent frame (tubelet depth); 1 = per-frame tokens
    causal_first_frame: bool = False  # the first frame is a latent frame of its own (Cosmos, MAGVIT-2)
    fixed_tokens_per_frame: int | None = None  # a count independent of resolution (Gemini)
    fixed_size: str = ""  # why every frame is brought to ``resolution`` whatever its size ("": it is a knob)
    tokens_per_row: int = 0  # separators per token row (mmtok's <eol>)
    tokens_per_frame_overhead: int = 0  # separators per (latent) frame (LWM's, mmtok's <eof>)
    tokens_per_video: int = 0  # markers per video (<bov> <eov>)
    audio_tokens_per_second: float = 0.0  # soundtrack tokens per second of video
    tokens_per_audio: int = 0  # markers around a soundtrack that has tokens (mmtok's <boa> <eoa>)
    note: str = ""  # how the figures were obtained
    size_policy: str | None = None  # the image tokenizer's size policy (mmtok's); None: a published rate's own
    # (width, height) -> the size a "native" size policy reduces a frame to (a plan counts its frames there)
    working_size: Callable[[int, int], tuple[int, int]] | None = None
    fixed_downsample: str = ""  # why ``downsample`` is not a knob (mmtok's: its image tokenizer's); "": it is one
    # None: one piece; else the video is cut into chunks of this many seconds (rounded to whole frames, half up,
    # at least one), each with its own tokens_per_video and tokens_per_audio markers (mmtok's "chunk_seconds")
    chunk_seconds: float | None = None


PRESETS: dict[str, Preset] = {
    "gemini": Preset(
        "gemini",
        "Google AI, Gemini API docs 'Video understanding' / 'Understand and count tokens' "
        "(ai.google.dev/gemini-api/docs): video at 1 fps, 258 tokens per frame, audio 32 tokens/s",
        fps=1.0, resolution=None, fixed_tokens_per_frame=258, audio_tokens_per_second=32.0,
        note="frames and audio only: the timestamps and other metadata the API adds (the same docs put the whole "
             "at about 300 tokens per second) are not counted",
    ),
    "lwm": Preset(
        "lwm",
        "Liu et al. 2024, 'World Model on Million-Length Video and Language with Blockwise "
        "RingAttention' (arXiv:2402.08268): VQGAN, 256 codes per 256x256 frame + 1 separator",
        fps=1.0, resolution=(256, 256), downsample=16, tokens_per_frame_overhead=1,
    ),
    "chameleon": Preset(
        "chameleon",
        "Chameleon Team 2024, 'Chameleon: Mixed-Modal Early-Fusion Foundation Models' "
        "(arXiv:2405.09818): 1,024 tokens per 512x512 image (16x downsampling, 8,192 codes)",
        fps=1.0, resolution=(512, 512), downsample=16,
        note="an image model: each sampled frame counted as one 512x512 image of the paper's 1,024 codes, without "
             "the begin/end-of-image tokens around it",
    ),
    "cosmos": Preset(
        "cosmos",
        "NVIDIA 2025, 'Cosmos World Foundation Model Platform' (arXiv:2501.03575), Cosmos-Tokenizer "
        "DV8x16x16: 8x temporal, 16x16 spatial compression, 256 tokens per 8 frames at 256x256",
        fps=24.0, resolution=(256, 256), downsample=16, temporal=8, causal_first_frame=True,
    ),
}
PRESET_NAMES = (*PRESETS, "mmtok", "custom")  # what mmtok.plan's and ``mmtok context``'s preset takes by name
MMTOK_HELP = ("mmtok: our shipped image tokenizer's rate, read from models/image/config.json "
              "(else the default ImageTokenizerConfig) and the shipped audio tokenizer's (models/audio); "
              "the plan's source says which")
CUSTOM_SOURCE = "your arguments: resolution, downsample, overheads"


def presets_help() -> str:
    """One line per preset with its source, ``mmtok`` and ``custom`` included (for ``mmtok context --help``)."""
    lines = [f"{name}: {p.source}" for name, p in PRESETS.items()]
    return "\n".join([*lines, MMTOK_HELP, "custom: only your --resolution, --downsample and overheads"])
