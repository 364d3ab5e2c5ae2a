"""The Ray engine: media paths read from an explicit folder, an actor's failure said in one line, Ray and its data
extras checked before any work, a cluster that refuses a driver told from a missing one, the caller's Ray Data
settings left as they were, no deprecated arguments, and one reader and tokenizer of documents for both engines.
Only the last test starts Ray."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import re
import socket
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mmtok.core.errors import CorpusError, EngineError, exit_status
from mmtok.data import TokenizeDocuments
from mmtok.data import corpus as corpus_module
from mmtok.data.corpus import tokenize_corpus, tokenize_document
from mmtok.data.documents import BOM, jsonl_documents, open_source
from mmtok.data.ray_engine import (
    RayEngine,
    _batches,
    _line_ranges,
    _one_task_at_a_time,
    _read_range,
    _settings,
)
from mmtok.data.shard_ids import id_dtype
from mmtok.data.tokenizer_spec import TokenizerSpec
from mmtok.stream.interleave import Interleaver
from tests.test_interleave import PaletteImages

PALETTE = "tests.test_interleave:PaletteImages"
BROKEN = "tests.test_ray_audit_fixes:BrokenImages"
RAY_ERROR = ("\x1b[36mray::MapWorker(MapBatches(TokenizeDocuments)).submit()\x1b[39m (pid=7, ip=10.0.0.1)\n"
             '  File "/x/keytok.py", line 8, in encode\n'
             "    raise KeyError(\"internal table missing 'zz'\")\n"
             "KeyError: \"internal table missing 'zz'\"\n\n"
             "The above exception was the direct cause of the following exception:\n\n"
             "\x1b[36mray::MapWorker(MapBatches(TokenizeDocuments)).submit()\x1b[39m (pid=7, ip=10.0.0.1)\n"
             "ray.exceptions.UserCodeException: UDF failed to process a data block.\n"
             "Failed to apply UDF transform after 1/1 attempts (total backoff 0.0s).")


class BrokenImages(PaletteImages):
    """An image tokenizer with a bug of its own: every encode raises a KeyError."""

    fingerprint = "broken-v1"

    def encode(self, img: Any) -> Any:
        raise KeyError("internal table missing 'zz'")


def _picture(folder: Path) -> None:
    (folder / "media").mkdir(parents=True)
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(folder / "media" / "a.png")


def test_tokenize_documents_reads_media_from_the_folder_it_is_given(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An actor's working folder is where ``ray start`` ran: relative media paths come from ``base`` alone."""
    _picture(tmp_path / "corpus")
    spec = TokenizerSpec(image=PALETTE)
    for missing in ({}, {"base": None}):  # the written message, not Python's bare TypeError
        with pytest.raises(TypeError, match=r"needs base=.*fn_constructor_kwargs=\{'base': \.\.\.\}"):
            TokenizeDocuments(spec, **missing)
    with pytest.raises(ValueError, match=r"base='corpus' is not an absolute path"):
        TokenizeDocuments(spec, base="corpus")
    monkeypatch.chdir(tmp_path)  # elsewhere than the corpus, as a Ray worker is
    tok = TokenizeDocuments(spec, base=tmp_path / "corpus")
    out = tok({"line": np.array([1]), "json": np.array(['{"segments": ["x ", {"image": "media/a.png"}]}'], dtype=object)})
    assert out["skip_reason"][0] == "" and out["ids"][0].size > 4 and out["counts"][0][2] > 0  # image tokens


def test_an_actors_failure_is_said_in_one_line_with_its_exception() -> None:
    class Failing:
        def __init__(self, text: str) -> None:
            self.text = text

        def iter_batches(self, **kwargs: object) -> Any:
            raise RuntimeError(self.text)
            yield

    with pytest.raises(EngineError) as info:  # a failure while running (exit 1), not a refused input
        list(_batches(Failing(RAY_ERROR)))
    assert exit_status(info.value) == 1
    message = str(info.value)
    assert re.fullmatch(r"""the Ray engine failed: KeyError: "internal table missing 'zz'" \(traceback: .*ray-data\.log.*\)""",
                        message), message
    assert "\x1b" not in message and "\n" not in message
    ours = RAY_ERROR.replace("KeyError: \"internal table missing 'zz'\"",
                             "mmtok.core.errors.CorpusError: line 2: segment 0 is an image but no image tokenizer")
    with pytest.raises(CorpusError, match=r"^line 2: segment 0 is an image but no image tokenizer$"):
        list(_batches(Failing(ours)))  # a mistake in the call: said as the local engine says it


