"""The unified id space: text ids, special tokens, then one code range per modality.

Built in one place, in a fixed order::

    [0, T)              text ids (T = 256 for bytes, or a trained BPE's size)
    [T, T+S)            special tokens: <pad> <bos> <eos> <boi> <eoi> <eol> <boa> <eoa>
                        <bov> <eov> <eof>, then reserved slots (room for more)
    [I0, I0+K_image)    image codes
    [A0, A0+K_audio)    audio codes
    [V0, V0+K_video)    video codes (when there is a video tokenizer)

The layout is data: :meth:`Vocabulary.to_dict` / :meth:`Vocabulary.from_dict` round
trip it through JSON, and :attr:`Vocabulary.fingerprint` hashes it together with
the identity of each tokenizer, so shards and model checkpoints can refuse ids
that mean something else.

>>> v = Vocabulary(text_size=256, ranges={"image": 1024, "audio": 512})
>>> v.size, v.id("<boi>"), v.range("image")
(1824, 259, range(288, 1312))
>>> v.modality_of([65, 259, 300, 1400]).tolist()
[0, 1, 2, 3]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from enum import IntEnum
from typing import Any

import numpy as np

from mmtok.core.checkpoint import MAX_CONFIG_INT
from mmtok.core.errors import VocabularyError

__all__ = [
    "DEFAULT_LOSS_WEIGHTS",
    "MEDIA",
    "SPECIAL_TOKENS",
    "Modality",
    "Vocabulary",
    "loss_weight_table",
    "tokenizer_fingerprint",
    "tokenizer_size",
]

SPECIAL_TOKENS = (
    "<pad>", "<bos>", "<eos>",
    "<boi>", "<eoi>", "<eol>",
    "<boa>", "<eoa>",
    "<bov>", "<eov>", "<eof>",
)  # fmt: skip
RESERVED_SPECIAL = 32  # the special block always has this many ids; unused ones are "<reserved_k>"
MEDIA = ("image", "audio", "video")  # the code ranges, in id order
FORMAT = "mmtok-vocab"
FORMAT_VERSION = 1


class Modality(IntEnum):
    """What a token is, as stored in ``Stream.modality`` (uint8)."""

    TEXT = 0
    SPECIAL = 1  # <pad>, <bos>, <eos> and reserved ids
    IMAGE = 2
    AUDIO = 3
    VIDEO = 4


DEFAULT_LOSS_WEIGHTS = {"text": 1.0, "special": 1.0, "image": 1.0, "audio": 1.0, "video": 1.0}


def loss_weight_table(loss_weights: Mapping[str, float] | None) -> tuple[dict[str, float], np.ndarray]:
    """:data:`DEFAULT_LOSS_WEIGHTS` with ``loss_weights`` over them, and the float32 weight of each
    :class:`Modality` in order; a ``ValueError`` for an unknown key or a weight that is no finite number ≥ 0.

    >>> loss_weight_table({"image": 0.5})[1].tolist()
    [1.0, 1.0, 0.5, 1.0, 1.0]
    """
    given = dict(loss_weights or {})
    unknown = sorted(set(given) - set(DEFAULT_LOSS_WEIGHTS))
    if unknown:
        raise ValueError(f"unknown loss_weights key(s) {unknown}; known: {list(DEFAULT_LOSS_WEIGHTS)}")
    for key, w in given.items():
        if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) or not np.isfinite(w) or w < 0:
            raise ValueError(f"loss_weights[{key!r}] must be a finite number ≥ 0, got {w!r}")
    weights = {**DEFAULT_LOSS_WEIGHTS, **{k: float(w) for k, w in given.items()}}
    return weights, np.array([weights[m.name.lower()] for m in Modality], dtype=np.float32)

# segment markers belong to the modality of the segment they delimit
_MARKER_MODALITY = {
    "<boi>": Modality.IMAGE, "<eoi>": Modality.IMAGE,
    "<boa>": Modality.AUDIO, "<eoa>": Modality.AUDIO,
    "<bov>": Modality.VIDEO, "<eov>": Modality.VIDEO, "<eof>": Modality.VIDEO,
}  # fmt: skip


def tokenizer_fingerprint(tok: Any) -> str:
    """A short hash that changes whenever ``tok`` would produce different ids.

    Uses ``tok.fingerprint`` when the tokenizer has one; otherwise hashes the
    config and every tensor of an ``nn.Module``'s state dict
    (:func:`~mmtok.core.protocol.module_fingerprint`). Any other tokenizer without a
    ``fingerprint`` string is refused: its class and sizes do not tell two codebooks apart.
    """
    import torch  # a vocabulary's ranges and ids need none

    from mmtok.core.protocol import module_fingerprint

    own = getattr(tok, "fingerprint", None)
    if isinstance(own, str):
        return own
    if not isinstance(tok, torch.nn.Module):
        raise VocabularyError(
            f"{type(tok).__name__} has no fingerprint: give it a `fingerprint` string attribute that changes "
            "whenever its codes would (e.g. a hash of its codebook), so a vocabulary can tell it from another")
    return module_fingerprint(tok)


def tokenizer_size(tok: Any, name: str) -> int:
    """How many ids the ``name`` tokenizer ``tok`` gives: its ``vocab_size`` (``"text"``) or ``codebook_size``
    (a medium); a TypeError when it has none."""
    attr = "vocab_size" if name == "text" else "codebook_size"
    size = getattr(tok, attr, None)
    if size is None:
        raise TypeError(f"the {name} tokenizer {type(tok).__name__} has no {attr}: give it one (the number of ids "
                        "its encode gives), so the vocabulary can make room for them")
    return int(size)


def _whole(value: Any, what: str) -> int:
    """``value`` when it is an int (not a bool, a float or a string) in ``[0, MAX_CONFIG_INT]``, else a
    :class:`VocabularyError` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise VocabularyError(f"vocabulary {what} must be a whole number, got {value!r:.40}")
    if not 0 <= value <= MAX_CONFIG_INT:
        raise VocabularyError(f"vocabulary {what} must lie in [0, {MAX_CONFIG_INT:,}], got {value}")
    return value


