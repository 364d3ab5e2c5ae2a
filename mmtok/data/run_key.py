"""What makes two tokenize runs the same run: the key a run id hashes, and what differs, in words, when not: from a
finished run's manifest (:func:`run_differences`) or from a killed run's shard indexes (:func:`killed_run_differences`).

A run is keyed on its part of the corpus, ``shard_tokens``, the id dtype, the
corpus's sha256, the vocabulary's fingerprint, which covers each tokenizer's
identity (its config and weights), and what decides which media are read at all
(``reading``: ``--allow-outside`` and ``MMTOK_MAX_IMAGE_PIXELS``, keyed only when set,
so that a run without them keys as before): not on how the tokenizers were spelt, so
``--image ./tokA`` goes on with a run made with ``--image tokA`` from anywhere.
Every shard index carries the run id and a finished manifest records the key's
fields. Shards that earlier versions of mmtok wrote carry an id that hashed the
tokenizers as spelt as well: they go on when spelt the same (:func:`run_id`).

>>> from mmtok.stream.vocab import Vocabulary
>>> key = run_key((0, 1), 1000, np.dtype(np.uint16), "ab" * 32, Vocabulary(256))
>>> sorted(key), len(run_hash(key))
(['dtype', 'part', 'shard_tokens', 'source_sha256', 'vocab'], 16)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from mmtok.core.errors import CorpusError, VocabularyError
from mmtok.data.shard_checks import read_json_object, shard_files
from mmtok.stream.vocab import Vocabulary

__all__ = ["READING_KEY", "TOKENIZERS_KEY", "killed_run_differences", "reading_differences", "recorded_key",
           "run_differences", "run_hash", "run_id", "run_key", "tokenizer_record"]

TOKENIZERS_KEY = "tokenizers"  # a shard index's record of the tokenizers that made it (tokenizer_record)
READING_KEY = "reading"  # the settings that decide which media a run reads (set ones only): key, manifest and indexes


def run_key(part: tuple[int, int], shard_tokens: int, dtype: np.dtype, source_sha256: str,
            vocab: Vocabulary, reading: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a run is keyed on (see the module docstring); ``reading`` only when it holds a setting."""
    return {"part": list(part), "shard_tokens": shard_tokens, "dtype": np.dtype(dtype).name,
            "source_sha256": source_sha256, "vocab": vocab.fingerprint, **({READING_KEY: reading} if reading else {})}


def reading_differences(was: Any, now: dict[str, Any] | None) -> list[str]:
    """The reading settings (:data:`READING_KEY`) of an earlier run, ``was``, that this one's, ``now``, are not, in
    words (saved vs now).

    >>> reading_differences({"allow_outside": True}, None)
    ['--allow-outside given vs not given']
    >>> reading_differences(None, {"max_image_pixels": 500000000})
    ['MMTOK_MAX_IMAGE_PIXELS unset vs 500000000']
    """
    was = was if isinstance(was, dict) else {}
    now = now or {}
    said = []
    if bool(was.get("allow_outside")) != bool(now.get("allow_outside")):
        said.append("--allow-outside " + " vs ".join("given" if d.get("allow_outside") else "not given"
                                                     for d in (was, now)))
    if was.get("max_image_pixels") != now.get("max_image_pixels"):
        said.append("MMTOK_MAX_IMAGE_PIXELS " + " vs ".join(str(d.get("max_image_pixels", "unset")) for d in (was, now)))
    return said


def tokenizer_record(vocab: Vocabulary) -> dict[str, dict[str, str]]:
    """Each tokenizer of ``vocab`` as a shard index records it: its fingerprint and, where it has one, what it was in
    words (its checkpoint and model version), so that a killed run's folder can say which tokenizers made it.

    >>> tokenizer_record(Vocabulary(256, sources={"text": "byte"}, labels={"text": "bytes"}))
    {'text': {'fingerprint': 'byte', 'label': 'bytes'}}
    """
    return {name: {"fingerprint": fp, **({"label": vocab.labels[name]} if name in vocab.labels else {})}
            for name, fp in sorted(vocab.sources.items())}


