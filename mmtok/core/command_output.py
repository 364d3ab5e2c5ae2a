"""How the ``mmtok`` command speaks while a command runs: bad usage and warnings in one line each on stderr
(``mmtok: error: ...``, ``mmtok: warning: ...``), a standard output whose failure is one line too
(:class:`GuardedOutput`), and the quiet stop of a command whose reader went away (:data:`PIPE_CLOSED`).
Nothing here imports torch: the command answers Ctrl-C from its first moment.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from mmtok.core.errors import OutputError

__all__ = ["PIPE_CLOSED", "GuardedOutput", "counted", "drop_unread_output", "guarded_output", "one_line_usage_errors",
           "one_line_warnings"]


def counted(n: int, one: str, many: str | None = None) -> str:
    """A count as a line says it: ``1 frame``, ``3 frames`` (``many``: the plural when it is not ``one`` + s).

    >>> counted(1, "clip"), counted(2, "file named twice is", "files named twice are")
    ('1 clip', '2 files named twice are')
    """
    return f"{n} {one if n == 1 else (many if many is not None else one + 's')}"


@contextmanager
def one_line_usage_errors() -> Iterator[None]:
    """Every argparse parser (the sub-commands' own too) reports bad usage in one line, then exits 2 as argparse does."""

    def error(self: argparse.ArgumentParser, message: str) -> NoReturn:
        where = self.prog.removeprefix("mmtok").strip()
        hint = f"; see '{self.prog} --help'" if self.prog.startswith("mmtok") else ""
        print(f"mmtok: error: {where + ': ' if where else ''}{message}{hint}", file=sys.stderr)
        raise SystemExit(2)

    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = error  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original  # type: ignore[method-assign]


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Warnings shown while the command runs are one line on stderr (``mmtok: warning: ...``), not Python's
    file:line and source line."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        try:
            print(f"mmtok: warning: {' '.join(str(message).split())}", file=file or sys.stderr)
        except OSError:  # stderr closed (output piped into e.g. `head`): as Python, the warning is dropped
            pass

    original = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


PIPE_CLOSED = 128 + 13  # the status of a command that SIGPIPE ends, as the shell reports it (130: SIGINT, 128 + 2)


def drop_unread_output() -> None:
    """Point stdout at the null device once its reader is gone, so that what is still buffered for it, flushed as
    Python exits, neither fails again nor changes the exit status."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # no file descriptor behind sys.stdout (replaced in-process)
        pass


class GuardedOutput:
    """``sys.stdout`` while a command runs: a write that fails for a reason other than a closed pipe (a full disk,
    ``> /dev/full``) is an :class:`OutputError` that says it was standard output; the rest is the stream's own."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _failed(self, e: OSError) -> OutputError:
        err = OutputError(f"cannot write to standard output: {e.strerror or e}")
        err.errno, err.strerror = e.errno, e.strerror
        drop_unread_output()  # nor again as Python exits
        return err

    def write(self, text: str) -> Any:
        try:
            return self._stream.write(text)  # as the stream says (some wrappers return None)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise self._failed(e) from e

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise self._failed(e) from e


@contextmanager
def guarded_output() -> Iterator[None]:
    """``sys.stdout`` as a :class:`GuardedOutput` for the block, flushed at its end, so that output that cannot be
    written is one line (``cannot write to standard output: No space left on device``), said before Python exits."""
    original = sys.stdout
    if original is None:  # no standard output at all (pythonw)
        yield
        return
    sys.stdout = guarded = GuardedOutput(original)  # type: ignore[assignment]
    try:
        yield
        guarded.flush()
    finally:
        if sys.stdout is guarded:
            sys.stdout = original
