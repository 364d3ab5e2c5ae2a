"""The ``mmtok`` commands that need no tensors start without torch: ``--help``, ``--version`` and every command's
``--help`` are answered from parsers built of plain data, each checked in a fresh interpreter's ``sys.modules``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HEAVY = ("torch", "numpy", "av", "PIL", "einops", "safetensors", "matplotlib")
PROBE = f"HEAVY = {HEAVY!r}\n" + """
import contextlib, io, json, sys
from mmtok.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        status = main(sys.argv[1:])
    except SystemExit as e:
        status = e.code
print(json.dumps({"status": status, "out": out.getvalue(), "loaded": [m for m in HEAVY if m in sys.modules]}))
"""
# the commands whose options the `mmtok` parser itself holds (train and sample parse their own)
COMMANDS = ("demo", "train-tokenizer", "prune-codebook", "encode", "decode", "eval", "tokenize", "export",
            "export-hf", "info", "context")


def _run(*argv: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("argv", [("--help",), ("--version",), ()], ids=["help", "version", "bare"])
def test_the_command_starts_without_torch(argv: tuple[str, ...]) -> None:
    got = _run(*argv)
    assert got["status"] == 0 and got["loaded"] == [], got


def test_every_commands_help_starts_without_torch() -> None:
    probe = "\n".join([
        "import contextlib, io, json, sys",
        "from mmtok.cli import main",
        "seen = {}",
        f"for name in {COMMANDS!r}:",
        "    with contextlib.redirect_stdout(io.StringIO()) as out:",
        "        try:",
        "            main([name, '--help'])",
        "        except SystemExit as e:",
        "            assert e.code == 0, (name, e.code)",
        "    seen[name] = out.getvalue()",
        f"print(json.dumps({{'loaded': [m for m in {HEAVY!r} if m in sys.modules], 'seen': seen}}))",
    ])
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.splitlines()[-1])
    assert got["loaded"] == [], got["loaded"]
    for name, text in got["seen"].items():
        assert text.startswith(f"usage: mmtok {name}"), (name, text[:200])
    assert "{auto,learned,griffin-lim}" in got["seen"]["decode"] and "--dnsmos" in got["seen"]["eval"]
    assert "preset sources:\ngemini: " in got["seen"]["context"] and "\nmmtok: our shipped" in got["seen"]["context"]


def test_the_audio_tokenizer_takes_the_vocoder_choices_the_parsers_offer() -> None:
    import mmtok

    tok = mmtok.load("audio")
    from mmtok.core.command_line import VOCODER_CHOICES

    codes = tok.encode(torch.zeros(3200), sample_rate=16000)
    for name in VOCODER_CHOICES:
        assert tok.decode(codes, vocoder=name).ndim == 1
    with pytest.raises(ValueError, match="vocoder must be one of"):
        tok.decode(codes, vocoder="hifigan")


def test_the_commands_still_run_their_modules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The parsers no longer import the commands' modules: each command imports its own when it runs."""
    from mmtok.cli import main

    assert main(["context", "90", "--preset", "lwm", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["preset"] == "lwm"
    missing = tmp_path / "nothing-here.npz"
    assert main(["decode", str(missing), "--out", str(tmp_path / "out")]) == 2  # codefile ran: it refuses the file
    assert str(missing) in capsys.readouterr().err