def test_ray_and_its_data_extras_are_checked_before_any_work(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def scanned(*args: object) -> None:
        raise AssertionError("the corpus was scanned before the engine was checked")

    monkeypatch.setattr(corpus_module, "media_kinds", scanned)
    (tmp_path / "docs.jsonl").write_bytes(b'{"segments": ["a"]}\n')
    (tmp_path / "rows.parquet").write_bytes(b"not parquet")
    with pytest.raises(CorpusError, match=r"^the Ray engine reads JSONL corpora; .*rows\.parquet is parquet"):
        tokenize_corpus(tmp_path / "rows.parquet", tmp_path / "out", engine=RayEngine())
    monkeypatch.setitem(sys.modules, "ray.data", None)  # Ray without its data extras fails to import ray.data
    with pytest.raises(CorpusError, match=r"^the Ray engine needs ray\[data\]: pip install 'mmtok\[ray\]' \(.*ray"):
        tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "out", engine=RayEngine())
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(CorpusError, match=r"^the Ray engine needs ray\[data\]: pip install 'mmtok\[ray\]' \(.*ray"):
        tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "out", engine=RayEngine())
    assert not (tmp_path / "out").exists()


def _fake_ray(monkeypatch, init: Any) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: False, init=init))
    monkeypatch.setitem(sys.modules, "ray.data", types.ModuleType("ray.data"))


def test_a_cluster_that_answers_but_refuses_the_driver_is_not_called_missing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def refuse(**kwargs: object) -> None:  # Ray 2.60 on a token mismatch: its reason is in the error raised from
        try:
            raise RuntimeError("Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n"
                               '  File "python/ray/includes/common.pxi", line 119, in ray._raylet.check_status\n'
                               "ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: Authentication token "
                               "is missing or incorrect. Ensure that the token for the cluster is available.\n")
        except RuntimeError as e:
            raise ConnectionError(f"Failed to connect to Ray cluster at {kwargs['address']}") from e

    _fake_ray(monkeypatch, refuse)
    (tmp_path / "docs.jsonl").write_bytes(b'{"segments": ["a"]}\n')
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(CorpusError) as info:
            tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "out", engine=RayEngine(address=address))
    assert str(info.value) == (f"the Ray cluster at '{address}' (--ray-address) answers but cannot be joined: Failed "
                               f"to connect to Ray cluster at {address} (AuthenticationError: RPC error: "
                               "InvalidAuthToken: Authentication token is missing or incorrect)")


def test_a_cluster_the_engine_starts_logs_errors_only_and_reads_without_deprecated_arguments(
        tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: dict[str, Any] = {}

    def init(**kwargs: object) -> None:
        seen.update(kwargs)
        raise RuntimeError("stop here")

    _fake_ray(monkeypatch, init)
    (tmp_path / "docs.jsonl").write_bytes(b'{"segments": ["a"]}\n')
    with pytest.raises(RuntimeError, match="stop here"):
        tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "out", engine=RayEngine())
    assert seen["logging_level"] == logging.ERROR and seen["num_cpus"] == 2

    class TaskPoolStrategy:
        def __init__(self, size: int) -> None:
            self.size = size

    new = _one_task_at_a_time(types.SimpleNamespace(data=types.SimpleNamespace(TaskPoolStrategy=TaskPoolStrategy)))
    assert set(new) == {"compute"} and new["compute"].size == 1
    assert _one_task_at_a_time(types.SimpleNamespace(data=types.SimpleNamespace())) == {"concurrency": 1}


