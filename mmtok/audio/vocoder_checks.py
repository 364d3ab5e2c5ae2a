"""What the vocoder command refuses before any work (:mod:`mmtok.audio.vocoder_train`).

* :func:`check_options`: every numeric option finite and in range, what the options ask for within this
  machine's memory (:data:`MEMORY_USES`), and the options that need one another (none left to be ignored),
  as one-line :class:`~mmtok.core.errors.UsageError` s naming the flag (exit 2); a run folder given where a
  checkpoint is read is taken as the model it holds.
* :func:`check_out_folder`: a ``--out`` that holds anything but the run to resume is refused
  (:func:`mmtok.core.trainstate.check_run_folder`, :data:`RUN_MARKS`), so no one's files are rewritten;
  ``--resume`` of a run stopped before its first checkpoint (:func:`stopped_before_checkpoint`) starts it afresh.
* :func:`take_run_settings`: ``--resume`` continues the run as it was started, as ``mmtok train
  --resume`` does: the options that fix a run (:data:`~mmtok.audio.vocoder_settings.RESUME_FIXED`) left
  out are the run's own, and one given with another value is refused
  (:class:`~mmtok.core.errors.ResumeMismatchError`, exit 2); ``--steps`` left out is the run's own too
  (or the step it reached, if more), and may grow, to extend it, but not go below the step reached.
* :func:`check_sources`: the checkpoints the command reads (``--init-from``, ``--tokenizer``, ``--vocoder``)
  and the ``--attach`` folder, before the cache is built or a step trained: each one there, of the cache's
  sample rate, the pair ``--attach`` joins one that fits (:func:`mmtok.audio.attach.attach_refusal`), and
  ``--attach`` a folder it may write.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mmtok.audio.attach import attach_refusal, load_vocoder
from mmtok.audio.corpus import SYNTHETIC_MEMORY
from mmtok.audio.discriminator import WaveDiscriminators
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder import Vocoder
from mmtok.audio.vocoder_config import VocoderConfig
from mmtok.audio.vocoder_data import check_sample_rate
from mmtok.audio.vocoder_settings import (
    BEST_DIR,
    BEST_TOKENIZER_DIR,
    MODEL_DIR,
    RUN_FILE_KEYS,
    STATE_DIR,
    TOKENIZER_DIR,
    disc_window,
    initial_vocoder,
    segment_samples,
)
from mmtok.core.checkpoint import MAX_CONFIG_INT, config_from_dict, read_config, write_refusal
from mmtok.core.checkpoint_names import resolve_checkpoint
from mmtok.core.device import check_device_option
from mmtok.core.errors import CheckpointError, UsageError
from mmtok.core.limits import FLOAT32, MemoryUse, memory_refusal, training_bytes
from mmtok.core.module_io import load_module
from mmtok.core.ranges import (
    ABOVE_0,
    FLOAT32_AT_LEAST_0,
    INT64_MAX,
    LEARNING_RATE,
    SEED,
    THREADS,
    Range,
    out_of_range,
)
from mmtok.core.resume import setting_differences
from mmtok.core.resume import take_run_settings as resume_settings
from mmtok.core.run_folder import RunMarks, check_run_folder, run_model, say_starting_afresh
from mmtok.core.run_lock import LOCK_NAME

__all__ = ["FLAG_RANGES", "MEMORY_USES", "RUN_MARKS", "attach_plan", "check_options", "check_out_folder", "check_sources",
           "default_tokenizer", "stopped_before_checkpoint", "take_run_settings"]


# seconds of audio whose samples are a whole number torch holds (more is not a length: its samples overflow)
MAX_SECONDS = INT64_MAX // SAMPLE_RATE
FLAG_RANGES: dict[str, Range] = {  # by argparse dest; an option left at None (not given) is not checked
    **dict.fromkeys(("steps", "batch_size", "save_every", "log_every", "val_segments", "disc_channels"), Range(1)),
    # the vocoder's sizes: its config is saved, and a checkpoint's config holds no larger number
    **dict.fromkeys(("dim", "intermediate", "blocks"),
                    Range(1, MAX_CONFIG_INT, why="the largest size a checkpoint's config holds")),
    **dict.fromkeys(("val_clips", "warmup", "synthetic", "disc_start", "disc_warmup", "gain_db"), Range(0)),
    **dict.fromkeys(("mel_weight", "disc_weight", "fm_weight", "decoder_anchor"), FLOAT32_AT_LEAST_0),  # float32 loss
    "clip_grad": ABOVE_0,
    **dict.fromkeys(("segment_seconds", "val_clip_seconds", "disc_seconds"),
                    Range(0, MAX_SECONDS, low_open=True, why="its samples must be a whole number torch holds")),
    **dict.fromkeys(("lr", "disc_lr", "decoder_lr"), LEARNING_RATE), "weight_decay": FLOAT32_AT_LEAST_0,
    "min_lr_frac": Range(0, 1), "synthetic_tones": Range(0, 1),
    "synthetic_share": Range(0, 1, low_open=True, high_open=True),
    "mel_match": Range(0, 8), "mel_match_db": Range(0, 40, low_open=True),
    "threads": THREADS, "seed": SEED,
}


def _segment_bytes(args: argparse.Namespace) -> float:
    return args.segment_seconds * SAMPLE_RATE * FLOAT32  # one float32 training segment


# what the options ask for at once, each a lower bound of what the run allocates (memory_refusal)
MEMORY_USES = (
    MemoryUse("one batch of segments, the vocoder's output and its blocks' activations (float32)",
              ("batch_size", "segment_seconds"),
              lambda a: a.batch_size * _segment_bytes(a) * (2 + a.blocks * (a.dim + a.intermediate)
                                                            / VocoderConfig.hop_length)),
    MemoryUse("the fixed validation segments (float32)", ("val_segments", "segment_seconds"),
              lambda a: a.val_segments * _segment_bytes(a)),
    MemoryUse("the vocoder with its gradients and AdamW's moments", ("dim", "intermediate", "blocks"),
              lambda a: training_bytes(lambda blocks: Vocoder(VocoderConfig(dim=a.dim, intermediate=a.intermediate,
                                                                            blocks=blocks)),
                                       repeats={"blocks": a.blocks})),
    MemoryUse("the discriminators with their gradients and AdamW's moments", ("disc_channels",),
              lambda a: training_bytes(lambda: WaveDiscriminators(channels=a.disc_channels)) if a.disc_weight > 0
              else 0.0),
    SYNTHETIC_MEMORY,
)
WHAT = {  # said beside a refused value where the flag's name does not say it
    "gain_db": "each segment is attenuated by a random 0 to GAIN dB; a negative GAIN would amplify",
    "mel_match": "passes of the vocoder's level correction, its mel_match",
    "mel_match_db": "dB one pass may change a mel channel by, the vocoder's mel_match_db",
    "seed": "NumPy's seeds",
}
MEL_MATCH = ("mel_match", "mel_match_db")  # the vocoder's level correction: its config's, fixed on --resume
RESUME_FREE = ("save_every", "log_every", "threads", "device")  # what a resumed run may change besides --steps
# (left out, the run's own, but --device, which it does not record); where its data and outputs are (--cache,
# --attach) are not settings


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse (:class:`UsageError`, one line naming the flag, the value and what to give) an option of
    ``parser`` out of range, values whose arrays this machine cannot hold (:data:`MEMORY_USES`), or options that
    need others, before anything is read or written. A run folder given as ``--init-from``, ``--vocoder`` or
    ``--tokenizer`` is read as the model it holds (its ``best/`` or ``model/``, refused when it holds both:
    :func:`~mmtok.core.run_folder.run_model`)."""
    refused = out_of_range(parser, args, FLAG_RANGES, WHAT) or memory_refusal(
        parser, args, MEMORY_USES, lows={k: r.low for k, r in FLAG_RANGES.items()})
    if refused:
        raise UsageError(refused)
    check_device_option(parser, args.device)
    for flag, dest, models in (("--init-from", "init_from", (BEST_DIR, MODEL_DIR)),
                               ("--vocoder", "vocoder", (BEST_DIR, MODEL_DIR)), ("--tokenizer", "tokenizer", ("model",))):
        if getattr(args, dest) is not None:  # a run folder: the model it holds
            setattr(args, dest, run_model(getattr(args, dest), flag=flag, models=models))
    if (args.mel_match is not None or args.mel_match_db is not None) and args.attach is None and args.out is None:
        raise UsageError("--mel-match and --mel-match-db set a vocoder's level correction: they need a run "
                         "(--out RUN) or --attach OUT")
    if args.attach is not None and args.out is None and args.vocoder is None:
        raise UsageError("--attach needs the vocoder to attach: --vocoder CKPT, or --out RUN (its best/)")
    if args.vocoder is not None and args.attach is None:
        raise UsageError(f"--vocoder {args.vocoder} names the vocoder --attach joins to a tokenizer: give --attach OUT "
                         "too, or leave --vocoder out")
    run_only = [flag for flag, on in (("--features decoded", args.features == "decoded"),
                                      ("--train-decoder", args.train_decoder),
                                      ("--init-from", args.init_from is not None)) if on]
    if run_only and args.out is None:
        raise UsageError(f"{', '.join(run_only)} set up a training run, and there is none without --out RUN: give "
                         "--out, or leave them out")
    if args.cache is None and (args.out is not None or args.corpus is not None):
        raise UsageError("training needs --cache (built from --corpus when it has no index.json)")
    if args.resume and args.out is None:
        raise UsageError("--resume continues the run in --out: give --out RUN")
    if args.train_decoder and args.features != "decoded":
        raise UsageError("--train-decoder trains the tokenizer's log-mel decoder through the vocoder: it needs "
                         "--features decoded (stage 2)")
    if args.best_by != "mel_l1" and args.val_clips < 1:
        raise UsageError(f"--best-by {args.best_by} needs validation clips (--val-clips >= 1)")
    if args.features == "true":  # stage 1 cuts segments in hops; a tokenizer's unit is known once it is read
        seg = segment_samples(args.segment_seconds, VocoderConfig.hop_length)
        if args.disc_weight > 0:
            disc_window(args.disc_seconds, args.segment_seconds, seg)


