"""Which tokenizers a corpus is tokenized with: :class:`TokenizerSpec`, strings a worker process (or a
manifest, or a run's settings) rebuilds them from, and :func:`build_interleaver`, the
:class:`~mmtok.stream.interleave.Interleaver` a spec describes.

>>> TokenizerSpec(image="image").resolved()
TokenizerSpec(text='byte', image='image', audio=None, video=None)
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from mmtok.core.checkpoint_names import checkpoint_source, shipped_names
from mmtok.core.errors import CorpusError
from mmtok.core.protocol import MediaTokenizer
from mmtok.pretrained import is_callable_spec, load_tokenizer
from mmtok.stream.interleave import Interleaver
from mmtok.stream.text import load_text_tokenizer

__all__ = ["TRUSTED_CALLABLES", "TokenizerSpec", "build_interleaver", "detect_tokenizers"]


@dataclass(frozen=True)
class TokenizerSpec:
    """Which tokenizers to use, as strings a worker process can rebuild them from.

    ``text``: ``"byte"`` or a BPE folder. ``image``/``audio``/``video``: a shipped
    name (``"image"``), a checkpoint folder, or ``"package.module:callable"``
    returning a :class:`~mmtok.core.protocol.MediaTokenizer` (at least ``encode``,
    ``decode`` and ``codebook_size``; without a ``fingerprint`` string the vocabulary
    hashes an ``nn.Module`` tokenizer's config and weights, and refuses any other:
    :func:`~mmtok.stream.vocab.tokenizer_fingerprint`).
    """

    text: str = "byte"
    image: str | None = None
    audio: str | None = None
    video: str | None = None

    @classmethod
    def from_file_record(cls, record: Any, *, where: str, overrides: dict[str, str] | None = None) -> TokenizerSpec:
        """The spec a manifest or run settings (``where``) recorded, refusing ``module:callable`` entries.

        A file never makes mmtok import code: shipped names and checkpoint folders
        resolve, a custom tokenizer must be passed again by the caller, as
        ``overrides`` (e.g. ``{"image": "pkg.mod:build"}`` from ``--image``), which
        replace the recorded entries unchecked.
        """
        if not isinstance(record, dict) or set(record) - {"text", "image", "audio", "video"}:
            raise CorpusError(f"{where}: the tokenizers entry is not a text/image/audio/video mapping: {record!r}")
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        for key, value in record.items():
            if key in given:
                continue
            if value is not None and not isinstance(value, str):
                raise CorpusError(f"{where}: tokenizers.{key} must be a string, got {value!r}")
            if key != "text" and value and is_callable_spec(value) and value not in TRUSTED_CALLABLES:
                raise CorpusError(f"{where} names the custom {key} tokenizer {value!r}; mmtok does not import code a "
                                  f"file names: pass it explicitly (e.g. mmtok sample --{key} {value})")
            if value and _lost_relative(key, value):
                raise CorpusError(f"{where} records the {key} tokenizer as {value!r}, a path its shards recorded "
                                  "relative to the folder mmtok tokenize ran in (older releases kept it as typed), and "
                                  f"there is no {value} from {os.getcwd()}: pass the tokenizer with --{key} (e.g. "
                                  f"mmtok sample --{key} PATH), or run from the folder mmtok tokenize ran in")
        return cls(**{**record, **given})

    def resolved(self) -> TokenizerSpec:
        """This spec as a run uses and records it: each checkpoint folder as its absolute path, so that a
        reader finds it from any working folder; ``"byte"``, shipped names and ``module:callable`` entries as
        given (:func:`~mmtok.core.checkpoint_names.checkpoint_source` tells a shipped name from a folder).

        >>> TokenizerSpec(image="image").resolved()
        TokenizerSpec(text='byte', image='image', audio=None, video=None)
        """
        return TokenizerSpec(**{key: _resolved(key, value) for key, value in asdict(self).items()})


def _resolved(key: str, value: str | None) -> str | None:
    if value is None or (key == "text" and value == "byte") or is_callable_spec(value):
        return value
    return checkpoint_source(value)


def _lost_relative(key: str, value: str) -> bool:
    """Whether a recorded tokenizer ``value`` is a relative path to nothing from here (not ``"byte"``, a shipped
    name or ``module:callable``)."""
    if (key == "text" and value == "byte") or is_callable_spec(value) or value in shipped_names():
        return False
    return not Path(value).is_absolute() and not Path(value).exists()


TRUSTED_CALLABLES = ("mmtok.pretrained:native_image_tokenizer",)  # mmtok's own, allowed in files


def _load_media(spec: str, kind: str) -> MediaTokenizer:
    """The media tokenizer of ``kind`` a spec names (:func:`~mmtok.pretrained.load_tokenizer`): a shipped name, a
    folder or ``package.module:callable``; one that cannot be built is a :class:`CorpusError`."""
    return cast(MediaTokenizer, load_tokenizer(spec, kind=kind, error=CorpusError))


def build_interleaver(spec: TokenizerSpec) -> Interleaver:
    """The :class:`Interleaver` a :class:`TokenizerSpec` describes."""
    text = load_text_tokenizer(spec.text)
    image = _load_media(spec.image, "image") if spec.image else None
    audio = _load_media(spec.audio, "audio") if spec.audio else None
    video = _load_media(spec.video, "video") if spec.video else None
    return Interleaver(None, text=text, image=image, audio=audio, video=video)


def detect_tokenizers(kinds: set[str], given: TokenizerSpec) -> TokenizerSpec:
    """``given`` with the shipped tokenizer for each media kind the corpus uses that it leaves unset."""
    fill = {key: key for key in ("image", "audio", "video") if key in kinds and getattr(given, key) is None}
    return TokenizerSpec(**{**asdict(given), **fill})
