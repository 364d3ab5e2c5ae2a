"""mmtok under concurrency: torch's thread count when holds of one intra-op thread overlap in several threads, and
SIGTERM while a command writes file after file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import mmtok
from mmtok.core.threads import one_intra_op_thread, per_thread_counts

REPO = Path(mmtok.__file__).resolve().parents[1]  # this mmtok's source, whichever is installed


@pytest.mark.skipif(not per_thread_counts(), reason="torch without OpenMP keeps one count for the whole process")
def test_each_thread_gets_its_own_count_back_when_holds_overlap(two_threads: None) -> None:
    # a holds first and leaves first; b starts during a's hold (a new thread begins at the count last set: one).
    # a pool thread that ran a serial tokenize_corpus beside another stayed at one intra-op thread for good
    a_in, a_out, b_in = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def a() -> None:
        with one_intra_op_thread():
            a_in.set()
            b_in.wait()
        seen["a"] = torch.get_num_threads()
        a_out.set()

    def b() -> None:
        with one_intra_op_thread():
            b_in.set()
            a_out.wait()
            seen["b inside"] = torch.get_num_threads()
        seen["b"] = torch.get_num_threads()

    first = threading.Thread(target=a)
    first.start()
    a_in.wait()
    second = threading.Thread(target=b)
    second.start()
    for t in (first, second):
        t.join()
    assert seen == {"a": 2, "b inside": 1, "b": 2}
    assert torch.get_num_threads() == 2


def test_nested_holds_in_one_thread_give_the_count_back_at_the_outer_end(two_threads: None) -> None:
    with one_intra_op_thread():
        with one_intra_op_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


SIGTERM_MID_WRITE = """
import os, signal, sys
from pathlib import Path
import numpy as np
from mmtok.data.codes import save_codes
from mmtok.data.media_files import run_each
out = Path(sys.argv[1])
def one(path, target):
    save_codes(target, np.zeros((2, 2)), {"kind": "image"})
    return f"{path} -> {target}"
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGTERM)  # SIGTERM while the code file is half written
try:
    run_each([(out / "a.png", out / "a.png.npz"), (out / "b.png", out / "b.png.npz")], one, progress=False)
except KeyboardInterrupt as e:
    print(type(e).__name__)
    sys.exit(130)
"""


def test_sigterm_while_encode_writes_leaves_no_partial_code_file(tmp_path: Path) -> None:
    # mmtok encode / decode write file after file through run_each: SIGTERM (a scheduler, docker stop) ended the
    # process at once and left .a.png.npz.tmp-PID, half written, in the output folder
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SIGTERM_MID_WRITE, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 130, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "Terminated"
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # this process's own handler untouched
