"""What ``mmtok train-tokenizer image`` checks before any work (:func:`check_args`): every numeric option in
range, and the arrays the options ask for within this machine's memory (:data:`MEMORY_USES`), ``--export`` a
folder a checkpoint can go to, ``--init-from`` a run folder taken as its model, a manifest's rows, ``--split``
only with a manifest, the options that need one another; and on ``--resume`` the run's own settings, taken for
the flags left out, with
a one-line refusal of a flag that asks for another model or another training. :func:`check_out_folder` says
whether ``--out`` holds a run to continue; :func:`data_digest` is what a run records of its images, by content,
and :func:`check_same_images` refuses a resume on others.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mmtok.core import limits
from mmtok.core.checkpoint import (
    CONFIG_NAME,
    MAX_CONFIG_INT,
    config_from_dict,
    read_config,
    write_refusal,
)
from mmtok.core.corpus_manifest import check_folder, check_split
from mmtok.core.errors import CheckpointError, ResumeMismatchError, UsageError
from mmtok.core.limits import (
    FLOAT32,
    TENSOR_BYTES,
    MemoryUse,
    memory_refusal,
    said_bytes,
    training_bytes,
)
from mmtok.core.ranges import (
    FLOAT32_AT_LEAST_0,
    LEARNING_RATE,
    SEED,
    THREADS,
    Range,
    iterations,
    out_of_range,
)
from mmtok.core.resume import check_decoder_only
from mmtok.core.resume import take_run_settings as resume_settings
from mmtok.core.run_folder import (
    TOKENIZER_RUN_MARKS,
    check_resume_folder,
    check_run_folder,
    content_digest,
    holds_train_state,
    run_model,
)
from mmtok.core.trainstate import check_run_options, check_trained_on, json_digest
from mmtok.image.config import DEFAULT_VQ, ImageTokenizerConfig
from mmtok.image.discriminator import PatchDiscriminator
from mmtok.image.sizing import MAX_SIDE

__all__ = ["MEMORY_USES", "NUMBER_RULES", "RESUME_FIXED", "RESUME_FREE", "check_args", "check_export", "check_numbers",
           "check_out_folder", "check_same_images", "data_digest", "data_material", "exported_provenance", "name_under",
           "run_settings", "take_run_settings"]

# the settings a resumed run keeps (its crops, loss, schedule shape and seed): flags left out take the run's,
# a flag given with another value is refused
RESUME_FIXED = ("split", "batch_size", "crop", "base_side", "scale_min", "scale_max", "zoom_max", "zoom_prob",
                "synthetic", "rotate", "ssim_weight", "lr", "warmup", "rebalance_crops", "rebalance_iters",
                "rebalance_min_frac", "decoder_only", "seed", "disc_weight", "disc_start", "disc_warmup", "disc_lr",
                "disc_channels")
# the settings that may change to extend a run (more steps, a schedule restart, a later rebalancing) or that do
# not change what it learns; left out, they are the run's (--device, never recorded, may change too)
RESUME_FREE = ("steps", "lr_restart", "rebalance_at", "save_every", "threads")
MODEL_FLAGS = ("config", "codebook_size", "latent_dim", "dead_code_rate")  # they set fields of the model config


# (flag, what it must be, test); an option left at None (not given) is not tested
NUMBER_RULES: dict[str, Range] = {  # by argparse dest; check_run_options checks --steps, --batch-size, --lr, ...
    **dict.fromkeys(("zoom_max", "rebalance_crops", "init_crops"), Range(1)),
    **dict.fromkeys(("synthetic", "disc_start", "disc_warmup", "lr_restart"), Range(0)),
    **dict.fromkeys(("ssim_weight", "disc_weight"), FLOAT32_AT_LEAST_0),  # a loss weight: the loss is float32
    "base_side": Range(1, MAX_SIDE, why="the longest side mmtok reads an image at: a larger one is only enlarged"),
    "rebalance_iters": iterations(1), "threads": THREADS,
    "zoom_prob": Range(0, 1), "disc_lr": LEARNING_RATE, "disc_channels": Range(4),
    "codebook_size": Range(2, MAX_CONFIG_INT, why="the largest size a checkpoint's config holds"),
    "latent_dim": Range(1, MAX_CONFIG_INT, why="the largest size a checkpoint's config holds"),
    **dict.fromkeys(("ema_decay", "rebalance_min_frac", "dead_code_rate"), Range(0, 1, high_open=True)),
    "seed": SEED,
}


def _config_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--config`` file's fields where it is a JSON object (its errors are said when the run reads it)."""
    try:
        fields = json.loads(Path(args.config).read_text()) if args.config else {}
    except (OSError, ValueError, RecursionError):
        return {}
    return fields if isinstance(fields, dict) else {}


