"""Writing a small file so that a reader, or a process killed part-way, never sees half of it.

>>> import tempfile; from pathlib import Path
>>> p = Path(tempfile.mkdtemp()) / "a.json"
>>> write_atomic(p, '{"step": 1}\\n'); p.read_text()
'{"step": 1}\\n'
"""

from __future__ import annotations

import os
from pathlib import Path

from mmtok.core.errors import OutputError

__all__ = ["output_error", "read_only_folder", "temp_name", "write_atomic"]


def temp_name(path: Path) -> Path:
    """Where :func:`write_atomic` writes ``path`` before renaming it into place: ``.NAME.tmp-PID`` beside it, NAME
    shortened (its start and a hash of the whole) where the name is too long to take the tag within the 255 bytes
    a file name may have (:func:`~mmtok.core.checkpoint_folder.sibling_prefix`)."""
    from mmtok.core.checkpoint_folder import TMP_TAG, sibling_prefix

    return path.parent / f"{sibling_prefix(path)}{TMP_TAG}{os.getpid()}"


def read_only_folder(folder: Path) -> Path | None:
    """``folder``, or the nearest folder above it that exists, when this process cannot make files in it (a folder
    read-only to it, a read-only file system); None when it can, or when a file is in the way (the caller says so).

    >>> import tempfile; read_only_folder(Path(tempfile.mkdtemp()) / "new" / "sub") is None
    True
    """
    there = folder
    while not there.exists() and there != there.parent:
        there = there.parent
    if there.is_dir() and not os.access(there, os.W_OK | os.X_OK):
        return there
    return None


def output_error(path: Path | str, e: OSError, *, kept: str = "nothing there was changed") -> OutputError:
    """``e`` (a full disk, a read-only folder) said for the output ``path`` the user named rather than for a
    temporary file: ``cannot write PATH: No space left on device; nothing there was changed``, its ``errno``
    and ``strerror`` those of ``e``. Raise it ``from e``."""
    reason = e.strerror or " ".join(str(e).split()) or type(e).__name__
    err = OutputError(f"cannot write {path}: {reason}; {kept}")
    err.errno, err.strerror, err.filename = e.errno, e.strerror, str(path)
    return err


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to a temp file beside ``path``, flush it to disk, then rename it over
    ``path``: the old contents or the new, never a mix. A failure (a full disk) removes the temp file and is an
    :class:`~mmtok.core.errors.OutputError` that names ``path`` (:func:`output_error`)."""
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise output_error(path, e) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
