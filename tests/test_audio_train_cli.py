"""`mmtok train-tokenizer audio`'s command line: --resume keeps the run's settings (the flags left
out take the run's own, a flag given with another value is refused in one line, --steps may only
grow, every command line stays in the provenance), and every numeric flag is checked (finite, in
range) before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

import mmtok
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.core.errors import ResumeMismatchError
from mmtok.core.schedule import warmup_cosine
from tests.test_audio import speechlike

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: one thread is steadier

# a tiny slice tokenizer: K 16 from 3 clips of 1.5 s, a few seconds a run
TRAIN = ["--crop-tokens", "8", "--batch-size", "2", "--warmup", "1", "--kmeans-vectors", "200", "--kmeans-iters", "2",
         "--kmeans-balance", "0", "--save-every", "1", "--threads", "1", "--seed", "3", "--no-progress"]
SMALL = [*TRAIN, "--codebook-size", "16", "--encoder-channels", "16", "--decoder-channels", "16"]


def _data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        sf.write(folder / f"clip-{i}.wav", speechlike(1.5, seed=70 + i), SAMPLE_RATE)
    return folder


def _cli(capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    """``mmtok train-tokenizer audio OPTIONS`` through the console entry point: (exit status, stderr)."""
    from mmtok.cli import main

    capsys.readouterr()
    try:
        rc = main(["train-tokenizer", "audio", *options])
    except SystemExit as e:
        rc = int(e.code or 0)
    return rc, capsys.readouterr().err


def _state(out: Path) -> dict:
    return json.loads((out / "train-state" / "config.json").read_text())


def _peak_lr(out: Path, steps: int) -> float:
    """The peak rate the run's last step was taken at, from the rate its optimizer state holds."""
    lr = _state(out)["train"]["optimizer"]["param_groups"][0]["lr"]
    return lr / warmup_cosine(_state(out)["train"]["step"] - 1, peak=1.0, warmup=1, total=steps, floor=0.05)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    """One finished 2-step run (with a few training flags set), shared by the tests that only read it
    or are refused before anything is written: (its arguments without --out, its folder)."""
    from mmtok.audio.train import main

    root = tmp_path_factory.mktemp("run")
    args = ["--data", str(_data(root / "data")), *SMALL, "--steps", "2", "--lr", "0.01", "--gain-db", "6",
            "--mse-weight", "0.5", "--band-weight", "0-500:2"]
    assert main([*args, "--out", str(root / "run")]) == 0
    return args, root / "run"


# --------------------------------------------------------------------------- --resume


