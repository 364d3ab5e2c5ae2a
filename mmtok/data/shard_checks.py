"""What a shard folder's metadata must say before its shards are read: one reader, shards in number order, checks.

:func:`read_json_object` is the one reader of a folder's JSON files (manifest,
shard index): a damaged, foreign or missing file is a one-line
:class:`~mmtok.core.errors.CorpusError`, never a bare traceback.
:func:`shard_files` lists ``shard-NNNNN`` files by number (``shard-100000``
after ``shard-99999``). :func:`checked_indexes` compares a manifest's shards
with their indexes (run, shard number, sha256, documents, tokens, offsets,
totals): cheap metadata comparisons, no hashing, so a folder that mixes shards
of different runs, or whose manifest or index was edited, is refused instead of
silently duplicating and losing documents.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from mmtok.core.errors import CorpusError
from mmtok.core.format_version import is_newer, newer_message

__all__ = ["FORMAT_VERSION", "SHARD_FILE", "check_document_bounds", "check_listed_sha256", "check_not_newer",
           "checked_indexes", "read_json_object", "shard_files"]

FORMAT_VERSION = 1  # the newest format of the shard files (manifest.json, shard-*.json) this mmtok writes and reads
DTYPES = ("uint16", "uint32")  # what a shard's ids are stored as
SHARD_FILE = re.compile(r"shard-(\d+)\.(bin|json)")  # a shard's ids or its index
EDITED = ("the folder mixes shards of different runs or was edited by hand: re-run mmtok tokenize --restart "
          "into it, or tokenize into another --out")


def _kind(obj: Any) -> str:
    """What JSON calls ``obj``'s type."""
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(obj), "a number")


def read_json_object(path: Path, what: str, fix: str) -> dict[str, Any]:
    """The JSON object in ``path``, a shard folder's ``what`` (``"manifest"``, ``"index"``), or a one-line
    :class:`CorpusError` naming the file, why it cannot be read and ``fix`` (what to do about it)."""
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        reason = "it does not exist"
    except OSError as e:
        reason = e.strerror or type(e).__name__
    except UnicodeDecodeError:
        reason = "it is not UTF-8 text"
    except (ValueError, RecursionError) as e:
        reason = f"it is not valid JSON: {e}"
    else:
        if isinstance(obj, dict):
            return obj
        reason = f"it holds {_kind(obj)}, not a JSON object"
    raise CorpusError(f"{path} is not a readable mmtok shard {what} ({reason}); {fix}")


def shard_files(folder: Path, suffix: str) -> list[Path]:
    """The ``shard-NNNNN.<suffix>`` files in ``folder`` in shard-number order (``shard-100000`` after
    ``shard-99999``, which a string sort gets wrong); other ``shard-*`` names are not mmtok's and are left out."""
    found = []
    for path in folder.glob(f"shard-*.{suffix}"):
        match = SHARD_FILE.fullmatch(path.name)
        if match is not None and match[2] == suffix:
            found.append((int(match[1]), path.name, path))
    return [path for _, _, path in sorted(found)]


