"""What fixes a vocoder run, shared by the checks made before it (:mod:`mmtok.audio.vocoder_checks`) and
the run itself (:mod:`mmtok.audio.vocoder_run`): the run folder's names, the options ``--resume`` keeps
(:data:`RESUME_FIXED`, :func:`run_settings`), the sizes of a segment and of a discriminator window, and the
vocoder a run starts from (:func:`initial_vocoder`; :func:`~mmtok.core.checkpoint_names.checkpoint_source` records
it). The command and the layout are described in :mod:`mmtok.audio.vocoder_train`.
"""

from __future__ import annotations

import argparse
from typing import Any

from mmtok.audio.attach import load_vocoder
from mmtok.audio.discriminator import RESOLUTIONS
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.vocoder import Vocoder
from mmtok.audio.vocoder_config import VocoderConfig
from mmtok.core.checkpoint_names import checkpoint_source
from mmtok.core.errors import CheckpointError, UsageError

__all__ = [
    "BASELINE_NAME",
    "BEST_BY",
    "BEST_DIR",
    "BEST_TOKENIZER_DIR",
    "DISC_MIN_SAMPLES",
    "FEATURES",
    "LOG_NAME",
    "MODEL_DIR",
    "RESUME_FIXED",
    "RESUME_KEPT",
    "RUN_FILE_KEYS",
    "STATE_DIR",
    "TOKENIZER_DIR",
    "VALIDATION_NAME",
    "disc_window",
    "initial_vocoder",
    "run_settings",
    "segment_samples",
]

STATE_DIR, MODEL_DIR, BEST_DIR = "train-state", "model", "best"
LOG_NAME, VALIDATION_NAME, BASELINE_NAME = "log.jsonl", "validation.jsonl", "griffin-lim.json"
# the files a run writes before its first checkpoint, each with the keys every row (or the object) of it has
RUN_FILE_KEYS = {LOG_NAME: ("step", "loss", "mel_l1", "s_per_step"), VALIDATION_NAME: ("step", "mel_l1", "griffin_lim"),
                 BASELINE_NAME: ("clips", "files")}
TOKENIZER_DIR, BEST_TOKENIZER_DIR = "tokenizer", "best-tokenizer"  # written by --train-decoder runs
BEST_BY = ("mel_l1", "stoi", "pesq_wb")  # what picks best/: the lowest log-mel L1, or the highest STOI / PESQ
FEATURES = ("true", "decoded")  # what the vocoder reads: the true log-mel (stage 1) or the tokenizer's (stage 2)
DISC_MIN_SAMPLES = max(n_fft for n_fft, _ in RESOLUTIONS)  # a discriminator window holds its longest STFT
# the options that fix a run (its model, schedule, batches, losses, validation material and what picks best/):
# --resume takes the run's own for those left out and refuses others; saving, logging, --threads and --device
# may change (RESUME_KEPT: left out, the run's own). --steps is recorded beside them: left out, the run's own;
# given, it may grow, not go below the step reached. --features, --mel-match and --mel-match-db are checked on
# their own.
RESUME_FIXED = ("batch_size", "segment_seconds", "lr", "warmup", "min_lr_frac", "weight_decay", "clip_grad",
                "mel_weight", "gain_db", "disc_weight", "fm_weight", "disc_start", "disc_warmup", "disc_lr",
                "disc_channels", "disc_seconds", "best_by", "val_segments", "val_clips", "val_clip_seconds",
                "train_decoder", "decoder_anchor", "decoder_lr", "synthetic", "synthetic_share", "synthetic_tones",
                "seed", "dim", "intermediate", "blocks")
RESUME_KEPT = ("save_every", "log_every", "threads")  # recorded too; a resume may give others


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What a run records of its options (provenance ``settings``), for ``--resume`` to take and check:
    the :data:`RESUME_FIXED` options, those a resume may change but takes when left out (:data:`RESUME_KEPT`),
    ``steps`` (the schedule's length), ``init_from``, and ``tokenizer`` when it reads decoded features; the size
    options yield to ``--init-from``, so such a run records none."""
    settings = {k: getattr(args, k) for k in (*RESUME_FIXED, *RESUME_KEPT)}
    settings["steps"] = args.steps
    settings["init_from"] = None if args.init_from is None else checkpoint_source(args.init_from)
    if args.init_from is not None:
        for k in ("dim", "intermediate", "blocks"):
            del settings[k]
    if args.features == "decoded":
        settings["tokenizer"] = checkpoint_source(args.tokenizer)
    return settings


def segment_samples(seconds: float, unit: int) -> int:
    """Samples per training segment: ``seconds`` cut to whole ``unit`` (a hop, or a token's samples)."""
    seg = round(seconds * SAMPLE_RATE) // unit * unit
    least = max(4 * VocoderConfig.hop_length, unit)
    if seg < least:
        raise UsageError(f"--segment-seconds {seconds:g} is too short: need at least {least / SAMPLE_RATE:g} s")
    return seg


def disc_window(disc_seconds: float, segment_seconds: float, seg: int) -> int:
    """Samples of the window the discriminators judge: ``--disc-seconds`` within a segment of ``seg`` samples."""
    window = min(round(disc_seconds * SAMPLE_RATE), seg)
    if window < DISC_MIN_SAMPLES:
        raise UsageError(f"the discriminators need windows of at least {DISC_MIN_SAMPLES} samples (their longest "
                         f"STFT); --disc-seconds {disc_seconds:g} and --segment-seconds {segment_seconds:g} give "
                         f"{window}")
    return window


def initial_vocoder(where: str) -> Vocoder:
    """The vocoder ``--init-from`` names: a vocoder checkpoint, or the learned vocoder inside an
    audio tokenizer checkpoint (a folder or a shipped name), with that vocoder's own provenance."""
    try:
        return load_vocoder(where)
    except CheckpointError as e:
        raise CheckpointError(f"--init-from {where}: {e}") from e
