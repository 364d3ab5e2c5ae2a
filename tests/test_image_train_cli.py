"""``mmtok train-tokenizer image`` at its edges: a kill right after the last train-state save, ``--export``
checked up front and written on a resume at the end, every numeric flag refused by name before any work,
and ``--resume`` taking the run's own settings (refusing, in one line, a flag that would change them)."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from image_helpers import smooth_picture, tiny_config
from PIL import Image

import mmtok
from mmtok.core.errors import ImageError, ResumeMismatchError
from mmtok.image import train as image_train

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny runs: one thread is steadier


def _data(tmp_path: Path) -> Path:
    """Three generated 80x80 pictures in ``tmp_path/data``."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for i in range(3):
        pixels = (smooth_picture(80, seed=i).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(pixels).save(data / f"{i}.png")
    return data


def _args(tmp_path: Path, out: str = "run", *extra: str) -> list[str]:
    """A tiny run (K = 16, 32-pixel crops) on :func:`_data` into ``tmp_path/out``, with its model shape in a
    ``--config`` file; ``extra`` flags after."""
    cfg = {k: v for k, v in asdict(tiny_config()).items() if k != "vq"}
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "vq": {"codebook_size": 16}}))
    return ["--data", str(_data(tmp_path)), "--out", str(tmp_path / out), "--config", str(tmp_path / "cfg.json"),
            "--batch-size", "2", "--crop", "32", "--base-side", "64", "--init-crops", "16", "--threads", "1",
            "--no-progress", *extra]


def _steps(folder: Path) -> int:
    return json.loads((folder / "config.json").read_text())["provenance"]["steps"]


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def interrupted_after_save(monkeypatch: pytest.MonkeyPatch, args: list[str], *, step: int) -> None:
    """Run the image trainer with ``args`` and press Ctrl-C right after the train state of ``step`` is on disk."""
    saved = image_train.save_train_state

    def interrupted(*a, **k):
        saved(*a, **k)
        if k["step"] == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(image_train, "save_train_state", interrupted)
    with pytest.raises(KeyboardInterrupt):
        image_train.main(args)
    monkeypatch.setattr(image_train, "save_train_state", saved)


