"""Files of a corpus that could not be made for a reason about the file itself, remembered in ``summary.json``
(``failed``) so that a rerun does not decode them again, for ``fetch_corpus.py``.

A file is known to fail when the same package version gives the same input (``input_sha256``: the sha256 of what its
writer copies, ``content()``, or of the file it decodes, ``src``) at the same path, and the decoders are those that
failed on it (the kind's ``decoder_versions()``: libsndfile, PyAV and FFmpeg's libavcodec; Pillow). Such a file is
counted again under the skip it was counted under, without being made; with other decoders, another input or another
version it is tried again. An ``OSError`` (reading or writing the disk) is never remembered: it may not happen again,
and neither is a file whose writer says nothing of its input. Nothing here runs on its own.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import corpus_manifest as cm
from corpus_source import Item

ERROR_CHARS = 300  # of the error's message kept in its entry


def input_sha256(make: Callable[[Path], None]) -> str | None:
    """The sha256 of what the writer ``make`` reads: the bytes ``content()`` gives (a copy, a member of an archive)
    or its ``src`` file (decoded); None when it says neither, or reading it fails."""
    content, src = getattr(make, "content", None), getattr(make, "src", None)
    try:
        data = content() if content is not None else src
        if isinstance(data, Path):
            return cm.file_sha256(data)
        return hashlib.sha256(data).hexdigest() if isinstance(data, bytes) else None
    except Exception:  # making the file says what is wrong with it
        return None


class Failures:
    """The failures a build knows from the previous summary (``previous``, those of the decoders ``decoders`` only)
    and those it finds, by path: what its summary's ``failed`` lists."""

    def __init__(self, previous: list[dict], decoders: str) -> None:
        self.decoders = decoders
        self.known = {(f["path"], f["version"]): f for f in previous if f.get("decoders") == decoders}
        self.found: dict[str, dict] = {}

    def known_to_fail(self, item: Item, row: dict, skipped: Counter) -> bool:
        """Whether ``item``, to be written at ``row``'s path from ``row``'s version, is a file that failed with
        these decoders on this input: then it is counted in ``skipped`` under the skip it was counted under, and
        remembered again."""
        old = self.known.get((row["path"], row["version"]))
        if old is None or input_sha256(item.make) != old["input_sha256"]:
            return False
        skipped[old["reason"]] += 1
        self.found[row["path"]] = old
        return True

    def add(self, item: Item, row: dict, reason: str, err: Exception) -> None:
        """Remember that ``item`` (at ``row``'s path, source and version) failed with ``err``, counted as
        ``reason``; an ``OSError``, or a writer that says nothing of its input, is not remembered."""
        sha = None if isinstance(err, OSError) else input_sha256(item.make)
        if sha is None:
            return
        said = " ".join(str(err).split())
        self.found[row["path"]] = {
            "path": row["path"], "source": row["source"], "version": row["version"], "input_sha256": sha,
            "reason": reason, "error": f"{type(err).__name__}: {said}"[:ERROR_CHARS], "decoders": self.decoders,
        }  # fmt: skip

    def rows(self, kept: list[dict]) -> list[dict]:
        """What the summary's ``failed`` lists: ``kept`` (those of sources this build did not make again) and the
        failures found, by path."""
        return sorted([*(f for f in kept if f["path"] not in self.found), *self.found.values()],
                      key=lambda f: f["path"])
