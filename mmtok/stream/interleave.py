"""Documents <-> one stream of ids (and back, exactly).

A document is a list (or any iterable, such as a generator) of segments: a ``str``, a ``PIL.Image``, a ``pathlib.Path``
to an image, audio or video file, or a tagged dict: ``{"text": str}``,
``{"image": path|PIL|array}``, ``{"audio": path|array, "sample_rate": int}``,
``{"video": path|frames}`` (a file's soundtrack follows its frames when there
is an audio tokenizer; options ``"soundtrack"`` and ``"chunk_seconds"``, see
:func:`~mmtok.stream.normalize.video_segments`), or already tokenized media ``{"image_codes": [h, w]}``,
``{"audio_codes": [n]}``, ``{"video_codes": [t, h, w]}``.

This module lays documents out as ids and holds :class:`Stream`; reading a
document's segments into canonical form (media encoded by the tokenizers, codes
checked) is :mod:`~mmtok.stream.normalize`, parsing ids back into segments is
:mod:`~mmtok.stream.parse` (with the repairs below, but for out-of-range ids and
first-frame repeat codes, which :meth:`Interleaver.decode` settles before it) and
rebuilding positions from ids is :mod:`~mmtok.stream.positions`.

Layout (ids from :class:`~mmtok.stream.vocab.Vocabulary`)::

    <bos> text... <boi> row_0 <eol> ... row_{h-1} <eol> <eoi> text... <boa> codes <eoa>
          <bov> (row_0 <eol> ... row_{h-1} <eol> <eof>) per frame <eov> <eos>

Canonical form: adjacent text segments are merged and empty ones dropped, so
``decode(encode(doc))`` equals ``normalize(doc)`` with media given as codes, and
``encode(decode(stream))`` gives back the same ids.

Positions: ``pos`` counts tokens; ``pos_thw`` gives (time, row, column) for 3-D
rotary embeddings. Text and markers advance all three together; the code at
(r, c) of an image that starts at position s sits at (s, s + r, s + c) and the
``<eol>`` ending row r at (s, s + r, s + w); in a video, frame f's code at (r, c)
sits at (s + f, s + r, s + c) and its ``<eof>`` at (s + f, s + h, s + w); audio
codes advance like text. After a segment the next position is one past the
largest position used so far (:func:`~mmtok.stream.positions.positions_thw`).

Repair (``decode(..., repair=True)``) for generated streams, each change reported
as a :class:`Repair`. Ids out of range are dropped, and so are misplaced special
tokens (a ``<bos>`` or ``<eos>`` that an Interleaver with ``bos=False`` or
``eos=False`` never writes among them) and codes outside their medium. Media keep
every intact code and fill only what is lost (:mod:`~mmtok.stream.mend`):

- An image's rows are as wide as most of its well-formed rows (codes, then
  ``<eol>``), a tie going to the tokenizer's ``grid``, else to the first row; a
  video's frames share one width. A token in a row that is no code of it (text,
  another medium's code, a stray marker) stands in a code's place when the row has
  room for it: it takes the code above it (in a video after its first frame, the
  code at its place in the frame before; in a first row, the nearest code before
  it, or after it at the row's start), every other code staying where it is; in a
  row that is whole without it, it is dropped. A row as long as several rows is
  split into them (their ``<eol>`` lost, or each replaced by a token at a row's
  end), any other longer row truncated, a shorter one padded at its end as holes
  are filled.
- A video's frames are as high as most of its frames closed by ``<eof>`` (a tie
  going to a height that divides them all, then to the tokenizer's grid, then to
  frame 0): a frame as high as several is split into them, a higher one truncated,
  a lower one padded with the previous frame's rows (the first frame: its last row).
- In audio a token among its codes takes the code before it (the first code,
  before that), so the codes after it keep their time; one after its last code is
  dropped where its ``<eoa>`` is missing.
- Text in a medium whose closer is missing, after its last code, closes it and
  is read as text.

A repeat code (the video tokenizer's ``repeat_id``) in a
video's first frame, which no frame precedes, takes the code before it in that frame
(code 0 if none); empty rows and empty segments are dropped; a segment
still open at the end of the stream (or when the next one starts) is closed;
everything after the document's ``<eos>`` is dropped; a missing leading ``<bos>`` or final ``<eos>``
(when the Interleaver writes them) is noted; text around a dropped token is joined
before it is decoded, and text that is not valid UTF-8 gets U+FFFD.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mmtok.core.errors import DocumentError, StreamError, VocabularyError
from mmtok.core.protocol import GridTokenizer, RateTokenizer
from mmtok.stream.normalize import canonical_segments, need
from mmtok.stream.parse import Decoded, Parser, Repair, integer_ids
from mmtok.stream.positions import positions_thw
from mmtok.stream.text import ByteTokenizer, TextTokenizer
from mmtok.stream.vocab import Vocabulary, loss_weight_table, tokenizer_fingerprint, tokenizer_size

FIRST_FRAME_CODE = "a code in a video's first frame (no frame precedes it to repeat)"  # what a strict decode expects

__all__ = [
    "Interleaver",
    "Stream",
    "pretty",
]



@dataclass(eq=False)
class Stream:
    """One document as ids, with what a model needs beside them (all ``[L]`` unless noted).

    ``copy.copy`` and ``copy.deepcopy`` keep :attr:`interleaver` (a deep copy copies the tensors, never the
    tokenizers); pickling leaves it out (:meth:`__getstate__`).
    """

    ids: torch.Tensor  # int64: ids of the unified vocabulary
    modality: torch.Tensor  # uint8: Modality of each token (markers count with their segment)
    pos: torch.Tensor  # int64: 0, 1, ..., L-1
    pos_thw: torch.Tensor  # int64 [L, 3]: (time, row, column) for 3-D rotary positions
    loss_weight: torch.Tensor  # float32: per-token weight from the modality
    interleaver: Interleaver | None = field(default=None, repr=False)  # what made it (for decode/pretty)

    def __len__(self) -> int:
        return int(self.ids.numel())

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without :attr:`interleaver`, whose tokenizers weigh megabytes: a DataLoader worker
        would send them with every document. Give the Interleaver to ``pretty``/``decode`` on the other side."""
        return {**self.__dict__, "interleaver": None}

    def __copy__(self) -> Stream:
        """A stream sharing this one's tensors and :attr:`interleaver`."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> Stream:
        """A stream with copies of this one's tensors and the same :attr:`interleaver` (its tokenizers are not
        copied), so ``pretty``/``decode`` work on it as on this one."""
        new = object.__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update({k: v if k == "interleaver" else copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        return new


class Interleaver:
    """Documents of text, images, audio and video <-> one :class:`Stream` of ids.

    ``text`` is any tokenizer with ``encode(str) -> ids`` and ``decode(ids, errors=...)``
    (default: bytes); ``image``, ``audio`` and ``video`` anything with ``encode``,
    ``decode``, ``codebook_size`` and, unless it is an ``nn.Module``, a ``fingerprint``
    string that changes whenever its codes would (``mmtok.load("image")``, ...), whose
    codes are ``[h, w]``, ``[n]`` and ``[t, h, w]``. ``vocab`` may be None to build it from the
    tokenizers; a given one must fit them: its sizes, and the fingerprint it records
    for each tokenizer (``vocab.sources``). ``loss_weights`` maps ``"text"``,
    ``"special"``, ``"image"``, ``"audio"``, ``"video"`` to the weight of their tokens.

    >>> il = Interleaver(Vocabulary(256, ranges={"image": 16}))
    >>> s = il.encode(["hi ", {"image_codes": [[1, 2], [3, 4]]}])
    >>> len(s), pretty(s)
    (13, 'hi [image 2×2]')
    >>> il.decode(s)[1]["image_codes"].tolist()
    [[1, 2], [3, 4]]
    """

    def __init__(
        self,
        vocab: Vocabulary | None,
        *,
        text: TextTokenizer | None = None,
        image: GridTokenizer | None = None,
        audio: RateTokenizer | None = None,
        video: GridTokenizer | None = None,
        loss_weights: Mapping[str, float] | None = None,
        bos: bool = True,
        eos: bool = True,
    ) -> None:
        if vocab is not None and not isinstance(vocab, Vocabulary):
            hint = (" (a text tokenizer goes as text=...: Interleaver(None, text=tokenizer))"
                    if callable(getattr(vocab, "encode", None)) else "")
            raise TypeError(f"Interleaver's first argument is the Vocabulary, or None to build it from the "
                            f"tokenizers, got {type(vocab).__name__}{hint}")
        self.text = text if text is not None else ByteTokenizer()
        self.image, self.audio, self.video = image, audio, video
        if vocab is None:
            vocab = Vocabulary.for_tokenizers(text=self.text, image=image, audio=audio, video=video)
        else:
            self._check_fits(vocab)
        self.vocab = vocab
        self.loss_weights, self._weight_table = loss_weight_table(loss_weights)
        self.bos, self.eos = bos, eos
        i = vocab.id
        self.BOS, self.EOS, self.BOI, self.EOI, self.EOL = i("<bos>"), i("<eos>"), i("<boi>"), i("<eoi>"), i("<eol>")
        self.BOA, self.EOA, self.BOV, self.EOV, self.EOF = i("<boa>"), i("<eoa>"), i("<bov>"), i("<eov>"), i("<eof>")

    def __repr__(self) -> str:
        """The vocabulary and the tokenizers in one line, and any setting off its default.

        >>> Interleaver(Vocabulary(256, ranges={"image": 16}), eos=False)
        Interleaver(Vocabulary(size=304, text=256, special=32, image=16), text=ByteTokenizer(), eos=False)
        """
        tokenizers = (("text", self.text), ("image", self.image), ("audio", self.audio), ("video", self.video))
        parts = [repr(self.vocab), *(f"{name}={_brief(tok)}" for name, tok in tokenizers if tok is not None)]
        default, _ = loss_weight_table(None)
        changed = {k: w for k, w in self.loss_weights.items() if w != default[k]}
        if changed:
            parts.append(f"loss_weights={changed}")
        parts += [f"{name}=False" for name in ("bos", "eos") if not getattr(self, name)]
        return f"Interleaver({', '.join(parts)})"

    def _check_fits(self, vocab: Vocabulary) -> None:
        """Refuse a vocabulary these tokenizers do not make: a fingerprint ``vocab.sources`` records for a tokenizer
        that is not this one's (said first, with both models' labels), or a size that differs."""
        tokenizers = (("text", self.text), ("image", self.image), ("audio", self.audio), ("video", self.video))
        for name, tok in tokenizers:
            want = vocab.sources.get(name)
            if tok is None or want is None:
                continue
            have = tokenizer_fingerprint(tok)
            if have != want:
                label, given = vocab.labels.get(name), getattr(tok, "checkpoint_label", None)
                given = f" [{given}]" if isinstance(given, str) else ""
                size = tokenizer_size(tok, name)
                ids = len(vocab.range(name)) if name != "text" else vocab.text_size
                sizes = f" ({ids} ids vs {size})" if ids != size else ""
                raise VocabularyError(
                    f"the vocabulary's {name} ids are from the {name} tokenizer with fingerprint {want}"
                    f"{f' [{label}]' if label else ''}, but the {name} tokenizer given has fingerprint {have}{given}"
                    f"{sizes}; pass the tokenizer the vocabulary was built with")
        if vocab.text_size != tokenizer_size(self.text, "text"):
            raise ValueError(f"vocab has {vocab.text_size} text ids but the text tokenizer has {self.text.vocab_size}")
        for name, tok in tokenizers[1:]:
            if tok is not None:
                if not vocab.has(name):
                    raise ValueError(f"an {name} tokenizer was given but the vocabulary has no {name} range")
                if len(vocab.range(name)) != tokenizer_size(tok, name):
                    raise ValueError(
                        f"vocab's {name} range has {len(vocab.range(name))} ids but the {name} tokenizer "
                        f"has codebook_size {tok.codebook_size}; build the vocabulary from these tokenizers"
                    )

    # ------------------------------------------------------------------ documents -> stream

    def normalize(self, doc: Iterable[Any]) -> list[dict[str, Any]]:
        """The canonical segments of ``doc``: tagged dicts, media as codes, text merged
        (:func:`~mmtok.stream.normalize.canonical_segments`)."""
        return canonical_segments(self, doc)

    def encode(self, doc: Iterable[Any]) -> Stream:
        """The :class:`Stream` of one document (a list of segments, or any iterable of them)."""
        ids: list[Sequence[int] | np.ndarray] = [[self.BOS]] if self.bos else []
        grids = False  # whether the stream opens an image or a video: without one, every token steps along one line
        for k, seg in enumerate(self.normalize(doc)):
            if "text" in seg:
                ids.append(self._text_ids(seg["text"], k))
            elif "image_codes" in seg:
                grids = True
                codes = seg["image_codes"].numpy()
                h, w = codes.shape
                grid = np.concatenate([codes + self.vocab.range("image").start,
                                       np.full((h, 1), self.EOL, np.int64)], axis=1)  # (h, w+1)
                ids += [[self.BOI], grid.reshape(-1), [self.EOI]]
            elif "video_codes" in seg:
                grids = True
                codes = seg["video_codes"].numpy()
                t, h, w = codes.shape
                grid = np.concatenate([codes + self.vocab.range("video").start,
                                       np.full((t, h, 1), self.EOL, np.int64)], axis=2)  # (t, h, w+1)
                frames = np.concatenate([grid.reshape(t, h * (w + 1)), np.full((t, 1), self.EOF, np.int64)], axis=1)
                ids += [[self.BOV], frames.reshape(-1), [self.EOV]]
            else:
                codes = seg["audio_codes"].numpy()
                ids += [[self.BOA], codes + self.vocab.range("audio").start, [self.EOA]]
        if self.eos:
            ids.append([self.EOS])
        a = np.concatenate([np.asarray(x, dtype=np.int64) for x in ids]) if ids else np.zeros(0, np.int64)
        pos = positions_thw(self.vocab, a).numpy() if grids else np.repeat(np.arange(a.size)[:, None], 3, axis=1)
        return self._stream(a, pos)

    def _text_ids(self, text: str, k: int) -> np.ndarray:
        """The text tokenizer's ids for segment ``k``, refused (:class:`DocumentError`) unless they are integers
        in its range ``[0, vocab.text_size)``: an id past it would be read as a special token or a code."""
        a = integer_ids(self.text.encode(text), what=f"segment {k}: the text tokenizer's ids").reshape(-1)
        bad = (a < 0) | (a >= self.vocab.text_size)
        if bad.any():
            raise DocumentError(f"segment {k}: the text tokenizer gave id {int(a[bad][0])}, outside its "
                                f"{self.vocab.text_size} ids (its vocab_size leaves out tokens it emits?)")
        return a

    def stream(self, ids: Any, *, pos_thw: Any = None) -> Stream:
        """A :class:`Stream` around ``ids``, one document's ``[L]``, checked strictly (a malformed stream raises
        :class:`~mmtok.core.errors.StreamError`); positions ``[L, 3]`` rebuilt from the ids when not given. A
        batch ``[B, L]`` is refused: make each row's stream on its own."""
        a = _document_ids(ids, who="stream")
        self.decode(a)  # raises StreamError on a malformed stream
        if pos_thw is None:
            return self._stream(a, positions_thw(self.vocab, a).numpy())
        pos = integer_ids(pos_thw, what="pos_thw")
        if pos.shape != (a.size, 3):
            raise StreamError(f"pos_thw must be [L, 3] for the {a.size} ids given, got shape {tuple(pos.shape)}; "
                              "leave it out to rebuild the positions from the ids")
        return self._stream(a, pos)

    def _stream(self, a: np.ndarray, pos_thw: np.ndarray) -> Stream:
        """The :class:`Stream` of the well-formed ids ``a`` with their positions ``pos_thw``."""
        mod = self.vocab.stream_modality(a)
        return Stream(
            ids=torch.from_numpy(a),
            modality=torch.from_numpy(mod),
            pos=torch.arange(a.size, dtype=torch.int64),
            pos_thw=torch.from_numpy(np.ascontiguousarray(pos_thw)),
            loss_weight=torch.from_numpy(self._weight_table[mod]),
            interleaver=self,
        )

    # ------------------------------------------------------------------ stream -> documents

    def decode(self, stream: Stream | Any, *, repair: bool = False, media: bool = False,
               partial: bool = False) -> Decoded:
        """The segments of a stream: ``{"text"}``, ``{"image_codes" [h, w]}``, ``{"audio_codes" [n]}``,
        ``{"video_codes" [t, h, w]}``.

        ``media=True`` adds ``"image"`` (``[3, H, W]``), ``"audio"`` (waveform, with its
        ``"sample_rate"``) and ``"video"`` (frames) decoded by the tokenizers. A malformed stream raises
        :class:`~mmtok.core.errors.StreamError` naming the position and what was expected there (a
        truncated one too: its final ``<eos>`` is missing); ``repair=True`` fixes it instead (see the
        module docstring) and lists each change in ``result.repairs``. An empty stream is an empty document.

        ``stream`` is one document's ids, ``[L]`` (a batch ``[B, L]`` is refused: decode it row by row).
        ``partial=True`` reads any slice of a shard's ids (a training window, generated ids cut by their
        token budget): a missing leading ``<bos>`` or final ``<eos>`` is no problem; the tail of a segment
        whose opener was cut off is skipped; a segment that the end cuts keeps what it holds whole (an
        image its rows closed by ``<eol>``, a video its frames closed by ``<eof>``, audio every code; with
        nothing whole it is dropped); text cut inside a UTF-8 character at either end gets U+FFFD; a
        window's trailing ``<pad>`` belongs to no document; documents packed back to back (``<eos> <bos>``
        between them) are read one after another into one list, text never joined across their edge (to
        keep them apart, decode each document's piece, by the window's ``doc``, on its own). What was
        skipped or dropped is listed in ``result.repairs``; anything else malformed raises as without
        ``partial`` (or is repaired with ``repair=True``).

        >>> il = Interleaver(Vocabulary(256, ranges={"image": 16}))
        >>> ids = il.encode(["hi", {"image_codes": [[1, 2], [3, 4]]}, "yo"]).ids.tolist()
        >>> got = il.decode(ids[6:] + ids[:8], partial=True)  # an image's tail, then a document cut in row 1
        >>> [list(seg) for seg in got], got[-1]["image_codes"].tolist()
        ([['text'], ['text'], ['image_codes']], [[1, 2]])
        >>> print(*got.repairs, sep="\\n")
        position 0: the stream starts inside an image (its <boi> is cut off); skipped its 5 token(s)
        position 16: the stream ends inside row 1 of the image opened at position 11; kept its 1 whole row(s), dropped the 1 code(s) after them
        """
        a = _document_ids(self._own(stream), who="decode")
        orig = np.arange(a.size)
        repairs: list[Repair] = []
        bad = (a < 0) | (a >= self.vocab.size)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            expected = f"an id in [0, {self.vocab.size})"
            if not repair:
                raise StreamError(f"position {first}: expected {expected}, got {int(a[first])} (ids of another "
                                  "vocabulary? read them with the Interleaver that made them; repair=True drops them)",
                                  position=first, expected=expected)
            repairs += [Repair(int(p), f"expected {expected}, got {int(a[p])}", "dropped it") for p in np.flatnonzero(bad)]
            a, orig = a[~bad], orig[~bad]
        first_frame: list[Repair] = []
        a = self._first_frame_repeats(a, orig, first_frame)
        try:
            segments = Parser(self, a, orig, repair, repairs, partial=partial).document()
        except StreamError as e:  # strict: the earlier of the parser's problem and a first-frame repeat
            if first_frame and (e.position is None or first_frame[0].position < e.position):
                raise _repeat_error(first_frame[0]) from None
            raise
        if first_frame and not repair:
            raise _repeat_error(first_frame[0])
        for r in reversed(first_frame):  # each before the parser's first repair past it; the parser's order kept
            repairs.insert(next((k for k, q in enumerate(repairs) if q.position > r.position), len(repairs)), r)
        if media:
            for k, seg in enumerate(segments):
                if "image_codes" in seg:
                    seg["image"] = need(self, "image", k).decode(seg["image_codes"])
                elif "video_codes" in seg:
                    seg["video"] = need(self, "video", k).decode(seg["video_codes"])
                elif "audio_codes" in seg:
                    seg["audio"] = need(self, "audio", k).decode(seg["audio_codes"])
                    seg["sample_rate"] = getattr(self.audio, "sample_rate", None)
        return Decoded(segments, repairs)

    def _own(self, stream: Stream | Any) -> Any:
        """The ids of ``stream``; a :class:`Stream` made by an Interleaver with another vocabulary is refused
        (:class:`~mmtok.core.errors.VocabularyError`): its ids mean other text, codes or tokenizers here."""
        if not isinstance(stream, Stream):
            return stream
        theirs = stream.interleaver.vocab if stream.interleaver is not None else self.vocab
        if theirs is not self.vocab and theirs.fingerprint != self.vocab.fingerprint:
            raise VocabularyError(
                f"this stream was made with another vocabulary (its vs this Interleaver's: "
                f"{'; '.join(self.vocab.differences(theirs))}); read it with the Interleaver that made it "
                "(stream.interleaver), or encode the document again with this one")
        return stream.ids

    def _first_frame_repeats(self, a: np.ndarray, orig: np.ndarray, repairs: list[Repair]) -> np.ndarray:
        """``a`` with each repeat code in a video's first frame (the first frame that holds a video code: frames
        before it are empty, and the parser drops them) replaced by the video code before it in that frame, or
        code 0 (see the module docstring), each listed in ``repairs``; :meth:`decode` raises the first one
        when it does not repair, unless the parser finds a problem before it."""
        rep = getattr(self.video, "repeat_id", None)
        if rep is None or not self.vocab.has("video"):
            return a
        vr = self.vocab.range("video")
        token, a = vr.start + rep, a.copy()
        stops = np.flatnonzero(np.isin(a, [self.EOV, self.BOV, self.BOI, self.BOA, self.EOS, self.BOS]))
        bovs = np.flatnonzero(a == self.BOV)
        expected, got = FIRST_FRAME_CODE, self.vocab.token(token)
        ends = np.append(stops, a.size)[np.searchsorted(stops, bovs, side="right")]
        for b, e in zip(bovs.tolist(), ends.tolist(), strict=True):
            video = a[b + 1 : e]  # (view) the video's ids
            codes = np.flatnonzero((video >= vr.start) & (video < vr.stop))
            if not codes.size:
                continue
            eofs = np.flatnonzero(video == self.EOF)
            k = int(np.searchsorted(eofs, codes[0]))
            lo = int(eofs[k - 1]) + 1 if k else 0
            span = video[lo : int(eofs[k]) if k < eofs.size else video.size]  # (view) the first frame's ids
            at = b + 1 + lo
            hits = np.flatnonzero(span == token)
            before = np.maximum.accumulate(np.where((span >= vr.start) & (span < token), np.arange(span.size), -1))
            span[hits] = fill = np.where(before >= 0, span[np.maximum(before, 0)], vr.start)[hits]
            repairs += [Repair(int(orig[at + h]), f"expected {expected}, got {got}",
                               f"replaced it with video code {int(c) - vr.start}") for h, c in zip(hits, fill, strict=True)]
        return a

    # ------------------------------------------------------------------ display

    def pretty(self, stream: Stream | Any, *, repair: bool = True, partial: bool = False) -> str:
        """Text inline, media as ``[image 16×16]`` / ``[audio 3.2 s]`` (repairs noted; ``partial`` as in
        :meth:`decode`)."""
        segs = self.decode(stream, repair=repair, partial=partial)
        parts = []
        for seg in segs:
            if "text" in seg:
                parts.append(seg["text"])
            elif "image_codes" in seg:
                h, w = seg["image_codes"].shape
                parts.append(f"[image {h}×{w}]")
            elif "video_codes" in seg:
                t, h, w = seg["video_codes"].shape
                fps = getattr(self.video, "fps", None)
                parts.append(f"[video {t / fps:.1f} s, {t}×{h}×{w}]" if fps else f"[video {t}×{h}×{w}]")
            else:
                n = seg["audio_codes"].numel()
                rate = getattr(self.audio, "tokens_per_second", None)
                sec = n / rate if rate else 0.0  # under a tenth of a second in two digits: 1 code is 0.02 s, not 0.0
                parts.append((f"[audio {sec:.1f} s]" if sec >= 0.1 or not n else f"[audio {sec:.2g} s]") if rate
                             else f"[audio {n} codes]")
        out = "".join(parts)
        if segs.repairs:
            out += f"  ({len(segs.repairs)} repair{'s' if len(segs.repairs) > 1 else ''})"
        return out