def test_a_kill_right_after_the_final_train_state_save_is_exported_on_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C between the train state of the last step and its model/: the resume, already at the end,
    exports that step (before, model/ and summary.json stayed at the previous save and it said 'done')."""
    args = _args(tmp_path, "run", "--steps", "4", "--save-every", "2")
    interrupted_after_save(monkeypatch, args, step=4)
    run = tmp_path / "run"
    assert _steps(run / "model") == 2 and _summary(run)["final"] is False
    assert image_train.main([*args, "--resume"]) == 0
    assert _steps(run / "model") == 4 and mmtok.load(run / "model").provenance["steps"] == 4
    assert _summary(run)["final"] is True and _summary(run)["steps"] == 4


def test_a_resume_at_the_end_writes_a_missing_or_older_export_and_nothing_else(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = _args(tmp_path, "run", "--save-every", "2")
    exp = tmp_path / "exp"
    assert image_train.main([*args, "--steps", "2", "--export", str(exp)]) == 0
    assert image_train.main([*args, "--steps", "4", "--resume"]) == 0  # extended without --export: exp stays older
    assert _steps(exp) == 2
    assert image_train.main([*args, "--steps", "4", "--resume", "--export", str(exp)]) == 0
    assert _steps(exp) == 4
    assert image_train.main([*args, "--steps", "4", "--resume", "--export", str(tmp_path / "new")]) == 0
    assert _steps(tmp_path / "new") == 4 and _summary(tmp_path / "run")["final"] is True
    calls: list[int] = []
    monkeypatch.setattr(image_train, "_checkpoint", lambda run, final: calls.append(run.step))
    assert image_train.main([*args, "--steps", "4", "--resume", "--export", str(exp)]) == 0
    assert calls == []  # all current: nothing is written again


@pytest.mark.parametrize(("where", "why"), [
    ("file", "is a file"), ("notes", "holds files and no checkpoint of kind"), ("run", "is --out itself"),
    (".", "holds --out"), ("run/train-state", "is inside --out's train-state"), ("file/x", "cannot be made"),
])
def test_export_is_checked_before_any_work(where: str, why: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("keep me")
    with pytest.raises(SystemExit) as e:
        image_train.main([*_args(tmp_path, "run", "--steps", "2"), "--export", str(tmp_path / where)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"--export {tmp_path / where} {why}" in err and "linear paths" not in err
    assert not (tmp_path / "run").exists() and (tmp_path / "notes" / "a.txt").read_text() == "keep me"


@pytest.mark.parametrize(("flag", "value", "want"), [
    ("--zoom-max", "nan", ">= 1"), ("--zoom-prob", "nan", "in [0, 1]"),
    ("--ssim-weight", "nan", ">= 0"), ("--ssim-weight", "inf", ">= 0"),
    ("--disc-weight", "nan", ">= 0"), ("--disc-lr", "-1", "> 0"),
    ("--base-side", "0", ">= 1"), ("--base-side", "-5", ">= 1"), ("--init-crops", "0", ">= 1"),
    ("--rebalance-crops", "0", ">= 1"), ("--rebalance-iters", "0", ">= 1"), ("--rebalance-min-frac", "1", "in [0, 1)"),
    ("--rebalance-at", "abc", "comma-separated steps"), ("--rebalance-at", "0,5", "comma-separated steps"),
    ("--threads", "-1", ">= 1"), ("--threads", "0", ">= 1"), ("--dead-code-rate", "-1", "in [0, 1)"),
    ("--dead-code-rate", "nan", "in [0, 1)"), ("--codebook-size", "1", ">= 2"), ("--latent-dim", "0", ">= 1"),
    ("--lr-restart", "-1", ">= 0"), ("--scale-max", "inf", "0 < MIN <= MAX, finite"),
    ("--config", "no-such.json", "no such file"), ("--seed", "99999999999999999999", "in [0, 4294967295]"),
    ("--seed", "4294967296", "in [0, 4294967295]"), ("--seed", "-1", "in [0, 4294967295]"),
])
def test_a_bad_value_is_refused_by_its_flag_before_any_work(flag: str, value: str, want: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        image_train.main([*_args(tmp_path, "run", "--steps", "2"), flag, value])
    err = capsys.readouterr().err
    said = err.strip().splitlines()[-1]  # after the usage
    assert e.value.code == 2 and said.startswith("mmtok train-tokenizer image: error: ") and flag in said
    assert want in said and "linear paths" not in err  # nothing was set up
    assert not (tmp_path / "run").exists()


def test_a_manifest_row_whose_path_is_not_a_string_is_refused_by_its_line(tmp_path: Path) -> None:
    data = _data(tmp_path)
    manifest = data / "manifest.jsonl"
    manifest.write_text('{"path": "0.png", "split": "train"}\n{"path": 123, "split": "train"}\n')
    args = _args(tmp_path, "run", "--steps", "1")
    args[args.index("--data") + 1] = str(manifest)
    with pytest.raises(ImageError, match=r'manifest\.jsonl:2: needs "path" \(the file, relative to the manifest.s folder\), got 123$'):
        image_train.main(args)
    assert not (tmp_path / "run").exists()


def test_split_is_refused_with_a_folder_and_recorded_only_for_a_manifest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder has no splits: --split with one is refused, exit 2, before anything is written (before, it was
    ignored and the run said it had trained on that split); a manifest's --split trains on it, as before."""
    args = _args(tmp_path, "run", "--steps", "1")
    for split in ("test", "train"):
        with pytest.raises(SystemExit) as e:
            image_train.main([*args, "--split", split])
        last = capsys.readouterr().err.strip().splitlines()[-1]  # the error, after argparse's usage
        assert e.value.code == 2 and f"error: --split {split} chooses photos from a manifest.jsonl" in last, last
    assert not (tmp_path / "run").exists()
    assert image_train.main(args) == 0  # a folder: all of it, no split recorded
    assert "split" not in mmtok.load(tmp_path / "run" / "model").provenance["data"]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"path": f"data/{i}.png", "split": s}) + "\n"
                                for i, s in enumerate(["train", "test", "test"])))
    for split, files in ((["--split", "test"], ["data/1.png", "data/2.png"]), ([], ["data/0.png"])):
        out = tmp_path / f"manifest-{split[-1] if split else 'default'}"
        argv = _args(tmp_path, out.name, "--steps", "1", *split)
        argv[argv.index("--data") + 1] = str(manifest)
        assert image_train.main(argv) == 0
        data = mmtok.load(out / "model").provenance["data"]
        assert data["split"] == (split[-1] if split else "train") and data["files"] == files


