"""Sampling from (or exporting) a run folder whose training has not saved its first checkpoint yet says that a
training process holds it, rather than "train first"."""

from __future__ import annotations

import os
import socket

import pytest

from mmtok.core.errors import MmtokError
from mmtok.core.run_lock import LOCK_NAME
from mmtok.lm.runs import load_run, newest_loadable


def test_a_run_held_by_a_live_trainer_says_its_first_checkpoint_is_to_come(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text(f"{os.getpid()} {socket.gethostname()}\n")  # this process: alive
    for read in (load_run, newest_loadable):
        with pytest.raises(MmtokError, match=r"holds no checkpoint .*a training run holds it now \(process "):
            read(run)


def test_an_empty_run_folder_still_says_train_first(tmp_path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(MmtokError, match=r"holds no checkpoint .*; train first$"):
        load_run(tmp_path / "run")
