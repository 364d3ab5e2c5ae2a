"""A corpus manifest given as a trainer's ``--data``: the files of one of its splits (``--split``,
:data:`DEFAULT_SPLIT` when left out), for the image and audio trainers alike, which check each is there before
any is read (:func:`check_listed`); its rows are read by :func:`~mmtok.core.manifest.manifest_rows`.

>>> import tempfile; from pathlib import Path
>>> m = Path(tempfile.mkdtemp()) / "manifest.jsonl"
>>> _ = m.write_text('{"path": "a.wav", "split": "train"}\\n{"path": "b.wav", "split": "test"}\\n')
>>> [p.name for p in split_files(m, None, suffixes={".wav"}, media="audio")], data_split(str(m), None)
(['a.wav'], 'train')
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from mmtok.core.errors import CorpusError, MissingFileError, MmtokError
from mmtok.core.manifest import manifest_rows

__all__ = [
    "DEFAULT_SPLIT",
    "MANIFEST_NAME",
    "check_folder",
    "check_listed",
    "check_split",
    "data_split",
    "folder_manifest",
    "is_manifest",
    "split_files",
    "split_rows",
]

DEFAULT_SPLIT = "train"  # the manifest split taken without --split (for a trainer on --resume: the run's)
SHOWN_MISSING = 3  # files a refusal of a manifest's missing files names
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
    """The corpus manifest (``manifest.jsonl``) whose held-out files a run on the whole of ``folder`` would
    train on, else None: one that ``folder`` holds, at any depth, or one in a folder above it that puts files
    under ``folder`` in a split other than :data:`DEFAULT_SPLIT` (``CORPUS/images`` of ``CORPUS/manifest.jsonl``)."""
    root = Path(folder)
    if not root.is_dir():
        return None
    inside = next(iter(sorted(root.rglob(MANIFEST_NAME))), None)
    if inside is not None:
        return inside
    here = root.resolve()
    return next((m for m in (p / MANIFEST_NAME for p in here.parents) if m.is_file() and _holds_out(m, here)), None)


def _holds_out(manifest: Path, folder: Path) -> bool:
    """Whether ``manifest`` (in a folder above ``folder``) lists a file under ``folder`` in a split other than
    :data:`DEFAULT_SPLIT`; lines that are no such row are passed over (this only looks, it does not check)."""
    inside = folder.relative_to(manifest.parent.resolve()).parts
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if (isinstance(row, dict) and isinstance(row.get("path"), str) and row.get("split") != DEFAULT_SPLIT
                and Path(os.path.normpath(row["path"])).parts[: len(inside)] == inside):  # ./images/1.png too
            return True
    return False


def check_folder(parser: argparse.ArgumentParser, data: str | None, *, resuming: bool = False,
                 verb: str = "trains on") -> None:
    """A ``--data`` folder that holds held-out files of a corpus manifest (:func:`folder_manifest`) refused in one
    line (exit 2) before any work: a run on the whole folder would train on its validation and test files (``verb``:
    what is done with them, for the message). A run that ``resuming`` continues was started on that folder already:
    it goes on, said on stderr."""
    held = None if data is None or is_manifest(data) else folder_manifest(data)
    if held is None:
        return
    what = (f"--data {data} holds validation or test files of the corpus manifest {held}, which a run on the "
            f"whole folder {verb}")
    if resuming:
        print(f"mmtok: {what}; resuming the run that was started on it", file=sys.stderr)
        return
    parser.error(f"{what}: give --data {held} (its {DEFAULT_SPLIT} split, or --split SPLIT)")


def data_split(data: str, split: str | None) -> str | None:
    """The split taken from ``data``: with a manifest ``split``, or :data:`DEFAULT_SPLIT` when left out;
    with a folder None, all of it (a run saved before may have recorded ``"train"`` for one)."""
    if not is_manifest(data):
        return None
    return DEFAULT_SPLIT if split is None else split


def split_rows(manifest: str | os.PathLike[str], split: str | None, *, suffixes: Collection[str], media: str,
               error: type[MmtokError] = CorpusError, required: bool = True,
               present: bool = False) -> list[tuple[Path, dict[str, Any]]]:
    """``(file, row)`` of every file of ``split`` (None: :data:`DEFAULT_SPLIT`) that ``manifest`` lists with one
    of ``suffixes``, sorted by file, each file its ``path`` under the manifest's folder; a bad row is ``error``,
    with ``required`` a split without such files is a :class:`~mmtok.core.errors.MissingFileError`, and with
    ``present`` so are files that are not there (:func:`check_listed`; ``media``: what the files are, for the
    message)."""
    manifest = Path(manifest)
    split = DEFAULT_SPLIT if split is None else split
    numbered = [(number, manifest.parent / row["path"], row) for number, row in manifest_rows(manifest, error=error)
                if row["split"] == split and Path(row["path"]).suffix.lower() in suffixes]
    if required and not numbered:
        raise MissingFileError(f"--data {str(manifest)!r} lists no {media} files of split {split!r}")
    if present:
        check_listed(manifest, [(number, row["path"], f) for number, f, row in numbered], split=split, media=media)
    return sorted(((f, row) for _, f, row in numbered), key=lambda fr: fr[0])


def check_listed(manifest: Path, listed: Sequence[tuple[int, str, Path]], *, split: str, media: str) -> None:
    """Every ``(line, path as written, file)`` ``manifest`` lists is a file, else one
    :class:`~mmtok.core.errors.MissingFileError` before anything is read: how many of the split's files are
    missing or are no file, and the first :data:`SHOWN_MISSING` of them as ``MANIFEST:LINE: PATH``."""
    missing = [(number, path, "" if not f.exists() else " (a folder)" if f.is_dir() else " (not a regular file)")
               for number, path, f in listed if not f.is_file()]
    if not missing:
        return
    shown = "; ".join(f"{manifest}:{number}: {path}{what}" for number, path, what in missing[:SHOWN_MISSING])
    more = f"; and {len(missing) - SHOWN_MISSING} more" if len(missing) > SHOWN_MISSING else ""
    raise MissingFileError(f"{manifest}: {len(missing)} of the {len(listed)} {media} files of split {split!r} it lists "
                           f"are not there (each path is under the manifest's folder {manifest.parent}): {shown}{more}; "
                           "restore them, or remove their rows from the manifest")


def split_files(manifest: str | os.PathLike[str], split: str | None, *, suffixes: Collection[str], media: str,
                error: type[MmtokError] = CorpusError, present: bool = False) -> list[Path]:
    """The files of ``split`` that ``manifest`` lists with one of ``suffixes``, sorted (:func:`split_rows`; with
    ``present``, each checked to be there)."""
    return [f for f, _ in split_rows(manifest, split, suffixes=suffixes, media=media, error=error, present=present)]