def checked_indexes(where: Path, manifest: dict[str, Any]) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Each shard the manifest ``manifest`` (read from ``where``) lists, in order: its index and its int64
    document offsets, checked.

    The manifest must list ``shard-00000``, ``shard-00001``, ... with no shard index after the last; each index
    must be one of this run (``run``), of its number, agree with the manifest's entry (documents, tokens; the
    sha256 is :func:`check_listed_sha256`'s, once the bytes are checked) and hold offsets from 0 up to its
    tokens; the manifest's totals (documents, tokens, tokens per modality) must be the sum. Any disagreement is a :class:`CorpusError` naming the file
    and what disagrees.
    """
    sub, entries = where.parent, manifest["shards"]
    read = []
    for k, entry in enumerate(entries):
        name = f"shard-{k:05d}"
        if not isinstance(entry, dict) or entry.get("bin") != f"{name}.bin" or entry.get("index") != f"{name}.json":
            shown = {key: entry.get(key) for key in ("bin", "index")} if isinstance(entry, dict) else entry
            raise CorpusError(f"{where} lists {shown} as shard {k}, not {name}.bin and {name}.json; {EDITED}")
        path = sub / f"{name}.json"
        index = read_json_object(path, "index", EDITED)
        check_not_newer(path, index)
        problem = _malformed(index, manifest) or _disagreement(index, k, entry, manifest) or _bad_offsets(index)
        if problem is not None:
            raise CorpusError(f"{path} does not match {where}: {problem}; {EDITED}")
        read.append((index, np.asarray(index["offsets"], dtype=np.int64)))
    indexes = [index for index, _ in read]
    _check_totals(where, manifest, indexes)
    following = sub / f"shard-{len(entries):05d}.json"
    if following.is_file():
        raise CorpusError(f"{following} is not listed in {where} (it lists {len(entries)} shards); {EDITED}")
    _check_modality_totals(where, manifest.get("tokens", {}), indexes)
    return read


def check_not_newer(path: Path, obj: dict[str, Any]) -> None:
    """Refuse a shard folder's JSON file ``path`` (read as ``obj``) that a newer mmtok wrote: its shards are not
    damaged, and are left as they are. A file with no ``format_version`` is read as this version's."""
    if is_newer(version := obj.get("format_version"), FORMAT_VERSION):
        raise CorpusError(newer_message(path, version, FORMAT_VERSION, "; its shards are left as they are (do not "
                                        "--restart over them), or tokenize the corpus into another --out"))


def check_listed_sha256(where: Path, entry: dict[str, Any], index: dict[str, Any]) -> None:
    """Refuse a shard whose index records another sha256 than the manifest ``where`` lists for it (``entry``)."""
    if "sha256" in entry and entry["sha256"] != index["sha256"]:
        raise CorpusError(f"{where.parent / entry['index']} does not match {where}: its sha256 is "
                          f"{index['sha256'][:12]}..., the manifest lists {str(entry['sha256'])[:12]}...; {EDITED}")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _malformed(index: dict[str, Any], manifest: dict[str, Any]) -> str | None:
    """What an index lacks that reading its shard needs (its format is its manifest's, ``-index``), or None."""
    expected = f"{manifest.get('format')}-index"
    if index.get("format") != expected:
        return f'it is not an mmtok shard index (its "format" is {index.get("format")!r}, not {expected!r})'
    if index.get("dtype") not in DTYPES or index["dtype"] != manifest.get("dtype", index["dtype"]):
        return f"its dtype {index.get('dtype')!r} is not the manifest's {manifest.get('dtype')!r}"
    for key in ("docs", "tokens"):
        if not _count(index.get(key)):
            return f"its {key} is {index.get(key)!r}, not a count"
    if not isinstance(index.get("sha256"), str) or not isinstance(index.get("offsets"), list):
        return "it has no sha256 or no offsets list"
    return None


def _disagreement(index: dict[str, Any], k: int, entry: dict[str, Any], manifest: dict[str, Any]) -> str | None:
    """How an index disagrees with the manifest that lists it as shard ``k`` (its entry ``entry``), or None."""
    if index.get("run") != manifest.get("run"):
        return f"it is of run {index.get('run')!r}, the manifest of run {manifest.get('run')!r}"
    if index.get("shard") != k:
        return f"it is shard {index.get('shard')!r}, listed as shard {k}"
    for key in ("docs", "tokens"):
        if key in entry and entry[key] != index[key]:
            return f"its {key} is {index[key]!r}, the manifest lists {entry[key]!r}"
    lines = index.get("doc_lines")
    if lines is not None and (not isinstance(lines, list) or len(lines) != index["docs"]):
        return f"its doc_lines do not number its {index['docs']} documents"
    return None


def _bad_offsets(index: dict[str, Any]) -> str | None:
    """What is wrong with an index's document offsets (``[docs + 1]``, 0 up to ``tokens``, never down), or None."""
    docs, tokens = index["docs"], index["tokens"]
    try:
        offsets = np.asarray(index["offsets"])
    except (ValueError, OverflowError):  # ragged nesting
        offsets = np.zeros((0, 0))
    if offsets.ndim != 1 or offsets.size != docs + 1 or offsets.dtype.kind != "i":
        return f"its offsets are not {docs + 1} whole numbers (one per document, then the end)"
    if offsets[0] != 0 or offsets[-1] != tokens or bool(np.any(np.diff(offsets) < 0)):
        return f"its offsets do not rise from 0 to its {tokens} tokens"
    return None


