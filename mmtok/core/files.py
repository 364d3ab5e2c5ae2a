"""Writing a small file so that a reader, or a process killed part-way, never sees half of it.

>>> import tempfile; from pathlib import Path
>>> p = Path(tempfile.mkdtemp()) / "a.json"
>>> write_atomic(p, '{"step": 1}\\n'); p.read_text()
'{"step": 1}\\n'
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["temp_name", "write_atomic"]


def temp_name(path: Path) -> Path:
    """Where :func:`write_atomic` writes ``path`` before renaming it into place: ``.NAME.tmp-PID`` beside it."""
    return path.parent / f".{path.name}.tmp-{os.getpid()}"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to a temp file beside ``path``, flush it to disk, then rename it over
    ``path``: the old contents or the new, never a mix. A failure (a full disk) removes the temp file."""
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
