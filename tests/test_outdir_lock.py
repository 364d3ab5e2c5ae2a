"""The lock of a tokenize run's output folder: held for the run, gone once the run ends (finished or failed),
and never held by two runs at once, not even by one that opened the lock file just before its holder removed it."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmtok.cli import main
from mmtok.core.errors import CorpusError
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.outdir import LOCK_NAME, claimed

# another process claiming the folder; with "pause" it stops (until a line on stdin) after it opened the lock
# file and before it locks it, as a run does that the scheduler sets aside there; holding it, it waits for a line
RACER = """
import fcntl, sys
from pathlib import Path
from mmtok.core.errors import CorpusError
from mmtok.data.outdir import claimed
real, pause = fcntl.lockf, ([True] if sys.argv[2] == "pause" else [])
def lockf(fd, op):
    if pause:
        pause.clear()
        print("opened", flush=True)
        sys.stdin.readline()
    return real(fd, op)
fcntl.lockf = lockf
try:
    with claimed(Path(sys.argv[1])):
        print("held", flush=True)
        sys.stdin.readline()
except CorpusError as e:
    print("refused:", e, flush=True)
"""


@contextlib.contextmanager
def racer(out: Path, pause: bool = False) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", RACER, str(out), "pause" if pause else "-"], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def said(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def go_on(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


def corpus(folder: Path, lines: str = '{"segments": [{"text": "hello"}]}\n') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "docs.jsonl").write_text(lines)
    return folder / "docs.jsonl"


def test_a_finished_run_leaves_no_lock_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["tokenize", str(corpus(tmp_path)), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shard-00000.bin", "shard-00000.json"]
    stale = tmp_path / "killed"  # a run killed with -9 left its lock file: the next run takes it and removes it
    stale.mkdir()
    (stale / LOCK_NAME).touch()
    tokenize_corpus(corpus(tmp_path), stale)
    assert not (stale / LOCK_NAME).exists() and (stale / "manifest.json").is_file()


def test_a_failed_run_leaves_no_lock_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    bad = corpus(tmp_path / "bad", '{"segments": [{"text": "hello"}]}\nnot json\n')
    with pytest.raises(CorpusError, match=r"docs\.jsonl:2: invalid JSON"):
        tokenize_corpus(bad, out, strict=True)
    assert LOCK_NAME not in {p.name for p in out.iterdir()}
    (out / "manifest.json").write_text('{"format": "someone else\'s"}')  # refused before any work
    with pytest.raises(CorpusError, match="is not an mmtok shard manifest"):
        tokenize_corpus(corpus(tmp_path), out)
    assert LOCK_NAME not in {p.name for p in out.iterdir()}
    with pytest.raises(CorpusError, match="invalid JSON"):  # into a new folder: the folder goes too
        tokenize_corpus(bad, tmp_path / "new" / "out", strict=True)
    assert not (tmp_path / "new").exists()


def test_a_second_run_is_refused_while_the_first_holds_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with racer(out) as first:
        assert said(first) == "held"
        with pytest.raises(CorpusError, match=f"another mmtok tokenize is writing to {out}"):
            tokenize_corpus(corpus(tmp_path), out)
        assert (out / LOCK_NAME).exists()  # the refused run leaves the holder's lock where it is
        go_on(first)
        assert first.wait(timeout=10) == 0
    assert list(out.iterdir()) == []


def test_a_run_that_opened_the_removed_lock_file_does_not_share_the_folder(tmp_path: Path) -> None:
    met, alone = tmp_path / "met", tmp_path / "alone"
    with racer(met, pause=True) as late, racer(alone, pause=True) as late_alone:  # both start at once
        for out, proc in ((met, late), (alone, late_alone)):
            with claimed(out):
                assert said(proc) == "opened"  # it opened the lock file this run holds, and waits to lock it
            assert not (out / LOCK_NAME).exists()
        with claimed(met):  # a run starts meanwhile: it holds the new lock file, the late one is refused
            go_on(late)
            assert said(late) == f"refused: another mmtok tokenize is writing to {met}; wait for it or use another --out"
        go_on(late_alone)  # no other run: the late one locks the file the name holds now, and keeps others out
        assert said(late_alone) == "held"
        with pytest.raises(CorpusError, match="another mmtok tokenize is writing"):
            tokenize_corpus(corpus(tmp_path), alone)
        go_on(late_alone)
        assert late.wait(timeout=10) == 0 and late_alone.wait(timeout=10) == 0
    assert list(met.iterdir()) == [] and list(alone.iterdir()) == []