def _check_totals(where: Path, manifest: dict[str, Any], indexes: list[dict[str, Any]]) -> None:
    """Refuse a manifest whose recorded totals (documents, tokens) are not counts, or not the sum over its shards'
    indexes."""
    tokens = manifest.get("tokens", {})
    if not isinstance(tokens, dict) or not all(_count(v) for v in tokens.values()):
        raise CorpusError(f"{where}: its tokens are {tokens!r}, not a count per modality and a total; {EDITED}")
    recorded = {"documents": manifest.get("docs"), "tokens": tokens.get("total")}
    found = {"documents": sum(ix["docs"] for ix in indexes), "tokens": sum(ix["tokens"] for ix in indexes)}
    for what, total in recorded.items():
        if total is not None and total != found[what]:
            raise CorpusError(f"{where} records {total!r} {what}, but the indexes of the shards it lists hold "
                              f"{found[what]}; {EDITED}")


def _check_modality_totals(where: Path, tokens: dict[str, int], indexes: list[dict[str, Any]]) -> None:
    """Refuse a manifest whose tokens per modality are not the sums over its shards' indexes, or do not add up to
    their tokens."""
    recorded = {k: v for k, v in tokens.items() if k != "total"}
    if not recorded:
        return
    for k, n in _modality_totals(indexes, recorded).items():
        if recorded[k] != n:
            raise CorpusError(f"{where} records {recorded[k]!r} {k} tokens, but the indexes of the shards it lists "
                              f"hold {n}; {EDITED}")
    total = sum(ix["tokens"] for ix in indexes)
    if sum(recorded.values()) != total:
        raise CorpusError(f"{where} records {sum(recorded.values())} tokens by modality, but the indexes of the "
                          f"shards it lists hold {total}; {EDITED}")


def _modality_totals(indexes: list[dict[str, Any]], recorded: dict[str, int]) -> dict[str, int]:
    """Each modality of ``recorded``: its tokens summed over the indexes' ``tokens_by_modality`` when every index
    holds them as counts that add up to its tokens; else ``recorded`` itself (then only its sum is checked)."""
    counts = [ix.get("tokens_by_modality") for ix in indexes]
    if not all(isinstance(c, dict) and all(_count(v) for v in c.values()) and sum(c.values()) == ix["tokens"]
               for c, ix in zip(counts, indexes, strict=True)):
        return recorded
    return {k: sum(c.get(k, 0) for c in counts) for k in recorded}


def check_document_bounds(bin_path: Path, index: dict[str, Any], offsets: np.ndarray, bos: int, eos: int) -> None:
    """Refuse a shard whose index's document offsets (checked by :func:`checked_indexes`) do not fall where its
    documents begin and end: every document mmtok tokenize writes starts with ``<bos>`` (id ``bos``) and ends
    with ``<eos>`` (id ``eos``), so offsets moved by hand start or end one elsewhere, or leave one empty."""
    if offsets.size < 2:
        return
    ids = np.memmap(bin_path, dtype=index["dtype"], mode="r") if index["tokens"] else np.zeros(0, np.int64)
    sizes = np.diff(offsets)
    nonempty = sizes > 0
    starts, ends = offsets[:-1][nonempty], offsets[1:][nonempty] - 1
    bad = np.flatnonzero(~nonempty)
    if not bad.size:
        wrong = (ids[starts] != bos) | (ids[ends] != eos)
        bad = np.flatnonzero(wrong)
    del ids
    if bad.size:
        k = int(bad[0])
        raise CorpusError(f"{bin_path}: document {k} (ids {int(offsets[k])}..{int(offsets[k + 1])} by the offsets in "
                          f"{bin_path.stem}.json) does not start with <bos> and end with <eos> as every document "
                          f"mmtok tokenize writes does: its offsets were changed; {EDITED}")
