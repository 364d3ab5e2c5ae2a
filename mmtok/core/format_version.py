"""The one rule and the one sentence for a file that a newer mmtok wrote.

Every format mmtok writes (checkpoint configs, shard manifests and indexes,
code files) records a whole-number ``format_version``. A version above the one
this mmtok reads is no damage: an upgrade reads it, so it is refused, never
passed over, moved aside, rewritten or thrown away.

>>> is_newer(99, 1), is_newer(1, 1), is_newer(None, 1), is_newer(True, 1)
(True, False, False, False)
>>> newer_message("run/ckpt-0000004", 99, 1)
'run/ckpt-0000004 was written by a newer mmtok (format 99, this reads 1): upgrade mmtok to read it'
"""

from __future__ import annotations

import os
from typing import Any

from mmtok.core.errors import CheckpointError, UsageError

__all__ = ["NewerCheckpointError", "NewerFileError", "is_newer", "newer_message"]


class NewerCheckpointError(CheckpointError):
    """A checkpoint a newer mmtok wrote: not damaged, so never passed over for an older one or set aside."""


class NewerFileError(UsageError):
    """A file a newer mmtok wrote (a code file): not damaged and not another program's, so never replaced."""


def is_newer(version: Any, reads: int) -> bool:
    """Whether ``version`` (a file's ``format_version``) is a whole number above ``reads``, the newest this
    mmtok reads."""
    return type(version) is int and version > reads


def newer_message(path: str | os.PathLike[str], version: int, reads: int, then: str = "") -> str:
    """The sentence refusing ``path``, written by a newer mmtok in format ``version`` (this one reads up to
    ``reads``); ``then`` adds what else the reader may do (``"; or ..."``)."""
    return f"{path} was written by a newer mmtok (format {version}, this reads {reads}): upgrade mmtok to read it{then}"
