"""Worker processes for the local engine: chunks of numbered documents in, their results back in order.

A sliding window of chunks is in flight (every worker stays busy, memory stays
bounded). A worker process that dies (the out-of-memory killer, a crash in a
decoder) breaks the pool: the run stops with one
:class:`~mmtok.core.errors.EngineError` saying how it ended and which lines were
in flight, instead of waiting for results that never come. An error a worker
hands back on purpose (:func:`carried`) is raised in this process with the
worker's traceback as its cause, which ``--debug`` shows.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from mmtok.core.errors import EngineError

__all__ = ["Carried", "WorkerTraceback", "carried", "chunks", "ordered", "raise_carried", "start_pool", "stop_pool"]

JOIN_SECONDS = 5.0  # how long the other workers of a broken pool may take to end, before how one died is read

T = TypeVar("T")
Item = tuple[int, Any]  # (line, document)
Carried = tuple[BaseException, str]  # an error a worker hands back, with its traceback as text


class WorkerTraceback(Exception):
    """The traceback of an error raised in a worker process, as text: the cause of the error raised here."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def carried(e: BaseException) -> Carried:
    """``e`` with its traceback as text, to hand back from a worker (the traceback does not pickle)."""
    return e, "".join(traceback.format_exception(type(e), e, e.__traceback__))


def raise_carried(error: Carried) -> None:
    """Raise an error a worker handed back (:func:`carried`), its traceback as the cause."""
    e, text = error
    raise e from WorkerTraceback(f"\n{text}")


def chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def start_pool(workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, forked where the OS can (they inherit what this process loaded)."""
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs)
    pool.submit(int)  # forks every worker now, before the caller starts threads of its own (a progress bar's)
    # kept here: once the pool breaks, concurrent.futures may forget its processes before their exit codes are read
    pool._mmtok_workers = list((getattr(pool, "_processes", None) or {}).values())  # type: ignore[attr-defined]
    return pool


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """End the pool's workers now, whatever they are doing, and wait for them."""
    for p in _processes(pool):
        if p.is_alive():
            p.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def ordered(pool: ProcessPoolExecutor, fn: Callable[[list[Item]], T], parts: Iterable[list[Item]], window: int,
            corpus: object) -> Iterator[T]:
    """``fn(chunk)`` for each chunk of ``parts``, computed by the pool with at most ``window`` chunks in flight,
    in order; a worker that dies is an :class:`EngineError` naming ``corpus`` and the lines in flight."""
    pending: deque[tuple[Future[T], int, int]] = deque()  # (future, its first line, its last)
    for chunk in parts:
        try:
            future = pool.submit(fn, chunk)
        except BrokenProcessPool as e:  # broken already: what was done comes first, then the error
            while pending:
                yield _next(pool, pending, corpus)
            raise _broken(pool, e, chunk[0][0], chunk[-1][0], corpus) from e
        pending.append((future, chunk[0][0], chunk[-1][0]))
        if len(pending) >= window:
            yield _next(pool, pending, corpus)
    while pending:
        yield _next(pool, pending, corpus)


def _next(pool: ProcessPoolExecutor, pending: deque[tuple[Future[T], int, int]], corpus: object) -> T:
    future, first, _ = pending[0]
    try:
        done = future.result()
    except BrokenProcessPool as e:
        raise _broken(pool, e, first, pending[-1][2], corpus) from e
    pending.popleft()
    return done


def _broken(pool: ProcessPoolExecutor, e: BrokenProcessPool, first: int, last: int, corpus: object) -> EngineError:
    """The error that stops a run whose pool broke while lines ``first`` to ``last`` were in flight."""
    lines = f"line {first}" if first == last else f"lines {first}-{last}"
    what = (f"a worker process died ({_how_one_ended(pool)})" if e.__cause__ is None else
            f"a worker process's result could not be read back ({_last_line(e.__cause__)})")
    return EngineError(f"{corpus}: {what} while {lines} were being tokenized; the shards already committed are "
                       "kept: rerun the same command to resume (with fewer --workers, workers=, if memory ran out)")


def _processes(pool: ProcessPoolExecutor) -> list[Any]:
    """The pool's worker processes (``multiprocessing.Process``); concurrent.futures keeps them by pid."""
    kept = list(getattr(pool, "_mmtok_workers", None) or [])  # forked at the start, and any started since (spawn)
    return kept + [p for p in (getattr(pool, "_processes", None) or {}).values() if p not in kept]


def _how_one_ended(pool: ProcessPoolExecutor) -> str:
    """How the worker that broke ``pool`` ended (a signal or an exit code): the one that did not end by the
    SIGTERM the pool sends the others once it is broken. Every worker is looked at again until one tells, for at
    most ``JOIN_SECONDS`` (the pool's own thread reaps them meanwhile: a look may come before its answer)."""
    deadline = time.monotonic() + JOIN_SECONDS
    while True:
        for p in _processes(pool):
            code = p.exitcode
            if code is None or code == -signal.SIGTERM:
                continue
            if code >= 0:
                return f"exit code {code}"
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = "an unknown signal"
            oom = ", as the out-of-memory killer ends a process" if name == "SIGKILL" else ""
            return f"killed by signal {-code}, {name}{oom}"
        if time.monotonic() >= deadline:
            return "how it ended is not known"
        time.sleep(0.02)


def _last_line(cause: BaseException) -> str:
    """The last line of a broken pool's cause (the remote traceback's exception), quotes stripped."""
    lines = str(cause).strip().strip("'").strip().splitlines()
    return lines[-1] if lines else type(cause).__name__