def test_a_folder_that_holds_a_corpus_manifest_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A corpus folder (its manifest.jsonl splits it into train, validation and test) given as --data would
    train on its held-out photos: refused, exit 2, before anything is written, naming the manifest to give."""
    args = _args(tmp_path, "run", "--steps", "1")
    data = Path(args[args.index("--data") + 1])
    (data / "sub").mkdir()
    (data / "sub" / "manifest.jsonl").write_text(json.dumps({"path": "0.png", "split": "test"}) + "\n")
    with pytest.raises(SystemExit) as e:
        image_train.main(args)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and f"of the corpus manifest {data / 'sub' / 'manifest.jsonl'}" in last, last
    assert not (tmp_path / "run").exists()


def test_a_folder_whose_files_a_manifest_above_holds_out_is_refused_but_its_run_resumes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CORPUS/images given as --data, with CORPUS/manifest.jsonl putting some of its files in test: refused as the
    corpus folder is; a manifest that keeps them all in train is no reason to refuse. A run started on such a
    folder before (a manifest added since, or older code) resumes, said on stderr."""
    args = _args(tmp_path, "run", "--steps", "1", "--save-every", "1")
    data = Path(args[args.index("--data") + 1])
    assert data.parent == tmp_path
    assert image_train.main(args) == 0
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"path": f"{data.name}/0.png", "split": "train"}) + "\n")
    assert image_train.main(_args(tmp_path, "run2", "--steps", "1")) == 0  # nothing of it held out
    manifest.write_text(manifest.read_text() + json.dumps({"path": f"{data.name}/1.png", "split": "test"}) + "\n")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        image_train.main(_args(tmp_path, "run3", "--steps", "1"))
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and f"validation or test files of the corpus manifest {manifest}" in last, last
    assert not (tmp_path / "run3").exists()
    assert image_train.main(_args(tmp_path, "run", "--steps", "2", "--resume")) == 0
    assert "resuming the run that was started on it" in capsys.readouterr().err


def test_decoder_only_resume_of_an_empty_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--decoder-only trains on another tokenizer's codes: a --resume that finds no run to continue, without
    --init-from, would train a decoder on a fresh random encoder's codes; refused, exit 2, nothing written."""
    with pytest.raises(SystemExit) as e:
        image_train.main(_args(tmp_path, "run", "--steps", "1", "--resume", "--decoder-only"))
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert e.value.code == 2 and "--resume finds no run in" in last and "--init-from MODEL" in last, last
    assert "starting it afresh" not in err  # refused before a fresh start is said
    assert not (tmp_path / "run").exists()


