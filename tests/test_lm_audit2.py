"""The language-model side as a researcher meets it: a schedule whose floor is above its peak is refused; a run whose
recorded tokenizer folder has moved says which tokenizer it is and how to pass it, and a tokenizer flag that makes
other ids than the run's is named as the flag it is."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from mmtok.cli import main
from mmtok.core.checkpoint import save_checkpoint
from mmtok.core.errors import RunRefusedError, UsageError, VocabularyError
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.lm.sample import sample_run
from mmtok.lm.train_config import TrainConfig, check_config, lr_at
from mmtok.stream.text import train_bpe


def test_a_lowered_lr_under_the_default_min_lr_is_refused() -> None:
    cfg = TrainConfig(lr=1e-4, steps=10, warmup=1)  # min_lr left at its default, 3e-4
    assert lr_at(cfg, 9) > lr_at(cfg, 1)  # what the run would do: climb to 3e-4 after its warmup to 1e-4
    with pytest.raises(RunRefusedError, match=r"min_lr \(--min-lr\) 0\.0003 is above lr \(--lr\) 0\.0001") as e:
        check_config(cfg)  # before: accepted, the learning rate rising to three times its peak
    assert "--min-lr 1e-05" in str(e.value) and "\n" not in str(e.value)
    check_config(TrainConfig(lr=1e-4, min_lr=1e-4))  # a flat schedule is fine
    check_config(TrainConfig(lr=0.0, min_lr=0.0))
    check_config(cfg, recorded={"lr": 1e-4, "min_lr": 3e-4})  # a run started so goes on as it was
    with pytest.raises(RunRefusedError, match="above lr"):  # a resumed run's --lr lowered under its own floor
        check_config(cfg, recorded={"lr": 3e-3, "min_lr": 3e-4})


def test_mmtok_train_refuses_it_before_anything_is_written(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    try:
        code = main(["train", "--data", str(tmp_path / "shards"), "--out", str(out), "--lr", "1e-4",
                     "--no-progress"])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and "--min-lr" in err and "above lr (--lr) 0.0001" in err
    assert not out.exists()


def _bpe_run(root: Path) -> tuple[Path, Path]:
    """A run (one checkpoint of an untrained tiny model) over a BPE trained in ``root/bpe``, as ``mmtok tokenize
    --text root/bpe`` records it: the BPE folder's absolute path."""
    bpe = root / "bpe"
    train_bpe(["a red square and a blue circle"] * 30, vocab_size=270).save(bpe)
    spec = TokenizerSpec(text=str(bpe.resolve()))
    vocab = build_interleaver(spec).vocab
    torch.manual_seed(0)
    cfg = replace(ModelConfig.preset("tiny", vocab_size=vocab.size), max_seq_len=64)
    run = root / "run"
    save_checkpoint(run / "ckpt-0000001", kind=Transformer.KIND, tensors=Transformer(cfg).state_dict(),
                    config={"model": asdict(cfg), "vocab": vocab.to_dict(), "tokenizers": asdict(spec),
                            "train": {"data": "shards"}})
    return run, bpe


def test_a_moved_bpe_folder_is_named_as_the_runs_text_tokenizer(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    run, bpe = _bpe_run(tmp_path)
    moved = tmp_path / "elsewhere"
    shutil.move(str(bpe), moved)
    with pytest.raises(UsageError) as e:  # before: "no checkpoint at .../bpe: the folder does not exist", no more
        sample_run(run, "a red", max_new_tokens=2, seed=0)
    said = str(e.value)
    assert said.startswith(f"{run} was trained with the text tokenizer {bpe.resolve()} (as its shards shards")
    assert "the folder does not exist" in said and "pass it with --text MODEL" in said and "\n" not in said
    assert main(["sample", "--run", str(run), "--prompt", "a red", "--max-new-tokens", "2", "--seed", "0"]) == 2
    assert "pass it with --text MODEL" in capsys.readouterr().err
    out = sample_run(run, "a red", max_new_tokens=2, seed=0, tokenizers={"text": str(moved)})
    assert out.pretty.startswith("a red")  # passed again, it samples
    assert json.loads((run / "ckpt-0000001" / "config.json").read_text())  # the run itself is untouched


def test_a_tokenizer_flag_of_other_ids_is_named_as_the_flag(tmp_path: Path) -> None:
    run, _ = _bpe_run(tmp_path)
    with pytest.raises(VocabularyError) as e:  # before: "the tokenizers recorded in RUN was made with a different
        sample_run(run, "a", max_new_tokens=1, tokenizers={"text": "byte"})  # vocabulary ... or re-tokenize."
    said = str(e.value)
    assert said.startswith(f"{run} was trained on other ids than the tokenizers --text byte make (the run's vs theirs: "
                           "text_size: 270 vs 256")
    assert "leave --text out" in said and "recorded" not in said and "re-tokenize" not in said


def test_a_resume_from_another_folder_says_the_runs_data_path_is_relative(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    start = tmp_path / "start"
    start.mkdir()
    (start / "docs.jsonl").write_text('{"segments": [{"text": "hello world, a tiny document"}]}\n' * 20)
    monkeypatch.chdir(start)
    assert main(["tokenize", "docs.jsonl", "--out", "sh", "--no-progress"]) == 0
    assert main(["train", "--data", "sh", "--out", "run", "--steps", "2", "--save-every", "2", "--no-progress",
                 "--threads", "1"]) == 0
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["train", "--out", "start/run", "--resume", "--steps", "4", "--no-progress"]) == 2
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert said == (f"mmtok: error: --resume: the run's own --data sh is a path relative to the folder the run was "
                    f"started from, and {tmp_path} has no sh: run the command from that folder, or give --data SHARDS")
    assert main(["train", "--out", "start/run", "--resume", "--steps", "4", "--no-progress", "--data", "start/sh",
                 "--threads", "1"]) == 0
