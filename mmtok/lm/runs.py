"""A training run's folder: its checkpoints, its log and loss plot, and the trained model in it.

``RUN/ckpt-NNNNNNN/`` (model + optimizer + data position + RNG, written by
:mod:`mmtok.lm.train`), ``RUN/log.jsonl`` (one line per step) and ``RUN/loss.png``;
``RUN/damaged-ckpt-NNNNNNN/``: checkpoints ``--resume`` could not use, set aside.
:func:`check_holds_run` tells such a folder from one of other files, which ``--resume``
and ``--overwrite`` leave alone.
:func:`load_run` gives back the newest checkpoint's model and vocabulary for sampling,
evaluation or export.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from mmtok.core.checkpoint import CONFIG_NAME, config_from_dict, load_checkpoint
from mmtok.core.errors import MmtokError, ResumeMismatchError, TrainingError
from mmtok.core.module_io import load_state_dict_checked
from mmtok.core.trainstate import LOCK_NAME
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.stream.vocab import Modality, Vocabulary

__all__ = ["CKPT_PREFIX", "DAMAGED_PREFIX", "LOG_KEYS", "LOG_NAME", "MODALITIES", "check_holds_run",
           "checkpoint_folders", "checkpoint_number", "clear_run", "last_log_row", "latest_checkpoint", "load_run",
           "plot_loss", "read_log", "run_settings"]

CKPT_PREFIX = "ckpt-"
DAMAGED_PREFIX = "damaged-"  # a checkpoint folder --resume could not use, set aside: damaged-ckpt-NNNNNNN
LOG_NAME = "log.jsonl"
LOG_KEYS = ("step", "loss", "lr", "tokens_per_s")  # in every row of the log: how it is told from another tool's
# the per-modality loss columns of the log: every modality a target can have (special tokens are in "loss" alone)
MODALITIES = tuple(m.name.lower() for m in Modality if m is not Modality.SPECIAL)


def checkpoint_folders(run: str | os.PathLike[str]) -> list[Path]:
    """The complete checkpoint folders in ``run`` (``ckpt-NNNNNNN``, :func:`checkpoint_number`, with its config),
    oldest first: by step, not by name."""
    found = {p: n for p in Path(run).glob(f"{CKPT_PREFIX}*")
             if (n := checkpoint_number(p)) is not None and (p / CONFIG_NAME).is_file()}
    return sorted(found, key=found.__getitem__)


def latest_checkpoint(run: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint folder in ``run`` (None if there is none)."""
    found = checkpoint_folders(run)
    return found[-1] if found else None


def checkpoint_number(path: Path) -> int | None:
    """The step in the name of a checkpoint folder ``ckpt-NNNNNNN``; None for any other name, or a file."""
    number = path.name.removeprefix(CKPT_PREFIX)
    return int(number) if path.name.startswith(CKPT_PREFIX) and number.isdigit() and path.is_dir() else None


def _holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds what an mmtok train run writes: a checkpoint folder (set aside as damaged
    too), or a log whose every row is one of mmtok train's (a run stopped before its first checkpoint), or an
    empty log (a run killed before its first row: rewriting it loses nothing)."""
    log = folder / LOG_NAME
    if log.is_file() and not log.read_bytes().strip():
        return True
    if any(checkpoint_number(p) is not None or (p.name.startswith(DAMAGED_PREFIX + CKPT_PREFIX) and p.is_dir())
           for p in folder.glob(f"*{CKPT_PREFIX}*")):
        return True
    rows = read_log(folder)
    return bool(rows) and all(set(LOG_KEYS) <= row.keys() for row in rows)


def check_holds_run(folder: Path, flag: str) -> None:
    """``--resume`` or ``--overwrite`` (``flag``) into ``folder``: refuse, in one line, a folder that holds files
    but no mmtok train run, so that none of them is rewritten or removed (``--resume``: a
    :class:`ResumeMismatchError`, else a :class:`TrainingError`). An empty or missing folder is fine."""
    held = sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME) if folder.is_dir() else []
    if not held or _holds_run(folder):
        return
    shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
    error = ResumeMismatchError if flag == "--resume" else TrainingError
    raise error(f"{flag}: {folder} holds no mmtok train run (no {CKPT_PREFIX}*/ checkpoint, nor a {LOG_NAME} of "
                f"mmtok train's; it holds {shown}): nothing in it was changed; move those files away or pick "
                "another --out")


def clear_run(folder: Path) -> None:
    """``--overwrite``: remove the checkpoints, log and plot of an earlier run in ``folder``, and nothing else
    (the checkpoints set aside as damaged stay); a folder that holds no run is refused (:func:`check_holds_run`)."""
    check_holds_run(folder, "--overwrite")
    for ck in folder.glob(f"{CKPT_PREFIX}*"):
        if checkpoint_number(ck) is not None:
            shutil.rmtree(ck, ignore_errors=True)
    for name in (LOG_NAME, "loss.png"):
        (folder / name).unlink(missing_ok=True)


def load_run(run: str | os.PathLike[str], *, device: Any = None) -> tuple[Transformer, Vocabulary, dict[str, Any]]:
    """The trained model of a run folder (its newest checkpoint), its vocabulary and its settings.

    ``(model, vocabulary, settings)``: ``model(ids)`` takes ids ``[B, T]`` and gives
    logits ``[B, T, V]``; ``settings`` is the checkpoint's saved config. ``run`` is a
    run folder or one checkpoint folder in it.
    """
    path = Path(run)
    if not (path / CONFIG_NAME).is_file():
        found = latest_checkpoint(path)
        if found is None:
            raise MmtokError(f"{run} holds no checkpoint (no {CKPT_PREFIX}*/{CONFIG_NAME}); train first")
        path = found
    ck = load_checkpoint(path, kind=Transformer.KIND)
    cfg = config_from_dict(ModelConfig, ck.config["model"], where=f"{path}/{CONFIG_NAME} model")
    model = Transformer(cfg)
    load_state_dict_checked(model, ck.tensors, where=path)
    model.eval().to(device or "cpu")
    return model, Vocabulary.from_dict(ck.config["vocab"]), ck.config


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
            train = json.loads((ck / CONFIG_NAME).read_text())["config"]["train"]
        except (OSError, ValueError, KeyError, TypeError):
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
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = read_log(run)
    if not rows:
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


