"""A tokenizer trainer's ``--resume`` that finds its train state damaged says what to do after the file and the
problem: train into a new ``--out``, or start from the run's exported model with ``--init-from`` when it has one."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmtok.core.errors import CheckpointError
from mmtok.core.resume import reading_state_to_resume


def test_without_an_exported_model_the_advice_is_a_new_out(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as err, reading_state_to_resume(tmp_path):
        raise CheckpointError("checkpoint run/train-state: optimizer.safetensors is unreadable (cut short)")
    assert str(err.value) == ("checkpoint run/train-state: optimizer.safetensors is unreadable (cut short); --resume "
                              "cannot go on from this run: train into a new --out")


def test_with_an_exported_model_it_is_named_for_init_from(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError) as err, reading_state_to_resume(tmp_path):
        raise CheckpointError("checkpoint run/train-state holds a NaN")
    assert str(err.value).endswith(f"train into a new --out, or start a new run from its model with --init-from "
                                   f"{tmp_path / 'model'} (a fresh schedule)")


def test_other_errors_pass_through_unchanged(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^other$"), reading_state_to_resume(tmp_path):
        raise ValueError("other")


def test_an_audio_run_whose_optimizer_file_is_cut_says_so_and_what_to_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_audio_train_cli import SMALL, _cli, _data

    run, data = tmp_path / "run", str(_data(tmp_path / "wav"))
    assert _cli(capsys, "--data", data, *SMALL, "--steps", "2", "--out", str(run))[0] == 0
    side = run / "train-state" / "optimizer.safetensors"
    side.write_bytes(side.read_bytes()[:200])
    code, err = _cli(capsys, "--data", data, *SMALL, "--steps", "4", "--out", str(run), "--resume")
    assert code == 2 and "optimizer.safetensors is unreadable" in err
    assert err.rstrip().endswith(f"--init-from {run / 'model'} (a fresh schedule)")
