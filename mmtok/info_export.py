"""What ``mmtok info PATH`` says of an export (``mmtok export --to parquet|datasets|bin``), and of the hidden
names a writer killed part-way leaves beside a folder or in it.

An export is described from its own record (a bin folder's ``meta.json``, a datasets folder's
``mmtok_export.json``, a Parquet file's schema metadata ``mmtok_export``) and checked against the files it
names: a bin folder's ``tokens.bin`` must hold the tokens its ``meta.json`` counts, and its ``index.npy`` a
start per document; what is not so is listed under ``damaged``. An export a newer mmtok wrote (a larger
``format_version``) is refused, naming both versions. An export a kill stopped between its two renames is
left only as its backup (``.NAME.old-XXXXXXXX``): that is said, with how to get it back. Nothing is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mmtok.core.checkpoint_folder import BACKUP_NAME, TEMP_NAME, backup_of, pid_alive
from mmtok.core.errors import CheckpointError
from mmtok.stream.vocab import Vocabulary

__all__ = ["describe_export", "export_backup", "leftovers", "vocab_tokenizers"]

EXPORT_COLUMNS = ["doc", "ids", "modality", "source"]  # the rows mmtok export writes to parquet and datasets
EXPORT_VERSION = 1  # the newest format_version of an export this mmtok reads (meta.json, the mark)
PARQUET_MAGIC = b"PAR1"  # the first (and last) bytes of every Parquet file
MARKERS = {"bin": "meta.json", "datasets": "mmtok_export.json"}  # what a folder export writes last
AGAIN = "export the shards again (mmtok export SHARDS --to {to} --out {path})"


def describe_export(p: Path) -> dict[str, Any] | None:
    """What ``mmtok export`` wrote at ``p`` (a Parquet file, a datasets folder or a bin folder): its format, its
    documents (and tokens, for bin), the vocabulary or mark it records and, under ``damaged``, the files that do
    not hold what it says; None when ``p`` is none of them. Exports of earlier releases carry no mark: known by
    their columns, said so."""
    out: dict[str, Any] = {"what": "export", "path": str(p)}
    meta = p / "meta.json"
    if p.is_dir() and meta.is_file():
        record = _json(meta, again=AGAIN.format(to="bin", path=p))
        if record.get("format") != "mmtok-tokens-bin":
            return None
        _check_version(meta, record, "bin", p)
        vocab = Vocabulary.from_dict(record["vocab"], where=str(meta)) if isinstance(record.get("vocab"), dict) else None
        damaged = _bin_damage(p, record)
        return out | {"format": "bin (mmtok export --to bin)", "documents": record.get("docs"),
                      "tokens": record.get("tokens"), "dtype": record.get("dtype"),
                      "vocab_size": record.get("vocab_size"), "fingerprint": record.get("fingerprint"),
                      "tokenizers": vocab_tokenizers(vocab) if vocab is not None else None,
                      "damaged": damaged or None, "repair": AGAIN.format(to="bin", path=p) if damaged else None,
                      "leftovers": leftovers(p)}
    if p.is_dir() and (p / "dataset_info.json").is_file() and (p / "state.json").is_file():
        info = _json(p / "dataset_info.json", again=AGAIN.format(to="datasets", path=p))
        if sorted(info.get("features") or {}) != EXPORT_COLUMNS:
            return None
        splits = info.get("splits") if isinstance(info.get("splits"), dict) else {}
        rows = sum(int(v.get("num_examples", 0)) for v in splits.values() if isinstance(v, dict))
        mark_file = p / MARKERS["datasets"]
        mark = _json(mark_file, again=AGAIN.format(to="datasets", path=p)) if mark_file.is_file() else None
        if mark is not None:
            _check_version(mark_file, mark, "datasets", p)
        damaged = _datasets_damage(p)
        return out | {"format": "datasets (mmtok export --to datasets)", "documents": rows,
                      "fingerprint": (mark or {}).get("fingerprint"), "mark": _mark_note(mark),
                      "tokenizers": _mark_tokenizers(mark, mark_file),
                      "damaged": damaged or None, "repair": AGAIN.format(to="datasets", path=p) if damaged else None,
                      "leftovers": leftovers(p)}
    if p.is_file() and (p.suffix.lower() == ".parquet" or _starts_with(p, PARQUET_MAGIC)):  # any name export took
        return out | _parquet(p)
    return None


def _parquet(p: Path) -> dict[str, Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CheckpointError(f"{p} is a Parquet file; describing it needs pyarrow: pip install 'mmtok[hf]'") from None
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p} is empty (0 bytes), not a Parquet file: a write that never finished; "
                              f"{AGAIN.format(to='parquet', path=p)}")
    try:
        pf = pq.ParquetFile(p)
    except (OSError, ValueError) as e:  # pyarrow's own (ArrowInvalid, ArrowIOError) for a damaged file
        raise CheckpointError(f"{p} is not a readable Parquet file ({e}); if 'mmtok export' wrote it, it is "
                              f"damaged: {AGAIN.format(to='parquet', path=p)}") from None
    if sorted(pf.schema_arrow.names) != EXPORT_COLUMNS:
        raise CheckpointError(f"{p} is a Parquet file with the columns {', '.join(pf.schema_arrow.names)}, not an "
                              f"mmtok export ({', '.join(EXPORT_COLUMNS)}): nothing to describe")
    raw = (pf.schema_arrow.metadata or {}).get(b"mmtok_export")
    try:
        mark = json.loads(raw) if raw else None
    except ValueError as e:
        raise CheckpointError(f"{p}: its schema metadata mmtok_export is not JSON ({e}); "
                              f"{AGAIN.format(to='parquet', path=p)}") from None
    if isinstance(mark, dict):
        _check_version(Path(f"{p} (schema metadata mmtok_export)"), mark, "parquet", p)
    return {"format": "parquet (mmtok export --to parquet)", "documents": pf.metadata.num_rows,
            "fingerprint": (mark or {}).get("fingerprint"), "mark": _mark_note(mark),
            "tokenizers": _mark_tokenizers(mark, f"{p} (schema metadata mmtok_export)")}


def _check_version(where: Path, record: dict[str, Any], to: str, path: Path) -> None:
    """Refuse an export record of a newer format than this mmtok reads, naming both versions."""
    version = record.get("format_version")
    if version is None or (type(version) is int and version <= EXPORT_VERSION):  # None: before versions were kept
        return
    if type(version) is int:
        raise CheckpointError(f"{where} is an export of format version {version}, newer than this mmtok reads "
                              f"({EXPORT_VERSION}): a newer mmtok wrote it; upgrade mmtok to describe it, or "
                              f"{AGAIN.format(to=to, path=path)} with this one")
    raise CheckpointError(f"{where} gives format_version {version!r}, not a whole number: it is damaged; "
                          f"{AGAIN.format(to=to, path=path)}")


def _bin_damage(p: Path, record: dict[str, Any]) -> list[str]:
    """The files of the bin export ``p`` that do not hold what its ``meta.json`` (``record``) says."""
    said = []
    tokens, docs = record.get("tokens"), record.get("docs")
    try:
        itemsize = np.dtype(str(record.get("dtype"))).itemsize
    except TypeError:
        return [f"meta.json: dtype {record.get('dtype')!r} is not a numpy dtype"]
    data = p / "tokens.bin"
    if not data.is_file():
        said.append("tokens.bin is missing")
    elif type(tokens) is int and data.stat().st_size != tokens * itemsize:
        size = data.stat().st_size
        said.append(f"tokens.bin holds {size:,} bytes ({size / itemsize:,.6g} tokens of {record.get('dtype')}), where "
                    f"meta.json counts {tokens:,} tokens ({tokens * itemsize:,} bytes)")
    for name, want in (("index.npy", docs), ("doc.npy", docs)):
        try:
            n = len(np.load(p / name, mmap_mode="r", allow_pickle=False))
        except FileNotFoundError:
            said.append(f"{name} is missing")
            continue
        except (OSError, ValueError, EOFError) as e:
            said.append(f"{name} cannot be read ({e})")
            continue
        if type(want) is int and n != want:
            said.append(f"{name} holds {n:,} entries, where meta.json counts {want:,} documents")
    return said


def _datasets_damage(p: Path) -> list[str]:
    """The data files the datasets folder ``p``'s ``state.json`` lists that are missing or empty."""
    state = _json(p / "state.json", again=AGAIN.format(to="datasets", path=p))
    files = [f.get("filename") for f in state.get("_data_files") or [] if isinstance(f, dict)]
    return [f"{name} (listed in state.json) is {'missing' if not (p / name).is_file() else 'empty (0 bytes)'}"
            for name in files if isinstance(name, str)
            and (not (p / name).is_file() or (p / name).stat().st_size == 0)]


