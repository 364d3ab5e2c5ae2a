"""Runs resume with the settings they recorded (an LM seed in [0, 2**63), an audio ``--band-weight`` band that holds
no mel channel) while the same values given afresh are refused; a ``module:callable`` MODEL that fails to import
or to build is one error naming the spec and the exception's type, the exception kept as its cause."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.features import mel_centres
from mmtok.audio.losses import channel_weights
from mmtok.core.errors import CheckpointError, CorpusError, RunRefusedError
from mmtok.lm.runs import checkpoint_folders
from mmtok.lm.train import TrainConfig, check_config, train
from mmtok.pretrained import load_tokenizer
from tests.test_audio_train_cli import SMALL, _data
from tests.test_hardening_train import shards as hardening_shards
from tests.test_hardening_train import small
from tests.test_run_recovery import cli

shards = hardening_shards  # the small corpus of the training tests, made once for this module
BIG_SEED = 5_000_000_000  # a seed in [0, 2**63), past [0, 2**32)




def _edit_json(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


# --------------------------------------------------------------------------- 1a: an LM run's recorded seed


@pytest.fixture(scope="module")
def seeded_run(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step run whose checkpoints record the seed ``BIG_SEED``, as ``mmtok train`` writes its settings."""
    run = train(small(shards, tmp_path_factory.mktemp("seeded") / "run", steps=2, seed=7), progress=False)
    for ck in checkpoint_folders(run):
        _edit_json(ck / "config.json", lambda d: d["config"]["train"].update(seed=BIG_SEED))
    return run


def _newest(run: Path) -> dict:
    return json.loads((checkpoint_folders(run)[-1] / "config.json").read_text())


