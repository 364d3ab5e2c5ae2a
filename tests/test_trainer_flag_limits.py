"""The tokenizer trainers' and prune-codebook's command lines at their upper edges: a numeric flag whose arrays
this machine cannot hold, or that would run for days, is refused before any work with the flag, its value and
the limit (a memory estimate against the machine's memory, with the figures); a manifest row for a missing file
is one refusal naming the manifest, its lines and paths; a training run's folder given where a model is read
is that run's model; and the text trainer says a folder is a folder."""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_helpers import small_tokenizer
from image_helpers import fitted_tiny_tokenizer, save_smooth_picture, tiny_config

from mmtok.audio import vocoder_train
from mmtok.audio.train_checks import check_args as check_audio_args
from mmtok.audio.train_options import build_parser as build_audio_parser
from mmtok.audio.vocoder_checks import check_options
from mmtok.cli import main
from mmtok.core import limits
from mmtok.core.errors import UsageError
from mmtok.core.module_io import save_module
from mmtok.core.ranges import Range, out_of_range
from mmtok.core.run_folder import run_model
from mmtok.image import train as image_train
from mmtok.image.train_checks import check_args

pytestmark = pytest.mark.usefixtures("one_thread")

GIB = 2**30


@pytest.fixture
def eight_gib(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine, as the memory checks see it, holds 8 GiB: the figures in a refusal are known."""
    monkeypatch.setattr(limits, "machine_memory", lambda: 8 * GIB)


def _mmtok(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``mmtok ARGV``: (exit status, the last line of stderr)."""
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = int(e.code or 0)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def _pictures(tmp_path: Path) -> Path:
    data = tmp_path / "pictures"
    data.mkdir(exist_ok=True)
    for i in range(2):
        save_smooth_picture(data / f"{i}.png", 64, seed=i)
    return data


def _image(tmp_path: Path, *extra: str) -> list[str]:
    """``train-tokenizer image`` on two pictures into ``tmp_path/run``, ``extra`` flags after."""
    return ["train-tokenizer", "image", "--data", str(_pictures(tmp_path)), "--out", str(tmp_path / "run"),
            "--no-progress", *extra]


def _clips(folder: Path, n: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(16000) / 16000
    for i in range(n):
        sf.write(folder / f"{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32), 16000)
    return folder


def _said(line: str, flag: str, value: str) -> None:
    """``line`` refuses ``flag`` ``value`` (a float as ``:g`` writes it) by name and says the most it may be."""
    value = value if value.isdigit() else f"{float(value):g}"
    assert f"{flag} {value}" in line or (f"{flag} must be" in line and f"(got {value})" in line), line
    assert re.search(rf"{re.escape(flag)}[^;]* at most [0-9]", line), line


# --------------------------------------------------------------------------- large numeric flags


@pytest.mark.parametrize("flags", [
    ("--crop", "1000000000000"), ("--crop", "4112"), ("--synthetic", "1000000000000"),
    ("--init-crops", "1000000000000"), ("--rebalance-crops", "100000000000", "--rebalance-at", "1"),
    ("--batch-size", "100000000000"), ("--base-side", "10000000"), ("--codebook-size", "100000000000"),
    ("--latent-dim", "10000000000"), ("--disc-channels", "10000000000", "--disc-weight", "1"),
    ("--threads", "1000000"), ("--rebalance-iters", "1000000000"), ("--ssim-weight", "1e300"),
    ("--disc-weight", "1e300"), ("--steps", "1" + "0" * 30),
])
def test_a_huge_value_of_an_image_trainer_flag_is_refused_before_any_work(
        flags: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _mmtok(capsys, *_image(tmp_path, *flags))
    assert code == 2
    _said(line, flags[0], flags[1])
    assert not (tmp_path / "run").exists()


@pytest.mark.usefixtures("eight_gib")
def test_a_memory_refusal_gives_the_bytes_the_memory_and_the_largest_value_that_fits(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _mmtok(capsys, *_image(tmp_path, "--batch-size", "100000", "--crop", "1024"))
    # one batch: 100000 crops of 3 x 1024 x 1024 float32 and their reconstructions, 2.3 TiB; 8 GiB hold 341
    assert code == 2
    assert "--batch-size 100000, --crop 1024: one batch of crops and its reconstruction (float32): about 2.3 TiB, " \
           "more than this machine's 8.0 GiB of memory" in line
    assert "--batch-size at most 341 (with --crop 1024)" in line
    assert "--crop at most 16 (with --batch-size 100000)" not in line  # 16 does not fit either: not offered
    code, line = _mmtok(capsys, *_image(tmp_path, "--batch-size", "1000", "--crop", "1024", "--init-crops", "16"))
    assert code == 2 and "--crop at most 592 (with --batch-size 1000)" in line  # a multiple of 16, as --crop takes


def test_long_runs_and_the_defaults_pass_the_checks(tmp_path: Path, eight_gib: None) -> None:
    """On a machine of 8 GiB every trainer's defaults pass, and so do ten million steps."""
    parser = image_train.build_parser()
    args = parser.parse_args(_image(tmp_path, "--steps", "10000000", "--save-every", "100000")[2:])
    check_args(parser, args, image_train.STATE_DIR)  # no refusal
    assert args.steps == 10_000_000
    parser = build_audio_parser()
    for encoder in ("slice", "conv"):
        args = parser.parse_args(["--data", str(_clips(tmp_path / "clips")), "--out", str(tmp_path / "run"),
                                  "--steps", "10000000", "--encoder", encoder])
        check_audio_args(parser, args)
    parser = vocoder_train.build_parser()
    args = parser.parse_args(["--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "--steps",
                              "10000000", "--disc-weight", "1", "--synthetic", "1000", "--device", "cpu"])
    check_options(parser, args)


@pytest.mark.parametrize("flags", [
    ("--crop-tokens", "1000000000"), ("--batch-size", "1000000000"), ("--kmeans-iters", "1000000000"),
    ("--kmeans-balance", "1000000000"), ("--encoder-channels", "1000000", "--encoder", "conv"),
    ("--decoder-blocks", "100000000"), ("--decoder-blocks", "10000000", "--encoder", "conv"),
    ("--codebook-size", "1000000000"), ("--threads", "100000000000000000000"), ("--mse-weight", "1e300"),
])
def test_a_huge_value_of_an_audio_trainer_flag_is_refused_before_any_work(
        flags: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _mmtok(capsys, "train-tokenizer", "audio", "--data", str(_clips(tmp_path / "clips")),
                        "--out", str(tmp_path / "run"), "--no-progress", *flags)
    assert code == 2
    _said(line, flags[0], flags[1])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags", [
    ("--segment-seconds", "1e305"), ("--disc-seconds", "1e305", "--disc-weight", "1"),
    ("--val-clip-seconds", "1e305"), ("--val-segments", "1000000000"), ("--batch-size", "1000000000"),
    ("--segment-seconds", "100000"), ("--blocks", "1000000000"), ("--blocks", "100000000"),
    ("--dim", "100000000"), ("--disc-channels", "10000000", "--disc-weight", "1"), ("--synthetic", "1000000000000"),
    ("--threads", "100000"), ("--fm-weight", "1e300"),
])
def test_a_huge_value_of_a_vocoder_trainer_flag_is_refused_before_any_work(
        flags: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _mmtok(capsys, "train-tokenizer", "vocoder", "--cache", str(tmp_path / "cache"),
                        "--out", str(tmp_path / "run"), "--no-progress", *flags)
    assert code == 2
    _said(line, flags[0], flags[1])
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(("modality", "flags"), [
    ("image", ("--crops", "1000000000000")), ("image", ("--threads", "100000")),
    ("audio", ("--synthetic", "1000000000000")), ("audio", ("--threads", "100000")),
])
def test_a_huge_value_of_a_prune_codebook_flag_is_refused_before_any_work(
        modality: str, flags: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = ["--data", str(_pictures(tmp_path))] if modality == "image" else ["--cache", str(tmp_path / "cache")]
    code, line = _mmtok(capsys, "prune-codebook", modality, "--model", modality, "--keep", "8",
                        "--out", str(tmp_path / "pruned"), *source, *flags)
    assert code == 2 and flags[0] in line and flags[1] in line and "at most" in line, line
    assert not (tmp_path / "pruned").exists()


def test_a_whole_number_past_64_bits_is_refused_by_its_flag() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=10)
    said = out_of_range(p, p.parse_args(["--steps", "1" + "0" * 30]), {"steps": Range(1)})
    assert said is not None and said.startswith("--steps must be >= 1, at most 9223372036854775807")


def test_a_disc_width_its_group_norms_cannot_split_is_refused(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _mmtok(capsys, *_image(tmp_path, "--disc-weight", "0.1", "--disc-channels", "29"))
    assert code == 2 and "--disc-channels 29" in line and "give 28 or 30" in line
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- missing manifest rows


def test_an_image_manifest_listing_missing_files_is_refused_by_its_lines(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    data = _pictures(tmp_path)
    rows = [{"path": "0.png"}, {"path": "gone.png"}, {"path": "1.png"}, {"path": "sub/a.png"}, {"path": "b.png"},
            {"path": "c.png"}, {"path": "held.png", "split": "test"}]
    manifest = data / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"split": "train", **r}) + "\n" for r in rows))
    code, line = _mmtok(capsys, "train-tokenizer", "image", "--data", str(manifest), "--out", str(tmp_path / "run"))
    assert code == 2
    assert line.startswith(f"mmtok: error: {manifest}: 4 of the 6 image files of split 'train' it lists are not "
                           "there")
    assert f"{manifest}:2: gone.png; {manifest}:4: sub/a.png; {manifest}:5: b.png; and 1 more" in line
    assert "held.png" not in line and not (tmp_path / "run").exists()


def test_an_audio_manifest_listing_a_missing_file_is_refused_by_its_line(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    data = _clips(tmp_path / "corpus")
    manifest = data / "manifest.jsonl"
    manifest.write_text('{"path": "0.wav", "split": "train"}\n{"path": "lost.wav", "split": "train"}\n'
                        '{"path": "1.wav", "split": "validation"}\n')
    code, line = _mmtok(capsys, "train-tokenizer", "audio", "--data", str(manifest), "--out", str(tmp_path / "run"),
                        "--no-progress")
    assert code == 2 and f"{manifest}: 1 of the 2 audio files of split 'train'" in line
    assert f"{manifest}:2: lost.wav" in line and "FileNotFoundError" not in line
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- a run folder for a model


def _run_folder(tmp_path: Path, *models: str) -> Path:
    """A trainer's run folder with the tiny image tokenizer in each of ``models`` and a train state."""
    run = tmp_path / "run1"
    tok = fitted_tiny_tokenizer()
    for name in (*models, "train-state"):
        save_module(tok, run / name)
    return run


def test_a_run_folder_is_read_as_its_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_folder(tmp_path, "model")
    assert run_model(str(run), flag="--init-from") == str(run / "model")
    assert f"--init-from {run} is a training run's folder: reading its model, {run / 'model'}" in capsys.readouterr().err
    assert run_model(str(run / "model"), flag="--init-from") == str(run / "model")  # a checkpoint as it is
    assert run_model("image", flag="--init-from") == "image"  # a shipped name too
    cfg = {k: v for k, v in asdict(tiny_config()).items() if k != "vq"}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    parser = image_train.build_parser()
    args = parser.parse_args(_image(tmp_path, "--init-from", str(run), "--config", str(tmp_path / "cfg.json"))[2:])
    check_args(parser, args, image_train.STATE_DIR)
    assert args.init_from == str(run / "model")
    audio_run = tmp_path / "audio-run"
    save_module(small_tokenizer(), audio_run / "model")
    parser = build_audio_parser()
    args = parser.parse_args(["--data", str(_clips(tmp_path / "clips")), "--out", str(tmp_path / "run2"),
                              "--init-from", str(audio_run)])
    check_audio_args(parser, args)
    assert args.init_from == str(audio_run / "model")


def test_a_run_folder_with_two_models_or_none_yet_is_refused_by_name(tmp_path: Path) -> None:
    run = _run_folder(tmp_path, "best", "model")
    with pytest.raises(UsageError, match=r"is a training run's folder holding 2 models: give one of .*best, .*model$"):
        run_model(str(run), flag="--init-from", models=("best", "model"))
    stopped = _run_folder(tmp_path / "stopped")
    with pytest.raises(UsageError, match=r"with no model yet \(no .*model: the run stopped before its first"):
        run_model(str(stopped), flag="--init-from")


def test_a_folder_that_is_no_checkpoint_nor_a_run_and_a_path_to_nothing_are_refused_by_the_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pictures = _pictures(tmp_path)
    with pytest.raises(UsageError, match=r"^--init-from .*pictures is a folder that holds no checkpoint \(config\.json\) "
                                         r"and no training run's model \(model/config\.json\)"):
        run_model(str(pictures), flag="--init-from")
    with pytest.raises(UsageError, match=r"^--model .*nowhere: no such folder, and no shipped checkpoint has that "
                                         r"name \(shipped: "):
        run_model(str(tmp_path / "nowhere"), flag="--model")
    code, line = _mmtok(capsys, *_image(tmp_path, "--config", str(pictures)))
    assert code == 2 and f"--config {pictures}: a folder, not a file" in line


def test_prune_codebook_reads_a_run_folders_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_folder(tmp_path, "model")
    code, _ = _mmtok(capsys, "prune-codebook", "image", "--model", str(run), "--keep", "8", "--crops", "8",
                     "--out", str(tmp_path / "pruned"), "--data", str(_pictures(tmp_path)), "--no-progress")
    assert code == 0 and (tmp_path / "pruned" / "config.json").is_file()


def test_the_vocoder_trainer_refuses_a_vocoder_run_folder_naming_its_two_models(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_folder(tmp_path, "best", "model")
    code, line = _mmtok(capsys, "train-tokenizer", "vocoder", "--cache", str(tmp_path / "cache"),
                        "--out", str(tmp_path / "run2"), "--init-from", str(run))
    assert code == 2 and f"--init-from {run} is a training run's folder holding 2 models" in line


# --------------------------------------------------------------------------- the text trainer's files


def test_the_text_trainer_says_a_folder_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("hello there\n")
    code, line = _mmtok(capsys, "train-tokenizer", "text", str(tmp_path / "texts"), "--vocab-size", "300",
                        "--out", str(tmp_path / "bpe"))
    assert code == 2 and f"{tmp_path / 'texts'} is a folder" in line and "texts/*.txt" in line
    assert "no such file" not in line and not (tmp_path / "bpe").exists()


@pytest.mark.skipif(not Path("/dev/null").exists() or sys.platform == "win32", reason="needs /dev/null")
def test_the_text_trainer_says_a_device_is_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, line = _mmtok(capsys, "train-tokenizer", "text", "/dev/null", "--vocab-size", "300",
                        "--out", str(tmp_path / "bpe"))
    assert code == 2 and "/dev/null is not a regular file" in line


def test_the_text_trainer_refuses_a_min_frequency_past_64_bits(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.txt").write_text("hello there\n")
    code, line = _mmtok(capsys, "train-tokenizer", "text", str(tmp_path / "a.txt"), "--vocab-size", "300",
                        "--min-frequency", "1" + "0" * 20, "--out", str(tmp_path / "bpe"))
    assert code == 2 and "--min-frequency must be at least 1 and at most 18446744073709551615" in line
    assert "OverflowError" not in line


@pytest.mark.parametrize("command", [["demo"], ["train", "--data", "no-shards", "--out", "no-run"]])
def test_demo_and_train_refuse_a_thread_count_past_the_pool(command: list[str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([*command, "--threads", "100000"])  # before: torch.set_num_threads(100000), a crash or a hang
    said = capsys.readouterr().err
    assert exit_.value.code == 2 and "--threads" in said and "at most 1024" in said and "got 100000" in said


def test_a_config_file_whose_tokenizer_cannot_train_in_memory_is_refused_before_any_picture(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], eight_gib: None) -> None:
    config = tmp_path / "wide.json"
    config.write_text(json.dumps({"enc_channels": [4_000_000, 16, 32]}))  # built on the meta device only
    code, said = _mmtok(capsys, *_image(tmp_path, "--config", str(config), "--steps", "1"))
    assert code == 2 and not (tmp_path / "run").exists()  # before: an allocator error, after the pictures were read
    assert said.startswith(f"mmtok: error: --config {config}: the tokenizer it describes needs about ")
    assert said.endswith("more than this machine's 8.0 GiB of memory; give smaller widths (enc_channels, "
                         "dec_channels, latent_dim) or fewer blocks")
