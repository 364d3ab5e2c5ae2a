"""mmtok info on a training run's folder that holds only its lock: a run before its first save, said so."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from mmtok.core.errors import CheckpointError
from mmtok.core.run_lock import LOCK_NAME
from mmtok.info import describe


def test_a_dead_runs_lock_alone_is_a_run_stopped_before_its_first_save(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text(f"{2**22 + 12345} {socket.gethostname()}")  # no such process
    with pytest.raises(CheckpointError, match=r"holds only a training run's lock \(\.lock\), its process is gone: "
                                              "the run stopped before its first save"):
        describe(tmp_path)


def test_a_live_runs_lock_alone_is_a_run_not_saved_yet(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text(f"{os.getpid()} {socket.gethostname()}")
    with pytest.raises(CheckpointError, match=rf"held by process {os.getpid()} .*: it has not saved yet"):
        describe(tmp_path)
