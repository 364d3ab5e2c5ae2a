"""What C code prints to the process's standard error, held back for the span of one call: libmpg123,
libsndfile's MP3 decoder, writes its notes on a damaged stream ("Note: Illegal Audio-MPEG-Header ...",
"[src/libmpg123/parse.c:...] error: Giving up resync ...") straight to file descriptor 2, out of reach
of Python's ``sys.stderr``.

:func:`held_stderr` points descriptor 2 at a temporary file while one call runs and puts it back after
(descriptor 2 is the whole process's: one thread holds it at a time, the others wait their turn);
:func:`first_line` reads back what was said, for an error message; :func:`pass_on` writes it out
after all, for output that was not the call's to drop.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["first_line", "held_stderr", "pass_on"]

STDERR = 2  # the file descriptor C code writes its messages to
SAID_MAX = 4096  # bytes of held output read back for its first line
COPY_BLOCK = 1 << 16  # bytes copied at a time by pass_on
HOLD = threading.RLock()  # one holder of descriptor 2 at a time (re-entrant: a hold inside a hold nests)
LABEL = re.compile(r"^(\[[^\]]*\]\s*)?(note|warning|error)\s*:\s*", re.IGNORECASE)  # "[src/x.c:f():1] error: "


@contextlib.contextmanager
def held_stderr(sink: BinaryIO) -> Iterator[None]:
    """Descriptor 2 pointed at ``sink`` (a file on disk, such as a ``tempfile.TemporaryFile``) while the
    block runs, and back where it was after it, however the block ends: what C code writes to stderr
    meanwhile is added to ``sink``. Holds in other threads wait for this one to end, so each puts back
    the descriptor it found. Nothing is held when the process has no descriptor 2.

    >>> import tempfile
    >>> with tempfile.TemporaryFile() as sink:
    ...     with held_stderr(sink):
    ...         _ = os.write(STDERR, b"[src/lib/parse.c:f():12] error: bad bytes\\n")
    ...     first_line(sink)
    'bad bytes'
    """
    with HOLD:
        if sys.stderr is not None:
            sys.stderr.flush()  # Python's own buffered text goes out first, to the real stderr
        try:
            saved = os.dup(STDERR)
        except OSError:  # no stderr to hold
            saved = -1
        if saved < 0:
            yield
            return
        try:
            os.dup2(sink.fileno(), STDERR)
            yield
        finally:
            os.dup2(saved, STDERR)
            os.close(saved)


def first_line(sink: BinaryIO) -> str:
    """The first line of text held in ``sink``, without the library's label (``Note:``, ``Warning:``,
    ``[file:function():line] error:``); ``""`` when nothing was held."""
    said = os.pread(sink.fileno(), SAID_MAX, 0).decode("utf-8", errors="replace")
    line = next((line.strip() for line in said.splitlines() if line.strip()), "")
    return LABEL.sub("", line).rstrip(".")


def pass_on(sink: BinaryIO) -> None:
    """Write what ``sink`` holds to stderr after all, and empty it."""
    fd, at = sink.fileno(), 0
    with HOLD:  # to the real stderr, not another thread's sink
        if sys.stderr is not None:
            sys.stderr.flush()
        while block := os.pread(fd, COPY_BLOCK, at):
            os.write(STDERR, block)
            at += len(block)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
