"""tokenize with several workers: a worker process that dies, a tokenizer's exception that does not unpickle and one
that is no reason to skip a document each stop the run with one error naming the corpus line (or the lines in
flight), in every engine; the shards committed before stay and a rerun resumes. Runs that could hang run in a forked
process with a time limit, so a regression fails instead of hanging."""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing as mp
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mmtok.cli import main
from mmtok.core.errors import CorpusError, DocumentFailedError, exit_status
from mmtok.data import TokenizeDocuments, corpus
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.tokenizer_spec import TokenizerSpec
from mmtok.stream.interleave import Interleaver
from tests.test_interleave import PaletteImages

HERE = "tests.test_tokenize_workers_fixes"
KILL_ENV = "MMTOK_TEST_KILL_ON"  # the image file name whose encode kills its worker process
LIMIT_SECONDS = 120  # a run that takes longer hangs


class DyingImages(PaletteImages):
    """PaletteImages whose process dies by SIGKILL, as the out-of-memory killer ends it, on the image $KILL_ENV."""

    def encode(self, img: Any) -> Any:
        if os.environ.get(KILL_ENV) and Path(str(img)).name == os.environ[KILL_ENV]:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().encode(img)


class ModelFault(Exception):
    """An exception class whose two required arguments keep it from unpickling."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")


class KeyImages(PaletteImages):
    """PaletteImages with a bug of its own on camera.png: a KeyError."""

    def encode(self, img: Any) -> Any:
        if "camera" in str(img):
            raise KeyError("layer7")
        return super().encode(img)


class FaultImages(PaletteImages):
    """PaletteImages that raises a :class:`ModelFault` on camera.png."""

    def encode(self, img: Any) -> Any:
        if "camera" in str(img):
            raise ModelFault("decoder", "bad shape")
        return super().encode(img)


def _corpus(folder: Path, n: int, odd: int) -> Path:
    """``n`` documents of a text and a picture; line ``odd``'s picture is camera.png."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True)
    lines = []
    for line in range(1, n + 1):
        name = "camera.png" if line == odd else f"p{line}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "img" / name)
        lines.append(json.dumps({"segments": [f"doc {line}", {"image": f"img/{name}"}]}))
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "docs.jsonl"


def _in_child(fn: Callable[[], Any]) -> tuple[str, Any]:
    """``fn()`` in a forked process: ``("ok", what it returned)`` or ``(exception type name, its text)``; a run
    past :data:`LIMIT_SECONDS` fails the test (its workers see their parent gone and end too)."""
    ctx = mp.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)

    def run() -> None:
        try:
            writer.send(("ok", fn()))
        except BaseException as e:  # whatever it is, the test reads it
            writer.send((type(e).__name__, str(e)))

    child = ctx.Process(target=run)
    child.start()
    writer.close()
    try:
        if not reader.poll(LIMIT_SECONDS):
            pytest.fail(f"the run did not end in {LIMIT_SECONDS} s")
        return reader.recv()
    finally:
        if child.is_alive():
            child.kill()
        child.join()


def _shards(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != ".lock"}


def _committed_lines(out: Path) -> list[int]:
    return [line for p in sorted(out.glob("shard-*.json")) for line in json.loads(p.read_text())["doc_lines"]]


def test_a_worker_killed_mid_run_stops_it_naming_the_lines_in_flight_and_a_rerun_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "CHUNK_LINES", 2)  # a window of 2 chunks of 2 lines: the kill comes late in the run
    monkeypatch.setattr(corpus, "CHUNKS_PER_WORKER", 1)
    docs = _corpus(tmp_path / "c", 24, 0)
    spec = TokenizerSpec(image=f"{HERE}:DyingImages")
    out = tmp_path / "out"
    monkeypatch.setenv(KILL_ENV, "p20.png")
    kind, message = _in_child(lambda: tokenize_corpus(docs, out, tokenizers=spec, workers=2, shard_tokens=1))
    assert kind == "EngineError", message
    # how it ended: read from the worker's exit status where this process can still reap it (in a long pytest
    # session it sometimes cannot, and the message says so rather than guess)
    found = re.fullmatch(rf"{re.escape(str(docs))}: a worker process died \((?:killed by signal 9, SIGKILL, as the "
                         r"out-of-memory killer ends a process|how it ended is not known)\) while lines (\d+)-(\d+) "
                         r"were being tokenized; .*rerun the same command to resume .*", message)
    assert found, message
    first, last = int(found[1]), int(found[2])
    assert first <= 20 <= last
    assert _committed_lines(out) == list(range(1, first))  # one document per shard: every line before them
    monkeypatch.delenv(KILL_ENV)
    tokenize_corpus(docs, out, tokenizers=spec, workers=2, shard_tokens=1)
    tokenize_corpus(docs, tmp_path / "whole", tokenizers=spec, workers=1, shard_tokens=1)
    assert _shards(out) == _shards(tmp_path / "whole")


def test_an_exception_that_does_not_unpickle_comes_back_from_a_worker_with_its_line(tmp_path: Path) -> None:
    docs = _corpus(tmp_path / "c", 12, 8)
    spec = TokenizerSpec(image=f"{HERE}:FaultImages")
    kind, message = _in_child(lambda: tokenize_corpus(docs, tmp_path / "out", tokenizers=spec, workers=2))
    camera = (tmp_path / "c" / "img" / "camera.png").resolve()
    assert kind == "DocumentFailedError"  # a CorpusError that exits 1: a failure while running
    assert message.startswith(f"{docs}:8: segment 1 (image {camera}): ModelFault: decoder: bad shape ("), message


