"""benchmarks/train.py refuses a --seq-len and --batch whose training step cannot fit in memory before it
builds a model, with the longest --seq-len that fits (it used to start and be killed by the kernel)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import train as bench_train

from mmtok.core.errors import UsageError


def test_a_step_too_large_for_memory_is_refused_with_the_longest_that_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_train, "available_memory", lambda device: (2**30, "available (MemAvailable)"))
    built = []
    monkeypatch.setattr(bench_train, "build_models", lambda *a, **k: built.append(a))
    with pytest.raises(UsageError) as said:
        bench_train.main(["--seq-len", "100000", "--steps", "1", "--device", "cpu"])
    message = str(said.value)
    assert message.startswith("--seq-len 100000 --batch 8: one training step of the tiny model needs about ")
    assert "but 1.0 GiB is available (MemAvailable); give --seq-len " in message
    longest = int(message.split("give --seq-len ")[1].split()[0])
    args = bench_train.build_parser().parse_args(["--seq-len", str(longest)])
    cfg = bench_train.ModelConfig.preset("tiny", vocab_size=2048, max_seq_len=longest + 1)
    bench_train.check_memory(cfg, torch.device("cpu"), args)  # that one fits
    assert not built


def test_a_step_that_fits_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_train, "available_memory", lambda device: (2**30, "available (MemAvailable)"))
    args = bench_train.build_parser().parse_args(["--seq-len", "256"])
    bench_train.check_memory(bench_train.ModelConfig.preset("tiny", vocab_size=2048, max_seq_len=257),
                             torch.device("cpu"), args)