def test_a_run_recorded_with_a_seed_past_2_32_resumes_with_it(seeded_run: Path, shards: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    run = Path(shutil.copytree(seeded_run, tmp_path / "run"))
    rc, err = cli(capsys, "train", "--data", str(shards), "--out", str(run), "--steps", "4", "--resume",
                    "--no-progress", "--threads", "1")
    assert rc == 0, err
    assert "seed" not in err
    assert _newest(run)["train"]["step"] == 4 and _newest(run)["config"]["train"]["seed"] == BIG_SEED
    # the run's own seed given on the command line is checked as every flag given is
    rc, err = cli(capsys, "train", "--data", str(shards), "--out", str(run), "--steps", "6", "--resume",
                    "--no-progress", "--seed", str(BIG_SEED))
    assert rc == 2 and err.count("\n") == 1 and "--seed: must be a whole number in [0, 4294967295]" in err
    assert _newest(run)["train"]["step"] == 4


def test_the_python_api_resumes_a_run_with_its_recorded_seed(seeded_run: Path, shards: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(seeded_run, tmp_path / "run"))
    train(small(shards, run, steps=3, seed=BIG_SEED), resume=True, progress=False)
    assert _newest(run)["train"]["step"] == 3 and _newest(run)["config"]["train"]["seed"] == BIG_SEED


def test_a_seed_past_2_32_is_still_refused_for_a_fresh_run(shards: Path, tmp_path: Path) -> None:
    message = r"^seed must be in \[0, 4294967295\] \(a whole number\), got 5000000000$"
    with pytest.raises(RunRefusedError, match=message):
        train(small(shards, tmp_path / "new", seed=BIG_SEED), progress=False)
    with pytest.raises(RunRefusedError, match=message):  # --resume of a folder with no checkpoint starts afresh
        train(small(shards, tmp_path / "empty", seed=BIG_SEED), resume=True, progress=False)
    assert not (tmp_path / "new").exists() and not (tmp_path / "empty").exists()
    recorded = {"seed": BIG_SEED}
    check_config(TrainConfig(seed=BIG_SEED), recorded=recorded)  # the run's own
    with pytest.raises(RunRefusedError, match=r"^seed must be in \[0, .* got 9223372036854775808$"):
        check_config(TrainConfig(seed=2**63), recorded={"seed": 2**63})  # no int64: no generator takes it
    with pytest.raises(RunRefusedError, match=r"seed must be in \[0, 4294967295\]"):
        check_config(TrainConfig(seed=BIG_SEED + 1), recorded=recorded)  # not the run's


# --------------------------------------------------------------------------- 1b: an audio run's recorded band


def _run_with_band(root: Path, band: list[float]) -> tuple[Path, Path]:
    """A finished 1-step audio run whose train-state records ``band``, as the trainer writes its settings."""
    from mmtok.audio.train import main

    data, out = _data(root / "data"), root / "run"
    assert main(["--data", str(data), "--out", str(out), *SMALL, "--steps", "1", "--band-weight", "0-500:2"]) == 0

    def record(d: dict) -> None:
        d["train"]["extra"]["settings"]["band_weight"] = [band]
        d["provenance"]["command"] = d["provenance"]["command"].replace("0-500:2", f"{band[0]:g}-{band[1]:g}:2")
    _edit_json(out / "train-state" / "config.json", record)
    return data, out


def test_an_audio_run_recorded_with_a_band_of_no_mel_channel_resumes_with_one_note(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = _run_with_band(tmp_path, [80.0, 100.0, 2.0])
    rc, err = cli(capsys, "train-tokenizer", "audio", "--data", str(data), "--out", str(out), "--resume",
                    "--steps", "2", "--no-progress")
    assert rc == 0, err
    notes = [line for line in err.splitlines() if "--band-weight" in line]
    assert notes == [f"--resume {out}: the run's --band-weight 80-100:2: no mel channel has its centre in [80, 100) "
                     "Hz (the nearest: 74.3 and 111.8 Hz): it weighs nothing, as in the steps the run took"]
    state = json.loads((out / "train-state" / "config.json").read_text())
    assert state["train"]["step"] == 2 and state["train"]["extra"]["settings"]["band_weight"] == [[80.0, 100.0, 2.0]]
    # given on the command line, the band is checked as every flag given is
    rc, err = cli(capsys, "train-tokenizer", "audio", "--data", str(data), "--out", str(out), "--resume",
                    "--steps", "3", "--no-progress", "--band-weight", "80-100:2")
    assert rc == 2 and err.count("\n") == 1 and "no mel channel has its centre in [80, 100) Hz" in err
    assert json.loads((out / "train-state" / "config.json").read_text())["train"]["step"] == 2


def test_a_resumed_run_weighs_the_bands_that_hold_a_mel_channel(capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio.train import build_parser
    from mmtok.audio.train_checks import check_bands

    cfg, parser = AudioTokenizerConfig(), build_parser()
    centres = mel_centres(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)

    def weights(*bands: tuple[float, float, float]):  # type: ignore[no-untyped-def]
        args = parser.parse_args(["--data", "d", "--out", "run", "--resume"])
        args.band_weight = list(bands)  # the run's own, as --resume takes them
        return check_bands(parser, args, cfg, ["--data", "d", "--out", "run", "--resume"])

    assert weights() is None
    assert weights((0.0, 500.0, 2.0), (80.0, 100.0, 3.0)).equal(channel_weights([(0.0, 500.0, 2.0)], centres))
    assert weights((80.0, 100.0, 3.0)).equal(channel_weights([], centres))  # weighs nothing: every channel 1
    assert capsys.readouterr().err.count("weighs nothing") == 2


# --------------------------------------------------------------------------- 2: a module:callable MODEL that fails


FACTORIES = {  # what fails -> (its module's source, what the error says, the cause's type)
    "missing-argument": ("def make(size):\n    return size\n", "make() missing 1 required positional argument: 'size'",
                         TypeError),
    "syntax-error": ("def make(:\n", "invalid syntax", SyntaxError),
    "factory-raises": ("def make():\n    raise RuntimeError('no weights\\nhere')\n", "no weights here", RuntimeError),
    "import-fails": ("import no_such_module_rev1\n", "No module named 'no_such_module_rev1'", ModuleNotFoundError),
}


@pytest.mark.parametrize("what", list(FACTORIES))
def test_a_callable_model_that_fails_is_one_error_naming_the_spec(
        what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, said, kind = FACTORIES[what]
    module = f"rev1_{what.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    path = list(sys.path)
    for error in (CheckpointError, CorpusError):
        with pytest.raises(error) as e:
            load_tokenizer(f"{module}:make", kind="image", error=error)
        message = str(e.value)
        assert message.startswith(f"cannot build tokenizer '{module}:make': {said}") and "\n" not in message
        assert message.endswith(f"({kind.__name__})") and type(e.value.__cause__) is kind
    assert sys.path == path


def test_a_callable_model_that_fails_exits_2_naming_the_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rev1_needsarg.py").write_text("def make(size):\n    return size\n")
    (tmp_path / "rev1_stop.py").write_text("def make():\n    raise KeyboardInterrupt\n")
    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)).save(tmp_path / "p.png")
    monkeypatch.chdir(tmp_path)
    rc, err = cli(capsys, "encode", "p.png", "--out", "o", "--image", "rev1_needsarg:make")
    assert rc == 2
    assert err == ("mmtok: error: --image rev1_needsarg:make: cannot build tokenizer 'rev1_needsarg:make': make() "
                   "missing 1 required positional argument: 'size' (TypeError)\n")
    rc, err = cli(capsys, "--debug", "encode", "p.png", "--out", "o", "--image", "rev1_needsarg:make")
    assert rc == 2 and "TypeError: make() missing 1 required positional argument" in err  # the cause's traceback
    with pytest.raises(KeyboardInterrupt):  # an interrupt is no failure to build: it goes through
        load_tokenizer("rev1_stop:make", kind="image")


def test_the_stdout_guard_passes_on_what_a_wrapped_stream_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stdout whose write returns None (colorama's wrapper, older notebook streams) is written to as before."""
    import io
    import sys

    from mmtok.cli import main

    class Wrapper:
        def __init__(self) -> None:
            self.buf = io.StringIO()

        def write(self, text: str) -> None:
            self.buf.write(text)

        def flush(self) -> None:
            pass

    out = Wrapper()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["context", "60", "--preset", "gemini", "--json"]) == 0
    assert json.loads(out.buf.getvalue())["preset"] == "gemini"


def test_a_quantizer_made_and_loaded_under_a_float64_default_keeps_its_float32_state(tmp_path: Path) -> None:
    import mmtok
    from mmtok.vq.quantizer import VectorQuantizer, VQConfig

    torch.set_default_dtype(torch.float64)
    try:
        vq = VectorQuantizer(VQConfig(codebook_size=8, dim=4))  # its state is float32 whatever the default
        mmtok.save(vq, tmp_path / "vq64")
        back = mmtok.load(tmp_path / "vq64")
        assert vq.embed.dtype == back.embed.dtype == torch.float32 and torch.equal(back.embed, vq.embed)
    finally:
        torch.set_default_dtype(torch.float32)


def test_warmup_0_starts_at_the_peak_and_a_vocabulary_without_media_prints_no_stray_comma() -> None:
    from mmtok.core.schedule import warmup_cosine
    from mmtok.stream.vocab import Vocabulary

    assert warmup_cosine(0, peak=2.0, warmup=0, total=1) == 2.0
    assert warmup_cosine(0, peak=2.0, warmup=0, total=5, floor=0.5) == 2.0
    assert warmup_cosine(4, peak=2.0, warmup=0, total=5, floor=0.5) == 0.5
    assert repr(Vocabulary(256)) == "Vocabulary(size=288, text=256, special=32)"
