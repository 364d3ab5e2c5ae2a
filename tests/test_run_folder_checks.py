"""One check of a trainer's ``--out`` (:func:`mmtok.core.trainstate.check_run_folder`): empty is fine, a run of
that trainer needs ``--resume`` (or ``--overwrite``), and a folder of someone's own files is refused with or
without them, named as files that are not a run, and left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmtok.core.errors import TrainingError
from mmtok.core.run_folder import RunMarks, check_run_folder
from mmtok.core.run_lock import LOCK_NAME
from tests.test_run_recovery import cli as mmtok_cli

pytestmark = pytest.mark.usefixtures("one_thread")

MARKS = RunMarks(("train-state", "model"), absent="no train-state/ or model/ checkpoint")
DEAD = 4_999_999  # a process id above Linux's limit: no process runs under it


def user_folder(folder: Path) -> dict[str, bytes]:
    """A folder of someone's own files (no run in it); returns what it holds."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "photos.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("mine\n")
    (folder / "model").mkdir()  # named like a run's checkpoint, but no checkpoint in it
    (folder / "model" / "todo.txt").write_text("train one\n")
    return contents(folder)


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"/" for p in sorted(folder.rglob("*"))}


def a_run(folder: Path) -> Path:
    (folder / "train-state").mkdir(parents=True)
    (folder / "train-state" / "config.json").write_text("{}\n")
    return folder


def check(folder: Path, *, resume: bool = False, overwrite: bool = False) -> None:
    check_run_folder(folder, resume=resume, overwrite=overwrite, marks=MARKS)


def test_an_empty_or_missing_folder_or_one_holding_a_stale_lock_is_fine(tmp_path: Path) -> None:
    for resume, overwrite in ((False, False), (True, False), (False, True)):
        check(tmp_path / "missing", resume=resume, overwrite=overwrite)
        check(tmp_path, resume=resume, overwrite=overwrite)
        (tmp_path / LOCK_NAME).write_text(f"{DEAD}\n")
        check(tmp_path, resume=resume, overwrite=overwrite)
    assert not (tmp_path / "missing").exists() and [p.name for p in tmp_path.iterdir()] == [LOCK_NAME]


def test_a_run_needs_resume_or_overwrite(tmp_path: Path) -> None:
    run = a_run(tmp_path / "run")
    (run / "notes.txt").write_text("beside the run\n")  # the user's files beside a run: still a run
    with pytest.raises(TrainingError, match=r"already holds a run \(notes\.txt, train-state\); continue it with "
                                            r"--resume, start it over with --overwrite, or pick another --out$"):
        check(run)
    with pytest.raises(TrainingError, match=r"continue it with --resume, or pick another --out$"):
        check_run_folder(run, resume=False, overwrite=False, marks=MARKS, overwrite_flag=False)
    check(run, resume=True)
    check(run, overwrite=True)


@pytest.mark.parametrize(("resume", "overwrite", "start"), [(False, False, "{out} holds no run ("),
                                                            (True, False, "--resume: {out} holds no run to continue ("),
                                                            (False, True, "--overwrite: {out} holds no run to start over (")])
def test_a_folder_of_other_files_is_refused_as_no_run_with_or_without_resume(
        tmp_path: Path, resume: bool, overwrite: bool, start: str) -> None:
    out = tmp_path / "mine"
    before = user_folder(out)
    with pytest.raises(TrainingError) as e:
        check(out, resume=resume, overwrite=overwrite)
    said = str(e.value)
    assert said.startswith(start.format(out=out)) and "\n" not in said
    assert "no train-state/ or model/ checkpoint; it holds model, notes.txt, photos.jpg)" in said
    assert "not a run's files" in said and said.endswith("pick an empty or new --out")
    assert "already holds a run" not in said and "continue it with" not in said
    assert contents(out) == before


