"""Whether a trainer's ``--out`` holds one of its runs, or other files that are not its to continue, clear or
write beside: :class:`RunMarks` (what each trainer's runs hold) and :func:`check_run_folder`, called before
anything is written to the folder; a run folder given where a checkpoint is read (``--init-from RUN``) is taken
as the model it holds (:func:`run_model`). A checkpoint a killed save left only as its backup counts; a stale lock
alone does not. ``--resume`` of a folder with no train state to continue starts the run afresh, said in one line
(:func:`say_starting_afresh`; :func:`check_resume_folder` for the tokenizer trainers), and :func:`content_digest`
is what a run records of the data it trains on, by content, for ``--resume`` to tell other data from the same
data moved.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmtok.core.checkpoint import CONFIG_NAME
from mmtok.core.checkpoint_folder import BACKUP_NAME, backup_of
from mmtok.core.checkpoint_names import shipped_names
from mmtok.core.errors import RunRefusedError
from mmtok.core.run_lock import LOCK_NAME

__all__ = [
    "LM_CKPT_PREFIX",
    "LM_KIND",
    "TOKENIZER_MODEL_DIR",
    "TOKENIZER_RUN_MARKS",
    "TOKENIZER_STATE_DIR",
    "RunMarks",
    "check_resume_folder",
    "check_run_folder",
    "content_digest",
    "holds_train_state",
    "run_model",
    "run_models",
    "say_starting_afresh",
]

@dataclass(frozen=True)
class RunMarks:
    """What tells a trainer's run in its ``--out`` from other files (:func:`check_run_folder`)."""

    folders: tuple[str, ...]  # the checkpoint folders a run writes (fnmatch patterns); one with a config.json marks it
    absent: str  # what a folder of other files lacks, in the refusal: "no train-state/ or model/ checkpoint"
    files: Callable[[Path], bool] | None = None  # other evidence of a run in the folder (a log of the run's own rows)
    run: str = "run"  # a run in the refusal's words


TOKENIZER_STATE_DIR = "train-state"  # a tokenizer trainer's resumable state inside its OUT
TOKENIZER_MODEL_DIR = "model"  # the tokenizer it exports inside OUT
LM_CKPT_PREFIX = "ckpt-"  # the checkpoint folders of a run of mmtok train: ckpt-NNNNNNN
LM_KIND = "transformer"  # the kind of those checkpoints (mmtok.load_run reads them)
TOKENIZER_RUN_MARKS = RunMarks((TOKENIZER_STATE_DIR, TOKENIZER_MODEL_DIR),
                               absent=f"no {TOKENIZER_STATE_DIR}/ or {TOKENIZER_MODEL_DIR}/ checkpoint")  # image, audio


def _held(folder: Path) -> list[str]:
    """The names of what ``folder`` holds but a lock, sorted (none for a missing folder)."""
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME) if folder.is_dir() else []


def _shown(held: list[str]) -> str:
    return ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")


def _holds_run(folder: Path, marks: RunMarks) -> bool:
    """Whether ``folder`` holds a run by ``marks``: one of its checkpoint folders with a config.json, or the backup
    a save killed between its two renames left of one (``.NAME.old-*``), or the evidence ``marks.files`` finds."""
    for entry in folder.iterdir():
        name = found["name"] if (found := BACKUP_NAME.fullmatch(entry.name)) else entry.name
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in marks.folders) and (entry / CONFIG_NAME).is_file():
            return True
    return marks.files is not None and marks.files(folder)


def check_run_folder(folder: str | os.PathLike[str], *, resume: bool, overwrite: bool, marks: RunMarks,
                     overwrite_flag: bool = True) -> None:
    """Refuse (:class:`RunRefusedError`, one line: the ``mmtok`` command exits 2) a run folder in the way, before
    anything is written to it: one holding a run (``marks``: what the trainer's runs hold) unless ``resume`` or
    ``overwrite``, and one holding files but no run even then (not the trainer's to continue, clear or write
    beside). An empty or missing folder, or one holding only a lock, is fine. Writes nothing. ``overwrite_flag``:
    whether the command has ``--overwrite``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunRefusedError(f"--out {folder} is a file, not a folder")
    held = _held(folder)
    if not held:
        return
    shown = _shown(held)
    if _holds_run(folder, marks):
        if not (resume or overwrite):
            again = "start it over with --overwrite, " if overwrite_flag else ""
            raise RunRefusedError(f"{folder} already holds a run ({shown}); continue it with --resume, "
                                f"{again}or pick another --out")
        return
    flag, to = (("--resume: ", " to continue") if resume else ("--overwrite: ", " to start over") if overwrite
                else ("", ""))
    raise RunRefusedError(f"{flag}{folder} holds no {marks.run}{to} ({marks.absent}; it holds {shown}): those are not "
                        "a run's files, and nothing in it was changed; pick an empty or new --out")


def say_starting_afresh(out: str | os.PathLike[str], *, state_dir: str = TOKENIZER_STATE_DIR) -> None:
    """Say on stderr, in one line, that ``--resume`` found no ``state_dir`` in ``out`` (a run stopped before its
    first checkpoint, or none yet) and starts the run afresh with the flags given: every trainer's words."""
    print(f"mmtok: {out} holds no {state_dir}/ to resume (a run stopped before its first checkpoint, or none yet): "
          "starting it afresh with the flags given", file=sys.stderr)


