"""What a corpus source handler receives and returns, shared by the corpus build modules.

``fetch_corpus.py`` unpacks each Debian package into a ``Package``; a handler in
``corpus_audio.py`` or ``corpus_image.py`` turns it into ``Item``s (one per file to write,
with the function that writes it); ``fetch_corpus.py`` writes, measures and lists them in
the manifest. A writer with a ``content()`` method (``CopyOf``, ``BytesOf``) tells what it would
write without writing it: a rerun recognises a copy of a file it already keeps without making it; one that
decodes a file names it (``src``: ``corpus_audio.FlacFromG722``), so that a file that failed is known again by its
input (``corpus_failures``).
Nothing here runs on its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Package:
    """One unpacked Debian package (or pip distribution), its copyright file and the sha256 of its .deb
    (empty for a pip distribution)."""

    name: str
    version: str
    deb: str
    root: Path
    copyright_text: str
    copyright: str = ""
    deb_sha256: str = ""


@dataclass
class Item:
    """One file to write: ``rel`` under OUT/<kind>/<source>/, how to make it, and metadata.

    ``hints`` are the paths the file may have upstream (for the license lookup); ``meta``
    goes into its manifest row as it is, over the fields ``fetch_corpus`` fills in (a
    ``license`` there replaces the one read from the copyright file).
    """

    rel: str
    group: str
    make: Callable[[Path], None]
    hints: list[str]
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CopyOf:
    """Writer that copies ``src`` byte for byte; ``content()`` is what it writes, known without writing it."""

    src: Path

    def __call__(self, dest: Path) -> None:
        shutil.copyfile(self.src, dest)

    def content(self) -> Path:
        return self.src


@dataclass(frozen=True)
class BytesOf:
    """Writer that stores the bytes ``read()`` returns as they are; ``content()`` is those bytes."""

    read: Callable[[], bytes]

    def __call__(self, dest: Path) -> None:
        dest.write_bytes(self.read())

    def content(self) -> bytes:
        return self.read()


def copy_of(src: Path) -> CopyOf:
    """Writer that copies ``src`` byte for byte."""
    return CopyOf(src)


def bytes_of(data: bytes) -> BytesOf:
    """Writer that stores ``data`` (a member read out of an archive) as it is."""
    return BytesOf(lambda: data)