def test_a_run_killed_between_the_two_renames_of_a_save_is_still_a_run(tmp_path: Path) -> None:
    """Only the backup of its train state is left (``.train-state.old-*``, as the lock's recovery finds it)."""
    run = a_run(tmp_path / "run")
    (run / "train-state").rename(run / ".train-state.old-deadbeef")
    (run / f".train-state.tmp-{DEAD}-0badf00d").mkdir()
    with pytest.raises(TrainingError, match="already holds a run"):
        check(run)
    check(run, resume=True)
    (run / ".train-state.old-deadbeef" / "config.json").unlink()  # a backup cut short is no run
    with pytest.raises(TrainingError, match="holds no run to continue"):
        check(run, resume=True)


def test_more_than_three_files_are_named_three_and_a_trainers_own_evidence_counts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        (out / name).write_text(name)
    with pytest.raises(TrainingError, match=r"it holds a\.txt, b\.txt, c\.txt, \.\.\.\)"):
        check(out, resume=True)
    by_log = RunMarks(("ckpt-[0-9]*",), files=lambda folder: (folder / "a.txt").read_text() == "a.txt",
                      run="toy run", absent="no ckpt-*/ checkpoint")
    check_run_folder(out, resume=True, overwrite=False, marks=by_log)
    (out / "a.txt").write_text("mine")
    with pytest.raises(TrainingError, match=r"^--overwrite: \S+ holds no toy run to start over \(no ckpt-\*/"):
        check_run_folder(out, resume=False, overwrite=True, marks=by_log)
    (out / "ckpt-0000002").mkdir()
    (out / "ckpt-0000002" / "config.json").write_text("{}")
    check_run_folder(out, resume=False, overwrite=True, marks=by_log)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``mmtok ARGV`` through the console entry point: (exit status, its last line on stderr)."""
    rc, err = mmtok_cli(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    return rc, lines[-1] if lines else ""


@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_image_trainer_trains_nothing_into_a_folder_of_other_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], resume: list[str]) -> None:
    from tests.test_image_train_cli import _args

    out = tmp_path / "photos"
    before = user_folder(out)
    rc, err = cli(capsys, "train-tokenizer", "image", *_args(tmp_path, "photos", "--steps", "2", *resume))
    assert rc == 2 and err.startswith(f"mmtok: error: {'--resume: ' if resume else ''}{out} holds no run")
    assert "not a run's files" in err and "pick an empty or new --out" in err
    assert contents(out) == before


def test_audio_trainer_resumes_nothing_in_a_folder_of_other_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_audio_train_cli import SMALL, _data

    out = tmp_path / "mine"
    before = user_folder(out)
    rc, err = cli(capsys, "train-tokenizer", "audio", "--data", str(_data(tmp_path / "clips")), *SMALL,
                  "--steps", "2", "--out", str(out), "--resume")
    assert rc == 2 and err.startswith(f"mmtok: error: --resume: {out} holds no run to continue (")
    assert contents(out) == before


def test_lm_trainer_refuses_other_files_in_one_wording_and_takes_a_run_killed_mid_save(tmp_path: Path) -> None:
    from mmtok.lm.runs import RUN_MARKS

    out = tmp_path / "mine"
    before = user_folder(out)
    for resume, overwrite, start in ((False, False, ""), (True, False, "--resume: "), (False, True, "--overwrite: ")):
        with pytest.raises(TrainingError, match=rf"^{start}\S+ holds no mmtok train run( to continue| to start over)? \(no ckpt-\*/ "
                                                r"checkpoint, nor a log\.jsonl of mmtok train's; it holds model, "):
            check_run_folder(out, resume=resume, overwrite=overwrite, marks=RUN_MARKS)
    assert contents(out) == before
    (out / ".ckpt-0000004.old-deadbeef").mkdir()  # a checkpoint save killed between its two renames
    (out / ".ckpt-0000004.old-deadbeef" / "config.json").write_text(json.dumps({"kind": "transformer"}))
    check_run_folder(out, resume=True, overwrite=False, marks=RUN_MARKS)
    with pytest.raises(TrainingError, match="already holds a run"):
        check_run_folder(out, resume=False, overwrite=False, marks=RUN_MARKS)
