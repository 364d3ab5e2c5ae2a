"""The one exception family mmtok raises at its public boundaries.

Every error subclasses :class:`MmtokError` *and* the builtin a caller would
expect (``ValueError`` for bad values), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "MmtokError"]


class MmtokError(Exception):
    """Base class of every error mmtok raises on purpose."""


class CheckpointError(MmtokError, ValueError):
    """A checkpoint folder is missing, damaged, of the wrong kind or of an incompatible version."""
