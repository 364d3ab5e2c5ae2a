"""The mmtok command: --version, --help, and the demo end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mmtok
from mmtok.cli import main


def test_version_and_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mmtok.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"mmtok {mmtok.__version__}"
    help_text = subprocess.run(
        [sys.executable, "-m", "mmtok.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("demo", "train-tokenizer"):
        assert command in help_text


def test_console_script_is_declared() -> None:
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'mmtok = "mmtok.cli:main"' in text


def test_public_api_is_explicit() -> None:
    for name in mmtok.__all__:
        assert hasattr(mmtok, name), name
    for name in ("VectorQuantizer", "VQConfig", "load", "save", "MmtokError"):
        assert name in mmtok.__all__


def test_demo_fast(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--fast", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    ours = summary["mmtok (k-means init + EMA + dead-code restart)"]
    plain = summary["random init, plain EMA"]
    assert ours["usage"] >= 0.95 and plain["usage"] < ours["usage"]
    assert ours["mse"] < plain["mse"]
    printed = capsys.readouterr().out
    assert "usage" in printed and "perplexity" in printed
