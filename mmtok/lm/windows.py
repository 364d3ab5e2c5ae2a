"""A run's documents against its training window: how many are longer than ``--seq-len``
(:func:`window_fit`), and the one warning line :mod:`mmtok.lm.train` gives before a run's first step
(:func:`long_documents_note`, a :class:`LongDocumentsWarning`).

Windows are cut from the documents read back to back (:class:`~mmtok.data.packing.PackedDataset`), so a
document longer than the window is split across windows and the model never attends over the whole of it (a
16×16 image alone is 274 tokens, more than the default 256). A window long enough is not all: windows start
at fixed offsets of that stream, so a document is whole in one only where it crosses no window edge, unless the
windows are filled with whole documents (``--packing documents``): then only a document longer than a window
holds (``seq_len + 1`` tokens: ``seq_len`` inputs and the target after the last) is cut. The lengths come from
the shards' document offsets (:func:`document_lengths`), not from their ids; :func:`windows_phrase` says the
windows a run trains on.

>>> fit = window_fit(np.array([294] * 19 + [14]), seq_len=256)  # captioned 16×16 images and a short note
>>> fit.longer, fit.docs, fit.longest, fit.suggested
(19, 20, 294, 320)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mmtok.data.packing import PACKINGS, PackedDataset
from mmtok.data.shards import ShardSet

__all__ = ["WHOLE_SHARE", "WINDOW_STEP", "LongDocumentsWarning", "WindowFit", "document_lengths",
           "long_documents_note", "window_fit", "windows_phrase"]

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


def window_fit(lengths: np.ndarray, *, seq_len: int, packing: str = "stream") -> WindowFit:
    """How documents of ``lengths`` tokens fit windows of ``seq_len``: how many are longer, the longest, and
    the shortest multiple of :data:`WINDOW_STEP` that holds :data:`WHOLE_SHARE` of them whole (every one,
    where that share already fits ``seq_len``). With ``packing="documents"`` a window holds a document of
    ``seq_len + 1`` tokens whole (its last token a target only): longer means longer than that."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise ValueError(f"seq_len (tokens per window) must be a whole number >= 1, got {seq_len!r}")
    if packing not in PACKINGS:
        raise ValueError(f"packing must be 'stream' or 'documents', got {packing!r}")
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size == 0:
        return WindowFit(0, 0, 0, _window_for(seq_len), 1.0)
    inputs = lengths - 1 if packing == "documents" else lengths  # the window positions a document takes
    longest, k = int(lengths.max()), math.ceil(WHOLE_SHARE * lengths.size) - 1
    most = int(np.partition(inputs, k)[k])  # the longest of the shortest 95%
    suggested, share = _window_for(most), WHOLE_SHARE
    if suggested <= seq_len:  # fewer than 5% are longer: the window that holds them all
        suggested, share = _window_for(int(inputs.max())), 1.0
    return WindowFit(int(lengths.size), int((inputs > seq_len).sum()), longest, suggested, share)


def long_documents_note(fit: WindowFit, *, seq_len: int, where: object, packing: str = "stream") -> str | None:
    """The warning for documents (of the shards in ``where``) longer than ``seq_len`` (with ``packing``
    ``"documents"``, than a window holds whole); None when none is. ``fit`` is :func:`window_fit`'s, for the
    same ``packing``."""
    if not fit.longer:
        return None
    holds = "every document" if fit.share == 1.0 else f"{fit.share:.0%} of the documents"
    if packing == "documents":
        return (f"{fit.longer} of the {fit.docs} documents in {where} are longer than a window of --seq-len {seq_len} "
                f"holds whole ({seq_len + 1} tokens: {seq_len} inputs and the target after the last; the longest: "
                f"{fit.longest} tokens): --packing documents cuts them into consecutive windows, so the model never "
                f"attends over one whole; --seq-len {fit.suggested} is long enough for {holds}")
    return (f"{fit.longer} of the {fit.docs} documents in {where} are longer than --seq-len {seq_len} (the longest: "
            f"{fit.longest} tokens): training windows cut them, so the model never attends over one whole; "
            f"--seq-len {fit.suggested} is long enough for {holds} (still cut where one crosses a window edge, "
            "unless --packing documents)")


def windows_phrase(ds: PackedDataset) -> str:
    """The training windows of ``ds`` in words: ``"52 training windows of 256 tokens"``, and with
    ``packing="documents"`` what share of their tokens is padding."""
    said = f"{ds.num_windows} training windows of {ds.seq_len} tokens"
    return f"{said}, whole documents ({ds.padding:.0%} of their tokens padding)" if ds.packing == "documents" else said
