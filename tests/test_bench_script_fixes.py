"""The benchmark scripts as parts of a pipeline: a script that stops with a message names itself on its one line
(``common.run_script``), and benchmarks/gpu_check.sh reports a step whose log holds no JSON line (it stopped
before printing one) as a failed check with the log's last lines, instead of a traceback of its verdict."""

from __future__ import annotations

import ast
import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common
import gpu_verdict

from tests.test_hardening_train import FAKE_PYTHON, vq_mmtok_rows

ROOT = Path(__file__).resolve().parents[1]

# scripts whose ``__main__`` block does not run a main through run_script, and why
NOT_RUN_SCRIPT = {
    "corpus_formats.py": "its __main__ block only runs its tests (--selftest) or prints its docstring",
    "gpu_verdict.py": "stdlib only: gpu_check.sh runs it with the GPU machine's bare python; it stops with JSON rows",
}


# --------------------------------------------------------------------------- a script's message names the script


def test_a_message_a_script_stops_with_is_said_with_the_scripts_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def refused() -> None:
        raise SystemExit("--manifest m.jsonl: no such file\n  (benchmarks/fetch_corpus.py audio --out DIR writes one)")

    assert common.run_script(refused, "audio_levels.py") == 1
    assert capsys.readouterr().err == ("audio_levels.py: error: --manifest m.jsonl: no such file "
                                       "(benchmarks/fetch_corpus.py audio --out DIR writes one)\n")
    with pytest.raises(SystemExit) as status:  # a status (argparse's 2) is not a message
        common.run_script(lambda: sys.exit(2), "audio_levels.py")
    assert status.value.code == 2 and capsys.readouterr().err == ""

    def named() -> None:
        raise SystemExit("fetch_corpus audio: PyAV is not installed")

    assert common.run_script(named, "fetch_corpus.py") == 1  # a message that names the script already
    assert capsys.readouterr().err == "fetch_corpus audio: PyAV is not installed\n"
    monkeypatch.setenv("MMTOK_DEBUG", "1")
    with pytest.raises(SystemExit, match="no such file"):
        common.run_script(refused, "audio_levels.py")


def test_every_benchmark_script_runs_its_main_through_run_script() -> None:
    plain = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        blocks = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
        if blocks and path.name not in NOT_RUN_SCRIPT and "run_script(main)" not in ast.unparse(blocks[0]):
            plain.append(path.name)
    assert plain == []


def test_audio_levels_run_as_a_script_names_itself_on_a_missing_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    script = ROOT / "benchmarks" / "audio_levels.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--manifest", "m.jsonl", "--models", str(tmp_path / "missing")])
    with pytest.raises(SystemExit) as status:
        runpy.run_path(str(script), run_name="__main__")
    assert status.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"audio_levels.py: error: --models {tmp_path}/missing: ") and err.count("\n") == 1


# --------------------------------------------------------------------------- a step that printed nothing