def test_ray_data_settings_are_set_back_even_after_a_failure() -> None:
    ctx = types.SimpleNamespace(execution_options=types.SimpleNamespace(preserve_order=False), enable_progress_bars=True)
    ray = types.SimpleNamespace(data=types.SimpleNamespace(DataContext=types.SimpleNamespace(get_current=lambda: ctx)))
    console, logger = logging.StreamHandler(io.StringIO()), logging.getLogger("ray.data")
    console.setLevel(logging.INFO)
    logger.addHandler(console)
    try:
        with pytest.raises(KeyError), _settings(ray, quiet=True):
            assert ctx.execution_options.preserve_order and not ctx.enable_progress_bars
            assert console.level == logging.ERROR
            raise KeyError("a failure part-way")
        assert (ctx.execution_options.preserve_order, ctx.enable_progress_bars, console.level) == (
            False, True, logging.INFO)
        with _settings(ray, quiet=False):  # the caller's own Ray session: its logging is its own
            assert console.level == logging.INFO
    finally:
        logger.removeHandler(console)


CORPUS = (BOM + BOM + b'{"segments": ["two marks"]}\n'  # the local engine strips both marks: so must Ray's reader
          b"\n   \n"
          b'{"segments": \r ["cr inside"]}\r\n'
          b"\xff\xfe not utf-8\n"
          b'{"segments": ["a"]}\n{"segments": ["b"]}\n{"segments": ["c"]}')


def test_both_engines_read_and_tokenize_documents_with_one_implementation(tmp_path: Path) -> None:
    (tmp_path / "docs.jsonl").write_bytes(CORPUS)
    source = open_source(tmp_path / "docs.jsonl")
    il = Interleaver(None)
    dtype = id_dtype(il.vocab.size)
    tok = TokenizeDocuments(TokenizerSpec(), base=source.base)
    for part in ((0, 1), (0, 2), (1, 2), (2, 3)):
        local = list(source.items(1, part))
        assert local == list(jsonl_documents(io.BytesIO(CORPUS), part=part))
        rows = [row for item in _line_ranges(source.path, 1, 3) for row in _read_range(item, path=str(source.path),
                                                                                         part=part)]
        assert [r["line"] for r in rows] == [n for n, _ in local]
        out = tok({"line": np.array([r["line"] for r in rows]), "json": np.array([r["json"] for r in rows], dtype=object),
                   "skip_reason": np.array([r["skip_reason"] for r in rows], dtype=object)})
        for k, (number, raw) in enumerate(local):
            _, ids, info = tokenize_document(il, number, raw, base=source.base, allow_outside=False, dtype=dtype)
            if ids is None:
                assert out["skip_reason"][k] == info and out["ids"][k].size == 0
            else:
                assert out["skip_reason"][k] == "" and out["ids"][k].tolist() == ids.tolist()
                assert out["counts"][k].tolist() == info.tolist()
    m = tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "shards", tokenizers=TokenizerSpec(), part=(0, 2))
    assert m["docs"] == 2 and [s["line"] for s in m["skipped"]] == [5]  # lines 1 and 7; 3 is blank


HAS_RAY = importlib.util.find_spec("ray") is not None
if HAS_RAY:
    from tests.test_ray import cluster  # noqa: F401  (a local 2-CPU cluster for this module, started by the caller)


@pytest.mark.skipif(not HAS_RAY, reason="needs ray")
def test_on_the_callers_cluster_an_actors_bug_is_one_line_and_ray_data_is_left_as_it_was(
        tmp_path: Path, cluster: None) -> None:
    import ray

    _picture(tmp_path)
    (tmp_path / "docs.jsonl").write_text(json.dumps({"segments": ["x ", {"image": "media/a.png"}]}) + "\n")
    ctx = ray.data.DataContext.get_current()
    before = ctx.execution_options.preserve_order, ctx.enable_progress_bars
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("ray.data").addHandler(handler)
    try:
        with pytest.raises(CorpusError) as info:  # said as the local engine says it: the corpus, line and segment
            tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "out", tokenizers=TokenizerSpec(image=BROKEN),
                            engine=RayEngine())
    finally:
        logging.getLogger("ray.data").removeHandler(handler)
    assert re.fullmatch(rf"""{re.escape(str(tmp_path / "docs.jsonl"))}:1: segment 1 \(image /.+/media/a\.png\): """
                        r"""KeyError: "internal table missing 'zz'" \(.*MMTOK_DEBUG=1.*\)""", str(info.value)), str(info.value)
    assert (ctx.execution_options.preserve_order, ctx.enable_progress_bars) == before
    assert not [r.getMessage() for r in records if "deprecated" in r.getMessage()]
