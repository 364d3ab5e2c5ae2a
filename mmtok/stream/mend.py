"""How a repairing decode mends the rows of a damaged image or video (see :mod:`mmtok.stream.interleave`).

A row is read as an array of codes with :data:`HOLE` where a token stood that is no code of its segment (text,
another medium's code, a stray marker). The grid's width is what most of its rows agree on (:func:`grid_width`;
a video's frame height, what most of its frames agree on: :func:`most_common`); a row then keeps every code it
holds where it can (:func:`split_row`, :func:`mend_row`) and only the holes and missing places are filled
(:func:`fill`).

>>> mend_row(np.array([4, HOLE, 6]), 3, None)  # a text token in a code's place: filled, every code kept
(array([4, 4, 6]), None, True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["HOLE", "fill", "grid_width", "mend_row", "most_common", "split_row"]

HOLE = -1  # a place in a row where a token stood that is no code of the row's segment


def most_common(votes: np.ndarray, hint: int | None = None, *, whole: bool = False) -> int | None:
    """The value most ``votes`` give; a tie goes (with ``whole``, first to those that divide every vote, then)
    to ``hint`` when it is among the tied, else to the one voted first; None without votes.

    >>> most_common(np.array([15, 16, 16])), most_common(np.array([15, 16])), most_common(np.array([15, 16]), 16)
    (16, 15, 16)
    >>> most_common(np.array([6, 3])), most_common(np.array([6, 3]), whole=True)  # frames: 6 rows as two of 3
    (6, 3)
    """
    if not votes.size:
        return None
    if (votes == votes[0]).all():  # one value (most grids): no tie to settle
        return int(votes[0])
    values, first, counts = np.unique(votes, return_index=True, return_counts=True)
    tied = counts == counts.max()
    if whole and (tied & (votes[:, None] % values == 0).all(0)).any():
        tied &= (votes[:, None] % values == 0).all(0)
    if hint is not None and hint in values[tied]:
        return int(hint)
    return int(values[tied][np.argmin(first[tied])])


def grid_width(span: np.ndarray, codes: range, eol: int, eof: int | None = None,
               hint: int | None = None) -> tuple[int | None, bool]:
    """The width of the rows of an image's or a video's ids ``span`` (its opener and closer left out; ``eof``
    ends a video's frames) and whether its first row holding a code has it; None where no row holds a code.

    The width is the most common length of the well-formed rows (codes only, then ``<eol>``), or, when no row
    is, of every row holding a code, counting the other tokens in it; a tie goes to the tokenizer's ``hint``
    (the columns of its ``grid``) when it is among the tied, else to the first row. One vectorized pass.

    >>> c = range(300, 400)
    >>> grid_width(np.array([301, 65, 303, 1, 304, 305, 306, 1, 307, 308, 309, 1]), c, eol=1)  # row 0 damaged
    (3, False)
    """
    is_code = (span >= codes.start) & (span < codes.stop)
    bound = (span == eol) if eof is None else (span == eol) | (span == eof)
    row = np.cumsum(bound) - bound  # (L,) the row each token is in (a mark ends its row)
    n_rows = int(bound.sum()) + 1
    held = np.bincount(row[is_code], minlength=n_rows)  # (rows,) codes in each row
    slots = np.bincount(row[~bound], minlength=n_rows)  # (rows,) tokens in each row, marks left out
    has = held > 0
    ended = np.append(span[bound] == eol, False)  # (rows,) ended by <eol> (not by <eof> or the span's end)
    clean = has & (held == slots) & ended
    width = most_common(held[clean] if clean.any() else slots[has], hint)
    return width, bool(has.any()) and int(held[has][0]) == width


def split_row(row: np.ndarray, width: int) -> tuple[list[np.ndarray], list[int]] | None:
    """The rows of ``width`` that ``row`` holds when the ``<eol>`` between them were lost (``m·width`` codes) or
    each replaced by another token (``m·(width + 1) - 1`` places, a :data:`HOLE` at each row's end, a code in
    each row): the rows and the places in ``row`` of the holes that stood for ``<eol>``; None for any other row.

    >>> split_row(np.array([1, 2, HOLE, 3, 4]), 2)
    ([array([1, 2]), array([3, 4])], [2])
    >>> split_row(np.array([1, 2, 3, 4]), 2), split_row(np.array([1, HOLE, 3, 4]), 2)
    (([array([1, 2]), array([3, 4])], []), None)
    """
    size = row.size
    if width < 1 or size <= width:
        return None
    m = (size + 1) // (width + 1)
    if m >= 2 and (size + 1) % (width + 1) == 0:
        ends = np.arange(1, m) * (width + 1) - 1  # where each <eol> belongs
        keep = np.ones(size, bool)
        keep[ends] = False
        pieces = row[keep].reshape(m, width)
        if (row[ends] == HOLE).all() and (pieces != HOLE).any(1).all():
            return list(pieces), ends.tolist()
    if size % width == 0 and not (row == HOLE).any():
        return list(row.reshape(size // width, width)), []
    return None


def fill(row: np.ndarray, above: np.ndarray | None) -> np.ndarray:
    """``row`` with each :data:`HOLE` filled: the code at its place in ``above`` (the row above it, or the same
    row of the frame before), or without one the nearest code before it in ``row`` (after it, at the row's
    start). ``row`` holds at least one code.

    >>> fill(np.array([HOLE, 5, HOLE]), None).tolist(), fill(np.array([HOLE, 5, HOLE]), np.array([7, 8, 9])).tolist()
    ([5, 5, 5], [7, 5, 9])
    """
    hole = row == HOLE
    if not hole.any():
        return row
    if above is not None:
        return np.where(hole, above, row)
    at = np.maximum.accumulate(np.where(hole, -1, np.arange(row.size)))  # (w,) the code before each place
    return row[np.where(at < 0, int(np.argmax(~hole)), at)]


def mend_row(row: np.ndarray, width: int, above: np.ndarray | None) -> tuple[np.ndarray, str | None, bool]:
    """``row`` (codes, :data:`HOLE` where another token stood; at least one code) as ``width`` codes: the row,
    what was done to its length (None, ``"padded it to w"``, ``"truncated it to w"``), and whether its holes were
    filled where they stand (True) or dropped.

    A row of at most ``width`` places had its codes replaced: the holes are filled in place (:func:`fill`) and a
    short row padded at its end the same way. In a longer row the other tokens came on top of the codes: they
    are dropped, and the codes truncated or padded to ``width``.

    >>> mend_row(np.array([1, 2, HOLE, 3]), 3, None), mend_row(np.array([1, HOLE]), 3, np.array([7, 8, 9]))
    ((array([1, 2, 3]), None, False), (array([1, 8, 9]), 'padded it to 3', True))
    """
    if row.size <= width:
        full = np.concatenate([row, np.full(width - row.size, HOLE)])
        return fill(full, above), (f"padded it to {width}" if row.size < width else None), True
    codes = row[row != HOLE]
    if codes.size >= width:
        return codes[:width], (f"truncated it to {width}" if codes.size > width else None), False
    return fill(np.concatenate([codes, np.full(width - codes.size, HOLE)]), above), f"padded it to {width}", False
