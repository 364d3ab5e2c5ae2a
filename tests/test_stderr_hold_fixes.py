"""Holding stderr for an MP3 read drops only libmpg123's notes: what other threads write meanwhile
reaches stderr, in order; a process forked while another thread holds stderr neither hangs on the
hold's lock nor keeps descriptor 2 pointed at that thread's file."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
import soundfile as sf

from mmtok.audio.io import load_audio
from mmtok.core.c_stderr import first_line, held_stderr

NOTES = (b"Note: Illegal Audio-MPEG-Header 0x00000000 at offset 417.\n"
         b"[src/libmpg123/parse.c:wetwork():1349] error: Giving up resync after 1024 bytes\n"
         b"Warning: Encountered more data after announced end of track (frame 9/8). Frankenstein!\n")
OTHERS = (b"app line 0\n", b"WARNING:root:a logged warning\n", b"x.py:3: UserWarning: a warning\n",
          b"Traceback (most recent call last):\n", b"\r 50%|#####     | 5/10")  # a progress bar: no newline
CHILD_WAIT = 10.0  # seconds a forked child gets to finish (it takes milliseconds)


def mp3(path: Path) -> Path:
    """A second of a seeded tone, as an MP3 libsndfile writes."""
    rng = np.random.default_rng(0)
    x = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000) + 0.01 * rng.standard_normal(16_000)
    sf.write(path, x.astype(np.float32), 16_000, format="MP3")
    return path


def test_a_hold_keeps_the_decoders_notes_and_passes_on_every_other_line(capfd: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryFile() as sink:
        with held_stderr(sink):
            for note, other in zip(NOTES.splitlines(keepends=True), OTHERS, strict=False):
                os.write(2, note)
                os.write(2, other)
            for other in OTHERS[len(NOTES.splitlines()) :]:
                os.write(2, other)
        assert capfd.readouterr().err == b"".join(OTHERS).decode()  # before: "" (all of it dropped)
        assert os.pread(sink.fileno(), 1 << 12, 0) == NOTES
        assert first_line(sink) == "Illegal Audio-MPEG-Header 0x00000000 at offset 417"
        with held_stderr(sink):  # a second hold adds its notes after the first's
            os.write(2, b"Note: Trying to resync...\n")
        assert os.pread(sink.fileno(), 1 << 12, 0) == NOTES + b"Note: Trying to resync...\n"


def test_holds_inside_holds_pass_on_what_is_not_a_note(capfd: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryFile() as outer, tempfile.TemporaryFile() as inner:
        with held_stderr(outer):
            os.write(2, b"one\n")
            with held_stderr(inner):
                os.write(2, b"Note: inner\ntwo\n")
                with held_stderr(inner):  # the file held already
                    os.write(2, b"Note: innermost\nthree\n")
            os.write(2, b"Note: outer\nfour\n")
        assert capfd.readouterr().err == "one\ntwo\nthree\nfour\n"
        assert os.pread(inner.fileno(), 1 << 12, 0) == b"Note: inner\nNote: innermost\n"
        assert os.pread(outer.fileno(), 1 << 12, 0) == b"Note: outer\n"


def test_lines_another_thread_writes_during_an_mp3_read_reach_stderr_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    path = mp3(tmp_path / "a.mp3")
    read = sf.SoundFile.read
    turn, said = threading.Event(), threading.Event()

    def noisy_read(self: sf.SoundFile, *args: object, **kwargs: object) -> np.ndarray:
        os.write(2, NOTES)  # as libmpg123 does on a damaged stream
        turn.set()  # the other thread writes while stderr is held
        assert said.wait(CHILD_WAIT)
        said.clear()
        return read(self, *args, **kwargs)

    def logger() -> None:
        for i in range(3):
            assert turn.wait(CHILD_WAIT)
            turn.clear()
            os.write(2, f"app line {i}\n".encode())
            said.set()

    monkeypatch.setattr(sf.SoundFile, "read", noisy_read)
    thread = threading.Thread(target=logger)
    thread.start()
    try:
        for _ in range(3):
            assert load_audio(path).numel() == 16_000
    finally:
        turn.set()
        thread.join()
    assert capfd.readouterr().err == "app line 0\napp line 1\napp line 2\n"  # before: ""


def test_a_child_forked_while_another_thread_holds_stderr_neither_hangs_nor_writes_into_the_hold(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork")
    path = mp3(tmp_path / "a.mp3")
    held, release = threading.Event(), threading.Event()

    def holder(sink: BinaryIO) -> None:
        with held_stderr(sink):
            held.set()
            release.wait(CHILD_WAIT)

    with tempfile.TemporaryFile() as sink:
        thread = threading.Thread(target=holder, args=(sink,))
        thread.start()
        try:
            assert held.wait(CHILD_WAIT)
            pid = os.fork()
            if pid == 0:  # the child: only this thread, and the holder's lock and descriptor 2 as they were
                code = 1
                try:
                    os.write(2, b"child: before\n")
                    load_audio(path)  # before: waits for ever on the holder's lock
                    os.write(2, b"child: read the mp3\n")
                    code = 0
                finally:
                    os._exit(code)
            deadline, status = time.monotonic() + CHILD_WAIT, None
            while status is None and time.monotonic() < deadline:
                done, code = os.waitpid(pid, os.WNOHANG)
                status = code if done else None
                time.sleep(0.01)
            if status is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            said = capfd.readouterr().err  # while the holder still holds: the child wrote to stderr itself
        finally:
            release.set()
            thread.join()
        assert status is not None, "the forked child hung"
        assert os.waitstatus_to_exitcode(status) == 0
        assert said == "child: before\nchild: read the mp3\n"
        assert capfd.readouterr().err == ""
        assert os.pread(sink.fileno(), 1 << 12, 0) == b""
