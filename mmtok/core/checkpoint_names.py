"""Where a checkpoint name or path leads: the shipped checkpoints' folder (:func:`models_dir`), their names
(:func:`shipped_names`), the folder a shipped name or a path stands for (:func:`resolve_checkpoint`) and how a run
records it (:func:`checkpoint_source`). Plain file-system rules, so a plan or a config read needs no torch.

>>> "image" in shipped_names()
True
"""

from __future__ import annotations

import os
from pathlib import Path

from mmtok.core.checkpoint import CONFIG_NAME
from mmtok.core.checkpoint_folder import backup_of, locate
from mmtok.core.errors import CheckpointError

__all__ = ["BUILT_FROM", "checkpoint_source", "models_dir", "resolve_checkpoint", "shipped_names"]

_PACKAGE_MODELS = Path(__file__).resolve().parents[1] / "_models"  # inside an installed wheel
_REPO_MODELS = Path(__file__).resolve().parents[2] / "models"  # in a source checkout


def models_dir() -> Path:
    """The folder that holds the shipped checkpoints (``models/`` of the repo or the wheel's copy)."""
    for candidate in (_PACKAGE_MODELS, _REPO_MODELS):
        if candidate.is_dir():
            return candidate
    return _REPO_MODELS


BUILT_FROM = {"video": "image"}  # shipped names mmtok.load builds from another shipped checkpoint (video: image at 1 fps)


def shipped_names() -> list[str]:
    """Names of the shipped checkpoints: the folders (``"image"``, ``"audio"``, ...) and those built from one of
    them (:data:`BUILT_FROM`: ``"video"``, when ``"image"`` is shipped)."""
    root = models_dir()
    if not root.is_dir():
        return []
    folders = {p.name for p in root.iterdir() if (p / CONFIG_NAME).is_file()}
    return sorted(folders | {name for name, source in BUILT_FROM.items() if source in folders})


def _may_be_name(name_or_path: str | os.PathLike[str]) -> bool:
    """Whether ``name_or_path`` can name a shipped checkpoint: a str without a folder separator (a
    :class:`pathlib.Path`, or a str such as ``"./audio"``, is always a path)."""
    return isinstance(name_or_path, str) and "/" not in name_or_path and os.sep not in name_or_path


def _shipped(name_or_path: str | os.PathLike[str]) -> Path | None:
    """The shipped checkpoint folder ``name_or_path`` names, or None when it names a path (the one rule of
    :func:`resolve_checkpoint` and :func:`checkpoint_source`)."""
    if not _may_be_name(name_or_path):
        return None
    local, shipped = Path(name_or_path), models_dir() / name_or_path
    if (local / CONFIG_NAME).is_file() or backup_of(local, CONFIG_NAME) is not None:
        return None  # a checkpoint folder here (or the backup a killed save left of one) wins
    if (shipped / CONFIG_NAME).is_file():
        return shipped  # a file or a non-checkpoint folder of that name does not hide a shipped one
    return shipped if locate(local, CONFIG_NAME) is None and shipped.is_dir() else None


def checkpoint_source(where: str | os.PathLike[str]) -> str:
    """How a run records (and compares) a checkpoint it read: a shipped name as itself, a folder as its absolute
    path; the same rule as :func:`resolve_checkpoint` tells them apart (a local ``audio/`` of recordings does
    not make ``"audio"`` a folder). A path to nothing is recorded as given.

    >>> checkpoint_source("audio")
    'audio'
    """
    if _shipped(where) is not None:
        return str(where)
    path = Path(where)
    return str(path.resolve()) if locate(path, CONFIG_NAME) is not None else os.fspath(where)


def resolve_checkpoint(name_or_path: str | os.PathLike[str]) -> Path:
    """A checkpoint folder from a path, or from a shipped name such as ``"image"``.

    A :class:`pathlib.Path` (any ``os.PathLike``) is always a path, and so is a str with a folder
    separator (``"./audio"``, ``"/x/audio"``, ``"audio/"``). Only a str without one can be a shipped
    name, and it is one unless a checkpoint folder (one with ``config.json``) of that name is in the
    working folder, or no shipped checkpoint has it: a file or another folder of a shipped name in the
    working folder (``audio/`` of recordings) does not hide the shipped checkpoint. A folder missing
    because a save was killed between its two renames is found by its backup.
    """
    path = Path(name_or_path)
    name = os.fspath(name_or_path)
    if not name.strip():  # Path("") is the working folder: never what was meant
        raise CheckpointError(f"checkpoint name is empty: pass a shipped name ({shipped_names() or 'none'}) "
                              "or a checkpoint folder")
    shipped = _shipped(name_or_path)
    if shipped is not None:
        return shipped
    if locate(path, CONFIG_NAME) is not None:
        return path
    if _may_be_name(name_or_path):
        raise CheckpointError(
            f"{name!r} is neither a folder nor a shipped checkpoint; shipped: {shipped_names() or 'none'}"
        )
    raise CheckpointError(f"no checkpoint at {path}: the folder does not exist")
