"""torch's intra-op thread count held at one while any holder is inside, however many threads hold it.

``torch.set_num_threads`` sets one count for the whole process. A run that saves the count, sets one and puts
the saved count back when it ends is wrong as soon as two runs overlap in two threads: the second saves the
first's one, and whichever ends last leaves the process at one thread for good. :func:`one_intra_op_thread`
counts its holders instead: the first to enter saves the count, the last to leave puts it back (unless
someone set another count meanwhile: that one stays).

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

__all__ = ["one_intra_op_thread"]

_LOCK = threading.Lock()
_holders = 0
_saved = 1


@contextmanager
def one_intra_op_thread() -> Iterator[None]:
    """Run the body with one intra-op thread; the count from before the first holder comes back after the last."""
    global _holders, _saved
    with _LOCK:
        if _holders == 0:
            _saved = torch.get_num_threads()
        _holders += 1
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
    try:
        yield
    finally:
        with _LOCK:
            _holders -= 1
            if _holders == 0 and torch.get_num_threads() == 1 and _saved != 1:
                torch.set_num_threads(_saved)
