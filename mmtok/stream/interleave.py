"""Documents <-> one stream of ids (and back, exactly).

A document is a list of segments: a ``str``, a ``PIL.Image``, a ``pathlib.Path``
to an image, audio or video file, or a tagged dict: ``{"text": str}``,
``{"image": path|PIL|array}``, ``{"audio": path|array, "sample_rate": int}``,
``{"video": path|frames}`` (a file's soundtrack follows its frames when there
is an audio tokenizer; options ``"soundtrack"`` and ``"chunk_seconds"``, see
:meth:`Interleaver._video_file`), or already tokenized media ``{"image_codes": [h, w]}``,
``{"audio_codes": [n]}``, ``{"video_codes": [t, h, w]}``.

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
as a :class:`Repair`: ids out of range, misplaced special tokens and codes of
the wrong modality are dropped; a row longer than the first row of its image
(or video) is truncated, a shorter one padded with the codes of the row above;
a video frame with too few rows is padded with the previous frame's rows, one
with too many truncated; a repeat code (the video tokenizer's ``repeat_id``) in a
video's first frame, which no frame precedes, takes the code before it in that frame
(code 0 if none); empty rows and empty segments are dropped; a segment
still open at the end of the stream (or when the next one starts) is closed;
everything after ``<eos>`` is dropped; a missing leading ``<bos>`` or final ``<eos>``
(when the Interleaver writes them) is noted; text around a dropped token is joined
before it is decoded, and text that is not valid UTF-8 gets U+FFFD.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmtok.core.errors import DocumentError, StreamError, VocabularyError
from mmtok.core.protocol import GridTokenizer, RateTokenizer
from mmtok.core.suffixes import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from mmtok.stream.parse import Decoded, Parser, Repair, codes_tensor, integer_ids
from mmtok.stream.positions import positions_thw
from mmtok.stream.segments import VIDEO_OPTIONS
from mmtok.stream.text import ByteTokenizer, TextTokenizer
from mmtok.stream.vocab import DEFAULT_LOSS_WEIGHTS, Modality, Vocabulary, tokenizer_fingerprint

__all__ = [
    "Interleaver",
    "Stream",
    "pretty",
]



@dataclass(eq=False)
class Stream:
    """One document as ids, with what a model needs beside them (all ``[L]`` unless noted)."""

    ids: torch.Tensor  # int64: ids of the unified vocabulary
    modality: torch.Tensor  # uint8: Modality of each token (markers count with their segment)
    pos: torch.Tensor  # int64: 0, 1, ..., L-1
    pos_thw: torch.Tensor  # int64 [L, 3]: (time, row, column) for 3-D rotary positions
    loss_weight: torch.Tensor  # float32: per-token weight from the modality
    interleaver: Interleaver | None = field(default=None, repr=False)  # what made it (for decode/pretty)

    def __len__(self) -> int:
        return int(self.ids.numel())


MAX_CHUNK_SECONDS = sys.float_info.max / 1e6  # chunk_seconds times any frame or sample rate up to 1e6 stays finite


def _samples_per_token(audio: Any, rate: int) -> int | None:
    """Samples of one audio token at ``rate``: the tokenizer's own ``samples_per_token`` attribute, else
    ``rate / tokens_per_second`` when that is a whole number; None when neither gives one (7 tokens/s at
    16 kHz).

    >>> class A: tokens_per_second = 12.5
    >>> class B: tokens_per_second = 7
    >>> _samples_per_token(A(), 16000), _samples_per_token(B(), 16000)
    (1280, None)
    """
    own = getattr(audio, "samples_per_token", None)
    if isinstance(own, int) and own >= 1:
        return own
    per = rate / float(getattr(audio, "tokens_per_second", 0) or 0) if getattr(audio, "tokens_per_second", 0) else 0
    return int(per) if per >= 1 and float(per).is_integer() else None


def _countable(seconds: float) -> bool:
    """Whether ``seconds`` (an int or float > 0) is at most :data:`MAX_CHUNK_SECONDS` (an int too large for a
    float is not)."""
    try:
        return math.isfinite(float(seconds)) and float(seconds) <= MAX_CHUNK_SECONDS
    except OverflowError:
        return False


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
        self.text = text if text is not None else ByteTokenizer()
        self.image, self.audio, self.video = image, audio, video
        if vocab is None:
            vocab = Vocabulary.for_tokenizers(text=self.text, image=image, audio=audio, video=video)
        else:
            self._check_fits(vocab)
        self.vocab = vocab
        unknown = sorted(set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS))
        if unknown:
            raise ValueError(f"unknown loss_weights key(s) {unknown}; known: {list(DEFAULT_LOSS_WEIGHTS)}")
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **dict(loss_weights or {})}
        self._weight_table = np.array([self.loss_weights[m.name.lower()] for m in Modality], dtype=np.float32)
        self.bos, self.eos = bos, eos
        i = vocab.id
        self.BOS, self.EOS, self.BOI, self.EOI, self.EOL = i("<bos>"), i("<eos>"), i("<boi>"), i("<eoi>"), i("<eol>")
        self.BOA, self.EOA, self.BOV, self.EOV, self.EOF = i("<boa>"), i("<eoa>"), i("<bov>"), i("<eov>"), i("<eof>")

    def _check_fits(self, vocab: Vocabulary) -> None:
        """Refuse a vocabulary these tokenizers do not make: a size that differs, or a fingerprint ``vocab.sources``
        records for a tokenizer that is not this one's."""
        if vocab.text_size != self.text.vocab_size:
            raise ValueError(f"vocab has {vocab.text_size} text ids but the text tokenizer has {self.text.vocab_size}")
        tokenizers = (("text", self.text), ("image", self.image), ("audio", self.audio), ("video", self.video))
        for name, tok in tokenizers[1:]:
            if tok is not None:
                if not vocab.has(name):
                    raise ValueError(f"an {name} tokenizer was given but the vocabulary has no {name} range")
                if len(vocab.range(name)) != int(tok.codebook_size):
                    raise ValueError(
                        f"vocab's {name} range has {len(vocab.range(name))} ids but the {name} tokenizer "
                        f"has codebook_size {tok.codebook_size}; build the vocabulary from these tokenizers"
                    )
        for name, tok in tokenizers:
            want = vocab.sources.get(name)
            if tok is None or want is None:
                continue
            have = tokenizer_fingerprint(tok)
            if have != want:
                label = vocab.labels.get(name)
                raise VocabularyError(
                    f"the vocabulary's {name} ids are from the {name} tokenizer with fingerprint {want}"
                    f"{f' [{label}]' if label else ''}, but the {name} tokenizer given has fingerprint {have}; "
                    "pass the tokenizer the vocabulary was built with")

    # ------------------------------------------------------------------ documents -> stream

    def normalize(self, doc: Sequence[Any]) -> list[dict[str, Any]]:
        """The canonical segments of ``doc``: tagged dicts, media as codes, text merged."""
        if isinstance(doc, (str, dict)) or not isinstance(doc, Sequence):
            raise TypeError(f"a document is a list of segments, got {type(doc).__name__}")
        out: list[dict[str, Any]] = []
        texts: list[str] = []  # the text since the last medium, joined once

        def end_text() -> None:
            joined = "".join(texts)
            texts.clear()
            if joined:
                out.append({"text": joined})

        for k, seg in enumerate(doc):
            for item in self._segments(seg, k):
                if "text" in item:
                    texts.append(item["text"])
                    continue
                end_text()
                out.append(item)
        end_text()
        return out

    def _need(self, name: str, k: int) -> Any:
        tok = getattr(self, name)
        if tok is None:
            raise DocumentError(f"segment {k} is {'an' if name[0] in 'aeiou' else 'a'} {name} but this "
                             f"Interleaver has no {name} tokenizer; pass {name}=mmtok.load({name!r})")
        return tok

    def _segments(self, seg: Any, k: int) -> list[dict[str, Any]]:
        """Segment ``k`` as canonical segments: one, or a video file's chunks with its soundtrack."""
        if isinstance(seg, Path) and seg.suffix.lower() in VIDEO_SUFFIXES:
            return self._video_file(seg, k, {})
        if isinstance(seg, Mapping) and "video" in seg:
            opts = {key: val for key, val in seg.items() if key != "video"}
            unknown = sorted(set(opts) - set(VIDEO_OPTIONS))
            if unknown:
                raise DocumentError(f"segment {k}: a video segment takes the options {list(VIDEO_OPTIONS)}; "
                                 f"got {unknown}")
            return self._video_file(seg["video"], k, opts)
        return [self._segment(seg, k)]

    def _video_file(self, x: Any, k: int, opts: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A video: its codes, and, for a file with sound, its soundtrack after each chunk of frames.

        ``soundtrack``: None (default) includes the sound when this Interleaver has
        an audio tokenizer and the file has an audio stream; True requires both;
        False never. ``chunk_seconds``: cut the video into chunks of that many
        seconds, each followed by its stretch of sound (default: one chunk).
        """
        soundtrack, chunk = opts.get("soundtrack"), opts.get("chunk_seconds")
        if soundtrack is not None and not isinstance(soundtrack, bool):
            raise TypeError(f"segment {k}: soundtrack must be true, false or absent, got {soundtrack!r}")
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, (int, float)) or not chunk > 0):
            raise DocumentError(f"segment {k}: chunk_seconds must be a number > 0, got {chunk!r}")
        if chunk is not None and not _countable(chunk):  # inf, 1e308: a video tokenizer counts its frames in them
            raise DocumentError(f"segment {k}: chunk_seconds must be a finite positive number of seconds, at most "
                                f"{MAX_CHUNK_SECONDS:.1e}, got {str(chunk)[:40]}")
        tok = self._need("video", k)
        is_file = isinstance(x, (str, Path))
        if soundtrack and self.audio is None:
            raise DocumentError(f"segment {k}: soundtrack=True needs an audio tokenizer; pass audio=mmtok.load('audio')")
        if (soundtrack or chunk is not None) and not (is_file and hasattr(tok, "segments")):
            raise DocumentError(f"segment {k}: soundtrack and chunk_seconds need a video file and a video tokenizer "
                             "with segments() (mmtok.VideoTokenizer)")
        sound = self.audio is not None if soundtrack is None else soundtrack
        if not is_file or not hasattr(tok, "segments") or (not sound and chunk is None):
            return [{"video_codes": self._video_codes(x, k)}]
        rate = int(getattr(self.audio, "sample_rate", 16000))
        per_token = _samples_per_token(self.audio, rate)  # chunks end on whole tokens (None: no whole number)
        takes = "samples_per_token" in inspect.signature(tok.segments).parameters  # a user's segments() may not
        try:
            parts = tok.segments(x, chunk_seconds=chunk, audio=sound, sample_rate=rate,
                                 **({"samples_per_token": per_token} if takes and per_token else {}))
        except (ValueError, TypeError, OSError, RuntimeError) as e:
            raise DocumentError(f"segment {k} (video {x}): {e}") from e
        if soundtrack and not any("audio" in p for p in parts):
            raise DocumentError(f"segment {k} (video {x}): soundtrack=True but the file has no audio stream")
        out: list[dict[str, Any]] = []
        for part in parts:
            if "video_codes" in part:
                codes = codes_tensor(part["video_codes"], dims=3, what=f"segment {k}: the video tokenizer's codes")
                out.append({"video_codes": self._check(codes, "video", k)})
                continue
            codes = codes_tensor(self._media("audio", part["audio"], k, sample_rate=part["sample_rate"]),
                                  dims=1, what=f"segment {k}: the audio tokenizer's codes")
            if codes.numel():  # a sliver of sound shorter than one audio token adds nothing
                out.append({"audio_codes": self._check(codes, "audio", k)})
        return out

    def _segment(self, seg: Any, k: int) -> dict[str, Any]:
        from PIL import Image

        if isinstance(seg, str):
            return {"text": seg}
        if isinstance(seg, Image.Image):
            return {"image_codes": self._image_codes(seg, k)}
        if isinstance(seg, Path):
            suffix = seg.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                return {"image_codes": self._image_codes(seg, k)}
            if suffix in AUDIO_SUFFIXES:
                return {"audio_codes": self._audio_codes(seg, None, k)}
            raise DocumentError(f"segment {k}: cannot tell from its suffix whether {seg} is an image, audio or "
                             "video; use {'image': path}, {'audio': path} or {'video': path}")
        if isinstance(seg, Mapping):
            keys = set(seg) - {"sample_rate"}
            if len(keys) != 1:
                raise DocumentError(f"segment {k}: a tagged segment has one of the keys text, image, audio, video, "
                                 f"image_codes, audio_codes, video_codes; got {sorted(seg)}")
            (key,) = keys
            val = seg[key]
            if key == "text":
                if not isinstance(val, str):
                    raise TypeError(f"segment {k}: text must be a str, got {type(val).__name__}")
                return {"text": val}
            if key == "image":
                return {"image_codes": self._image_codes(val, k)}
            if key == "audio":
                return {"audio_codes": self._audio_codes(val, seg.get("sample_rate"), k)}
            if key == "video_codes":
                return {"video_codes": self._check(codes_tensor(val, dims=3, what=f"segment {k} video_codes"), "video", k)}
            if key == "image_codes":
                return {"image_codes": self._check(codes_tensor(val, dims=2, what=f"segment {k} image_codes"), "image", k)}
            if key == "audio_codes":
                return {"audio_codes": self._check(codes_tensor(val, dims=1, what=f"segment {k} audio_codes"), "audio", k)}
            raise DocumentError(f"segment {k}: unknown segment key {key!r}")
        raise TypeError(f"segment {k}: cannot interleave a {type(seg).__name__}; use str, PIL.Image, Path or a tagged dict")

    def _check(self, codes: torch.Tensor, name: str, k: int) -> torch.Tensor:
        size = len(self.vocab.range(name)) if self.vocab.has(name) else 0
        if size == 0:
            raise DocumentError(f"segment {k} is {name} codes but the vocabulary has no {name} range")
        if codes.numel() == 0:
            raise DocumentError(f"segment {k}: {name} codes are empty (shape {tuple(codes.shape)})")
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi >= size:
            raise DocumentError(f"segment {k}: {name} code {lo if lo < 0 else hi} is outside [0, {size})")
        rep = getattr(self.video, "repeat_id", None) if name == "video" else None
        if rep is not None and bool((codes[0] == rep).any()):
            raise DocumentError(f"segment {k}: the video's first frame holds the repeat code {rep}, but no frame "
                                "precedes it to repeat")
        return codes

    def _media(self, name: str, x: Any, k: int, **kwargs: Any) -> Any:
        tok = self._need(name, k)
        try:
            return tok.encode(x, **kwargs)
        except (ValueError, TypeError, OSError, RuntimeError) as e:
            src = f" {x}" if isinstance(x, (str, Path)) else ""
            raise DocumentError(f"segment {k} ({name}{src}): {e}") from e

    def _image_codes(self, x: Any, k: int) -> torch.Tensor:
        codes = self._media("image", x, k)
        return self._check(codes_tensor(codes, dims=2, what=f"segment {k}: the image tokenizer's codes"), "image", k)

    def _video_codes(self, x: Any, k: int) -> torch.Tensor:
        codes = self._media("video", x, k)
        return self._check(codes_tensor(codes, dims=3, what=f"segment {k}: the video tokenizer's codes"), "video", k)

    def _audio_codes(self, x: Any, sample_rate: int | None, k: int) -> torch.Tensor:
        codes = self._media("audio", x, k) if sample_rate is None else self._media("audio", x, k, sample_rate=sample_rate)
        return self._check(codes_tensor(codes, dims=1, what=f"segment {k}: the audio tokenizer's codes"), "audio", k)

    def encode(self, doc: Sequence[Any]) -> Stream:
        """The :class:`Stream` of one document (a list of segments)."""
        ids: list[Sequence[int] | np.ndarray] = [[self.BOS]] if self.bos else []
        grids = False  # whether the stream opens an image or a video: without one, every token steps along one line
        for seg in self.normalize(doc):
            if "text" in seg:
                ids.append(self.text.encode(seg["text"]))
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
        return self.stream(a, pos_thw=pos)

    def stream(self, ids: Any, *, pos_thw: np.ndarray | None = None) -> Stream:
        """A :class:`Stream` around ``ids`` (checked strictly; positions rebuilt when not given)."""
        a = integer_ids(ids, what="stream ids")
        if pos_thw is None:
            self.decode(a)  # raises StreamError on a malformed stream
            pos_thw = positions_thw(self.vocab, a).numpy()
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
        module docstring) and lists each change in ``result.repairs``. ``partial=True`` reads a slice of
        a document (generated ids cut by their token budget, a training window, a slice of a shard's
        ids): a missing leading ``<bos>`` or final ``<eos>`` is then no problem. An empty stream is an
        empty document.
        """
        ids = stream.ids if isinstance(stream, Stream) else stream
        a = integer_ids(ids, what="stream ids").reshape(-1)
        orig = np.arange(a.size)
        repairs: list[Repair] = []
        bad = (a < 0) | (a >= self.vocab.size)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            expected = f"an id in [0, {self.vocab.size})"
            if not repair:
                raise StreamError(f"position {first}: expected {expected}, got {int(a[first])}",
                                  position=first, expected=expected)
            repairs += [Repair(int(p), f"expected {expected}, got {int(a[p])}", "dropped it") for p in np.flatnonzero(bad)]
            a, orig = a[~bad], orig[~bad]
        a = self._first_frame_repeats(a, orig, repair, repairs)
        segments = Parser(self, a, orig, repair, repairs, partial=partial).document()
        if media:
            for k, seg in enumerate(segments):
                if "image_codes" in seg:
                    seg["image"] = self._need("image", k).decode(seg["image_codes"])
                elif "video_codes" in seg:
                    seg["video"] = self._need("video", k).decode(seg["video_codes"])
                elif "audio_codes" in seg:
                    seg["audio"] = self._need("audio", k).decode(seg["audio_codes"])
                    seg["sample_rate"] = getattr(self.audio, "sample_rate", None)
        return Decoded(segments, repairs)

    def _first_frame_repeats(self, a: np.ndarray, orig: np.ndarray, repair: bool, repairs: list[Repair]) -> np.ndarray:
        """``a`` with each repeat code in a video's first frame (``<bov>`` to the next ``<eof>``, ``<eov>``, opener
        or ``<eos>``) replaced by the video code before it in that frame, or code 0 (see the module docstring);
        without ``repair`` the first one is a :class:`StreamError`."""
        rep = getattr(self.video, "repeat_id", None)
        if rep is None or not self.vocab.has("video"):
            return a
        start = self.vocab.range("video").start
        token, a = start + rep, a.copy()
        stops = np.flatnonzero(np.isin(a, [self.EOF, self.EOV, self.BOV, self.BOI, self.BOA, self.EOS]))
        bovs = np.flatnonzero(a == self.BOV)
        expected, got = "a code in a video's first frame (no frame precedes it to repeat)", self.vocab.token(token)
        ends = np.append(stops, a.size)[np.searchsorted(stops, bovs, side="right")]
        for b, e in zip(bovs.tolist(), ends.tolist(), strict=True):
            span = a[b + 1 : e]  # (view) the first frame's ids
            hits = np.flatnonzero(span == token)
            if hits.size and not repair:
                p = int(orig[b + 1 + hits[0]])
                raise StreamError(f"position {p}: expected {expected}, got {got}", position=p, expected=expected)
            before = np.maximum.accumulate(np.where((span >= start) & (span < token), np.arange(span.size), -1))
            span[hits] = fill = np.where(before >= 0, span[np.maximum(before, 0)], start)[hits]
            repairs += [Repair(int(orig[b + 1 + h]), f"expected {expected}, got {got}",
                               f"replaced it with video code {int(c) - start}") for h, c in zip(hits, fill, strict=True)]
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
                parts.append(f"[audio {n / rate:.1f} s]" if rate else f"[audio {n} codes]")
        out = "".join(parts)
        if segs.repairs:
            out += f"  ({len(segs.repairs)} repair{'s' if len(segs.repairs) > 1 else ''})"
        return out


def pretty(stream: Stream, interleaver: Interleaver | None = None) -> str:
    """Render a stream readably: text inline, ``[image 16×16]``, ``[audio 3.2 s]``."""
    il = interleaver or (stream.interleaver if isinstance(stream, Stream) else None)
    if il is None:
        raise ValueError("pretty() needs the Interleaver that made the stream: pretty(ids, interleaver)")
    return il.pretty(stream)
