"""The pieces of benchmarks/context_growth.py and benchmarks/audio_codebook_probe.py that decide things:
when a step series stops, what a fit row holds and projects, how the rows are written, how the probe splits the
training clips, what a probe row counts."""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import audio_codebook_probe as probe_bench
import context_growth as cg

from mmtok.context.growth import math_scores_mib
from mmtok.lm.model import ModelConfig

pytestmark = pytest.mark.usefixtures("one_thread")

LIMITS = argparse.Namespace(step_limit=10.0, mem_limit=1.0, repeats=1)


def step(tokens: int, seconds: float, peak_mib: float = 10.0) -> dict:
    return {"tokens": tokens, "seconds": seconds, "peak_mib": peak_mib}


def test_stop_reason_goes_on_while_the_next_step_fits() -> None:
    r = step(100, 1.0)
    assert cg._stop_reason(r, [r], "sdpa", LIMITS, spent=1.0, share=100.0) is None


def test_stop_reason_time_memory_budget() -> None:
    slow = step(100, 8.0)  # sdpa predicts >= 1.5x: 12 s > 10 s
    assert cg._stop_reason(slow, [slow], "sdpa", LIMITS, 0.0, 100.0) == "time: next step predicted 12.0 s > 10.0 s"
    big = step(100, 1.0, peak_mib=300.0)  # math predicts 4x memory: 1200 MiB > 1 GiB
    assert cg._stop_reason(big, [big], "math", LIMITS, 0.0, 100.0) == "memory: next step predicted 1.17 GiB > 1.0 GiB"
    r = step(100, 1.0)
    assert cg._stop_reason(r, [r], "sdpa", LIMITS, 9.0, 10.0) == "budget: 10 s for this series"


def test_stop_reason_uses_the_last_two_steps_exponent() -> None:
    done = [step(100, 1.0), step(200, 3.0)]  # time grows 3x per doubling: next step 9 s
    assert cg._stop_reason(done[-1], done, "sdpa", LIMITS, 0.0, 8.0) == "budget: 8 s for this series"
    assert cg._stop_reason(done[-1], done, "sdpa", LIMITS, 0.0, 10.0) is None


def test_stop_reason_counts_every_repeat_against_the_budget() -> None:
    r = step(100, 1.0)  # next step predicted 1.5 s, run 3 times: 4.5 s
    thrice = argparse.Namespace(step_limit=10.0, mem_limit=1.0, repeats=3)
    assert cg._stop_reason(r, [r], "sdpa", thrice, 0.0, 4.0) == "budget: 4 s for this series"
    assert cg._stop_reason(r, [r], "sdpa", LIMITS, 0.0, 4.0) is None


def test_fit_row_keys_in_order() -> None:
    done = [step(t, t / 1000, t / 10) for t in (512, 1024, 2048, 4096)]
    row = cg.fit_row("tiny", "sdpa", done, hour=3600.0)
    keys = ["bench", "model", "backend", "points", "fitted_tokens", "time_exponent", "time_r2", "memory_exponent",
            "memory_r2", "reliable", "unreliable_because", "seconds_are", "peak_gib_are"]
    for name in ("one_hour_video", "1M_window"):
        keys += [f"{name}_tokens", f"{name}_seconds", f"{name}_peak_gib", f"{name}_kv_cache_gib_bf16"]
    assert list(row) == keys and row["bench"] == "fit"
    assert row["points"] == 3 and row["fitted_tokens"] == [1024, 4096] and row["one_hour_video_tokens"] == 3600
    assert row["time_exponent"] == pytest.approx(1.0) and row["time_r2"] == 1.0 and row["reliable"]
    assert row["1M_window_seconds"] == pytest.approx(1048.6) and row["seconds_are"].startswith("at least")
    assert row["1M_window_peak_gib"] == pytest.approx(409.6 * 256 / 1024, abs=0.01)  # 409.6 MiB at 4,096, linear
    one = cg.fit_row("tiny", "sdpa", done[:1], hour=3600.0)  # one point: no fit, nothing projected from one
    assert one["time_exponent"] is None and one["1M_window_seconds"] is None and not one["reliable"]
    assert one["unreliable_because"] == "fewer than two lengths measured"


def test_fit_row_of_a_busy_machine_projects_no_time() -> None:
    done = [step(t, t / 1000, t / 10) for t in (1024, 2048, 4096)]
    row = cg.fit_row("tiny", "sdpa", done, hour=3600.0, busy=True)
    assert row["time_exponent"] == pytest.approx(1.0) and not row["reliable"]  # the figure, marked
    assert row["unreliable_because"] == "the machine was busy with other work"
    assert row["1M_window_seconds"] is None and row["seconds_are"].startswith("not projected: the machine was busy")
    noisy = cg.fit_row("tiny", "sdpa", [step(1024, 1.0), step(2048, 0.5), step(4096, 1.2)], hour=3600.0)
    assert not noisy["reliable"] and noisy["unreliable_because"].startswith("R²")


def test_fit_row_math_memory_is_at_least_its_scores_not_a_fit() -> None:
    # a local fit of these points (memory ∝ L^1.5) would give 1M tokens ~40x too little
    done = [step(t, (t / 1024) ** 1.8, 100 * (t / 1024) ** 1.5) for t in (1024, 2048, 4096)]
    row = cg.fit_row("tiny", "math", done, hour=3600.0)
    tiny = ModelConfig.preset("tiny")
    assert row["1M_window_peak_gib"] == math_scores_mib(tiny, 1_048_576) / 1024 == 98_304
    assert row["one_hour_video_peak_gib"] == round(math_scores_mib(tiny, 3600) / 1024, 2)
    assert row["1M_window_seconds"] is None and row["peak_gib_are"].startswith("at least")
    assert row["time_exponent"] == pytest.approx(1.8) and row["memory_exponent"] == pytest.approx(1.5)


