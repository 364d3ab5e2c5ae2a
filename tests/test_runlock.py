"""RunLock: two trainers that find the same stale lock at once do not both take it over."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mmtok.core import trainstate
from mmtok.core.errors import TrainingError
from mmtok.core.trainstate import LOCK_NAME, RunLock

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

    monkeypatch.setattr(trainstate, "_alive", alive)
    with RunLock(tmp_path):
        other.join(5)
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(FIRST)
    assert results["second"].startswith(f"{tmp_path} is in use by process {FIRST}")
    assert not (tmp_path / LOCK_NAME).exists()
