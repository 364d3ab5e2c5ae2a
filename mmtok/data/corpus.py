"""A corpus of interleaved documents -> token shards on disk, resumably, by a local or a Ray engine.

Input is JSONL, one document per line (or the OBELICS layout in a ``.parquet``
file or a ``datasets`` folder, see :mod:`mmtok.data.documents`)::

    {"segments": [{"text": "..."}, {"image": "rel/path.jpg"}, {"audio": "rel/clip.wav"}]}

(``{"video": path}`` too, given a video tokenizer, optionally with ``"soundtrack"``
and ``"chunk_seconds"``: with an audio tokenizer too, a file's sound follows its
frames; relative media paths resolve against the JSONL file's folder; blank
lines are not documents and are ignored). Output, in ``out``::

    shard-00000.bin    the ids of whole documents, back to back (uint16 when the
                       vocabulary fits, else uint32; read with np.memmap)
    shard-00000.json   its index: document offsets and line numbers, token counts
                       per modality, skipped lines, silent audio read, the .bin's sha256
    manifest.json      vocabulary and fingerprint, tokenizers (a checkpoint folder
                       as its absolute path), totals, every skipped document
                       with its line number and reason, how many sounds are silent

A shard closes after the document that brings it to ``shard_tokens`` tokens, so
shard boundaries depend only on the corpus and the settings, never on
``workers`` or the engine (:class:`LocalEngine`, or
:class:`mmtok.data.ray_engine.RayEngine` on a Ray cluster). Each shard is committed atomically (temporary files, fsync, rename;
the index is renamed last and is the commit). Running the same call again after
a crash or ``kill -9`` keeps the committed shards and continues after the last
one: the final files are byte-identical to an uninterrupted run. Documents are
tokenized with one thread per worker so the ids never depend on thread timing.
A tokenizer that raises what is no reason to skip a document (a ``KeyError``,
its own exception class) stops the run with a :class:`CorpusError` naming the
corpus, line and segment (:func:`tokenize_document`), in every engine; a worker
process that dies stops it with an :class:`~mmtok.core.errors.EngineError`
naming the lines in flight (:mod:`mmtok.data.worker_pool`).

With ``part=(i, n)`` (or under ``torchrun``: ``RANK``/``WORLD_SIZE``) lines
``i, i+n, i+2n, ...`` (0-based) go to ``out/part-0000i-of-0000n/`` in the same layout.

A resume is keyed on the corpus's content (its sha256, recorded in every shard
index and the manifest), so a corpus edited between a kill and the resume is
refused rather than mixed (a corpus that changes while it is tokenized gets no manifest), and on the
tokenizers' identities (the vocabulary's
fingerprint), not their spelling (:mod:`mmtok.data.run_key`); ``restart=True``
(``--restart``) discards the folder's shards and starts over. Without a
:class:`TokenizerSpec` a pre-scan of every line's segment keys decides which
shipped media tokenizers load. Tokenizers
named ``module:callable`` are imported only when the caller passes them, never
when a spec is read back from a file (:meth:`TokenizerSpec.from_file_record`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch

from mmtok.audio.io import SilenceWarning
from mmtok.core.errors import CorpusError, DocumentFailedError
from mmtok.core.files import write_atomic
from mmtok.core.threads import one_intra_op_thread
from mmtok.core.warning_filters import user_stacklevel
from mmtok.data.documents import Source, document_stream, media_kinds, open_source
from mmtok.data.media_files import few, given_again, silence_collected
from mmtok.data.outdir import claimed, finished_manifest, read_only
from mmtok.data.run_key import (
    READING_KEY,
    TOKENIZERS_KEY,
    recorded_key,
    run_differences,
    run_id,
    run_key,
    tokenizer_record,
)
from mmtok.data.shard_ids import id_dtype
from mmtok.data.shards import (
    MANIFEST,
    ShardWriter,
    check_one_layout,
    committed_shards,
    json_bytes,
    shard_manifest,
)
from mmtok.data.strict import check_documents, none_skipped
from mmtok.data.tokenizer_spec import (
    TokenizerSpec,
    build_interleaver,
    detect_tokenizers,
)
from mmtok.data.worker_pool import (
    Carried,
    carried,
    chunks,
    ordered,
    raise_carried,
    start_pool,
    stop_pool,
)
from mmtok.stream.interleave import Interleaver
from mmtok.stream.normalize import failed_segment
from mmtok.stream.vocab import Modality

__all__ = ["Engine", "LocalEngine", "Result", "nothing_tokenized", "part_folder", "tokenize_corpus", "tokenize_document"]

DEFAULT_SHARD_TOKENS = 1 << 24  # ~16.8 M tokens: 32 MiB per uint16 shard
CHUNK_LINES = 4  # documents per task sent to a worker
CHUNKS_PER_WORKER = 8  # tasks in flight per worker (bounds memory, keeps every worker busy)
SILENT_KEY = "silent_audio"  # an index's {"line", "file"} per audio file of digital silence read; the manifest's count
SILENT_NAMED = 5  # silent files named on the warning at the end of a run

Result = tuple[int, "np.ndarray | None", "np.ndarray | str"]  # (line, ids, tokens per modality) or (line, None, reason)


def part_folder(out: str | os.PathLike[str], part: tuple[int, int]) -> Path:
    """Where part ``i`` of ``n`` writes (``out`` itself when ``n == 1``)."""
    i, n = part
    return Path(out) if n == 1 else Path(out) / f"part-{i:05d}-of-{n:05d}"


def nothing_tokenized(manifest: dict[str, Any], corpus: str | os.PathLike[str]) -> str | None:
    """One line saying that a run's manifest holds no document of ``corpus``, every one it read skipped, with the
    most common reason; None when it holds some, or skipped none (a part given no document of a short corpus).

    >>> nothing_tokenized({"docs": 0, "skipped": [{"line": 1, "reason": "invalid JSON"}]}, "d.jsonl")
    'd.jsonl: no document was tokenized, all 1 were skipped; the most common reason (1 of 1, first at d.jsonl:1): invalid JSON'
    """
    skipped = manifest.get("skipped") or []
    if manifest.get("docs") or not skipped:
        return None
    (reason, count), = Counter(s["reason"] for s in skipped).most_common(1)  # a tie: the reason met first
    first = next(s["line"] for s in skipped if s["reason"] == reason)
    return (f"{corpus}: no document was tokenized, all {len(skipped):,} were skipped; the most common reason "
            f"({count:,} of {len(skipped):,}, first at {corpus}:{first}): {reason}")


# --------------------------------------------------------------------------- engines


class Engine(Protocol):
    """Tokenizes a source's documents, yielding one :data:`Result` per document in document order.

    ``first`` is the first document number still to do (resume), ``part`` the
    ``(i, n)`` slice of documents (numbers ``i+1, i+1+n, ...``) this run owns.
    :meth:`check` runs first, before the corpus is scanned or a tokenizer loads.
    """

    def check(self, source: Source) -> None:
        """Refuse (:class:`~mmtok.core.errors.CorpusError`) a source or a setup this engine cannot run."""

    def results(self, source: Source, spec: TokenizerSpec, *, first: int, part: tuple[int, int],
                il: Interleaver, dtype: np.dtype) -> Iterator[Result]: ...


def tokenize_document(il: Interleaver, line: int, doc: Any, *, base: Path, allow_outside: bool,
                      dtype: np.dtype, corpus: str | os.PathLike[str] | None = None) -> Result:
    """Document ``line``'s :data:`Result`: ``(line, ids, tokens per modality)``, or ``(line, None, reason)`` when
    it is skipped (:func:`~mmtok.data.documents.document_stream`). Every engine's workers call it.

    An exception that is no reason to skip the document (a tokenizer's ``KeyError`` or its own class, a
    ``MemoryError``, a mistake in mmtok) stops the run: a :class:`CorpusError` (which pickles, whatever the
    exception's class) naming ``corpus`` and the line, the segment whose tokenizer raised it, and the exception,
    raised from it: ``docs.jsonl:8: segment 1 (image /data/camera.png): KeyError: 'layer7' (...)``.

    >>> from mmtok.stream.interleave import Interleaver
    >>> line, ids, counts = tokenize_document(Interleaver(None), 1, b'{"segments": ["hi"]}', base=Path("."),
    ...                                       allow_outside=False, dtype=np.dtype("uint16"))
    >>> ids.tolist(), counts.tolist()  # tokens per Modality: text, special, image, audio, video
    ([257, 104, 105, 258], [2, 2, 0, 0, 0])
    """
    try:
        stream = document_stream(doc, il, base, line, allow_outside=allow_outside)
    except CorpusError:
        raise
    except Exception as e:  # no reason to skip: said with the line, and the run stops
        raise DocumentFailedError(_fault(e, f"{corpus}:{line}" if corpus is not None else f"line {line}")) from e
    if isinstance(stream, str):
        return line, None, stream
    return line, stream.ids.numpy().astype(dtype), np.bincount(stream.modality.numpy(), minlength=len(Modality))


def _fault(e: Exception, where: str) -> str:
    """The message of an exception that stops the run at ``where`` (``docs.jsonl:8``), on one line."""
    segment = failed_segment(e)
    text = " ".join(str(e).split())
    said = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return (f"{where}: {segment + ': ' if segment else ''}{said} (not a reason to skip the document, so the run "
            "stops; the shards already committed are kept; --debug or MMTOK_DEBUG=1 shows the traceback)")


# --------------------------------------------------------------------------- the local engine


_WORKER: tuple[Interleaver, Source, np.dtype] | None = None


def _tokenize(item: tuple[int, Any]) -> Result:
    """(line, ids, tokens per modality) or (line, None, reason) for one document."""
    assert _WORKER is not None
    il, source, dtype = _WORKER
    line, raw = item
    return tokenize_document(il, line, raw, base=source.base, allow_outside=source.allow_outside, dtype=dtype,
                             corpus=source.path)


def _tokenize_chunk(chunk: list[tuple[int, Any]]) -> tuple[list[tuple[Result, list[SilenceWarning]]], Carried | None]:
    """Each document's :data:`Result` with the silence warnings reading it gave, for the writer's process, up to
    one that stops the run: its error comes back too, for the writer to raise after the documents before it."""
    done = []
    for item in chunk:
        try:
            with silence_collected() as silent:
                done.append((_tokenize(item), silent))
        except CorpusError as e:
            return done, carried(e)
    return done, None


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:  # the writer died (e.g. kill -9): do not linger
            os._exit(1)
        time.sleep(0.5)


def _init_worker(spec: TokenizerSpec, source: Source, dtype: str, parent: int | None) -> None:
    global _WORKER
    torch.set_num_threads(1)  # one intra-op thread per worker: N workers use N cores (ids do not depend on it)
    if parent is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if _WORKER is None or _WORKER[1] != source:
        _WORKER = (build_interleaver(spec), source, np.dtype(dtype))


@dataclass(frozen=True)
class LocalEngine:
    """Tokenize on this machine: in this process (``workers=1``) or a pool of forked worker processes.

    The tokenizers are loaded once, in this process, and inherited by the workers;
    each worker reads and decodes its documents' media itself and runs one
    intra-op thread, so ``workers`` processes use that many cores.
    """

    workers: int = 1

    def check(self, source: Source) -> None:
        """Every layout and setup: nothing to refuse."""

    def results(self, source: Source, spec: TokenizerSpec, *, first: int, part: tuple[int, int],
                il: Interleaver, dtype: np.dtype) -> Iterator[Result]:
        global _WORKER
        mine = source.items(first, part)
        if self.workers == 1:  # its own interleaver, never the module's: runs in other threads keep theirs
            return self._serial(mine, il, source, dtype)
        _WORKER = (il, source, dtype)  # inherited by forked workers (each checks it is its run's: _init_worker)
        pool = start_pool(self.workers, _init_worker, (spec, source, dtype.name, os.getpid()))
        return self._pooled(pool, mine, source)

    @staticmethod
    def _serial(mine: Iterator[tuple[int, Any]], il: Interleaver, source: Source,
                dtype: np.dtype) -> Iterator[Result]:
        # one thread, as each pooled worker runs (ids do not depend on it); runs in other threads hold it too
        with one_intra_op_thread():
            for line, raw in mine:
                yield tokenize_document(il, line, raw, base=source.base, allow_outside=source.allow_outside,
                                        dtype=dtype, corpus=source.path)

    def _pooled(self, pool: Any, mine: Iterator[tuple[int, Any]], source: Source) -> Iterator[Result]:
        """Results in line order from a sliding window of chunks: every worker stays busy, memory stays bounded."""
        global _WORKER
        try:
            for done, failed in ordered(pool, _tokenize_chunk, chunks(mine, CHUNK_LINES),
                                        self.workers * CHUNKS_PER_WORKER, source.path):
                yield from given_again(done)
                if failed is not None:
                    raise_carried(failed)
        finally:
            _WORKER = None
            stop_pool(pool)


# --------------------------------------------------------------------------- the driver


def _env_part() -> tuple[int, int]:
    """The part ``(RANK, WORLD_SIZE)`` a launcher's environment gives (both set), else the whole corpus."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        rank, world = os.environ["RANK"].strip(), os.environ["WORLD_SIZE"].strip()
        if not (rank.isdigit() and world.isdigit()):
            raise CorpusError(f"the environment's RANK={os.environ['RANK']!r} and WORLD_SIZE="
                              f"{os.environ['WORLD_SIZE']!r} must be whole numbers (they give the part, as --part "
                              "RANK/WORLD_SIZE would)")
        return int(rank), int(world)
    return 0, 1


def tokenize_corpus(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tokenizers: TokenizerSpec | None = None,
    workers: int = 1,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    part: tuple[int, int] | None = None,
    strict: bool = False,
    progress: bool = False,
    engine: Engine | None = None,
    restart: bool = False,
    allow_outside: bool = False,
    detect_media: bool | None = None,
) -> dict[str, Any]:
    """Tokenize a corpus into shards in ``out`` (resuming a killed run) and return the manifest.

    ``source``: a JSONL file, or an OBELICS-layout ``.parquet`` file or ``datasets``
    folder (:mod:`mmtok.data.documents`). Bad documents (invalid JSON, non-UTF-8
    lines, missing or corrupt media, media paths outside the corpus's folder
    unless ``allow_outside``) and empty ones (reason ``"no segments"``) are
    skipped and recorded; ``strict=True`` raises
    :class:`~mmtok.core.errors.CorpusError` naming the first one's line instead
    (shards committed before it stay). ``engine``: who tokenizes
    (default ``LocalEngine(workers)``; :class:`mmtok.data.ray_engine.RayEngine`
    for a Ray cluster); the shards are the same for every engine.
    ``tokenizers``: None loads the shipped tokenizer of each medium the corpus
    uses (``detect_media=True`` fills in the media a given spec leaves unset).
    ``restart=True`` discards what an earlier run left in ``out`` (a resume onto
    an edited corpus is refused).

    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "docs.jsonl").write_text('{"segments": [{"text": "hello"}]}\\nnot json\\n')
    >>> m = tokenize_corpus(d / "docs.jsonl", d / "shards")
    >>> m["docs"], m["tokens"]["total"], m["dtype"], m["skipped"][0]["line"]
    (1, 7, 'uint16', 2)
    >>> sorted(p.name for p in (d / "shards").iterdir())
    ['manifest.json', 'shard-00000.bin', 'shard-00000.json']
    """
    src = open_source(source, allow_outside=allow_outside)
    i, n = part if part is not None else _env_part()
    if not (n >= 1 and 0 <= i < n):
        raise CorpusError(f"part must be i/n with 0 <= i < n, got {i}/{n}")
    for name, value, means in (("workers", workers, "the processes that tokenize"),
                               ("shard_tokens", shard_tokens, "the tokens at which a shard closes")):
        if value < 1:
            raise CorpusError(f"{name} (--{name.replace('_', '-')}) must be at least 1 ({means}), got {value}")
    engine = engine or LocalEngine(workers)
    engine.check(src)
    kinds, docs = media_kinds(src)
    if docs == 0:
        raise CorpusError(f"{src.path} holds no documents (it is empty or only blank lines): nothing to tokenize")
    if detect_media if detect_media is not None else tokenizers is None:
        tokenizers = detect_tokenizers(kinds, tokenizers or TokenizerSpec())
    check_one_layout(Path(out), (i, n))
    spelt = tokenizers or TokenizerSpec()
    run = _Run(src, spelt.resolved(), spelt, engine, shard_tokens, (i, n), strict, progress)
    return _into_folder(part_folder(out, (i, n)), run, restart)


@dataclass(frozen=True)
class _Run:
    """What one tokenize call was asked to do."""

    source: Source
    tokenizers: TokenizerSpec  # resolved: what the engines load and the manifest records
    spelt: TokenizerSpec  # as the caller gave it (shards that hash the spelling: mmtok.data.run_key.run_id)
    engine: Engine
    shard_tokens: int
    part: tuple[int, int]
    strict: bool
    progress: bool


def _into_folder(folder: Path, run: _Run, restart: bool) -> dict[str, Any]:
    if not restart and (reason := read_only(folder)):  # its finished run is read back; nothing else can be done
        return _tokenize_into(run, folder, read_only=reason)
    with claimed(folder, restart=restart):
        return _tokenize_into(run, folder)


def _tokenize_into(job: _Run, out: Path, *, read_only: str | None = None) -> dict[str, Any]:
    source, tokenizers = job.source, job.tokenizers
    il = build_interleaver(tokenizers)
    dtype = id_dtype(il.vocab.size)
    reading = source.reading()
    settings = {"part": list(job.part), "shard_tokens": job.shard_tokens, "dtype": dtype.name,
                "tokenizers": asdict(tokenizers), **({READING_KEY: reading} if reading else {})}
    stamp, sha = source.stamp(), source.sha256()
    key = run_key(job.part, job.shard_tokens, dtype, sha, il.vocab, reading)
    done = finished_manifest(source.path, out, sha)
    if done is not None:
        if recorded_key(done) == key:
            if job.strict:
                none_skipped(source, done.get("skipped"), out)
            return done
        raise CorpusError(f"{out} already holds a finished run with other settings (saved vs now: "
                          f"{run_differences(done, settings, il.vocab)}); use another --out or --restart")
    if read_only:  # its manifest went meanwhile
        raise CorpusError(f"cannot tokenize into {out}: {read_only}, and it holds no finished run; make it "
                          "writable, or give another --out")

    run = run_id(out, key, asdict(job.spelt))
    made_by = tokenizer_record(il.vocab)
    done_shards = committed_shards(out, run, dtype=dtype, shard_tokens=job.shard_tokens, tokenizers=made_by,
                                   reading=reading)
    resume = done_shards[-1]["lines"][1] if done_shards else 1
    if job.strict:  # a bad document stops the run before any work, whichever run would meet it
        none_skipped(source, [s for ix in done_shards for s in ix.get("skipped", [])], out)
        check_documents(source, il, first=resume, part=job.part)
    writer = ShardWriter(out, run, dtype, job.shard_tokens, resume, len(done_shards),
                         extra={"source_sha256": sha, TOKENIZERS_KEY: made_by, **({READING_KEY: reading} if reading
                                                                                   else {})})
    results = job.engine.results(source, tokenizers, first=resume, part=job.part, il=il, dtype=dtype)
    with contextlib.closing(cast(Any, results)):
        _write(results, writer, source, job.strict, job.progress, resume)
    silent = list(dict.fromkeys(s["file"] for ix in committed_shards(out, run) for s in ix.get(SILENT_KEY, [])))
    source_info = {"file": source.name, "bytes": source.size, "sha256": sha}
    manifest = {**shard_manifest(out, run, settings, il.vocab, source_info), SILENT_KEY: len(silent)}
    _unchanged(source, stamp, sha, out)  # the manifest vouches for the corpus it records
    write_atomic(out / MANIFEST, json_bytes(manifest))
    if silent:
        warnings.warn(f"{len(silent)} audio file{'s are' if len(silent) > 1 else ' is'} digital silence once mixed to "
                      f"mono (every sample 0; tokenized as one code repeated): {few(silent, SILENT_NAMED)}",
                      stacklevel=user_stacklevel())
    return manifest


def _unchanged(source: Source, stamp: tuple[tuple[int, int, int], ...], sha: str, out: Path) -> None:
    """A :class:`CorpusError` when the corpus changed while it was tokenized (appended to, edited): its stamp
    differs from ``stamp`` and its bytes hash to another sha256 than ``sha``; the shards in ``out`` may then hold
    lines of both versions, so no manifest says they are of either."""
    if source.stamp() == stamp or (now := source.sha256()) == sha:
        return
    raise CorpusError(f"{source.path} changed while it was tokenized (its sha256 was {sha[:12]}... when the run "
                      f"began, {now[:12]}... now): the shards in {out} may mix both versions, so no manifest was "
                      "written; leave the corpus as it is while it is tokenized, and run again with --restart")


def _write(results: Iterator[Result], writer: ShardWriter, source: Source, strict: bool, progress: bool,
           resume: int) -> None:
    """Feed the results to the writer in order; commit what is left at the end. The silence warnings of the
    documents written are not shown: their shard's index lists them (:data:`SILENT_KEY`)."""
    from tqdm import tqdm

    tokens, start, last = 0, time.perf_counter(), resume - 1
    writer.extra[SILENT_KEY] = listed = []  # the open shard's, written into its index when it commits
    with tqdm(unit="doc", disable=not progress, desc=f"tokenize {source.name}") as bar, silence_collected() as found:
        for line, ids, info in results:
            last = line
            files, found[:] = [os.path.relpath(w.path, source.base) for w in found], []  # as the corpus names them
            if ids is None:
                if strict:
                    raise CorpusError(f"{source.path}:{line}: {info} (without --strict it would be skipped)")
                writer.skip(line, str(info))
                continue
            listed += [{"line": line, "file": f} for f in files]
            shard = writer.number
            writer.add(line, ids, cast(np.ndarray, info))
            if writer.number != shard:
                writer.extra[SILENT_KEY] = listed = []
            tokens += ids.size
            bar.update(1)
            bar.set_postfix(tok_s=f"{tokens / max(time.perf_counter() - start, 1e-9):,.0f}", refresh=False)
    if writer.pending:
        writer.commit(last + 1)