def _unreadable_chunk(chunk: list[tuple[int, Any]]) -> Any:
    return ModelFault("decoder", "bad shape")  # pickles in the worker, does not unpickle in the writer


def test_a_result_that_cannot_be_read_back_stops_the_run_naming_the_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "_tokenize_chunk", _unreadable_chunk)
    docs = _corpus(tmp_path / "c", 3, 0)
    kind, message = _in_child(lambda: tokenize_corpus(docs, tmp_path / "out", tokenizers=TokenizerSpec(
        image=f"{HERE}:KeyImages"), workers=2))
    assert kind == "EngineError", message
    assert message.startswith(f"{docs}: a worker process's result could not be read back (TypeError: "
                              "ModelFault.__init__() missing 1 required positional argument: 'why') while lines "
                              "1-3 were being tokenized;"), message


@pytest.mark.parametrize("workers", [1, 2])
def test_an_unexpected_exception_names_the_file_line_and_segment_and_keeps_the_shards_before(
        tmp_path: Path, workers: int) -> None:
    docs = _corpus(tmp_path / "c", 12, 8)
    spec = TokenizerSpec(image=f"{HERE}:KeyImages")
    out = tmp_path / "out"
    kind, message = _in_child(lambda: tokenize_corpus(docs, out, tokenizers=spec, workers=workers, shard_tokens=1))
    camera = (tmp_path / "c" / "img" / "camera.png").resolve()
    assert kind == "DocumentFailedError"  # a CorpusError that exits 1: a failure while running
    assert message.startswith(f"{docs}:8: segment 1 (image {camera}): KeyError: 'layer7' ("), message
    assert "\n" not in message and "MMTOK_DEBUG=1" in message
    assert _committed_lines(out) == list(range(1, 8))  # as one process would: every document before line 8
    assert exit_status(DocumentFailedError(message)) == 1 and isinstance(DocumentFailedError(message), CorpusError)


def test_in_one_process_the_error_keeps_the_tokenizers_exception_as_its_cause(tmp_path: Path) -> None:
    docs = _corpus(tmp_path / "c", 3, 2)
    with pytest.raises(CorpusError, match=r":2: segment 1 \(image .*camera\.png\): KeyError: 'layer7'") as info:
        tokenize_corpus(docs, tmp_path / "out", tokenizers=TokenizerSpec(image=f"{HERE}:KeyImages"))
    assert isinstance(info.value.__cause__, KeyError)


def test_the_command_says_it_in_one_line_and_the_traceback_under_debug(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _corpus(tmp_path / "c", 6, 3)
    argv = ["tokenize", str(docs), "--image", f"{HERE}:KeyImages", "--workers", "2", "--no-progress"]

    def command(out: str) -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = main([*argv, "--out", str(tmp_path / out)])
        return status, err.getvalue()

    kind, (status, said) = _in_child(lambda: command("plain"))
    assert kind == "ok" and said.count("\n") == 1 and status != 0, said
    assert re.fullmatch(rf"mmtok: error: {re.escape(str(docs))}:3: segment 1 \(image .*camera\.png\): "
                        r"KeyError: 'layer7' \(.*\)\n", said), said
    monkeypatch.setenv("MMTOK_DEBUG", "1")  # the worker's traceback, the tokenizer's frame in it
    kind, (status, said) = _in_child(lambda: command("debug"))
    assert kind == "ok" and "Traceback" in said and 'raise KeyError("layer7")' in said, said


def test_a_ray_actor_names_the_corpus_and_line_too(tmp_path: Path) -> None:
    """What a Ray actor runs (without starting Ray): the same error, naming the corpus it is given."""
    docs = _corpus(tmp_path / "c", 2, 2)
    tok = TokenizeDocuments(TokenizerSpec(image=f"{HERE}:KeyImages"), base=docs.parent.resolve(), corpus=str(docs))
    rows = docs.read_text().splitlines()
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(docs))}:2: segment 1 \(image .*camera\.png\): "
                                          r"KeyError: 'layer7' \("):
        tok({"line": np.array([1, 2]), "json": np.array(rows, dtype=object)})


def test_a_mistake_of_mmtok_itself_stops_the_run_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception from no media tokenizer names the line alone, and is never a skip."""
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"segments": ["a"]}\n{"segments": ["b"]}\n')

    def broken(self: Interleaver, segs: Any) -> Any:
        raise IndexError("list index out of range")

    monkeypatch.setattr(Interleaver, "encode", broken)
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(docs))}:1: IndexError: list index out of range \("):
        tokenize_corpus(docs, tmp_path / "out")


def test_how_a_worker_ended_is_read_from_the_one_not_ended_by_the_pools_sigterm() -> None:
    from types import SimpleNamespace

    from mmtok.data import worker_pool

    def pool(*codes: int | None) -> object:
        return SimpleNamespace(_mmtok_workers=[SimpleNamespace(exitcode=c) for c in codes], _processes=None)

    assert worker_pool._how_one_ended(pool(-15, -9)) == ("killed by signal 9, SIGKILL, as the out-of-memory "
                                                         "killer ends a process")
    assert worker_pool._how_one_ended(pool(-15, 3)) == "exit code 3"
    assert worker_pool._how_one_ended(pool(-15, -11)) == "killed by signal 11, SIGSEGV"