def check_out_folder(args: argparse.Namespace) -> bool:
    """Whether ``--out`` holds a run that ``--resume`` continues. ``--resume`` of a run stopped before its first
    checkpoint (:func:`stopped_before_checkpoint`), or of an empty or new folder, starts it afresh (False, said
    on stderr: :func:`~mmtok.core.run_folder.say_starting_afresh`; the run rewrites its files), as a new run; a
    folder that holds anything else (files of the user's) is refused, and so is one holding a run without
    ``--resume`` (:class:`~mmtok.core.errors.TrainingError`). Writes nothing."""
    out = Path(args.out)
    resuming = bool(args.resume and (out / STATE_DIR / "config.json").is_file())
    if not (args.resume and not resuming and stopped_before_checkpoint(out)):
        check_run_folder(out, resume=args.resume, overwrite=False, marks=RUN_MARKS, overwrite_flag=False)
    if args.resume and not resuming:
        say_starting_afresh(out)
    return resuming


def stopped_before_checkpoint(out: Path) -> bool:
    """Whether ``out`` holds a vocoder run stopped before its first checkpoint and nothing else: some of the
    files a run writes before it (:data:`~mmtok.audio.vocoder_settings.RUN_FILE_KEYS`: its log, a step-0
    validation row, its Griffin-Lim baseline), each a file of rows (or an object) with that file's keys; a
    JSONL file may be empty or end in a row cut short by a kill. No train-state, no other file."""
    try:
        held = [p for p in out.iterdir() if p.name != LOCK_NAME]
        return bool(held) and all(p.name in RUN_FILE_KEYS and p.is_file() and _run_file(p) for p in held)
    except (OSError, UnicodeDecodeError):
        return False


