"""A run's documents against its training window: how many are longer than ``--seq-len``
(:func:`window_fit`), and the one warning line :mod:`mmtok.lm.train` gives before a run's first step
(:func:`long_documents_note`, a :class:`LongDocumentsWarning`).

Windows are cut from the documents read back to back (:class:`~mmtok.data.packing.PackedDataset`), so a
document longer than the window is split across windows and the model never attends over the whole of it (a
16×16 image alone is 274 tokens, more than the default 256). A window long enough is not all: windows start
at fixed offsets of that stream, so a document is whole in one only where it crosses no window edge. The
lengths come from the shards' document offsets (:func:`document_lengths`), not from their ids.

>>> fit = window_fit(np.array([294] * 19 + [14]), seq_len=256)  # captioned 16×16 images and a short note
>>> fit.longer, fit.docs, fit.longest, fit.suggested
(19, 20, 294, 320)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mmtok.data.shards import ShardSet

__all__ = ["WHOLE_SHARE", "WINDOW_STEP", "LongDocumentsWarning", "WindowFit", "document_lengths",
           "long_documents_note", "window_fit"]

WINDOW_STEP = 64  # a suggested --seq-len is a multiple of this
WHOLE_SHARE = 0.95  # the share of the documents a suggested --seq-len holds whole


class LongDocumentsWarning(UserWarning):
    """Documents in the training shards are longer than the training window (``seq_len``); filter it with
    ``warnings.simplefilter("ignore", LongDocumentsWarning)``."""


@dataclass(frozen=True)
class WindowFit:
    """How a run's documents fit its training window."""

    docs: int  # documents in the shards
    longer: int  # of them longer than the window
    longest: int  # tokens of the longest document
    suggested: int  # a window (multiple of WINDOW_STEP) that holds `share` of the documents whole
    share: float  # WHOLE_SHARE, or 1.0 where a window that holds that share is no longer than seq_len


def document_lengths(shards: ShardSet) -> np.ndarray:
    """Tokens of every document in ``shards``, in order (int64 ``[docs]``): from the offsets in the shards'
    indexes, no id read."""
    return np.concatenate([np.diff(offs) for offs in shards.offsets] or [np.zeros(0, np.int64)]).astype(np.int64)


def _window_for(length: int) -> int:
    return WINDOW_STEP * max(1, math.ceil(length / WINDOW_STEP))


def window_fit(lengths: np.ndarray, *, seq_len: int) -> WindowFit:
    """How documents of ``lengths`` tokens fit windows of ``seq_len``: how many are longer, the longest, and
    the shortest multiple of :data:`WINDOW_STEP` that holds :data:`WHOLE_SHARE` of them whole (every one,
    where that share already fits ``seq_len``)."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise ValueError(f"seq_len (tokens per window) must be a whole number >= 1, got {seq_len!r}")
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size == 0:
        return WindowFit(0, 0, 0, _window_for(seq_len), 1.0)
    longest, k = int(lengths.max()), math.ceil(WHOLE_SHARE * lengths.size) - 1
    most = int(np.partition(lengths, k)[k])  # the longest of the shortest 95%
    suggested, share = _window_for(most), WHOLE_SHARE
    if suggested <= seq_len:  # fewer than 5% are longer: the window that holds them all
        suggested, share = _window_for(longest), 1.0
    return WindowFit(int(lengths.size), int((lengths > seq_len).sum()), longest, suggested, share)


def long_documents_note(fit: WindowFit, *, seq_len: int, where: object) -> str | None:
    """The warning for documents (of the shards in ``where``) longer than ``seq_len``; None when none is."""
    if not fit.longer:
        return None
    holds = "every document" if fit.share == 1.0 else f"{fit.share:.0%} of the documents"
    return (f"{fit.longer} of the {fit.docs} documents in {where} are longer than --seq-len {seq_len} (the longest: "
            f"{fit.longest} tokens): training windows cut them, so the model never attends over one whole; "
            f"--seq-len {fit.suggested} is long enough for {holds} (still cut where one crosses a window edge)")
