"""Shared by the audio tests: a small conv-encoder tokenizer config (64 codes of 8-d cosine lookups, blocks of 100
tokens), fast to build and to run."""

from __future__ import annotations

import torch

from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.vq.config import VQConfig


def small_config(**kw: object) -> AudioTokenizerConfig:
    """The small config; ``kw`` replaces its fields (``vq_kw`` its quantizer's)."""
    vq_kw = dict(kw.pop("vq_kw", {}))  # type: ignore[call-overload]
    base: dict[str, object] = dict(encoder_kind="conv", code_dim=16, encoder_channels=32, decoder_channels=32,
                                   decoder_blocks=2, block_tokens=100,
                                   vq=VQConfig(**{"dim": 16, "codebook_size": 64, "cosine": True, "codebook_dim": 8,
                                                  **vq_kw}))
    base.update(kw)
    return AudioTokenizerConfig(**base)  # type: ignore[arg-type]


def small_tokenizer(**kw: object) -> AudioTokenizer:
    """A seeded tokenizer of :func:`small_config` (``kw`` as there), in eval mode."""
    torch.manual_seed(0)
    return AudioTokenizer(small_config(**kw)).eval()