def _run_file(path: Path) -> bool:
    """Whether ``path`` holds what the vocoder run writes under its name (:data:`RUN_FILE_KEYS`)."""
    keys, text = set(RUN_FILE_KEYS[path.name]), path.read_text()
    *lines, last = text.split("\n") if path.suffix == ".jsonl" else (text, "")
    if last and not last.startswith('{"step": '):  # not a row cut short by a kill
        return False
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            return False
        if not (isinstance(row, dict) and keys <= row.keys()):
            return False
    return True


# what a vocoder run holds: its train state, or only the files it writes before its first checkpoint
RUN_MARKS = RunMarks((STATE_DIR,), files=stopped_before_checkpoint,
                     absent=f"no {STATE_DIR}/config.json, nor only the files a run writes before its first checkpoint")


def take_run_settings(args: argparse.Namespace, given: set[str]) -> None:
    """``--resume``: set every option that fixes the run and is not on the command line (``given``: the options
    it names, :func:`~mmtok.core.trainstate.options_given`) to the run's own; refuse
    (:class:`~mmtok.core.errors.ResumeMismatchError`, one line) one given with another value, by
    :func:`mmtok.core.resume.take_run_settings`'s rule: ``--steps`` left out is the run's own (at least the step
    it reached); given, it may grow but not go below the step reached. ``--mel-match`` and ``--mel-match-db``
    given are checked against the run's vocoder config, in the same line; :data:`RESUME_FREE` may change (left
    out, they are the run's own where it recorded them: ``--save-every``, ``--log-every``, ``--threads``)."""
    out = Path(args.out)
    meta = read_config(out / STATE_DIR, kind=Vocoder.KIND)
    prov, config = dict(meta.get("provenance") or {}), meta["config"]
    cfg = config_from_dict(VocoderConfig, config, where=str(out / STATE_DIR / "config.json"))
    asked = {k: getattr(args, k) for k in MEL_MATCH if getattr(args, k) is not None}  # given: None is left out
    diffs = setting_differences(asked, {k: getattr(cfg, k) for k in MEL_MATCH}, MEL_MATCH)  # the model's config
    settings = {**recorded_settings(prov, config), "features": prov.get("features", "true")}
    if not isinstance(prov.get("settings"), dict) and "segment_seconds" in given:
        settings.pop("segment_seconds", None)  # only its samples were kept (rounded to whole hops or tokens): Run checks them
    reached = int((meta.get("train") or {}).get("step", 0))
    resume_settings(args, given, settings, where=str(out), reached=reached,
                    fixed=[k for k in settings if k != "steps" and k not in RESUME_FREE], free=RESUME_FREE, diffs=diffs)


