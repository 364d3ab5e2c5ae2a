"""Token shards on disk: atomic commits, the per-shard index, the manifest, and reading them back.

A tokenized folder holds ``shard-00000.bin`` (the ids of whole documents, back to
back, uint16 or uint32, read with ``np.memmap``), ``shard-00000.json`` (its index:
document offsets and line numbers, tokens per modality, skipped lines, the
``.bin``'s sha256) and ``manifest.json`` (the totals). A shard is committed by
writing both files under temporary names, fsyncing them and renaming the
``.bin`` and then the index into place: the index is the commit. On resume,
:func:`committed_shards` checks what is there and removes what was never committed.

:func:`open_shards` checks every ``.bin`` against the sha256 in its index and
that its ids lie inside the vocabulary, once per shard: what it found is
remembered by the file's size and mtime in ``.verified.json`` beside the shards
(written atomically; a read-only folder just checks again next time). A folder of
``part-0000i-of-0000n/`` folders is read only when they are exactly the parts
``0..n-1`` of one ``--part`` split of one version of the corpus (the source
sha256 in every part's manifest): mixing splits or versions would duplicate and
lose documents. For the same reason every index is checked against the manifest
that lists it (:mod:`mmtok.data.shard_checks`: run, number, sha256, counts,
offsets; cheap comparisons, the hashing is ``verify``'s).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmtok.core.errors import CorpusError
from mmtok.core.files import write_atomic
from mmtok.core.run_lock import LOCK_NAME
from mmtok.data.digest import files_sha256
from mmtok.data.run_key import killed_run_differences
from mmtok.data.shard_checks import (
    DTYPES,
    FORMAT_VERSION,
    SHARD_FILE,
    check_document_bounds,
    check_listed_sha256,
    check_not_newer,
    checked_indexes,
    read_json_object,
    shard_files,
)
from mmtok.data.shard_ids import ShardFile
from mmtok.stream.vocab import Modality, Vocabulary

__all__ = ["FORMAT", "INDEX_FORMAT", "MANIFEST", "VERIFIED", "ShardSet",
           "ShardWriter", "check_one_layout", "committed_shards", "is_verified_cache", "json_bytes", "open_shards", "shard_manifest",
           "temp_files"]

FORMAT = "mmtok-shards"  # a manifest's "format"
INDEX_FORMAT = FORMAT + "-index"  # a shard index's "format"
MANIFEST = "manifest.json"
VERIFIED = ".verified.json"  # the shards open_shards has checked, by size and mtime
CACHE_KEYS = frozenset({"size", "mtime_ns", "sha256", "max_id"})  # what VERIFIED records per shard .bin
TEMP_FILE = re.compile(rf"\.(?:shard-\d+\.(?:bin|json)|{re.escape(MANIFEST)}|{re.escape(VERIFIED)})\.tmp-\d+")
MODALITY_NAMES = [m.name.lower() for m in Modality]
PART_NAME = re.compile(r"part-(\d+)-of-(\d+)")  # a --part i/n folder: part-0000i-of-0000n


def temp_files(folder: Path) -> list[Path]:
    """The half-written files a killed :func:`~mmtok.core.files.write_atomic` left in a shard folder (and no other file)."""
    return [p for p in folder.glob(".*.tmp-*") if TEMP_FILE.fullmatch(p.name)]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode()


class ShardWriter:
    """Accumulates documents and commits numbered shards atomically; ``dtype`` is what the ids are stored as,
    uint16 or uint32 in any form numpy reads (``np.uint16``, ``"uint16"``, ``np.dtype("uint16")``)."""

    def __init__(self, out: Path, run: str, dtype: np.dtype | type | str, shard_tokens: int, first_line: int,
                 number: int, extra: dict[str, Any] | None = None):
        if np.dtype(dtype).name not in DTYPES:
            raise CorpusError(f"ShardWriter stores ids as one of {', '.join(DTYPES)}, got dtype {dtype!r}")
        self.out, self.run, self.dtype, self.shard_tokens = Path(out), run, np.dtype(dtype), shard_tokens
        self.number, self.first_line = number, first_line
        self.extra = dict(extra or {})  # more fields for every index (e.g. the corpus's sha256)
        self._reset()

    def _reset(self) -> None:
        self.ids: list[np.ndarray] = []
        self.doc_lines: list[int] = []
        self.counts = np.zeros(len(Modality), np.int64)
        self.skipped: list[dict[str, Any]] = []
        self.tokens = 0

    def add(self, line: int, ids: np.ndarray, counts: np.ndarray) -> None:
        """Document ``line``'s ``ids`` (integers that fit the shards' dtype: one that does not would be stored
        wrapped, another id, so it is a :class:`CorpusError`) and its tokens per modality ``counts``."""
        ids = np.asarray(ids)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise CorpusError(f"document {line}: ids must be integers, got {ids.dtype}")
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) > np.iinfo(self.dtype).max):
            raise CorpusError(f"document {line}: ids must lie in 0..{np.iinfo(self.dtype).max:,} to be stored as "
                              f"{np.dtype(self.dtype).name}, got {int(ids.min()):,}..{int(ids.max()):,}")
        self.ids.append(ids)
        self.doc_lines.append(line)
        self.counts += counts
        self.tokens += ids.size
        if self.tokens >= self.shard_tokens:
            self.commit(line + 1)

    def skip(self, line: int, reason: str) -> None:
        self.skipped.append({"line": line, "reason": reason})

    @property
    def pending(self) -> bool:
        return bool(self.ids or self.skipped)

    def commit(self, next_line: int) -> None:
        name = f"shard-{self.number:05d}"
        data = np.concatenate(self.ids).astype(self.dtype) if self.ids else np.zeros(0, self.dtype)
        offsets = np.concatenate([[0], np.cumsum([a.size for a in self.ids], dtype=np.int64)])
        blob = data.tobytes()
        index = {
            "format": INDEX_FORMAT,
            "format_version": FORMAT_VERSION,
            "run": self.run,
            "shard": self.number,
            "dtype": self.dtype.name,
            "lines": [self.first_line, next_line],
            "docs": len(self.ids),
            "tokens": int(data.size),
            "tokens_by_modality": dict(zip(MODALITY_NAMES, self.counts.tolist(), strict=True)),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "offsets": offsets.tolist(),
            "doc_lines": self.doc_lines,
            "skipped": self.skipped,
            **self.extra,
        }
        write_atomic(self.out / f"{name}.bin", blob)
        write_atomic(self.out / f"{name}.json", json_bytes(index))  # the commit
        _fsync_dir(self.out)
        self.number += 1
        self.first_line = next_line
        self._reset()


def committed_shards(out: Path, run: str, *, dtype: np.dtype | None = None, shard_tokens: int | None = None,
                     tokenizers: dict[str, Any] | None = None, reading: dict[str, Any] | None = None
                     ) -> list[dict[str, Any]]:
    """The indexes of the shards already committed in ``out`` (checked), oldest first; shards of another run are
    refused, naming what differs from this run's ``dtype``, ``shard_tokens``, ``tokenizers`` (its
    :func:`~mmtok.data.run_key.tokenizer_record`) and ``reading`` settings as far as they tell."""
    for tmp in temp_files(out):
        tmp.unlink(missing_ok=True)  # a killed writer's half-written files
    move = f"move it out of {out} (--restart leaves files that are not mmtok's) or use another --out"
    indexes = []
    for k, path in enumerate(shard_files(out, "json")):
        index = read_json_object(path, "index", move)
        check_not_newer(path, index)
        if index.get("format") != INDEX_FORMAT:
            raise CorpusError(f"{path} is not an mmtok shard index (no \"format\": \"{INDEX_FORMAT}\"); {move}")
        if index.get("run") != run:
            raise CorpusError(f"{out} holds shards of a different run "
                              f"({killed_run_differences(out, index, dtype, shard_tokens, tokenizers, reading)}); "
                              "use another --out, or --restart to discard them")
        if index.get("shard") != k or path.name != f"shard-{k:05d}.json":
            raise CorpusError(f"{out}: shard numbering has a gap before {path.name}; "
                              "use another --out, or --restart to discard its shards")
        bin_path = path.with_suffix(".bin")
        itemsize = np.dtype(index["dtype"]).itemsize
        if not bin_path.is_file() or bin_path.stat().st_size != index["tokens"] * itemsize:
            raise CorpusError(f"{bin_path} is missing or has the wrong size; "
                              "use another --out, or --restart to discard its shards")
        indexes.append(index)
    for orphan in shard_files(out, "bin"):  # renamed into place but never committed
        if not orphan.with_suffix(".json").is_file():
            orphan.unlink()
    return indexes


def shard_manifest(
    out: Path, run: str, settings: dict[str, Any], vocab: Vocabulary, source: dict[str, Any]
) -> dict[str, Any]:
    indexes = [read_json_object(p, "index", "re-run mmtok tokenize --restart") for p in shard_files(out, "json")]
    totals = {m: sum(ix["tokens_by_modality"][m] for ix in indexes) for m in MODALITY_NAMES}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "run": run,
        **settings,
        "source": source,
        "vocab": vocab.to_dict(),
        "fingerprint": vocab.fingerprint,
        "docs": sum(ix["docs"] for ix in indexes),
        "tokens": {"total": sum(ix["tokens"] for ix in indexes), **totals},
        "shards": [
            {"bin": f"shard-{ix['shard']:05d}.bin", "index": f"shard-{ix['shard']:05d}.json",
             "docs": ix["docs"], "tokens": ix["tokens"], "sha256": ix["sha256"]}
            for ix in indexes
        ],
        "skipped": [s for ix in indexes for s in ix["skipped"]],
    }


# --------------------------------------------------------------------------- reading


@dataclass
class ShardSet:
    """The shards of a tokenized folder (every part), in order, each read from its file when indexed
    (:mod:`mmtok.data.shard_ids`)."""

    folder: Path
    vocab: Vocabulary
    tokens: list[ShardFile]  # per shard: its ids, read when indexed (no file held open)
    offsets: list[np.ndarray]  # per shard: int64 [docs + 1] document starts
    manifests: list[dict[str, Any]]

    @property
    def num_tokens(self) -> int:
        return sum(t.size for t in self.tokens)

    @property
    def num_docs(self) -> int:
        return sum(len(o) - 1 for o in self.offsets)

    @functools.cached_property
    def digest(self) -> str:
        """16 hex digits naming these shards' contents: sha256 over every shard's sha256, in order
        (the same corpus tokenized with another ``--shard-tokens`` gets another digest)."""
        h = hashlib.sha256()
        for m in self.manifests:
            for entry in m["shards"]:
                h.update(entry["sha256"].encode())
        return h.hexdigest()[:16]

    def documents(self) -> Iterator[np.ndarray]:
        """Every document's ids, in order."""
        for toks, offs in zip(self.tokens, self.offsets, strict=True):
            for a, b in zip(offs[:-1], offs[1:], strict=True):  # noqa: RUF007
                yield np.asarray(toks[a:b], dtype=np.int64)

    @functools.cached_property
    def _first_docs(self) -> np.ndarray:
        """Each shard's first document number, then the total: int64 ``[shards + 1]``."""
        return np.cumsum([0] + [len(o) - 1 for o in self.offsets], dtype=np.int64)

    def __len__(self) -> int:
        """The number of documents (``num_docs``)."""
        return self.num_docs

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.documents()

    def __getitem__(self, i: int | np.integer[Any]) -> np.ndarray:
        """Document ``i``'s ids (int64), counted across every shard; negative ``i`` counts from the end."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"shard documents are indexed by an int, not {type(i).__name__}")
        firsts = self._first_docs
        n = int(firsts[-1])
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"document {i} is out of range: {self.folder} holds {n} documents")
        s = int(np.searchsorted(firsts, j, side="right")) - 1
        offs, k = self.offsets[s], j - int(firsts[s])
        return np.asarray(self.tokens[s][offs[k]:offs[k + 1]], dtype=np.int64)


def check_one_layout(folder: Path, part: tuple[int, int] | None = None) -> None:
    """A :class:`CorpusError` when ``folder`` holds a whole corpus (its manifest at the top) and part folders
    (``part-*-of-*``) too, or would once part ``part`` (``(i, n)``; ``n == 1``: the whole corpus) is written
    into it: which documents are meant is then anyone's guess, so neither is read nor added to."""
    parts = sorted(p.name for p in folder.glob("part-*-of-*") if p.is_dir()) if folder.is_dir() else []
    whole = (folder / MANIFEST).is_file()
    if part is None and not (whole and parts):
        return
    if part is not None and not (parts if part[1] == 1 else whole):
        return
    shown = ", ".join(parts[:3]) + (f" and {len(parts) - 3} more" if len(parts) > 3 else "")
    fix = "a shard folder holds one or the other: give another --out, or move one of them out"
    if part is not None and not whole:
        raise CorpusError(f"{folder} holds part folders ({shown}); the whole corpus (--part 0/1) would go beside "
                          f"them, with its {MANIFEST} at the top: {fix}")
    if part is not None and not parts:
        raise CorpusError(f"{folder} holds a whole corpus ({MANIFEST} at its top); part {part[0]}/{part[1]} would go "
                          f"beside it, in a part folder: {fix}")
    raise CorpusError(f"{folder} holds a whole corpus ({MANIFEST} at its top) and part folders too ({shown}); {fix}")