def check_resume_folder(folder: str | os.PathLike[str], *, state_dir: str = TOKENIZER_STATE_DIR) -> bool:
    """``--resume`` into ``folder``, once :func:`check_run_folder` let it through: True when its ``state_dir``
    holds a train state to continue; False, said on stderr (:func:`say_starting_afresh`), when the folder is new
    or empty (a tokenizer run writes nothing before its first checkpoint). One that holds a run's files but no
    train state (its model alone) is refused (:class:`RunRefusedError`, one line): there is nothing to continue, and
    its files are not overwritten."""
    folder = Path(folder)
    if (folder / state_dir / CONFIG_NAME).is_file():
        return True
    if held := _held(folder):
        raise RunRefusedError(f"--resume: {folder} holds no {state_dir}/ to continue from (it holds {_shown(held)}); "
                            "train into a new --out")
    say_starting_afresh(folder, state_dir=state_dir)
    return False


def holds_train_state(folder: str | os.PathLike[str], *, state_dir: str = TOKENIZER_STATE_DIR) -> bool:
    """Whether ``folder`` holds a train state for ``--resume`` to continue, looked at before the folder is held: its
    ``state_dir``, or the backup of it that a run killed while replacing it left (put back once the folder is held,
    :func:`~mmtok.core.run_lock.hold_run_folder`)."""
    state = Path(folder) / state_dir
    return (state / CONFIG_NAME).is_file() or backup_of(state, CONFIG_NAME) is not None


def content_digest(parts: Iterable[tuple[Any, Any]]) -> str:
    """What a training run trains on, by content (:func:`~mmtok.core.trainstate.json_digest`): each part's label
    and the sha256 of its bytes (a file's bytes, or a buffer such as a memmap), in order. Labels name no folder
    (file names under the data folder, corpus paths), so the same data moved gives the same digest; other data
    gives another, even in files of the same names and sizes.

    >>> content_digest([("a.png", b"PNG1")]) == content_digest([("a.png", b"PNG2")])
    False
    """
    from mmtok.core.trainstate import (
        json_digest,  # with torch: imported only when a run digests its data
    )

    return json_digest([[label, hashlib.sha256(data).hexdigest()] for label, data in parts])


def _checkpoint_at(folder: Path) -> bool:
    """Whether ``folder`` holds a checkpoint, or the backup a save killed between its two renames left of one."""
    return (folder / CONFIG_NAME).is_file() or backup_of(folder, CONFIG_NAME) is not None


def run_models(folder: Path, models: tuple[str, ...] = (TOKENIZER_MODEL_DIR,)) -> list[Path]:
    """The checkpoints of ``models`` (subfolder names) that a trainer's run folder ``folder`` holds; none for a
    folder that is a checkpoint itself or no folder."""
    if not folder.is_dir() or _checkpoint_at(folder):
        return []
    return [folder / name for name in models if _checkpoint_at(folder / name)]


def run_model(where: str, *, flag: str, models: tuple[str, ...] = (TOKENIZER_MODEL_DIR,)) -> str:
    """The checkpoint ``flag`` reads when given ``where``: ``where`` itself, unless it is a trainer's run folder
    (no checkpoint of its own, one in a ``models`` subfolder: ``RUN/model``), which is taken as that model, said
    on stderr. A run folder holding several of ``models`` (a vocoder run's ``best/`` and ``model/``), or none yet
    (its ``train-state`` alone: stopped before it wrote one), and a folder that is neither a checkpoint nor a
    run, and a path to nothing that is no shipped name, are refused (:class:`~mmtok.core.errors.UsageError`, one
    line naming them). A shipped name, a checkpoint folder and a file come back as they are, for the loader to
    read or refuse."""
    from mmtok.core.errors import UsageError

    folder = Path(where)
    if _checkpoint_at(folder) or ("/" not in where and os.sep not in where and where in shipped_names()):
        return where  # a shipped name: a folder of that name that is no checkpoint does not hide it
    if not folder.exists():
        raise UsageError(f"{flag} {where}: no such folder, and no shipped checkpoint has that name (shipped: "
                         f"{', '.join(shipped_names()) or 'none'})")
    if not folder.is_dir():
        return where
    found = run_models(folder, models)
    if len(found) == 1:
        print(f"mmtok: {flag} {where} is a training run's folder: reading its model, {found[0]}", file=sys.stderr)
        return str(found[0])
    if found:
        raise UsageError(f"{flag} {where} is a training run's folder holding {len(found)} models: give one of "
                         f"{', '.join(map(str, found))}")
    if _checkpoint_at(folder / TOKENIZER_STATE_DIR):
        raise UsageError(f"{flag} {where} is a training run's folder with no model yet (no {folder / models[0]}: "
                         "the run stopped before its first checkpoint); resume the run first, or give a checkpoint "
                         "folder")
    raise UsageError(f"{flag} {where} is a folder that holds no checkpoint ({CONFIG_NAME}) and no training run's model "
                     f"({' or '.join(f'{name}/{CONFIG_NAME}' for name in models)}); give a checkpoint folder, a run "
                     "folder or a shipped name")
