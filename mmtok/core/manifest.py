"""A corpus's ``manifest.jsonl``: one JSON object a line, each naming a file (``path``, relative to the
manifest's folder) and its ``split``; the one reader of it for the audio and image trainers and benchmarks.

>>> import tempfile; from pathlib import Path
>>> m = Path(tempfile.mkdtemp()) / "manifest.jsonl"
>>> _ = m.write_text('{"path": "a.wav", "split": "train"}\\n\\n{"path": "b.wav", "split": "test"}\\n')
>>> [(n, r["path"]) for n, r in manifest_rows(m)]
[(1, 'a.wav'), (3, 'b.wav')]
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from mmtok.core.errors import CorpusError, MmtokError

__all__ = ["UNFINISHED_NAME", "manifest_rows"]

UNFINISHED_NAME = "build.unfinished.jsonl"  # beside a manifest while its corpus build runs, or after one was killed

EXAMPLE = '{"path": "audio/0.wav", "split": "train"}'


def _build_command(marker: Path) -> str:
    """The command line a corpus build keeps as the first line of its marker, quoted; a general hint when unreadable."""
    try:
        with marker.open(encoding="utf-8", errors="replace") as f:
            first = f.readline().strip()
    except OSError:
        first = ""
    return f"its command `{first}`" if first and not first.startswith("{") else "benchmarks/fetch_corpus.py as it was run"


def manifest_rows(manifest: Path, *, error: type[MmtokError] = CorpusError,
                  distinct: Collection[str] | None = None) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` of every row of ``manifest``, each checked: a line that is not a JSON object, a
    row without a non-empty string ``path`` or ``split``, and a file listed in two of the splits ``distinct``
    (default: any two; a held-out file trained on) are refused as ``error`` (one line: ``MANIFEST:LINE: what is
    wrong``); blank lines are skipped. A manifest whose corpus build has not finished (:data:`UNFINISHED_NAME`
    beside it: ``benchmarks/fetch_corpus.py`` is running or was stopped) is refused as ``error`` too."""
    marker = Path(manifest).parent / UNFINISHED_NAME
    if marker.exists():
        raise error(f"{manifest}: the corpus build that writes it is running or was stopped ({marker} is beside it); "
                    f"once it is not running, rerun {_build_command(marker)} to finish it, or delete {marker} to use "
                    "the corpus as its manifest lists it (right only if that build changed no file the manifest lists)")
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise error(f"{manifest}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    first: dict[str, tuple[str, int]] = {}  # each file: its split and line
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{manifest}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{where}: not JSON ({e.msg} at column {e.colno}); each line is one object such as "
                        f"{EXAMPLE}") from None
        if not isinstance(row, dict):
            raise error(f"{where}: expected a JSON object, got {type(row).__name__}; each line is one object such as "
                        f"{EXAMPLE}")
        for key, what in (("path", "the file, relative to the manifest's folder"),
                          ("split", "train, validation or test")):
            if not isinstance(row.get(key), str) or not row[key]:
                raise error(f'{where}: needs "{key}" ({what}), got {json.dumps(row.get(key))}')
        if distinct is not None and row["split"] not in distinct:
            rows.append((number, row))
            continue
        split, line_no = first.setdefault(os.path.normpath(row["path"]), (row["split"], number))
        if split != row["split"]:
            raise error(f"{where}: {row['path']} is listed in {row['split']} here and in {split} at line {line_no}; "
                        "a file belongs to one split (a held-out file that is trained on measures nothing)")
        rows.append((number, row))
    return rows
