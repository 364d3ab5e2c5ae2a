"""A corpus of interleaved documents -> token shards on disk, resumably; and reading them back.

Input is JSONL, one document per line::

    {"segments": [{"text": "..."}, {"image": "rel/path.jpg"}, {"audio": "rel/clip.wav"}]}

(``{"video": path}`` too, given a video tokenizer, optionally with ``"soundtrack"``
and ``"chunk_seconds"``: with an audio tokenizer too, a file's sound follows its
frames; relative media paths resolve against the JSONL file's folder; blank
lines are not documents and are ignored). Output, in ``out``::

    shard-00000.bin    the ids of whole documents, back to back (uint16 when the
                       vocabulary fits, else uint32; read with np.memmap)
    shard-00000.json   its index: document offsets and line numbers, token counts
                       per modality, skipped lines, the .bin's sha256
    manifest.json      vocabulary and fingerprint, tokenizers, totals, every
                       skipped document with its line number and reason

A shard closes after the document that brings it to ``shard_tokens`` tokens, so
shard boundaries depend only on the corpus and the settings, never on
``workers``. Each shard is committed atomically (temporary files, fsync, rename;
the index is renamed last and is the commit). Running the same call again after
a crash or ``kill -9`` keeps the committed shards and continues after the last
one: the final files are byte-identical to an uninterrupted run. Documents are
tokenized with one thread per worker so the ids never depend on thread timing.

With ``part=(i, n)`` (or under ``torchrun``: ``RANK``/``WORLD_SIZE``) lines
``i, i+n, i+2n, ...`` (0-based) go to ``out/part-0000i-of-0000n/`` in the same layout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from mmtok.core.errors import CorpusError, DocumentError
from mmtok.core.protocol import MediaTokenizer
from mmtok.data.shards import (
    MANIFEST,
    ShardWriter,
    committed_shards,
    json_bytes,
    shard_manifest,
    write_atomic,
)
from mmtok.stream.interleave import VIDEO_OPTIONS, Interleaver
from mmtok.stream.text import load_text_tokenizer
from mmtok.stream.vocab import Modality

__all__ = ["TokenizerSpec", "build_interleaver", "part_folder", "tokenize_corpus"]

DEFAULT_SHARD_TOKENS = 1 << 24  # ~16.8 M tokens: 32 MiB per uint16 shard
BATCH_PER_WORKER = 64  # lines in flight per worker (bounds memory)
LOCK_NAME = ".lock"  # held while a run writes the folder
MEDIA_KEYS = ("image", "audio", "video")


@dataclass(frozen=True)
class TokenizerSpec:
    """Which tokenizers to use, as strings a worker process can rebuild them from.

    ``text``: ``"byte"`` or a BPE folder. ``image``/``audio``/``video``: a shipped
    name (``"image"``), a checkpoint folder, or ``"package.module:callable"``
    returning a :class:`~mmtok.core.protocol.MediaTokenizer` (at least ``encode``,
    ``decode`` and ``codebook_size``; without a ``fingerprint`` the vocabulary hashes
    the tokenizer's config and weights).
    """

    text: str = "byte"
    image: str | None = None
    audio: str | None = None
    video: str | None = None


def _load_media(spec: str) -> MediaTokenizer:
    """The media tokenizer a spec names: ``package.module:callable``, a shipped name or a folder."""
    if ":" in spec and not os.path.exists(spec):
        import importlib

        module, _, attr = spec.partition(":")
        try:
            tok = getattr(importlib.import_module(module), attr)()
        except (ImportError, AttributeError) as e:
            raise CorpusError(f"cannot build tokenizer {spec!r}: {e}") from e
    else:
        from mmtok.pretrained import load

        tok = load(spec)
    missing = [name for name in ("codebook_size", "encode", "decode") if not hasattr(tok, name)]
    if missing:
        raise CorpusError(f"tokenizer {spec!r} gives a {type(tok).__name__}, which has no {', '.join(missing)}: "
                          "a media tokenizer needs codebook_size, encode and decode (mmtok.core.protocol)")
    return cast(MediaTokenizer, tok)


def build_interleaver(spec: TokenizerSpec) -> Interleaver:
    """The :class:`Interleaver` a :class:`TokenizerSpec` describes."""
    text = load_text_tokenizer(spec.text)
    image = _load_media(spec.image) if spec.image else None
    audio = _load_media(spec.audio) if spec.audio else None
    video = _load_media(spec.video) if spec.video else None
    return Interleaver(None, text=text, image=image, audio=audio, video=video)


def part_folder(out: str | os.PathLike[str], part: tuple[int, int]) -> Path:
    """Where part ``i`` of ``n`` writes (``out`` itself when ``n == 1``)."""
    i, n = part
    return Path(out) if n == 1 else Path(out) / f"part-{i:05d}-of-{n:05d}"


# --------------------------------------------------------------------------- one document


def _document(raw: bytes, base: Path, il: Interleaver, line: int) -> list[Any]:
    """The segments of one JSONL line, media paths resolved; ValueError says what is wrong.

    Media without a tokenizer for it is a mistake in the call, not in the document:
    that raises :class:`~mmtok.core.errors.CorpusError`.
    """
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"line is not valid UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        doc = json.loads(decoded)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON ({e.msg} at column {e.colno})") from None
    segs = doc.get("segments") if isinstance(doc, dict) else None
    if not isinstance(segs, list):
        raise ValueError('expected an object with a "segments" list')
    out: list[Any] = []
    for k, seg in enumerate(segs):
        if isinstance(seg, str):
            out.append({"text": seg})
            continue
        keys = [key for key in ("text", *MEDIA_KEYS) if isinstance(seg, dict) and key in seg]
        opts = {key: val for key, val in seg.items() if key not in keys} if len(keys) == 1 else {}
        if len(keys) != 1 or (opts and keys != ["video"]) or set(opts) - set(VIDEO_OPTIONS):
            raise ValueError(f'segment {k} must be {{"text": ...}}, {{"image"|"audio": path}} or '
                             f'{{"video": path}} with optional {" and ".join(VIDEO_OPTIONS)}')
        key, value = keys[0], seg[keys[0]]
        if not isinstance(value, str):
            raise ValueError(f"segment {k}: {key} must be a string, got {type(value).__name__}")
        if key == "text":
            out.append({"text": value})
            continue
        if getattr(il, key) is None:
            raise CorpusError(
                f"line {line}: segment {k} is an {key} but no {key} tokenizer "
                f"was given; pass --{key} MODEL (TokenizerSpec({key}=...))"
            )
        path = base / value
        if not path.is_file():
            raise ValueError(f"segment {k}: {key} file {value!r} does not exist")
        out.append({key: str(path), **opts})
    return out


_WORKER: tuple[Interleaver, Path, np.dtype] | None = None


def _tokenize(item: tuple[int, bytes]) -> tuple[int, np.ndarray | None, np.ndarray | str]:
    """(line, ids, tokens per modality) or (line, None, reason) for one line."""
    assert _WORKER is not None
    il, base, dtype = _WORKER
    line, raw = item
    try:
        stream = il.encode(_document(raw, base, il, line))
    except CorpusError:
        raise
    except (ValueError, TypeError, DocumentError) as e:
        return line, None, str(e)
    counts = np.bincount(stream.modality.numpy(), minlength=len(Modality))
    return line, stream.ids.numpy().astype(dtype), counts


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:  # the writer died (e.g. kill -9): do not linger
            os._exit(1)
        time.sleep(0.5)


def _init_worker(spec: TokenizerSpec, base: Path, dtype: str, parent: int | None) -> None:
    global _WORKER
    torch.set_num_threads(1)
    if parent is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if _WORKER is None or _WORKER[1] != base:
        _WORKER = (build_interleaver(spec), base, np.dtype(dtype))


def _lines(path: Path, hasher: Any) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            hasher.update(raw)
            yield number, raw


def _env_part() -> tuple[int, int]:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


def tokenize_corpus(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tokenizers: TokenizerSpec = TokenizerSpec(),
    workers: int = 1,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    part: tuple[int, int] | None = None,
    strict: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Tokenize a JSONL corpus into shards in ``out`` (resuming a killed run) and return the manifest.

    Bad documents (invalid JSON, non-UTF-8 lines, missing or corrupt media) are
    skipped and recorded; ``strict=True`` raises :class:`~mmtok.core.errors.CorpusError`
    naming the first one's line instead (shards committed before it stay).

    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "docs.jsonl").write_text('{"segments": [{"text": "hello"}]}\\nnot json\\n')
    >>> m = tokenize_corpus(d / "docs.jsonl", d / "shards")
    >>> m["docs"], m["tokens"]["total"], m["dtype"], m["skipped"][0]["line"]
    (1, 7, 'uint16', 2)
    >>> sorted(p.name for p in (d / "shards").iterdir())
    ['.lock', 'manifest.json', 'shard-00000.bin', 'shard-00000.json']
    """
    source = Path(source)
    if not source.is_file():
        raise CorpusError(f"no corpus at {source}")
    i, n = part if part is not None else _env_part()
    if not (n >= 1 and 0 <= i < n):
        raise CorpusError(f"part must be i/n with 0 <= i < n, got {i}/{n}")
    if workers < 1 or shard_tokens < 1:
        raise CorpusError(f"workers and shard_tokens must be >= 1, got {workers} and {shard_tokens}")
    out = part_folder(out, (i, n))
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        return _tokenize_into(source, out, tokenizers, workers, shard_tokens, (i, n), strict, progress)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` (released by the OS even after kill -9).

    A POSIX record lock: forked workers do not inherit it, so a writer killed
    while its workers wind down can be restarted at once.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on this platform
        yield
        return
    with open(out / LOCK_NAME, "a+b") as f:
        try:
            fcntl.lockf(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CorpusError(f"another mmtok tokenize is writing to {out}; wait for it or use another --out") from None
        try:
            yield
        finally:
            fcntl.lockf(f.fileno(), fcntl.LOCK_UN)


def _tokenize_into(
    source: Path, out: Path, tokenizers: TokenizerSpec, workers: int, shard_tokens: int,
    part: tuple[int, int], strict: bool, progress: bool,
) -> dict[str, Any]:
    i, n = part

    il = build_interleaver(tokenizers)
    dtype = np.dtype(np.uint16 if il.vocab.size <= 1 << 16 else np.uint32)
    settings = {"part": [i, n], "shard_tokens": shard_tokens, "dtype": dtype.name, "tokenizers": asdict(tokenizers)}
    run = hashlib.sha256(json.dumps(
        {**settings, "source": source.name, "bytes": source.stat().st_size, "vocab": il.vocab.fingerprint},
        sort_keys=True).encode()).hexdigest()[:16]
    manifest_path = out / MANIFEST
    if manifest_path.is_file():
        done = json.loads(manifest_path.read_text())
        if done.get("run") == run:
            return done
        raise CorpusError(f"{out} already holds a finished run with other settings; use another --out")

    done_shards = committed_shards(out, run)
    resume = done_shards[-1]["lines"][1] if done_shards else 1
    writer = ShardWriter(out, run, dtype, shard_tokens, resume, len(done_shards))
    hasher = hashlib.sha256()
    base = source.resolve().parent
    mine = ((ln, raw) for ln, raw in _lines(source, hasher) if (ln - 1) % n == i and ln >= resume and raw.strip())

    from tqdm import tqdm

    tokens, start = 0, time.perf_counter()
    threads = torch.get_num_threads()
    pool, bar = None, None
    global _WORKER
    try:
        if workers == 1:
            _WORKER = (il, base, dtype)
            _init_worker(tokenizers, base, dtype.name, None)
            results: Iterator[Any] = map(_tokenize, mine)
        else:
            import multiprocessing as mp

            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            _WORKER = (il, base, dtype)  # inherited by forked workers
            pool = ctx.Pool(workers, _init_worker, (tokenizers, base, dtype.name, os.getpid()))
            results = _ordered(pool, mine, workers)
        bar = tqdm(unit="doc", disable=not progress, desc=f"tokenize {source.name}")  # after the fork
        last = resume - 1
        for line, ids, info in results:
            last = line
            if ids is None:
                if strict:
                    raise CorpusError(f"{source}:{line}: {info} (without --strict it would be skipped)")
                writer.skip(line, str(info))
            else:
                writer.add(line, ids, info)
                tokens += ids.size
                bar.update(1)
                elapsed = max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(tok_s=f"{tokens / elapsed:,.0f}", refresh=False)
        if writer.pending:
            writer.commit(last + 1)
    finally:
        if bar is not None:
            bar.close()
        torch.set_num_threads(threads)
        _WORKER = None
        if pool is not None:
            pool.terminate()
            pool.join()
    source_info = {"file": source.name, "bytes": source.stat().st_size, "sha256": hasher.hexdigest()}
    manifest = shard_manifest(out, run, settings, il.vocab, source_info)
    write_atomic(manifest_path, json_bytes(manifest))
    return manifest


def _ordered(pool: Any, items: Iterator[tuple[int, bytes]], workers: int) -> Iterator[Any]:
    """Results in input order, with a bounded number of lines in flight."""
    batch: list[tuple[int, bytes]] = []
    for item in items:
        batch.append(item)
        if len(batch) == workers * BATCH_PER_WORKER:
            yield from pool.imap(_tokenize, batch, chunksize=4)
            batch = []
    if batch:
        yield from pool.imap(_tokenize, batch, chunksize=4)
