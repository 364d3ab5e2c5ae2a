"""A run folder held by one training process at a time: the lock file ``.lock`` in it (``PID HOST`` of the process
that writes the folder) and :func:`hold_run_folder`, which takes it before the folder is looked at, puts back a
checkpoint a killed save left mid-swap, and refuses a second run into the same folder; a lock whose process no
longer runs (on this host) is taken over. While the folder is held, SIGTERM (a scheduler, ``docker stop``,
``torchrun`` passing it on) stops the run as Ctrl-C does (:class:`Terminated`), so the lock goes with it; a command
that writes file after file (``mmtok encode``) holds :func:`sigterm_interrupts` for the same reason: the file it was
writing is removed, not left half-written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from mmtok.core.checkpoint_folder import pid_alive, restore_swaps, sibling_prefix
from mmtok.core.errors import RunRefusedError, TrainingError

__all__ = ["LOCK_NAME", "RunLock", "Terminated", "hold_run_folder", "run_holder", "sigterm_interrupts"]

LOCK_NAME = ".lock"  # in a run folder while a training process writes to it: "PID HOST" of that process


class Terminated(KeyboardInterrupt):
    """SIGTERM received while a run folder is held (:func:`hold_run_folder`): raised where the run is, as Ctrl-C
    raises :class:`KeyboardInterrupt`, so the run unwinds the same way (its lock removed, what it saved kept;
    ``mmtok`` says it was interrupted and exits 130)."""


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated` in the main thread, once (one sent again while the
    run unwinds is not raised again; SIGKILL still ends it at once); the handler before it is put back after.
    Only where SIGTERM has its default action (which ends the process without unwinding) and only in the main
    thread (the only one Python runs signal handlers in): a handler of the program's own, or an ignored
    SIGTERM, is left as it is."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    raised = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Terminated("SIGTERM")

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _guarded(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` itself while a :class:`RunLock` looks at and writes its lock file,
    so that two processes taking over a stale lock at once cannot both win (the second then finds the first's
    live process). Where there is no ``flock`` (or the folder cannot take one) nothing is held."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on this platform
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # the folder is gone (removed during the run): nothing to guard
        yield
        return
    try:
        with contextlib.suppress(OSError):  # a file system without flock on folders: unguarded, as before
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


class RunLock:
    """``with RunLock(folder):`` one training process at a time writes to ``folder``.

    The lock is ``folder/.lock`` holding the owner's process id and host name (``PID HOST``; a lock holding only
    a process id, as older versions wrote, is this host's); a lock left by a process of this host that no longer
    runs is taken over. A lock of another host is always taken as held (its process cannot be looked up from
    here), and so is one whose process id cannot be looked up: the refusal says to delete the lock if that run
    is gone. Looking at the lock and taking it happen under an exclusive ``flock`` on the folder, so two
    processes that both find a stale lock do not both take it. Leaving the ``with`` block (normally or by an
    exception) removes it. A second process raises :class:`TrainingError` naming the owner, before anything in
    ``folder`` is touched. Once the lock is held, what writers killed mid-save left in ``folder`` is undone
    (:func:`~mmtok.core.checkpoint_folder.restore_swaps`), said in one line on stderr, so that the holder
    sees each checkpoint folder whole. With ``checkpoint``, ``folder`` is one checkpoint folder that is
    replaced as a whole (a text tokenizer's ``--out``): the lock is ``.NAME.lock`` beside it, and only its
    own backups and temporary folders there are looked at.
    """

    def __init__(self, folder: str | os.PathLike[str], *, checkpoint: bool = False) -> None:
        self.folder = Path(folder).resolve() if checkpoint else Path(folder)  # where its writer swaps it
        self.checkpoint = checkpoint
        self.path = (self.folder.parent / f"{sibling_prefix(self.folder)}{LOCK_NAME}" if checkpoint
                     else self.folder / LOCK_NAME)
        self.me = (os.getpid(), socket.gethostname())  # what the lock says while this holds it
        self.held = False

    def __enter__(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._unwritable(e) from None
        with _guarded(self.path.parent):
            if self.path.exists():
                self._refuse_a_live_owner()
                self.path.unlink(missing_ok=True)  # stale: its process is gone
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:  # made meanwhile by a process that does not take the guard
                raise TrainingError(f"could not lock {self.folder}: {self.path} keeps reappearing") from None
            except OSError as e:  # a read-only file system, no permission, a full disk
                raise self._unwritable(e) from None
            with os.fdopen(fd, "w") as f:
                f.write(f"{self.me[0]} {self.me[1]}\n")
            self.held = True
        try:
            self._recover()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _unwritable(self, e: OSError) -> TrainingError:
        """The refusal of a run folder this process cannot write its lock in (``e``: why), before anything is
        written: what it holds stays as it is, and a copy elsewhere resumes."""
        why = e.strerror or type(e).__name__
        return TrainingError(f"cannot write in {self.path.parent}: {why} (lock {self.path}); a run writes its "
                             "checkpoints there, so it needs a writable folder: copy the folder somewhere writable "
                             "and give that as --out (--resume continues from what it holds); nothing was changed")

    def _refuse_a_live_owner(self) -> None:
        """A :class:`TrainingError` when the lock names another process that may run: one of this host that runs
        (or cannot be looked up), or any of another host."""
        owner = self._owner()
        if owner is None or owner == self.me or (owner[1] == self.me[1] and not pid_alive(owner[0])):
            return
        pid, host = owner
        raise TrainingError(f"{self.folder} is in use by process {pid} on host {host} (lock {self.path}); wait "
                            f"for that run to end, or train into another --out; if that run is gone, delete "
                            f"{self.path}") from None

    def _recover(self) -> None:
        """Undo what writers killed mid-save left (the lock is held: none of them still writes); say it."""
        names = [self.folder.name] if self.checkpoint else None
        done = restore_swaps(self.path.parent, names=names)
        if done:
            print(f"mmtok: {self.folder}: recovered what a stopped run left: {'; '.join(done)}", file=sys.stderr)

    def _owner(self) -> tuple[int, str] | None:
        """``(PID, HOST)`` the lock names (an old lock's, with no host: this host's); None when unreadable."""
        try:
            words = self.path.read_text().split()
            return int(words[0]), (words[1] if len(words) > 1 else socket.gethostname())
        except (OSError, ValueError, IndexError):
            return None

    def __exit__(self, *exc: object) -> None:
        if self.held:
            with _guarded(self.path.parent):
                if self._owner() == self.me:
                    self.path.unlink(missing_ok=True)
        self.held = False


def run_holder(folder: str | os.PathLike[str]) -> str | None:
    """Who holds run folder ``folder`` now, as its lock says (``"process 4242 on host gpu1 (lock RUN/.lock)"``), for
    a reader such as ``mmtok info`` that takes no lock: None when no lock is there, or its process of this host no
    longer runs (a stale lock the next run takes over). Nothing is written."""
    lock = RunLock(folder)
    owner = lock._owner() if lock.path.is_file() else None
    if owner is None:
        return None if not lock.path.is_file() else f"unknown (unreadable lock {lock.path})"
    pid, host = owner
    if host == socket.gethostname() and not pid_alive(pid):
        return None
    return f"process {pid} on host {host} (lock {lock.path})"


@contextlib.contextmanager
def hold_run_folder(folder: str | os.PathLike[str], *, checkpoint: bool = False) -> Iterator[Path]:
    """``with hold_run_folder(out):`` around a whole training run into ``out``: makes the folder (and its
    parents) when missing, takes its :class:`RunLock` (which puts back what a run killed mid-save left, so the
    run then looks at its folder whole), and, when the run fails or is refused, removes the folders this made
    that are still empty (a refused command leaves no new folder behind). A second process into the same
    folder gets the lock's :class:`TrainingError`, and so does an ``out`` that is a file or cannot be made.
    With ``checkpoint``, ``out`` is a checkpoint folder its writer makes itself (a text tokenizer's): its
    parent is made and the lock is taken beside it (:class:`RunLock`). While it is held, SIGTERM stops the run
    as Ctrl-C does, with :class:`Terminated` (a :class:`KeyboardInterrupt`), in the main thread of a process
    that left SIGTERM at its default action (:func:`sigterm_interrupts`). Yields ``out``."""
    with sigterm_interrupts():
        out = Path(folder)
        home = out.resolve().parent if checkpoint else out
        if home.exists() and not home.is_dir():
            raise RunRefusedError(f"--out {out} is a file, not a folder" if home == out else
                                  f"--out {out} cannot be made: {home} is a file")
        made = [p for p in (home, *home.parents) if not p.exists()]  # this call's to make, deepest first
        try:
            try:
                home.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise RunRefusedError(f"--out {out} cannot be made: {e.strerror or e}") from e
            with RunLock(out, checkpoint=checkpoint):
                yield out
        except BaseException:
            for empty in made:
                with contextlib.suppress(OSError):
                    if not empty.is_dir() or any(empty.iterdir()):
                        break
                    empty.rmdir()
            raise
