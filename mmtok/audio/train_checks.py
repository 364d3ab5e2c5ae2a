"""The command line of ``mmtok train-tokenizer audio`` checked before any work, each refusal one line
naming the flag (``parser.error``: exit 2): every number finite and in range, and the arrays the numbers ask
for within this machine's memory (:func:`check_numbers`),
options at odds with each other (:func:`check_args`), what a fresh run's tokenizer needs
(:func:`check_fresh_run`), and ``--band-weight`` bands that hold a mel channel of the tokenizer trained
(:func:`check_bands`, which gives the channels' weights). What ``--resume`` may change is
:func:`mmtok.audio.train_init.take_run_settings`'s."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

import torch

from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.corpus import SYNTHETIC_MEMORY
from mmtok.audio.features import mel_centres
from mmtok.audio.losses import channel_weights
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.train_data import is_cache
from mmtok.audio.train_init import GROWABLE, build_config
from mmtok.core.checkpoint import MAX_CONFIG_INT, config_from_dict, read_config
from mmtok.core.checkpoint_names import resolve_checkpoint
from mmtok.core.errors import MmtokError
from mmtok.core.limits import FLOAT32, MemoryUse, memory_refusal, training_bytes
from mmtok.core.ranges import FLOAT32_AT_LEAST_0, SEED, THREADS, Range, iterations, out_of_range
from mmtok.core.resume import check_decoder_only
from mmtok.core.run_folder import holds_train_state, run_model
from mmtok.core.trainstate import check_run_options, options_given

__all__ = ["INIT_ARCH_ARGS", "MEMORY_USES", "NUMBER_RULES", "check_args", "check_bands", "check_fresh_run",
           "check_numbers", "memory_uses"]

INIT_ARCH_ARGS = ("encoder", "codebook_size", "code_dim", "encoder_channels", "decoder_channels")  # --init-from's own
# every numeric option but those check_run_options checks (--steps, --batch-size, --save-every, --warmup, --lr):
# the range its value must lie in; a value left out (None) is not checked
NUMBER_RULES: dict[str, Range] = {
    # the tokenizer's sizes: its config is saved, and a checkpoint's config holds no larger number
    **dict.fromkeys(("code_dim", "encoder_channels", "decoder_channels", "encoder_blocks", "decoder_blocks"),
                    Range(1, MAX_CONFIG_INT, why="the largest size a checkpoint's config holds")),
    "codebook_size": Range(2, MAX_CONFIG_INT, why="the largest size a checkpoint's config holds"),
    **dict.fromkeys(("crop_tokens", "kmeans_vectors", "kmeans_min_groups"), Range(1)),
    **dict.fromkeys(("kmeans_iters", "kmeans_balance"), iterations(0)),
    **dict.fromkeys(("val_clips", "synthetic", "gain_db"), Range(0)),
    **dict.fromkeys(("mse_weight", "compressed_weight", "envelope_weight"), FLOAT32_AT_LEAST_0),  # the loss is float32
    "threads": THREADS, "seed": SEED,
    **dict.fromkeys(("dead_code_rate", "val_fraction"), Range(0, 1, high_open=True)),
    "synthetic_share": Range(0, 1, low_open=True, high_open=True),
    **dict.fromkeys(("synthetic_tones", "gain_prob"), Range(0, 1)),
}


def _model_bytes(args: argparse.Namespace, source: AudioTokenizerConfig | None = None) -> float:
    """Bytes of the tokenizer the options describe while it trains (:func:`~mmtok.core.limits.training_bytes`);
    with ``source`` (the ``--init-from`` tokenizer's config), that tokenizer grown by this command line's
    ``--encoder-blocks`` / ``--decoder-blocks``."""
    base = source or AudioTokenizerConfig()
    counts = {arg: getattr(args, arg) if getattr(args, arg) is not None else getattr(base, name)
              for arg, (name, _) in GROWABLE.items()}
    if source is None:
        return training_bytes(lambda **blocks: AudioTokenizer(build_config(argparse.Namespace(**{**vars(args),
                                                                                                 **blocks}))),
                              repeats=counts)
    return training_bytes(lambda **blocks: AudioTokenizer(dataclasses.replace(
        source, vocoder=None, **{GROWABLE[arg][0]: n for arg, n in blocks.items()})), repeats=counts)


def memory_uses(source: AudioTokenizerConfig | None = None) -> tuple[MemoryUse, ...]:
    """What the options ask for at once, each a lower bound of what the run allocates (memory_refusal), on the
    default front end and sizes, or with ``source`` on the ``--init-from`` tokenizer's (its mel channels and
    frames per token, its widths and blocks)."""
    front = source or AudioTokenizerConfig()
    crop = 3.0 * front.n_mels * front.frames_per_token * FLOAT32  # a crop, its target and reconstruction per token
    return (
        MemoryUse("one batch of log-mel crops, their targets and reconstructions (float32)",
                  ("batch_size", "crop_tokens"), lambda a: a.batch_size * a.crop_tokens * crop),
        MemoryUse("the tokenizer with its gradients and AdamW's moments", ("codebook_size", "code_dim",
                  "encoder_channels", "decoder_channels", "encoder_blocks", "decoder_blocks"),
                  lambda a: _model_bytes(a, source)),
        SYNTHETIC_MEMORY,
    )


MEMORY_USES = memory_uses()


def _source_config(init_from: str) -> AudioTokenizerConfig | None:
    """The ``--init-from`` tokenizer's config, read from its ``config.json`` alone (no weights); None where it
    cannot be read here (loading it names what is wrong)."""
    try:
        meta = read_config(resolve_checkpoint(init_from), kind="audio")
        return config_from_dict(AudioTokenizerConfig, meta["config"])
    except (MmtokError, OSError, KeyError, TypeError, ValueError):
        return None


def check_numbers(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every numeric option finite and in its range (:data:`NUMBER_RULES`, and ``check_run_options``'s), and what
    they ask for at once within this machine's memory (:data:`MEMORY_USES`), else ``parser.error`` naming the
    flag, the value and what to give instead."""
    check_run_options(parser, args)
    refused = out_of_range(parser, args, NUMBER_RULES) or memory_refusal(
        parser, args, MEMORY_USES, lows={k: r.low for k, r in NUMBER_RULES.items()})
    if refused:
        parser.error(refused)


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every option out of range or at odds with another, refused in one line (exit 2) before any work; a run
    folder given as ``--init-from`` is read as its model (RUN/model)."""
    check_numbers(parser, args)
    if args.init_from is not None:
        args.init_from = run_model(args.init_from, flag="--init-from")
        source = _source_config(args.init_from)
        refused = source and memory_refusal(parser, args, memory_uses(source),
                                            lows={k: r.low for k, r in NUMBER_RULES.items()})
        if refused:  # the tokenizer it starts from has more mel channels or larger blocks than the defaults
            parser.error(f"{refused} (with --init-from {args.init_from})")
    check_decoder_only(parser, args, resumable=holds_train_state(args.out))
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


def check_bands(parser: argparse.ArgumentParser, args: argparse.Namespace, cfg: AudioTokenizerConfig,
                argv: Sequence[str]) -> torch.Tensor | None:
    """The ``[M, 1]`` weights of the mel channels of ``cfg``, the tokenizer the run trains (fresh, ``--init-from`` or
    resumed: its ``n_mels``, ``f_min`` and ``f_max``), in the log-mel L1 and squared error by ``--band-weight``
    (:func:`channel_weights`; None without bands). Each band given on the command line ``argv`` holds the centre
    of at least one channel, else ``parser.error`` naming the centres nearest it: a band with none would weigh
    nothing. A resumed run's own bands (the flag left out) go on as it recorded them: a band with no channel is
    said on stderr, once, and weighs nothing, as in the steps the run took."""
    if not args.band_weight:
        return None
    recorded = args.resume and "band_weight" not in options_given(parser, argv)
    centres = mel_centres(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
    weighed = []
    for band in args.band_weight:
        try:
            channel_weights([band], centres)
        except ValueError as e:
            if not recorded:
                parser.error(f"{e}; the tokenizer's {cfg.n_mels} mel channels lie between f_min {cfg.f_min:g} and "
                             f"f_max {cfg.f_max:g} Hz")
            print(f"--resume {args.out}: the run's {e}: it weighs nothing, as in the steps the run took",
                  file=sys.stderr)
            continue
        weighed.append(band)
    return channel_weights(weighed, centres)