def _codes(args: argparse.Namespace) -> tuple[float, float, float]:
    """``(K, D, f)``: the codebook's size, the codes' size and the pixels per code side of the model the options
    give (``--codebook-size``, ``--latent-dim``, then ``--config``, then the defaults)."""
    fields = _config_fields(args)
    vq = fields.get("vq") if isinstance(fields.get("vq"), dict) else {}
    cfg = ImageTokenizerConfig()

    def number(value: Any, default: float) -> float:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else default

    k = number(args.codebook_size, number(vq.get("codebook_size"), DEFAULT_VQ["codebook_size"]))
    d = number(args.latent_dim, number(fields.get("latent_dim"), cfg.latent_dim))
    widths = fields.get("enc_channels")
    levels = len(widths) if isinstance(widths, list) and widths else len(cfg.enc_channels)
    return k, d, number(fields.get("patch"), cfg.patch) * 2.0 ** (levels - 1)


def _crop_bytes(args: argparse.Namespace) -> float:
    return 3.0 * float(args.crop) ** 2 * FLOAT32  # one float32 crop [3, crop, crop]


# what the options ask for at once, each a lower bound of what the run allocates (memory_refusal)
MEMORY_USES = (
    MemoryUse("one batch of crops and its reconstruction (float32)", ("batch_size", "crop"),
              lambda a: 2 * a.batch_size * _crop_bytes(a)),
    MemoryUse("the crops the initialisation holds at once and their patches (float32)",
              ("init_crops", "crop"), lambda a: 2 * a.init_crops * _crop_bytes(a)),
    MemoryUse("the dead-leaves pictures (uint8, 2 x --base-side square)", ("synthetic", "base_side"),
              lambda a: a.synthetic * (3.0 * (2.0 * a.base_side) ** 2 + TENSOR_BYTES)),
    MemoryUse("the encoder outputs of the crops a rebalancing holds at once (float32)",
              ("rebalance_crops", "crop"),
              lambda a: a.rebalance_crops * (a.crop / _codes(a)[2]) ** 2 * _codes(a)[1] * FLOAT32 if a.rebalance_at
              else 0.0),
    MemoryUse("the codebook and its running sums (float32)", ("codebook_size", "latent_dim"),
              lambda a: 2 * _codes(a)[0] * _codes(a)[1] * FLOAT32),
    MemoryUse("the patch discriminator with its gradients and AdamW's moments", ("disc_channels",),
              lambda a: training_bytes(lambda: PatchDiscriminator(channels=a.disc_channels, layers=2))
              if a.disc_weight > 0 else 0.0),
)


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace, state_dir: str) -> None:
    """Every option out of range or at odds with another, refused in one line (``parser.error``: exit 2)
    before any work; ``state_dir``: the name of the run's train state inside ``--out`` (``--export`` may
    not be in it)."""
    check_run_options(parser, args)
    if args.init_from is not None:
        args.init_from = run_model(args.init_from, flag="--init-from")  # RUN: its model, RUN/model
    check_split(parser, args.data, args.split, media="photos")
    check_folder(parser, args.data, resuming=args.resume and holds_train_state(args.out, state_dir=state_dir))
    if args.crop < 16 or args.crop % 16 or args.crop > MAX_SIDE:
        parser.error(f"--crop must be a multiple of 16, at least 16 and at most {MAX_SIDE} (the longest side mmtok "
                     f"reads an image at: a larger crop is only ever an enlargement) (got {args.crop})")
    if not (0 < args.scale_min <= args.scale_max and math.isfinite(args.scale_max)):
        parser.error(f"--scale-min and --scale-max need 0 < MIN <= MAX, finite (got {args.scale_min}, {args.scale_max})")
    check_numbers(parser, args)
    check_export(parser, args.export, args.out, state_dir)
    check_decoder_only(parser, args, resumable=holds_train_state(args.out, state_dir=state_dir))
    if args.decoder_only and (args.rebalance_at.strip() or args.dead_code_rate):
        parser.error("--decoder-only keeps the codebook as it is: drop --rebalance-at and --dead-code-rate")


