"""Shards -> formats other tools read: parquet, a ``datasets`` folder, or a flat ``tokens.bin``.

* ``parquet``: one file, a row per document: ``doc`` (int64, its JSONL line or
  row), ``ids`` (list of int32), ``modality`` (list of int8, the
  :class:`~mmtok.stream.vocab.Modality` of each id: 0 text, 1 special, 2 image, 3 audio, 4 video, as the
  mark's ``modalities`` says) and ``source`` (the corpus file).
  ``datasets.load_dataset("parquet", data_files=PATH)`` reads it.
* ``datasets``: the same rows as a folder for ``datasets.load_from_disk``.
* ``bin``: a folder with ``tokens.bin`` (every document's ids back to back, uint16
  when the vocabulary fits, else uint32: ``np.memmap`` it), ``index.npy`` (int64
  start of each document; the last ends at the end of ``tokens.bin``), ``doc.npy`` (int64,
  each document's JSONL line or row, as parquet's ``doc``) and
  ``meta.json`` (dtype, vocabulary size, layout and fingerprint, counts).

Positions and loss weights are not exported: they follow from the ids
(:meth:`mmtok.Interleaver.stream`). Parquet and ``datasets`` need
``pip install 'mmtok[hf]'``.

Each export says that it is one, so that a later export to the same path replaces it and
nothing else: the Parquet file in its schema's key-value metadata (``mmtok_export``), the
``datasets`` folder in a file ``mmtok_export.json`` beside its data, the ``bin`` folder in
``meta.json``'s ``format``; each records the vocabulary's layout (``vocab``, :meth:`Vocabulary.to_dict
<mmtok.stream.vocab.Vocabulary.to_dict>`) too. A Parquet file or ``datasets`` folder without that mark (a
corpus, or an export from before the mark) is never replaced; the cache files the ``datasets`` library writes
into a folder it loaded (:data:`DATASETS_CACHE`) are part of the export they were made from. A folder export takes an earlier one's place as
:func:`~mmtok.core.checkpoint_folder.swap_folder` does: the earlier one renamed aside as its backup
(``.NAME.old-XXXXXXXX``), the new one renamed in; the backup an export killed between the two renames left
is put back by the next export to that path, and the temporary folders of one stopped part-way
(``.NAME.tmp-PID...``) are removed by it. Shards are read :data:`SLICE_TOKENS` ids at a time.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmtok.core.checkpoint_folder import TMP_TAG, restore_swaps, sibling_prefix, swap_folder
from mmtok.core.errors import CorpusError, MmtokError, OutputError
from mmtok.core.files import output_error, read_only_folder, temp_name, write_atomic
from mmtok.core.paths import holds_cwd
from mmtok.data.shard_checks import read_json_object
from mmtok.data.shard_ids import id_dtype
from mmtok.data.shards import (
    MANIFEST,
    ShardSet,
    _manifest_folders,
    json_bytes,
    open_shards,
)
from mmtok.stream.vocab import Modality

__all__ = ["FORMATS", "export_shards"]

FORMATS = ("parquet", "datasets", "bin")
MARK_KEY = "mmtok_export"  # the Parquet schema metadata key, and the datasets folder's mark file (+ .json)
MARK_FILE = f"{MARK_KEY}.json"
SLICE_TOKENS = 1 << 20  # ids a Parquet or datasets export reads and converts at a time (~24 bytes each in memory)


def _mark(to: str, fingerprint: Any, vocab: dict[str, Any]) -> dict[str, Any]:
    """What an export to ``to`` of shards with vocabulary ``fingerprint`` records about itself (see the module
    docstring): its format, the fingerprint, the vocabulary's layout (``Vocabulary.to_dict``) and what each
    number in the ``modality`` column means (``modalities``: name -> number)."""
    return {"format": f"mmtok-export-{to}", "format_version": 1, "fingerprint": fingerprint, "vocab": vocab,
            "modalities": {m.name.lower(): int(m) for m in Modality}}


def _documents(folder: Path) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Per shard, in order: (source file, line of each document, document offsets); shards of every part."""
    for sub in _manifest_folders(folder):
        manifest = read_json_object(sub / MANIFEST, "manifest", "re-run mmtok tokenize --restart")
        for entry in manifest["shards"]:
            index = read_json_object(sub / entry["index"], "index", "re-run mmtok tokenize --restart")
            yield (manifest["source"]["file"], np.asarray(index["doc_lines"], np.int64),
                   np.asarray(index["offsets"], np.int64))


