"""Warnings silenced for one block, without leaving a filter behind when threads do it at once; and warnings
attributed to the user's own line (:func:`user_stacklevel`).

``warnings.catch_warnings`` saves the process's filter list on entry and puts it back on leaving. Two
threads whose blocks overlap each save the other's additions, so the one that leaves last can restore a
list that still holds the first one's ``ignore`` filter, for good. :func:`warnings_ignored` takes one
lock around every such block of mmtok's, so theirs never overlap.

>>> import warnings
>>> before = list(warnings.filters)
>>> with warnings_ignored(ResourceWarning):
...     warnings.warn("not shown", ResourceWarning)
>>> warnings.filters == before
True
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = ["user_stacklevel", "warnings_ignored"]

_MMTOK = str(Path(__file__).resolve().parents[1]) + os.sep  # the package's own files
_PASSED = (os.sep + "torch" + os.sep, os.sep + "contextlib.py", os.sep + "functools.py", os.sep + "threading.py")

_FILTERS_LOCK = threading.RLock()  # held by the one block that changes the filters now (a nested one re-enters)


@contextlib.contextmanager
def warnings_ignored(*categories: type[Warning]) -> Iterator[None]:
    """Within: warnings of ``categories`` are not shown; the filters are as they were afterwards, whichever
    threads run such blocks at the same time. Keep the block short (an open, not a decode): blocks of all
    threads wait for each other."""
    with _FILTERS_LOCK, warnings.catch_warnings():
        for category in categories:
            warnings.simplefilter("ignore", category)
        yield


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` in the function that calls this: the nearest line outside mmtok
    (and outside the decorators and context managers of torch and the standard library it passes through), so a
    warning names the user's line however deep in mmtok it was given; 1 (that ``warnings.warn`` itself) when mmtok
    is all there is (the ``mmtok`` command)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and _inside(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level if frame is not None else 1


@functools.lru_cache(maxsize=512)
def _inside(filename: str) -> bool:
    """Whether a frame of ``filename`` is mmtok's own, or a wrapper between two of its frames."""
    path = os.path.realpath(filename) if os.path.isabs(filename) else filename
    return path.startswith(_MMTOK) or any(part in path for part in _PASSED)