def check_numbers(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every numeric option that :func:`~mmtok.core.trainstate.check_run_options` leaves, refused in one
    line naming the flag (exit 2) when it is NaN, infinite or out of range; ``--rebalance-at`` parsed and
    written back sorted (``"1500,6001"``); ``--config`` a file."""
    refused = out_of_range(parser, args, NUMBER_RULES)
    if refused:
        parser.error(refused)
    args.rebalance_at = _rebalance_steps(parser, args.rebalance_at)
    if args.config is not None and not Path(args.config).is_file():
        what = "a folder, not a file" if Path(args.config).is_dir() else "no such file"
        parser.error(f"--config {args.config}: {what} (give a JSON file of ImageTokenizerConfig fields)")
    if args.disc_weight > 0 and (refused := _disc_refusal(args.disc_channels)):
        parser.error(refused)
    refused = memory_refusal(parser, args, MEMORY_USES, lows={k: r.low for k, r in NUMBER_RULES.items()},
                             multiples={"crop": 16, "disc_channels": 16})
    if refused:
        parser.error(refused)


def _builds(channels: int) -> bool | None:
    """Whether a patch discriminator ``channels`` wide can be built (its group norms divide its layers' widths);
    None when it is too wide to tell (the memory check refuses it)."""
    import torch

    from mmtok.core.module_io import weights_from_checkpoint

    try:
        with torch.device("meta"), weights_from_checkpoint():
            PatchDiscriminator(channels=channels, layers=2)
    except ValueError:
        return False
    except (RuntimeError, OverflowError, MemoryError):
        return None
    return True


def _disc_refusal(channels: int) -> str | None:
    """Why ``--disc-channels`` cannot be the width of the patch discriminator (None when it can): its layers'
    group norms split ``2 x`` and ``4 x`` that width into groups of a quarter of it, at most 32 of them."""
    if _builds(channels) is not False:
        return None
    below = next(c for c in range(channels - 1, 3, -1) if _builds(c))
    above = next(c for c in range(channels + 1, channels + 64) if _builds(c))
    return (f"--disc-channels {channels}: the patch discriminator's group norms cannot split its layers "
            f"({2 * channels} and {4 * channels} channels) evenly; give {below} or {above} (any multiple of 16 "
            "works)")


def _rebalance_steps(parser: argparse.ArgumentParser, text: str) -> str:
    """``--rebalance-at`` as sorted, comma-separated steps of at least 1 (``""``: none)."""
    try:
        steps = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        steps = [0]
    if steps and steps[0] < 1:
        parser.error(f"--rebalance-at must be comma-separated steps of at least 1, e.g. 1500,3000 (got {text!r})")
    return ",".join(map(str, steps))


def _train_state(folder: Path) -> bool:
    """Whether ``folder`` is a checkpoint that holds a run's training state (a trainer's ``train-state``)."""
    try:
        return (folder / CONFIG_NAME).is_file() and "train" in read_config(folder)
    except CheckpointError:
        return False


def check_export(parser: argparse.ArgumentParser, export: str | None, out: str, state_dir: str) -> None:
    """``--export`` refused (exit 2) before any work where writing the final checkpoint would fail at the end:
    a file, the current folder, a folder that holds other files and no checkpoint (as
    :func:`~mmtok.core.checkpoint.save_checkpoint` refuses them), ``--out`` itself or a folder holding it or
    its train state, or a path under a file."""
    if export is None:
        return
    folder, run = Path(export).resolve(), Path(out).resolve()
    if run.is_relative_to(folder) or folder.is_relative_to(run / state_dir):
        where = ("is --out itself" if folder == run else f"holds --out {out}" if run.is_relative_to(folder)
                 else f"is inside --out's {state_dir}")
        why = f"{where}; give a folder outside the run (OUT/model is written anyway)"
    elif refused := write_refusal(folder, kind="image"):  # another kind of model would be lost (as --attach says)
        why = f"{refused}; give a new or empty folder"
    elif _train_state(folder):
        why = "is a run's train state (replacing it with weights alone, that run could not be resumed); give a new folder"
    else:
        up = next(p for p in folder.parents if p.exists())
        why = "" if up.is_dir() else f"cannot be made: {up} is a file"
    if why:
        parser.error(f"--export {export} {why}")


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings a resumed run keeps or may change, as saved in its train state."""
    return {name: getattr(args, name) for name in (*RESUME_FIXED, *RESUME_FREE)}


def exported_provenance(folder: str | Path) -> dict[str, Any] | None:
    """The provenance of the checkpoint in ``folder`` (its ``steps``, command, ...); None if it has none."""
    try:
        prov = json.loads((Path(folder) / CONFIG_NAME).read_text()).get("provenance")
    except (OSError, ValueError, AttributeError):
        return None
    return prov if isinstance(prov, dict) else None


def take_run_settings(args: argparse.Namespace, given: set[str], state_dir: Path,
                      make_config: Callable[[argparse.Namespace, Any], Any]) -> None:
    """``--resume`` of a run with a train state, by :func:`mmtok.core.resume.take_run_settings`'s rule: the
    flags left out take the run's own settings (its ``--ema-decay`` too; ``--steps`` left out: the run's, or at
    least the step it reached); model flags (``--config``, ``--codebook-size``, ...) that together give another
    config than the run's, a setting of :data:`RESUME_FIXED` or ``--ema-decay`` given with another value than
    the run's, or a given ``--steps`` below the run's step, are refused in one line
    (:class:`ResumeMismatchError`: exit 2) before any work. ``make_config(args, base)`` builds a config."""
    meta = read_config(state_dir, kind="image")
    train = meta.get("train") if isinstance(meta.get("train"), dict) else {}
    extra = train.get("extra") if isinstance(train.get("extra"), dict) else {}
    saved = extra.get("settings") if isinstance(extra.get("settings"), dict) else {}  # none before they were kept
    step = int(train.get("step", 0))
    fixed = [n for n in RESUME_FIXED if not (n.startswith("disc_") and not saved.get("disc_weight"))]
    # no discriminator to compare with: its loader refuses --disc-weight by name
    resume_settings(args, given, {**saved, "ema_decay": float(extra.get("ema_decay", 0.0))},
                    where=str(state_dir.parent), reached=step, fixed=[*fixed, "ema_decay"],
                    free=[*(n for n in RESUME_FREE if n != "steps"), "device"],
                    diffs=_model_diffs(args, given, meta["config"], make_config))
    if args.decoder_only and (args.rebalance_at or args.dead_code_rate):
        raise ResumeMismatchError(f"--resume {state_dir.parent}: the run trains the decoder alone (--decoder-only), "
                                  "which keeps the codebook as it is: drop --rebalance-at and --dead-code-rate")


def _model_diffs(args: argparse.Namespace, given: set[str], saved_cfg: dict[str, Any],
                 make_config: Callable[[argparse.Namespace, Any], Any]) -> list[str]:
    """``"--FLAG VALUE sets FIELD X (the run's: Y)"`` for each model flag given when all of them together (as
    the run is rebuilt: ``--config``, then the others on top) give another config than the run's: the flags
    that set a field that differs to its new value (``--config`` with ``vq.codebook_size`` 16 is not named
    when ``--codebook-size`` makes it the run's 32 again)."""
    base = config_from_dict(ImageTokenizerConfig, saved_cfg, where="train-state config")
    run = _flat(base)
    names = [n for n in MODEL_FLAGS if n in given and getattr(args, n) is not None]
    if not names:
        return []
    mine = _flat(make_config(argparse.Namespace(**{n: getattr(args, n) if n in names else None
                                                   for n in MODEL_FLAGS}), base))
    changed = [k for k in sorted(set(run) | set(mine)) if mine.get(k) != run.get(k)]
    if not changed:
        return []
    alone = {n: _flat(make_config(argparse.Namespace(**{m: getattr(args, m) if m == n else None
                                                         for m in MODEL_FLAGS}), base)) for n in names}
    diffs = []
    for name in names:  # a field no flag sets alone to its new value is put down to every flag given
        fields = [f"{k} {mine.get(k)} (the run's: {run.get(k)})" for k in changed
                  if alone[name].get(k) == mine.get(k) or not any(alone[n].get(k) == mine.get(k) for n in names)]
        if fields:
            flag = "--" + name.replace("_", "-")
            diffs.append(f"{flag} {getattr(args, name)} sets " + ", ".join(fields[:3])
                         + (f" (+{len(fields) - 3} more)" if len(fields) > 3 else ""))
    return diffs


def _flat(cfg: Any) -> dict[str, Any]:
    """A config dataclass as ``{"latent_dim": 8, "vq.codebook_size": 16, ...}``, tuples as lists."""

    def walk(d: dict[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(walk(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    return walk(json.loads(json.dumps(dataclasses.asdict(cfg))), "")


def check_out_folder(out: str | Path, *, resume: bool) -> bool:
    """Whether ``--out`` holds a train state that ``--resume`` continues; a folder of other files is refused, and
    so is one holding a run without ``--resume`` (:func:`~mmtok.core.run_folder.check_run_folder`). ``--resume``
    of a new or empty folder starts the run afresh, said on stderr; of one holding the run's model but no train
    state, it is refused (:func:`~mmtok.core.run_folder.check_resume_folder`). Writes nothing."""
    check_run_folder(out, resume=resume, overwrite=False, marks=TOKENIZER_RUN_MARKS, overwrite_flag=False)
    return resume and check_resume_folder(out)


def data_digest(files: Sequence[Path], root: Path) -> str:
    """What a run trains on, by content (:func:`~mmtok.core.run_folder.content_digest`): each image's name under
    the data folder and its bytes, in order. The same images moved give the same digest; other pictures give
    another, even in files of the same names and sizes."""
    return content_digest((name_under(f, root).as_posix(), f.read_bytes()) for f in files)


def name_under(f: Path, root: Path) -> Path:
    """``f``'s name under ``root``, whichever of them is given absolute (a manifest may list absolute paths)."""
    return Path(os.path.abspath(f)).relative_to(os.path.abspath(root))


def data_material(files: Sequence[Path], root: Path) -> str:
    """What a train state saved before the content was recorded (``content_digest``) keeps of its images, under
    ``material`` (:func:`~mmtok.core.trainstate.json_digest`): each image's name under the data folder and its
    size in bytes. Such a run is resumed by that rule; its next checkpoint records the content."""
    return json_digest([(str(name_under(f, root)), f.stat().st_size) for f in files])


def check_same_images(state_dir: Path, data: str, files: Sequence[Path], root: Path, digest: str) -> None:
    """``--resume`` of the run whose train state is ``state_dir`` on the images ``files`` of ``--data`` (under
    ``root``; ``digest``: their :func:`data_digest`): refused in one line
    (:class:`~mmtok.core.errors.ResumeMismatchError`) when the run recorded other content, or, saved before
    the content was recorded, other names or sizes (:func:`data_material`)."""
    refusal = (f"--data {data} holds other images than the run in {state_dir.parent} trained on (other files, or "
               "other pictures in them); resume with its own data (moved is fine), or train into a new --out")
    check_trained_on(state_dir, "content_digest", digest, refusal)
    check_trained_on(state_dir, "material", data_material(files, root), refusal)


def check_model_fits(cfg: ImageTokenizerConfig, where: str) -> None:
    """A :class:`UsageError` when the tokenizer ``cfg`` describes cannot train in this machine's memory, before it
    is built or any picture decoded: its weights with their gradients and AdamW's moments (measured on the meta
    device: nothing is allocated) and the widest feature map of one ``image_size`` picture, in the encoder or the
    decoder (a lower bound of a step's activations). ``where``: what set its sizes (``--config``, or the options)."""
    from mmtok.image.tokenizer import ImageTokenizer

    side = float(cfg.image_size) / cfg.patch  # the first encoder stage's and the last decoder stage's side
    widest = max([c * (side / 2**i) ** 2 for i, c in enumerate(cfg.enc_channels)]
                 + [c * (side / 2 ** (len(cfg.dec_channels) - 1 - i)) ** 2 for i, c in enumerate(cfg.dec_channels)])
    need = training_bytes(lambda: ImageTokenizer(cfg)) + FLOAT32 * widest
    memory = limits.machine_memory()
    if need > memory:
        amount = f"about {said_bytes(need)}" if math.isfinite(need) else "sizes past what torch can describe"
        raise UsageError(f"{where}: the tokenizer it describes needs {amount} to train (its weights with their "
                         f"gradients and AdamW's moments, and one picture's widest feature map), more than this "
                         f"machine's {said_bytes(memory)} of memory; "
                         "give smaller widths (enc_channels, dec_channels, latent_dim) or fewer blocks")
