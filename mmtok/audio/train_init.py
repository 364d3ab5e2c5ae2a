"""How an audio training run gets its tokenizer: from the command line (:func:`build_config`),
from a saved tokenizer (``--init-from``: :func:`init_source`), which ``--encoder-blocks`` /
``--decoder-blocks`` may grow by residual blocks that start as the identity (:func:`load_grown`),
or, on ``--resume``, from the run's own train-state (:func:`resume_source`)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import torch

from mmtok.audio.config import DEFAULT_VQ, AudioTokenizerConfig
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.checkpoint import config_from_dict, read_config
from mmtok.core.errors import TrainingError
from mmtok.core.module_io import load_module
from mmtok.vq.quantizer import VQConfig

__all__ = ["GROWABLE", "build_config", "init_source", "load_grown", "resume_source"]

# --encoder-blocks / --decoder-blocks: the config field each sets, and where its blocks sit in the weights
GROWABLE = {"encoder_blocks": ("encoder_token_blocks", "encoder.token_blocks."),
            "decoder_blocks": ("decoder_blocks", "decoder.blocks.")}


def init_source(args: argparse.Namespace) -> tuple[AudioTokenizerConfig, dict[str, torch.Tensor], str]:
    """``--init-from``: the source tokenizer's config (no vocoder; ``--dead-code-rate`` from the
    command line; more encoder or decoder blocks where ``--encoder-blocks`` / ``--decoder-blocks``
    ask for them), its weights without the vocoder's, and what it is (for the provenance)."""
    src = load_module(AudioTokenizer, args.init_from)
    grow: dict[str, int] = {}
    for arg, (name, _) in GROWABLE.items():
        want, have = getattr(args, arg), getattr(src.cfg, name)
        if want is not None and want != have:
            if want < have or (name == "encoder_token_blocks" and src.cfg.encoder_kind != "conv"):
                raise TrainingError(f"--{arg.replace('_', '-')} {want}: --init-from {args.init_from} has {have} "
                                    f"(a tokenizer may only grow; {src.cfg.encoder_kind!r} encoder)")
            grow[name] = want
    cfg = dataclasses.replace(src.cfg, vocoder=None, **grow,
                              vq=dataclasses.replace(src.cfg.vq, dead_code_rate=args.dead_code_rate))
    weights = {k: v for k, v in src.state_dict().items() if not k.startswith("vocoder.")}
    version = (getattr(src, "provenance", None) or {}).get("model_version")
    note = f"{args.init_from} ({version})" if version else str(args.init_from)
    for name, n in grow.items():
        note += f"; {name} {getattr(src.cfg, name)} -> {n} (new blocks start as the identity)"
    return cfg, weights, note


def resume_source(args: argparse.Namespace, state: Path) -> tuple[AudioTokenizerConfig, dict[str, Any]] | None:
    """``--resume`` of a run whose train-state exists: the config the run was built with (its
    architecture, K and any growth, so the command line need not repeat ``--init-from`` or the
    sizes; ``--dead-code-rate`` from the command line, as on a fresh start) and the run's
    provenance (its ``init_from`` note, whether it is ``decoder_only``). ``None`` when there is
    nothing to resume."""
    if not (args.resume and (state / "config.json").is_file()):
        return None
    meta = read_config(state, kind="audio")  # a clear error for a broken or foreign state
    cfg = config_from_dict(AudioTokenizerConfig, meta["config"], where=str(state / "config.json"))
    cfg = dataclasses.replace(cfg, vq=dataclasses.replace(cfg.vq, dead_code_rate=args.dead_code_rate))
    return cfg, dict(meta.get("provenance") or {})


@torch.no_grad()
def load_grown(tok: AudioTokenizer, weights: dict[str, torch.Tensor]) -> list[str]:
    """Load ``weights`` into ``tok``, which may have more encoder or decoder blocks than they hold.

    Each extra residual block gets its second convolution set to zero, so it passes its input
    through (the encoder's crops it to the same frames as before): the grown tokenizer gives the
    source's codes and log-mel until training moves it. Returns the extra blocks' prefixes.
    """
    missing, unexpected = tok.load_state_dict(weights, strict=False)
    blocks = sorted({".".join(k.split(".")[:3]) for k in missing})
    if unexpected or any(not k.startswith(tuple(pre for _, pre in GROWABLE.values())) for k in missing):
        raise TrainingError(f"--init-from weights do not fit this tokenizer: missing {missing[:4]}, "
                            f"unexpected {unexpected[:4]}")
    modules = dict(tok.named_modules())
    for prefix in blocks:
        conv2 = modules[prefix].conv2
        conv2.weight.zero_()
        conv2.bias.zero_()
    return blocks


def build_config(args: argparse.Namespace) -> AudioTokenizerConfig:
    """The tokenizer's config from the command line: the "slice" encoder with k-means codes,
    or the "conv" encoder with a cosine codebook searched through 16-dimensional projections."""
    conv = args.encoder == "conv"
    code_dim = args.code_dim or (64 if conv else 2 * 80)
    vq = VQConfig(**{**DEFAULT_VQ, "dim": code_dim, "codebook_size": args.codebook_size, "cosine": conv,
                     "codebook_dim": 16 if conv else None, "dead_code_rate": args.dead_code_rate})
    blocks = {name: getattr(args, arg) for arg, (name, _) in GROWABLE.items() if getattr(args, arg) is not None}
    return AudioTokenizerConfig(encoder_kind=args.encoder, code_dim=code_dim, encoder_channels=args.encoder_channels,
                                decoder_channels=args.decoder_channels, vq=vq, **blocks)