def _manifest_folders(folder: Path) -> list[Path]:
    if (folder / MANIFEST).is_file():
        check_one_layout(folder)
        return [folder]
    if not folder.exists():
        raise CorpusError(f"no shard folder at {folder}: it does not exist, so there is no {MANIFEST} "
                          "(mmtok tokenize --out writes one)")
    if not folder.is_dir():
        raise CorpusError(f"{folder} is a file, not a shard folder: pass the folder mmtok tokenize --out wrote "
                          f"(it holds {MANIFEST} and the shards)")
    parts = sorted(p for p in folder.glob("part-*-of-*") if (p / MANIFEST).is_file())
    if not parts:
        if any(folder.glob("shard-*.json")) or any(folder.glob("part-*-of-*/shard-*.json")) or (folder / LOCK_NAME).exists():
            raise CorpusError(f"{folder} holds the shards of a 'mmtok tokenize' that has not finished (no {MANIFEST} "
                              "yet): run the same command again to resume it")
        raise CorpusError(f"{folder} has no {MANIFEST} (and no part-*/ folders with one); run mmtok tokenize first")
    _check_split(folder, parts)
    return sorted(parts, key=_part_of)  # by number: part-100000-of-... after part-99999-of-...


def _part_of(path: Path) -> tuple[int, int]:
    """``(i, n)`` from a part folder's name as :func:`~mmtok.data.corpus.part_folder` writes it."""
    match = PART_NAME.fullmatch(path.name)
    if match is None or path.name != f"part-{int(match[1]):05d}-of-{int(match[2]):05d}":
        raise CorpusError(f"{path} is not a part folder mmtok tokenize writes (part-IIIII-of-NNNNN); "
                          "move it out of the shard folder")
    return int(match[1]), int(match[2])


