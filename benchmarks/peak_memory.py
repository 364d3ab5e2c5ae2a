"""Peak memory of one call, measured in a fresh process so that no earlier call's memory hides it.

A process that has already run a call keeps the memory the allocator freed, so a second
side measured in the same process seems to need nothing. Here each side runs in its own
spawned process: ``build(*args)`` loads its model and data there and returns the call,
which runs twice; the resident memory it adds at its peak is read both times::

    from peak_memory import fresh_peaks
    first, second, method = fresh_peaks(make_encoder, "mmtok", "audio", clip, threads=1)

``build`` must be a module-level function (the child imports it by name) and ``args``
picklable.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from mmtok.core.memory import PeakMemory, reset_peak_rss, rss_mib

__all__ = ["POLL_SECONDS", "fresh_peaks", "has_current_rss", "peak_growth"]

POLL_SECONDS = 0.0005  # where the kernel's peak-RSS mark cannot be reset: RSS polled this often


def has_current_rss() -> bool:
    """Whether :func:`rss_mib` reads the resident memory now (``/proc/self/statm``); where it cannot, it
    falls back to ``ru_maxrss``, the process's lifetime peak, which polling cannot turn into a growth."""
    try:
        with open("/proc/self/statm"):
            return True
    except OSError:
        return False


def peak_growth(run: Callable[[], Any]) -> tuple[float | None, str]:
    """(MiB, method): how far resident memory rose above its level just before ``run()``, at its peak during it;
    (None, why) where neither the kernel's peak mark nor the current RSS can be read."""
    gc.collect()
    if reset_peak_rss():  # Linux: the kernel's high-water mark, reset to the current RSS just before the call
        with PeakMemory("cpu") as m:
            run()
        return m.peak_mib, "kernel peak-RSS mark (VmHWM), reset just before the call"
    if not has_current_rss():
        return None, "not measured: no current-RSS source"
    before = rss_mib()
    peak = [before]
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(POLL_SECONDS)

    t = threading.Thread(target=poll)
    t.start()
    run()
    done.set()
    t.join()
    return max(peak[0], rss_mib()) - before, f"RSS polled every {POLL_SECONDS * 1e3:g} ms"


def _child(build: Callable[..., Callable[[], Any]], args: tuple, threads: int, q: Any) -> None:
    torch.set_num_threads(threads)
    run = build(*args)
    first, method = peak_growth(run)  # the first call: lazily built buffers and caches are part of what it needs
    second, _ = peak_growth(run)
    q.put((first, second, method))


def fresh_peaks(build: Callable[..., Callable[[], Any]], *args: Any,
                threads: int) -> tuple[float | None, float | None, str]:
    """(first call MiB, second call MiB, method) of the call ``build(*args)`` returns, in a fresh (spawned)
    process with ``threads`` torch threads: the growth of resident memory above its level just before each call."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(build, args, threads, q))
    p.start()
    while True:
        try:
            value = q.get(timeout=1.0)
            break
        except queue.Empty:
            if p.is_alive() or not q.empty():
                continue
            p.join()
            raise SystemExit(f"peak memory: the process measuring {getattr(build, '__name__', build)}{args!r:.80} "
                             f"exited with code {p.exitcode} before it reported") from None
    p.join()
    return value
