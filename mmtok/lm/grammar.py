"""The grammar behind constrained sampling: per-sequence masks that keep a stream well formed.

A small state machine per sequence masks the logits at every step:

* in text: text ids, ``<boi>``/``<boa>`` (when the vocabulary has that range) or ``<eos>``;
  only ids whose bytes continue valid UTF-8 (a small automaton over the bytes a
  character still owes, run once over every id's bytes), and segments open or the
  stream ends only between characters;
* inside an image: image codes until the row is ``w`` wide, then exactly ``<eol>``;
  after ``h`` rows exactly ``<eoi>``;
* inside audio: audio codes, or ``<eoa>`` once ``min_audio`` codes are out; after
  ``max_audio`` codes exactly ``<eoa>``;
* after ``<eos>``: ``<pad>`` (the sequence is finished).

It also tracks the 3-D ``(time, row, column)`` positions the interleaver gives
every token, so models with ``rope_3d`` see the same positions when sampling as
in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mmtok.stream.interleave import Interleaver
from mmtok.stream.text import TextTokenizer

__all__ = ["AUDIO", "DONE", "IMAGE", "TEXT", "Grammar", "audio_segment_len", "image_segment_len", "utf8_transitions"]

TEXT, IMAGE, AUDIO, DONE = "text", "image", "audio", "done"


@dataclass
class _State:
    mode: str = TEXT
    row: int = 0  # image: rows finished
    col: int = 0  # image: codes in the current row
    n: int = 0  # audio: codes so far
    nxt: int = 0  # next free position (the interleaver's counter)
    start: int = 0  # image: position right after <boi>
    utf8: int = 0  # text: UTF-8 state after the text so far (index into _UTF8_STATES; 0: between characters)


# UTF-8 lead bytes: (continuation bytes that follow, allowed range of the first of them)
_UTF8_LEAD: dict[int, tuple[int, tuple[int, int]]] = {
    **{b: (1, (0x80, 0xBF)) for b in range(0xC2, 0xE0)},
    0xE0: (2, (0xA0, 0xBF)),
    **{b: (2, (0x80, 0xBF)) for b in (*range(0xE1, 0xED), 0xEE, 0xEF)},
    0xED: (2, (0x80, 0x9F)),  # no UTF-16 surrogates
    0xF0: (3, (0x90, 0xBF)),
    **{b: (3, (0x80, 0xBF)) for b in range(0xF1, 0xF4)},
    0xF4: (3, (0x80, 0x8F)),  # nothing above U+10FFFF
}
# where UTF-8 text can stand after a byte: between characters, or owing continuation bytes (the first in a range)
_UTF8_STATES: tuple[tuple[int, tuple[int, int]], ...] = ((0, (0, 0)), *sorted(set(_UTF8_LEAD.values())))
_UTF8_DEAD = len(_UTF8_STATES)  # after bytes that are not valid UTF-8
_NEVER = 2**31  # tokens-to-finish of an id that cannot be taken


def image_segment_len(rows: int, cols: int) -> int:
    """Tokens an image of ``rows`` × ``cols`` codes takes in a stream: ``<boi>``, each row's codes and
    its ``<eol>``, ``<eoi>``.

    >>> image_segment_len(16, 16)
    274
    """
    return rows * (cols + 1) + 2


def audio_segment_len(codes: int) -> int:
    """Tokens an audio segment of ``codes`` codes takes in a stream: ``<boa>``, the codes, ``<eoa>``.

    >>> audio_segment_len(50)
    52
    """
    return codes + 2


def _utf8_step() -> np.ndarray:
    """``[states + 1, 256]``: the UTF-8 state after a byte read in each state (``_UTF8_DEAD`` when invalid)."""
    index = {st: i for i, st in enumerate(_UTF8_STATES)}
    step = np.full((_UTF8_DEAD + 1, 256), _UTF8_DEAD, np.int64)
    step[0, :0x80] = 0
    for lead, st in _UTF8_LEAD.items():
        step[0, lead] = index[st]
    for i, (owed, (lo, hi)) in enumerate(_UTF8_STATES[1:], 1):
        step[i, lo : hi + 1] = index[(owed - 1, (0x80, 0xBF))] if owed > 1 else 0
    return step


def utf8_transitions(tok: TextTokenizer, n: int) -> np.ndarray:
    """``[n, states]`` int64: the UTF-8 state after text id ``i``'s bytes are read in each state; ``states``
    (dead) where they make invalid UTF-8, and for ids past the tokenizer's vocabulary.

    >>> from mmtok.stream.text import ByteTokenizer
    >>> t = utf8_transitions(ByteTokenizer(), 256)
    >>> int(t[ord("a"), 0]), int(t[0xC3, 0]) > 0, int(t[0xA9, t[0xC3, 0]]), int(t[0xA9, 0]) == t.shape[1]
    (0, True, 0, True)
    """
    pieces = [tok.ids_to_bytes(np.array([i], np.int64)) for i in range(min(n, tok.vocab_size))]
    lens = np.array([len(b) for b in pieces] + [0] * (n - len(pieces)), np.int64)
    data = np.zeros((n, int(lens.max(initial=0))), np.uint8)  # each id's bytes, zero-padded
    data[np.arange(data.shape[1]) < lens[:, None]] = np.frombuffer(b"".join(pieces), np.uint8)
    step = _utf8_step()
    state = np.tile(np.arange(_UTF8_DEAD), (n, 1))  # [n, states]
    for j in range(data.shape[1]):
        live = lens > j
        state[live] = step[state[live], data[live, j, None]]
    state[len(pieces) :] = _UTF8_DEAD
    return state


def _tokens_to_finish(trans: np.ndarray) -> np.ndarray:
    """``[n, states]``: the fewest ids, this one first, that take each state through each id back to
    between characters (``_NEVER`` where none do)."""
    states = trans.shape[1]
    back = np.full(states + 1, _NEVER, np.int64)  # fewest ids from each state (and dead) back to state 0
    back[0] = 0
    for _ in range(states):
        back[:states] = np.minimum(back[:states], np.minimum(1 + back[trans], _NEVER).min(axis=0, initial=_NEVER))
    return np.minimum(1 + back[trans], _NEVER)


class Grammar:
    """Per-sequence masks over the vocabulary that keep a stream well formed."""

    def __init__(
        self,
        il: Interleaver,
        *,
        image_grid: tuple[int, int] = (16, 16),
        audio_tokens: tuple[int, int] = (1, 250),
        allow_eos: bool = True,
    ) -> None:
        v = il.vocab
        self.il = il
        self.h, self.w = image_grid
        self.min_audio, self.max_audio = audio_tokens
        if self.h < 1 or self.w < 1 or not 0 < self.min_audio <= self.max_audio:
            raise ValueError(f"bad grammar limits: image_grid {image_grid}, audio_tokens {audio_tokens}")

        def mask(*parts: range | int) -> torch.Tensor:
            m = torch.zeros(v.size, dtype=torch.bool)
            for p in parts:
                if isinstance(p, range):
                    m[p.start : p.stop] = True
                else:
                    m[p] = True
            return m

        openers = [il.BOI] if v.has("image") else []
        openers += [il.BOA] if v.has("audio") else []
        # text ids by UTF-8 state: the state each id leads to, and how many ids (it first) close its character
        if isinstance(il.text, TextTokenizer):
            after = utf8_transitions(il.text, v.text_size)
        else:  # a tokenizer that does not say its ids' bytes: every text id is whole text
            after = np.zeros((v.text_size, 1), np.int64)
        finish = _tokens_to_finish(after)
        self.utf8_after = after.tolist()  # [T][states]: the state each text id leads to
        self.finish = torch.from_numpy(finish)  # [T, states]: ids (it first) that close the character it leaves open
        self.longest = int(finish[finish < _NEVER].max(initial=1))
        self.text = [mask() for _ in range(finish.shape[1])]  # [states] of [V]: what may follow in each state
        for st, m in enumerate(self.text):
            m[: v.text_size] = self.finish[:, st] < _NEVER
        self.text[0] |= mask(*openers, *([il.EOS] if allow_eos and il.eos else []))
        self.image_code = mask(v.range("image")) if v.has("image") else None
        self.audio_code = mask(v.range("audio"), il.EOA) if v.has("audio") else None
        self.audio_code_only = mask(v.range("audio")) if v.has("audio") else None
        self.eol, self.eoi, self.eoa = mask(il.EOL), mask(il.EOI), mask(il.EOA)
        self.pad = mask(v.id("<pad>"))
        self.image_cost = image_segment_len(self.h, self.w)
        self.audio_cost = audio_segment_len(self.min_audio)  # its fewest codes

    def start(self, prompt_len: int) -> _State:
        return _State(nxt=prompt_len)

    def allowed(self, s: _State, left: int | None = None) -> torch.Tensor:
        """Boolean ``[V]``: the ids allowed next, when ``left`` tokens (this one included) remain.

        With a budget, nothing is opened that could not be closed within it: no
        image or audio segment, and no multi-byte character, that would be cut off.
        """
        if s.mode == TEXT:
            if left is None or left >= max(self.image_cost, self.audio_cost, self.longest):
                return self.text[s.utf8]
            m = self.text[s.utf8].clone()
            if left < self.image_cost:
                m[self.il.BOI] = False
            if left < self.audio_cost:
                m[self.il.BOA] = False
            m[: len(self.finish)] &= self.finish[:, s.utf8] <= left
            return m
        if s.mode == AUDIO and left is not None and left <= 1:
            return self.eoa
        if s.mode == IMAGE:
            assert self.image_code is not None
            if s.row == self.h:
                return self.eoi
            return self.image_code if s.col < self.w else self.eol
        if s.mode == AUDIO:
            assert self.audio_code is not None and self.audio_code_only is not None
            if s.n >= self.max_audio:
                return self.eoa
            return self.audio_code if s.n >= self.min_audio else self.audio_code_only
        return self.pad

    def position(self, s: _State) -> tuple[int, int, int]:
        """(time, row, column) position of the next token, as the interleaver assigns it."""
        if s.mode == IMAGE:
            if s.row < self.h:
                return (s.start, s.start + s.row, s.start + s.col)
            end = s.start + max(self.h, self.w + 1)  # <eoi> comes after the whole grid
            return (end, end, end)
        return (s.nxt, s.nxt, s.nxt)

    def advance(self, s: _State, tok: int) -> None:
        """Move the state past ``tok`` (which :meth:`allowed` permitted)."""
        il = self.il
        if s.mode == TEXT:
            if tok == il.BOI:
                s.mode, s.row, s.col = IMAGE, 0, 0
                s.nxt += 1
                s.start = s.nxt
                return
            if tok == il.BOA:
                s.mode, s.n = AUDIO, 0
            elif tok == il.EOS:
                s.mode = DONE
            else:
                s.utf8 = self.utf8_after[tok][s.utf8]
            s.nxt += 1
        elif s.mode == IMAGE:
            if s.row == self.h:  # this was <eoi>
                s.nxt = s.start + max(self.h, self.w + 1) + 1
                s.mode = TEXT
            elif s.col < self.w:
                s.col += 1
            else:  # <eol>
                s.row, s.col = s.row + 1, 0
        elif s.mode == AUDIO:
            s.nxt += 1
            if tok == il.EOA:
                s.mode = TEXT
            else:
                s.n += 1
        else:
            s.nxt += 1