def test_a_folder_run_saved_with_split_train_resumes_without_recording_it(tmp_path: Path) -> None:
    """A folder run saved before --split was refused there kept split "train" in its settings: it resumes
    (the flag left out), and from then on neither its settings nor its provenance name a split."""
    args = _args(tmp_path, "run", "--steps", "1", "--save-every", "1")
    assert image_train.main(args) == 0
    state = tmp_path / "run" / "train-state" / "config.json"
    meta = json.loads(state.read_text())
    assert meta["train"]["extra"]["settings"]["split"] is None
    meta["train"]["extra"]["settings"]["split"] = "train"  # as an earlier version saved it
    meta["provenance"]["data"]["split"] = "train"
    state.write_text(json.dumps(meta))
    assert image_train.main([*args, "--resume", "--steps", "2"]) == 0
    assert "split" not in mmtok.load(tmp_path / "run" / "model").provenance["data"]
    assert _steps(tmp_path / "run" / "model") == 2
    assert json.loads(state.read_text())["train"]["extra"]["settings"]["split"] is None


def test_resume_takes_the_runs_own_settings_for_the_flags_left_out(tmp_path: Path) -> None:
    """A run made with --config, --lr, --rotate and a discriminator resumes from --data/--out/--steps alone:
    the same model (before: a shape mismatch for want of --config) and the same settings."""
    first = _args(tmp_path, "run", "--steps", "2", "--save-every", "1", "--lr", "3e-3", "--warmup", "1", "--rotate",
                  "--seed", "5", "--disc-weight", "0.1", "--disc-warmup", "1", "--disc-channels", "8")
    assert image_train.main(first) == 0
    run = tmp_path / "run"
    shape = mmtok.load(run / "model").cfg
    assert image_train.main(["--data", str(tmp_path / "data"), "--out", str(run), "--resume", "--steps", "3",
                             "--no-progress", "--threads", "1"]) == 0
    resumed = mmtok.load(run / "model")
    assert resumed.cfg == shape and resumed.provenance["steps"] == 3
    assert resumed.provenance["discriminator"]["channels"] == 8  # the discriminator went on
    kept = json.loads((run / "train-state" / "config.json").read_text())["train"]["extra"]["settings"]
    assert (kept["lr"], kept["warmup"], kept["rotate"], kept["seed"], kept["crop"], kept["steps"]) == (
        3e-3, 1, True, 5, 32, 3)


def test_a_resumed_runs_provenance_and_card_keep_the_first_command_and_list_each_resume(tmp_path: Path) -> None:
    """The flags a resume leaves out are the first command's: provenance["command"] stays that command (a
    string; before, the last resume's, without --config, --lr or --rotate) and "resumed_with" and the card
    list the resumes, oldest first."""
    first = _args(tmp_path, "run", "--steps", "2", "--save-every", "2", "--lr", "3e-3", "--rotate")
    assert image_train.main(first) == 0
    run = tmp_path / "run"
    again = [["--data", str(tmp_path / "data"), "--out", str(run), "--resume", "--steps", str(n), "--no-progress",
              "--threads", "1"] for n in (3, 4)]
    for argv in again:
        assert image_train.main(argv) == 0
    def line(argv: list[str]) -> str:
        return "mmtok train-tokenizer image " + shlex.join(argv)

    prov = mmtok.load(run / "model").provenance
    assert prov["command"] == line(first) and "--rotate" in prov["command"] and prov["steps"] == 4
    assert prov["resumed_with"] == [line(a) for a in again]
    assert json.loads((run / "train-state" / "config.json").read_text())["provenance"]["command"] == line(first)
    assert _summary(run)["resumed_with"] == prov["resumed_with"]
    card = (run / "model" / "README.md").read_text()
    assert f"Trained with `{line(first)}` for 4 steps" in card
    assert f"Resumed with:\n\n- `{line(again[0])}`\n- `{line(again[1])}`\n" in card


