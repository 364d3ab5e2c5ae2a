"""torch's intra-op thread count held at one while any holder is inside, however many threads hold it.

Where torch parallelises with OpenMP (the Linux and Windows wheels), ``torch.set_num_threads`` sets the count of
the calling thread alone (and the count threads started later begin with): a hold in one thread leaves the others
as they are, so each thread saves its own count when it first enters and puts it back when it last leaves, however
the holds of several threads overlap (a thread started during another's hold, which begins at one, gets the count
the process had before the first hold). Elsewhere (torch's own thread pool) one count serves the whole process: there
a run that saves the count, sets one and puts the saved count back is wrong as soon as two runs overlap in two
threads (the second saves the first's one, and whichever ends last leaves the process at one thread for good), so
the holders are counted instead: the first to enter saves the count, the last to leave puts it back. Either way a
count someone set meanwhile (anything but one) stays.

>>> before = torch.get_num_threads()
>>> with one_intra_op_thread():
...     torch.get_num_threads()
1
>>> torch.get_num_threads() == before
True
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["one_intra_op_thread", "per_thread_counts"]

_LOCK = threading.Lock()
_holders = 0  # holds in progress in the whole process
_saved = 1  # the process's count before its first holder (a process-wide count only)
_mine = threading.local()  # per thread: depth (its holds in progress) and saved (its count before the first)


def per_thread_counts() -> bool:
    """Whether ``torch.set_num_threads`` sets the calling thread's count only (torch built with OpenMP)."""
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


_PER_THREAD = per_thread_counts()


@contextmanager
def one_intra_op_thread() -> Iterator[None]:
    """Run the body with one intra-op thread; the count from before comes back after the last hold that set it."""
    global _holders, _saved
    depth = getattr(_mine, "depth", 0)
    with _LOCK:
        now = torch.get_num_threads()
        if _holders == 0:
            _saved = now
        if depth == 0:  # a thread started during another's hold began at its one: it gets the process's count
            _mine.saved = _saved if now == 1 and _holders > 0 else now
        _holders += 1
        _mine.depth = depth + 1
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
    try:
        yield
    finally:
        with _LOCK:
            _holders -= 1
            _mine.depth -= 1
            back = (_mine.saved if _mine.depth == 0 else 1) if _PER_THREAD else (_saved if _holders == 0 else 1)
            if back != 1 and torch.get_num_threads() == 1:
                torch.set_num_threads(back)