def recorded_settings(prov: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A run's options as its train-state records them (:func:`~mmtok.audio.vocoder_run.run_settings`);
    for a run saved before they were recorded, those its provenance and config tell (others unchecked)."""
    if isinstance(prov.get("settings"), dict):
        return dict(prov["settings"])
    settings = {k: prov[k] for k in ("batch_size", "lr", "mel_weight", "best_by") if k in prov}
    if "segment_samples" in prov:
        settings["segment_seconds"] = prov["segment_samples"] / SAMPLE_RATE
    disc = prov.get("discriminator")
    settings["disc_weight"] = 0.0 if disc is None else disc["weight"]
    if disc is not None:
        settings.update(fm_weight=disc["fm_weight"], disc_start=disc["start"], disc_warmup=disc["warmup"],
                        disc_lr=disc["lr"], disc_channels=disc["channels"])
    joint = prov.get("train_decoder")
    settings["train_decoder"] = joint is not None
    if joint is not None:
        settings.update(decoder_anchor=joint["anchor"], decoder_lr=joint["decoder_lr"])
    synthetic = prov.get("synthetic")
    settings["synthetic"] = synthetic["clips"] if synthetic else 0
    if synthetic:
        settings.update(synthetic_share=synthetic["share"], synthetic_tones=synthetic.get("tones", 0.0),
                        seed=synthetic["seed"])
    if prov.get("features") == "decoded" and isinstance(prov.get("tokenizer"), dict):
        settings["tokenizer"] = prov["tokenizer"]["source"]
    if isinstance(prov.get("init_from"), dict):
        settings["init_from"] = prov["init_from"]["source"]
    else:
        settings.update({k: config[k] for k in ("dim", "intermediate", "blocks") if k in config})
    return settings


def check_sources(args: argparse.Namespace, given: set[str], *, resuming: bool) -> tuple[str, str] | None:
    """Refuse (one line naming the flag) what the command would find wrong only after building the cache or
    training: size options beside ``--init-from`` (its vocoder's sizes are taken), a new run's ``--init-from``
    and a stage-2 run's ``--tokenizer`` that are not there or work at another sample rate than the cache, and
    what :func:`attach_plan` refuses. ``given``: the options the command line names. A stage-2 run without
    ``--tokenizer`` (nor a run's own, taken before) reads the shipped ``audio``. Returns :func:`attach_plan`'s
    pair, None without ``--attach``."""
    sizes = [f"--{k}" for k in ("dim", "intermediate", "blocks") if k in given]
    if args.init_from is not None and sizes:
        raise UsageError(f"{', '.join(sizes)}: the vocoder's sizes are those of --init-from {args.init_from} (the "
                         "run's own when resumed); leave the size options out")
    if args.features == "decoded" and args.tokenizer is None:
        args.tokenizer = "audio"
    if args.out is not None and not resuming and args.init_from is not None:
        init = initial_vocoder(args.init_from)
        check_sample_rate(args.cache, init.cfg.sample_rate, f"--init-from {args.init_from}")
    if args.out is not None and args.features == "decoded":
        check_sample_rate(args.cache, _tokenizer(args.tokenizer).sample_rate, f"--tokenizer {args.tokenizer}")
    return None if args.attach is None else attach_plan(args, given)


def _tokenizer(where: str) -> AudioTokenizer:
    """The audio tokenizer ``--tokenizer`` names, or a :class:`CheckpointError` naming the flag."""
    try:
        return load_module(AudioTokenizer, where)
    except CheckpointError as e:
        raise CheckpointError(f"--tokenizer {where}: {e}") from e


def attach_plan(args: argparse.Namespace, given: set[str]) -> tuple[str, str]:
    """The tokenizer and the vocoder ``--attach`` joins, every refusal said before any work: an ``--attach``
    folder inside ``--out`` or holding it, or holding anything but an audio tokenizer checkpoint (replaced), a
    ``--vocoder`` or tokenizer that is not there, and a pair that does not fit (another front end, or a
    vocoder trained on another tokenizer's decoded log-mel: :func:`mmtok.audio.attach.attach_refusal`).
    Without ``--vocoder`` it is ``--out``'s best/, trained first: a ``--train-decoder`` run's goes with
    ``RUN/best-tokenizer``, another with ``--tokenizer`` (a stage-2 run's own; default the shipped ``audio``).
    With ``--vocoder`` and no ``--tokenizer``: the tokenizer it was trained on (:func:`default_tokenizer`)."""
    out = Path(args.attach)
    if args.out is not None and (out.resolve().is_relative_to(Path(args.out).resolve())
                                 or Path(args.out).resolve().is_relative_to(out.resolve())):
        raise UsageError(f"--attach {out} and --out {args.out} overlap (one holds the other), and the run writes "
                         "--out: give --attach a folder outside the run")
    refused = write_refusal(out, kind=AudioTokenizer.KIND)
    if refused:
        raise UsageError(f"--attach {out} {refused}; give a new or empty folder (an audio tokenizer checkpoint there "
                         "is replaced)")
    if args.vocoder is None:
        run = Path(args.out)
        if args.train_decoder:  # best/ goes with the decoder it was trained on
            return str(run / BEST_TOKENIZER_DIR), str(run / BEST_DIR)
        tokenizer = args.tokenizer or "audio"
        if args.features != "decoded":  # a stage-2 run's is checked as the one it trains on
            check_sample_rate(args.cache, _tokenizer(tokenizer).sample_rate, f"--tokenizer {tokenizer}")
        return tokenizer, str(run / BEST_DIR)
    try:
        voc = load_vocoder(args.vocoder)
    except CheckpointError as e:
        raise CheckpointError(f"--vocoder {args.vocoder}: {e}") from e
    tokenizer = args.tokenizer if "tokenizer" in given else default_tokenizer(voc, args.vocoder)
    refused = attach_refusal(_tokenizer(tokenizer), voc)
    if refused:
        pair = ("; a --train-decoder run's best/ goes with its best-tokenizer/, model/ with tokenizer/"
                if (getattr(voc, "provenance", None) or {}).get("train_decoder") is not None else "")
        hint = ("leave --tokenizer out to take the tokenizer it was trained on" if "tokenizer" in given
                else "name the tokenizer it was trained on with --tokenizer")
        raise UsageError(f"--attach: --vocoder {args.vocoder} does not fit the tokenizer {tokenizer}: {refused}; "
                         f"{hint}{pair}")
    return tokenizer, args.vocoder


def default_tokenizer(voc: Vocoder, where: str) -> str:
    """The tokenizer ``--attach`` joins vocoder ``voc`` (read from ``where``) to when ``--tokenizer`` is left
    out: the one it was trained on. A stage-2 run's ``--tokenizer`` (as its settings recorded it); a
    ``--train-decoder`` run's tuned tokenizer beside it (``RUN/best-tokenizer`` for ``RUN/best``,
    ``RUN/tokenizer`` for ``RUN/model``); where that is not there, ``where`` itself when it is an audio
    tokenizer checkpoint (the vocoder came from inside it, as in the shipped ``audio``); else a
    :class:`UsageError`. The shipped ``audio`` for a vocoder trained on the true log-mel (any tokenizer of its
    front end fits it)."""
    prov = getattr(voc, "provenance", None) or {}
    if prov.get("features") != "decoded":
        return "audio"
    if prov.get("train_decoder") is not None:
        folder = Path(where).resolve()
        pair = {BEST_DIR: BEST_TOKENIZER_DIR, MODEL_DIR: TOKENIZER_DIR}.get(folder.name)
        trained_on = [str(folder.parent / pair)] if pair else []
        missing = (f"was trained with its tokenizer's decoder (--train-decoder), and no tuned tokenizer lies beside "
                   f"it (RUN/{BEST_TOKENIZER_DIR} for RUN/{BEST_DIR}, RUN/{TOKENIZER_DIR} for RUN/{MODEL_DIR})")
    else:
        recorded = (prov.get("settings") or {}).get("tokenizer") or (prov.get("tokenizer") or {}).get("source")
        trained_on = [str(recorded)] if recorded else []
        missing = f"was trained on the decoded log-mel of tokenizer {recorded or '(not recorded)'}, which is not there"
    for found in (*trained_on, where):
        if _holds(found, AudioTokenizer.KIND):
            return found
    raise UsageError(f"--vocoder {where} {missing}: name the tokenizer it was trained on with --tokenizer")


def _holds(where: str, kind: str) -> bool:
    """Whether ``where`` (a folder or a shipped name) holds a checkpoint of ``kind``."""
    try:
        read_config(resolve_checkpoint(where), kind=kind)
    except CheckpointError:
        return False
    return True