def test_resuming_a_run_saved_without_its_settings_needs_no_steps(tmp_path: Path) -> None:
    """A train state from before the settings were kept, at a step past the default --steps 4000: left out,
    --steps is the step reached (before: "--steps 4000 is below the step"); a given --steps below it is refused."""
    args = _args(tmp_path, "run", "--save-every", "2")
    assert image_train.main([*args, "--steps", "2"]) == 0
    state = tmp_path / "run" / "train-state" / "config.json"
    meta = json.loads(state.read_text())
    del meta["train"]["extra"]["settings"]
    meta["train"]["step"] = 5000
    state.write_text(json.dumps(meta))
    with pytest.raises(ResumeMismatchError, match=r"^--steps 4999: .* has already reached step 5000;"):
        image_train.main([*args, "--resume", "--steps", "4999"])
    assert image_train.main([*args, "--resume"]) == 0
    assert _steps(tmp_path / "run" / "model") == 5000 and _summary(tmp_path / "run")["final"] is True


def test_resume_refuses_other_images_and_takes_the_same_ones_moved(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from mmtok.cli import main as cli

    assert image_train.main(_args(tmp_path, "run", "--steps", "2", "--save-every", "1")) == 0
    run = tmp_path / "run"
    other = shutil.copytree(tmp_path / "data", tmp_path / "other")
    (other / "2.png").unlink()  # one image fewer
    capsys.readouterr()
    assert cli(["train-tokenizer", "image", "--data", str(other), "--out", str(run), "--resume", "--steps", "3",
                "--no-progress", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--data {other} holds other images than the run" in err, err
    assert _steps(run / "train-state") == 2
    moved = shutil.copytree(tmp_path / "data", tmp_path / "moved")
    assert image_train.main(["--data", str(moved), "--out", str(run), "--resume", "--steps", "3", "--no-progress",
                             "--threads", "1"]) == 0 and _steps(run / "model") == 3


def test_resume_refuses_a_changed_setting_in_one_line_naming_flag_and_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main as cli

    args = _args(tmp_path, "run", "--steps", "2", "--save-every", "1", "--lr", "3e-3")
    assert image_train.main(args) == 0
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"enc_channels": [8, 16], "dec_channels": [16, 8]}))
    capsys.readouterr()
    for change, said in (
        (["--lr", "1e-3"], "--lr 0.001 (the run's: 0.003)"),
        (["--batch-size", "4"], "--batch-size 4 (the run's: 2)"),
        (["--crop", "64"], "--crop 64 (the run's: 32)"),
        (["--rotate"], "--rotate (the run's: no --rotate)"),
        (["--codebook-size", "32"], "--codebook-size 32 sets vq.codebook_size 32 (the run's: 16)"),
        (["--latent-dim", "4"], "--latent-dim 4 sets latent_dim 4 (the run's: 8)"),
        (["--config", str(other)], f"--config {other} sets dec_channels [16, 8] (the run's: [32, 16, 8])"),
        (["--disc-weight", "0.1", "--steps", "3"], "no discriminator to resume"),  # its loader says so, as before
        (["--steps", "1"], "--steps 1: "),
        (["--ema-decay", "0.5"], "--ema-decay 0.5 (the run's: 0)"),
    ):
        assert cli(["train-tokenizer", "image", *args, "--resume", *change]) == 2, change
        err = capsys.readouterr().err.strip()
        assert said in err and len(err.splitlines()) == 1, err
        if "(the run's: " in said:  # what may change, all of it
            assert "(--steps, --lr-restart, --rebalance-at, --save-every, --threads, --device may change)" in err
    assert json.loads((tmp_path / "run" / "train-state" / "config.json").read_text())["train"]["step"] == 2


