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


# the torch-free seams a plan reads: the transformer's size, the image size rules, the tokenizers' and vocoder's
# settings, the checkpoint config reader, the shipped-name lookup, and the subpackages' faces
TORCH_FREE = ("mmtok.lm.model_config", "mmtok.image.sizes", "mmtok.lm", "mmtok.image", "mmtok.audio", "mmtok.stream",
              "mmtok.vq", "mmtok.core.checkpoint", "mmtok.core.checkpoint_names", "mmtok.core.run_folder",
              "mmtok.audio.front_end", "mmtok.audio.vocoder_config", "mmtok.pretrained")
# the settings modules a config is read into: no torch or safetensors (numpy, which VQConfig checks numbers with, may come)
CONFIG_HOMES = ("mmtok.vq.config", "mmtok.image.config", "mmtok.audio.config", "mmtok.audio.vocoder_config")
FACES = ("mmtok.lm", "mmtok.image", "mmtok.audio", "mmtok.stream", "mmtok.vq")


def test_the_config_and_size_modules_and_the_subpackages_import_without_torch() -> None:
    probe = (f"import importlib, json, sys\nfor name in {TORCH_FREE!r}:\n    importlib.import_module(name)\n"
             "print(json.dumps([m for m in ('torch', 'numpy') if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_every_shipped_kinds_config_reads_without_torch() -> None:
    from mmtok.pretrained import _CONFIG_HOMES

    homes = {module for module, _ in _CONFIG_HOMES.values()} - {"mmtok.video.tokenizer"}
    assert homes <= set(CONFIG_HOMES), homes - set(CONFIG_HOMES)
    probe = (f"import importlib, json, sys\nfor name in {CONFIG_HOMES!r}:\n    importlib.import_module(name)\n"
             "print(json.dumps([m for m in ('torch', 'safetensors') if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


@pytest.mark.parametrize("face", FACES)
def test_every_name_a_subpackage_exports_is_still_there(face: str) -> None:
    import importlib

    package = importlib.import_module(face)
    for name in package.__all__:
        value = getattr(package, name)
        assert getattr(importlib.import_module(value.__module__), name) is value, (face, name)
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        package.nothing_here  # noqa: B018


def test_the_model_config_takes_numpy_numbers_as_before() -> None:
    import numpy as np

    from mmtok.lm.model import ModelConfig as FromModel
    from mmtok.lm.model_config import ModelConfig

    assert FromModel is ModelConfig
    cfg = ModelConfig(vocab_size=np.int64(300), mlp_ratio=np.float32(2.5), dropout=np.float64(0.1))
    assert (cfg.vocab_size, cfg.mlp_ratio) == (300, 2.5) and type(cfg.vocab_size) is int
    for bad in ({"vocab_size": np.bool_(True)}, {"vocab_size": np.float64(300.0)}, {"mlp_ratio": np.bool_(True)},
                {"n_layer": True}, {"dropout": "0.1"}):
        with pytest.raises(ValueError, match="ModelConfig"):
            ModelConfig(**bad)  # type: ignore[arg-type]


CONTEXT_ARGS = (("600", "--json"), ("600", "--json", "--preset", "gemini"), ("600", "--json", "--model", "base"))


@pytest.mark.parametrize("args", CONTEXT_ARGS, ids=["mmtok", "gemini", "base"])
def test_the_context_command_prints_the_plan_made_in_process(args: tuple[str, ...]) -> None:
    from mmtok.context.shipped import plan

    got = _run("context", *args)
    assert got["status"] == 0, got
    options = dict(zip(args[2::2], args[3::2], strict=True))
    expected = plan(600, preset=options.get("--preset", "mmtok"), model=options.get("--model", "small")).to_dict()
    assert str(got["out"]) == json.dumps(expected) + "\n"  # the same text, tuples as JSON lists


@pytest.mark.parametrize("args", CONTEXT_ARGS, ids=["mmtok", "gemini", "base"])
def test_the_context_command_plans_without_torch(args: tuple[str, ...]) -> None:
    got = _run("context", *args)
    assert got["status"] == 0 and "torch" not in got["loaded"], got["loaded"]
