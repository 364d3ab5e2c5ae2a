"""3-D positions of a stream, rebuilt from its ids alone (shards store only ids).

Text and markers advance (time, row, column) together; the code at (r, c) of an
image that starts at position s sits at (s, s + r, s + c) and the ``<eol>`` ending
row r at (s, s + r, s + w); in a video, frame f's code at (r, c) sits at
(s + f, s + r, s + c) and its ``<eof>`` at (s + f, s + h, s + w) (the layout of
:mod:`mmtok.stream.interleave`, whose :meth:`~mmtok.stream.interleave.Interleaver.encode`
gives its streams these positions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmtok.stream.vocab import Vocabulary

__all__ = ["GRID_MARKS", "positions_thw"]

GRID_MARKS = (("image", "<boi>", "<eoi>"), ("video", "<bov>", "<eov>"))  # (modality, opener, closer) of each grid


def positions_thw(vocab: Vocabulary, ids: Any) -> torch.Tensor:
    """The (time, row, column) positions ``[L, 3]`` of a stream's ids, rebuilt from the ids alone.

    The positions :meth:`Interleaver.encode` gives a stream (see the module docstring),
    for a well-formed stream that starts at a document start; shards store only ids,
    so training rebuilds 3-D positions with this too. One vectorized pass per grid.

    >>> v = Vocabulary(256, ranges={"image": 4})
    >>> i, i0 = v.id, v.range("image").start
    >>> positions_thw(v, [65, i("<boi>"), i0, i0, i("<eol>"), i("<eoi>"), 66])[:, 2].tolist()
    [0, 1, 2, 3, 4, 5, 6]
    """
    a = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids, dtype=np.int64).reshape(-1)
    n = a.size
    step = np.ones(n, np.int64)  # how far each token moves the running position
    eol = vocab.id("<eol>")
    grids: list[tuple[int, int, int, int]] = []  # (first, stop, row width incl. <eol>, frame length or 0)
    for modality, opener, closer in GRID_MARKS:
        if not vocab.has(modality):
            continue
        opens, closes = np.flatnonzero(a == vocab.id(opener)), np.flatnonzero(a == vocab.id(closer))
        for o in opens.tolist():
            k = int(np.searchsorted(closes, o))
            first, stop = o + 1, (int(closes[k]) if k < closes.size else n)
            if stop <= first:
                continue
            body = a[first:stop]
            eols = np.flatnonzero(body == eol)
            w1 = int(eols[0]) + 1 if eols.size else stop - first  # codes per row + its <eol>
            if modality == "image":
                frame, advance = 0, max(int(eols.size), w1)
            else:
                eofs = np.flatnonzero(body == vocab.id("<eof>"))
                frame = int(eofs[0]) + 1 if eofs.size else stop - first  # tokens per frame
                advance = max(int(eofs.size), (frame - 1) // w1 + 1, w1)
            step[first:stop] = 0
            step[stop - 1] = advance
            grids.append((first, stop, w1, frame))
    flat = np.cumsum(step) - step  # exclusive: each token's position along the stream
    out = np.repeat(flat[:, None], 3, axis=1)
    for first, stop, w1, frame in grids:
        k = np.arange(stop - first)
        if frame:  # video: frame f, then row and column inside it; <eof> sits at (h, w)
            f, rem = k // frame, k % frame
            # only a real <eof> goes to column w: a grid cut inside its first frame ends on a code or an <eol>
            r, c = rem // w1, np.where(a[first:stop] == vocab.id("<eof>"), w1 - 1, rem % w1)
        else:
            f, r, c = np.zeros_like(k), k // w1, k % w1
        out[first:stop] = flat[first] + np.stack([f, r, c], axis=1)
    return torch.from_numpy(out)
