"""The command line's errors and help: one line each (exit 2 for bad usage or refused inputs, 1 for failures
while running, 130 when interrupted), a traceback only with --debug or MMTOK_DEBUG=1; every option of every command described."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from mmtok import cli
from mmtok.cli import main
from mmtok.data.corpus import tokenize_corpus


def text_shards(folder: Path) -> Path:
    """Shards of 20 short text documents in ``folder``."""
    docs = folder / "docs.jsonl"
    docs.write_text("".join(json.dumps({"segments": [{"text": f"document {k} " * 30}]}) + "\n" for k in range(20)))
    tokenize_corpus(docs, folder / "shards", shard_tokens=2000, progress=False)
    return folder / "shards"


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_shards(tmp_path_factory.mktemp("cli-errors"))


def usage_status(argv: list[str]) -> int:
    """``main(argv)``'s exit status: bad options exit through ``SystemExit(2)``, as argparse does."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code or 0)


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mmtok: error: "), err
    return err


TRAIN = ["--seq-len", "32", "--batch-size", "2", "--steps", "2", "--warmup", "1", "--save-every", "2",
         "--threads", "1"]


@pytest.mark.parametrize(("flag", "value"), [("--steps", "0"), ("--batch-size", "0"), ("--grad-accum", "0"),
                                             ("--save-every", "0"), ("--keep-last", "-1"), ("--steps", "two")])
def test_bad_train_counts_are_usage_errors(shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           flag: str, value: str) -> None:
    out = tmp_path / "run"
    assert usage_status(["train", "--data", str(shards), "--out", str(out), *TRAIN, flag, value]) == 2
    err = one_line_error(capsys)
    assert f"argument {flag}" in err and "mmtok train --help" in err
    assert not out.exists()


def test_bad_choices_list_the_valid_ones(shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_status(["train", "--data", str(shards), "--out", str(tmp_path / "r"), "--preset", "nope"]) == 2
    assert "invalid choice: 'nope' (choose from 'tiny', 'small', 'base')" in one_line_error(capsys)
    assert usage_status(["nope"]) == 2
    assert "'train-tokenizer'" in one_line_error(capsys)
    assert usage_status(["train-tokenizer", "pictures"]) == 2
    assert "choose from 'image', 'audio', 'text', 'vocoder'" in one_line_error(capsys)
    assert usage_status(["context", "5m", "--kv-dtype", "fp4"]) == 2
    assert "'int8'" in one_line_error(capsys)
    assert usage_status(["train", "--out", str(tmp_path / "r")]) == 2  # --data missing
    assert "the following arguments are required: --data" in one_line_error(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_a_missing_gpu_fails_before_writing(shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "--data", str(shards), "--out", str(out), *TRAIN, "--device", "cuda"]) == 1
    assert "no CUDA GPU" in one_line_error(capsys) and not out.exists()


def test_refused_inputs_exit_2_with_one_line(shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert main(["tokenize", str(empty), "--out", str(tmp_path / "s"), "--quiet"]) == 2
    assert "no documents" in one_line_error(capsys)
    assert main(["train", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "r"), *TRAIN]) == 2
    assert "no manifest.json" in one_line_error(capsys)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"segments": [{"text": "a"}]}\n{"segments": [{"text": "b"},, ]}\n')
    assert main(["tokenize", str(bad), "--out", str(tmp_path / "s2"), "--quiet", "--strict"]) == 2
    assert "bad.jsonl:2: invalid JSON (Expecting value at column 29)" in one_line_error(capsys)  # the real column


def test_train_refuses_an_existing_run_and_prints_where_it_ended(shards: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "--data", str(shards), "--out", str(out), *TRAIN]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.startswith(f"run {out}: newest checkpoint {out / 'ckpt-0000002'}, final loss ")
    assert main(["train", "--data", str(shards), "--out", str(out), *TRAIN]) == 2
    assert "already holds a run" in one_line_error(capsys)
    assert usage_status(["train", "--data", str(shards), "--out", str(out), *TRAIN, "--resume", "--overwrite"]) == 2
    assert "not allowed with argument" in one_line_error(capsys)
    assert main(["train", "--data", str(shards), "--out", str(out), *TRAIN, "--overwrite"]) == 0


