"""Warnings silenced for one block, without leaving a filter behind when threads do it at once.

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
import threading
import warnings
from collections.abc import Iterator

__all__ = ["warnings_ignored"]

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
