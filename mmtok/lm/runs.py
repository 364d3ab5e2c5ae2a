"""A training run's folder: its checkpoints, its log and loss plot, and the trained model in it.

``RUN/ckpt-NNNNNNN/`` (model + optimizer + data position + RNG, written by
:mod:`mmtok.lm.train`), ``RUN/log.jsonl`` (one line per step) and ``RUN/loss.png``;
``RUN/damaged-ckpt-NNNNNNN/``: checkpoints ``--resume`` could not use, set aside; one a newer mmtok wrote is
no damage: ``--resume`` is refused instead, with nothing moved (:func:`refuse_newer`).
:data:`RUN_MARKS` tells such a folder from one of other files
(:func:`~mmtok.core.trainstate.check_run_folder`), which ``--resume`` and ``--overwrite`` leave alone.
:func:`load_run` gives back the newest checkpoint's model and vocabulary for sampling,
evaluation or export.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from mmtok.core.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    config_from_dict,
    load_checkpoint,
    read_config,
)
from mmtok.core.checkpoint_folder import BACKUP_NAME, locate
from mmtok.core.device import pick_device
from mmtok.core.errors import CheckpointError, MissingFileError, MmtokError, RunRefusedError
from mmtok.core.floats import all_finite
from mmtok.core.format_version import NewerCheckpointError
from mmtok.core.module_io import load_state_dict_checked, weights_from_checkpoint
from mmtok.core.plotting import pyplot
from mmtok.core.run_folder import LM_CKPT_PREFIX, RunMarks, check_run_folder
from mmtok.core.run_lock import run_holder
from mmtok.core.trainstate import load_newest_intact
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.stream.vocab import Modality, Vocabulary

__all__ = ["CKPT_PREFIX", "DAMAGED_PREFIX", "LOG_KEYS", "LOG_NAME", "MODALITIES", "RUN_MARKS", "checkpoint_folders",
           "checkpoint_number", "clear_run", "last_log_row", "latest_checkpoint", "load_run", "newest_loadable",
           "plot_loss", "read_log", "refuse_newer", "run_settings", "set_aside_damaged"]

CKPT_PREFIX = LM_CKPT_PREFIX
DAMAGED_PREFIX = "damaged-"  # a checkpoint folder --resume could not use, set aside: damaged-ckpt-NNNNNNN
LOG_NAME = "log.jsonl"
LOG_KEYS = ("step", "loss", "lr", "tokens_per_s")  # in every row of the log: how it is told from another tool's
# the per-modality loss columns of the log: every modality a target can have (special tokens are in "loss" alone)
MODALITIES = tuple(m.name.lower() for m in Modality if m is not Modality.SPECIAL)


def checkpoint_folders(run: str | os.PathLike[str]) -> list[Path]:
    """The complete checkpoint folders in ``run`` (``ckpt-NNNNNNN``, :func:`checkpoint_number`, with its config),
    oldest first: by step, not by name. One that a save killed between its two renames left only as its backup
    (``.ckpt-NNNNNNN.old-XXXXXXXX``) is listed by its own name, where the readers
    (:func:`~mmtok.core.checkpoint.read_config`, :func:`~mmtok.core.checkpoint.load_checkpoint`) find the backup;
    nothing is put back here (the next trainer into ``run`` does that, holding its lock)."""
    run = Path(run)
    names = {m["name"] if (m := BACKUP_NAME.fullmatch(p.name)) else p.name for p in run.glob(f"*{CKPT_PREFIX}*")}
    found: dict[Path, int] = {}
    for name in names:
        step = _step(name)
        if step is None:
            continue
        where = locate(run / name, CONFIG_NAME)
        if where is not None and (where / CONFIG_NAME).is_file():
            found[run / name] = step
    return sorted(found, key=found.__getitem__)


def latest_checkpoint(run: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint folder in ``run`` (None if there is none)."""
    found = checkpoint_folders(run)
    return found[-1] if found else None


def checkpoint_number(path: Path) -> int | None:
    """The step in the name of a checkpoint folder ``ckpt-NNNNNNN``; None for any other name, or a file."""
    return _step(path.name) if path.is_dir() else None


def _step(name: str) -> int | None:
    """The step in a checkpoint folder's name ``ckpt-NNNNNNN``; None for any other name."""
    number = name.removeprefix(CKPT_PREFIX)
    return int(number) if name.startswith(CKPT_PREFIX) and number.isdigit() else None


def _log_of_a_run(folder: Path) -> bool:
    """Whether ``folder``'s log is mmtok train's: every row one of its (a run stopped before its first
    checkpoint), or empty (a run killed before its first row: rewriting it loses nothing)."""
    log = folder / LOG_NAME
    if log.is_file() and not log.read_bytes().strip():
        return True
    rows = read_log(folder)
    return bool(rows) and all(set(LOG_KEYS) <= row.keys() for row in rows)


