"""The output folder of a tokenize run: claimed under a lock, restarted on request, checked against the corpus.

:func:`claimed` creates the folder, holds its ``.lock`` for the run (released in
every path, by the OS even after ``kill -9``; removed when the run ends, so a
finished folder holds only what the run wrote), discards an earlier run's
shards for ``--restart``, turns an OS error (read-only or full disk, an ``--out``
that is a file) into a one-line :class:`~mmtok.core.errors.CorpusError`, and
removes the folders it created if a failed run left them empty.
:func:`finished_manifest` refuses a folder made from another version of the
corpus (the corpus's sha256 is in every shard index and the manifest). A finished
run in a folder that cannot be written (:func:`read_only`: a read-only mount, no
write permission) is read back without the lock.

A folder may hold the user's own files: a ``manifest.json`` that is not an
mmtok shard manifest (its ``"format"``) stops a run, ``--restart`` or not,
before any work, and :func:`discard_shards` removes only what mmtok wrote (shard
pairs whose index is mmtok's, its manifest, its verification cache, its
half-written files).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from mmtok.core.errors import CorpusError
from mmtok.data.shard_checks import check_not_newer, read_json_object, shard_files
from mmtok.data.shards import (
    FORMAT,
    INDEX_FORMAT,
    MANIFEST,
    VERIFIED,
    is_verified_cache,
    temp_files,
)

__all__ = ["LOCK_NAME", "claimed", "discard_shards", "finished_manifest", "own_manifest", "read_only"]

LOCK_NAME = ".lock"  # held while a run writes the folder


@contextlib.contextmanager
def claimed(folder: Path, *, restart: bool = False) -> Iterator[None]:
    """Create and lock ``folder`` for one run (see the module docstring)."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder):
            own_manifest(folder)  # a manifest.json that is not mmtok's stops the run before any work
            if restart:
                discard_shards(folder)
            yield
    except OSError as e:
        _remove_if_empty(created)
        raise CorpusError(f"cannot tokenize into {folder}: {e.strerror or e}"
                          f"{f' ({e.filename})' if e.filename else ''}; shards committed before stay; fix that "
                          "(a folder you may write, space on its disk) or give another --out") from None
    except BaseException:
        _remove_if_empty(created)
        raise


def read_only(folder: Path) -> str | None:
    """Why ``folder``, which holds a finished run's manifest, cannot be written (a read-only file system, no write
    permission): a run there reads that manifest back without taking the folder's lock; None when it can be, or
    holds no manifest (:func:`claimed` then says what stops a run)."""
    if not (folder / MANIFEST).is_file() or os.access(folder, os.W_OK):
        return None
    try:
        readonly_fs = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        readonly_fs = False
    return "it is on a read-only file system" if readonly_fs else "it is not writable (permission denied)"


def _remove_if_empty(created: list[Path]) -> None:
    """Remove the folders this run created (deepest first) that are empty (its lock file is gone by then; another
    run's stays, and so does its folder)."""
    for folder in created:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _json(path: Path) -> Any:
    """What ``path`` holds as JSON, or None if it is missing or not JSON."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None


def _format(obj: Any) -> Any:
    return obj.get("format") if isinstance(obj, dict) else None


def discard_shards(folder: Path) -> None:
    """``--restart``: remove the shards, manifest, verification cache and half-written files an earlier run left
    in ``folder``, and nothing else: a ``shard-NNNNN.bin``/``.json`` pair goes only when its index is mmtok's
    (its ``"format"``, or mmtok's manifest lists it), the manifest and ``.verified.json`` only when they are
    mmtok's; any other file stays where it is."""
    manifest = _json(folder / MANIFEST)
    mine = _format(manifest) == FORMAT
    entries = manifest.get("shards") if mine else None
    listed = {e.get("index") for e in entries if isinstance(e, dict)} if isinstance(entries, list) else set()
    for index in shard_files(folder, "json"):
        if index.name in listed or _format(_json(index)) == INDEX_FORMAT:
            index.with_suffix(".bin").unlink(missing_ok=True)
            index.unlink(missing_ok=True)
    for tmp in temp_files(folder):
        tmp.unlink(missing_ok=True)
    if mine:
        (folder / MANIFEST).unlink(missing_ok=True)
    if is_verified_cache(_json(folder / VERIFIED)):
        (folder / VERIFIED).unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` (released by the OS even after kill -9) and leave no lock file behind.

    A POSIX record lock on ``out/.lock``: forked workers do not inherit it, so a writer killed while its
    workers wind down can be restarted at once. The holder removes the file before it lets go, so a run
    that opened the file before that and locks it afterwards finds that ``.lock`` no longer names the file
    it locked, and starts over on the one it names now: two runs never hold the folder at once.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on this platform
        yield
        return
    path = out / LOCK_NAME
    while (fd := _lock(path, fcntl)) is None:  # locked a file the run before removed: lock the one named now
        pass
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # a lock file that cannot go stays, as one a kill leaves does
            path.unlink(missing_ok=True)  # while still held: whoever locks this file next sees it is stale
        os.close(fd)  # releases the lock


def _lock(path: Path, fcntl: ModuleType) -> int | None:
    """Open and lock ``path``: its descriptor, holding the lock; None when the file locked is no longer the one
    ``path`` names (its holder removed it meanwhile: closed again). A :class:`CorpusError` when it is held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CorpusError(f"another mmtok tokenize is writing to {path.parent}; wait for it or use another "
                              "--out") from None
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        mine = os.fstat(fd)
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def _changed(corpus: os.PathLike[str], out: Path, made_from: str | None = None) -> CorpusError:
    if made_from and made_from != Path(corpus).name:  # another corpus, not an edited one
        what = f"the shards in {out} were made from another corpus ({made_from}), not {corpus}"
    else:
        what = f"{corpus} changed since the shards in {out} were made from it (its sha256 differs)"
    return CorpusError(f"{what}; pass --restart (restart=True) to start over there, or use a new --out")


def own_manifest(out: Path) -> dict[str, Any] | None:
    """``out``'s ``manifest.json`` (None if it has none), refused with a :class:`CorpusError` unless it is an mmtok
    shard manifest: a tokenize run neither reads nor replaces (nor, with ``--restart``, deletes) another file."""
    path = out / MANIFEST
    if not path.exists():
        return None
    fix = (f"mmtok tokenize does not replace a {MANIFEST} it did not write: move it out of {out}, "
           "or tokenize into another --out")
    done = read_json_object(path, "manifest", fix)
    if done.get("format") != FORMAT:
        got = f'its "format" is {json.dumps(done["format"])[:40]}' if "format" in done else 'it has no "format"'
        raise CorpusError(f'{path} is not an mmtok shard manifest ({got}, not "{FORMAT}"); {fix}')
    check_not_newer(path, done)  # a newer mmtok's corpus: neither taken as finished nor resumed here
    return done


def finished_manifest(corpus: os.PathLike[str], out: Path, sha: str) -> dict[str, Any] | None:
    """The finished manifest in ``out`` if there is one; CorpusError if ``out`` was made from another corpus content
    (or its ``manifest.json`` is not mmtok's)."""
    done = own_manifest(out)
    if done is not None:
        source = done.get("source") if isinstance(done.get("source"), dict) else {}
        if source.get("sha256") not in (None, sha):
            raise _changed(corpus, out, source.get("file"))
        return done
    first, recorded = out / "shard-00000.json", None
    if first.is_file():
        with contextlib.suppress(CorpusError):  # committed_shards reports a bad index
            recorded = read_json_object(first, "index", "").get("source_sha256")
    if recorded not in (None, sha):
        raise _changed(corpus, out)
    return None
