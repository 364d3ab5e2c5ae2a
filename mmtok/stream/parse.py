"""Ids -> segments: the strict or repairing pass behind :meth:`Interleaver.decode`.

:class:`Repair` records one change a repairing pass made; :class:`Decoded` is the
list of segments it returns, with the repairs beside them. The layout the pass
reads is described in :mod:`mmtok.stream.interleave`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from mmtok.core.codes import integer_codes
from mmtok.core.errors import DocumentError, StreamError
from mmtok.core.protocol import takes_keyword
from mmtok.stream.grids import Extent, extent, frames_of, read_grid, read_rows
from mmtok.stream.vocab import Vocabulary

__all__ = ["Decoded", "Layout", "Repair", "codes_tensor", "integer_ids"]


class Layout(Protocol):
    """What a pass reads a stream with: the vocabulary, the text tokenizer, the special ids and whether a
    document opens with ``<bos>`` and closes with ``<eos>``.

    :class:`~mmtok.stream.interleave.Interleaver` is one; the parser needs nothing else of it but, where it has
    them, its ``image`` and ``video`` tokenizers' ``grid`` (which settles how wide a damaged grid's rows are).
    """

    vocab: Vocabulary
    text: Any  # decode(ids, errors=...) -> str
    bos: bool  # a document starts with <bos>
    eos: bool  # a document ends with <eos>
    BOS: int
    EOS: int
    BOI: int
    EOI: int
    EOL: int
    BOA: int
    EOA: int
    BOV: int
    EOV: int
    EOF: int


@dataclass(frozen=True)
class Repair:
    """One change ``decode(..., repair=True)`` made to a stream, or what ``decode(..., partial=True)`` left out
    where the stream was cut."""

    position: int  # index in the stream that was given
    problem: str  # what was wrong
    action: str  # what was done about it

    def __str__(self) -> str:
        return f"position {self.position}: {self.problem}; {self.action}"


class Decoded(list[dict[str, Any]]):
    """The segments of a decoded stream (a plain list), plus ``repairs`` made on the way."""

    repairs: list[Repair]

    def __init__(self, segments: Sequence[dict[str, Any]] = (), repairs: Sequence[Repair] = ()) -> None:
        super().__init__(segments)
        self.repairs = list(repairs)


def integer_ids(x: Any, *, what: str) -> np.ndarray:
    """``x`` (a tensor, array or nested list) as int64, refusing floats and booleans instead of truncating them."""
    if isinstance(x, tuple) and len(x) == 2 and all(isinstance(t, torch.Tensor) for t in x):
        raise StreamError(f"{what} got a (codes, lengths) pair, what encode gives for a list of clips: "
                          "give one clip's codes, codes[i, :lengths[i]]")
    return integer_codes(x, what=what, error=StreamError).cpu().numpy()


def codes_tensor(x: Any, *, dims: int, what: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(integer_ids(x, what=what)))
    if t.dim() != dims:
        raise DocumentError(f"{what} must have {dims} dimension(s), got shape {tuple(t.shape)}")
    return t


def _torn_utf8(data: bytes, *, head: bool, tail: bool) -> bool:
    """Whether ``data`` is valid UTF-8 but for a character cut at its start (``head``: up to 3 continuation
    bytes first) or at its end (``tail``: the first bytes of a character last).

    >>> cut = "é!é".encode()[1:-1]  # the second byte of é, "!", the first byte of é
    >>> _torn_utf8(cut, head=True, tail=True), _torn_utf8(cut, head=False, tail=True)
    (True, False)
    >>> _torn_utf8(b"a\\xffb", head=True, tail=True)
    False
    """
    a = 0
    while head and a < min(3, len(data)) and 0x80 <= data[a] < 0xC0:
        a += 1
    b = len(data)
    for k in range(1, min(3, b - a) + 1) if tail else ():  # a lead byte k bytes from the end
        c = data[b - k]
        if c < 0x80 or c >= 0xC0:
            if c >= 0xC0 and k < (2 if c < 0xE0 else 3 if c < 0xF0 else 4):
                b -= k
            break
    try:
        data[a:b].decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return False
    return True


class Parser:
    """The state of one de-interleaving pass (strict or repairing).

    ``partial``: the stream may be a slice of a shard's ids (a training window, a sample cut short by its
    token budget): it may start or end anywhere, hold the end of one document and the start of the next
    and end in ``<pad>``; what the cuts leave unreadable is noted in the repairs (see
    :meth:`~mmtok.stream.interleave.Interleaver.decode`). An empty stream is an empty document in every mode.
    """

    def __init__(self, il: Layout, ids: np.ndarray, orig: np.ndarray, repair: bool, repairs: list[Repair], *,
                 partial: bool = False):
        self.il, self.v, self.ids, self.orig, self.repair, self.repairs = il, il.vocab, ids, orig, repair, repairs
        self.partial = partial
        if partial and len(ids):  # a window's padding: no document's token
            pads = np.flatnonzero(ids != self.v.id("<pad>"))
            self.ids = ids = ids[: int(pads[-1]) + 1 if pads.size else 0]
        self.n = len(ids)
        self.cut = False  # whether a problem was found at the end of the stream
        self._ids: list[np.ndarray] = []  # text ids not yet decoded: one run, whatever was dropped inside it
        self._ids_at = 0  # index of the first of them
        self._ids_end = 0  # index after the last of them
        self._texts: list[str] = []  # the text since the last segment, joined once
        openers = ((il.BOI, "image", self.image), (il.BOA, "audio", self.audio), (il.BOV, "video", self.video))
        self.openers = {tok: parse for tok, name, parse in openers if self.v.has(name)}
        self._outside: dict[str, np.ndarray] = {}
        self._grid_outside: dict[str, np.ndarray] = {}
        self.stops: dict[str, np.ndarray] = {}  # modality -> indices of the tokens that end its segment
        self.content: dict[str, np.ndarray] = {}  # modality -> indices of its codes (and grid marks)
        self.text_at: np.ndarray | None = None  # indices of text ids

    def position(self, i: int) -> int:
        """The position in the stream that was given of index ``i`` (one past the last for the end)."""
        return int(self.orig[i]) if i < self.n else (int(self.orig[-1]) + 1 if self.n else 0)

    def problem(self, i: int, expected: str, action: str) -> None:
        pos = self.position(i)
        got = self.v.token(int(self.ids[i])) if i < self.n else "the end of the stream"
        self.cut |= i >= self.n
        if not self.repair:
            raise StreamError(f"position {pos}: expected {expected}, got {got}", position=pos, expected=expected)
        self.repairs.append(Repair(pos, f"expected {expected}, got {got}", action))

    def note(self, i: int, problem: str, action: str) -> None:
        """Record what a partial pass left out where the stream was cut (no error: a slice is cut somewhere)."""
        self.repairs.append(Repair(self.position(i), problem, action))

    def lead(self) -> int:
        """(partial) The index after the tail of a segment whose opener the slice cut off (codes of one medium
        and its marks, then its closer), noted; 0 when the stream starts with no such tail."""
        il, ids, end, name = self.il, self.ids, 0, ""
        tails = {"image": ((il.EOL,), il.EOI, il.BOI), "audio": ((), il.EOA, il.BOA),
                 "video": ((il.EOL, il.EOF), il.EOV, il.BOV)}  # medium -> its marks, closer, opener
        for modality, (marks, closer, _) in tails.items():
            if self.v.has(modality):
                r = self.v.range(modality)
                out = np.flatnonzero(((ids < r.start) | (ids >= r.stop)) & ~np.isin(ids, marks))
                k = int(out[0]) if out.size else self.n
                k += k < self.n and ids[k] == closer
                end, name = (k, modality) if k > end else (end, name)
        if end:
            a = "an" if name[0] in "aeiou" else "a"
            self.note(0, f"the stream starts inside {a} {name} (its {self.v.token(tails[name][2])} is cut off)",
                      f"skipped its {end} token(s)")
        return end

    def cut_short(self, b: int, modality: str, unit: str, kept: int, dropped: int) -> None:
        """(partial) Note that the stream ends inside ``unit`` (row or frame) number ``kept`` of the ``modality``
        opened at ``b``: the whole ones before it are kept, the ``dropped`` code(s) after them left out (the
        segment too when none is whole)."""
        if kept and not dropped:
            return
        where = f"{unit} {kept} of the {modality} opened at position {self.position(b)}"
        self.note(self.n, f"the stream ends inside {where}", f"kept its {kept} whole {unit}(s), dropped the "
                  f"{dropped} code(s) after them" if kept else f"dropped the {modality}")

    def run_end(self, i: int, modality: str) -> int:
        """First index >= i whose id is not in ``modality``'s range."""
        if modality not in self._outside:
            r = self.v.range(modality)
            self._outside[modality] = np.flatnonzero((self.ids < r.start) | (self.ids >= r.stop))
        out = self._outside[modality]
        k = int(np.searchsorted(out, i))
        return int(out[k]) if k < out.size else self.n

    def grid_end(self, i: int, modality: str) -> int:
        """First index >= i whose id is neither a ``modality`` code nor a grid mark (``<eol>``; ``<eof>`` too for
        video)."""
        if modality not in self._grid_outside:
            r, ids = self.v.range(modality), self.ids
            inside = ((ids >= r.start) & (ids < r.stop)) | (ids == self.il.EOL)
            if modality == "video":
                inside |= ids == self.il.EOF
            self._grid_outside[modality] = np.flatnonzero(~inside)
        out = self._grid_outside[modality]
        k = int(np.searchsorted(out, i))
        return int(out[k]) if k < out.size else self.n

    def is_opener(self, tok: int) -> bool:
        return tok in (self.il.BOI, self.il.BOA, self.il.BOV, self.il.EOS, self.il.BOS)

    def grid(self, b: int, modality: str) -> tuple[np.ndarray, int] | None:
        """The well-formed grid opened at ``b`` and the index after it, else None
        (:func:`~mmtok.stream.grids.read_grid`)."""
        return read_grid(self, b, modality)

    def rows(self, i: int, modality: str, close: int, ext: Extent,
             before: Sequence[np.ndarray] | None = None) -> tuple[list[np.ndarray], int, bool, int]:
        """The rows of a grid read one by one from ``i`` (:func:`~mmtok.stream.grids.read_rows`)."""
        return read_rows(self, i, modality, close, ext, before)

    def mend(self, k: int, action: str) -> None:
        """Say ``action`` for the repair ``k`` (a token in a row, first noted as dropped)."""
        self.repairs[k] = dataclasses.replace(self.repairs[k], action=action)

    def image(self, b: int) -> tuple[dict[str, Any] | None, int]:
        """Parse the image opened at ``b``; returns (segment or None, next index)."""
        fast = self.grid(b, "image")
        if fast is not None:
            return {"image_codes": torch.from_numpy(fast[0])}, fast[1]
        rows, i, closed, torn = self.rows(b + 1, "image", self.il.EOI, extent(self, b, "image"))
        if self.partial and not closed and i >= self.n:  # the slice ends inside the image: whole rows only
            self.cut_short(b, "image", "row", len(rows), torn)
        elif not rows:
            self.problem(b, "an image with at least one row", "dropped the empty image")
        return ({"image_codes": torch.from_numpy(np.stack(rows))} if rows else None), i

    def video(self, b: int) -> tuple[dict[str, Any] | None, int]:
        """Parse the video opened at ``b``: frames of rows, each frame closed by ``<eof>``."""
        fast = self.grid(b, "video")
        if fast is not None:
            return {"video_codes": torch.from_numpy(fast[0])}, fast[1]
        il, ext = self.il, extent(self, b, "video")
        read: list[tuple[int, list[np.ndarray], bool]] = []  # each frame's opening index, rows, <eof> or not
        i = b + 1
        while True:
            if i < self.n and self.ids[i] == il.EOV:
                i += 1
                break
            at = i
            rows, i, closed, torn = self.rows(i, "video", il.EOF, ext, read[-1][1] if read else None)
            if self.partial and not closed and i >= self.n:  # the slice ends here: whole frames only
                self.cut_short(b, "video", "frame", len(read), sum(r.size for r in rows) + torn)
                if not read:
                    return None, i
                break
            if closed and not rows:
                self.problem(i - 1, "a video code or <eol>", "dropped the empty frame")
            if rows:
                read.append((at, rows, closed))
            if not closed:
                if i < self.n and self.ids[i] == il.EOV:
                    if rows:
                        self.problem(i, "<eof> before <eov>", "ended the frame")
                    i += 1
                break
        if not read:
            self.problem(b, "a video with at least one frame", "dropped the empty video")
            return None, i
        return {"video_codes": torch.from_numpy(np.stack(frames_of(self, read, ext)))}, i

    def audio(self, b: int) -> tuple[dict[str, Any] | None, int]:
        """Parse the audio opened at ``b``. Other tokens among its codes stand in a code's place, so the codes
        after them keep their time: each takes the code before it (the first code, before that), up to its
        ``<eoa>``; those after its last code are dropped where its ``<eoa>`` is missing."""
        il, start = self.il, self.v.range("audio").start
        ext: Extent | None = None  # how far it reaches: looked up at its first token that is no code nor <eoa>
        parts: list[np.ndarray] = []
        i = b + 1
        while True:
            j = self.run_end(i, "audio")
            if j > i:
                parts.append(self.ids[i:j] - start)
            if j >= self.n:
                if not self.partial:
                    self.problem(j, "an audio code or <eoa>", "closed the audio")
                elif not parts:
                    self.note(j, f"the stream ends right after the <boa> at position {self.position(b)}",
                              "dropped the audio")
                    return None, j
                i = j
                break
            tok = int(self.ids[j])
            if tok == il.EOA:
                i = j + 1
                break
            if ext is None:
                ext = extent(self, b, "audio")
            if self.is_opener(tok) or j == ext.text:
                self.problem(j, "an audio code or <eoa>", "closed the audio")
                i = j
                break
            closed = ext.end < self.n and self.ids[ext.end] == il.EOA
            if j < ext.last or (parts and closed):  # among its codes
                codes = self.content["audio"]
                k = int(codes[np.searchsorted(codes, j)]) if j < ext.last else ext.end  # the next code, or <eoa>
                code = int(parts[-1][-1]) if parts else int(self.ids[k]) - start
                for p in range(j, k):
                    self.problem(p, "an audio code or <eoa>", f"replaced it with audio code {code}")
                parts.append(np.full(k - j, code, np.int64))
                i = k
                continue
            self.problem(j, "an audio code or <eoa>", "dropped it")
            i = j + 1
        if not parts:
            self.problem(b, "audio with at least one code", "dropped the empty audio")
            return None, i
        return {"audio_codes": torch.from_numpy(np.concatenate(parts))}, i

    def text(self, a: int, b: int) -> None:
        """Hold the text ids ``[a, b)``: text around a dropped token joins up before it is decoded."""
        if not self._ids:
            self._ids_at = a
        self._ids.append(self.ids[a:b])
        self._ids_end = b

    def decode_text(self) -> None:
        """Decode the text ids held (once, all together) and hold the text."""
        if not self._ids:
            return
        ids = self._ids[0] if len(self._ids) == 1 else np.concatenate(self._ids)
        self._ids = []
        try:
            s = self.il.text.decode(ids, errors="strict")
        except TypeError as e:  # its signature is read only then: a decode per text segment stays cheap
            if takes_keyword(self.il.text.decode, "errors"):
                raise
            raise TypeError(f"the text tokenizer {type(self.il.text).__name__}'s decode takes no errors= keyword: give "
                            "it decode(ids, errors='strict') that raises UnicodeDecodeError on ids that are no UTF-8, "
                            "and errors='replace' that puts U+FFFD there (as mmtok's text tokenizers do)") from e
        except UnicodeDecodeError as e:
            head, tail = self.partial and self._ids_at == 0, self.partial and self._ids_end == self.n
            if (head or tail) and isinstance(e.object, bytes) and _torn_utf8(e.object, head=head, tail=tail):
                self.note(self._ids_at, "text that the stream's cut splits inside a UTF-8 character",
                          "decoded it with U+FFFD")
            else:
                self.problem(self._ids_at, "text ids that form valid UTF-8", "decoded them with U+FFFD")
            s = self.il.text.decode(ids, errors="replace")
        self._texts.append(s)

    def end_text(self, segments: list[dict[str, Any]]) -> None:
        """The text held since the last segment as one text segment (none when it is empty)."""
        self.decode_text()
        s = "".join(self._texts)
        self._texts = []
        if s:
            segments.append({"text": s})

    def stray(self, i: int) -> None:
        """Drop the token at ``i``, which neither is text nor opens or ends a segment (a ``<bos>`` or ``<eos>``
        the interleaver does not write is one)."""
        il, markers = self.il, (("<boi>", "image"), ("<boa>", "audio"), ("<bov>", "video"))
        opts = ["text", *(["<eos>"] if il.eos else []), *(m for m, t in markers if self.v.has(t))]
        expected = ", ".join(opts[:-1]) + " or " + opts[-1] if len(opts) > 1 else opts[0]
        tok = int(self.ids[i])
        for flag, mark, written in (("bos", il.BOS, il.bos), ("eos", il.EOS, il.eos)):
            if tok == mark and not written:
                expected += f" (Interleaver({flag}=False) writes no <{flag}>)"
        self.problem(i, expected, "dropped it")

    def next_document(self, i: int) -> int:
        """(partial) The index after the ``<bos>`` at ``i`` that starts the document after an ``<eos>`` (when
        the interleaver writes one)."""
        if not self.il.bos or i >= self.n:
            return i
        if self.ids[i] == self.il.BOS:
            return i + 1
        self.problem(i, "<bos> after <eos>", "read on without it")
        return i

    def document(self) -> list[dict[str, Any]]:
        il, segments = self.il, []
        if not self.n:
            return segments
        i = 1 if il.bos and self.ids[0] == il.BOS else 0
        if il.bos and i == 0 and not self.partial:
            self.problem(0, "<bos>", "read on without it")
        if self.partial and i == 0:
            i = self.lead()
        ended = False
        text_start = i
        while i < self.n:
            j = self.run_end(i, "text")
            if j > i:
                i = j
                continue
            if i > text_start:
                self.text(text_start, i)
            tok = int(self.ids[i])
            parse = self.openers.get(tok)
            end = il.eos and tok == il.EOS  # an <eos> the interleaver does not write is a stray token
            begin = self.partial and il.bos and not il.eos and tok == il.BOS  # the next document, without <eos>
            if end or begin or parse is not None:
                self.decode_text()  # a stray token (dropped) does not end the text, a segment does
            if self.partial and (end or begin):  # documents packed back to back: no text joins across them
                self.end_text(segments)
                i = self.next_document(i + 1) if end else i + 1
            elif end:
                ended = True
                if i != self.n - 1:
                    self.problem(i + 1, "the end of the stream after <eos>", f"dropped {self.n - 1 - i} token(s)")
                i = self.n
            elif parse is not None:
                seg, i = parse(i)
                if seg is not None:
                    self.end_text(segments)
                    segments.append(seg)
            else:
                self.stray(i)
                i += 1
            text_start = i
        if i > text_start:
            self.text(text_start, i)
        self.end_text(segments)
        if il.eos and not ended and not self.partial and not self.cut:  # a segment cut open already said so
            self.problem(self.n, "<eos>", "ended the document there")
        return segments