# what an mmtok train run holds: a checkpoint folder (set aside as damaged too), or its log
RUN_MARKS = RunMarks((f"{CKPT_PREFIX}[0-9]*", f"{DAMAGED_PREFIX}{CKPT_PREFIX}[0-9]*"), files=_log_of_a_run,
                     run="mmtok train run", absent=f"no {CKPT_PREFIX}*/ checkpoint, nor a {LOG_NAME} of mmtok train's")


def clear_run(folder: Path) -> None:
    """``--overwrite``: remove the checkpoints, log and plot of an earlier run in ``folder``, and nothing else
    (the checkpoints set aside as damaged stay); a folder that holds no run is refused (:data:`RUN_MARKS`)."""
    check_run_folder(folder, resume=False, overwrite=True, marks=RUN_MARKS)
    for ck in folder.glob(f"{CKPT_PREFIX}*"):
        if checkpoint_number(ck) is not None:
            shutil.rmtree(ck, ignore_errors=True)
    for name in (LOG_NAME, "loss.png"):
        (folder / name).unlink(missing_ok=True)


def refuse_newer(found: list[Path]) -> list[Path]:
    """``found`` (a run's checkpoint folders), or a :class:`~mmtok.core.errors.RunRefusedError` when a newer mmtok
    wrote one of them: ``--resume`` would take it for damaged, set it aside and train its steps again."""
    for ck in reversed(found):
        try:
            read_config(ck)
        except NewerCheckpointError as e:
            raise RunRefusedError(f"{e}, or train into another --out; nothing in {ck.parent} was moved or "
                                  "changed") from e
        except (MmtokError, OSError):
            continue  # damaged: --resume passes it over and says so
    return found


def set_aside_damaged(folder: Path, step: int) -> None:
    """Rename the checkpoint folders past ``step`` (passed over as damaged, or never finished) to
    ``damaged-ckpt-...``, so that the run can write its checkpoints there again; nothing is deleted."""
    for ck in sorted(folder.glob(f"{CKPT_PREFIX}*")):
        if (number := checkpoint_number(ck)) is None or number <= step:
            continue
        aside, n = folder / f"{DAMAGED_PREFIX}{ck.name}", 1
        while aside.exists():
            n += 1
            aside = folder / f"{DAMAGED_PREFIX}{ck.name}-{n}"
        ck.rename(aside)
        print(f"mmtok train: {ck.name} could not be resumed from; moved aside to {aside.name}", file=sys.stderr)


def load_run(run: str | os.PathLike[str], *, device: Any = None) -> tuple[Transformer, Vocabulary, dict[str, Any]]:
    """The trained model of a run folder (its newest checkpoint), its vocabulary and its settings.

    ``(model, vocabulary, settings)``: ``model(ids)`` takes ids ``[B, T]`` and gives
    logits ``[B, T, V]``; ``settings`` is the checkpoint's saved config. ``run`` is a
    run folder or one checkpoint folder in it. A checkpoint a save killed between its two renames left
    only as its backup is read there, as :func:`mmtok.load` reads it; nothing is put back. A damaged newest
    checkpoint is a :class:`~mmtok.core.errors.CheckpointError` that names the newest intact one, if any (pass
    that folder as ``run`` to use it). A ``device`` that is not here (``"cuda"`` on a machine without a GPU) is a
    :class:`~mmtok.core.errors.DeviceError` before any reading (:func:`~mmtok.core.device.pick_device`); None is
    the CPU.
    """
    device = torch.device("cpu") if device is None else pick_device(device)
    path = Path(run)
    where = locate(path, CONFIG_NAME)
    if where is None:
        raise MissingFileError(f"{run}: no such folder; give the folder of an mmtok train run (or one of its "
                               f"{CKPT_PREFIX}*/ checkpoints)")
    if (where / CONFIG_NAME).is_file():  # one checkpoint of a run
        model, vocab, settings = _load(path)
    else:  # a run folder: its newest checkpoint
        found = checkpoint_folders(path)
        if not found:
            raise _no_checkpoint(run)
        try:
            model, vocab, settings = _load(found[-1])
        except CheckpointError as e:
            raise _damaged_newest(e, found) from e
    return model.to(device), vocab, settings


def _no_checkpoint(run: str | os.PathLike[str]) -> MmtokError:
    """The refusal of a run folder without a checkpoint: "train first", or, while a training process holds it
    (its lock), that its first checkpoint has yet to come."""
    holder = run_holder(run)
    then = (f"a training run holds it now ({holder}): wait for its first checkpoint (--save-every steps)"
            if holder else "train first")
    return MmtokError(f"{run} holds no checkpoint (no {CKPT_PREFIX}*/{CONFIG_NAME}); {then}")