def _check_split(folder: Path, parts: list[Path]) -> None:
    """Refuse part folders that are not exactly parts ``0..n-1`` of one ``--part i/n`` split.

    Parts of different splits overlap and leave documents out, so mixing them
    would silently duplicate and lose documents.
    """
    split = {p.name: _part_of(p) for p in parts}
    counts = sorted({n for _, n in split.values()})
    if len(counts) > 1:
        groups = "; ".join(f"of {n}: {', '.join(k for k, (_, m) in split.items() if m == n)}" for n in counts)
        raise CorpusError(f"{folder} mixes part folders of {len(counts)} different --part splits ({groups}); "
                          "tokenize each split into its own --out folder")
    n = counts[0]
    extra = [k for k, (i, _) in split.items() if i >= n]
    if extra:
        raise CorpusError(f"{folder} has part folders outside a split into {n} parts ({', '.join(extra)}); "
                          "remove them")
    missing = [f"part-{i:05d}-of-{n:05d}" for i in range(n) if f"part-{i:05d}-of-{n:05d}" not in split]
    if missing:
        raise CorpusError(f"{folder} has {len(parts)} of {n} parts finished (missing {', '.join(missing)}); "
                          "tokenize the missing parts first")


def _check_same_corpus(folder: Path, parts: list[tuple[Path, dict[str, Any]]]) -> None:
    """Refuse part folders whose manifests record another part or another version of the corpus (sha256)."""
    for sub, m in parts:
        if m.get("part") not in (None, list(_part_of(sub))):
            raise CorpusError(f"{sub / MANIFEST} records part {m.get('part')}, not the one its folder name says; "
                              "tokenize that part again")
    shas = {sub.name: (m.get("source") or {}).get("sha256") for sub, m in parts}
    if len(set(shas.values())) > 1:
        which = ", ".join(f"{name}: {str(sha)[:12]}" for name, sha in shas.items())
        raise CorpusError(f"{folder}: its part folders were made from different versions of the corpus "
                          f"(source sha256 {which}); tokenize every part again from one corpus (--restart)")


