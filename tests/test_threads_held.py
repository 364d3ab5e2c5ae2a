"""torch's process-wide intra-op thread count when runs that want one thread overlap (mmtok.core.threads): the
count from before the first comes back after the last, in whichever order they end."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import torch

from mmtok.core.threads import one_intra_op_thread
from mmtok.data import corpus


def test_overlapping_holders_in_two_threads_leave_the_count_as_it_was(two_threads: None) -> None:
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def a() -> None:
        with one_intra_op_thread():
            a_in.set()
            b_in.wait()
        a_out.set()

    def b() -> None:
        a_in.wait()
        with one_intra_op_thread():
            b_in.set()
            a_out.wait()
            seen["b after a left"] = torch.get_num_threads()

    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"b after a left": 1}  # the first to leave does not give the count back under the second
    assert torch.get_num_threads() == 2


def test_a_count_set_while_held_stays(two_threads: None) -> None:
    with one_intra_op_thread():
        torch.set_num_threads(3)  # the caller's own choice, made meanwhile
    assert torch.get_num_threads() == 3


def test_two_serial_corpus_runs_that_overlap_give_the_count_back(two_threads: None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # the serial engine holds one thread while its generator runs: two runs whose generators overlap and end
    # in the order they began once left the process at one thread
    monkeypatch.setattr(corpus, "tokenize_document", lambda il, line, raw, **kw: line)
    source = SimpleNamespace(base=None, allow_outside=False, path="c.jsonl")
    first = corpus.LocalEngine._serial(iter([(1, None), (2, None)]), None, source, None)
    second = corpus.LocalEngine._serial(iter([(1, None), (2, None)]), None, source, None)
    assert next(first) == 1 and next(second) == 1
    assert torch.get_num_threads() == 1
    first.close()
    assert torch.get_num_threads() == 1  # the second still runs
    assert list(second) == [2]
    assert torch.get_num_threads() == 2