def export_backup(p: Path) -> CheckpointError | None:
    """Where nothing is at ``p`` but the backup of a folder export a kill stopped between its two renames left
    (``.NAME.old-XXXXXXXX`` beside it, whole): an error that says so and how to get it back; None otherwise."""
    if p.exists() or p.is_symlink():
        return None
    for to, marker in MARKERS.items():
        backup = backup_of(p, marker)
        if backup is not None:
            return CheckpointError(
                f"{p} is not there, but {backup} is: the previous 'mmtok export --to {to}', whole, which an export "
                f"stopped between its two renames left; run that export again (it puts the backup back first, then "
                f"replaces it), or put it back yourself: mv {backup} {p}; then describe {p}")
    return None


def leftovers(folder: Path) -> list[str] | None:
    """The hidden names a writer killed part-way left in ``folder`` and beside it (its own temporary folders and
    files, and backups of what is whole again): each with its process, running or gone, and what becomes of it;
    None when there are none. A backup in place of a missing name is not among them: it is read as that name."""
    said = []
    places = [(folder, None), (folder.parent, folder.name)]
    for where, only in places:
        try:
            entries = sorted(where.iterdir())
        except OSError:
            continue
        for entry in entries:
            tmp, old = TEMP_NAME.fullmatch(entry.name), BACKUP_NAME.fullmatch(entry.name)
            if only is not None and not ((tmp or old) and (tmp or old)["name"] == only):
                continue
            if tmp:
                pid = int(tmp["pid"])
                said.append(f"{entry.name}: being written by process {pid}, which runs now" if pid_alive(pid) else
                            f"{entry.name}: a write that process {pid} did not finish (it is gone); nothing "
                            f"reads it, the next run in this folder removes it, and it may be deleted")
            elif old and (where / old["name"]).exists():  # (one in place of a missing name is read as it)
                said.append(f"{entry.name}: the backup of {old['name']} a save keeps between its two renames; "
                            f"{old['name']} is whole, so the next save removes it, and it may be deleted")
    return said or None


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def _json(path: Path, *, again: str = "") -> dict[str, Any]:
    """The JSON object in ``path``; anything else a :class:`CheckpointError` naming it (and ``again``: what to do)."""
    todo = f"; {again}" if again else ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        empty = path.is_file() and path.stat().st_size == 0
        raise CheckpointError(f"{path} is empty (0 bytes): a write that never finished{todo}" if empty else
                              f"{path} cannot be read as JSON ({e}){todo}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds {type(data).__name__}, not a JSON object{todo}")
    return data


