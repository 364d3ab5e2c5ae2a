"""The output folder of a tokenize run: claimed under a lock, restarted on request, checked against the corpus.

:func:`claimed` creates the folder, holds its ``.lock`` for the run (released in
every path, by the OS even after ``kill -9``), discards an earlier run's
shards for ``--restart``, turns an OS error (read-only or full disk, an ``--out``
that is a file) into a one-line :class:`~mmtok.core.errors.CorpusError`, and
removes the folders it created if a failed run left them empty.
:func:`finished_manifest` refuses a folder made from another version of the
corpus (the corpus's sha256 is in every shard index and the manifest).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from mmtok.core.errors import CorpusError
from mmtok.data.shards import MANIFEST, VERIFIED

__all__ = ["LOCK_NAME", "claimed", "discard_shards", "finished_manifest"]

LOCK_NAME = ".lock"  # held while a run writes the folder


@contextlib.contextmanager
def claimed(folder: Path, *, restart: bool = False) -> Iterator[None]:
    """Create and lock ``folder`` for one run (see the module docstring)."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder):
            if restart:
                discard_shards(folder)
            yield
    except OSError as e:
        _remove_if_empty(created)
        raise CorpusError(f"cannot tokenize into {folder}: {e.strerror or e}"
                          f"{f' ({e.filename})' if e.filename else ''}; shards committed before stay") from None
    except BaseException:
        _remove_if_empty(created)
        raise


def _remove_if_empty(created: list[Path]) -> None:
    """Remove the folders this run created (deepest first) that hold nothing but the lock file."""
    for folder in created:
        with contextlib.suppress(OSError):
            if {p.name for p in folder.iterdir()} <= {LOCK_NAME}:
                (folder / LOCK_NAME).unlink(missing_ok=True)
                folder.rmdir()


def discard_shards(folder: Path) -> None:
    """``--restart``: remove the shards, manifest and half-written files an earlier run left in ``folder``."""
    for pattern in ("shard-*.bin", "shard-*.json", MANIFEST, ".*.tmp-*", VERIFIED):
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` (released by the OS even after kill -9).

    A POSIX record lock: forked workers do not inherit it, so a writer killed
    while its workers wind down can be restarted at once.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on this platform
        yield
        return
    with open(out / LOCK_NAME, "a+b") as f:
        try:
            fcntl.lockf(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CorpusError(f"another mmtok tokenize is writing to {out}; wait for it or use another --out") from None
        try:
            yield
        finally:
            fcntl.lockf(f.fileno(), fcntl.LOCK_UN)


def _changed(corpus: os.PathLike[str], out: Path, made_from: str | None = None) -> CorpusError:
    if made_from and made_from != Path(corpus).name:  # another corpus, not an edited one
        what = f"the shards in {out} were made from another corpus ({made_from}), not {corpus}"
    else:
        what = f"{corpus} changed since the shards in {out} were made from it (its sha256 differs)"
    return CorpusError(f"{what}; pass --restart (restart=True) to start over there, or use a new --out")


def finished_manifest(corpus: os.PathLike[str], out: Path, sha: str) -> dict[str, Any] | None:
    """The finished manifest in ``out`` if there is one; CorpusError if ``out`` was made from another corpus content."""
    if (out / MANIFEST).is_file():
        done = json.loads((out / MANIFEST).read_text())
        if (done.get("source") or {}).get("sha256") not in (None, sha):
            raise _changed(corpus, out, (done.get("source") or {}).get("file"))
        return cast(dict[str, Any], done)
    first, recorded = out / "shard-00000.json", None
    if first.is_file():
        with contextlib.suppress(ValueError, OSError, AttributeError):  # committed_shards reports a bad index
            recorded = json.loads(first.read_text()).get("source_sha256")
    if recorded not in (None, sha):
        raise _changed(corpus, out)
    return None
