"""The sha256 of files, read in blocks: a corpus's content (what a resume is keyed on) and a shard's ``.bin``
(checked against its index).

>>> import pathlib, tempfile
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
>>> _ = p.write_bytes(b"abc")
>>> files_sha256([p])[:16]
'ba7816bf8f01cfea'
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

__all__ = ["files_sha256"]

BLOCK = 1 << 20  # bytes read at a time


def files_sha256(paths: Iterable[Path]) -> str:
    """The hex sha256 of the files' bytes, one after the other, read :data:`BLOCK` bytes at a time."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda f=f: f.read(BLOCK), b""):
                h.update(block)
    return h.hexdigest()