class Vocabulary:
    """Text ids, special tokens and media code ranges laid out in one id space.

    ``ranges`` maps a media name (``"image"``, ``"audio"``, ``"video"``) to its
    codebook size; ``sources`` maps ``"text"`` and each media name to a fingerprint
    of the tokenizer that produces those ids (see :func:`tokenizer_fingerprint`).
    """

    def __init__(
        self,
        text_size: int = 256,
        *,
        ranges: Mapping[str, int] | None = None,
        specials: Sequence[str] = SPECIAL_TOKENS,
        n_special: int = RESERVED_SPECIAL,
        sources: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        ranges = dict(ranges or {})
        if _whole(text_size, "text_size") < 1:
            raise VocabularyError(f"text_size must be a positive int, got {text_size!r}")
        unknown = sorted(set(ranges) - set(MEDIA))
        if unknown:
            raise VocabularyError(f"unknown media range(s) {unknown}; known: {list(MEDIA)}")
        for name, k in ranges.items():
            if _whole(k, f"range {name!r}") < 1:
                raise VocabularyError(f"range {name!r} needs a positive codebook size, got {k!r}")
        _whole(n_special, "n_special")
        specials = tuple(specials)
        missing = [s for s in SPECIAL_TOKENS if s not in specials]
        if missing or specials[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise VocabularyError(
                f"specials must start with {list(SPECIAL_TOKENS)} in that order (missing {missing}); "
                "append new tokens after them"
            )
        if len(set(specials)) != len(specials):
            raise VocabularyError(f"special tokens repeat: {list(specials)}")
        n_special = max(n_special, len(specials))
        self.text_size = text_size
        self.specials = specials
        self.n_special = n_special
        self.sources = dict(sources or {})
        # what each tokenizer was, in words (its checkpoint and version): for messages only,
        # not part of the fingerprint or of equality
        self.labels = {str(k): str(v) for k, v in (labels or {}).items()}
        self._names = list(specials) + [f"<reserved_{k}>" for k in range(len(specials), n_special)]
        self._ids = {name: text_size + i for i, name in enumerate(self._names)}
        start = text_size + n_special
        self._ranges: dict[str, range] = {}
        for name in MEDIA:  # fixed order, whatever order the mapping had
            if name in ranges:
                self._ranges[name] = range(start, start + ranges[name])
                start += ranges[name]
        if start > MAX_CONFIG_INT:  # what to_dict writes, from_dict (a checkpoint's config) must read back
            raise VocabularyError(f"vocabulary size {start:,} is over the {MAX_CONFIG_INT:,} ids a checkpoint "
                                  "holds; use smaller codebooks or a smaller text vocabulary")
        self.size = start
        # id -> Modality lookup over range boundaries, for vectorized modality_of
        bounds = [0, text_size, text_size + n_special]
        mods = [Modality.TEXT, Modality.SPECIAL]
        for name, r in self._ranges.items():
            mods.append(Modality[name.upper()])
            bounds.append(r.stop)
        self._bounds = np.asarray(bounds[1:], dtype=np.int64)
        self._mods = np.asarray(mods, dtype=np.uint8)

    # ------------------------------------------------------------------ construction

    @classmethod
    def for_tokenizers(
        cls, *, text: Any, image: Any = None, audio: Any = None, video: Any = None, **kwargs: Any
    ) -> Vocabulary:
        """The layout for these tokenizers (``text.vocab_size``, each ``codebook_size``)."""
        ranges: dict[str, int] = {}
        sources = {"text": tokenizer_fingerprint(text)}
        labels = {}
        for name, tok in (("text", text), ("image", image), ("audio", audio), ("video", video)):
            if tok is None:
                continue
            if name != "text":
                ranges[name] = tokenizer_size(tok, name)
                sources[name] = tokenizer_fingerprint(tok)
            label = getattr(tok, "checkpoint_label", None)
            if isinstance(label, str):
                labels[name] = label
        return cls(tokenizer_size(text, "text"), ranges=ranges, sources=sources, labels=labels, **kwargs)

    # ------------------------------------------------------------------ lookups

    def id(self, token: str) -> int:
        """The id of a special token, e.g. ``vocab.id("<boi>")``."""
        try:
            return self._ids[token]
        except KeyError:
            raise VocabularyError(
                f"{token!r} is not a special token of this vocabulary; known: {list(self.specials)}"
            ) from None

    def token(self, i: int) -> str:
        """A readable name for id ``i``: the special token, ``text:65`` or ``image:12``."""
        i = int(i)
        if 0 <= i < self.text_size:
            return f"text:{i}"
        if self.text_size <= i < self.text_size + self.n_special:
            return self._names[i - self.text_size]
        for name, r in self._ranges.items():
            if i in r:
                return f"{name}:{i - r.start}"
        return f"<out of range {i}>"

    def range(self, modality: str) -> range:
        """The ids of ``"text"``, ``"special"`` or a media modality's codes."""
        if modality == "text":
            return range(0, self.text_size)
        if modality == "special":
            return range(self.text_size, self.text_size + self.n_special)
        if modality in self._ranges:
            return self._ranges[modality]
        raise VocabularyError(
            f"this vocabulary has no {modality!r} range; it has text, special and {list(self._ranges)}"
        )

    def has(self, modality: str) -> bool:
        """Whether the layout has ids for ``modality``."""
        return modality in ("text", "special") or modality in self._ranges

    @property
    def media(self) -> tuple[str, ...]:
        """The media modalities that have a code range, in id order."""
        return tuple(self._ranges)

    def modality_of(self, ids: Any) -> np.ndarray:
        """uint8 :class:`Modality` of each id by range alone (every special token is SPECIAL).

        Raises :class:`~mmtok.core.errors.VocabularyError` for ids outside ``[0, size)``.
        """
        import torch

        a = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids, dtype=np.int64)
        bad = (a < 0) | (a >= self.size)
        if bad.any():
            pos = int(np.flatnonzero(bad.reshape(-1))[0])
            raise VocabularyError(
                f"id {int(a.reshape(-1)[pos])} at index {pos} is outside the vocabulary [0, {self.size})"
            )
        return self._mods[np.searchsorted(self._bounds, a, side="right")]

    def stream_modality(self, ids: Any, *, previous: int | None = None) -> np.ndarray:
        """uint8 modality of each token of a stream, markers counted with their segment.

        ``<boi> <eoi>`` are IMAGE, ``<boa> <eoa>`` AUDIO, ``<bov> <eov> <eof>`` VIDEO, and
        ``<eol>`` takes the modality of the code before it (``previous`` is the id
        before ``ids[0]`` when ``ids`` is a slice). ``<bos> <eos> <pad>`` stay SPECIAL.
        """
        import torch

        a = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids, dtype=np.int64)
        mod = self.modality_of(a)
        for token, m in _MARKER_MODALITY.items():
            mod[a == self._ids[token]] = m
        eol = np.flatnonzero(a == self._ids["<eol>"])
        if eol.size:
            before = np.where(eol > 0, a[np.maximum(eol - 1, 0)], -1 if previous is None else previous)
            prev_mod = np.full(eol.shape, Modality.IMAGE, dtype=np.uint8)
            ok = (before >= 0) & (before < self.size)
            prev_mod[ok] = self._mods[np.searchsorted(self._bounds, before[ok], side="right")]
            mod[eol] = np.where(prev_mod == Modality.VIDEO, Modality.VIDEO, Modality.IMAGE)
        return mod

    # ------------------------------------------------------------------ (de)serialization

    def layout(self) -> dict[str, Any]:
        """The id layout alone (no tokenizer identities)."""
        return {
            "text_size": self.text_size,
            "specials": list(self.specials),
            "n_special": self.n_special,
            "ranges": {name: len(r) for name, r in self._ranges.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` turns back into an equal vocabulary."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **self.layout(),
            "size": self.size,
            "sources": dict(sorted(self.sources.items())),
            **({"labels": dict(sorted(self.labels.items()))} if self.labels else {}),
            "fingerprint": self.fingerprint,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str | None = None) -> Vocabulary:
        """The vocabulary :meth:`to_dict` wrote; :class:`~mmtok.core.errors.VocabularyError` names a field that is
        missing or of the wrong type, after ``where`` (the file it was read from) when given."""
        try:
            return cls._from_dict(data)
        except VocabularyError as e:
            if where is None:
                raise
            raise VocabularyError(f"{where}: {e}") from None

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        """:meth:`from_dict` without the file's name."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise VocabularyError(f"not an mmtok vocabulary (expected format {FORMAT!r})")
        version = _whole(data.get("format_version", 0), "format_version")
        if version > FORMAT_VERSION:
            raise VocabularyError(
                f"vocabulary format_version {version} is newer than this mmtok understands ({FORMAT_VERSION}); "
                "upgrade mmtok"
            )
        missing = [key for key in ("text_size", "specials", "n_special") if key not in data]
        if missing:
            raise VocabularyError(f"vocabulary dict is missing the field(s) {missing}")
        ranges, specials, sources = data.get("ranges", {}), data["specials"], data.get("sources", {})
        if not isinstance(ranges, Mapping) or not all(isinstance(k, str) for k in ranges):
            raise VocabularyError(f"vocabulary ranges must map media names to sizes, got {ranges!r:.80}")
        if not isinstance(specials, (list, tuple)) or not all(isinstance(t, str) for t in specials):
            raise VocabularyError(f"vocabulary specials must be a list of strings, got {specials!r:.80}")
        if not isinstance(sources, Mapping) or not all(isinstance(x, str) for x in (*sources, *sources.values())):
            raise VocabularyError(f"vocabulary sources must map names to fingerprint strings, got {sources!r:.80}")
        v = cls(
            _whole(data["text_size"], "text_size"),
            ranges={k: _whole(n, f"range {k!r}") for k, n in ranges.items()},
            specials=tuple(specials),
            n_special=_whole(data["n_special"], "n_special"),
            sources=sources,
            labels=data.get("labels") if isinstance(data.get("labels"), Mapping) else None,
        )
        if "size" in data and _whole(data["size"], "size") != v.size:
            raise VocabularyError(f"vocabulary says size {data['size']} but its layout gives {v.size}")
        if "fingerprint" in data and data["fingerprint"] != v.fingerprint:
            raise VocabularyError(f"vocabulary fingerprint {data['fingerprint']!r:.40} does not match its layout and "
                                  f"sources ({v.fingerprint}): it was edited or damaged; put back the file as it was "
                                  "written, or tokenize again")
        return v

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        return cls.from_dict(json.loads(text))

    # ------------------------------------------------------------------ identity

    @property
    def fingerprint(self) -> str:
        """Hash of the layout and of each tokenizer's identity (16 hex digits)."""
        blob = json.dumps({"layout": self.layout(), "sources": self.sources}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def differences(self, other: Vocabulary) -> list[str]:
        """What differs between two vocabularies, in words (empty when they match)."""
        out: list[str] = []
        mine, theirs = self.layout(), other.layout()
        for key in ("text_size", "specials", "n_special"):
            if mine[key] != theirs[key]:
                out.append(f"{key}: {theirs[key]} vs {mine[key]}")
        for name in sorted(set(mine["ranges"]) | set(theirs["ranges"])):
            a, b = theirs["ranges"].get(name), mine["ranges"].get(name)
            if a != b:
                out.append(f"{name} range size: {a} vs {b}")
        for name in sorted(set(self.sources) | set(other.sources)):
            a, b = other.sources.get(name), self.sources.get(name)
            if a != b:
                was, now = other.labels.get(name), self.labels.get(name)
                out.append(f"{name} tokenizer: {a}{f' [{was}]' if was else ''} vs {b}{f' [{now}]' if now else ''}")
        return out

    def check_same(self, other: Vocabulary, *, what: str = "the data") -> None:
        """Refuse ``other`` (the vocabulary ``what`` was made with) unless it is this one."""
        diff = self.differences(other)
        if diff:
            raise VocabularyError(
                f"{what} was made with a different vocabulary (saved vs now): " + "; ".join(diff)
                + ". Use the same tokenizers, or re-tokenize."
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return False
        mine, theirs = self.to_dict(), other.to_dict()
        mine.pop("labels", None)
        theirs.pop("labels", None)
        return mine == theirs

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        parts = "".join(f", {n}={len(r)}" for n, r in self._ranges.items())
        return f"Vocabulary(size={self.size}, text={self.text_size}, special={self.n_special}{parts})"

    def describe(self) -> Iterable[str]:
        """One line per block of the layout."""
        yield f"text     [0, {self.text_size})"
        yield f"special  [{self.text_size}, {self.text_size + self.n_special})  {' '.join(self.specials)}"
        for name, r in self._ranges.items():
            yield f"{name:<8} [{r.start}, {r.stop})"
