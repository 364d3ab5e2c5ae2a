"""Where a corpus's media paths lead: the file each names, resolved against the corpus's folder and refused, with
the reason a skipped document records, when it is outside that folder (unless allowed), missing, a folder, a pipe,
or a name no file system holds.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> MediaPaths(root, allow_outside=False).media("../x.png", "segment 0: image file")
Traceback (most recent call last):
...
ValueError: segment 0: image file '../x.png' is outside the corpus folder ... (pass --allow-outside, allow_outside=True, to read it)
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["URL", "MediaPaths", "file_kind"]

URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # the start of a media path that is a URL, not a file name


@dataclass(frozen=True)
class MediaPaths:
    """Where media paths resolve (``base``) and whether they may lead outside it."""

    base: Path
    allow_outside: bool

    def media(self, value: str, what: str) -> Path:
        """The file ``value`` names; ValueError when it is missing or (unless allowed) outside ``base``."""
        if "\0" in value:  # no file system holds such a name (os.stat would say only "embedded null byte")
            raise ValueError(f"{what} {value!r} holds a NUL character, which no file name can")
        path = self.base / value
        try:  # a symlink loop, a name too long for the OS: the document's problem, not the run's
            if not self.allow_outside:
                resolved, root = path.resolve(), self.base.resolve()
                if resolved != root and root not in resolved.parents:
                    raise ValueError(f"{what} {value!r} is outside the corpus folder {root} "
                                     "(pass --allow-outside, allow_outside=True, to read it)")
            found = file_kind(path)
        except RuntimeError:  # Path.resolve on a symlink loop
            raise ValueError(f"{what} {value!r} cannot be opened: {os.strerror(errno.ELOOP)}") from None
        except OSError as e:
            raise ValueError(f"{what} {value!r} cannot be opened: {e.strerror or type(e).__name__}") from None
        if found != "file":
            raise ValueError(f"{what} {value!r} {found}{_hint(value) if found.startswith('does not exist') else ''}")
        return path


def _hint(value: str) -> str:
    """What a media path that names no file may have meant: a URL (nothing is downloaded) or a home folder (``~``
    is not expanded), as the end of a reason; "" for any other.

    >>> _hint("https://example.com/a.jpg"), _hint("~/a.jpg"), _hint("a.jpg")
    (': it is a URL, and mmtok downloads nothing: fetch the file first and name its path', ": a leading '~' is not expanded (media paths are relative to the corpus folder): name the file by its path", '')
    """
    if URL.match(value):
        return ": it is a URL, and mmtok downloads nothing: fetch the file first and name its path"
    if value.startswith("~"):
        return (": a leading '~' is not expanded (media paths are relative to the corpus folder): name the file "
                "by its path")
    return ""


def file_kind(path: Path) -> str:
    """``"file"`` for a regular file (symlinks followed), else what ``path`` is, as the end of a sentence ("does
    not exist", "is a folder, not a file", ...); an OSError when the OS refuses to look (a symlink loop, a name too
    long), which ``Path.is_file`` would hide or misreport."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "does not exist" + (" (a link that leads nowhere)" if path.is_symlink() else "")
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    return "is not a regular file (a device, pipe or socket)"
