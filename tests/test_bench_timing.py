"""The benchmarks' one timer (``common.time_sides``), the statistic their ratio rows name, and the
bootstrap intervals of paired differences (one generator per metric)."""

from __future__ import annotations

import argparse
import contextlib
import doctest
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import common  # noqa: E402
from common import Timing, round_ratios, time_sides  # noqa: E402

from mmtok.core.errors import UsageError  # noqa: E402
from mmtok.core.metrics import key_seed, paired_difference  # noqa: E402


class FakeClock:
    """``time.perf_counter`` stand-in: moved on only by the sides, so every duration is known."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_sides_interleaves_after_warmup_and_gives_min_median_n(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(common.time, "perf_counter", clock)
    calls: list[str] = []
    costs = {"a": iter([0.0, 3.0, 1.0, 2.0]), "b": iter([0.0, 10.0, 30.0, 20.0])}  # the first: the warm-up

    def side(name: str):
        def call() -> str:
            calls.append(name)
            clock.now += next(costs[name])
            return f"{name}{len(calls)}"

        return call

    synced: list[float] = []
    t = time_sides({"a": side("a"), "b": side("b")}, repeats=3, sync=lambda: synced.append(clock.now))
    assert "".join(calls) == "ab" + "ab" + "ba" + "ab"  # warm-up, then rounds whose order alternates
    assert t["a"].seconds == (3.0, 1.0, 2.0) and t["b"].seconds == (10.0, 30.0, 20.0)
    assert (t["a"].min, t["a"].median, t["a"].n) == (1.0, 2.0, 3)
    assert (t["b"].min, t["b"].median, t["b"].n) == (10.0, 20.0, 3)
    assert t["a"].summary() == {"min_s": 1.0, "median_s": 2.0, "n": 3}
    assert t["a"].results == ("a3", "a6", "a7") and t["a"].around == ()
    assert len(synced) == 2 * 6  # before each clock start and before each stop
    assert round_ratios(t["b"], t["a"]) == [10.0 / 3.0, 30.0, 10.0]


def test_time_sides_runs_each_timed_call_inside_its_context_outside_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(common.time, "perf_counter", clock)
    log: list[str] = []

    @contextlib.contextmanager
    def around(name: str) -> Iterator[str]:
        clock.now += 100.0  # time spent here is not the side's
        log.append(f"enter {name}")
        yield f"ctx {name}"
        log.append(f"leave {name}")
        clock.now += 100.0

    def work() -> None:
        log.append("call")
        clock.now += 1.0

    t = time_sides({"x": work}, repeats=2, warmup=0, around=around)
    assert t["x"].seconds == (1.0, 1.0) and t["x"].around == ("ctx x", "ctx x")
    assert log == ["enter x", "call", "leave x"] * 2
    with pytest.raises(UsageError, match="at least 1 timed call"):
        time_sides({"x": work}, repeats=0)


def test_common_docstring_examples() -> None:
    assert doctest.testmod(common, optionflags=doctest.ELLIPSIS).failed == 0


def test_train_ratio_row_names_its_statistic_and_is_of_the_medians(capsys: pytest.CaptureFixture[str]) -> None:
    import train as bench_train

    ours, theirs = Timing((1.0, 2.0, 9.0), (3.0,) * 3), Timing((4.0, 4.0, 4.0), (3.5,) * 3)
    args = argparse.Namespace(batch=2, seq_len=4, compile=False, steps=3)
    models = {"mmtok": torch.nn.Linear(2, 2), "gpt2": torch.nn.Linear(2, 3)}
    bench_train.emit_rows(args, {"preset": "tiny"}, models, {"mmtok": ours, "gpt2": theirs})
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ratio = next(r for r in rows if r.get("metric") == "ratio")
    assert ratio["ratio_of"] == "median" and ratio["mmtok_over_gpt2_tokens_per_s"] == 2.0  # 4 / 2, not 4 / 1
    assert ratio["median_pair_ratio"] == 2.0  # the rounds: 4, 2 and 0.44
    assert ratio["timings"]["mmtok"] == {"min_s": 1.0, "median_s": 2.0, "n": 3}
    steps = {r["impl"]: r for r in rows if "impl" in r}
    assert steps["mmtok"]["seconds_per_step"] == 2.0 and steps["mmtok"]["timing"]["n"] == 3


def test_vq_encode_ratio_row_names_its_statistic(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("vector_quantize_pytorch")
    import vq as bench_vq

    monkeypatch.setattr(bench_vq, "fresh_peaks", lambda build, *args, threads: (1.0, 1.0, "fake"))  # no processes
    bench_vq.bench_encode(256, 16, 8, 2, torch.device("cpu"), [256])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ratio = next(r for r in rows if r.get("metric") == "ratio")
    assert ratio["ratio_of"] == "median" and set(ratio["timings"]) == {"ours", "peer", "floor"}
    assert all(t["n"] == 2 and t["min_s"] <= t["median_s"] for t in ratio["timings"].values())
    ours = next(r for r in rows if r.get("impl") == "mmtok")
    assert ours["seconds"] == round(ratio["timings"]["ours"]["median_s"], 4)


SCORES_A = [{"x": 1.0 + 0.3 * i, "y": (-1.0) ** i * i} for i in range(12)]
SCORES_B = [{"x": 0.9 + 0.35 * (i % 5), "y": 0.5} for i in range(12)]


def test_one_metrics_interval_does_not_depend_on_the_others_listed() -> None:
    alone = paired_difference(SCORES_A, SCORES_B, ["x"], seed=3)["x"]
    for keys in (["x", "y"], ["y", "x"]):
        assert paired_difference(SCORES_A, SCORES_B, keys, seed=3)["x"] == alone, keys
    assert paired_difference(SCORES_A, SCORES_B, ["x"], seed=4)["x"]["ci95"] != alone["ci95"]  # the seed still counts
    row = paired_difference(SCORES_A, SCORES_B, ["y", "x"], seed=3)
    assert row["items"] == 12
    with pytest.raises(ValueError, match="same items"):
        paired_difference(SCORES_A, SCORES_B[:-1], [], seed=3)


def test_metric_seeds_are_fixed_by_seed_and_name() -> None:
    # a digest of the bytes: this number in every process (a string's hash() changes with PYTHONHASHSEED)
    assert key_seed(0, "stoi") == 5522932457878408169
    assert len({key_seed(0, "stoi"), key_seed(1, "stoi"), key_seed(0, "pesq_wb")}) == 3
