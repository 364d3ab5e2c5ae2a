"""A run folder as a killed trainer leaves it: every trainer holds its folder (``.lock``) before it looks at it,
puts back a checkpoint folder killed between its two renames (``.NAME.old-*`` in place of ``NAME``), and removes
the temporary files and folders of processes that no longer run; a second process into the same folder is
refused in one line naming the owner. The kills are built as the files they leave, in-process."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from mmtok.core import checkpoint_folder, run_lock
from mmtok.core.checkpoint import save_checkpoint
from mmtok.core.errors import TrainingError
from mmtok.core.run_lock import LOCK_NAME, RunLock
from tests.test_train import log, small
from tests.test_vocoder_cli import last_error, rows, run_args, write_corpus

pytestmark = pytest.mark.usefixtures("one_thread")

DEAD = 4_999_999  # a process id (7 digits, as temporary names hold) above Linux's limit: no process runs under it
LIVE = os.getppid()  # a process that runs, and not this one


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Token shards for tiny LM runs (as tests/test_train.py makes them)."""
    from mmtok.data.corpus import tokenize_corpus
    from tests.test_data import SPEC, make_corpus

    folder = tmp_path_factory.mktemp("lm-corpus")
    tokenize_corpus(make_corpus(folder, n_docs=60), folder / "shards", tokenizers=SPEC, shard_tokens=400)
    return folder / "shards"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An audio cache for tiny vocoder runs (as tests/test_vocoder_cli.py makes it)."""
    from mmtok.audio.vocoder_data import build_cache

    root = tmp_path_factory.mktemp("vocoder-cache")
    build_cache(write_corpus(root / "corpus"), root / "cache", progress=False)
    return root / "cache"


def kill_mid_swap(folder: Path) -> Path:
    """What a save of ``folder`` killed between its two renames leaves: the old folder as its backup, and the
    new one still under its temporary name (of a process gone now). Returns the backup."""
    backup = folder.parent / f".{folder.name}.old-deadbeef"
    os.rename(folder, backup)
    (folder.parent / f".{folder.name}.tmp-{DEAD}-0badf00d").mkdir()
    (folder.parent / f".{folder.name}.tmp-{DEAD}-0badf00d" / "model.safetensors").write_bytes(b"half")
    return backup


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def held_by_another(folder: Path) -> None:
    """``folder`` in use by another process that runs: its lock names that process."""
    (folder / LOCK_NAME).write_text(f"{LIVE}\n")


# --------------------------------------------------------------------------- the recovery itself


def complete(folder: Path, text: str, mtime: float | None = None) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(text)
    if mtime is not None:
        os.utime(folder, (mtime, mtime))
    return folder


def test_restore_swaps_puts_the_newest_complete_backup_back_and_removes_stopped_temporaries(tmp_path: Path) -> None:
    complete(tmp_path / ".train-state.old-aaaaaaaa", "older", mtime=1_000)
    complete(tmp_path / ".train-state.old-bbbbbbbb", "newer", mtime=2_000)
    (tmp_path / ".train-state.old-cccccccc").mkdir()  # a backup cut short: no config.json
    complete(tmp_path / "model", "model")
    complete(tmp_path / ".model.old-dddddddd", "obsolete")  # model/ is whole: its backup is left over
    (tmp_path / ".best.old-eeeeeeee").mkdir()  # nothing whole to put back: left alone
    (tmp_path / f".ckpt-0000020.tmp-{DEAD}-0badf00d").mkdir()  # a save at another --save-every, killed
    (tmp_path / f".log.jsonl.tmp-{DEAD}").write_text("half")  # write_atomic killed
    (tmp_path / f".summary.json.tmp-{LIVE}").write_text("being written")  # its process runs: kept
    (tmp_path / f".best.tmp-{LIVE}-12345678").mkdir()
    (tmp_path / LOCK_NAME).write_text(f"{os.getpid()}\n")
    (tmp_path / "notes.tmp-5").write_text("mine")
    done = checkpoint_folder.restore_swaps(tmp_path)
    assert (tmp_path / "train-state" / "config.json").read_text() == "newer"
    assert (tmp_path / "model" / "config.json").read_text() == "model" and not (tmp_path / "best").exists()
    assert hidden(tmp_path) == sorted([".best.old-eeeeeeee", f".best.tmp-{LIVE}-12345678", LOCK_NAME,
                                       f".summary.json.tmp-{LIVE}"])
    assert (tmp_path / "notes.tmp-5").read_text() == "mine"
    said = "; ".join(done)
    assert "train-state put back from .train-state.old-bbbbbbbb" in said and f".log.jsonl.tmp-{DEAD}" in said
    assert checkpoint_folder.restore_swaps(tmp_path) == []  # nothing left to do


def test_restore_swaps_of_named_entries_leaves_the_others(tmp_path: Path) -> None:
    complete(tmp_path / ".tok.old-aaaaaaaa", "tok")
    complete(tmp_path / ".other.old-bbbbbbbb", "someone else's save")
    (tmp_path / f".other.tmp-{DEAD}-0badf00d").mkdir()
    assert checkpoint_folder.restore_swaps(tmp_path, names=["tok"]) == ["tok put back from .tok.old-aaaaaaaa"]
    assert hidden(tmp_path) == [".other.old-bbbbbbbb", f".other.tmp-{DEAD}-0badf00d"]


def test_the_lock_recovers_once_held_and_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    complete(tmp_path / ".train-state.old-aaaaaaaa", "state")
    held_by_another(tmp_path)
    with pytest.raises(TrainingError, match=f"^{tmp_path} is in use by process {LIVE} "):
        RunLock(tmp_path).__enter__()
    assert not (tmp_path / "train-state").exists()  # its owner may be between its renames: not touched
    (tmp_path / LOCK_NAME).write_text(f"{DEAD}\n")  # the owner was killed
    with RunLock(tmp_path):
        assert (tmp_path / "train-state" / "config.json").read_text() == "state"
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "train-state put back" in err and str(tmp_path) in err
    assert hidden(tmp_path) == []


def test_holding_a_run_folder_removes_the_folders_it_made_when_the_run_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), run_lock.hold_run_folder(tmp_path / "a" / "b") as out:
        assert (out / LOCK_NAME).read_text() == f"{os.getpid()} {socket.gethostname()}\n"
        raise RuntimeError("bad data")
    assert not (tmp_path / "a").exists()
    with pytest.raises(RuntimeError), run_lock.hold_run_folder(tmp_path / "a" / "b") as out:
        (out / "log.jsonl").write_text("")
        raise RuntimeError("stopped after writing")
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["log.jsonl"]
    (tmp_path / "f").write_text("a file")
    with pytest.raises(TrainingError, match="is a file, not a folder"), run_lock.hold_run_folder(tmp_path / "f"):
        pass


def test_a_users_file_named_like_a_temporary_with_a_time_stamp_is_kept(tmp_path: Path) -> None:
    (tmp_path / ".notes.txt.tmp-20240101123045").write_text("mine")  # its digits are no process id
    with run_lock.hold_run_folder(tmp_path):
        pass
    assert (tmp_path / ".notes.txt.tmp-20240101123045").read_text() == "mine"


# --------------------------------------------------------------------------- mmtok train (the LM)


def test_lm_run_refused_by_a_lock_of_another_host_touches_nothing_there(tmp_path: Path) -> None:
    """A live run on another host, mid-save, in a folder both hosts share: its process id means nothing here."""
    from mmtok.lm.train import TrainConfig, train

    out = tmp_path / "run"
    complete(out, "{}")
    (out / LOCK_NAME).write_text(f"{DEAD} elsewhere\n")
    (out / f".ckpt-0000200.tmp-{DEAD}-abcdef12").mkdir()  # its save of step 200, under way
    (out / f".log.jsonl.tmp-{DEAD}").write_text("")  # its rewrite of the log
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(TrainingError, match=f"in use by process {DEAD} on host elsewhere "):
        train(TrainConfig(data=str(tmp_path), out=str(out), device="cpu"), progress=False)
    assert sorted(p.name for p in out.iterdir()) == before


def test_lm_resume_puts_back_a_checkpoint_killed_mid_swap_and_drops_stale_temporaries(
        shards: Path, tmp_path: Path) -> None:
    from mmtok.lm.train import train

    run = train(small(shards, tmp_path / "run", steps=4, save_every=2), progress=False)
    rows_before = log(run)
    backup = kill_mid_swap(run / "ckpt-0000004")  # killed while saving step 4 again
    (run / f".ckpt-0000003.tmp-{DEAD}-0badf00d").mkdir()  # a save of a run resumed with another --save-every
    (run / f".log.jsonl.tmp-{DEAD}").write_text("half")  # a log rewrite killed
    inode = backup.stat().st_ino
    train(small(shards, run, steps=4, save_every=2), resume=True, progress=False)
    assert (run / "ckpt-0000004").stat().st_ino == inode  # resumed from it, at its end: nothing trained again
    assert hidden(run) == [] and log(run) == rows_before


# --------------------------------------------------------------------------- the image and audio trainers


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``mmtok ARGV`` through the console entry point: (exit status, stderr)."""
    from mmtok.cli import main

    capsys.readouterr()
    try:
        rc = main(list(argv))
    except SystemExit as e:
        rc = int(e.code or 0)
    return rc, capsys.readouterr().err


