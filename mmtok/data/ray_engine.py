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
starts (``ray.init(num_cpus=2)``) and stops at the end. Needs ``pip install 'mmtok[ray]'``.
"""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmtok.core.errors import CorpusError
from mmtok.data.corpus import Result, TokenizerSpec, build_interleaver, modality_counts
from mmtok.data.documents import Source, document_stream, strip_bom, utf8_reason
from mmtok.data.shard_ids import id_dtype
from mmtok.stream.interleave import Interleaver

__all__ = ["RayEngine", "TokenizeDocuments"]

LINES_PER_READ = 512  # JSONL lines per Ray Data read task, at most
TASKS_PER_ACTOR = 4  # blocks per actor, at least (small corpora too keep every actor busy)
BATCH_SIZE = 8  # documents per map_batches call
OBJECT_STORE_BYTES = 256 << 20  # a local cluster's object store
CONNECT_SECONDS = 10.0  # how long a --ray-address host:port may take to accept a connection


class TokenizeDocuments:
    """A Ray Data ``map_batches`` callable: JSONL documents -> ids, loading the tokenizers once per actor.

    Input columns: ``line`` (int64, the JSONL line number), ``json`` (str, the
    line) and optionally ``skip_reason`` (str; rows where it is set, e.g. a line
    that is not UTF-8, pass through). Output columns: ``line``, ``ids`` (one
    array per row, uint16 or uint32 like the shards; empty when skipped) and
    ``skip_reason`` (``""`` when tokenized). ``base``: the folder relative media
    paths resolve against (default: the working directory); ``allow_outside``:
    whether they may lead outside it.

    >>> import numpy as np
    >>> tok = TokenizeDocuments(TokenizerSpec())
    >>> out = tok({"line": np.array([1, 2]), "json": np.array(['{"segments": ["hi"]}', "{"], dtype=object)})
    >>> out["ids"][0].tolist(), out["skip_reason"][1]
    ([257, 104, 105, 258], 'invalid JSON (Expecting property name enclosed in double quotes at column 2)')
    """

    def __init__(self, spec: TokenizerSpec, *, base: str | os.PathLike[str] | None = None,
                 allow_outside: bool = False) -> None:
        import torch

        torch.set_num_threads(1)  # as the local engine's workers: ids never depend on thread timing
        self.il: Interleaver = build_interleaver(spec)
        self.base = Path(base) if base is not None else Path.cwd()
        self.allow_outside = allow_outside
        self.dtype = id_dtype(self.il.vocab.size)

    def _one(self, line: int, doc: str) -> tuple[np.ndarray, str]:
        stream = document_stream(doc, self.il, self.base, line, allow_outside=self.allow_outside)
        if isinstance(stream, str):
            return np.zeros(0, self.dtype), stream
        return stream.ids.numpy().astype(self.dtype), ""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        lines = np.asarray(batch["line"], dtype=np.int64)
        given = batch.get("skip_reason")
        ids = np.empty(lines.size, dtype=object)
        reasons = np.empty(lines.size, dtype=object)
        for k, (line, doc) in enumerate(zip(lines.tolist(), batch["json"], strict=True)):
            reason = str(given[k]) if given is not None else ""
            ids[k], reasons[k] = (np.zeros(0, self.dtype), reason) if reason else self._one(line, str(doc))
        return {"line": lines, "ids": ids, "skip_reason": reasons}


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
    i, n = part
    rows = []
    for number, raw in enumerate(_lines(data), start=int(item["first"])):
        if (number - 1) % n != i or not raw.strip():
            continue
        raw = strip_bom(raw, number)
        reason = utf8_reason(raw)
        rows.append({"line": number, "json": "" if reason else raw.decode("utf-8"), "skip_reason": reason})
    return rows


def _reachable(address: str, timeout: float = CONNECT_SECONDS) -> None:
    """Refuse in one line a ``host:port`` (or ``ray://host:port``) cluster address that takes no connection
    within ``timeout`` seconds: Ray itself retries an unreachable one for minutes. ``auto`` and addresses
    without a port are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise CorpusError(f"no Ray cluster at {address!r} (--ray-address): nothing answers at {host}:{port} "
                          f"({e.strerror or type(e).__name__}); start one (ray start --head) or leave "
                          "--ray-address out for a local one") from None


@dataclass(frozen=True)
class RayEngine:
    """Tokenize with Ray Data: on the cluster at ``address``, or on a local one of ``num_cpus`` CPUs.

    ``actors``: how many :class:`TokenizeDocuments` actors (one CPU each; default:
    the cluster's CPUs).
    """

    address: str | None = None
    num_cpus: int = 2
    actors: int | None = None

    def results(self, source: Source, spec: TokenizerSpec, *, first: int, part: tuple[int, int],
                il: Interleaver, dtype: np.dtype) -> Iterator[Result]:
        if source.layout != "jsonl":
            raise CorpusError(f"the Ray engine reads JSONL corpora; {source.path} is {source.layout}: "
                              "tokenize it with the local engine")
        try:
            import ray
        except ImportError:
            raise CorpusError("the Ray engine needs Ray: pip install 'mmtok[ray]'") from None
        started = not ray.is_initialized()
        if started and self.address:
            _reachable(self.address)
            try:
                ray.init(address=self.address, log_to_driver=False)
            except ValueError as e:  # a ray:// address without Ray Client's packages
                raise CorpusError(f"--ray-address {self.address}: {str(e).split('. ')[0]}") from None
            except ConnectionError as e:  # Ray's own words name its flag (--address), not ours
                raise CorpusError(f"no Ray cluster at {self.address!r} (--ray-address): {str(e).split('. ')[0]}; "
                                  "start one (ray start --head) or leave --ray-address out for a local one") from None
        elif started:
            ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                     object_store_memory=OBJECT_STORE_BYTES)
        return self._results(ray, source, spec, first, part, il, started)

    def _results(self, ray: Any, source: Source, spec: TokenizerSpec, first: int, part: tuple[int, int],
                 il: Interleaver, started: bool) -> Iterator[Result]:
        try:
            ctx = ray.data.DataContext.get_current()
            ctx.execution_options.preserve_order = True  # results come back in line order
            ctx.enable_progress_bars = False
            actors = self.actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
            ranges = _line_ranges(source.path, first, TASKS_PER_ACTOR * actors)
            if not ranges:
                return
            ds = ray.data.from_items(ranges, override_num_blocks=len(ranges)).flat_map(
                _read_range, fn_kwargs={"path": str(source.path.resolve()), "part": part}, num_cpus=0, concurrency=1)
            ds = ds.map_batches(TokenizeDocuments, fn_constructor_args=(spec,),
                                fn_constructor_kwargs={"base": str(source.base), "allow_outside": source.allow_outside}, batch_size=BATCH_SIZE,
                                batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1)
            for batch in _batches(ds):
                for line, ids, reason in zip(batch["line"].tolist(), batch["ids"], batch["skip_reason"], strict=True):
                    if reason:
                        yield line, None, str(reason)
                    else:
                        ids = np.asarray(ids)
                        yield line, ids, modality_counts(il, ids)
        finally:
            if started:
                ray.shutdown()


def _batches(ds: Any) -> Iterator[dict[str, np.ndarray]]:
    """The dataset's batches; a CorpusError raised by an actor comes back as a CorpusError."""
    try:
        yield from ds.iter_batches(batch_size=None, batch_format="numpy")
    except CorpusError:
        raise
    except Exception as e:  # Ray wraps what an actor raised; the original's text is in the message
        lines = str(e).splitlines()
        ours = [ln.split("CorpusError: ", 1)[1] for ln in lines if "CorpusError: " in ln]
        if ours:
            raise CorpusError(ours[-1].strip()) from None
        raise CorpusError(f"the Ray engine failed: {lines[0] if lines else type(e).__name__}") from e
