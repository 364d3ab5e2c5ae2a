"""The vocoder command's guard rails: a run folder holding anyone's files, a stop between train-state and
model/, ``--resume`` with other settings, a cache from a bad or changed manifest, bad manifest lines,
numbers out of range, and errors said as the ``mmtok`` command says them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from mmtok.audio import vocoder_run, vocoder_train
from mmtok.audio.vocoder_data import build_cache
from mmtok.cli import main as cli
from mmtok.core.errors import CorpusError
from tests.test_vocoder import tiny_tokenizer, voiced

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--dim", "16", "--intermediate", "32", "--blocks", "1", "--batch-size", "2", "--segment-seconds", "0.2",
        "--warmup", "1", "--save-every", "2", "--log-every", "1", "--val-segments", "1", "--val-clips", "0",
        "--threads", "1", "--no-progress"]


def write_corpus(root: Path, splits: tuple[str, ...] = ("train", "train", "train", "validation", "validation")) -> Path:
    """One-second voiced files at 16 kHz, one per entry of ``splits``, and their manifest."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, split in enumerate(splits):
        sf.write(root / "audio" / f"{i}.wav", voiced(1.0, f0=120 + 15 * i, seed=i), 16000)
        rows.append({"path": f"audio/{i}.wav", "split": split, "source": "s", "group": f"g{i % 2}", "kind": "speech"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vocoder-cli")
    build_cache(write_corpus(root / "corpus"), root / "cache", progress=False)
    return root / "cache"


def run_args(cache: Path, out: Path, *more: str) -> list[str]:
    return ["--cache", str(cache), "--out", str(out), *TINY, *more]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def provenance(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())["provenance"]


def last_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err, "nothing said on stderr"
    return err[-1]


# --------------------------------------------------------------------------- A: someone else's files in --out


@pytest.mark.parametrize("theirs", ["log.jsonl", "validation.jsonl", "griffin-lim.json", "model/notes.txt"])
def test_a_new_run_leaves_a_folder_holding_other_files_alone(
        theirs: str, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs" / "u"
    (out / theirs).parent.mkdir(parents=True, exist_ok=True)
    (out / theirs).write_text("my notes\nline 2\n")
    assert vocoder_train.main(run_args(cache, out, "--steps", "2")) == 2  # as the image and audio trainers
    err = last_error(capsys)
    assert err.startswith("mmtok: error: ") and str(out) in err and "not a run's files" in err
    assert "pick an empty or new --out" in err and "--resume" not in err  # no run here to continue
    assert (out / theirs).read_text() == "my notes\nline 2\n"
    assert sorted(p.name for p in out.iterdir()) == [theirs.split("/")[0]]  # nothing written beside it


def test_resume_of_a_folder_without_a_run_leaves_it_alone(
        cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "u"
    out.mkdir()
    (out / "log.jsonl").write_text("my notes\n")
    assert vocoder_train.main(run_args(cache, out, "--steps", "2", "--resume")) == 2
    assert "holds no run to continue" in last_error(capsys)
    assert [p.name for p in out.iterdir()] == ["log.jsonl"] and (out / "log.jsonl").read_text() == "my notes\n"
    fresh = tmp_path / "fresh"  # --resume of an empty or missing folder starts the run
    assert vocoder_train.main(run_args(cache, fresh, "--steps", "2", "--resume")) == 0
    assert [r["step"] for r in rows(fresh / "log.jsonl")] == [1, 2]


# --------------------------------------------------------------------------- B: stopped after train-state


def stop_after_state_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Ctrl-C right after train-state of ``step`` is written (before model/, best/ and the validation row)."""
    real = vocoder_run.save_train_state

    def saved_then_stopped(*args: object, **kwargs: object) -> Path:
        folder = real(*args, **kwargs)  # type: ignore[arg-type]
        if kwargs["step"] == step:
            raise KeyboardInterrupt
        return folder

    monkeypatch.setattr(vocoder_run, "save_train_state", saved_then_stopped)


def test_resume_finishes_the_final_checkpoint_and_attaches_it(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, tok = tmp_path / "run", tiny_tokenizer(tmp_path / "tok")
    args = run_args(cache, out, "--steps", "4", "--tokenizer", str(tok))
    with monkeypatch.context() as m:
        stop_after_state_at(m, 4)
        with pytest.raises(KeyboardInterrupt):
            vocoder_train.main(args)
    assert provenance(out / "model")["steps"] == 2  # left behind by the stop
    assert vocoder_train.main([*args, "--resume", "--attach", str(tmp_path / "joined")]) == 0
    state = json.loads((out / "train-state" / "config.json").read_text())["train"]
    assert state["step"] == 4 and provenance(out / "model")["steps"] == 4
    assert [r["step"] for r in rows(out / "validation.jsonl")] == [2, 4]  # step 4 validated, once
    best = provenance(out / "best")["steps"]
    assert best == state["extra"]["best_step"]
    assert provenance(tmp_path / "joined")["vocoder"]["steps"] == best  # the attached best/ is the run's own
    assert vocoder_train.main([*args, "--resume"]) == 0  # done: nothing written again
    assert [r["step"] for r in rows(out / "validation.jsonl")] == [2, 4]


def test_a_stop_after_a_midway_train_state_resumes_on_the_same_curve(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert vocoder_train.main(run_args(cache, whole, "--steps", "4")) == 0
    with monkeypatch.context() as m:
        stop_after_state_at(m, 2)
        with pytest.raises(KeyboardInterrupt):
            vocoder_train.main(run_args(cache, stopped, "--steps", "4"))
    assert not (stopped / "model").exists() and not (stopped / "validation.jsonl").exists()
    assert vocoder_train.main(run_args(cache, stopped, "--steps", "4", "--resume")) == 0
    [a, b] = [[{k: v for k, v in r.items() if k != "minutes"} for r in rows(run / "validation.jsonl")]
              for run in (whole, stopped)]
    assert [r["step"] for r in b] == [2, 4] and b == pytest.approx(a, rel=1e-5)
    losses = [[r["loss"] for r in rows(run / "log.jsonl")] for run in (whole, stopped)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


# --------------------------------------------------------------------------- C: --resume keeps the run's settings


@pytest.fixture(scope="module")
def finished(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step run with --lr 1e-3 and --gain-db 3 (each refused resume leaves it as it is)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert vocoder_train.main(run_args(cache, out, "--steps", "2", "--lr", "1e-3", "--gain-db", "3")) == 0
    return out


@pytest.mark.parametrize("changed", [["--batch-size", "3"], ["--segment-seconds", "0.3"], ["--lr", "5e-4"],
                                     ["--gain-db", "6"], ["--disc-weight", "1", "--disc-seconds", "0.1"],
                                     ["--best-by", "stoi", "--val-clips", "1"], ["--val-segments", "2"],
                                     ["--mel-weight", "2"], ["--seed", "3"], ["--dim", "24"]])
def test_resume_refuses_other_settings(changed: list[str], cache: Path, finished: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = finished
    before = (out / "train-state" / "config.json").read_text()
    assert vocoder_train.main(run_args(cache, out, "--steps", "4", "--resume", "--lr", "1e-3", "--gain-db", "3",
                                       *changed)) == 2
    err = last_error(capsys)
    assert err.startswith(f"mmtok: error: --resume {out}: {changed[0]} ") and "(the run's: " in err
    assert (out / "train-state" / "config.json").read_text() == before  # refused before any work


def test_resume_refuses_another_level_correction_in_the_same_words_as_any_setting(tmp_path: Path) -> None:
    """--mel-match and --mel-match-db (the vocoder config's) are refused with the other settings, in one line
    saying what may change (what the run does not record: where and how it runs)."""
    import dataclasses

    from mmtok.audio.vocoder_checks import take_run_settings
    from mmtok.audio.vocoder_config import VocoderConfig
    from mmtok.audio.vocoder_settings import run_settings
    from mmtok.core.checkpoint import save_checkpoint
    from mmtok.core.errors import ResumeMismatchError
    from mmtok.core.trainstate import options_given

    out, parser = tmp_path / "run", vocoder_train.build_parser()
    started = parser.parse_args(["--out", str(out), "--cache", "c"])
    save_checkpoint(out / "train-state", kind="vocoder", config=dataclasses.asdict(VocoderConfig(mel_match_db=2.0)),
                    tensors={}, extra_meta={"train": {"step": 3}},
                    provenance={"settings": run_settings(started), "features": "true"})
    argv = ["--out", str(out), "--cache", "c", "--resume", "--lr", "0.1", "--mel-match", "2", "--mel-match-db", "3"]
    with pytest.raises(ResumeMismatchError) as e:
        take_run_settings(parser.parse_args(argv), options_given(parser, argv))
    assert str(e.value).startswith(f"--resume {out}: --mel-match 2 (the run's: 0); --mel-match-db 3 (the run's: 2); "
                                   "--lr 0.1 (the run's: 0.0005); ")
    assert "(--steps, --save-every, --log-every, --threads, --device may change)" in str(e.value)
    same = ["--out", str(out), "--cache", "c", "--resume", "--mel-match", "0", "--mel-match-db", "2", "--threads", "3"]
    take_run_settings(parser.parse_args(same), options_given(parser, same))  # the run's own values: accepted


def test_resume_takes_the_runs_own_settings_for_flags_left_out(cache: Path, tmp_path: Path) -> None:
    own = ["--lr", "1e-3", "--gain-db", "3", "--batch-size", "3", "--segment-seconds", "0.25", "--clip-grad", "0.5",
           "--warmup", "2"]  # the first 2 steps in warmup: the same rates whatever --steps the cosine ends at
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert vocoder_train.main(run_args(cache, whole, "--steps", "4", *own)) == 0
    assert vocoder_train.main(run_args(cache, resumed, "--steps", "2", *own)) == 0
    # only what moves the run on: the defaults (batch 16, 1 s segments, lr 5e-4, ...) are not taken
    assert vocoder_train.main(["--cache", str(cache), "--out", str(resumed), "--resume", "--steps", "4",
                               "--log-every", "1", "--no-progress"]) == 0
    prov = json.loads((resumed / "train-state" / "config.json").read_text())["provenance"]
    assert (prov["batch_size"], prov["segment_samples"], prov["lr"]) == (3, 4000, 1e-3)
    assert prov["settings"]["gain_db"] == 3 and prov["settings"]["clip_grad"] == 0.5
    assert "--lr 1e-3" in prov["command"] and "--resume" not in prov["command"]  # the command that started it
    assert len(prov["resumed_with"]) == 1 and "--resume --steps 4" in prov["resumed_with"][0]
    losses = [[r["loss"] for r in rows(run / "log.jsonl")] for run in (whole, resumed)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_resume_without_steps_keeps_the_runs_own_and_refuses_fewer_than_reached(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """--steps left out is the run's own 4, not the default 200,000 (which would stretch its lr schedule); a
    larger one extends the run, one below the step reached is refused."""
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        stop_after_state_at(m, 2)
        with pytest.raises(KeyboardInterrupt):
            vocoder_train.main(run_args(cache, out, "--steps", "4"))
    real, want, totals = vocoder_run.warmup_cosine, [4], []

    def schedule(step: int, **kwargs: float) -> float:
        totals.append(kwargs["total"])
        assert kwargs["total"] == want[0], f"the schedule's total is {kwargs['total']}, not the run's {want[0]}"
        return real(step, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(vocoder_run, "warmup_cosine", schedule)
    path = out / "train-state" / "config.json"
    assert vocoder_train.main(run_args(cache, out, "--resume")) == 0
    meta = json.loads(path.read_text())
    assert set(totals) == {4} and meta["train"]["step"] == 4 and meta["provenance"]["settings"]["steps"] == 4
    assert vocoder_train.main(run_args(cache, out, "--resume", "--steps", "3")) == 2
    assert last_error(capsys) == (f"mmtok: error: --steps 3: {out} has already reached step 4; give --steps 4 or "
                                  "more to extend it, or leave --steps out")
    totals.clear()
    want[0] = 5
    assert vocoder_train.main(run_args(cache, out, "--resume", "--steps", "5")) == 0  # extended
    assert vocoder_train.main(run_args(cache, out, "--resume")) == 0  # its steps are now 5: done
    meta = json.loads(path.read_text())
    assert set(totals) == {5} and meta["train"]["step"] == 5 and meta["provenance"]["settings"]["steps"] == 5


def test_resume_refuses_another_cache_and_takes_the_same_one_moved(cache: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    out = tmp_path / "run"
    assert vocoder_train.main(run_args(cache, out, "--steps", "2")) == 0
    other = tmp_path / "other-cache"
    build_cache(write_corpus(tmp_path / "other", ("train", "train", "validation", "validation")), other, progress=False)
    assert vocoder_train.main(run_args(other, out, "--steps", "3", "--resume")) == 2
    assert f"--cache {other} holds other clips than the cache the run" in last_error(capsys)
    moved = shutil.copytree(cache, tmp_path / "moved-cache")
    assert vocoder_train.main(run_args(moved, out, "--steps", "3", "--resume")) == 0


def test_a_run_saved_before_settings_were_recorded_is_checked_on_what_it_has(
        cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "old"
    assert vocoder_train.main(run_args(cache, out, "--steps", "2", "--batch-size", "3")) == 0
    path = out / "train-state" / "config.json"
    meta = json.loads(path.read_text())
    del meta["provenance"]["settings"]  # as such runs were saved
    path.write_text(json.dumps(meta))
    assert vocoder_train.main(run_args(cache, out, "--steps", "4", "--resume", "--batch-size", "4")) == 2
    assert "--batch-size 4 (the run's: 3)" in last_error(capsys)
    assert vocoder_train.main(["--cache", str(cache), "--out", str(out), "--resume", "--steps", "4",
                               "--no-progress"]) == 0
    assert json.loads(path.read_text())["provenance"]["batch_size"] == 3


def test_an_old_run_resumes_with_the_segment_seconds_it_was_started_with(
        cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Such a run kept only its segments' samples (0.205 s -> 3,200, whole hops): the command it was started
    with resumes, another length is refused on its samples."""
    out = tmp_path / "old"
    assert vocoder_train.main(run_args(cache, out, "--steps", "2", "--segment-seconds", "0.205")) == 0
    path = out / "train-state" / "config.json"
    meta = json.loads(path.read_text())
    del meta["provenance"]["settings"]
    path.write_text(json.dumps(meta))
    assert vocoder_train.main(run_args(cache, out, "--steps", "3", "--resume", "--segment-seconds", "0.3")) == 2
    assert "segments of 3200 samples" in last_error(capsys)
    assert vocoder_train.main(run_args(cache, out, "--steps", "3", "--resume", "--segment-seconds", "0.205")) == 0


# --------------------------------------------------------------------------- D, E: the cache and its manifest


def test_a_manifest_without_a_split_builds_nothing_and_a_changed_one_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_corpus(tmp_path / "corpus", ("train", "train", "valid"))
    cache = tmp_path / "cache"
    with pytest.raises(CorpusError, match=r"no validation rows \(splits found: train \(2\), valid \(1\)\)"):
        build_cache(corpus, cache, progress=False)
    assert not cache.exists()
    manifest = corpus / "manifest.jsonl"
    manifest.write_text(manifest.read_text().replace('"valid"', '"validation"'))
    summary = build_cache(corpus, cache, progress=False)  # fixed: built now, not refused forever
    assert summary["splits"]["validation"]["files"] == 1 and len(summary["manifest_sha256"]) == 64
    index = (cache / "index.json").read_text()
    manifest.write_text(manifest.read_text() + json.dumps({"path": "audio/0.wav", "split": "validation"}) + "\n")
    assert vocoder_train.main(["--corpus", str(corpus), "--cache", str(cache)]) == 2
    err = last_error(capsys)
    assert err.startswith("mmtok: error: cache ") and "another version of" in err and "delete" in err
    assert (cache / "index.json").read_text() == index  # nothing deleted or rebuilt


def test_a_half_built_cache_of_another_manifest_is_refused(tmp_path: Path) -> None:
    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    (corpus / "audio" / "3.wav").write_bytes(b"RIFF not really")
    (corpus / "audio" / "4.wav").write_bytes(b"RIFF not either")
    with pytest.raises(CorpusError, match="none of the 2 validation files"):
        build_cache(corpus, cache, progress=False)
    assert not (cache / "index.json").exists()  # not marked complete
    (corpus / "manifest.jsonl").write_text((corpus / "manifest.jsonl").read_text().replace('"g1"', '"g9"'))
    with pytest.raises(CorpusError, match="is being built from another version"):
        build_cache(corpus, cache, progress=False)


@pytest.mark.parametrize(("line", "why"), [
    ("not json", "not JSON"), ("[1, 2]", "expected a JSON object, got list"),
    ('{"split": "train"}', 'needs "path"'), ('{"path": 3, "split": "train"}', 'needs "path"'),
    ('{"path": "audio/0.wav"}', 'needs "split"'),
])
def test_a_bad_manifest_line_is_named_before_anything_is_written(
        line: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    lines = (corpus / "manifest.jsonl").read_text().splitlines()
    lines[2] = line
    (corpus / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    assert vocoder_train.main(["--corpus", str(corpus), "--cache", str(cache)]) == 2
    assert last_error(capsys).startswith(f"mmtok: error: {corpus / 'manifest.jsonl'}:3: {why}")
    assert not cache.exists()


# --------------------------------------------------------------------------- F: numbers out of range


@pytest.mark.parametrize("bad", [
    ["--lr", "nan"], ["--lr", "-1"], ["--lr", "0"], ["--warmup", "-5"], ["--clip-grad", "-1"], ["--gain-db", "-20"],
    ["--gain-db", "nan"], ["--segment-seconds", "nan"], ["--threads", "0"], ["--log-every", "0"],
    ["--val-clip-seconds", "-1"], ["--mel-match", "-1"], ["--disc-weight", "nan"],
    ["--mel-weight", "nan"], ["--mel-weight", "inf"], ["--seed", "-1"], ["--min-lr-frac", "2"], ["--disc-lr", "0"],
    ["--mel-match-db", "0"], ["--synthetic-share", "1"], ["--decoder-lr", "-1"], ["--steps", "0"],
])
def test_a_number_out_of_range_is_refused_before_any_work(
        bad: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert cli(["train-tokenizer", "vocoder", *run_args(tmp_path / "no-cache", out, "--steps", "2"), *bad]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mmtok: error: ") and bad[0] + " " in err
    assert not out.exists()


# --------------------------------------------------------------------------- G: said as mmtok says it


def test_a_non_finite_loss_is_a_failure_while_running(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(vocoder_run, "mel_l1", lambda y, *_, **__: y.sum() * float("nan"))
    out = tmp_path / "run"
    assert cli(["train-tokenizer", "vocoder", *run_args(cache, out, "--steps", "2")]) == 1
    assert last_error(capsys).startswith("mmtok: error: non-finite loss")
    assert vocoder_train.main(run_args(cache, tmp_path / "again", "--steps", "2")) == 1


def test_the_provenance_records_the_command_as_typed(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli(["train-tokenizer", "vocoder", *run_args(cache, tmp_path / "a", "--steps", "2")]) == 0
    assert provenance(tmp_path / "a" / "model")["command"].startswith(
        f"mmtok train-tokenizer vocoder --cache {cache} --out {tmp_path / 'a'} ")
    monkeypatch.setattr(sys, "argv", [vocoder_train.__file__])  # as python -m sets it
    assert vocoder_train.main(run_args(cache, tmp_path / "b", "--steps", "2")) == 0
    assert provenance(tmp_path / "b" / "model")["command"].startswith("python -m mmtok.audio.vocoder_train --cache ")


def test_python_dash_m_says_errors_as_mmtok_does(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-m", "mmtok.audio.vocoder_train", "--cache", str(tmp_path), "--out",
                           str(tmp_path / "run"), "--log-every", "0"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("mmtok: error: --log-every must be at least 1 (got 0); give --log-every >= 1 "
                                   "(a whole number) or leave the flag out (default: 10)")