def test_unexpected_errors_are_one_line_unless_debug(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    def boom(args: argparse.Namespace) -> int:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(cli, "_cmd_export", boom)
    monkeypatch.delenv("MMTOK_DEBUG", raising=False)
    argv = ["export", "x", "--to", "bin", "--out", "y"]
    assert main(argv) == 1
    assert one_line_error(capsys) == ("mmtok: error: boom second line (RuntimeError; rerun with --debug for the "
                                      "traceback)")
    assert main(["--debug", *argv]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.strip().splitlines()[-1] == "mmtok: error: boom second line"
    monkeypatch.setenv("MMTOK_DEBUG", "1")
    assert main(argv) == 1
    assert "Traceback" in capsys.readouterr().err


def test_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_export", interrupted)
    assert main(["export", "x", "--to", "bin", "--out", "y"]) == 130
    assert "interrupted" in capsys.readouterr().err


COMMANDS = [[], ["demo"], ["train-tokenizer"], ["train-tokenizer", "image"], ["train-tokenizer", "audio"],
            ["train-tokenizer", "text"], ["train-tokenizer", "vocoder"], ["tokenize"], ["train"], ["context"],
            ["export"], ["export-hf"], ["sample"], ["prune-codebook", "image"], ["prune-codebook", "audio"],
            ["encode"], ["decode"], ["info"], ["eval"]]
# parsers whose help shows every default (the others are the trainers with their own formatters)
SHOWS_DEFAULTS = {"mmtok demo", "mmtok train-tokenizer", "mmtok train-tokenizer image", "mmtok train-tokenizer audio",
                  "mmtok tokenize", "mmtok train", "mmtok context", "mmtok export", "mmtok export-hf"}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "mmtok")
def test_every_help_exits_0_and_describes_every_option(command: list[str], monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[argparse.ArgumentParser] = []
    parse = argparse.ArgumentParser.parse_known_args

    def recording(self: argparse.ArgumentParser, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.append(self)
        return parse(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", recording)
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code in (0, None)
    assert "usage:" in capsys.readouterr().out
    parser = seen[-1]  # the parser that printed the help
    assert not parser.allow_abbrev, f"{parser.prog} takes abbreviated flags"
    if command != ["train-tokenizer", "vocoder"]:  # that trainer names itself after its module
        assert parser.prog == " ".join(["mmtok", *command])
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        assert action.help and action.help.strip(), f"{parser.prog} {action.option_strings or action.dest}: no help"
        if parser.prog in SHOWS_DEFAULTS and action.default not in (None, False, argparse.SUPPRESS) \
                and action.option_strings and action.dest != "help":
            shown = parser.formatter_class(parser.prog)._get_help_string(action) or ""
            assert "default" in shown.lower(), f"{parser.prog} {action.option_strings}: default not shown"


@pytest.mark.parametrize("argv", [["info", "audio", "--jsn"], ["--debug", "context", "600", "--jsn"],
                                  ["export", "x", "--to", "bin", "--out", "y", "--fast"],
                                  ["info", "audio", "--js"], ["context", "600", "--jso"]])  # no abbreviations
def test_a_misspelled_flag_points_to_its_own_commands_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    command = next(a for a in argv if not a.startswith("-"))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err == (f"mmtok: error: {command}: unrecognized arguments: {argv[-1]}; "
                                         f"see 'mmtok {command} --help'")


@pytest.mark.parametrize(("modality", "flags", "why"), [
    ("image", ["--steps", "0"], "--steps must be at least 1"),
    ("image", ["--lr", "-1"], "--lr must be > 0"),
    ("image", ["--lr", "nan"], "--lr must be > 0"),
    ("image", ["--batch-size", "0"], "--batch-size must be at least 1"),
    ("image", ["--save-every", "0"], "--save-every must be at least 1"),
    ("image", ["--crop", "17"], "--crop must be a multiple of 16"),
    ("image", ["--scale-min", "3", "--scale-max", "1"], "0 < MIN <= MAX"),
    ("image", ["--device", "tpu!"], "is not a device"),
    ("audio", ["--steps", "-2"], "--steps must be at least 1"),
    ("audio", ["--warmup", "-5"], "--warmup must be at least 0"),
    ("audio", ["--crop-tokens", "0"], "--crop-tokens must be at least 1"),
    ("audio", ["--val-fraction", "1.5"], "--val-fraction in [0, 1)"),
])
def test_trainer_values_out_of_range_are_refused_before_any_work(
        modality: str, flags: list[str], why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["train-tokenizer", modality, "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *flags])
    assert e.value.code == 2 and why in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_text_vocabulary_smaller_than_the_bytes_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.txt").write_text("some text to learn from\n" * 20)
    with pytest.raises(SystemExit) as e:
        main(["train-tokenizer", "text", str(tmp_path / "t.txt"), "--vocab-size", "100", "--out", str(tmp_path / "tok")])
    assert e.value.code == 2 and "--vocab-size must be at least 256" in capsys.readouterr().err
    (tmp_path / "latin1.txt").write_bytes("un café à la crème\n".encode("latin-1") * 5)
    (tmp_path / "empty.txt").write_text("\n")
    for name, why in (("latin1.txt", "is not UTF-8 text (byte 0xe9 at offset 6)"), ("empty.txt", "no text to learn")):
        with pytest.raises(SystemExit) as e:
            main(["train-tokenizer", "text", str(tmp_path / name), "--vocab-size", "300", "--out", str(tmp_path / "t")])
        assert e.value.code == 2 and why in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_a_data_folder_with_nothing_to_train_on_is_refused_with_exit_2(
        modality: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["train-tokenizer", modality, "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run")]) == 2
    assert f"holds no {modality} files" in capsys.readouterr().err
