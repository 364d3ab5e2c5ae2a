"""Token shards -> fixed-length training windows, with document boundaries.

The shards' documents are read back to back as one stream (by memmap) and cut
into windows of ``seq_len`` inputs. With ``packing="stream"`` (the default)
window ``k`` holds inputs ``[k * seq_len, (k + 1) * seq_len)`` and their
next-token targets. Every input has its target: every token but the last is an
input exactly once, and every token but the first is a target exactly once, so
no window is without a target. The last window is padded with ``<pad>`` (loss
weight 0). Documents may cross a window edge; ``doc`` numbers the documents
inside each window so a model can build a document mask, and a target that
begins a new document gets loss weight 0 (nothing in the previous document
predicts it).

With ``packing="documents"`` a window is filled with whole documents in shard
order (:func:`document_spans`): a document of ``n`` tokens fits when its
``n - 1`` inputs do (its last token is then a target only), otherwise the window
is padded like the last one and the document starts the next; a document longer
than ``seq_len + 1`` tokens starts a window and is cut into consecutive windows.
Every token is still a target at most once; no other document is cut.

>>> import pathlib, tempfile
>>> from mmtok.data.corpus import tokenize_corpus
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "docs.jsonl").write_text('{"segments": ["hi"]}\\n{"segments": ["yo!"]}\\n')
>>> _ = tokenize_corpus(d / "docs.jsonl", d / "shards")
>>> ds = PackedDataset(d / "shards", seq_len=4, shuffle=False)
>>> len(ds), ds.num_tokens
(2, 9)
>>> w = ds[0]
>>> w["ids"].tolist(), w["targets"].tolist(), w["doc"].tolist(), w["loss_weight"].tolist()
([257, 104, 105, 258], [104, 105, 258, 257], [0, 0, 0, 0], [1.0, 1.0, 1.0, 0.0])
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from mmtok.core.errors import CorpusError
from mmtok.data.shards import open_shards
from mmtok.stream.positions import GRID_MARKS, positions_thw
from mmtok.stream.vocab import Modality, Vocabulary, loss_weight_table

__all__ = ["PACKINGS", "PackedDataset", "document_spans"]

PACKINGS = ("stream", "documents")  # fixed offsets of the stream; whole documents where they fit


def document_spans(doc_ends: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, lengths)`` of the windows that hold whole documents: each window's inputs are the stream's
    tokens ``[start, start + length)`` (``length <= seq_len``), for documents ending (exclusive) at the
    ascending global ``doc_ends``. Greedy in order: the documents that fit whole (their last token a target of
    the window's last input) go in; one longer than ``seq_len + 1`` tokens starts a window and is cut every
    ``seq_len`` tokens, its tail shared with the documents after it. One bisection per window; no id read.

    >>> [a.tolist() for a in document_spans(np.array([4, 9, 30, 33]), 8)]
    [[0, 9, 17, 25], [8, 8, 8, 7]]
    """
    ends = np.unique(np.asarray(doc_ends, dtype=np.int64)).tolist()  # an empty document ends with the one before
    starts: list[int] = []
    lengths: list[int] = []
    a, last = 0, ends[-1] if ends else 0
    while a < last - 1:  # the stream's last token has nothing after it to predict
        j = bisect.bisect_right(ends, a + seq_len + 1) - 1  # the last document to end in reach
        b = ends[j] if j >= 0 else 0
        if b <= a:  # the document at a is longer than a window holds: cut it, go on from the cut
            starts.append(a)
            lengths.append(seq_len)
            a += seq_len
            continue
        if b - 1 > a:  # a single-token document alone has no target: no window for it
            starts.append(a)
            lengths.append(b - 1 - a)
        a = b
    return np.array(starts, np.int64), np.array(lengths, np.int64)


