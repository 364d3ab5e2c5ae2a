"""One exit status per kind of refusal across commands: a refused flag, file or folder exits 2 (an ``--out`` in
the way of a trainer, ``mmtok train``'s numbers, every ``--seed`` in one range, ``--threads``), a failure while
running 1; the vocoder trainer and prune-codebook show a traceback when asked; ``mmtok train`` says on stderr
that ``--resume`` starts afresh; the vocoder trainer picks its device as every command does."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import torch

from mmtok.core.errors import RunRefusedError, TrainingError, UsageError, exit_status
from mmtok.core.ranges import seed_arg
from mmtok.core.run_folder import TOKENIZER_RUN_MARKS, check_resume_folder, check_run_folder
from mmtok.lm.train import TrainConfig, check_config
from tests.test_cli_errors import text_shards, usage_status


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_shards(tmp_path_factory.mktemp("exit-codes"))


def last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def notes_folder(tmp_path: Path) -> Path:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    return out


# --------------------------------------------------------------------------- an --out in the way: exit 2


def test_every_run_folder_refusal_is_a_refused_folder(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine")
    mine, run = notes_folder(tmp_path), tmp_path / "run"
    (run / "train-state").mkdir(parents=True)
    (run / "train-state" / "config.json").write_text("{}")
    (tmp_path / "model-only" / "model").mkdir(parents=True)
    (tmp_path / "model-only" / "model" / "config.json").write_text("{}")
    refusals = [lambda: check_run_folder(afile, resume=False, overwrite=False, marks=TOKENIZER_RUN_MARKS),
                lambda: check_run_folder(mine, resume=False, overwrite=False, marks=TOKENIZER_RUN_MARKS),
                lambda: check_run_folder(mine, resume=True, overwrite=False, marks=TOKENIZER_RUN_MARKS),
                lambda: check_run_folder(run, resume=False, overwrite=False, marks=TOKENIZER_RUN_MARKS),
                lambda: check_resume_folder(tmp_path / "model-only")]
    for refuse in refusals:
        with pytest.raises(RunRefusedError) as e:
            refuse()
        assert isinstance(e.value, TrainingError) and isinstance(e.value, UsageError)  # `except TrainingError` holds
        assert exit_status(e.value) == 2
    assert (mine / "notes.txt").read_text() == "mine\n" and afile.read_text() == "mine"


def test_train_into_a_folder_of_other_files_exits_2_as_every_command(
        shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = notes_folder(tmp_path)
    for again in ([], ["--resume"], ["--overwrite"]):
        assert usage_status(["train", "--data", str(shards), "--out", str(mine), "--threads", "1", *again]) == 2
        err = last_line(capsys)
        assert err.startswith("mmtok: error: ") and "holds no mmtok train run" in err and "pick an empty" in err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


# --------------------------------------------------------------------------- mmtok train's numbers: exit 2


@pytest.mark.parametrize("bad", [["--lr", "nan"], ["--lr", "-1"], ["--min-lr", "inf"], ["--warmup", "-5"],
                                 ["--dropout", "2"], ["--dropout", "1"], ["--grad-clip", "-1"],
                                 ["--weight-decay", "-0.5"]])
def test_train_refuses_a_number_out_of_range_by_its_flag_before_any_work(
        bad: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert usage_status(["train", "--data", str(tmp_path / "no-shards"), "--out", str(out), *bad]) == 2
    err = last_line(capsys)
    assert err.startswith(f"mmtok: error: train: {bad[0]} must be ") and f"give {bad[0]} " in err
    assert "_" not in err.split(";")[0]  # the flag, not the config field (weight_decay)
    assert not out.exists()


@pytest.mark.parametrize(("field", "value"), [("lr", math.nan), ("warmup", -5), ("dropout", 1.0), ("grad_clip", -1.0),
                                              ("steps", 0), ("seed", 2**32), ("seed", -1), ("seed", 1.5),
                                              ("threads", 0), ("preset", "huge")])
def test_a_setting_check_config_refuses_is_a_refusal_too(field: str, value: object, tmp_path: Path) -> None:
    cfg = TrainConfig(data=str(tmp_path / "shards"), out=str(tmp_path / "run"), **{field: value})  # type: ignore[arg-type]
    with pytest.raises(RunRefusedError, match=f"^{field}|preset") as e:
        check_config(cfg)
    assert exit_status(e.value) == 2 and isinstance(e.value, TrainingError)
    check_config(TrainConfig(seed=2**32 - 1, threads=None, dropout=0.0, warmup=0, grad_clip=0.0))


# --------------------------------------------------------------------------- one --seed range, one --threads


SEEDED = [["train", "--data", "nowhere", "--out", "{out}"],
          ["demo", "--out", "{out}"],
          ["prune-codebook", "image", "--model", "nowhere", "--data", "nowhere", "--keep", "4", "--out", "{out}"],
          ["prune-codebook", "audio", "--model", "nowhere", "--cache", "nowhere", "--keep", "4", "--out", "{out}"]]


@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**63), str(2**64)])
@pytest.mark.parametrize("command", SEEDED, ids=lambda c: " ".join(c[:2]))
def test_every_seed_is_a_whole_number_below_2_to_the_32(
        command: list[str], seed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = [a.replace("{out}", str(out)) for a in command]
    assert usage_status([*argv, "--seed", seed]) == 2
    err = last_line(capsys)
    assert f"argument --seed: must be a whole number in [0, 4294967295], got {seed}" in err and not out.exists()


def test_the_largest_seed_is_taken_by_every_command() -> None:
    from mmtok.audio.prune import build_parser as audio_prune
    from mmtok.image.prune import build_parser as image_prune
    from mmtok.lm.command import train_parser

    for parser in (train_parser(), image_prune(), audio_prune()):
        seed = next(a for a in parser._actions if a.dest == "seed")
        assert seed.type is seed_arg and seed.type(str(2**32 - 1)) == 2**32 - 1
    torch.manual_seed(2**32 - 1)
    torch.Generator().manual_seed(2**32 - 1)


@pytest.mark.parametrize("modality", ["image", "audio"])
@pytest.mark.parametrize("threads", ["0", "-2", "two"])
def test_prune_codebook_threads_is_a_count(modality: str, threads: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data", str(tmp_path)] if modality == "image" else ["--cache", str(tmp_path)]
    out = tmp_path / "out"
    assert usage_status(["prune-codebook", modality, "--model", "nowhere", *data, "--keep", "4", "--out", str(out),
                   "--threads", threads]) == 2
    assert "argument --threads: " in last_line(capsys) and not out.exists()


# --------------------------------------------------------------------------- a traceback when asked


@pytest.mark.parametrize("debug", [False, True])
def test_prune_codebook_shows_the_traceback_when_asked(debug: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.image.prune import main as prune_image

    monkeypatch.delenv("MMTOK_DEBUG", raising=False)
    (tmp_path / "photos").mkdir()
    assert prune_image(["--model", str(tmp_path / "nonexist"), "--data", str(tmp_path / "photos"), "--keep", "4",
                        "--out", str(tmp_path / "out")], debug=debug) == 2
    err = capsys.readouterr().err.strip()
    assert ("Traceback (most recent call last)" in err) is debug
    assert err.splitlines()[-1].startswith("mmtok: error: prune-codebook image: ") and str(tmp_path / "nonexist") in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("debug", [False, True])
def test_the_vocoder_trainer_shows_the_traceback_when_asked(debug: bool, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio import vocoder_train

    monkeypatch.delenv("MMTOK_DEBUG", raising=False)
    assert vocoder_train.main(["--cache", str(tmp_path / "nonexist")], debug=debug) == 2
    err = capsys.readouterr().err.strip()
    assert ("Traceback (most recent call last)" in err) is debug
    assert err.splitlines()[-1] == f"mmtok: error: cache {tmp_path / 'nonexist'} is not built; pass --corpus to build it"


# --------------------------------------------------------------------------- device default, afresh note


def _device_action(parser: argparse.ArgumentParser) -> argparse.Action:
    return next(a for a in parser._actions if a.dest == "device")


def test_the_vocoder_trainer_picks_its_device_as_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.audio import vocoder_train
    from mmtok.image.train import build_parser as image_parser

    assert _device_action(vocoder_train.build_parser()).help == _device_action(image_parser()).help
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert vocoder_train.build_parser().get_default("device") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert vocoder_train.build_parser().get_default("device") == "cpu"


def test_train_says_on_stderr_that_resume_starts_afresh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from mmtok.lm.train import _resume

    out = tmp_path / "run"
    out.mkdir()
    _resume(SimpleNamespace(folder=out, master=True, step=0, ddp=False), True)  # type: ignore[arg-type]  # no checkpoint in it
    said = capsys.readouterr()
    assert said.out == "" and said.err == (f"mmtok: {out} holds no ckpt-*/ to resume (a run stopped before its first "
                                           "checkpoint, or none yet): starting it afresh with the flags given\n")