def _read_manifest(sub: Path) -> dict[str, Any]:
    """``sub``'s manifest, refused unless it is one of this format and a version this mmtok reads."""
    path = sub / MANIFEST
    fix = f"move it out of {sub} and re-run mmtok tokenize --restart there, or tokenize into another --out"
    m = read_json_object(path, "manifest", fix)
    check_not_newer(path, m)
    version = m.get("format_version", 0)
    if m.get("format") != FORMAT or not isinstance(version, int) or version > FORMAT_VERSION:
        raise CorpusError(f"{path} is not an mmtok shard manifest this version reads (format "
                          f"{m.get('format')!r} version {version!r}, this mmtok reads {FORMAT!r} up to version "
                          f"{FORMAT_VERSION}); {fix}")
    if not isinstance(m.get("shards"), list) or not isinstance(m.get("vocab"), dict) \
            or not isinstance(m.get("source", {}), dict):
        raise CorpusError(f"{path} is not a readable mmtok shard manifest (it lacks its shards list, vocab or "
                          f"source); {fix}")
    return m


def is_verified_cache(obj: Any) -> bool:
    """Whether ``obj`` (a parsed :data:`VERIFIED`) is what :func:`open_shards` writes there: per shard ``.bin``, its
    size, mtime, sha256 and largest id (an entry whose values are not of their kind is checked again and rewritten:
    :func:`_check_shard`)."""
    return isinstance(obj, dict) and bool(obj) and all(
        SHARD_FILE.fullmatch(name) is not None and name.endswith(".bin") and isinstance(seen, dict)
        and CACHE_KEYS <= seen.keys() for name, seen in obj.items())


