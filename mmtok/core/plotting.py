"""matplotlib's ``pyplot`` drawing to files (the Agg backend), and what happens when it is not installed.

matplotlib is the optional ``plot`` extra. A picture that is the point of the call (the demo's
figures, a plot asked for by name) needs it: without it :func:`pyplot` raises a one-line error that
names the extra. A picture a run draws beside its real output (a trainer's usage histogram or loss
curve) is skipped: one line on stderr, once per process for each skipped picture, and no error.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from mmtok.core.errors import MmtokError, UsageError

__all__ = ["pyplot"]

_INSTALL = "pip install 'mmtok[plot]'"

_skipped: set[str] = set()  # pictures already reported skipped in this process


def pyplot(what: str, *, required: bool = False, error: type[MmtokError] = UsageError) -> Any:
    """``matplotlib.pyplot`` set to draw to files, or what to do without matplotlib.

    The Agg backend is chosen only when pyplot is not imported yet and no ``MPLBACKEND`` names one: a process
    that already uses pyplot (a notebook, a GUI), or whose environment chose a backend, keeps it; its ``savefig``
    writes the same files.

    ``what``: the pictures, in words or as paths. ``required``: without matplotlib raise ``error``
    (one line: ``what`` needs matplotlib and how to install it); otherwise say on stderr, once per
    process, that ``what`` is skipped, and return None.
    """
    try:
        import matplotlib

        # a caller's pyplot or MPLBACKEND keeps its backend (savefig draws files alike)
        if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        # not there, or there but failing to import (built for another numpy, a missing library of its own)
        absent = isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] == "matplotlib"
        state = "is not installed" if absent else f"does not import ({e})"
        if required:
            raise error(f"{what} needs matplotlib, which {state}: {_INSTALL}") from None
        if what not in _skipped:
            _skipped.add(what)
            print(f"matplotlib {state} ({_INSTALL}): skipping {what}", file=sys.stderr)
        return None
    return plt
