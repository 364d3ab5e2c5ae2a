"""`mmtok info` of a checkpoint a save killed between its two renames left only as its backup
(``.NAME.old-*`` in place of ``NAME``): read there, as ``mmtok.load`` reads it, and nothing written (no recovery,
no lock). The kills are built as the files they leave, in-process."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mmtok.cli import main
from mmtok.core.checkpoint import save_checkpoint
from mmtok.core.trainstate import OPTIMIZER_NAME
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver
from mmtok.info import describe
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.lm.runs import load_run
from tests.test_run_recovery import kill_mid_swap

READ_FROM = "(a save stopped between its two renames left it)"


def lm_checkpoint(folder: Path, step: int) -> Path:
    """A tiny transformer checkpoint as ``mmtok train`` saves one (its config: model, train, vocabulary)."""
    vocab = build_interleaver(TokenizerSpec()).vocab
    cfg = ModelConfig(vocab_size=vocab.size, n_layer=1, n_head=2, n_kv_head=1, d_model=16, max_seq_len=16)
    torch.manual_seed(step)
    model = Transformer(cfg)
    return save_checkpoint(folder, kind=Transformer.KIND, tensors=dict(model.state_dict()),
                           config={"model": asdict(cfg), "train": {"steps": 4}, "vocab": vocab.to_dict(),
                                   "fingerprint": vocab.fingerprint}, extra_meta={"train": {"step": step}})


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``folder``: its inode and change time (what a rename, a write or a removal changes)."""
    return {str(p.relative_to(folder)): (p.lstat().st_ino, p.lstat().st_ctime_ns) for p in folder.rglob("*")}


def test_a_checkpoint_is_described_from_its_backup_and_nothing_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = lm_checkpoint(tmp_path / "model", 2)
    want = describe(model)
    backup = kill_mid_swap(model)
    before = snapshot(tmp_path)
    got = describe(model)
    assert got == {**want, "read_from": f"{backup} {READ_FROM}"}
    assert got["parameters"] and got["megabytes"] is not None  # the weights are read where the config was
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"checkpoint: {model}\n  read_from ") and str(backup) in out
    assert snapshot(tmp_path) == before and not model.exists()  # not put back, no lock taken


def test_a_tokenizer_runs_state_and_model_are_described_from_their_backups(tmp_path: Path) -> None:
    run = tmp_path / "run"
    lm_checkpoint(run / "train-state", 6)
    save_file({"rng.torch": torch.get_rng_state()}, str(run / "train-state" / OPTIMIZER_NAME))  # what --resume reads
    lm_checkpoint(run / "model", 6)
    want = describe(run)
    kill_mid_swap(run / "train-state")
    model = kill_mid_swap(run / "model")
    before = snapshot(tmp_path)
    got = describe(run)
    assert got["what"] == want["what"] == "tokenizer run" and got["step"] == want["step"] == 6
    assert got["model"] == {**want["model"], "read_from": f"{model} {READ_FROM}"} and got["model"]["parameters"]
    assert snapshot(tmp_path) == before


def test_a_run_and_load_run_read_its_newest_checkpoint_from_its_backup(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    lm_checkpoint(run / "ckpt-0000002", 2)
    newest = lm_checkpoint(run / "ckpt-0000004", 4)
    weights = load_run(run)[0].state_dict()
    backup = kill_mid_swap(newest)  # killed while saving step 4 again
    before = snapshot(tmp_path)
    d = describe(run)
    assert d["what"] == "run" and d["step"] == 4 and d["checkpoints"] == ["ckpt-0000002", "ckpt-0000004"]
    assert d["read_from"] == f"{backup} {READ_FROM}"
    for where in (run, newest):  # the run, and its checkpoint by name
        model, _, cfg = load_run(where)
        assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items()) and cfg["train"] == {"steps": 4}
    assert main(["info", str(newest)]) == 0 and str(backup) in capsys.readouterr().out
    assert snapshot(tmp_path) == before
    shutil.rmtree(run / "ckpt-0000002")  # the only checkpoint is the backup
    before = snapshot(tmp_path)
    assert describe(run)["checkpoints"] == ["ckpt-0000004"]
    assert all(torch.equal(v, weights[k]) for k, v in load_run(run)[0].state_dict().items())
    assert snapshot(tmp_path) == before and not newest.exists()  # not put back, no lock taken