def _verified(sub: Path) -> tuple[dict[str, Any], bool]:
    """The cache in ``sub``'s :data:`VERIFIED` and whether open_shards may write it: never over a file that
    is not its cache (it stays as it is, and the shards are checked again next time)."""
    path = sub / VERIFIED
    if not path.exists():
        return {}, True
    try:
        cache = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}, False
    return (cache, True) if is_verified_cache(cache) else ({}, False)


def _check_shard(bin_path: Path, index: dict[str, Any], vocab_size: int, cache: dict[str, Any]) -> bool:
    """Check a shard's bytes (sha256) and ids (< ``vocab_size``) unless ``cache`` vouches for this very file.

    Returns whether ``cache`` gained an entry.
    """
    st = bin_path.stat()
    key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": index["sha256"]}
    seen = cache.get(bin_path.name)
    fresh = not (isinstance(seen, dict) and all(seen.get(k) == v for k, v in key.items())
                 and isinstance(seen.get("max_id"), int) and not isinstance(seen["max_id"], bool))
    if fresh:
        if files_sha256([bin_path]) != index["sha256"]:
            raise CorpusError(f"{bin_path} does not match the sha256 in its index {bin_path.stem}.json: "
                              "the shard is damaged or was changed; tokenize the corpus again")
        top = int(np.memmap(bin_path, dtype=index["dtype"], mode="r").max()) if index["tokens"] else -1
        cache[bin_path.name] = seen = {**key, "max_id": top}
    if int(seen["max_id"]) >= vocab_size:
        raise CorpusError(f"{bin_path} holds id {seen['max_id']}, outside the vocabulary of {vocab_size} ids "
                          "in its manifest; tokenize the corpus again")
    return fresh


