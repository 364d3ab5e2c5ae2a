"""The benchmark scripts as a user reproducing the published figures meets them: a corpus folder or model that
is missing or of the wrong kind is refused in one line naming the flag and what builds or fixes it, every
timing flag is checked, and benchmarks/gpu_check.sh tells a Python that cannot run or cannot
import torch apart from a machine without a GPU."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import audio as audio_bench
import image as image_bench
import parse as parse_bench

from mmtok.core.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def test_audio_data_folder_missing_is_refused_naming_the_flag_and_what_builds_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio_bench, "load_audio_tokenizer", lambda *_: object())  # no weights to read here
    with pytest.raises(UsageError, match=r"^--data .*nope: no such folder \(mmtok train-tokenizer audio --make-data "
                                         r".*benchmarks/fetch_corpus\.py audio"):
        audio_bench.main(["--data", str(tmp_path / "nope")])
    (tmp_path / "d" / "train").mkdir(parents=True)
    sf.write(tmp_path / "d" / "train" / "a.wav", np.zeros(1600, np.float32), 16000)
    with pytest.raises(UsageError, match=r"^--data .*d: no heldout/\*\.wav in it \(mmtok train-tokenizer audio"):
        audio_bench.main(["--data", str(tmp_path / "d")])
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match=r"^--data .*f: not a folder"):
        audio_bench.main(["--data", str(tmp_path / "f")])


def test_image_missing_manifest_or_data_folder_says_what_builds_it(tmp_path: Path) -> None:
    args = argparse.Namespace(manifest=tmp_path / "nope.jsonl", data=None, split="validation")
    with pytest.raises(SystemExit, match=r"^--manifest .*nope\.jsonl: no such file \(benchmarks/fetch_corpus\.py image"):
        image_bench.select_files(args)
    args = argparse.Namespace(manifest=None, data=tmp_path / "nope", split="validation")
    with pytest.raises(SystemExit, match=r"^--data .*nope: no such folder \(benchmarks/image_data\.py --out DIR"):
        image_bench.select_files(args)


def test_image_model_of_another_kind_is_refused_naming_its_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    class Other:
        pass

    monkeypatch.setattr(image_bench.mmtok, "load", lambda _name: Other())
    with pytest.raises(SystemExit, match=r"^--model audio: not an image tokenizer \(Other\)"):
        image_bench.load_tokenizer("audio")
    with pytest.raises(SystemExit, match=r"^--vqvae audio: not an image tokenizer"):
        image_bench.load_tokenizer("audio", "--vqvae")


@pytest.mark.parametrize("rounds", ["0", "-1"])
def test_parse_rounds_below_one_is_refused_naming_the_flag(rounds: str) -> None:
    with pytest.raises(UsageError, match=rf"^--rounds {rounds}: give a number above 0"):
        parse_bench.main(["--rounds", rounds])


def _gpu_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "GPU_CHECK_DIR": str(tmp_path / "run"), **env}
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                          env=full, timeout=120)


def test_gpu_check_says_a_python_without_torch_is_no_missing_gpu(tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "torch"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise ImportError("libtorch_cpu.so: cannot open shared object file")\n')
    out = _gpu_check(tmp_path, PYTHON=sys.executable, PYTHONPATH=str(broken.parent))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "no CUDA device" not in out.stderr
    assert out.stderr.startswith(f"gpu_check: error: PYTHON={sys.executable}: cannot import torch (ImportError: "
                                 "libtorch_cpu.so")


def test_gpu_check_names_a_python_that_does_not_run(tmp_path: Path) -> None:
    out = _gpu_check(tmp_path, PYTHON=str(tmp_path / "no-python"))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "no CUDA device" not in out.stderr
    assert out.stderr.startswith(f"gpu_check: error: PYTHON={tmp_path / 'no-python'}: ")
    assert "No such file" in out.stderr and "set PYTHON to a python" in out.stderr