def test_resume_refuses_another_architecture_in_one_line(trained: tuple[list[str], Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Architecture flags that differ from the run's are refused (exit 2, one line naming each flag, the
    run's value and the given one) before anything is written; they used to be ignored silently."""
    args, out = trained
    before = (out / "train-state" / "config.json").read_bytes()
    rc, err = _cli(capsys, *args, "--out", str(out), "--resume", "--steps", "12", "--codebook-size", "64",
                   "--encoder", "conv", "--decoder-blocks", "6", "--decoder-channels", "32")
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    for said in ("--codebook-size 64 (the run's: 16)", "--encoder conv (the run's: slice)",
                 "--decoder-blocks 6 (the run's: 4)", "--decoder-channels 32 (the run's: 16)"):
        assert said in err
    assert (out / "train-state" / "config.json").read_bytes() == before
    assert mmtok.load(out / "model").cfg.vq.codebook_size == 16


@pytest.mark.parametrize(("flag", "value", "run_value"), [
    ("--lr", "0.02", "0.01"), ("--batch-size", "3", "2"), ("--gain-db", "10", "6"), ("--mse-weight", "0", "0.5"),
    ("--envelope-weight", "1", "0"), ("--band-weight", "0-800:2", "0-500:2"), ("--seed", "4", "3"),
    ("--crop-tokens", "6", "8"), ("--dead-code-rate", "0.1", "0"), ("--init-from", "audio", "none"),
])
def test_resume_refuses_another_training_setting(trained: tuple[list[str], Path], flag: str, value: str,
                                                 run_value: str) -> None:
    """Rates, batch, losses, level augmentation, seed and source are the run's: another value is refused."""
    from mmtok.audio.train import main

    args, out = trained
    with pytest.raises(ResumeMismatchError, match=rf"^--resume {out}: {flag} {value}\S* \(the run's: {run_value}\);"):
        main(["--data", args[1], "--out", str(out), "--resume", "--steps", "3", flag, value])
    assert _state(out)["train"]["step"] == 2


def test_resume_takes_the_runs_settings_for_flags_left_out(tmp_path: Path) -> None:
    """A resume that names only --data and --out trains on at the run's own rate (not the default),
    losses and steps; the full command repeated (as the model cards write it) is accepted too."""
    from mmtok.audio.train import main

    args = ["--data", str(_data(tmp_path / "data")), *SMALL, "--lr", "0.01", "--gain-db", "6", "--band-weight",
            "0-500:2"]
    out = tmp_path / "run"
    assert main([*args, "--out", str(out), "--steps", "2", "--resume"]) == 0  # no state yet: a fresh start
    assert main(["--data", args[1], "--out", str(out), "--resume", "--steps", "3", "--no-progress"]) == 0
    assert _peak_lr(out, 3) == pytest.approx(0.01)
    settings = _state(out)["train"]["extra"]["settings"]
    assert settings["gain_db"] == 6.0 and settings["band_weight"] == [[0.0, 500.0, 2.0]] and settings["seed"] == 3
    assert main([*args, "--out", str(out), "--steps", "4", "--resume"]) == 0
    assert _peak_lr(out, 4) == pytest.approx(0.01) and _state(out)["train"]["step"] == 4
    assert main(["--data", args[1], "--out", str(out), "--resume", "--no-progress"]) == 0  # --steps: the run's 4
    assert _state(out)["train"]["step"] == 4


def test_resume_steps_may_grow_but_not_fall_below_the_step_reached(trained: tuple[list[str], Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """--steps below the step reached is refused in one line; --steps at it writes the model again,
    keeping the last batch's figures, and says there was nothing to train."""
    import shutil

    args, first = trained
    out = tmp_path / "run"
    shutil.copytree(first, out)
    rc, err = _cli(capsys, *args, "--out", str(out), "--resume", "--steps", "1")
    assert rc == 2 and "--steps 1" in err and "already reached step 2" in err and len(err.strip().splitlines()) == 1
    last = json.loads((out / "summary.json").read_text())["last"]
    rc, err = _cli(capsys, *args, "--out", str(out), "--resume", "--steps", "2")
    assert rc == 0 and "nothing to train" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["last"] == last and set(last) == {"loss", "mel_l1", "usage", "perplexity"}


def test_resume_refuses_other_data_and_takes_the_same_data_moved(trained: tuple[list[str], Path], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """--data may move between sessions, but a resume on other clips is refused before any log-mel, in one line."""
    import shutil

    from mmtok.audio.tokenizer import AudioTokenizer

    args, first = trained
    out = tmp_path / "run"
    shutil.copytree(first, out)
    other = tmp_path / "other"
    other.mkdir()
    for i in range(3):
        sf.write(other / f"clip-{i}.wav", speechlike(2.5, seed=90 + i), SAMPLE_RATE)  # other clips, other lengths
    before = _state(out)["train"]["step"]
    with monkeypatch.context() as m:  # refused before the log-mel pass, which would take minutes on a real corpus
        m.setattr(AudioTokenizer, "context_features", lambda *a, **k: pytest.fail("log-mel computed"))
        rc, err = _cli(capsys, "--data", str(other), "--out", str(out), "--resume", "--steps", "3", "--no-progress")
    assert rc == 2 and err.count("\n") == 1 and f"--data {other} is not the material the run" in err, err
    assert _state(out)["train"]["step"] == before  # nothing trained
    moved = shutil.copytree(Path(args[1]), tmp_path / "moved")
    rc, err = _cli(capsys, "--data", str(moved), "--out", str(out), "--resume", "--steps", "3", "--no-progress")
    assert rc == 0 and _state(out)["train"]["step"] == 3, err


def test_resume_keeps_every_command_line(trained: tuple[list[str], Path], tmp_path: Path) -> None:
    """The provenance's ``command`` stays the one that started the run; each resume's is added to
    ``resumed_with``, in the model, the state and summary.json."""
    import shutil

    from mmtok.audio.train import main

    args, first = trained
    out = tmp_path / "run"
    shutil.copytree(first, out)
    start = json.loads((first / "summary.json").read_text())["command"]
    assert main(["--data", args[1], "--out", str(out), "--resume", "--steps", "3", "--no-progress"]) == 0
    assert main(["--data", args[1], "--out", str(out), "--resume", "--no-progress"]) == 0
    said = [f"mmtok train-tokenizer audio --data {args[1]} --out {out} --resume --steps 3 --no-progress",
            f"mmtok train-tokenizer audio --data {args[1]} --out {out} --resume --no-progress"]
    for prov in (json.loads((out / "summary.json").read_text()), mmtok.load(out / "model").provenance,
                 _state(out)["provenance"]):
        assert prov["command"] == start and prov["resumed_with"] == said
    card = (out / "model" / "README.md").read_text()
    assert all(f"- resumed with: `{line}`" in card for line in said)  # the model card lists them too


def test_resume_of_a_state_without_recorded_settings_reads_its_command(trained: tuple[list[str], Path],
                                                                       tmp_path: Path) -> None:
    """A train-state saved before the settings were recorded: its provenance's command line gives the
    run's settings (its rate here), and a flag at odds with it is refused."""
    import shutil

    from mmtok.audio.train import main

    args, first = trained
    out = tmp_path / "run"
    shutil.copytree(first, out)
    path = out / "train-state" / "config.json"
    meta = json.loads(path.read_text())
    del meta["train"]["extra"]["settings"]
    path.write_text(json.dumps(meta))
    with pytest.raises(ResumeMismatchError, match=r"--lr 0\.02 \(the run's: 0\.01\)"):
        main(["--data", args[1], "--out", str(out), "--resume", "--steps", "3", "--lr", "0.02"])
    assert main(["--data", args[1], "--out", str(out), "--resume", "--steps", "3", "--no-progress"]) == 0
    assert _peak_lr(out, 3) == pytest.approx(0.01)


def test_resume_of_an_init_from_run_as_the_model_cards_write_it(trained: tuple[list[str], Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The model cards repeat the whole command, --init-from and grown blocks included, with --resume:
    accepted; a growth other than the run's is refused (exit 2, as for any flag at odds with the run); a
    left-out --decoder-only is the run's own, and one given to a run started without it is refused (by the
    same rule, in the same words)."""
    args, first = trained
    card = ["--data", args[1], *TRAIN, "--init-from", str(first / "model"), "--decoder-blocks", "6",
            "--mse-weight", "0.5", "--gain-db", "20", "--gain-prob", "0.5", "--lr", "2e-3"]
    out = tmp_path / "card"
    assert _cli(capsys, *card, "--out", str(out), "--steps", "1", "--resume")[0] == 0
    spelt = [a if a != str(first / "model") else str(first / "model") + "/." for a in card]  # the same folder
    assert _cli(capsys, *spelt, "--out", str(out), "--steps", "2", "--resume")[0] == 0
    got = mmtok.load(out / "model")
    assert got.cfg.decoder_blocks == 6 and _state(out)["train"]["step"] == 2
    rc, err = _cli(capsys, *card[:-10], "--decoder-blocks", "8", "--out", str(out), "--resume")
    assert rc == 2 and "--decoder-blocks 8 (the run's: 6)" in err

    dec = tmp_path / "dec"
    assert _cli(capsys, *card, "--out", str(dec), "--steps", "1", "--decoder-only")[0] == 0
    codes = mmtok.load(dec / "model").vq.codebook.detach().clone()
    assert _cli(capsys, "--data", args[1], "--out", str(dec), "--resume", "--steps", "2")[0] == 0
    assert _state(dec)["provenance"]["decoder_only"] is True  # taken from the run: the codebook stays as it was
    assert torch.equal(mmtok.load(dec / "model").vq.codebook.detach(), codes)
    rc, err = _cli(capsys, *card, "--out", str(out), "--steps", "3", "--resume", "--decoder-only")
    assert rc == 2 and f"--resume {out}: --decoder-only (the run's: no --decoder-only); " in err
    assert "(--steps, --save-every, --threads, --device may change)" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- numeric flags


@pytest.mark.parametrize(("flag", "value"), [
    ("--gain-db", "nan"), ("--gain-db", "inf"), ("--gain-db", "-1"), ("--mse-weight", "nan"),
    ("--compressed-weight", "inf"), ("--envelope-weight", "nan"), ("--gain-prob", "nan"),
    ("--dead-code-rate", "nan"), ("--val-fraction", "nan"), ("--synthetic-share", "nan"),
    ("--synthetic-tones", "nan"), ("--decoder-channels", "0"), ("--encoder-channels", "0"), ("--code-dim", "0"),
    ("--codebook-size", "1"), ("--threads", "0"), ("--threads", "-1"), ("--seed", "-1"), ("--seed", "99999999999999999999"), ("--kmeans-vectors", "0"),
    ("--kmeans-min-groups", "0"), ("--kmeans-balance", "-1"), ("--val-clips", "-1"), ("--encoder-blocks", "0"),
    ("--crop-tokens", "0"), ("--lr", "nan"),
])
def test_numeric_flags_out_of_range_are_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                flag: str, value: str) -> None:
    """NaN, infinities and values out of range: exit 2 with one line naming the flag and the value,
    before anything is read (the data folder does not exist) or written."""
    rc, err = _cli(capsys, "--data", str(tmp_path / "none"), "--out", str(tmp_path / "out"), flag, value)
    assert rc == 2 and f"{flag} must be" in err and "(got " in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_every_numeric_flag_has_a_range() -> None:
    """No numeric option escapes the checks."""
    from mmtok.audio.train_checks import NUMBER_RULES
    from mmtok.audio.train_options import build_parser

    shared = {"steps", "batch_size", "save_every", "warmup", "lr"}  # check_run_options checks these
    numeric = {a.dest for a in build_parser()._actions if a.type in (int, float)}
    assert numeric - shared <= set(NUMBER_RULES) and numeric <= set(NUMBER_RULES) | shared


@pytest.mark.parametrize(("options", "said"), [
    (["--code-dim", "50"], "--code-dim 50: the slice encoder's codes are a token's 2 log-mel frames, 160 numbers"),
    (["--codebook-size", "64", "--kmeans-vectors", "40"], "--kmeans-vectors 40 is fewer than the 64 codes"),
])
def test_slice_sizes_that_cannot_work_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  options: list[str], said: str) -> None:
    rc, err = _cli(capsys, "--data", str(tmp_path / "none"), "--out", str(tmp_path / "out"), *options)
    assert rc == 2 and said in err and not (tmp_path / "out").exists()


def test_a_run_killed_and_resumed_draws_the_crops_an_unbroken_run_draws(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The crops' generator travels in train-state: a run stopped after step 2 of 4 and resumed ends with the
    weights of the run that was never stopped (it used to be seeded anew from the step on every start)."""
    from safetensors.torch import load_file

    import mmtok.audio.train as audio_train

    args = ["--data", str(_data(tmp_path / "data")), *SMALL, "--steps", "4", "--lr", "0.01", "--gain-db", "6"]
    assert audio_train.main([*args, "--out", str(tmp_path / "whole")]) == 0
    real, calls = audio_train.random_feature_crops, []

    def killed_at_step_3(*a, **k):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(audio_train, "random_feature_crops", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        audio_train.main([*args, "--out", str(tmp_path / "cut")])
    monkeypatch.setattr(audio_train, "random_feature_crops", real)
    assert _state(tmp_path / "cut")["train"]["step"] == 2
    assert audio_train.main([*args, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    whole = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    cut = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert whole.keys() == cut.keys() and all(torch.equal(whole[k], cut[k]) for k in whole)