def _wrong_size(bin_path: Path, size: int, index: dict[str, Any], manifest: dict[str, Any]) -> str:
    """What is wrong with a shard ``.bin`` of ``size`` bytes (-1: none there) where its index counts other tokens,
    and how to make the shards again."""
    want = index["tokens"] * np.dtype(index["dtype"]).itemsize
    found = "it is not there" if size < 0 else f"it holds {size:,} bytes, not {want:,}: it was cut short or changed"
    corpus = (manifest.get("source") or {}).get("file") or "CORPUS"
    return (f"{bin_path} is missing or does not have the {index['tokens']} tokens its index says ({found}); the "
            f"shards in {bin_path.parent} are damaged: tokenize the corpus again (mmtok tokenize {corpus} --out "
            f"{bin_path.parent} --restart, or into another --out)")


def open_shards(
    folder: str | os.PathLike[str], *, vocab: Vocabulary | None = None, verify: bool = True
) -> ShardSet:
    """The shards under ``folder`` (its part folders too, in order), each read from its file when indexed.

    Refuses the shards if ``vocab`` is not the vocabulary they were made with;
    ``verify`` (the default) checks each ``.bin`` against the sha256 in its index
    and its ids against the vocabulary, once per file (see :data:`VERIFIED`).
    """
    folder = Path(folder)
    tokens, offsets, manifests = [], [], []
    saved: Vocabulary | None = None
    read = [(sub, _read_manifest(sub)) for sub in _manifest_folders(folder)]
    if read[0][0] != folder:  # part folders: one split of one corpus
        _check_same_corpus(folder, read)
    for sub, m in read:
        v = Vocabulary.from_dict(m["vocab"], where=str(sub / MANIFEST))
        if saved is not None and v != saved:
            saved.check_same(v, what=f"the shards in {sub}")
        saved = v
        (cache, writable), changed = _verified(sub) if verify else ({}, False), False
        for entry, (index, offs) in zip(m["shards"], checked_indexes(sub / MANIFEST, m), strict=True):
            bin_path = sub / entry["bin"]
            size = bin_path.stat().st_size if bin_path.is_file() else -1
            if size != index["tokens"] * np.dtype(index["dtype"]).itemsize:
                raise CorpusError(_wrong_size(bin_path, size, index, m))
            if verify:
                changed = _check_shard(bin_path, index, v.size, cache) or changed
            check_listed_sha256(sub / MANIFEST, entry, index)  # after the bytes: a damaged shard is reported as such
            if verify:
                check_document_bounds(bin_path, index, offs, v.id("<bos>"), v.id("<eos>"))
            tokens.append(ShardFile(bin_path, np.dtype(index["dtype"]), int(index["tokens"])))
            offsets.append(offs)
        if changed and writable:
            with contextlib.suppress(OSError):  # a read-only folder: check again next time
                write_atomic(sub / VERIFIED, json_bytes(cache))
        manifests.append(m)
    assert saved is not None
    if vocab is not None:
        vocab.check_same(saved, what=f"the shards in {folder}")
    return ShardSet(folder, saved, tokens, offsets, manifests)
