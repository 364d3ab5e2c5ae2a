"""A corpus manifest given as a trainer's ``--data``: the files of one of its splits (``--split``,
:data:`DEFAULT_SPLIT` when left out), for the image and audio trainers alike; its rows are read by
:func:`~mmtok.core.manifest.manifest_rows`.

>>> import tempfile; from pathlib import Path
>>> m = Path(tempfile.mkdtemp()) / "manifest.jsonl"
>>> _ = m.write_text('{"path": "a.wav", "split": "train"}\\n{"path": "b.wav", "split": "test"}\\n')
>>> [p.name for p in split_files(m, None, suffixes={".wav"}, media="audio")], data_split(str(m), None)
(['a.wav'], 'train')
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from mmtok.core.errors import CorpusError, MissingFileError, MmtokError
from mmtok.core.manifest import manifest_rows

__all__ = [
    "DEFAULT_SPLIT",
    "MANIFEST_NAME",
    "check_folder",
    "check_split",
    "data_split",
    "folder_manifest",
    "is_manifest",
    "split_files",
    "split_rows",
]

DEFAULT_SPLIT = "train"  # the manifest split taken without --split (for a trainer on --resume: the run's)
MANIFEST_NAME = "manifest.jsonl"  # what benchmarks/fetch_corpus.py names a corpus's manifest


def is_manifest(data: str | os.PathLike[str]) -> bool:
    """Whether ``data`` is a corpus manifest (a ``.jsonl`` file), whose ``split`` chooses the files, not a folder."""
    return Path(data).is_file() and Path(data).suffix == ".jsonl"


def check_split(parser: argparse.ArgumentParser, data: str, split: str | None, *, media: str,
                verb: str = "trained on") -> None:
    """``--split`` refused in one line (exit 2) before any work unless ``--data`` is a manifest: a folder has
    no splits, every file of it is used (``media``: what the files are, ``verb``: what is done with them, for
    the message)."""
    if split is not None and not is_manifest(data):
        parser.error(f"--split {split} chooses {media} from a manifest.jsonl; --data {data} is not one "
                     f"(a folder's {media} are all {verb}): leave --split out or give the corpus's manifest.jsonl")


def folder_manifest(folder: str | os.PathLike[str]) -> Path | None:
    """The corpus manifest (``manifest.jsonl``) that ``folder`` holds, at any depth, else None: its files
    belong to the manifest's splits, whose held-out ones a run on the whole folder would train on."""
    root = Path(folder)
    return next(iter(sorted(root.rglob(MANIFEST_NAME))), None) if root.is_dir() else None


def check_folder(parser: argparse.ArgumentParser, data: str | None) -> None:
    """A ``--data`` folder that holds a corpus manifest (:func:`folder_manifest`) refused in one line (exit 2)
    before any work: a run on the whole folder would train on its validation and test files."""
    held = None if data is None or is_manifest(data) else folder_manifest(data)
    if held is not None:
        parser.error(f"--data {data} holds a corpus manifest, {held}, whose validation and test files a run on "
                     f"the folder would train on: give --data {held} (its {DEFAULT_SPLIT} split, or --split SPLIT)")


def data_split(data: str, split: str | None) -> str | None:
    """The split taken from ``data``: with a manifest ``split``, or :data:`DEFAULT_SPLIT` when left out;
    with a folder None, all of it (a run saved before may have recorded ``"train"`` for one)."""
    if not is_manifest(data):
        return None
    return DEFAULT_SPLIT if split is None else split


def split_rows(manifest: str | os.PathLike[str], split: str | None, *, suffixes: Collection[str], media: str,
               error: type[MmtokError] = CorpusError, required: bool = True) -> list[tuple[Path, dict[str, Any]]]:
    """``(file, row)`` of every file of ``split`` (None: :data:`DEFAULT_SPLIT`) that ``manifest`` lists with one
    of ``suffixes``, sorted by file, each file its ``path`` under the manifest's folder; a bad row is ``error``,
    and with ``required`` a split without such files is a :class:`~mmtok.core.errors.MissingFileError`
    (``media``: what the files are, for the message)."""
    manifest = Path(manifest)
    split = DEFAULT_SPLIT if split is None else split
    rows = [(manifest.parent / row["path"], row) for _, row in manifest_rows(manifest, error=error)
            if row["split"] == split and Path(row["path"]).suffix.lower() in suffixes]
    if required and not rows:
        raise MissingFileError(f"--data {str(manifest)!r} lists no {media} files of split {split!r}")
    return sorted(rows, key=lambda fr: fr[0])


def split_files(manifest: str | os.PathLike[str], split: str | None, *, suffixes: Collection[str], media: str,
                error: type[MmtokError] = CorpusError) -> list[Path]:
    """The files of ``split`` that ``manifest`` lists with one of ``suffixes``, sorted (:func:`split_rows`)."""
    return [f for f, _ in split_rows(manifest, split, suffixes=suffixes, media=media, error=error)]
