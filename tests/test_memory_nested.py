"""PeakMemory blocks nest: an inner CPU block's reset of the kernel's high-water mark does not lose the outer's peak."""

from __future__ import annotations

import numpy as np
import pytest

from mmtok.core.memory import PeakMemory, reset_peak_rss


def test_an_inner_block_keeps_the_outer_blocks_peak() -> None:
    if not reset_peak_rss():
        pytest.skip("the kernel's peak-RSS mark cannot be reset here")
    with PeakMemory("cpu") as outer:
        big = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        del big
        with PeakMemory("cpu") as inner:
            small = np.ones(2**20 // 8)
            del small
    assert outer.peak_mib >= 48  # the 64 MiB before the inner block, give or take the allocator
    assert inner.peak_mib < outer.peak_mib
