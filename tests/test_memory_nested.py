"""PeakMemory blocks nest: an inner CPU block's reset of the kernel's high-water mark does not lose the outer's peak.

Measured in a fresh process: in the test run's own, memory that earlier tests freed and the threads they
left make a process-wide mark a poor witness."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mmtok.core.memory import reset_peak_rss

CODE = """
import json
import numpy as np
from mmtok.core.memory import PeakMemory
with PeakMemory("cpu") as outer:
    big = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    del big
    with PeakMemory("cpu") as inner:
        small = np.ones(2**20 // 8)
        del small
print(json.dumps([outer.peak_mib, inner.peak_mib]))
"""


def test_an_inner_block_keeps_the_outer_blocks_peak() -> None:
    if not reset_peak_rss():
        pytest.skip("the kernel's peak-RSS mark cannot be reset here")
    run = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120,
                         env={"OMP_NUM_THREADS": "1", "PATH": ""}, check=True)
    outer, inner = json.loads(run.stdout.strip().splitlines()[-1])
    assert outer >= 48  # the 64 MiB before the inner block, give or take the allocator
    assert inner < outer
