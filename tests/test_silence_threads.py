"""Silence warnings collected per thread: a corpus run that says its silent files once changes nothing
process-wide (the warning filters, ``warnings.showwarning``), so other threads' warnings show as before and
two runs in two threads each count their own files."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmtok.audio.io import SilenceWarning, load_audio, warn_silence
from mmtok.data.media_files import given_again, silence_collected


def _silent(path: Path) -> Path:
    sf.write(path, np.zeros(1600, np.float32), 16000)
    return path


def test_the_warning_names_the_line_that_called_load_audio(tmp_path: Path) -> None:
    with pytest.warns(SilenceWarning) as caught:
        load_audio(_silent(tmp_path / "s.wav"))
    assert caught[0].filename == __file__


def test_collecting_leaves_the_warning_machinery_alone(tmp_path: Path) -> None:
    shown, filters = warnings.showwarning, list(warnings.filters)
    with silence_collected() as found:
        assert warnings.showwarning is shown and warnings.filters == filters
        load_audio(_silent(tmp_path / "a.wav"))
        with pytest.warns(UserWarning, match="not silence"):  # other warnings show as before
            warnings.warn("not silence", UserWarning, stacklevel=1)
    assert [w.path for w in found] == [str(tmp_path / "a.wav")]
    assert warnings.showwarning is shown and warnings.filters == filters


def test_two_threads_collect_their_own_and_a_third_still_warns(tmp_path: Path) -> None:
    files = {name: [_silent(tmp_path / f"{name}{i}.wav") for i in range(4)] for name in ("a", "b")}
    got: dict[str, list[str]] = {}
    start = threading.Barrier(3)

    def run(name: str) -> None:
        with silence_collected() as found:
            start.wait()
            for path in files[name]:
                load_audio(path)
        got[name] = [w.path for w in found]

    threads = [threading.Thread(target=run, args=(n,)) for n in files]
    for t in threads:
        t.start()
    with pytest.warns(SilenceWarning):  # this thread collects nothing: its silence is a warning
        start.wait()
        load_audio(_silent(tmp_path / "main.wav"))
    for t in threads:
        t.join()
    assert got == {name: [str(p) for p in paths] for name, paths in files.items()}


def test_warnings_given_again_go_to_the_collector_of_the_thread_that_gives_them() -> None:
    w = SilenceWarning("audio file x.wav is digital silence")
    w.path = "x.wav"
    with silence_collected() as found:
        assert list(given_again([("doc", [w])])) == ["doc"]
    assert found == [w]
    with pytest.warns(SilenceWarning, match="x.wav"):
        warn_silence(w)
