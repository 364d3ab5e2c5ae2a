"""``mmtok eval`` keeps its plots out of the folders it scores (a ``--plot`` inside one is refused; plots it drew
there before are left out of a folder search); ``load_run`` refuses a device that is not here before reading;
``--band-weight`` refuses a band with no mel channel centre in it, for the tokenizer the run trains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.features import mel_centres
from mmtok.audio.losses import channel_weights
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.cli import main
from mmtok.core.errors import DeviceError
from mmtok.core.module_io import save_module
from mmtok.vq.quantizer import VQConfig
from tests.test_audio_train_cli import SMALL, TRAIN, _cli, _data

# --------------------------------------------------------------------------- 1: eval's plots and its folders


def _picture(path: Path, software: str | None = None) -> Path:
    """A flat 64x96 PNG, its Software text ``software`` (a plot of mmtok eval's carries its mark there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    if software is not None:
        info.add_text("Software", software)
    Image.fromarray(np.full((64, 96, 3), 120, np.uint8)).save(path, pnginfo=info)
    return path


def _scored(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    """``mmtok eval ARGV --json``: (exit status, the names of the files scored, stderr)."""
    capsys.readouterr()
    rc = main(["eval", *argv, "--json"])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return rc, [Path(r["file"]).name for r in rows if "file" in r], err


def test_eval_refuses_a_plot_inside_a_folder_it_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    photos = tmp_path / "photos"
    _picture(photos / "flat.png")
    for plot in (photos / "scores.png", photos / "sub" / "scores.png"):
        capsys.readouterr()
        assert main(["eval", str(photos), "--plot", str(plot)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err == (f"mmtok: error: --plot {plot} is inside {photos}, a folder to score, where later "
                                     "runs would score the plot too; write it outside that folder\n")
        assert not plot.exists()


def test_eval_leaves_its_own_plots_out_of_a_folder_search(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.evaluate import PLOT_MARK

    photos = tmp_path / "photos"
    _picture(photos / "flat.png")
    _picture(photos / "other.png", software="a paint program")  # a user's picture: scored
    plot = _picture(photos / "scores.png", software=PLOT_MARK)  # a plot an earlier run drew there
    rc, names, err = _scored(capsys, str(photos))
    assert rc == 0 and names == ["flat.png", "other.png"]
    assert f"mmtok: note: left out {plot}: plots 'mmtok eval --plot' drew (name one on its own to score it)" in err
    rc, names, _ = _scored(capsys, str(photos), str(plot))  # named on its own: scored
    assert rc == 0 and sorted(names) == ["flat.png", "other.png", "scores.png"]
    only = tmp_path / "only"
    _picture(only / "scores.png", software=PLOT_MARK)
    rc, names, err = _scored(capsys, str(only))
    assert rc == 2 and names == [] and f"mmtok: error: {only}: a folder with no file to read in it" in err


# --------------------------------------------------------------------------- 2: load_run's device


def test_load_run_refuses_a_gpu_that_is_not_here_before_reading(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.lm import runs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ck = tmp_path / "run" / f"{runs.CKPT_PREFIX}0000001"
    ck.mkdir(parents=True)
    (ck / "config.json").write_text("{}")

    def read(*_: object, **__: object) -> None:
        raise AssertionError("the checkpoint was read")

    monkeypatch.setattr(runs, "load_checkpoint", read)
    for run in (tmp_path / "run", ck):
        with pytest.raises(DeviceError) as e:
            runs.load_run(run, device="cuda")
        assert str(e.value) == ("device 'cuda' asked for, but torch finds no CUDA GPU here; use --device cpu "
                                  "(device='cpu' from Python)")


# --------------------------------------------------------------------------- 3: --band-weight's bands


def test_a_band_with_no_mel_channel_centre_weighs_nothing_and_is_refused() -> None:
    centres = mel_centres()  # 80 channels, 0-8000 Hz: 74.3, 111.8, ..., 7702.3 Hz
    assert channel_weights([(0.0, 500.0, 2.5)], centres).shape == (80, 1)
    with pytest.raises(ValueError, match=r"^--band-weight 100-110:3: no mel channel has its centre in \[100, 110\) "
                                         r"Hz \(the nearest: 74\.3 and 111\.8 Hz\)$"):
        channel_weights([(100.0, 110.0, 3.0)], centres)
    with pytest.raises(ValueError, match=r"\(the nearest: 7702\.3 Hz\)$"):
        channel_weights([(9000.0, 10000.0, 2.5)], centres)


@pytest.mark.parametrize(("band", "nearest"), [("9000-10000:2.5", "7702.3 Hz"), ("100-110:3", "74.3 and 111.8 Hz")])
def test_train_tokenizer_refuses_a_band_with_no_mel_channel_before_any_work(
        band: str, nearest: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    rc, err = _cli(capsys, "--data", str(_data(tmp_path / "data")), "--out", str(out), *SMALL, "--steps", "1",
                   "--band-weight", "0-500:2", "--band-weight", band)  # a run that trains without the band
    lo_hi = band.split(":")[0].split("-")
    assert rc == 2 and err.count("\n") == 1
    assert (f"--band-weight {band}: no mel channel has its centre in [{lo_hi[0]}, {lo_hi[1]}) Hz (the nearest: "
            f"{nearest}); the tokenizer's 80 mel channels lie between f_min 0 and f_max 8000 Hz") in err
    assert not out.exists()


def test_the_band_check_uses_the_mel_range_of_the_init_from_tokenizer(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cfg = AudioTokenizerConfig(f_max=4000.0, vq=VQConfig(dim=160, codebook_size=16), decoder_channels=16,
                               decoder_blocks=1)
    tok = save_module(AudioTokenizer(cfg), tmp_path / "tok4k")
    assert channel_weights([(5000.0, 6000.0, 2.0)], mel_centres()).shape == (80, 1)  # a band the default has
    out = tmp_path / "run"
    rc, err = _cli(capsys, "--data", str(_data(tmp_path / "data")), "--out", str(out), "--init-from", str(tok),
                   *TRAIN, "--steps", "1", "--band-weight", "5000-6000:2")
    assert rc == 2 and err.count("\n") == 1 and "no mel channel has its centre in [5000, 6000) Hz" in err
    assert "lie between f_min 0 and f_max 4000 Hz" in err and not out.exists()


def test_a_picture_over_pillows_limit_is_no_plot_and_stops_no_folder_search(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether a PNG carries a mark reads its header alone: a picture over twice Pillow's limit is not taken for a
    plot (nor replaced), one between the limit and twice it raises no warning, and a folder search goes on."""
    import warnings

    from mmtok.data.media_files import marked

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    info = PngInfo()
    info.add_text("Software", "mmtok eval")
    Image.new("RGB", (64, 64)).save(tmp_path / "huge.png", pnginfo=info)  # 4,096 pixels: over twice the limit
    Image.new("RGB", (40, 40)).save(tmp_path / "big.png", pnginfo=info)  # 1,600: over the limit, under twice it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert marked(tmp_path / "huge.png", "mmtok eval") is False and marked(tmp_path / "big.png", "mmtok eval")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(photos / "a.png")
    Image.new("RGB", (64, 64)).save(photos / "pano.png")
    assert main(["eval", str(photos), "--json"]) == 2  # pano.png fails on its own line, a.png is scored
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert "pano.png" in err and [r["file"] for r in rows if "file" in r] == [str(photos / "a.png")]