def _pyarrow() -> tuple[Any, Any]:
    """The modules ``pyarrow`` and ``pyarrow.parquet``; without them a :class:`CorpusError` naming the extra."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise CorpusError("exporting to parquet or datasets needs pyarrow: pip install 'mmtok[hf]'") from None
    return pa, pq


def _slices(offsets: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Documents ``[i, j)`` of a shard with document starts ``offsets`` (``[docs + 1]``) cut into runs of at most
    ``limit`` ids, each document whole (one longer than ``limit`` is a run of its own); a shard of no documents
    is one empty run.

    >>> _slices(np.array([0, 3, 5, 20, 22]), 6)
    [(0, 2), (2, 3), (3, 4)]
    """
    docs, i = offsets.size - 1, 0
    runs: list[tuple[int, int]] = []
    while i < docs or not runs:
        j = int(np.searchsorted(offsets, offsets[i] + limit, side="right")) - 1
        runs.append((i, max(j, min(i + 1, docs))))
        i = runs[-1][1]
    return runs


def _tables(shards: ShardSet) -> Iterator[Any]:
    """Pyarrow tables with the columns doc, ids, modality, source: every shard's documents in order, about
    :data:`SLICE_TOKENS` ids a table (:func:`_slices`), so that memory stays bounded whatever a shard holds."""
    pa, _ = _pyarrow()
    for tokens, (source, lines, offsets) in zip(shards.tokens, _documents(shards.folder), strict=True):
        for i, j in _slices(offsets, SLICE_TOKENS):
            start, stop = int(offsets[i]), int(offsets[j])
            ids = np.asarray(tokens[start:stop], dtype=np.int64)
            previous = int(tokens[start - 1]) if start else None  # what an <eol> at the start follows
            modality = shards.vocab.stream_modality(ids, previous=previous).astype(np.int8)
            offs = pa.array((offsets[i : j + 1] - start).astype(np.int32))
            yield pa.table({
                "doc": pa.array(lines[i:j], pa.int64()),
                "ids": pa.ListArray.from_arrays(offs, pa.array(ids.astype(np.int32))),
                "modality": pa.ListArray.from_arrays(offs, pa.array(modality)),
                "source": pa.array([source] * (j - i), pa.string()),
            })


def _write_parquet(shards: ShardSet, path: Path, mark: dict[str, Any] | None = None) -> None:
    """The rows of every shard to the Parquet file ``path``, ``mark`` (if any) in its schema metadata.

    A shard of no documents (a part whose every line was skipped) adds no row group: ``datasets`` reads a file
    whose first row group is empty as an error (its batch size is that row group's rows)."""
    _, pq = _pyarrow()
    writer = None
    try:
        for table in _tables(shards):
            if writer is None:
                schema = table.schema if mark is None else table.schema.with_metadata({MARK_KEY: json.dumps(mark)})
                writer = pq.ParquetWriter(path, schema)
            if table.num_rows:
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise CorpusError(f"{shards.folder} holds no shards to export")


