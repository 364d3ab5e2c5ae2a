"""RunLock: two trainers that find the same stale lock at once do not both take it over; a lock names its host,
and one of another host (whose process cannot be looked up from here) is refused before anything is touched."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from mmtok.core import run_lock
from mmtok.core.errors import TrainingError
from mmtok.core.run_lock import LOCK_NAME, RunLock

STALE, FIRST, SECOND = 4_000_001, 4_000_002, 4_000_003  # a dead trainer's pid, then two live ones


def test_a_stale_lock_is_taken_over_by_one_trainer_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first trainer stalls right after finding the lock stale; the second comes meanwhile."""
    (tmp_path / LOCK_NAME).write_text(f"{STALE}\n")
    main, results = threading.get_ident(), {}
    second_done = threading.Event()

    def second() -> None:
        try:
            RunLock(tmp_path).__enter__()
            results["second"] = "holds the lock"
        except TrainingError as e:
            results["second"] = str(e)
        second_done.set()

    other = threading.Thread(target=second)
    pids = {main: FIRST}
    real_getpid = os.getpid
    monkeypatch.setattr(os, "getpid", lambda: pids.get(threading.get_ident(), SECOND))

    def alive(pid: int) -> bool:
        if pid == STALE and threading.get_ident() == main and not other.is_alive() and not second_done.is_set():
            other.start()
            second_done.wait(0.5)  # unguarded, the second trainer takes the stale lock now
        return pid in (FIRST, SECOND, real_getpid())

    monkeypatch.setattr(run_lock, "pid_alive", alive)
    with RunLock(tmp_path):
        other.join(5)
        assert (tmp_path / LOCK_NAME).read_text() == f"{FIRST} {socket.gethostname()}\n"
    assert results["second"].startswith(f"{tmp_path} is in use by process {FIRST}")
    assert not (tmp_path / LOCK_NAME).exists()


def dead_pid() -> int:
    """A process id that ran on this host and runs no more."""
    import subprocess

    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_a_lock_of_another_host_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    """A run on another host sharing the folder, mid-save: its process id means nothing here."""
    pid = dead_pid()
    (tmp_path / LOCK_NAME).write_text(f"{pid} elsewhere\n")
    (tmp_path / f".ckpt-0000200.tmp-{pid}-abcdef12").mkdir()  # its save under way
    (tmp_path / f".log.jsonl.tmp-{pid}").write_text("")
    (tmp_path / ".model.old-deadbeef").mkdir()  # between its two renames
    (tmp_path / ".model.old-deadbeef" / "config.json").write_text("{}")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(TrainingError) as e:
        RunLock(tmp_path).__enter__()
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{tmp_path} is in use by process {pid} on host elsewhere ")
    assert f"(lock {tmp_path / LOCK_NAME})" in msg and f"if that run is gone, delete {tmp_path / LOCK_NAME}" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / LOCK_NAME).read_text() == f"{pid} elsewhere\n"


def test_a_lock_of_a_pid_alone_is_this_hosts_and_one_past_any_pid_is_kept(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text(f"{dead_pid()}\n")  # written by an older version, its process gone
    with RunLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()} {socket.gethostname()}\n"
    assert not (tmp_path / LOCK_NAME).exists()
    (tmp_path / LOCK_NAME).write_text(f"{10**30} {socket.gethostname()}\n")  # no process id to ask about
    with pytest.raises(TrainingError, match=f"in use by process {10**30} on host "):
        RunLock(tmp_path).__enter__()