def test_the_model_cards_resume_commands_repeating_every_flag_are_accepted(tmp_path: Path) -> None:
    """As models/image/README.md runs them: --init-from, a partial --config and codebook flags repeated with
    --resume, pieces that extend --steps with a new --lr-restart and --rebalance-at; and a --decoder-only
    run with a deeper decoder resumed the same way."""
    assert image_train.main(_args(tmp_path, "src", "--steps", "1")) == 0
    src = str(tmp_path / "src" / "model")
    (tmp_path / "part.json").write_text(json.dumps({"enc_blocks": 1}))
    manifest = tmp_path / "manifest.jsonl"  # the card trains on the corpus manifest's train split
    manifest.write_text("".join(json.dumps({"path": f"data/{i}.png", "split": "train"}) + "\n" for i in range(3)))
    common = ["--data", str(manifest), "--split", "train", "--init-from", src, "--config",
              str(tmp_path / "part.json"), "--codebook-size", "12", "--rebalance-min-frac", "0.5",
              "--dead-code-rate", "0.2", "--zoom-max", "2", "--zoom-prob", "0.5", "--rotate", "--ssim-weight", "0.2",
              "--lr", "1e-4", "--warmup", "1", "--ema-decay", "0.5", "--batch-size", "2", "--crop", "32",
              "--base-side", "64", "--init-crops", "16", "--rebalance-crops", "16", "--rebalance-iters", "2",
              "--threads", "1", "--save-every", "1", "--seed", "8", "--resume", "--no-progress", "--out",
              str(tmp_path / "k12"), "--export", str(tmp_path / "k12-export")]
    assert image_train.main([*common, "--steps", "2", "--lr-restart", "1", "--rebalance-at", "1"]) == 0
    assert image_train.main([*common, "--steps", "3", "--lr-restart", "2", "--rebalance-at", "1,3"]) == 0
    assert mmtok.load(tmp_path / "k12" / "model").codebook_size == 12 and _steps(tmp_path / "k12-export") == 3

    # a full --config (K = 16) with --codebook-size 32 on top, as plain1280's: the model flags weigh together
    # (before: "--config ... sets vq.codebook_size 16 (the run's: 32)")
    bare = _args(tmp_path, "full", "--save-every", "1", "--resume")
    full = [*bare, "--codebook-size", "32"]
    assert image_train.main([*full, "--steps", "1"]) == 0
    assert image_train.main([*full, "--steps", "2"]) == 0
    assert mmtok.load(tmp_path / "full" / "model").codebook_size == 32 and _steps(tmp_path / "full" / "model") == 2
    with pytest.raises(ResumeMismatchError, match=r": --codebook-size 24 sets vq\.codebook_size 24 \(the run's: "
                       r"32\); a resumed run keeps"):  # --config (K = 16, overridden) is not named
        image_train.main([*full, "--steps", "3", "--codebook-size", "24"])
    with pytest.raises(ResumeMismatchError, match=r": --config \S+ sets vq\.codebook_size 16 \(the run's: 32\);"):
        image_train.main([*bare, "--steps", "3"])
    assert _steps(tmp_path / "full" / "train-state") == 2

    (tmp_path / "dec.json").write_text(json.dumps({"dec_blocks": tiny_config().dec_blocks + 1}))
    dec = ["--data", str(tmp_path / "data"), "--init-from", src, "--config", str(tmp_path / "dec.json"),
           "--decoder-only", "--batch-size", "2", "--crop", "32", "--base-side", "64", "--lr", "1e-4", "--warmup",
           "1", "--threads", "1", "--save-every", "1", "--seed", "9", "--resume", "--no-progress", "--out",
           str(tmp_path / "dec")]
    assert image_train.main([*dec, "--steps", "1"]) == 0
    assert image_train.main([*dec, "--steps", "2"]) == 0
    grown = mmtok.load(tmp_path / "dec" / "model")
    assert grown.cfg.dec_blocks == tiny_config().dec_blocks + 1 and grown.provenance["steps"] == 2
    with pytest.raises(ResumeMismatchError, match="the run trains the decoder alone"):  # the flag left out
        image_train.main([*[a for a in dec if a != "--decoder-only"], "--steps", "3", "--rebalance-at", "3"])
