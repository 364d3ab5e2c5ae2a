"""The one ``--resume`` rule every trainer follows (mmtok.core.resume): left out -> the run's own, given with
another value -> refused in one line naming flag and values, --steps extends but never goes back."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mmtok.core.errors import ResumeMismatchError
from mmtok.core.resume import setting_differences, take_run_settings

SAVED = {"lr": 0.01, "seed": 3, "rotate": False, "init_from": "models/a", "save_every": 50, "steps": 100}


def _args(**kw: object) -> argparse.Namespace:
    base = {"lr": 5e-4, "seed": 0, "rotate": False, "init_from": None, "save_every": 250, "steps": 200000,
            "threads": 2}
    return argparse.Namespace(**{**base, **kw})


def test_flags_left_out_take_the_runs_own_and_unrecorded_ones_stay() -> None:
    args = _args(threads=1)
    take_run_settings(args, {"threads"}, SAVED, where="run", reached=40, fixed=("lr", "seed", "rotate", "init_from"),
                      free=("save_every",))
    assert (args.lr, args.seed, args.init_from, args.save_every, args.threads) == (0.01, 3, "models/a", 50, 1)
    assert args.steps == 100  # the run's own length, not the parser's default


def test_every_other_value_is_refused_in_one_line_naming_flag_and_both_values() -> None:
    args = _args(lr=0.02, rotate=True)
    with pytest.raises(ResumeMismatchError) as e:
        take_run_settings(args, {"lr", "rotate"}, SAVED, where="out/run", reached=40, fixed=("lr", "rotate"),
                          free=("save_every",), diffs=["--codebook-size 24 sets K 24 (the run's: 32)"])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("--resume out/run: --codebook-size 24 sets K 24 (the run's: 32); "
                                              "--lr 0.02 (the run's: 0.01); --rotate (the run's: no --rotate); ")
    assert "(--steps, --save-every may change)" in msg
    assert args.lr == 0.02 and args.save_every == 250  # refused before anything was taken


def test_the_same_values_given_again_are_accepted_and_folders_compare_as_folders(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "models" / "a").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    args = _args(lr=0.01, init_from="./models/a/")
    take_run_settings(args, {"lr", "init_from"}, SAVED, where="run", reached=0, fixed=("lr", "init_from"))
    assert args.lr == 0.01
    assert setting_differences({"init_from": "models/b"}, SAVED, ("init_from",)) == [
        "--init-from models/b (the run's: models/a)"]


def test_steps_extends_a_run_but_never_goes_below_the_step_reached() -> None:
    args = _args(steps=150)
    take_run_settings(args, {"steps"}, SAVED, where="run", reached=120, fixed=())
    assert args.steps == 150
    with pytest.raises(ResumeMismatchError, match=r"^--steps 90: run has already reached step 120; give --steps 120"):
        take_run_settings(_args(steps=90), {"steps"}, SAVED, where="run", reached=120, fixed=())
    args = _args()
    take_run_settings(args, set(), {"steps": 100}, where="run", reached=130, fixed=())  # resumed past its length
    assert args.steps == 130
    args = _args()
    take_run_settings(args, set(), {}, where="run", reached=7, fixed=("lr",))  # a run that recorded nothing
    assert (args.steps, args.lr) == (7, 5e-4)


def test_none_and_lists_read_as_a_command_line_gives_them() -> None:
    assert setting_differences({"init_from": "audio", "dims": (1, 2)}, {"init_from": None, "dims": [1, 3]},
                               ("init_from", "dims")) == ["--init-from audio (the run's: none)",
                                                          "--dims [1, 2] (the run's: [1, 3])"]
    assert setting_differences({"dims": (1, 2), "gain": 6}, {"dims": [1, 2], "gain": 6.0}, ("dims", "gain")) == []