def _brief(tok: Any) -> str:
    """A tokenizer in one line for :meth:`Interleaver.__repr__`: its class and the checkpoint it was loaded from
    (a module's own repr lists every layer), its repr when that is one line, else its class."""
    label = getattr(tok, "checkpoint_label", None)
    if isinstance(label, str):
        return f"{type(tok).__name__}({label!r})"
    if isinstance(tok, torch.nn.Module):
        return f"{type(tok).__name__}(codebook_size={getattr(tok, 'codebook_size', '?')})"
    text = repr(tok)
    return text if "\n" not in text else type(tok).__name__


def _document_ids(ids: Any, *, who: str) -> np.ndarray:
    """``ids`` as one document's int64 ids ``[L]`` (a single id, 0-d, as ``[1]``; a batch of one, ``[1, L]`` as a
    model's ``generate`` gives it, as its row), for :meth:`Interleaver.stream` and :meth:`Interleaver.decode`
    (``who``); a batch of several rows is refused (:class:`StreamError`): it would be read as one document.

    >>> _document_ids([[104, 105], [106, 107]], who="decode")
    Traceback (most recent call last):
    ...
    mmtok.core.errors.StreamError: Interleaver.decode takes one document's ids, 1-D [L], got shape (2, 2): give the rows of a batch one at a time (il.decode(ids[i]) for each row i)
    """
    a = integer_ids(ids, what="stream ids")
    if a.ndim > 1 and math.prod(a.shape[:-1]) != 1:
        raise StreamError(f"Interleaver.{who} takes one document's ids, 1-D [L], got shape {tuple(a.shape)}: give "
                          f"the rows of a batch one at a time (il.{who}(ids[i]) for each row i)")
    return a.reshape(-1)


def _repeat_error(r: Repair) -> StreamError:
    """The strict decode's error for the first-frame repeat code that ``r`` would repair."""
    return StreamError(f"position {r.position}: {r.problem}", position=r.position, expected=FIRST_FRAME_CODE)


def pretty(stream: Stream, interleaver: Interleaver | None = None) -> str:
    """Render a stream readably: text inline, ``[image 16×16]``, ``[audio 3.2 s]``."""
    il = interleaver or (stream.interleaver if isinstance(stream, Stream) else None)
    if il is None:
        raise ValueError("pretty() needs the Interleaver that made the stream: pretty(ids, interleaver)")
    return il.pretty(stream)
