"""The Ray engine's read tasks split a JSONL corpus into the local engine's lines: on ``\\n`` alone, so a
``\\r`` inside a line (JSON whitespace) keeps the document whole and later lines keep their numbers. Runs
without Ray: the read task is a plain function."""

from __future__ import annotations

import io
import json
from pathlib import Path

from mmtok.data.corpus import tokenize_corpus
from mmtok.data.documents import open_source
from mmtok.data.ray_engine import _line_ranges, _lines, _read_range
from mmtok.data.tokenizer_spec import TokenizerSpec

CORPUS = (b'{"segments":\r["carriage return between tokens"]}\n'
          b'{"segments": ["after it"]}\r\n'
          b"\n"
          b'{"segments": \r\r ["two more"]}\n'
          b"not json\n"
          b'{"segments": ["last, no newline"]}')


def test_lines_split_on_newline_alone_as_a_file_does() -> None:
    assert list(_lines(CORPUS)) == list(io.BytesIO(CORPUS)) == [
        b'{"segments":\r["carriage return between tokens"]}\n', b'{"segments": ["after it"]}\r\n', b"\n",
        b'{"segments": \r\r ["two more"]}\n', b"not json\n", b'{"segments": ["last, no newline"]}']
    assert list(_lines(b"")) == []


def test_read_tasks_give_the_local_engines_documents_and_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "docs.jsonl").write_bytes(CORPUS)
    source = open_source(tmp_path / "docs.jsonl")
    local = [(number, raw.decode("utf-8")) for number, raw in source.items()]
    for first in (1, 2, 4):
        for tasks in (1, 2, 6):
            rows = [row for item in _line_ranges(source.path, first, tasks)
                    for row in _read_range(item, path=str(source.path), part=(0, 1))]
            assert [(r["line"], r["json"]) for r in rows] == [(n, j) for n, j in local if n >= first]
    assert [n for n, _ in local] == [1, 2, 4, 5, 6]
    m = tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "shards", tokenizers=TokenizerSpec())
    assert m["docs"] == 4 and [s["line"] for s in m["skipped"]] == [5]  # the \r lines are documents
    assert json.loads(local[0][1])["segments"] == ["carriage return between tokens"]


def test_no_cluster_at_the_address_names_our_flag(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys
    import types

    import pytest

    from mmtok.core.errors import CorpusError
    from mmtok.data.ray_engine import RayEngine

    def refuse(**kwargs: object) -> None:
        raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to by "
                              "setting `--address` flag or `RAY_ADDRESS` environment variable.")

    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: False, init=refuse))
    monkeypatch.setitem(sys.modules, "ray.data", types.ModuleType("ray.data"))
    corpus = tmp_path / "docs.jsonl"
    corpus.write_bytes(b'{"segments": ["a"]}\n')
    with pytest.raises(CorpusError, match=r"no Ray cluster at 'auto' \(--ray-address\): Could not find any running Ray"):
        tokenize_corpus(corpus, tmp_path / "out", engine=RayEngine(address="auto"), progress=False)


def test_an_unreachable_cluster_address_is_refused_in_seconds_not_retried_for_minutes(
        tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Ray retries a host:port that answers nothing for minutes; the engine asks the port first and says so in
    one line, before ray.init. A ray:// address without Ray Client's packages is said the same way."""
    import socket
    import sys
    import types

    import pytest

    from mmtok.core.errors import CorpusError
    from mmtok.data.ray_engine import RayEngine

    def never(**kwargs: object) -> None:
        raise AssertionError("ray.init reached for an address nothing answers at")

    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: False, init=never))
    monkeypatch.setitem(sys.modules, "ray.data", types.ModuleType("ray.data"))
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    corpus = tmp_path / "docs.jsonl"
    corpus.write_bytes(b'{"segments": ["a"]}\n')
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(CorpusError, match=rf"^no Ray cluster at '{address}' \(--ray-address\): nothing answers "
                                              rf"at 127\.0\.0\.1:{port} "):
            tokenize_corpus(corpus, tmp_path / "out", engine=RayEngine(address=address), progress=False)

    def client_missing(**kwargs: object) -> None:
        raise ValueError("Ray Client requires pip package `ray[client]`. If you installed the minimal Ray, ...")

    with socket.socket() as server:  # something answers: the client's own refusal is said in one line
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"ray://127.0.0.1:{server.getsockname()[1]}"
        monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: False,
                                                                      init=client_missing))
        with pytest.raises(CorpusError, match=rf"^--ray-address {address}: Ray Client requires pip package"):
            tokenize_corpus(corpus, tmp_path / "out2", engine=RayEngine(address=address), progress=False)
