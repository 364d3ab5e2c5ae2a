"""What C code prints to the process's standard error, held back for the span of one call: libmpg123,
libsndfile's MP3 decoder, writes its notes on a damaged stream ("Note: Illegal Audio-MPEG-Header ...",
"[src/libmpg123/parse.c:...] error: Giving up resync ...") straight to file descriptor 2, out of reach
of Python's ``sys.stderr``.

:func:`held_stderr` points descriptor 2 at a temporary file while one call runs and puts it back after
(descriptor 2 is the whole process's: one thread holds it at a time, the others wait their turn); of
what arrived meanwhile, only the lines labelled as libmpg123 labels its notes (:data:`NOTE`) stay
held, and every other line, written by other threads (tracebacks, warnings, progress bars), goes on
to stderr in order when the hold ends; :func:`first_line` reads back what was said, for an error
message; :func:`pass_on` writes it out after all, for output that was not the call's to drop.
A process forked while a hold is in progress starts with its own lock and descriptor 2 put back.
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
COPY_BLOCK = 1 << 16  # bytes copied at a time by pass_on, and read at a time when a hold ends
HOLD = threading.RLock()  # one holder of descriptor 2 at a time (re-entrant: a hold inside a hold nests)
LABEL = re.compile(r"^(\[[^\]]*\]\s*)?(note|warning|error)\s*:\s*", re.IGNORECASE)  # "[src/x.c:f():1] error: "
NOTE = re.compile(rb"(\[[^\]\n]+\(\):\d+\] (?:error|warning|note)|Note|Warning): ")  # how a line libmpg123
# prints begins ("Note: ", "Warning: ", "[src/libmpg123/parse.c:wetwork():1349] error: "); a line that
# does not, such as Python's "WARNING:root:..." or "x.py:3: UserWarning: ...", is passed on
SAVED: list[int] = []  # the descriptor each hold in progress puts back on 2 after it, the outermost first


@contextlib.contextmanager
def held_stderr(sink: BinaryIO) -> Iterator[None]:
    """Descriptor 2 pointed at ``sink`` (a file on disk, such as a ``tempfile.TemporaryFile``) while the
    block runs, and back where it was after it, however the block ends: the lines C code writes to
    stderr meanwhile that begin as libmpg123's notes do (:data:`NOTE`) are added to ``sink``, and the
    others (another thread's output) are written where descriptor 2 pointed, in order, when the block
    ends. Holds in other threads wait for this one to end, so each puts back the descriptor it found.
    Nothing is held when the process has no descriptor 2.

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
        fd, pid = sink.fileno(), os.getpid()
        if os.path.sameopenfile(saved, fd):  # held already, by a hold this one is inside
            os.close(saved)
            yield
            return
        start = os.lseek(fd, 0, os.SEEK_END)
        SAVED.append(saved)  # before descriptor 2 moves: a fork from now on puts it back in the child
        try:
            os.dup2(fd, STDERR)
            yield
        finally:
            if os.getpid() == pid:  # a child forked inside the block had descriptor 2 put back at the fork
                _put_back(fd, start, saved)


def _put_back(fd: int, start: int, saved: int) -> None:
    """Descriptor 2 pointed at ``saved`` again, and the lines the held file ``fd`` was given from byte
    ``start`` on sorted: libmpg123's notes kept there (from ``start``), the rest written to ``saved``."""
    at = kept = start
    try:
        at, kept = _sort_out(fd, at, kept, saved, os.fstat(fd).st_size)  # while still held: before what
        # other threads say next (what they add meanwhile is read after)
    finally:
        os.dup2(saved, STDERR)
        SAVED.pop()
        os.close(saved)
    _, kept = _sort_out(fd, at, kept, STDERR)  # what arrived as descriptor 2 was put back
    os.ftruncate(fd, kept)
    os.lseek(fd, kept, os.SEEK_SET)


def _sort_out(fd: int, at: int, kept: int, out: int, end: int | None = None) -> tuple[int, int]:
    """The lines held in ``fd`` from byte ``at`` on (to ``end``, or to its end): libmpg123's notes moved
    down to byte ``kept``, the others written to descriptor ``out`` in order; (bytes read to, notes kept
    to). A line held may lack its newline (another thread's progress bar, or a line it was writing as
    the hold ended): it is passed on as it is."""
    passed, rest = bytearray(), b""
    while block := os.pread(fd, COPY_BLOCK if end is None else min(COPY_BLOCK, end - at), at):
        *lines, rest = (rest + block).split(b"\n")
        at += len(block)
        for line in lines:
            if NOTE.match(line):
                os.pwrite(fd, line + b"\n", kept)  # never past ``at``: what is not yet read stays
                kept += len(line) + 1
            else:
                passed += line + b"\n"
        if len(passed) >= COPY_BLOCK:
            _write(out, passed)
            passed.clear()
    if NOTE.match(rest):
        os.pwrite(fd, rest, kept)
        kept += len(rest)
    else:
        passed += rest
    _write(out, passed)
    return at, kept


def _write(out: int, data: bytes | bytearray) -> None:
    """``data`` written whole to descriptor ``out``; dropped if it cannot take it (a stderr closed or a
    broken pipe drops what any thread writes to it)."""
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(out, view) :]


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


def _after_fork_in_child() -> None:
    """In a child forked while another thread held descriptor 2 (that thread is not in the child, and
    would never let go): a lock of its own, and descriptor 2 put back where the outermost hold found it."""
    global HOLD
    HOLD = threading.RLock()
    if SAVED:
        with contextlib.suppress(OSError):
            os.dup2(SAVED[0], STDERR)
        for saved in SAVED:
            with contextlib.suppress(OSError):
                os.close(saved)
        SAVED.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