class PackedDataset(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Fixed-length windows over the shards in ``folder``, in a seeded order, this rank's slice.

    Each item is a dict of tensors ``[seq_len]``: ``ids`` (int64), ``targets``
    (int64), ``modality`` (uint8, the stream modality of ``ids``), ``target_modality``
    (uint8, that of ``targets``: ``<eol>`` inside an image is IMAGE, in the last column too;
    SPECIAL on padding), ``loss_weight`` (float32, for each target, by ``target_modality``),
    ``doc`` (int64 document number within the window, -1 on padding).
    Under DDP (or with ``rank`` and ``world_size``, given together) rank r takes every
    world_size-th window of the shuffled order, and every rank as many: as torch's
    ``DistributedSampler`` does, the order wraps around to ``ceil(num_windows / world_size)``
    windows per rank (a few windows are read twice an epoch), or with ``drop_last`` its tail is
    left out, ``num_windows // world_size`` per rank; call :meth:`set_epoch` for a new order.
    ``packing`` cuts the windows: ``"stream"`` at fixed offsets of the documents read back to back,
    ``"documents"`` around whole documents (:func:`document_spans`; ``padding`` is the share of window
    tokens left to ``<pad>``); ``spans`` holds each window's ``(starts, lengths)`` of inputs in the stream.
    With ``positions_3d`` each item also has ``pos`` (int64 ``[seq_len, 3]``): the
    interleaver's (time, row, column) positions, restarting where a document piece starts;
    a piece that begins inside an image or video grid is placed from that grid's opener,
    so its codes keep their rows and columns (:meth:`positions_thw`).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        seq_len: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        loss_weights: Mapping[str, float] | None = None,
        vocab: Vocabulary | None = None,
        positions_3d: bool = False,
        drop_last: bool = False,
        packing: str = "stream",
    ) -> None:
        if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)):
            raise TypeError(f"PackedDataset seq_len (tokens per window) must be a whole number >= 1, got {seq_len!r} "
                            f"({type(seq_len).__name__})")
        if seq_len < 1:
            raise ValueError(f"PackedDataset seq_len (tokens per window) must be a whole number >= 1, got {seq_len}")
        seq_len = int(seq_len)
        if packing not in PACKINGS:
            raise ValueError(f"PackedDataset packing={packing!r}: give 'stream' (windows at fixed offsets of the "
                             "documents read back to back) or 'documents' (whole documents in each window)")
        self.shards = open_shards(folder, vocab=vocab)
        if self.shards.num_tokens < 2:  # one token has nothing after it to predict
            raise CorpusError(f"the shards in {folder} hold {self.shards.num_tokens} token(s) (every document was "
                              "skipped or the corpus was empty; see skipped in its manifest.json): nothing to pack")
        self.vocab = self.shards.vocab
        self.seq_len, self.seed, self.shuffle, self.positions_3d = seq_len, seed, shuffle, positions_3d
        self._grid_ids = np.array(sorted(self.vocab.id(t) for m, o, c in GRID_MARKS if self.vocab.has(m) for t in (o, c)),
                                  dtype=np.int64)
        self._openers = np.array([self.vocab.id(o) for m, o, _ in GRID_MARKS if self.vocab.has(m)], dtype=np.int64)
        self._marks: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # shard -> its grid marks (_grid_marks)
        self.rank, self.world_size = _rank_and_world(rank, world_size)
        self.drop_last = bool(drop_last)
        self._weights = loss_weight_table(loss_weights)[1]
        sizes = [int(t.size) for t in self.shards.tokens]
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])  # global start of each shard
        self.num_tokens = int(self._starts[-1])
        self._doc_starts = np.concatenate(
            [offs[:-1] + start for offs, start in zip(self.shards.offsets, self._starts[:-1], strict=True)]
            or [np.zeros(0, np.int64)]
        )
        self.packing = packing
        if packing == "documents":
            self.spans = document_spans(np.append(self._doc_starts[1:], self.num_tokens), seq_len)
        else:  # inputs: every token that has a target; the last window's are cut where the stream ends
            starts = np.arange(0, self.num_tokens - 1, seq_len, dtype=np.int64)
            self.spans = (starts, np.minimum(seq_len, self.num_tokens - 1 - starts))
        self.num_windows = int(self.spans[0].size)
        self.padding = 1.0 - float(self.spans[1].sum()) / (self.num_windows * seq_len)  # share of window tokens
        self._pad = self.vocab.id("<pad>")
        if self.drop_last and self.num_windows < self.world_size:
            raise ValueError(f"PackedDataset drop_last=True leaves no window to each of {self.world_size} ranks: "
                             f"{folder} holds {self.num_windows} window(s) of {seq_len} tokens; give a shorter "
                             "seq_len, or drop_last=False (the windows then wrap around)")
        self._shared_epoch = _shared_zero()  # set_epoch's epoch, where DataLoader workers read it too
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Reorder the windows (the same order for the same seed and epoch on every rank). The epoch is held in
        shared memory, so the workers of a ``DataLoader(..., persistent_workers=True)``, which keep their own
        copy of the dataset, read the new order too: call it before the epoch's ``for batch in loader``."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"PackedDataset.set_epoch takes a whole number >= 0 (the epoch), got {epoch!r}")
        self._shared_epoch.fill_(int(epoch))
        self._order(int(epoch))

    def _order(self, epoch: int) -> None:
        """This rank's windows in the order of ``epoch``."""
        self.epoch = epoch
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_windows)
        else:
            order = np.arange(self.num_windows)
        extra = self.num_windows % self.world_size  # the windows past the last whole round of the ranks
        if self.drop_last:
            order = order[: self.num_windows - extra]
        elif extra:  # wrapped around, as DistributedSampler pads: the same count on every rank
            order = np.concatenate([order, np.resize(order, self.world_size - extra)])
        self._mine = order[self.rank :: self.world_size]

    def _windows(self) -> np.ndarray:
        """This rank's windows in the order of the epoch :meth:`set_epoch` last set, in this process or another
        (this copy may be a DataLoader worker's)."""
        epoch = int(self._shared_epoch)
        if epoch != self.epoch:
            self._order(epoch)
        return self._mine

    def __len__(self) -> int:
        return int(self._windows().size)

    def __getitem__(self, idx: int | np.integer[Any] | torch.Tensor) -> dict[str, torch.Tensor]:
        if isinstance(idx, torch.Tensor) and idx.dim() == 0 and not idx.is_floating_point() and idx.dtype != torch.bool:
            idx = int(idx)  # a sampler over a tensor of indices (SubsetRandomSampler(torch.arange(n))) gives these
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
            raise TypeError(f"PackedDataset is indexed by an int (one window), not {type(idx).__name__}")
        mine = self._windows()
        if not -mine.size <= idx < mine.size:
            raise IndexError(f"index {idx} out of range for {mine.size} windows")
        return self.window(int(mine[idx]))

    def _slice(self, a: int, b: int) -> np.ndarray:
        """Global tokens ``[a, b)`` as int64, across shard edges."""
        first = int(np.searchsorted(self._starts, a, side="right")) - 1
        parts, pos = [], a
        for s in range(first, len(self.shards.tokens)):
            if pos >= b:
                break
            lo = pos - int(self._starts[s])
            hi = min(b, int(self._starts[s + 1])) - int(self._starts[s])
            if hi > lo:
                parts.append(np.asarray(self.shards.tokens[s][lo:hi], dtype=np.int64))
                pos += hi - lo
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def window(self, k: int) -> dict[str, torch.Tensor]:
        """Window ``k`` in file order (``__getitem__`` maps through the shuffled order)."""
        if not 0 <= k < self.num_windows:
            raise IndexError(f"window {k} out of range [0, {self.num_windows})")
        L, a, n_in = self.seq_len, int(self.spans[0][k]), int(self.spans[1][k])
        read = self._slice(max(a - 1, 0), a + n_in + 1)  # one read: the token before too
        previous = int(read[0]) if a > 0 else None
        toks = read[1:] if a > 0 else read  # inputs and the one target past them
        mod = self.vocab.stream_modality(toks, previous=previous)
        docn = np.searchsorted(self._doc_starts, a + np.arange(toks.size), side="right") - 1

        ids = np.full(L, self._pad, np.int64)
        targets = np.full(L, self._pad, np.int64)
        modality = np.full(L, Modality.SPECIAL, np.uint8)
        target_modality = np.full(L, Modality.SPECIAL, np.uint8)
        weight = np.zeros(L, np.float32)
        doc = np.full(L, -1, np.int64)
        ids[:n_in], modality[:n_in], doc[:n_in] = toks[:n_in], mod[:n_in], docn[:n_in] - docn[0]
        targets[:n_in], target_modality[:n_in] = toks[1:], mod[1:]
        weight[:n_in] = np.where(docn[1:] == docn[:-1], self._weights[mod[1:]], 0.0)
        item = {
            "ids": torch.from_numpy(ids),
            "targets": torch.from_numpy(targets),
            "modality": torch.from_numpy(modality),
            "target_modality": torch.from_numpy(target_modality),
            "loss_weight": torch.from_numpy(weight),
            "doc": torch.from_numpy(doc),
        }
        if self.positions_3d:
            item["pos"] = self.positions_thw(a, ids, doc)
        return item

    def positions_thw(self, a: int, ids: np.ndarray, doc: np.ndarray) -> torch.Tensor:
        """(time, row, column) positions ``[L, 3]`` of the window that starts at global token ``a``
        (its ``ids`` and ``doc``): each document piece by :func:`mmtok.stream.positions.positions_thw`,
        the first one read on from the opener of a grid still open at ``a``."""
        out = torch.zeros(ids.size, 3, dtype=torch.long)
        edges = (np.flatnonzero(doc[1:] != doc[:-1]) + 1).tolist()
        for lo, hi in zip([0, *edges], [*edges, ids.size], strict=True):
            lead = self._grid_lead(a) if lo == 0 and doc[0] >= 0 else np.zeros(0, np.int64)
            out[lo:hi] = positions_thw(self.vocab, np.concatenate([lead, ids[lo:hi]]))[lead.size :]
        return out

    def _grid_marks(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Shard ``s``'s grid openers and closers: their global positions (ascending) and which are openers;
        found once per shard by one read of the whole shard (about 50 ms for 16M ids) and kept."""
        if s not in self._marks:
            toks = np.asarray(self.shards.tokens[s])  # read once
            at = np.flatnonzero(np.isin(toks, self._grid_ids))
            self._marks[s] = (at + int(self._starts[s]), np.isin(toks[at], self._openers))
        return self._marks[s]

    def _grid_lead(self, a: int) -> np.ndarray:
        """The ids from the opener (``<boi>``/``<bov>``) of a grid that is still open at global token
        ``a``, within ``a``'s document, up to ``a``; empty when ``a`` is in no grid."""
        doc_start = int(self._doc_starts[np.searchsorted(self._doc_starts, a, side="right") - 1])
        s = int(np.searchsorted(self._starts, a - 1, side="right")) - 1  # the shard of token a - 1
        while a > doc_start and self._grid_ids.size and s >= 0:
            at, opens = self._grid_marks(s)
            i = int(np.searchsorted(at, a)) - 1  # the last grid mark before a
            if i >= 0 and at[i] >= doc_start:
                return self._slice(int(at[i]), a) if opens[i] else np.zeros(0, np.int64)
            if self._starts[s] <= doc_start:
                break
            s -= 1
        return np.zeros(0, np.int64)

    def __repr__(self) -> str:
        return (f"PackedDataset({self.shards.folder}, seq_len={self.seq_len}, packing={self.packing!r}, "
                f"windows={self.num_windows}, "
                f"tokens={self.num_tokens}, rank={self.rank}/{self.world_size})")

    def describe(self) -> dict[str, Any]:
        return {"tokens": self.num_tokens, "docs": self.shards.num_docs, "windows": self.num_windows,
                "packing": self.packing, "padding": self.padding}


def _shared_zero() -> torch.Tensor:
    """A 0-d int64 zero in shared memory (a plain one where the system shares none): a forked or spawned
    DataLoader worker's copy of it is the same memory."""
    t = torch.zeros((), dtype=torch.int64)
    try:
        return t.share_memory_()
    except RuntimeError:
        return t


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``(rank, world_size)``: both given, or neither (the process group's under torch.distributed, else ``(0, 1)``)."""
    if rank is None and world_size is None:
        dist = torch.distributed
        ddp = dist.is_available() and dist.is_initialized()
        return (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
    if rank is None or world_size is None:
        given, missing = ("rank", "world_size") if world_size is None else ("world_size", "rank")
        raise ValueError(f"PackedDataset {given}={rank if world_size is None else world_size} without {missing}=: "
                         "give both (rank=r, world_size=n: this process's slice of n), or neither (the "
                         "torch.distributed process group's, the whole order outside one)")
    for name, value in (("rank", rank), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"PackedDataset {name}={value!r} must be a whole number ({type(value).__name__} given)")
    if world_size < 1:
        raise ValueError(f"PackedDataset world_size={world_size} must be at least 1 (the number of processes)")
    if not 0 <= rank < world_size:
        raise ValueError(f"PackedDataset rank={rank} is not in [0, world_size={world_size}): ranks count from 0")
    return int(rank), int(world_size)
