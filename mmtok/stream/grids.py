"""An image's or a video's grid of codes read from a stream: one vectorized pass over a well-formed one, row by
row for any other, which a repairing pass mends (:mod:`mmtok.stream.mend`).

Each function reads through the parser ``ps`` of :mod:`mmtok.stream.parse`: its ids and lookups, and the problems
it raises (strict) or lists as repairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mmtok.stream.mend import HOLE, grid_width, mend_row, most_common, split_row
from mmtok.stream.vocab import Vocabulary

__all__ = ["Extent", "Reader", "extent", "frames_of", "read_grid", "read_rows"]


class Reader(Protocol):
    """What a grid is read through: the state of a :class:`~mmtok.stream.parse.Parser` pass."""

    il: Any  # the Layout: special ids, vocabulary, tokenizers (:class:`~mmtok.stream.parse.Layout`)
    v: Vocabulary
    ids: np.ndarray  # [n] the stream's ids
    n: int
    partial: bool  # the stream may be cut anywhere
    repairs: list[Any]  # the repairs listed so far
    stops: dict[str, np.ndarray]  # lookups filled by extent()
    content: dict[str, np.ndarray]
    text_at: np.ndarray | None

    def run_end(self, i: int, modality: str) -> int: ...
    def grid_end(self, i: int, modality: str) -> int: ...
    def is_opener(self, tok: int) -> bool: ...
    def problem(self, i: int, expected: str, action: str) -> None: ...
    def mend(self, k: int, action: str) -> None: ...


@dataclass(frozen=True)
class Extent:
    """How far the segment opened at an index reaches, and the shape its rows and frames agree on
    (:func:`extent`)."""

    end: int  # index of its closer, or of the token that ends it without one (the stream's length at its end)
    last: int  # index of its last code (or grid mark); the opener's when it holds none
    text: int  # index of the text that ends it where its closer is missing (no code of it follows); -1 if none
    width: int | None = None  # its rows' width (an image or a video; None: no row holds a code)
    width_like: str = "like the first row"  # where that width comes from, for a message
    hint: tuple[int, int] | None = None  # the tokenizer's grid (rows, columns), which settles a tie


def _blocks(a: np.ndarray, mark: int) -> np.ndarray | None:
    """``a`` (``[t, m]``) reshaped to ``[t, m // p, p]`` when each of its rows is blocks of ``p`` ids, each block
    ending with ``mark`` and ``mark`` nowhere else, ``p`` set by the first ``mark`` of row 0 (at least 2: a block
    holds something before its mark); None otherwise.

    >>> _blocks(np.array([[1, 2, 9, 3, 4, 9]]), 9).tolist()
    [[[1, 2, 9], [3, 4, 9]]]
    >>> _blocks(np.array([[1, 2, 9, 3, 9, 4]]), 9) is None
    True
    """
    first = np.flatnonzero(a[0] == mark)
    if first.size == 0 or first[0] < 1 or a.shape[1] % (int(first[0]) + 1):
        return None
    g = a.reshape(a.shape[0], -1, int(first[0]) + 1)
    if not (g[..., -1] == mark).all() or int(np.count_nonzero(a == mark)) != g.shape[0] * g.shape[1]:
        return None
    return g


def read_grid(ps: Reader, b: int, modality: str) -> tuple[np.ndarray, int] | None:
    """The codes of the image (``[h, w]``) or video (``[t, h, w]``) opened at ``b`` and the index after its
    closer, read in one vectorized pass; None unless the segment is well formed (every row the same width
    and ended by ``<eol>``, every frame the same height and ended by ``<eof>``, then the closer, nothing
    else between), so that :func:`read_rows` parses, reports and repairs anything irregular.
    """
    video = modality == "video"
    k = ps.grid_end(b + 1, modality)
    if k >= ps.n or ps.ids[k] != (ps.il.EOV if video else ps.il.EOI):
        return None
    span = ps.ids[b + 1 : k][None]  # [1, L]
    if video:
        frames = _blocks(span, ps.il.EOF)  # [1, t, h * (w + 1) + 1]
        if frames is None:
            return None
        span = frames[0, :, :-1]  # [t, h * (w + 1)]
    g = _blocks(span, ps.il.EOL)  # [t, h, w + 1]
    if g is None:
        return None
    codes = np.ascontiguousarray(g[..., :-1] - ps.v.range(modality).start)
    return (codes if video else codes[0]), k + 1


def extent(ps: Reader, b: int, modality: str) -> Extent:
    """How far the segment opened at ``b`` reaches and, for an image or a video, the width its rows agree on
    (:func:`~mmtok.stream.mend.grid_width`, the tokenizer's ``grid`` settling a tie).

    It ends at its closer, at the next token that opens a segment or ends the document (or ``<eov>`` for an
    image), or, where its closer is missing, at the first text id after its last code or grid mark: text
    that no code of it follows is the document's text again."""
    il, ids = ps.il, ps.ids
    closer = {"image": il.EOI, "audio": il.EOA, "video": il.EOV}[modality]
    if modality not in ps.stops:
        r = ps.v.range(modality)
        content = (ids >= r.start) & (ids < r.stop)
        if modality != "audio":
            content |= ids == il.EOL
        if modality == "video":
            content |= ids == il.EOF
        ends = [closer, il.BOI, il.BOA, il.BOV, il.EOS, il.BOS, *([il.EOV] if modality == "image" else [])]
        ps.stops[modality], ps.content[modality] = np.flatnonzero(np.isin(ids, ends)), np.flatnonzero(content)
    stops, content = ps.stops[modality], ps.content[modality]
    k = int(np.searchsorted(stops, b, side="right"))
    end = int(stops[k]) if k < stops.size else ps.n
    k = int(np.searchsorted(content, end)) - 1
    last = int(content[k]) if k >= 0 and content[k] > b else b
    text = -1
    if end >= ps.n or ids[end] != closer:
        if ps.text_at is None:
            t = ps.v.range("text")
            ps.text_at = np.flatnonzero((ids >= t.start) & (ids < t.stop))
        k = int(np.searchsorted(ps.text_at, last, side="right"))
        text = int(ps.text_at[k]) if k < ps.text_at.size and ps.text_at[k] < end else -1
    if modality == "audio":
        return Extent(end, last, text)
    grid = getattr(getattr(il, modality, None), "grid", None)
    try:
        hint: tuple[int, int] | None = (int(grid[0]), int(grid[1]))  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        hint = None
    width, first = grid_width(ids[b + 1 : text if text >= 0 else end], ps.v.range(modality), il.EOL,
                              il.EOF if modality == "video" else None, hint[1] if hint else None)
    return Extent(end, last, text, width, "like the first row" if first else "like most rows", hint)


def read_rows(ps: Reader, i: int, modality: str, close: int, ext: Extent,
              before: Sequence[np.ndarray] | None = None) -> tuple[list[np.ndarray], int, bool, int]:
    """Rows of ``modality`` codes from ``i`` up to the ``close`` token (``<eoi>`` or ``<eof>``), each of
    ``ext.width`` codes (:func:`~mmtok.stream.mend.mend_row`; ``before``: the rows of the video's previous
    frame, whose codes fill this frame's holes).

    Returns (rows, next index, whether ``close`` was found, codes left out of a row that a partial stream's
    end cut). Stops without consuming at a token that opens or ends a segment, or at text that ends it.
    """
    il, start, close_name = ps.il, ps.v.range(modality).start, ps.v.token(close)
    a = "an" if modality[0] in "aeiou" else "a"
    expected = f"{a} {modality} code, <eol> or {close_name}"
    rows: list[np.ndarray] = []
    cur: list[np.ndarray] = []  # the codes of the row being read
    holes: list[tuple[int, int]] = []  # (place in that row, its repair) of each other token in it
    placed = 0  # places in that row so far

    def end_row(at: int) -> None:
        nonlocal cur, holes, placed
        _end_row(ps, rows, np.concatenate(cur) if cur else np.zeros(0, np.int64), holes, at, modality, ext, before)
        cur, holes, placed = [], [], 0

    while True:
        j = ps.run_end(i, modality)
        if j > i:
            cur.append(ps.ids[i:j] - start)
            placed += j - i
        if j >= ps.n:
            if ps.partial:  # the slice ends here: whole rows only
                return rows, j, False, sum(c.size for c in cur)
            ps.problem(j, f"<eol> or {close_name}", f"closed the {modality}")
            if cur:
                end_row(j)
            return rows, j, False, 0
        tok = int(ps.ids[j])
        if tok == il.EOL:
            end_row(j)
            i = j + 1
        elif tok == close:
            if cur:
                ps.problem(j, f"<eol> before {close_name}", "ended the row")
                end_row(j)
            return rows, j + 1, True, 0
        elif ps.is_opener(tok) or tok == il.EOV or j == ext.text:
            if tok != il.EOV or modality != "video":
                ps.problem(j, expected, f"closed the {modality}")
            if cur:
                end_row(j)
            return rows, j, False, 0
        else:
            ps.problem(j, expected, "dropped it")  # or filled in: end_row says
            holes.append((placed, len(ps.repairs) - 1))
            placed += 1
            i = j + 1


def _end_row(ps: Reader, rows: list[np.ndarray], codes: np.ndarray, held: list[tuple[int, int]], at: int,
             modality: str, ext: Extent, before: Sequence[np.ndarray] | None) -> None:
    """Add the row that ends at ``at`` to ``rows``: its ``codes``, the other tokens ``held`` in it (their place
    in the row and their repair), as rows of ``ext.width`` codes (:mod:`~mmtok.stream.mend`), saying what was
    done."""
    if codes.size == 0:
        ps.problem(at, f"{'an' if modality[0] in 'aeiou' else 'a'} {modality} code", "dropped the empty row")
        return
    width = ext.width if ext.width is not None else codes.size
    if not held and codes.size == width:  # a whole row, as most rows of a damaged grid are: nothing to mend
        rows.append(codes.astype(np.int64, copy=False))
        return
    row = np.full(codes.size + len(held), HOLE, np.int64)
    is_code = np.ones(row.size, bool)
    is_code[[p for p, _ in held]] = False
    row[is_code] = codes
    pieces, eols = split_row(row, width) or ([row], [])
    if len(pieces) > 1 and not eols:
        ps.problem(at, f"row {len(rows)} to have {width} codes {ext.width_like}, not {codes.size}",
                   f"split it into {len(pieces)} rows")
    rest = iter([k for p, k in held if p not in eols])
    for p, k in held:
        if p in eols:
            ps.mend(k, "ended the row there")
    for piece in pieces:
        r = len(rows)
        above = before[r] if before is not None and r < len(before) else rows[-1] if rows else None
        fixed, action, filled = mend_row(piece, width, above)
        if action:
            ps.problem(at, f"row {r} to have {width} codes {ext.width_like}, not "
                       f"{int(np.count_nonzero(piece != HOLE))}", action)
        for p in np.flatnonzero(piece == HOLE).tolist():
            k = next(rest)
            if filled:
                ps.mend(k, f"replaced it with {modality} code {int(fixed[p])}")
        rows.append(fixed)


def frames_of(ps: Reader, read: list[tuple[int, list[np.ndarray], bool]], ext: Extent) -> list[np.ndarray]:
    """The frames ``[h, w]`` of a video from what was ``read`` of each (the index that opened it, its rows, whether
    ``<eof>`` closed it), all as high as most of them (closed by ``<eof>``) are; a tie goes to a height that
    divides all theirs, then to the tokenizer's grid, then to frame 0. A frame as high as several is as many
    frames (their ``<eof>`` lost), a higher one truncated, a lower one padded with the rows of the frame before
    (its own last row for the first frame)."""
    heights = np.array([len(rows) for _, rows, _ in read])
    closed = np.array([c for *_, c in read])
    votes = heights[closed] if closed.any() else heights
    h = most_common(votes, ext.hint[0] if ext.hint else None, whole=True) or 1
    like = "like frame 0" if heights[0] == h else "like most frames"
    frames: list[np.ndarray] = []
    for at, rows, _ in read:
        if len(rows) == h:
            frames.append(np.stack(rows))
            continue
        m = len(rows) // h
        said = f"frame {len(frames)} to have {h} rows {like}, not {len(rows)}"
        if m >= 2 and len(rows) == m * h:
            ps.problem(at, said, f"split it into {m} frames")
            frames += [np.stack(rows[f * h : (f + 1) * h]) for f in range(m)]
            continue
        ps.problem(at, said, f"{'truncated' if len(rows) > h else 'padded'} it to {h} rows")
        pad = list(frames[-1][len(rows) :]) if frames else [rows[-1]] * (h - len(rows))
        frames.append(np.stack((rows + pad)[:h]))
    return frames