def _write_datasets(shards: ShardSet, out: Path, mark: dict[str, Any], scratch: Path) -> None:
    """The rows of every shard as a ``datasets`` folder at ``out``, by way of a Parquet file and the datasets
    cache in the folder ``scratch`` (removed after); no documents give a dataset of no rows with the same
    columns, as the other formats do."""
    try:
        import datasets
    except ImportError:
        raise CorpusError("exporting to datasets needs the datasets package: pip install 'mmtok[hf]'") from None
    scratch.mkdir()
    try:
        parquet = scratch / "docs.parquet"
        _write_parquet(shards, parquet)
        if shards.num_docs:
            datasets.Dataset.from_parquet(str(parquet), cache_dir=str(scratch / "cache")).save_to_disk(str(out))
        else:  # from_parquet cannot read a file of no rows, nor load_from_disk a dataset saved in no shards
            _, pq = _pyarrow()
            datasets.Dataset(pq.read_table(parquet)).save_to_disk(str(out), num_shards=1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    write_atomic(out / MARK_FILE, json_bytes(mark))


def _write_bin(shards: ShardSet, out: Path) -> dict[str, Any]:
    """``tokens.bin``, ``index.npy``, ``doc.npy`` and last ``meta.json`` (see the module docstring) in ``out``."""
    dtype = id_dtype(shards.vocab.size)
    starts, lines, total = [], [], 0
    with open(out / "tokens.bin", "wb") as f:
        for tokens, offsets, (_, doc, _) in zip(shards.tokens, shards.offsets, _documents(shards.folder), strict=True):
            np.asarray(tokens).astype(dtype, copy=False).tofile(f)
            starts.append(offsets[:-1] + total)
            lines.append(doc)
            total += int(tokens.size)
    np.save(out / "index.npy", np.concatenate(starts) if starts else np.zeros(0, np.int64))
    np.save(out / "doc.npy", np.concatenate(lines) if lines else np.zeros(0, np.int64))
    meta = {
        "format": "mmtok-tokens-bin", "format_version": 1, "dtype": dtype.name, "vocab_size": shards.vocab.size,
        "fingerprint": shards.vocab.fingerprint, "docs": shards.num_docs, "tokens": total,
        "vocab": shards.vocab.to_dict(),
    }
    write_atomic(out / "meta.json", json_bytes(meta))
    return meta


# the files the datasets library itself writes into a folder it loaded: the results of shuffle, map, filter,
# sort (cache-*.arrow, cache-*_00000_of_00004.arrow with num_proc) and the temporary file of one stopped part-way
# (tempfile.NamedTemporaryFile: "tmp" and 8 letters, digits or underscores)
DATASETS_CACHE = ("cache-*.arrow", "tmp" + "[a-z0-9_]" * 8)
EXPORT_FILES = {  # what an earlier export of each format holds: only such a path is replaced
    "bin": ("tokens.bin", "index.npy", "doc.npy", "meta.json"),
    "datasets": ("dataset_info.json", "state.json", "data-*.arrow", MARK_FILE, *DATASETS_CACHE),
}
LAST_FILE = {"bin": "meta.json", "datasets": MARK_FILE}  # what a folder export writes last: a backup with it is whole


def _parquet_mark(path: Path) -> dict[str, Any] | None:
    """The ``mmtok_export`` mark in the schema metadata of the Parquet file ``path``, or None."""
    _, pq = _pyarrow()
    try:
        raw = (pq.read_schema(path).metadata or {}).get(MARK_KEY.encode())
        mark = json.loads(raw) if raw is not None else None
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return None
    return mark if isinstance(mark, dict) else None


def _json_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _unmarked(path: Path, to: str) -> str | None:
    """Why ``path``, which exists, must not be replaced by an export to ``to``; None when it is an earlier
    export to ``to`` (marked as one, see the module docstring) or, for the folder formats, an empty folder."""
    kind = "Parquet file" if to == "parquet" else f"folder from 'mmtok export --to {to}'"
    other = f"exists and is not a {kind}; nothing was written (give a new path, or remove it first)"
    old = (f"is a {'Parquet file' if to == 'parquet' else f'{to} folder'} without the mark of an 'mmtok export' (a "
           "corpus, or an export from an older mmtok); nothing was written (give a new path, or remove it first "
           "if it is an old export)")
    if to == "parquet":
        if not path.is_file():
            return other
        with open(path, "rb") as f:
            if f.read(4) != b"PAR1":
                return other
        mark = _parquet_mark(path)
        return None if mark is not None and mark.get("format") == "mmtok-export-parquet" else old
    if not path.is_dir():
        return other
    names = [p.name for p in path.iterdir()]
    if not all(any(Path(n).match(pattern) for pattern in EXPORT_FILES[to]) for n in names):
        return other
    if not names:
        return None
    if to == "bin":
        meta = _json_file(path / "meta.json")
        return None if meta is not None and meta.get("format") == "mmtok-tokens-bin" else other
    if "state.json" not in names:
        return other
    mark = _json_file(path / MARK_FILE)
    return None if mark is not None and mark.get("format") == "mmtok-export-datasets" else old


def _check_target(out: Path, to: str, shards: Path) -> Path:
    """``out`` resolved, once it is safe to replace: absent, or an earlier export to ``to``; never the
    shard folder, a folder that holds it, one inside it, or the current folder; in a folder this process can
    write in."""
    target, source = out.resolve(), shards.resolve()
    if target == source or target in source.parents or source in target.parents or holds_cwd(target):
        raise CorpusError(f"--out {out} is the shard folder, a folder that holds it or the current folder, or lies "
                          "inside the shard folder: give a new path beside them")
    if target.exists() or target.is_symlink():
        why = _unmarked(target, to)
        if why is not None:
            raise CorpusError(f"--out {out} {why}")
    there = read_only_folder(target.parent)
    if there is not None:
        raise CorpusError(f"--out {out} cannot be written: {there} is read-only to you; nothing was written")
    return target


def _os_cause(e: BaseException) -> OSError | None:
    """The OSError (a full disk) behind ``e``: ``e`` itself, or what it was raised from or while handling (the
    datasets package says a full disk as its DatasetGenerationError, a file written inside names the temporary
    folder); None for mmtok's other errors and the rest."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, MmtokError) and not isinstance(cur, OutputError):
            return None
        if isinstance(cur, OSError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _restore_previous(out: Path) -> bool:
    """Put back the folder export at ``out`` that an export killed between its two renames left only as its
    backup (:func:`~mmtok.core.checkpoint_folder.restore_swaps`), saying so in one line on stderr; whether
    anything was done."""
    done = [line for marker in LAST_FILE.values() for line in restore_swaps(out.parent, names=[out.name], marker=marker)]
    if done:
        print(f"mmtok export: {out}: recovered what a stopped export left: {'; '.join(done)}", file=sys.stderr)
    return bool(done)


def export_shards(shards: str | os.PathLike[str], *, to: str, out: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the shards in folder ``shards`` as ``to`` (``parquet``, ``datasets`` or ``bin``) at ``out``.

    Returns a summary (format, path, documents, tokens). ``out`` must be new or an earlier
    export of the same format, which is replaced whole once the export is complete; anything
    else there (a folder of other files, the shards themselves) is refused before any work.

    >>> import pathlib, tempfile, numpy as np
    >>> from mmtok.data.corpus import tokenize_corpus
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "docs.jsonl").write_text('{"segments": ["hi"]}\\n{"segments": ["there"]}\\n')
    >>> _ = tokenize_corpus(d / "docs.jsonl", d / "shards")
    >>> export_shards(d / "shards", to="bin", out=d / "flat")["tokens"]
    11
    >>> np.load(d / "flat" / "index.npy").tolist()
    [0, 4]
    """
    folder, shown = Path(shards), Path(out)
    if to not in FORMATS:
        raise CorpusError(f"cannot export to {to!r}; choose one of {', '.join(FORMATS)}")
    if to != "bin":
        _pyarrow()  # missing: one line naming the extra, before any work
    target = _check_target(shown, to, folder)
    if _restore_previous(target):  # an earlier export back in its place: checked as any other
        target = _check_target(shown, to, folder)
    opened = open_shards(folder)  # checked once (a damaged file is one line naming it) and read by the writers
    manifests = opened.manifests
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        mark = _mark(to, manifests[0].get("fingerprint") if manifests else None, opened.vocab.to_dict())
        if to == "parquet":
            _write_parquet(opened, tmp, mark)
        elif to == "datasets":  # its scratch named as restore_swaps knows a stopped writer's: the next export removes it
            scratch = target.parent / f"{sibling_prefix(target)}{TMP_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}"
            _write_datasets(opened, tmp, mark, scratch)
        else:
            tmp.mkdir()
            _write_bin(opened, tmp)
        if tmp.is_dir():  # an earlier export of this format (see _check_target) goes aside, then goes
            old = swap_folder(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except Exception as e:  # a full disk: said for --out, not for the temporary path beside it
        cause = _os_cause(e)
        if cause is None:
            raise
        raise output_error(shown, cause) from e
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return {"to": to, "out": str(shown), "docs": sum(m["docs"] for m in manifests),
            "tokens": sum(m["tokens"]["total"] for m in manifests)}
