"""Checks on the paths of media files, one message per kind of mistake.

>>> from mmtok.core.errors import ImageError
>>> check_media_file("/no/such/file.png", what="image file", error=ImageError)
Traceback (most recent call last):
...
mmtok.core.errors.MissingFileError: image file '/no/such/file.png' does not exist
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mmtok.core.errors import MissingFileError, MmtokError

__all__ = ["check_media_file", "holds_cwd", "no_such_file"]


def check_media_file(path: str | os.PathLike[str], *, what: str, error: type[MmtokError]) -> None:
    """Raise when ``path`` is missing, unreadable, a folder or not a regular file (a device, pipe or socket).

    ``what`` names the kind of file in the message (``"image file"``); ``error`` is the
    area's error class. A missing path raises :class:`~mmtok.core.errors.MissingFileError`
    (also a ``FileNotFoundError``).
    """
    name = repr(os.fspath(path))
    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:
        raise MissingFileError(f"{what} {name} does not exist{_dangling(path)}") from None
    except OSError as e:
        raise error(f"cannot read {what} {name}: {e}") from e
    if stat.S_ISDIR(mode):
        raise error(f"{name} is a folder, not an {what}" if what[0] in "aeiou" else f"{name} is a folder, not a {what}")
    if not stat.S_ISREG(mode):
        raise error(f"{name} is not a regular file (a device, pipe or socket), not a{'n' if what[0] in 'aeiou' else ''} {what}")


def no_such_file(path: str | os.PathLike[str]) -> str:
    """``PATH: no such file``, saying where a link that leads nowhere points (a folder search keeps such links, so
    that each fails on its own line).

    >>> no_such_file("/no/such/file.png")
    '/no/such/file.png: no such file'
    """
    return f"{os.fspath(path)}: no such file{_dangling(path)}"


def _dangling(path: str | os.PathLike[str]) -> str:
    """``" (a link to TARGET, which does not exist)"`` for a link that leads nowhere, else ``""``."""
    try:
        return f" (a link to {os.readlink(path)}, which does not exist)" if Path(path).is_symlink() else ""
    except OSError:
        return ""


def holds_cwd(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is the current folder or one that holds it: a folder no writer may replace.

    >>> holds_cwd("."), holds_cwd(".."), holds_cwd("a-new-folder")
    (True, True, False)
    """
    return Path(path).resolve() in (Path.cwd(), *Path.cwd().parents)
