"""Tokenize a JSONL corpus on a Ray cluster with Ray Data; the driver writes the same shards as the local engine.

Ray Data reads the corpus in ranges of lines (read tasks), tokenizes it in
``map_batches`` with :class:`TokenizeDocuments`, a callable class that loads the
tokenizers once per actor, and hands the results back in line order; the
driver (the process that called :func:`~mmtok.data.corpus.tokenize_corpus`)
feeds them to the shard writer. Shards are byte-identical to
``LocalEngine`` for the same corpus and ``shard_tokens``, and a killed driver
resumes like the local engine (committed shards stay; reading restarts after
the last one).

    >>> from mmtok.data import TokenizerSpec, tokenize_corpus
    >>> from mmtok.data.ray_engine import RayEngine
    >>> tokenize_corpus("docs.jsonl", "shards", engine=RayEngine())  # doctest: +SKIP

``RayEngine(address="ray://head:10001")`` (or ``"auto"`` on a cluster node)
joins a running cluster, whose workers must see the corpus and its media at
the same paths (a shared file system); without an address a local cluster
starts (``ray.init(num_cpus=2)``) and stops at the end. Needs ``pip install 'mmtok[ray]'``
(Ray with its data extras), checked before the corpus is scanned. A cluster
the engine starts or joins logs errors only; the caller's own Ray session and
its Ray Data settings are left as they were.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmtok.audio.io import SilenceWarning
from mmtok.core.errors import CorpusError, DocumentFailedError, EngineError
from mmtok.data.corpus import Result, tokenize_document
from mmtok.data.documents import Source, jsonl_documents, line_text
from mmtok.data.media_files import given_again, silence_collected
from mmtok.data.shard_ids import id_dtype
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver
from mmtok.stream.interleave import Interleaver
from mmtok.stream.vocab import Modality

__all__ = ["RayEngine", "TokenizeDocuments"]

LINES_PER_READ = 512  # JSONL lines per Ray Data read task, at most
TASKS_PER_ACTOR = 4  # blocks per actor, at least (small corpora too keep every actor busy)
BATCH_SIZE = 8  # documents per map_batches call
OBJECT_STORE_BYTES = 256 << 20  # a local cluster's object store
CONNECT_SECONDS = 10.0  # how long a --ray-address host:port may take to accept a connection
RAY_LOGGING = logging.ERROR  # what a cluster the engine starts or joins logs on the driver
EXCEPTION_LINE = re.compile(r"^([\w.]+(?:Error|Exception)): (.*)$")  # how a traceback's text names an exception
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the header of a remote traceback


class TokenizeDocuments:
    """A Ray Data ``map_batches`` callable: JSONL documents -> ids, loading the tokenizers once per actor.

    Input columns: ``line`` (int64, the JSONL line number), ``json`` (str, the
    line) and optionally ``skip_reason`` (str; rows where it is set, e.g. a line
    that is not UTF-8, pass through). Output columns: ``line``, ``ids`` (one
    array per row, uint16 or uint32 like the shards; empty when skipped),
    ``skip_reason`` (``""`` when tokenized), ``counts`` (int64, tokens per
    :class:`~mmtok.stream.vocab.Modality`; zeros when skipped) and ``silent`` (str: a JSON list of
    ``[message, path]`` of the row's digital-silence warnings, given again on the driver). ``base`` (required):
    the absolute folder relative media paths are read from, as every node sees it
    (on a cluster an actor's working folder is wherever ``ray start`` ran);
    ``allow_outside``: whether media paths may lead outside it; ``corpus``: the corpus's name, which the
    error that stops a run names with the line (:func:`~mmtok.data.corpus.tokenize_document`).

    >>> import numpy as np
    >>> tok = TokenizeDocuments(TokenizerSpec(), base="/data/corpus")
    >>> out = tok({"line": np.array([1, 2]), "json": np.array(['{"segments": ["hi"]}', "{"], dtype=object)})
    >>> out["ids"][0].tolist(), out["counts"][0].tolist()
    ([257, 104, 105, 258], [2, 2, 0, 0, 0])
    >>> out["skip_reason"][1]
    'invalid JSON (Expecting property name enclosed in double quotes at column 2)'
    """

    def __init__(self, spec: TokenizerSpec, *, base: str | os.PathLike[str] | None = None,
                 allow_outside: bool = False, corpus: str | None = None) -> None:
        import torch

        if base is None:
            raise TypeError("TokenizeDocuments needs base=, the absolute folder relative media paths are read "
                            "from, as every node sees it (in Ray: fn_constructor_kwargs={'base': ...}); an actor's "
                            "working folder is wherever `ray start` ran")
        if not Path(base).is_absolute():
            raise ValueError(f"TokenizeDocuments: base={os.fspath(base)!r} is not an absolute path; on a cluster a "
                             "relative one resolves against each actor's working folder: pass the corpus folder's "
                             "absolute path")
        torch.set_num_threads(1)  # as the local engine's workers: ids never depend on thread timing
        self.il: Interleaver = build_interleaver(spec)
        self.base = Path(base)
        self.allow_outside = allow_outside
        self.corpus = corpus
        self.dtype = id_dtype(self.il.vocab.size)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        lines = np.asarray(batch["line"], dtype=np.int64)
        given = batch.get("skip_reason")
        ids = np.empty(lines.size, dtype=object)
        reasons = np.empty(lines.size, dtype=object)
        counts = np.zeros((lines.size, len(Modality)), dtype=np.int64)
        silent = np.empty(lines.size, dtype=object)  # JSON strings: Ray joins object columns of lists lossily
        for k, (line, doc) in enumerate(zip(lines.tolist(), batch["json"], strict=True)):
            reason = str(given[k]) if given is not None else ""
            with silence_collected() as heard:  # given again on the driver, as the local engine's workers do
                _, out, info = (line, None, reason) if reason else tokenize_document(
                    self.il, line, str(doc), base=self.base, allow_outside=self.allow_outside, dtype=self.dtype,
                    corpus=self.corpus)
            silent[k] = json.dumps([[str(w), w.path] for w in heard])
            if out is None:
                ids[k], reasons[k] = np.zeros(0, self.dtype), str(info)
            else:
                ids[k], reasons[k], counts[k] = out, "", info
        return {"line": lines, "ids": ids, "skip_reason": reasons, "counts": counts, "silent": silent}


def _silence(column: str) -> list[SilenceWarning]:
    """The silence warnings of one document, from the JSON string :class:`TokenizeDocuments` gives them as."""
    found = []
    for message, path in json.loads(column or "[]"):
        w = SilenceWarning(message)
        w.path = path
        found.append(w)
    return found


def _line_ranges(path: Path, first: int, tasks: int) -> list[dict[str, Any]]:
    """Byte ranges of lines from line ``first`` on: about ``tasks`` of them, at most ``LINES_PER_READ`` lines each."""
    with open(path, "rb") as f:
        total = sum(1 for _ in f)
    per = max(1, min(LINES_PER_READ, -(-max(total - first + 1, 0) // tasks)))
    ranges: list[dict[str, Any]] = []
    start, start_line, offset, count = -1, 0, 0, 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number >= first:
                if start < 0:
                    start, start_line = offset, number
                count += 1
                if count == per:
                    ranges.append({"start": start, "end": offset + len(raw), "first": start_line})
                    start, count = -1, 0
            offset += len(raw)
    if start >= 0:
        ranges.append({"start": start, "end": offset, "first": start_line})
    return ranges


def _lines(data: bytes) -> Iterator[bytes]:
    """``data``'s lines, each with its ``b"\\n"``, split as the local engine's file iteration splits them: on
    ``b"\\n"`` alone (``bytes.splitlines`` also splits on ``\\r`` and others, which JSON allows inside a line)."""
    return iter(io.BytesIO(data))


def _read_range(item: dict[str, Any], *, path: str, part: tuple[int, int]) -> list[dict[str, Any]]:
    """A read task: the documents of one byte range (blank lines and other parts left out)."""
    with open(path, "rb") as f:
        f.seek(int(item["start"]))
        data = f.read(int(item["end"]) - int(item["start"]))
    return [_row(number, raw) for number, raw in jsonl_documents(_lines(data), start=int(item["first"]), part=part)]


def _row(number: int, raw: bytes) -> dict[str, Any]:
    """A read task's row for JSONL line ``number``: its text, or why it cannot be read (not UTF-8)."""
    try:
        return {"line": number, "json": line_text(raw, number), "skip_reason": ""}
    except ValueError as e:
        return {"line": number, "json": "", "skip_reason": str(e)}


def _reachable(address: str, timeout: float = CONNECT_SECONDS) -> bool:
    """Refuse in one line a ``host:port`` (or ``ray://host:port``) cluster address that takes no connection
    within ``timeout`` seconds: Ray itself retries an unreachable one for minutes. True when something
    answered; False for ``auto`` and addresses without a port, which are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return False
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise CorpusError(f"no Ray cluster at {address!r} (--ray-address): nothing answers at {host}:{port} "
                          f"({e.strerror or type(e).__name__}); start one (ray start --head) or leave "
                          "--ray-address out for a local one") from None
    return True


def _ray() -> Any:
    """The ``ray`` module with Ray Data (whose import brings its data extras: pandas, pyarrow), or a
    :class:`CorpusError` saying how to install them."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise CorpusError(f"the Ray engine needs ray[data]: pip install 'mmtok[ray]' ({e})") from None
    return ray


@dataclass(frozen=True)
class RayEngine:
    """Tokenize with Ray Data: on the cluster at ``address``, or on a local one of ``num_cpus`` CPUs.

    ``actors``: how many :class:`TokenizeDocuments` actors (one CPU each; default:
    the cluster's CPUs).
    """

    address: str | None = None
    num_cpus: int = 2
    actors: int | None = None

    def check(self, source: Source) -> None:
        """Refuse a corpus that is not JSONL, and a Python without Ray's data extras."""
        if source.layout != "jsonl":
            raise CorpusError(f"the Ray engine reads JSONL corpora; {source.path} is {source.layout}: "
                              "tokenize it with the local engine")
        _ray()

    def results(self, source: Source, spec: TokenizerSpec, *, first: int, part: tuple[int, int],
                il: Interleaver, dtype: np.dtype) -> Iterator[Result]:
        self.check(source)
        ray = _ray()
        started = self._connect(ray)
        return self._results(ray, source, spec, first, part, started)

    def _connect(self, ray: Any) -> bool:
        """Start a local cluster or join the one at ``address``, unless Ray is initialised already; whether it did."""
        if ray.is_initialized():
            return False
        if not self.address:
            ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                     object_store_memory=OBJECT_STORE_BYTES, logging_level=RAY_LOGGING)
            return True
        answered = _reachable(self.address)
        try:
            ray.init(address=self.address, log_to_driver=False, logging_level=RAY_LOGGING)
        except ValueError as e:  # a ray:// address without Ray Client's packages
            raise CorpusError(f"--ray-address {self.address}: {str(e).split('. ')[0]}") from None
        except Exception as e:  # ConnectionError, or Ray's AuthenticationError: Ray's reason is in its text
            raise _join_error(self.address, e, answered) from None
        return True

    def _results(self, ray: Any, source: Source, spec: TokenizerSpec, first: int, part: tuple[int, int],
                 started: bool) -> Iterator[Result]:
        try:
            with _settings(ray, quiet=started):
                actors = self.actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
                ranges = _line_ranges(source.path, first, TASKS_PER_ACTOR * actors)
                if not ranges:
                    return
                ds = ray.data.from_items(ranges, override_num_blocks=len(ranges)).flat_map(
                    _read_range, fn_kwargs={"path": str(source.path.resolve()), "part": part}, num_cpus=0,
                    **_one_task_at_a_time(ray))
                ds = ds.map_batches(TokenizeDocuments, fn_constructor_args=(spec,),
                                    fn_constructor_kwargs={"base": str(source.base),
                                                           "allow_outside": source.allow_outside,
                                                           "corpus": str(source.path)},
                                    batch_size=BATCH_SIZE, batch_format="numpy",
                                    compute=ray.data.ActorPoolStrategy(size=min(actors, len(ranges))),
                                    num_cpus=1)
                for batch in _batches(ds):
                    rows = zip(batch["line"].tolist(), batch["ids"], batch["skip_reason"], batch["counts"],
                               batch["silent"], strict=True)
                    yield from given_again(((line, None, str(reason)) if reason else
                                            (line, np.asarray(ids), np.asarray(counts)), _silence(heard))
                                           for line, ids, reason, counts, heard in rows)
        finally:
            if started:
                ray.shutdown()


def _one_task_at_a_time(ray: Any) -> dict[str, Any]:
    """The read tasks' concurrency: ``compute=TaskPoolStrategy(size=1)`` where Ray Data has it (``concurrency``
    is deprecated from Ray 2.51), ``concurrency=1`` before."""
    pool = getattr(ray.data, "TaskPoolStrategy", None)
    return {"compute": pool(size=1)} if pool is not None else {"concurrency": 1}


@contextlib.contextmanager
def _settings(ray: Any, *, quiet: bool) -> Iterator[None]:
    """Ray Data set for the engine (results in order, no progress bars; with ``quiet``, its console logs errors
    only), and set back as they were afterwards."""
    ctx = ray.data.DataContext.get_current()
    saved = ctx.execution_options.preserve_order, ctx.enable_progress_bars
    console = [h for h in logging.getLogger("ray.data").handlers
               if quiet and isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    levels = [h.level for h in console]
    try:
        ctx.execution_options.preserve_order = True  # results come back in line order
        ctx.enable_progress_bars = False
        for h in console:
            h.setLevel(max(h.level, RAY_LOGGING))
        yield
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
        for h, level in zip(console, levels, strict=True):
            h.setLevel(level)


def _batches(ds: Any) -> Iterator[dict[str, np.ndarray]]:
    """The dataset's batches; what an actor raised comes back as one line: a CorpusError as itself (raised from
    Ray's error, whose text holds the actor's traceback), anything else as its type and message, with where Ray
    Data logged its traceback."""
    try:
        yield from ds.iter_batches(batch_size=None, batch_format="numpy")
    except CorpusError:
        raise
    except Exception as e:  # Ray wraps what an actor raised; the original's text is in the message
        name, message = _raised(str(e)) or (type(e).__name__, "")
        if name in ("CorpusError", "DocumentFailedError"):
            raise (CorpusError if name == "CorpusError" else DocumentFailedError)(message) from e
        raise EngineError(f"the Ray engine failed: {name}: {message} (traceback: {_traceback_log()})") from e


def _raised(text: str) -> tuple[str, str] | None:
    """The exception a Ray error's text names last, preferring one that is not Ray's own wrapper:
    ``(name, message)`` with the name unqualified and colour codes stripped; None when it names none.

    >>> _raised('\\x1b[36mray::MapWorker.submit()\\x1b[39m (pid=1)\\n  File "x.py"\\nKeyError: "zz"\\n\\n'
    ...         'ray.exceptions.UserCodeException: UDF failed to process a data block.')
    ('KeyError', '"zz"')
    """
    found = [m.groups() for line in ANSI_CODE.sub("", text).splitlines() if (m := EXCEPTION_LINE.match(line))]
    theirs = [(name, message) for name, message in found if not name.startswith("ray.")]
    if not (theirs or found):
        return None
    name, message = (theirs or found)[-1]
    return name.rpartition(".")[2], message.strip()


def _traceback_log() -> str:
    """Where Ray Data logged the traceback of a failed task: its log file on this node."""
    try:
        from ray.data._internal.logging import get_log_directory

        folder = get_log_directory()
    except ImportError:
        folder = None
    return os.path.join(folder, "ray-data.log") if folder else "ray-data.log in the Ray session's logs folder"


def _join_error(address: str, e: Exception, answered: bool) -> CorpusError:
    """Why the cluster at ``address`` could not be joined, in Ray's words (its ConnectionError keeps the reason,
    e.g. an AuthenticationError, in the error it was raised from); how to start one only when nothing answered."""
    reason = str(e).split(". ")[0]
    cause = _raised(str(e.__cause__)) if e.__cause__ is not None else None
    if cause is not None:
        reason += f" ({cause[0]}: {cause[1].split('. ')[0]})"
    if answered:
        return CorpusError(f"the Ray cluster at {address!r} (--ray-address) answers but cannot be joined: {reason}")
    return CorpusError(f"no Ray cluster at {address!r} (--ray-address): {reason}; start one (ray start --head) or "
                       "leave --ray-address out for a local one")
