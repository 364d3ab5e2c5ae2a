"""``mmtok train`` and ``mmtok sample`` refusals: a step whose document mask cannot fit the memory available,
a ``--max-new-tokens`` past the context, an ``--image-out`` extension Pillow cannot write, and the sampling
settings checked by the library's one check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmtok.core.errors import UsageError
from mmtok.lm import peak, sample, sample_output
from mmtok.lm.model import ModelConfig
from mmtok.lm.peak import check_step_memory, step_memory

MIB = 2**20
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmtok.data.corpus import tokenize_corpus

    d = tmp_path_factory.mktemp("text")
    lines = [json.dumps({"segments": [f"note {i}: " + "la " * 20]}) for i in range(30)]
    (d / "docs.jsonl").write_text("\n".join(lines) + "\n")
    tokenize_corpus(d / "docs.jsonl", d / "shards")
    return d / "shards"


def _room(monkeypatch: pytest.MonkeyPatch, mib: float) -> None:
    monkeypatch.setattr(peak, "available_memory", lambda device: (int(mib * MIB), "available (MemAvailable)"))


def test_the_document_mask_costs_b_t_squared_times_one_plus_float_bytes() -> None:
    cfg = ModelConfig.preset("tiny", vocab_size=300)
    one = step_memory(cfg, batch_size=4, seq_len=6144, several_docs=False, float_bytes=4)
    two = step_memory(cfg, batch_size=4, seq_len=6144, several_docs=True, float_bytes=4)
    assert one[0] == 0 and two[0] == 4 * 6144**2 * 5 and one[1] == two[1]
    # the default run and the demo's stay far under a gigabyte
    assert sum(step_memory(cfg, batch_size=8, seq_len=256, several_docs=True, float_bytes=4)) < 256 * MIB
    assert sum(step_memory(cfg, batch_size=16, seq_len=64, several_docs=True, float_bytes=4)) < 256 * MIB


def test_a_step_past_the_memory_available_is_refused_naming_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ModelConfig.preset("tiny", vocab_size=300)
    need = sum(step_memory(cfg, batch_size=4, seq_len=4096, several_docs=True, float_bytes=4))
    half = sum(step_memory(cfg, batch_size=2, seq_len=4096, several_docs=True, float_bytes=4))
    _room(monkeypatch, (need + half) / 2 / MIB)  # batch 2 fits, batch 4 does not
    with pytest.raises(UsageError) as e:
        check_step_memory(cfg, CPU, batch_size=4, grad_accum=3, seq_len=4096, several_docs=True)
    msg = str(e.value)
    assert "\n" not in msg and "--seq-len 4096 --batch-size 4" in msg and "4 × 4096² × 5 bytes" in msg
    assert "--batch-size 2 --grad-accum 6" in msg and "available (MemAvailable)" in msg
    _room(monkeypatch, need / 4 / MIB)  # nothing at batch 4 fits: a shorter --seq-len
    with pytest.raises(UsageError, match=r"lower --seq-len to \d+ or less"):
        check_step_memory(cfg, CPU, batch_size=1, grad_accum=1, seq_len=4096, several_docs=True)
    monkeypatch.setattr(peak, "available_memory", lambda device: None)  # unknown: not refused
    check_step_memory(cfg, CPU, batch_size=4, grad_accum=1, seq_len=4096, several_docs=True)


def test_mmtok_train_refuses_before_anything_is_written(shards: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main

    _room(monkeypatch, 64)
    out = tmp_path / "deep" / "run"
    assert main(["train", "--data", str(shards), "--out", str(out), "--seq-len", "4096", "--batch-size", "4",
                 "--steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("mmtok: error: --seq-len 4096 --batch-size 4: one training step")
    assert not (tmp_path / "deep").exists()


def test_an_image_out_extension_pillow_cannot_write_is_refused_before_sampling(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--image-out .*x\.txt: Pillow cannot write \.txt images"):
        sample_output.check_output(tmp_path / "x.txt", audio=False)
    with pytest.raises(UsageError, match="Pillow cannot write"):  # before the run is even read
        sample.sample_run(tmp_path / "no-run", image_out=tmp_path / "x.txt")
    sample_output.check_output(tmp_path / "x.jpg", audio=False)


def test_max_new_tokens_past_the_context_is_said(shards: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.lm.train import TrainConfig, train

    run = train(TrainConfig(data=str(shards), out=str(tmp_path / "run"), seq_len=64, batch_size=2, steps=1,
                            warmup=0, save_every=1), progress=False)
    capsys.readouterr()
    sample.sample_run(run, "la", max_new_tokens=8, seed=0)
    assert "--max-new-tokens" not in capsys.readouterr().err
    out = sample.sample_run(run, "la", max_new_tokens=100_000, seed=0)
    err = capsys.readouterr().err.strip()
    assert err == ("mmtok sample: --max-new-tokens 100000 is more than the model's context (max_seq_len 512) "
                   "leaves after the 3-token prompt: at most 509 tokens are sampled")
    assert len(out.ids) <= 512


def test_the_sample_command_checks_with_the_library_check(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    for bad, why in ((["--top-k", "0"], "--top-k must be ≥ 1"), (["--top-p", "1.5"], r"--top-p must be in (0, 1]"),
                     (["--max-new-tokens", "-1"], "--max-new-tokens must be ≥ 0"),
                     (["--temperature", "nan"], "--temperature must be a finite number ≥ 0")):
        with pytest.raises(SystemExit) as e:
            sample.main(["--run", "nowhere", *bad])
        assert e.value.code == 2 and why in capsys.readouterr().err

    def check(**kwargs: object) -> None:
        raise ValueError("the library's words")

    monkeypatch.setattr(sample, "_check_sampling", check)
    with pytest.raises(SystemExit):
        sample.main(["--run", "nowhere"])
    assert "the library's words" in capsys.readouterr().err


def test_torchrun_processes_on_one_host_share_its_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU every process torchrun starts on the host takes a step of its own: two fit only if each fits
    in half of what is available."""
    cfg = ModelConfig.preset("tiny", vocab_size=300)
    need = sum(step_memory(cfg, batch_size=4, seq_len=2048, several_docs=True, float_bytes=4))
    _room(monkeypatch, need * 1.5 / MIB)
    check_step_memory(cfg, CPU, batch_size=4, grad_accum=1, seq_len=2048, several_docs=True)  # one process fits
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(UsageError, match="shared by 2 processes on this host"):
        check_step_memory(cfg, CPU, batch_size=4, grad_accum=1, seq_len=2048, several_docs=True)
