"""The benchmarks without a peer installed: one row names it and the run goes on without that side.

A peer is blocked the way a machine without it looks to Python: a stub module first on ``sys.path``
that raises ``ModuleNotFoundError`` on import (what ``find_spec`` still finds), or ``find_spec``
returning None (not installed at all).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common

pytestmark = pytest.mark.usefixtures("one_thread")


def block(monkeypatch: pytest.MonkeyPatch, folder: Path, *names: str) -> None:
    """Make ``import NAME`` fail for each of ``names`` until the test ends (a stub first on the path)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.py").write_text(f"raise ModuleNotFoundError({f'No module named {name} (blocked)'!r})\n")
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, mod)
    monkeypatch.syspath_prepend(str(folder))


def records(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_missing_peer_says_why_and_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert common.missing_peer("json") is None and common.check_peer("x", "json") is True
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gone" else real(name, *a))
    assert common.missing_peer("gone") == "not installed: pip install mmtok[bench]"
    block(monkeypatch, tmp_path / "stubs", "stubbed")
    why = common.missing_peer("stubbed")
    assert why is not None and why.startswith("cannot be imported (ModuleNotFoundError") and "mmtok[bench]" in why
    assert common.check_peer("speed", "gone") is False
    assert records(capsys) == [{"bench": "speed", "peer": "gone", "skipped": "not installed: pip install mmtok[bench]"}]


TRAIN = ["--preset", "tiny", "--vocab", "64", "--seq-len", "8", "--batch", "1", "--steps", "2", "--device", "cpu"]


def test_train_without_transformers_times_ours_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import train as bench_train

    block(monkeypatch, tmp_path / "stubs", "transformers")
    bench_train.main(TRAIN)
    rows = records(capsys)
    assert rows[1] == {"bench": "train_step", "peer": "transformers", "skipped": rows[1]["skipped"]}
    assert rows[1]["skipped"].endswith("pip install mmtok[bench]")
    steps = [r for r in rows if r["bench"] == "train_step" and "peer" not in r]
    assert [r["impl"] for r in steps] == ["mmtok"] and "metric" not in steps[0]
    assert steps[0]["median_loss"] > 0


def test_train_ratio_row_carries_both_losses(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    import train as bench_train

    bench_train.main(TRAIN)
    rows = records(capsys)
    impl = {r["impl"]: r for r in rows if r.get("impl")}
    ratio = next(r for r in rows if r.get("metric") == "ratio")
    assert ratio["mmtok_median_loss"] == impl["mmtok"]["median_loss"]
    assert ratio["gpt2_median_loss"] == impl["gpt2"]["median_loss"]
    # cross-entropy on random ids over a vocabulary of 64 (ln 64 = 4.16 at uniform predictions)
    assert all(0.0 < ratio[k] < 2 * math.log(64) for k in ("mmtok_median_loss", "gpt2_median_loss")), ratio


def test_image_speed_without_diffusers_times_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    import image as bench_image
    from test_bench_image import FAST, _picture, _tiny_tokenizer

    for i in range(2):
        _picture(tmp_path / "train" / f"t{i}.png", seed=i)
    _picture(tmp_path / "heldout" / "h0.png", seed=9)
    model = _tiny_tokenizer(tmp_path / "tok", trained_on=[])
    block(monkeypatch, tmp_path / "stubs", "diffusers")
    fast = [a for a in FAST if a != "--skip-speed"] + ["--speed-repeats", "1"]
    bench_image.main(["--data", str(tmp_path), "--model", str(model), *fast])
    rows = records(capsys)
    skipped = [r for r in rows if r.get("peer") == "diffusers"]
    assert len(skipped) == 1 and skipped[0]["bench"] == "image_speed"
    speed = [r for r in rows if r["bench"] == "image_speed" and "peer" not in r]
    assert {(r["model"], r["batch"]) for r in speed} == {(m, b) for m in (str(model), "kmeans-patches") for b in (1, 8)}
    for r in speed:
        assert r["encode_img_s"] > 0 and r["decode_img_s"] > 0
        assert r["encode_img_s_vqgan_f16"] is None and r["speedup_vs_vqgan"] is None
    bars = next(r for r in rows if r["bench"] == "image_bars")
    assert bars["encode_speedup"] is None and bars["met"]["encode_ge_50x_vqgan_f16"] is None
    assert torch.get_num_threads() == 1


def test_vq_without_vector_quantize_measures_ours_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # it printed the machine row and the peer's "skipped" row and stopped: mmtok's VQ never ran, and
    # benchmarks/gpu_check.sh called that an ok CUDA check
    import vq as bench_vq

    block(monkeypatch, tmp_path / "stubs", "vector_quantize_pytorch")
    monkeypatch.setattr(bench_vq, "fresh_peaks", lambda build, *args, threads: (1.5, 0.5, "fake"))
    assert bench_vq.main(["--n", "256", "--ks", "16", "--dim", "8", "--repeats", "1", "--train-steps", "1",
                          "--train-rounds", "1"]) == 0
    rows = records(capsys)
    assert [r["bench"] for r in rows[:2]] == ["machine", "vq"]
    assert rows[1] == {"bench": "vq", "peer": "vector_quantize_pytorch", "skipped": rows[1]["skipped"]}
    why = rows[1]["skipped"]
    assert why.endswith("pip install mmtok[bench]")
    assert not [r for r in rows if r.get("impl") == "vector_quantize_pytorch"]
    encode = {r.get("impl", r.get("metric")): r for r in rows if r["bench"] == "vq_encode"}
    assert encode["mmtok"]["exact_vs_cdist"] == 1.0 and encode["mmtok"]["peak_mib"] == 1.5
    assert encode["flop_floor_mm_only"]["gflops"] > 0
    ratio = encode["ratio"]
    assert ratio["peer"] == why and ratio["fraction_of_flop_floor"] > 0 and ratio["timings"]["peer"] is None
    assert ratio["speedup_vs_vector_quantize"] is ratio["agreement"] is ratio["exact_vs_cdist_vector_quantize"] is None
    train = {r.get("impl", r.get("metric")): r for r in rows if r["bench"] == "vq_train"}
    assert set(train) == {"mmtok", "ratio"} and train["mmtok"]["mse"] > 0 and train["mmtok"]["usage"] > 0
    assert train["ratio"]["peer"] == why and train["ratio"]["mmtok_mse"] == train["mmtok"]["mse"]
    assert all(train["ratio"][k] is None for k in ("speedup_vs_vector_quantize", "speedup_per_round",
                                                   "vector_quantize_mse", "vector_quantize_usage"))


def test_vq_encode_measures_each_sides_peak_in_a_fresh_process(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    # one warmed process let the second side reuse what the first freed: ours read 0.0 MiB beside the peer's 79
    pytest.importorskip("vector_quantize_pytorch")
    import vq as bench_vq

    calls = []

    def fake_fresh_peaks(build: object, *args: object, threads: int) -> tuple[float, float, str]:
        calls.append((build, args))
        return (12.5, 3.0, "fake") if args[0] == "mmtok" else (80.0, 79.0, "fake")

    monkeypatch.setattr(bench_vq, "fresh_peaks", fake_fresh_peaks)
    bench_vq.bench_encode(512, 16, 8, 1, torch.device("cpu"), [256, 512])
    rows = {r.get("impl", r.get("metric")): r for r in records(capsys)}
    best = rows["vector_quantize_pytorch"]["slice"]
    assert calls == [(bench_vq.encode_call, ("mmtok", 512, 16, 8, best)),
                     (bench_vq.encode_call, ("vector_quantize_pytorch", 512, 16, 8, best))]
    assert (rows["mmtok"]["peak_mib"], rows["mmtok"]["peak_mib_second_call"]) == (12.5, 3.0)
    assert (rows["vector_quantize_pytorch"]["peak_mib"], rows["vector_quantize_pytorch"]["peak_mib_second_call"]) == \
        (80.0, 79.0)
    assert rows["mmtok"]["peak_measured_by"] == "fake; in a fresh process with the inputs and model loaded"
    # what the fresh process runs: the same inputs and codebook, both sides the same codes
    ours, peer = (bench_vq.encode_call(impl, 512, 16, 8, 128)() for impl in ("mmtok", "vector_quantize_pytorch"))
    assert torch.equal(ours, peer.to(ours.dtype)) and ours.shape == (512,)
