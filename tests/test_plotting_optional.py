"""matplotlib is the optional ``plot`` extra: without it a trainer skips its pictures with one line on stderr
(after its summary is written), and what needs a plot stops with a one-line error that names the extra."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.core import plotting
from mmtok.core.errors import DemoError, UsageError
from tests.test_audio import speechlike

SKIP = "matplotlib is not installed (pip install 'mmtok[plot]'): skipping "


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import matplotlib`` fails, and no skipped picture has been reported yet in this process."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(plotting, "_skipped", set())


@pytest.mark.usefixtures("no_matplotlib")
def test_an_optional_picture_is_skipped_with_one_line_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert plotting.pyplot("out/loss.png") is None
    assert capsys.readouterr().err == SKIP + "out/loss.png\n"
    assert plotting.pyplot("out/loss.png") is None  # a trainer plotting at every checkpoint says it once
    assert plotting.pyplot("other/loss.png") is None
    assert capsys.readouterr().err == SKIP + "other/loss.png\n"


@pytest.mark.usefixtures("no_matplotlib")
def test_a_required_picture_is_a_one_line_error_naming_the_extra(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError) as e:
        plotting.pyplot("--plot scores.png", required=True)
    assert str(e.value) == "--plot scores.png needs matplotlib, which is not installed: pip install 'mmtok[plot]'"
    with pytest.raises(DemoError, match=r"^the demo's page needs matplotlib, which is not installed: pip install"):
        plotting.pyplot("the demo's page", required=True, error=DemoError)
    assert capsys.readouterr().err == ""


def test_with_matplotlib_the_helper_gives_pyplot_drawing_to_files() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    plt = plotting.pyplot("x.png")
    assert plt is sys.modules["matplotlib.pyplot"] and matplotlib.get_backend().lower() == "agg"


@pytest.mark.usefixtures("no_matplotlib")
def test_audio_trainer_writes_its_summary_and_skips_its_pictures(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A finished run (and a resumed one) without matplotlib: model and summary.json, no pictures, exit 0."""
    from mmtok.audio.train import main

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        sf.write(data / f"clip-{i}.wav", speechlike(1.5, seed=30 + i), SAMPLE_RATE)
    out = tmp_path / "run"
    common = ["--data", str(data), "--out", str(out), "--codebook-size", "16", "--decoder-channels", "16",
              "--crop-tokens", "8", "--batch-size", "2", "--kmeans-iters", "2", "--threads", "1", "--no-progress"]
    assert main([*common, "--steps", "1"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 1 and (out / "model").is_dir()
    assert not (out / "mel.png").exists() and not (out / "codebook-usage.png").exists()
    err = capsys.readouterr().err
    assert err.count(SKIP) == 1 and f"{SKIP}{out / 'mel.png'} and {out / 'codebook-usage.png'}\n" in err
    assert main([*common, "--steps", "2", "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 2


@pytest.mark.usefixtures("no_matplotlib")
def test_audio_report_pictures_are_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio.config import AudioTokenizerConfig
    from mmtok.audio.tokenizer import AudioTokenizer
    from mmtok.audio.train_report import save_pictures

    tok = AudioTokenizer(AudioTokenizerConfig())
    assert save_pictures(tok, torch.zeros(tok.cfg.n_mels, 64), torch.ones(tok.codebook_size), tmp_path) is False
    assert list(tmp_path.iterdir()) == [] and capsys.readouterr().err.startswith(SKIP)


@pytest.mark.usefixtures("no_matplotlib")
def test_lm_loss_plot_and_image_histogram_say_they_are_skipped(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.image.train import save_usage_histogram
    from mmtok.lm.runs import LOG_NAME, plot_loss

    (tmp_path / LOG_NAME).write_text(json.dumps({"step": 1, "loss": 5.0, "lr": 1e-3, "tokens_per_s": 1.0}) + "\n")
    plot_loss(tmp_path)
    assert capsys.readouterr().err == f"{SKIP}{tmp_path / 'loss.png'}\n" and not (tmp_path / "loss.png").exists()
    assert save_usage_histogram(torch.ones(8), tmp_path / "usage.png", "usage") is False
    assert capsys.readouterr().err == f"{SKIP}{tmp_path / 'usage.png'}\n"


@pytest.mark.usefixtures("no_matplotlib")
def test_context_plots_asked_for_are_one_line_errors(tmp_path: Path) -> None:
    from mmtok.context.growth import plot_cost_vs_length, plot_tokens_vs_minutes

    with pytest.raises(UsageError, match=r"^plot_tokens_vs_minutes \(.*t\.png\) needs matplotlib"):
        plot_tokens_vs_minutes(tmp_path / "t.png")
    with pytest.raises(UsageError, match=r"^plot_cost_vs_length \(.*c\.png\) needs matplotlib"):
        plot_cost_vs_length(tmp_path / "c.png", {}, where="CPU")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("env", "want"), [("svg", "svg"), ("", "agg")])
def test_a_backend_named_by_mplbackend_is_kept(env: str, want: str) -> None:
    """A process whose environment names a backend keeps it; without one the helper picks Agg (a fresh process:
    a backend, once chosen, stays for the process)."""
    pytest.importorskip("matplotlib")
    import subprocess

    code = ("import matplotlib; from mmtok.core.plotting import pyplot; pyplot('x.png'); "
            "print(matplotlib.get_backend().lower())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "MPLBACKEND": env})
    assert out.stdout.strip() == want