def newest_loadable(run: str | os.PathLike[str]) -> tuple[Path, dict[str, str]]:
    """The newest checkpoint of the run folder ``run`` that is intact as :func:`load_run` needs it (its files whole,
    its weights finite), and why each newer one is not (``{name: reason}``, newest first); a
    :class:`~mmtok.core.errors.CheckpointError` when none is."""
    found = checkpoint_folders(Path(run))
    if not found:
        raise _no_checkpoint(run)
    passed: list[tuple[Path, CheckpointError]] = []
    try:
        use = load_newest_intact(found, _intact, who=None, passed_over=passed)
    except CheckpointError as e:
        raise CheckpointError(f"no checkpoint of {run} loads: {e}") from e
    assert use is not None  # found holds one at least
    return use[0], {ck.name: str(e) for ck, e in passed}


def _damaged_newest(e: CheckpointError, found: list[Path]) -> CheckpointError:
    """``e``, the error of the newest of ``found`` (checkpoint folders, oldest first), said with the newest older
    one that loads (:func:`~mmtok.core.trainstate.load_newest_intact`), or with none being intact."""
    try:
        intact = load_newest_intact(found[:-1], lambda ck: _load(ck)[2], who=None)
    except CheckpointError:
        intact = None
    if intact is not None:
        return CheckpointError(f"{e}; the older checkpoint {intact[0]} is intact: load that one (--run {intact[0]}; "
                               f"from Python, load_run({str(intact[0])!r}))")
    if len(found) > 1:
        return CheckpointError(f"{e}; no older checkpoint in {found[-1].parent} is intact either")
    return e


def _intact(path: Path) -> Any:
    """The checkpoint folder ``path`` read (its files whole), or a :class:`CheckpointError`; weights holding a NaN
    or inf are one too, as ``--resume`` finds them: a model that would sample nothing but one id, and whose export
    gives NaN logits."""
    ck = load_checkpoint(path, kind=Transformer.KIND)
    bad = [k for k, t in ck.tensors.items() if t.is_floating_point() and not all_finite(t)]
    if bad:
        raise CheckpointError(f"checkpoint {path}: NaN/inf values in {WEIGHTS_NAME}: {', '.join(bad[:3])}"
                              f"{f' (+{len(bad) - 3} more)' if len(bad) > 3 else ''}: the run diverged before it was "
                              "saved, or the file is damaged")
    return ck


def _load(path: Path) -> tuple[Transformer, Vocabulary, dict[str, Any]]:
    """The model of the checkpoint folder ``path`` (on the CPU, in eval mode), its vocabulary and saved config."""
    ck = _intact(path)
    cfg = config_from_dict(ModelConfig, ck.config["model"], where=f"{path}/{CONFIG_NAME} model")
    with weights_from_checkpoint():  # the weights set every parameter: no draws from torch's global generator
        model = Transformer(cfg)
    if not all(name in ck.tensors for name, _ in model.named_parameters()):
        model = Transformer(cfg)  # a parameter the weights do not set keeps its initial value
    load_state_dict_checked(model, ck.tensors, where=path)
    model.eval()
    vocab = Vocabulary.from_dict(ck.config["vocab"], where=f"{path}/{CONFIG_NAME}")
    model.vocab = vocab  # what generate checks an interleaver against
    return model, vocab, ck.config


def read_log(run: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete row of ``run``'s log, oldest first; a line cut short by a kill is left out."""
    rows = []
    log = Path(run) / LOG_NAME
    for line in (log.read_text(errors="replace").splitlines() if log.is_file() else []):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def run_settings(run: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The training settings (``TrainConfig`` fields) a run's newest readable checkpoint was saved with;
    None when it has none."""
    for ck in reversed(checkpoint_folders(run)):
        try:
            train = read_config(ck)["config"]["train"]
        except (MmtokError, KeyError, TypeError):
            continue  # a damaged checkpoint: resuming passes it over too
        if isinstance(train, dict):
            return train
    return None


def last_log_row(run: str | os.PathLike[str], tail: int = 1 << 16) -> dict[str, Any]:
    """The newest complete row of ``run``'s log (``{}`` if none), read from its last ``tail`` bytes only."""
    log = Path(run) / LOG_NAME
    if not log.is_file():
        return {}
    with open(log, "rb") as f:
        f.seek(max(0, log.stat().st_size - tail))
        lines = f.read().decode("utf-8", errors="replace").splitlines()
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill, or the first, cut by the seek
        if isinstance(row, dict):
            return row
    return {}


def plot_loss(run: Path) -> None:
    """``run/loss.png``: the loss per step from the log, overall and per modality; skipped, with one line on
    stderr, when matplotlib is not installed."""
    rows = read_log(run)
    if not rows:
        return
    plt = pyplot(str(run / "loss.png"))
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["loss"] for r in rows], label="all", color="black", lw=1.5)
    for m in MODALITIES:
        ys = [r.get(f"loss_{m}") for r in rows]
        pts = [(s, y) for s, y in zip(steps, ys, strict=True) if y is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), label=m, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(f"training loss: {run.name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run / "loss.png")
    plt.close(fig)


