"""The command line of ``mmtok train-tokenizer audio`` checked before any work, each refusal one line
naming the flag (``parser.error``: exit 2): every number finite and in range (:func:`check_numbers`),
options at odds with each other (:func:`check_args`), and what a fresh run's tokenizer needs
(:func:`check_fresh_run`). What ``--resume`` may change is :func:`mmtok.audio.train_init.take_run_settings`'s."""

from __future__ import annotations

import argparse
import math

from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.train_data import is_cache
from mmtok.core.trainstate import check_run_options

__all__ = ["INIT_ARCH_ARGS", "NUMBER_RULES", "check_args", "check_fresh_run", "check_numbers", "meets"]

INIT_ARCH_ARGS = ("encoder", "codebook_size", "code_dim", "encoder_channels", "decoder_channels")  # --init-from's own
# every numeric option but those check_run_options checks (--steps, --batch-size, --save-every, --warmup, --lr):
# the range its value must lie in; a value left out (None) is not checked
NUMBER_RULES = {
    "crop_tokens": ">= 1", "codebook_size": ">= 2", "code_dim": ">= 1", "encoder_channels": ">= 1",
    "decoder_channels": ">= 1", "encoder_blocks": ">= 1", "decoder_blocks": ">= 1", "kmeans_vectors": ">= 1",
    "kmeans_iters": ">= 0", "kmeans_balance": ">= 0", "kmeans_min_groups": ">= 1", "val_clips": ">= 0",
    "synthetic": ">= 0", "threads": ">= 1", "seed": "in [0, 4294967295]",
    "dead_code_rate": "in [0, 1)", "val_fraction": "in [0, 1)", "synthetic_share": "in (0, 1)",
    "synthetic_tones": "in [0, 1]", "gain_prob": "in [0, 1]", "gain_db": ">= 0", "mse_weight": ">= 0",
    "compressed_weight": ">= 0", "envelope_weight": ">= 0",
}


def meets(value: float, rule: str) -> bool:
    """Whether ``value`` is a finite number that obeys ``rule`` (``">= 1"``, ``"> 0"`` or an interval such
    as ``"in [0, 1)"``); NaN and infinities never do.

    >>> meets(0.5, "in [0, 1)"), meets(1.0, "in [0, 1)"), meets(float("nan"), ">= 0"), meets(3, ">= 1")
    (True, False, False, True)
    """
    if not math.isfinite(value):
        return False
    if rule.startswith("in "):
        lo, hi = (float(x) for x in rule[4:-1].split(","))
        above = lo <= value if rule[3] == "[" else lo < value
        return above and (value <= hi if rule[-1] == "]" else value < hi)
    op, bound = rule.split()
    return value >= float(bound) if op == ">=" else value > float(bound)


def check_numbers(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every numeric option finite and in its range (:data:`NUMBER_RULES`, and ``check_run_options``'s),
    else ``parser.error`` naming the flag, the value and what to give instead."""
    check_run_options(parser, args)
    actions = {a.dest: a for a in parser._actions}
    for dest, rule in NUMBER_RULES.items():
        value = getattr(args, dest)
        if value is None or meets(value, rule):
            continue
        action = actions[dest]
        flag, whole = action.option_strings[0], action.type is int
        phrase = f"at least {rule.split()[1]}" if whole and rule.startswith(">=") else rule
        default = "" if action.default is None else f" (default: {action.default})"
        parser.error(f"{flag} must be {phrase} (got {value}); give {flag} {rule} "
                     f"({'a whole number' if whole else 'a finite number'}) or leave the flag out{default}")


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every option out of range or at odds with another, refused in one line (exit 2) before any work."""
    check_numbers(parser, args)
    if args.decoder_only and not (args.init_from or args.resume):
        parser.error("--decoder-only trains on the codes of another tokenizer: give --init-from (or --resume a run)")
    if args.decoder_only and (args.encoder_blocks is not None or args.dead_code_rate):
        parser.error("--decoder-only keeps the encoder and codebook as they are: drop --encoder-blocks and --dead-code-rate")
    if args.init_from:
        given = [f"--{a.replace('_', '-')}" for a in INIT_ARCH_ARGS if getattr(args, a) != parser.get_default(a)]
        if given:
            parser.error(f"--init-from {args.init_from} keeps that tokenizer's architecture and codebook size; "
                         f"leave out {', '.join(given)}")
    if args.synthetic and not is_cache(args.data):
        parser.error(f"--synthetic mixes synthetic clips into an audio cache; {args.data} is a folder (its corpus "
                     "already has synthetic clips: --make-data builds them)")


def check_fresh_run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What a run that starts here (not resumed, not ``--init-from``) needs of its sizes: the "slice"
    encoder's codes are a token's log-mel frames, so ``--code-dim`` is theirs, and its k-means needs
    at least one training vector per code."""
    if args.init_from or args.encoder != "slice":
        return
    cfg = AudioTokenizerConfig()
    frames = cfg.frames_per_token * cfg.n_mels
    if args.code_dim is not None and args.code_dim != frames:
        parser.error(f"--code-dim {args.code_dim}: the slice encoder's codes are a token's {cfg.frames_per_token} "
                     f"log-mel frames, {frames} numbers; leave --code-dim out (or give --encoder conv)")
    if args.kmeans_vectors < args.codebook_size:
        parser.error(f"--kmeans-vectors {args.kmeans_vectors} is fewer than the {args.codebook_size} codes "
                     f"(--codebook-size) it fits; give --kmeans-vectors {args.codebook_size} or more")
