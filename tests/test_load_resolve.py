"""Which folder a name or path loads: a pathlib.Path is always a path, only a str without a folder separator
can be a shipped name, and a run records a checkpoint by the same rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmtok.core.checkpoint_names import checkpoint_source, models_dir, resolve_checkpoint
from mmtok.core.errors import CheckpointError


@pytest.fixture
def recordings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with ``audio/`` and ``image/`` of the user's own media (no checkpoints)."""
    for name in ("audio", "image"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.bin").write_bytes(b"media")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_pathlib_path_is_always_a_path(recordings: Path) -> None:
    assert resolve_checkpoint("./audio") == Path("audio") == resolve_checkpoint(Path("./audio"))
    assert resolve_checkpoint(Path("audio")) == Path("audio")  # no separator in its text: still a path
    assert resolve_checkpoint("audio") == models_dir() / "audio"  # the str is the shipped name
    with pytest.raises(CheckpointError, match="no checkpoint at nothing: the folder does not exist"):
        resolve_checkpoint(Path("nothing"))


def test_the_recorded_source_names_the_folder_that_is_loaded(recordings: Path) -> None:
    for name in ("image", "audio"):
        assert resolve_checkpoint(name) == models_dir() / name and checkpoint_source(name) == name
        assert resolve_checkpoint(f"{name}/") == Path(name)
        assert checkpoint_source(f"{name}/") == checkpoint_source(Path(name)) == str(recordings / name)
    assert checkpoint_source("no-such-model") == "no-such-model"