def _mark_tokenizers(mark: Any, where: object) -> dict[str, str] | None:
    """The tokenizers of the vocabulary an export's mark records (as a bin export's ``meta.json``); None without
    one (an export of an earlier mmtok)."""
    vocab = mark.get("vocab") if isinstance(mark, dict) else None
    return vocab_tokenizers(Vocabulary.from_dict(vocab, where=str(where))) if isinstance(vocab, dict) else None


def _mark_note(mark: dict[str, Any] | None) -> str:
    """The mark an export records, in words (an export of an earlier mmtok has none)."""
    if not isinstance(mark, dict):
        return "none (an export of an earlier mmtok: its vocabulary is not recorded)"
    return f"{mark.get('format')} v{mark.get('format_version')}"


def vocab_tokenizers(vocab: Vocabulary) -> dict[str, str]:
    """Each modality of a vocabulary: its id range size and the tokenizer that made it (its label; a tokenizer
    without one, by its fingerprint)."""
    out = {"text": f"{vocab.text_size:,} ids ({vocab.sources.get('text', '?')})"}
    for kind in vocab.media:
        made_by = vocab.labels.get(kind) or f"a tokenizer of fingerprint {vocab.sources.get(kind, '?')}"
        out[kind] = f"{len(vocab.range(kind)):,} ids ({made_by})"
    return out
