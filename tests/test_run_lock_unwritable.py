"""A run folder the process cannot write its lock in (a read-only mount, no permission, a full disk) is refused
in one line that says why and what to do, before anything in it is touched."""

from __future__ import annotations

import errno
import os

import pytest

from mmtok.core import run_lock
from mmtok.core.errors import TrainingError
from mmtok.core.run_lock import LOCK_NAME, RunLock


def _failing_open(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    real = os.open

    def fake(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).endswith(LOCK_NAME) and flags & os.O_CREAT:
            raise OSError(code, os.strerror(code), str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(run_lock.os, "open", fake)


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_an_unwritable_run_folder_is_refused_with_what_to_do(tmp_path, monkeypatch, code) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "kept.txt").write_text("mine")
    _failing_open(monkeypatch, code)
    with pytest.raises(TrainingError) as e, RunLock(run):
        pass
    said = str(e.value)
    assert f"cannot write in {run}" in said and os.strerror(code) in said
    assert "copy the folder somewhere writable" in said and "nothing was changed" in said
    assert sorted(p.name for p in run.iterdir()) == ["kept.txt"]


def test_a_folder_that_cannot_be_made_is_refused_the_same_way(tmp_path, monkeypatch) -> None:
    def fail(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(run_lock.Path, "mkdir", fail)
    with pytest.raises(TrainingError, match=r"cannot write in .*Read-only file system"), RunLock(tmp_path / "new"):
        pass