def test_measure_series_repeats_each_length_and_says_how_busy(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    calls = []

    def fake_step(model: str, backend: str, ids: torch.Tensor, vocab: int, device: torch.device, *,
                  repeats: int = 1) -> dict:
        calls.append(repeats)
        return {"seconds": 0.001, "peak_mib": 1.0, "train_flops": 1}

    monkeypatch.setattr(cg, "measure_step", fake_step)
    args = argparse.Namespace(step_limit=10.0, mem_limit=1.0, repeats=3)
    streams = [(1.0, torch.zeros(8, dtype=torch.long)), (2.0, torch.zeros(16, dtype=torch.long))]
    done, busy = cg.measure_series("tiny", "sdpa", streams, 10, torch.device("cpu"), args, 100.0, cg.Recorder())
    assert calls == [3, 3] and [r["repeats"] for r in done] == [3, 3] and isinstance(busy, bool)
    end = [json.loads(line) for line in capsys.readouterr().out.splitlines()][-1]
    assert end["bench"] == "series_end" and end["busy"] == busy and "load average" in end["machine_load"]


def test_recorder_prints_and_writes_rows_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = cg.Recorder()
    record({"bench": "a", "x": 1, "r2": math.nan})
    record({"bench": "b", "seconds": [math.inf, 2.0]})
    printed = capsys.readouterr().out.splitlines()
    record.write(tmp_path / "results.jsonl")
    written = (tmp_path / "results.jsonl").read_text().splitlines()
    assert printed == written  # NaN and infinity as null in both, so any JSON reader takes them
    assert [json.loads(line) for line in written] == [{"bench": "a", "x": 1, "r2": None},
                                                      {"bench": "b", "seconds": [None, 2.0]}]


def test_every_row_is_named_by_bench() -> None:
    source = Path(cg.__file__).read_text()
    assert '"kind"' not in source and source.count('{"bench": ') >= 10


def test_context_growth_flags() -> None:
    args = cg.parse_args(["--max-seconds", "4", "--models", "tiny"])
    assert (args.max_seconds, args.models, args.fps, args.budget, args.threads) == (4.0, ["tiny"], 2.0, 540.0, None)
    assert args.repeats == 3 and cg.parse_args(["--repeats", "1"]).repeats == 1


def test_split_train_takes_out_probe_voices_variants_and_synthetic() -> None:
    train = [{"file": "a", "source": "espeak-ng", "voice": "sv"},  # probe voice, no variant: design
             {"file": "b", "source": "espeak-ng", "voice": "en+m3"},  # en with a probe variant: design
             {"file": "c", "source": "espeak-ng", "voice": "sv+m1"},  # probe voice, other variant: probe only
             {"file": "d", "source": "espeak-ng", "voice": "de+f2"},  # probe variant: probe only
             {"file": "e", "source": "espeak-ng", "voice": "de"},  # fit
             {"file": "f", "source": "synthetic"}, {"file": "g", "source": "pygame"}]
    fit, probe, speech, synth = probe_bench.split_train(train, {"sv"}, {"+m3", "+f2"}, 1.0, random.Random(0))
    assert [e["file"] for e in fit] == ["e", "g"]
    assert [e["file"] for e in probe] == ["a", "b", "c", "d", "f"]
    assert [e["file"] for e in speech] == ["a", "b"] and [e["file"] for e in synth] == ["f"]
    fit, probe, _, synth = probe_bench.split_train(train, {"sv"}, {"+m3", "+f2"}, 0.0, random.Random(0))
    assert "f" in [e["file"] for e in fit] and synth == []


def test_fit_rows_groups_by_voice_else_file() -> None:
    fit = [{"file": "a", "voice": "de"}, {"file": "b", "voice": "de"}, {"file": "c"}]
    cache = {f: (torch.zeros(n, 4), 1.0) for f, n in (("a", 2), ("b", 1), ("c", 3))}
    rows, clips, speakers, n = probe_bench.fit_rows(fit, cache)
    assert rows.shape == (6, 4) and n == 2
    assert clips.tolist() == [0, 0, 1, 2, 2, 2] and speakers.tolist() == [0, 0, 0, 1, 1, 1]


def test_probe_stats_counts_codes_and_exact_reconstruction() -> None:
    centers = torch.eye(4)
    cache = {"a": (centers[[0, 1, 1]], 2.0)}
    row = probe_bench.probe_stats([{"file": "a"}], cache, centers, 8)  # 8 codes counted: usage 2/8
    assert list(row) == ["clips", "tokens", "usage", "perplexity", "rel_l1_codes_only"]
    assert (row["clips"], row["tokens"], row["usage"], row["rel_l1_codes_only"]) == (1, 3, 0.25, 0.0)


def test_probe_flags() -> None:
    args = probe_bench.parse_args(["--data", "x"])
    assert (args.data, args.probe_voices, args.probe_variants, args.codebook_size, args.threads) == \
        ("x", "sv,el,nl", "+m3,+f2", 1024, 2)
