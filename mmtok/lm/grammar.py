"""The grammar behind constrained sampling: per-sequence masks that keep a stream well formed.

A small state machine per sequence masks the logits at every step:

* in text: text ids, ``<boi>``/``<boa>`` (when the vocabulary has that range) or ``<eos>``;
  with the byte tokenizer only bytes that continue valid UTF-8, and segments open or
  the stream ends only between characters;
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

import torch

from mmtok.stream.interleave import Interleaver
from mmtok.stream.text import ByteTokenizer

__all__ = ["AUDIO", "DONE", "IMAGE", "TEXT", "Grammar"]

TEXT, IMAGE, AUDIO, DONE = "text", "image", "audio", "done"


@dataclass
class _State:
    mode: str = TEXT
    row: int = 0  # image: rows finished
    col: int = 0  # image: codes in the current row
    n: int = 0  # audio: codes so far
    nxt: int = 0  # next free position (the interleaver's counter)
    start: int = 0  # image: position right after <boi>
    utf8_left: int = 0  # text (bytes): continuation bytes still owed by the current character
    utf8_next: tuple[int, int] = (0x80, 0xBF)  # text (bytes): range of the next continuation byte


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

        text_ids = v.range("text")
        openers = [il.BOI] if v.has("image") else []
        openers += [il.BOA] if v.has("audio") else []
        self.text = mask(text_ids, *openers, *([il.EOS] if allow_eos else []))
        self.bytes = isinstance(il.text, ByteTokenizer)
        if self.bytes:  # only bytes that can start a character, between characters
            self.text = mask(range(0x80), *_UTF8_LEAD, *openers, *([il.EOS] if allow_eos else []))
            self.utf8_cont = {r: mask(range(r[0], r[1] + 1)) for r in {x[1] for x in _UTF8_LEAD.values()}}
        self.image_code = mask(v.range("image")) if v.has("image") else None
        self.audio_code = mask(v.range("audio"), il.EOA) if v.has("audio") else None
        self.audio_code_only = mask(v.range("audio")) if v.has("audio") else None
        self.eol, self.eoi, self.eoa = mask(il.EOL), mask(il.EOI), mask(il.EOA)
        self.pad = mask(v.id("<pad>"))
        self.image_cost = self.h * (self.w + 1) + 2  # <boi>, h rows of w codes and <eol>, <eoi>
        self.audio_cost = self.min_audio + 2  # <boa>, the fewest codes, <eoa>

    def start(self, prompt_len: int) -> _State:
        return _State(nxt=prompt_len)

    def allowed(self, s: _State, left: int | None = None) -> torch.Tensor:
        """Boolean ``[V]``: the ids allowed next, when ``left`` tokens (this one included) remain.

        With a budget, nothing is opened that could not be closed within it: no
        image or audio segment, and no multi-byte character, that would be cut off.
        """
        if s.mode == TEXT:
            if s.utf8_left:
                return self.utf8_cont[s.utf8_next]
            if left is None or left >= max(self.image_cost, self.audio_cost, 4):
                return self.text
            m = self.text.clone()
            if left < self.image_cost:
                m[self.il.BOI] = False
            if left < self.audio_cost:
                m[self.il.BOA] = False
            if self.bytes:
                for lead, (n, _) in _UTF8_LEAD.items():
                    if left < n + 1:
                        m[lead] = False
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
            elif self.bytes:
                if s.utf8_left:
                    s.utf8_left, s.utf8_next = s.utf8_left - 1, (0x80, 0xBF)
                elif tok in _UTF8_LEAD:
                    s.utf8_left, s.utf8_next = _UTF8_LEAD[tok]
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
