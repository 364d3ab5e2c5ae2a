"""How an audio training run gets its tokenizer: from the command line (:func:`build_config`),
from a saved tokenizer (``--init-from``: :func:`init_source`), which ``--encoder-blocks`` /
``--decoder-blocks`` may grow by residual blocks that start as the identity (:func:`load_grown`),
or, on ``--resume``, from the run's own train-state (:func:`resume_source`)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mmtok.audio.config import DEFAULT_VQ, AudioTokenizerConfig
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.checkpoint import config_from_dict, read_config
from mmtok.core.errors import TrainingError
from mmtok.core.module_io import load_module
from mmtok.core.resume import said
from mmtok.core.resume import take_run_settings as resume_settings
from mmtok.core.trainstate import options_given
from mmtok.vq.config import VQConfig

__all__ = ["GROWABLE", "RESUME_FREE", "RESUME_KEPT", "RESUME_MAY_CHANGE", "RUN_ARCH", "build_config", "init_source",
           "load_grown", "resume_source", "run_settings", "settings_record", "take_run_settings"]

COMMAND = "mmtok train-tokenizer audio"  # how the provenance's command line starts

# --encoder-blocks / --decoder-blocks: the config field each sets, and where its blocks sit in the weights
GROWABLE = {"encoder_blocks": ("encoder_token_blocks", "encoder.token_blocks."),
            "decoder_blocks": ("decoder_blocks", "decoder.blocks.")}
# --resume: the options that are the run's tokenizer, read back from its config (option -> field path)
RUN_ARCH = {"encoder": ("encoder_kind",), "codebook_size": ("vq", "codebook_size"), "code_dim": ("code_dim",),
            "encoder_channels": ("encoder_channels",), "decoder_channels": ("decoder_channels",),
            "encoder_blocks": ("encoder_token_blocks",), "decoder_blocks": ("decoder_blocks",),
            "dead_code_rate": ("vq", "dead_code_rate")}
# the options a resume may change: where the data and the run are, how often it saves, the machine, the display
# (--steps may grow); every other one keeps the run's value
RESUME_FREE = ("data", "out", "make_data", "resume", "save_every", "threads", "device", "no_progress")
RESUME_MAY_CHANGE = ("save_every", "threads", "device")  # of those, the settings a refusal says may change
RESUME_KEPT = ("save_every", "threads")  # of those, the ones the run records: left out, a resume takes the run's


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


def resume_source(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str],
                  state: Path) -> tuple[AudioTokenizerConfig, dict[str, Any]] | None:
    """``--resume`` of a run whose train-state exists: the config the run was built with (its
    architecture, K and any growth, so the command line need not repeat ``--init-from`` or the
    sizes) and the run's provenance (its ``command``, its ``init_from`` note). ``args`` then hold
    the run's own settings (:func:`take_run_settings`). ``None`` when there is nothing to resume."""
    if not (args.resume and (state / "config.json").is_file()):
        return None
    meta = read_config(state, kind="audio")  # a clear error for a broken or foreign state
    cfg = config_from_dict(AudioTokenizerConfig, meta["config"], where=str(state / "config.json"))
    take_run_settings(parser, args, argv, cfg, meta)
    return cfg, dict(meta.get("provenance") or {})


def settings_record(args: argparse.Namespace) -> dict[str, Any]:
    """What a run's train-state keeps of its command line, for ``--resume``: every option but the
    tokenizer's sizes (its config holds them) and those a resume may change (:data:`RESUME_FREE`), of which
    it keeps :data:`RESUME_KEPT`."""
    return {k: v for k, v in vars(args).items()
            if k not in RUN_ARCH and (k not in RESUME_FREE or k in RESUME_KEPT)}


def run_settings(parser: argparse.ArgumentParser, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The settings a run's train-state was saved with (:func:`settings_record`); for a state saved
    before they were recorded, those of the command line in its provenance; None if neither is there."""
    extra = (meta.get("train") or {}).get("extra") or {}
    if isinstance(extra.get("settings"), dict):
        return extra["settings"]
    command = str((meta.get("provenance") or {}).get("command") or "")
    if not command.startswith(COMMAND + " "):
        return None
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            settings = vars(parser.parse_args(shlex.split(command)[len(COMMAND.split()):]))
    except (SystemExit, ValueError):
        return None
    if settings["init_from"] is None and (meta.get("provenance") or {}).get("init_from"):
        del settings["init_from"]  # a resume's command line, which need not have repeated it: unknown
    return settings


def _show(dest: str, value: Any) -> str:
    if dest == "band_weight" and value is not None:  # as the flag is written: 0-500:2.5
        return " ".join(f"{lo:g}-{hi:g}:{w:g}" for lo, hi, w in value) or "none"
    return said(dest, value)


def take_run_settings(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str],
                      cfg: AudioTokenizerConfig, meta: dict[str, Any]) -> None:
    """``--resume``: every option left out of ``argv`` takes the run's own value (its sizes from ``cfg``, its
    other settings from :func:`run_settings`), by :func:`mmtok.core.resume.take_run_settings`'s rule: one given
    with another value is refused in one line, and so is a ``--steps`` below the step reached. ``--save-every``
    and ``--threads`` may change; left out, they are the run's own too (:data:`RESUME_KEPT`).
    ``--decoder-only`` left out is the run's too; given to a run started without it, it is refused by the same
    rule (``--decoder-only (the run's: no --decoder-only)``)."""
    where, given = args.out, options_given(parser, argv)
    prov, reached = meta.get("provenance") or {}, int((meta.get("train") or {}).get("step", 0))
    run = {dest: _config_value(cfg, path) for dest, path in RUN_ARCH.items()}
    saved = run_settings(parser, meta) or {}
    run.update({k: v for k, v in saved.items() if k in vars(args) and k not in RUN_ARCH
                and k not in RESUME_FREE and k not in ("steps", "decoder_only")})
    run["decoder_only"] = bool(prov.get("decoder_only"))  # the provenance says it for every run, old ones too
    kept = {k: saved[k] for k in RESUME_KEPT if k in saved}  # may change; left out, the run's own
    resume_settings(args, given, {**run, **kept, "steps": saved.get("steps")}, where=str(where), reached=reached,
                    fixed=run, free=RESUME_MAY_CHANGE, show=_show)
    if args.band_weight is not None:
        args.band_weight = [tuple(b) for b in args.band_weight]


def _config_value(cfg: AudioTokenizerConfig, path: tuple[str, ...]) -> Any:
    value: Any = cfg
    for name in path:
        value = getattr(value, name)
    return value


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
