"""Outputs that cannot be written (a full disk, a read-only folder, standard output on a full device) are said for
the path the user named; Ctrl-C during start-up is handled; a junk MP3 is not said to be missing."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmtok.core import files
from mmtok.core.errors import CorpusError, OutputError, UsageError, exit_status


def _full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every folder read-only to this process (chmod does not stop root, who runs the tests here)."""
    monkeypatch.setattr(files.os, "access", lambda path, mode, **kw: False)


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    from mmtok.data.corpus import tokenize_corpus

    (tmp_path / "docs.jsonl").write_text('{"segments": ["hi"]}\n{"segments": ["there"]}\n')
    tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "shards")
    return tmp_path / "shards"


def test_write_atomic_on_a_full_disk_names_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.json").write_text("old")
    monkeypatch.setattr(files.os, "fsync", _full)
    with pytest.raises(OutputError) as e:
        files.write_atomic(tmp_path / "a.json", "new")
    assert str(e.value) == f"cannot write {tmp_path / 'a.json'}: No space left on device; nothing there was changed"
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC and exit_status(e.value) == 1
    assert os.listdir(tmp_path) == ["a.json"] and (tmp_path / "a.json").read_text() == "old"


def test_plot_into_a_read_only_folder_is_refused_before_scoring(tmp_path: Path, read_only: None) -> None:
    from mmtok.evaluate import plot_target

    with pytest.raises(UsageError, match=r"--plot .*p\.png: the folder .* is not writable"):
        plot_target(tmp_path / "ro" / "p.png")


def test_export_to_a_read_only_folder_is_refused_up_front(shards: Path, read_only: None) -> None:
    from mmtok.data.export import export_shards

    out = shards.parent / "e.bin"
    with pytest.raises(CorpusError, match=r"--out .*e\.bin cannot be written: .* is read-only to you; nothing was"):
        export_shards(shards, to="bin", out=out)
    assert not out.exists()


@pytest.mark.parametrize("to", ["bin", "parquet"])
def test_export_on_a_full_disk_names_out(shards: Path, monkeypatch: pytest.MonkeyPatch, to: str) -> None:
    from mmtok.data import export

    if to == "bin":
        monkeypatch.setattr(export.np, "save", _full)
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        monkeypatch.setattr(pq.ParquetWriter, "write_table", _full)
    out = shards.parent / f"e.{to}"
    with pytest.raises(OutputError) as e:
        export.export_shards(shards, to=to, out=out)
    assert str(e.value) == f"cannot write {out}: No space left on device; nothing there was changed"
    assert sorted(os.listdir(shards.parent)) == ["docs.jsonl", "shards"]  # no temporary left behind


def test_export_unwraps_a_full_disk_inside_another_error(shards: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.data import export

    class GenerationError(Exception):  # as the datasets package wraps what went wrong
        pass

    def generate(*args: object) -> None:
        try:
            _full()
        except OSError as e:
            raise GenerationError("An error occurred while generating the dataset") from e

    monkeypatch.setattr(export, "_write_datasets", generate)
    monkeypatch.setattr(export, "_write_bin", generate)  # no datasets package needed
    out = shards.parent / "e.datasets"
    with pytest.raises(OutputError, match=r"^cannot write .*e\.datasets: No space left on device"):
        export.export_shards(shards, to="bin", out=out)


class _FullDevice(io.StringIO):
    """Standard output redirected to ``/dev/full``."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_standard_output_on_a_full_device_is_said_so(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main

    monkeypatch.setattr(sys, "stdout", _FullDevice())
    assert main(["context", "10m"]) == 1
    assert capsys.readouterr().err == "mmtok: error: cannot write to standard output: No space left on device\n"


def test_a_closed_pipe_stays_quiet(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import PIPE_CLOSED, main

    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["context", "10m"]) == PIPE_CLOSED
    assert capsys.readouterr().err == ""


def test_importing_the_command_does_not_import_torch() -> None:
    """What Ctrl-C can interrupt before ``main`` handles it is the standard library's imports alone."""
    code = "import sys, mmtok.cli; print(sorted(m for m in ('torch', 'numpy', 'mmtok.audio') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_ctrl_c_while_the_command_loads_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok import cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        status = cli.main(["info", "x"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C while the command loads escaped main")
    assert status == 130
    assert capsys.readouterr().err.startswith("mmtok: interrupted after ")


def test_a_junk_mp3_is_not_said_to_be_missing(tmp_path: Path) -> None:
    from mmtok.audio.io import load_audio
    from mmtok.core.errors import AudioError

    path = tmp_path / "x.mp3"
    path.write_bytes(b"ID3" + bytes(range(256)) * 12)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert "does not exist" not in str(e.value) and f"cannot read audio file {path}" in str(e.value)