def test_a_training_step_whose_log_is_empty_is_a_failed_check_with_the_logs_last_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run, log = tmp_path / "run", tmp_path / "train_gpu.log"
    run.mkdir()
    (run / "log.jsonl").write_text("")
    log.write_text("".join(f"line {i}\n" for i in range(40)) + "RuntimeError: CUDA error: out of memory\n")
    assert gpu_verdict.main(["train", str(run), "--name", "train_gpu", "--log", str(log), "--loss-falls"]) == 1
    (row,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert row == {"check": "train_gpu", "ok": False, "steps": 0, "read": str(run / "log.jsonl"), "log": str(log),
                   "log_tail": [*(f"line {i}" for i in range(21, 40)), "RuntimeError: CUDA error: out of memory"]}

    (run / "log.jsonl").unlink()  # no log at all
    assert gpu_verdict.main(["train", str(run), "--name", "torchrun_nccl_1_rank", "--log", str(log),
                             "--steps", "40", "--checkpoint", "ckpt-0000040"]) == 1
    assert json.loads(capsys.readouterr().out)["steps"] == 0

    (run / "log.jsonl").write_text("".join(json.dumps({"step": i + 1, "loss": 5.0 - i / 4, "tokens_per_s": 9.0 + i})
                                           + "\n" for i in range(4)))
    assert gpu_verdict.main(["train", str(run), "--name", "train_gpu", "--log", str(log), "--loss-falls",
                             "--settings", "compile"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["ok"], row["steps"], row["loss_last"], row["tokens_per_s"], row["mfu"], row["compile"]) == (
        True, 4, 4.25, 11.5, None, True)
    assert gpu_verdict.main(["train", str(run), "--name", "torchrun_nccl_1_rank", "--log", str(log),
                             "--steps", "40"]) == 1  # 4 steps of 40
    assert json.loads(capsys.readouterr().out)["log_tail"][-1].startswith("RuntimeError")


def test_a_sample_vq_or_media_log_without_a_json_line_is_a_failed_check_with_the_logs_last_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    log = tmp_path / "step.log"
    log.write_text("")
    assert gpu_verdict.main(["vq", str(log), "--ks", "16"]) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["log_tail"] == []
    log.write_text("Segmentation fault\n")
    assert gpu_verdict.main(["media", str(log)]) == 1
    assert json.loads(capsys.readouterr().out) == {"check": "media", "ok": False, "read": str(log),
                                                   "log_tail": ["Segmentation fault"]}
    assert gpu_verdict.main(["sample", str(log), "--prompt", "the ", "--max-new-tokens", "3", "--start", "0"]) == 1
    assert json.loads(capsys.readouterr().out)["log_tail"] == ["Segmentation fault"]
    log.write_text('{"check": "image_device", "ok": true}\n{"check": "audio_device", "ok": false}\n')
    assert gpu_verdict.main(["media", str(log)]) == 1
    assert [json.loads(x)["ok"] for x in capsys.readouterr().out.splitlines()] == [True, False]


def gpu_check(tmp_path: Path, empty_train_log: bool = False, media: str = "") -> tuple[int, list[dict], str]:
    """benchmarks/gpu_check.sh with every command faked (tests/test_hardening_train.py's FAKE_PYTHON); training
    leaves an empty log.jsonl with ``empty_train_log``; ``media`` is what gpu_media.py prints."""
    fake_python = FAKE_PYTHON.replace('(out / "log.jsonl").write_text("".join(',
                                      '(out / "log.jsonl").write_text("" if os.environ.get("EMPTY") else "".join(')
    tmp_path.mkdir(parents=True)
    fake = tmp_path / "python"
    fake.write_text(f"#!{sys.executable} -S\n{fake_python}")
    fake.chmod(0o755)
    (tmp_path / "vq.out").write_text("".join(json.dumps(r) + "\n" for r in vq_mmtok_rows()))
    (tmp_path / "media.out").write_text(media or json.dumps({"check": "image_device", "ok": True}) + "\n")
    env = {**os.environ, "PYTHON": str(fake), "GPU_CHECK_DIR": str(tmp_path / "dir"), "STEPS": "4",
           "FAKE_VQ": str(tmp_path / "vq.out"), "FAKE_MEDIA": str(tmp_path / "media.out"), "FAKE_DOCS": "6000",
           **({"EMPTY": "1"} if empty_train_log else {})}
    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                         env=env, timeout=60)
    return out.returncode, [json.loads(x) for x in out.stdout.splitlines()], out.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_reports_a_step_that_printed_nothing_as_failed_instead_of_a_traceback(tmp_path: Path) -> None:
    status, rows, err = gpu_check(tmp_path / "train", empty_train_log=True)
    assert status == 1 and "Traceback" not in err, err
    assert [r["check"] for r in rows] == ["shards", "train_gpu"]
    assert rows[-1]["ok"] is False and rows[-1]["steps"] == 0 and rows[-1]["log"].endswith("train_gpu.log")

    status, rows, err = gpu_check(tmp_path / "media", media="ImportError: libcudart.so.12\n")
    assert status == 1 and rows[-1] == {"check": "media", "ok": False, "read": str(tmp_path / "media/dir/media.log"),
                                        "log_tail": ["ImportError: libcudart.so.12"]}
    assert [r["check"] for r in rows if r["check"] not in ("vq_cuda",)] == [
        "shards", "train_gpu", "torchrun_nccl_1_rank", "sample_cuda", "media"]