def image_args(tmp_path: Path, *extra: str) -> list[str]:
    from tests.test_image_train_cli import _args

    return _args(tmp_path, "run", "--save-every", "2", *extra)


def test_image_resume_puts_back_a_train_state_killed_mid_swap(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.image.train import main

    assert main(image_args(tmp_path, "--steps", "2")) == 0
    run = tmp_path / "run"
    kill_mid_swap(run / "train-state")
    (run / LOCK_NAME).write_text(f"{DEAD}\n")  # the killed run's lock
    rc, err = cli(capsys, "train-tokenizer", "image", *image_args(tmp_path, "--steps", "3", "--resume"))
    assert rc == 0 and f"resuming from {run / 'train-state'} at step 2" in err and "put back" in err
    assert hidden(run) == []
    assert json.loads((run / "train-state" / "config.json").read_text())["train"]["step"] == 3


def test_image_and_audio_trainers_refuse_a_folder_another_process_trains_into(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_audio_train_cli import SMALL, _data

    image_run, audio_run = tmp_path / "run", tmp_path / "audio"
    for out in (image_run, audio_run):
        out.mkdir()
        held_by_another(out)
    audio = ["--data", str(_data(tmp_path / "clips")), *SMALL, "--steps", "2", "--out", str(audio_run)]
    for argv in (["image", *image_args(tmp_path, "--steps", "2")], ["audio", *audio],
                 ["image", *image_args(tmp_path, "--steps", "2", "--resume")]):
        rc, err = cli(capsys, "train-tokenizer", *argv)
        out = image_run if argv[0] == "image" else audio_run
        assert rc == 1 and len(err.strip().splitlines()) == 1
        assert f"mmtok: error: {out} is in use by process {LIVE}" in err
        assert [p.name for p in out.iterdir()] == [LOCK_NAME] and (out / LOCK_NAME).read_text() == f"{LIVE}\n"


def test_audio_resume_puts_back_a_train_state_killed_mid_swap(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_audio_train_cli import SMALL, _data

    args = ["--data", str(_data(tmp_path / "clips")), *SMALL, "--out", str(tmp_path / "run")]
    assert cli(capsys, "train-tokenizer", "audio", *args, "--steps", "2")[0] == 0
    kill_mid_swap(tmp_path / "run" / "train-state")
    rc, err = cli(capsys, "train-tokenizer", "audio", *args, "--steps", "3", "--resume")
    assert rc == 0 and "resumed at step 2" in err and "k-means" not in err
    assert hidden(tmp_path / "run") == []


# --------------------------------------------------------------------------- the vocoder


def test_vocoder_resume_puts_back_a_train_state_killed_mid_swap(
        cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio import vocoder_train

    out = tmp_path / "run"
    assert vocoder_train.main(run_args(cache, out, "--steps", "2")) == 0
    kill_mid_swap(out / "train-state")
    assert vocoder_train.main(run_args(cache, out, "--steps", "4", "--resume")) == 0
    assert "resumed at step 2" in capsys.readouterr().err
    assert [r["step"] for r in rows(out / "validation.jsonl")] == [2, 4] and hidden(out) == []


def test_vocoder_resume_of_a_run_stopped_before_its_first_checkpoint_starts_it_afresh(
        cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.audio import vocoder_run, vocoder_train

    out, clips = tmp_path / "run", ["--val-clips", "1", "--val-clip-seconds", "0.5"]
    with monkeypatch.context() as m:  # killed while writing its first train state
        m.setattr(vocoder_run.Run, "_save_state", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            vocoder_train.main(run_args(cache, out, "--steps", "3", *clips))
    (out / f".train-state.tmp-{DEAD}-0badf00d").mkdir()
    (out / LOCK_NAME).write_text(f"{DEAD}\n")
    with open(out / "log.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # a row cut short by the kill
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["griffin-lim.json", "log.jsonl"]
    assert vocoder_train.main(run_args(cache, out, "--steps", "3", *clips)) == 2  # as before: --resume it
    assert "already holds a run" in last_error(capsys)
    assert vocoder_train.main(run_args(cache, out, "--steps", "3", "--resume", *clips)) == 0
    assert "starting it afresh" in capsys.readouterr().err
    assert [r["step"] for r in rows(out / "log.jsonl")] == [1, 2, 3] and hidden(out) == []
    assert [r["step"] for r in rows(out / "validation.jsonl")] == [2, 3]
    mixed = tmp_path / "mixed"  # the run's files beside someone else's: refused, as before
    mixed.mkdir()
    (mixed / "log.jsonl").write_text((out / "log.jsonl").read_text())
    (mixed / "notes.txt").write_text("mine")
    assert vocoder_train.main(run_args(cache, mixed, "--steps", "3", "--resume")) == 2
    assert "holds no run to continue" in last_error(capsys)
    assert sorted(p.name for p in mixed.iterdir()) == ["log.jsonl", "notes.txt"]


def test_vocoder_data_writers_leave_the_old_file_and_no_temporary_when_they_fail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.audio.vocoder_data import rewrite_jsonl, write_json_atomic

    index, log_file = tmp_path / "index.json", tmp_path / "log.jsonl"
    write_json_atomic(index, {"splits": 1})
    rewrite_jsonl(log_file, [{"step": 1}])

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        write_json_atomic(index, {"splits": 2})
    with pytest.raises(OSError):
        rewrite_jsonl(log_file, [])
    assert json.loads(index.read_text()) == {"splits": 1} and rows(log_file) == [{"step": 1}]
    assert hidden(tmp_path) == []


# --------------------------------------------------------------------------- the text tokenizer trainer


def test_text_trainer_puts_back_what_a_killed_save_left_at_its_out_and_refuses_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 40)
    out = save_checkpoint(tmp_path / "tok", kind="image", config={"patch": 4}, tensors={})
    kill_mid_swap(out)  # an image checkpoint whose save was killed mid-swap, and --out named it by mistake
    rc, err = cli(capsys, "train-tokenizer", "text", str(tmp_path / "t.txt"), "--vocab-size", "300", "--out", str(out))
    assert rc == 2 and "holds a checkpoint of kind 'image'" in err and "tok put back" in err
    assert json.loads((out / "config.json").read_text())["kind"] == "image" and hidden(tmp_path) == []
    new = tmp_path / "new"
    (tmp_path / ".new.lock").write_text(f"{LIVE}\n")  # another process trains into --out new
    rc, err = cli(capsys, "train-tokenizer", "text", str(tmp_path / "t.txt"), "--vocab-size", "300", "--out", str(new))
    assert rc == 1 and len(err.strip().splitlines()) == 1 and f"{new} is in use by process {LIVE}" in err
    assert not new.exists()
    (tmp_path / ".new.lock").unlink()
    assert cli(capsys, "train-tokenizer", "text", str(tmp_path / "t.txt"), "--vocab-size", "300",
               "--out", str(new))[0] == 0
    assert (new / "config.json").is_file() and hidden(tmp_path) == []
