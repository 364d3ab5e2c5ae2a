"""Usage counts of one quantizer encoding in several threads: none lost. torch lets other threads run during an
in-place add, so two threads adding to ``seen_counts`` at once could each read the old counts and write back
their own sum (3,000 encodes of 8 vectors in 6 threads counted 14,396 of 14,400 vectors); the tests make that
interleaving certain by turning the add into a read, a pause and a write."""

from __future__ import annotations

import threading
import time
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from mmtok.vq.quantizer import VectorQuantizer, VQConfig

THREADS, CALLS = 4, 3


class SlowAdd(TorchFunctionMode):
    """``target += x`` as a read, a pause and a write (this thread's calls only: modes are per thread)."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if getattr(func, "__name__", "") in ("add_", "__iadd__") and args and args[0] is self.target:
            before = args[0].clone()
            time.sleep(0.005)
            return args[0].copy_(before + args[1])
        return func(*args, **(kwargs or {}))


def _in_threads(vq: VectorQuantizer, step: Any) -> None:
    start = threading.Barrier(THREADS)

    def run() -> None:
        with SlowAdd(vq.seen_counts):
            start.wait()
            for _ in range(CALLS):
                step()

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_encodes_in_threads_lose_no_counts() -> None:
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=16, kmeans_init=False)).eval()
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    _in_threads(vq, lambda: vq.encode(x))
    assert vq.usage_stats().total == THREADS * CALLS * 8


def test_forward_calls_in_threads_lose_no_counts() -> None:
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=16, kmeans_init=False)).eval()
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _in_threads(vq, lambda: vq(x))
    assert vq.usage_stats().total == THREADS * CALLS * 8
