"""Steps 6 and 7 of gpu_check.sh on the CPU: benchmarks/gpu_trainers.py's checks pass on a good run, and a run
that did not take its steps, wrote no finite loss or no model is not ok; the demo verdict reads the demo's
summary line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_trainers  # noqa: E402
from gpu_verdict import DEMO_STEPS, demo_verdict  # noqa: E402
from gpu_verdict import main as verdict  # noqa: E402


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    folder = tmp_path_factory.mktemp("gpu-trainers")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_trainers.py"), "--device", "cpu", "--dir",
                          str(folder), "--steps", "2", "--more", "1"], capture_output=True, text=True, timeout=600,
                         cwd=ROOT)
    (folder / "trainers.log").write_text(out.stdout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return folder, {r["check"]: r for r in map(json.loads, out.stdout.splitlines())}


def test_every_trainer_check_runs_and_passes_on_a_good_run(checked: tuple[Path, dict[str, dict]]) -> None:
    _, rows = checked
    assert set(rows) == {"train_image", "resume_image", "load_image", "train_audio", "load_audio", "train_vocoder"}
    assert all(r["ok"] for r in rows.values())
    assert rows["resume_image"]["steps"] == 3 and rows["train_image"]["trained_on"] == "cpu"
    assert rows["load_audio"]["codes_equal_share"] == 1.0 and rows["load_image"]["decode_max_diff"] == 0.0
    assert all(rows[f"train_{k}"]["losses_logged"] > 0 for k in ("image", "audio", "vocoder"))


def test_verdict_passes_the_rows_and_fails_without_them(checked: tuple[Path, dict[str, dict]],
                                                        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder, _ = checked
    assert verdict(["trainers", str(folder / "trainers.log")]) == 0
    (tmp_path / "empty.log").write_text("Traceback (most recent call last):\n  boom\n")
    capsys.readouterr()
    assert verdict(["trainers", str(tmp_path / "empty.log")]) == 1
    row = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert row["check"] == "trainers" and row["ok"] is False and "boom" in " ".join(row["log_tail"])


def test_a_run_short_of_its_steps_or_without_finite_losses_is_not_ok(checked: tuple[Path, dict[str, dict]],
                                                                     tmp_path: Path) -> None:
    folder, _ = checked
    run = folder / "run-vocoder"
    assert gpu_trainers.train_state_step(run) == 2
    assert gpu_trainers.train_state_step(tmp_path) is None  # no train state: not a number of steps
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"step": 1, "loss": 1.5}) + "\n" + json.dumps({"step": 2, "loss": float("nan")}) + "\n")
    losses = gpu_trainers.logged_losses(tmp_path)
    assert len(losses) == 2 and not all(v == v for v in losses)  # the NaN is read, so the check fails on it
    with pytest.raises(FileNotFoundError, match="no tokenizer checkpoint"):
        gpu_trainers.model_folder(tmp_path)


def test_demo_verdict_wants_the_device_every_step_and_the_page(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text("<html></html>")
    good = {"page": str(page), "device": "cuda:0", "steps": {k: {"summary": "ran"} for k in DEMO_STEPS}}
    assert demo_verdict([{"bench": "other"}, good], device="cuda")["ok"]
    assert not demo_verdict([{**good, "device": "cpu"}], device="cuda")["ok"]  # fell back to the CPU
    short = {**good, "steps": {k: {"summary": "ran"} for k in DEMO_STEPS[:-1]}}
    assert demo_verdict([short], device="cuda")["missing_steps"] == ["context"]
    assert not demo_verdict([{**good, "page": str(tmp_path / "gone.html")}], device="cuda")["ok"]
    assert not demo_verdict([{"bench": "other"}], device="cuda")["ok"]  # no summary line at all


def test_demo_verdict_knows_the_demos_steps() -> None:
    from mmtok.demo.run import _steps

    assert tuple(name for name, _ in _steps()) == DEMO_STEPS