def run_hash(key: dict[str, Any]) -> str:
    """16 hex digits of the sha256 of ``key`` as JSON with sorted keys."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def recorded_key(manifest: dict[str, Any]) -> dict[str, Any]:
    """The key of the finished run whose manifest is ``manifest``, from the fields it records (None for any it
    lacks)."""
    source = manifest.get("source") if isinstance(manifest.get("source"), dict) else {}
    reading = manifest.get(READING_KEY)
    return {"part": manifest.get("part"), "shard_tokens": manifest.get("shard_tokens"), "dtype": manifest.get("dtype"),
            "source_sha256": source.get("sha256"), "vocab": manifest.get("fingerprint"),
            **({READING_KEY: reading} if reading else {})}


def run_id(out: Path, key: dict[str, Any], spelt: dict[str, Any]) -> str:
    """The id the shards in ``out`` go on under: :func:`run_hash` of ``key``, or, when ``out``'s first shard index
    carries it, the id earlier versions of mmtok gave a run: the hash of the key with the tokenizers as spelt
    (``spelt``, a :class:`~mmtok.data.tokenizer_spec.TokenizerSpec` as a dict)."""
    spelt_id, first = run_hash({**key, "tokenizers": spelt}), out / "shard-00000.json"
    with contextlib.suppress(CorpusError):  # committed_shards reports a bad index
        if first.is_file() and read_json_object(first, "index", "").get("run") == spelt_id:
            return spelt_id
    return run_hash(key)


def run_differences(done: dict[str, Any], settings: dict[str, Any], vocab: Vocabulary) -> str:
    """What the finished run whose manifest is ``done`` was made with that this run's ``settings`` and ``vocab``
    are not, saved vs now, in words (its manifest records both); a tokenizer is named where the vocabulary's
    record of it differs, not where only its spelling does."""
    said, saved, unreadable = [], None, None
    try:
        saved = Vocabulary.from_dict(done.get("vocab"))
    except (VocabularyError, TypeError, ValueError) as e:
        unreadable = f"vocabulary: unreadable in its manifest ({e})"
    said += reading_differences(done.get(READING_KEY), settings.get(READING_KEY))
    for key, now in settings.items():
        was = done.get(key)
        if key == READING_KEY:
            continue
        if key == "tokenizers" and isinstance(was, dict):
            said += [f"--{name} {was.get(name)} vs {spec}" for name, spec in now.items() if was.get(name) != spec
                     and (saved is None or saved.sources.get(name) != vocab.sources.get(name))]
        elif was != now:
            said.append(f"ids stored as {was} vs {now}" if key == "dtype" else f"--{key.replace('_', '-')} {was} vs {now}")
    said += vocab.differences(saved) if saved is not None else [str(unreadable)]
    return "; ".join(said) or "its recorded settings and vocabulary match this run's: made by another mmtok version"


def _shard_tokens_range(out: Path, run: Any) -> tuple[int, int] | None:
    """The ``--shard-tokens`` values ``(low, high]`` run ``run``'s shards in ``out`` fit, or None when they tell nothing.

    A shard closes after the document that brings it to ``shard_tokens``: every one but the last committed holds
    at least that many tokens, and fewer before its last document.
    """
    low, high, indexes = 0, None, []
    for path in shard_files(out, "json"):
        with contextlib.suppress(CorpusError):
            indexes.append(read_json_object(path, "index", ""))
    closed = [ix for ix in indexes if ix.get("run") == run][:-1]
    try:
        for ix in closed:
            tokens, offsets = int(ix["tokens"]), ix["offsets"]
            low = max(low, tokens - (int(offsets[-1]) - int(offsets[-2])))
            high = tokens if high is None else min(high, tokens)
    except (KeyError, IndexError, TypeError, ValueError):  # an index damaged by hand: it tells nothing
        return None
    return None if high is None else (low, high)


def _named(made_by: Any) -> str:
    """One tokenizer of a :data:`TOKENIZERS_KEY` record in words: its fingerprint and what it was ("none": absent)."""
    if not isinstance(made_by, dict):
        return "none"
    label = made_by.get("label")
    return f"{made_by.get('fingerprint')}{f' [{label}]' if label else ''}"


def _other_tokenizers(found: dict[str, Any], tokenizers: dict[str, Any] | None) -> list[str]:
    """The tokenizers the run whose shard index is ``found`` was made with that this run's ``tokenizers`` are not
    (saved vs now), where its index records them (:data:`TOKENIZERS_KEY`; indexes earlier versions wrote do not)."""
    was = found.get(TOKENIZERS_KEY)
    if not isinstance(was, dict) or tokenizers is None:
        return []

    def fingerprint(made_by: Any) -> Any:
        return made_by.get("fingerprint") if isinstance(made_by, dict) else None

    return [f"{name} tokenizer: {_named(was.get(name))} vs {_named(tokenizers.get(name))}"
            for name in sorted(set(was) | set(tokenizers))
            if fingerprint(was.get(name)) != fingerprint(tokenizers.get(name))]


def killed_run_differences(out: Path, found: dict[str, Any], dtype: np.dtype | None, shard_tokens: int | None,
                           tokenizers: dict[str, Any] | None = None, reading: dict[str, Any] | None = None) -> str:
    """What the run whose shard index is ``found`` did otherwise than this one (saved vs now), as far as its
    indexes tell: the tokenizers (which indexes record since :data:`TOKENIZERS_KEY`), the reading settings
    (:data:`READING_KEY`), the id dtype, ``--shard-tokens``; else what only its run hash holds (the corpus is
    checked before, by its sha256)."""
    said = _other_tokenizers(found, tokenizers) + reading_differences(found.get(READING_KEY), reading)
    if dtype is not None and found.get("dtype") != np.dtype(dtype).name:
        said.append(f"ids stored as {found.get('dtype')} vs {np.dtype(dtype).name} (a vocabulary of another size: "
                    "other tokenizers)")
    fits = _shard_tokens_range(out, found.get("run")) if shard_tokens is not None else None
    if fits is not None and shard_tokens is not None and not fits[0] < shard_tokens <= fits[1]:
        was = f"{fits[1]:,}" if fits[1] - fits[0] == 1 else f"{fits[0] + 1:,} to {fits[1]:,}"
        said.append(f"--shard-tokens {was} vs {shard_tokens:,}")
    if said:
        return "; ".join(said)
    others = ("other tokenizers (--text, --image, --audio, --video, a checkpoint changed at the same path, or, "
              "for shards an earlier mmtok wrote, the same ones spelt otherwise)")
    if fits is None:
        return (f"same corpus and id dtype: {others} or another --shard-tokens, which its shard indexes "
                "record only inside their run hash")
    return (f"same corpus, id dtype and --shard-tokens: {others}, which its shard indexes record only inside "
            "their run hash")
