"""The demo and the command's front door: reruns into an earlier demo's folder, output names, unreliable
figures, --device, what is checked before --out is touched, --json output and the progress flags.

The steps run on stand-in tokenizers or tiny data, never the whole demo."""

from __future__ import annotations

import html
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import mmtok.demo
from mmtok.cli import build_parser, main
from mmtok.context.growth import Fit
from mmtok.core.device import pick_device
from mmtok.core.errors import DeviceError, UsageError
from mmtok.core.report import Report
from mmtok.demo.run import MARK, claim_out, run_demo
from mmtok.demo.state import Demo


def _demo(out: Path, **attrs: Any) -> Demo:
    """A :class:`Demo` without its shipped tokenizers: what a step reads, set by hand."""
    d = Demo.__new__(Demo)
    d.out, d.fast, d.seed, d.device, d.progress = out, True, 0, torch.device("cpu"), False
    d.report, d.overview, d.data_label, d.device_label = Report(out, "test"), [], "test data", "the CPU"
    for k, v in attrs.items():
        setattr(d, k, v)
    return d


class _Pictures:
    """A stand-in image tokenizer: 32×32 pixels, one code per 8×8 patch: which of its channels are bright."""

    codebook_size, downsample, provenance = 8, 8, {}
    BITS = torch.tensor([4, 2, 1])

    def preprocess(self, f: Path) -> torch.Tensor:
        with Image.open(f) as im:
            a = np.asarray(im.convert("RGB").resize((32, 32)), dtype=np.float32) / 255
        return torch.from_numpy(a).permute(2, 0, 1)  # [3, 32, 32]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        bright = x.reshape(3, 4, 8, 4, 8).mean((2, 4)) > 0.5  # [3, 4, 4]
        return (bright.long() * self.BITS[:, None, None]).sum(0)  # [4, 4]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        on = (codes[None] & self.BITS[:, None, None]) > 0  # [3, 4, 4]
        return on.float().repeat_interleave(8, 1).repeat_interleave(8, 2)  # [3, 32, 32]


class _Sounds:
    """A stand-in audio tokenizer: one code per 320 samples (their mean level, 0..15), no streaming."""

    sample_rate, tokens_per_second, codebook_size, decode_lookahead, vocoder = 16000, 50, 16, None, None
    cfg = SimpleNamespace(hop_length=160)

    def encode(self, wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
        return (wave[: wave.numel() // 320 * 320].reshape(-1, 320).abs().mean(1) * 15).round().long()

    def features(self, wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
        return wave[: wave.numel() // 160 * 160].reshape(-1, 160).abs().mean(1).repeat(4, 1)  # [4, frames]

    def decode_features(self, codes: torch.Tensor) -> torch.Tensor:
        return (codes.float() / 15).repeat_interleave(2).repeat(4, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return (codes.float() / 15).repeat_interleave(320)


def _rgb(path: Path) -> tuple[int, ...]:
    with Image.open(path) as im:
        return tuple(int(v) for v in np.asarray(im.convert("RGB")).reshape(-1, 3).mean(0).round())


def test_inputs_of_one_stem_and_an_input_named_usage_png_keep_their_own_pictures(tmp_path: Path) -> None:
    from mmtok.demo.media import images_step

    data, out = tmp_path / "data", tmp_path / "demo"
    data.mkdir()
    colours = {"coffee.jpg": (255, 0, 0), "coffee.png": (0, 0, 255), "usage.png": (0, 255, 0)}
    for name, rgb in colours.items():
        Image.new("RGB", (40, 40), rgb).save(data / name)
    d = _demo(out, image=_Pictures(), data=data)
    images_step(d)
    assert len(d.report.files) == len(set(d.report.files)) == 2 * len(colours) + 1  # pairs + the usage plot
    for name, rgb in colours.items():
        for saved in (f"images/{name}.png", f"images/{name}.tokens.png"):
            assert saved in d.report.files
            assert max(abs(a - b) for a, b in zip(_rgb(out / saved), rgb, strict=True)) <= 20, saved
    assert "image_usage.png" in d.report.files and Image.open(out / "image_usage.png").size != (32, 32)


def test_sounds_of_one_stem_keep_their_own_files(tmp_path: Path) -> None:
    import soundfile as sf

    from mmtok.demo.media import audio_step

    data, out = tmp_path / "data", tmp_path / "demo"
    data.mkdir()
    t = np.arange(16000) / 16000
    levels = {"a.wav": 0.5, "a.flac": 0.1}
    for name, level in levels.items():
        sf.write(data / name, (level * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    d = _demo(out, audio=_Sounds(), data=data)
    audio_step(d)
    assert len(d.report.files) == len(set(d.report.files)) == 3 * len(levels) + 1
    for name, level in levels.items():
        wave, _ = sf.read(out / f"audio/{name}.wav")
        assert np.abs(wave).max() == pytest.approx(level, rel=0.02), name
        assert {f"audio/{name}.tokens.wav", f"audio/{name}.mel.png"} <= set(d.report.files)
    assert d.overview == [("audio/a.flac.mel.png", "a.flac: log-mel before / after")]


def test_a_rerun_empties_the_earlier_demos_folder_and_the_overview_shows_this_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.demo import plots
    from mmtok.demo.plots import save_png
    from mmtok.demo.run import _overview

    out = claim_out(tmp_path / "demo")
    for old in ("images/coffee.png", "images/coffee-tokens.png", "audio/speech_en-mel.png"):
        (out / old).parent.mkdir(exist_ok=True)
        save_png(out / old, torch.zeros(3, 8, 8))
    (out / "index.html").write_text("the earlier page")
    assert claim_out(out) == out and sorted(p.name for p in out.iterdir()) == [MARK]

    (out / "images").mkdir()
    for name in ("coffee.png", "rocket.jpg.png"):  # a leftover beside this run's picture
        save_png(out / "images" / name, torch.ones(3, 8, 8))
    drawn: list[list[tuple[Path, str]]] = []
    monkeypatch.setattr(plots, "overview", lambda path, panels, **kw: drawn.append(panels))
    d = _demo(out, overview=[("images/rocket.jpg.png", "an image"), ("run/loss.png", "not written")])
    _overview(d)
    assert drawn == [[(out / "images" / "rocket.jpg.png", "an image")]]


def test_the_corpus_step_reruns_with_other_settings_into_its_own_shards(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmtok.synth.toy as toy
    from mmtok.demo.learn import corpus_step

    pictures, tones = toy.color_shapes_corpus, toy.tones_corpus
    monkeypatch.setattr(toy, "color_shapes_corpus", lambda folder, *, n_docs, **kw: pictures(folder, n_docs=4, **kw))
    monkeypatch.setattr(toy, "tones_corpus", lambda folder, *, n_docs, **kw: tones(folder, n_docs=2, **kw))
    d = _demo(tmp_path / "demo", audio_name="audio", spec=None)
    assert corpus_step(d).startswith("6 documents")
    d.seed = 1  # another --seed: another corpus in the same folder
    assert corpus_step(d).startswith("6 documents")


def test_an_unreliable_time_exponent_is_marked_so_in_figures_json(tmp_path: Path) -> None:
    from mmtok.demo.budget import _growth_rows

    pts = [{"tokens": n, "seconds": 0.01 * n / 256, "peak_mib": 5.0 * n / 256} for n in (256, 512, 1024)]
    busy = Fit(0.183, -5.0, 0.586, False, "the machine was busy with other work")
    d = _demo(tmp_path)
    rows = _growth_rows(d, SimpleNamespace(series={"tiny sdpa": pts}, fits=lambda label, key="seconds": busy), [])
    assert rows[0][4].startswith("not reported, the machine was busy")
    d.report.write()
    fig = json.loads((tmp_path / "figures.json").read_text())["growth_tiny_sdpa_time_exponent"]
    assert fig["reliable"] is False and "not reported: the machine was busy" in fig["what"]
    assert d.unreliable() == ["growth_tiny_sdpa_time_exponent"]


def test_a_device_torch_does_not_know_is_bad_usage_before_out_is_made(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as e:
        main(["demo", "--fast", "--out", str(out), "--device", "tpu"])
    assert e.value.code == 2 and capsys.readouterr().err == ("mmtok: error: demo: --device 'tpu' is not a device "
                                                             "(cpu, cuda, cuda:1, ...); see 'mmtok demo --help'\n")
    with pytest.raises(DeviceError, match=r"^device 'tpu' is not a device: give cpu, cuda or cuda:N \(GPU N\)$"):
        run_demo(out, device="tpu")  # the library says it too, in its own error
    assert not out.exists()
    with pytest.raises(DeviceError, match="device 'cuda:-1' is not a device"):
        pick_device("cuda:-1")


def test_a_missing_gpu_or_gpu_index_is_refused_before_out_is_made(tmp_path: Path, capsys,  # type: ignore[no-untyped-def]
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "demo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["demo", "--fast", "--out", str(out), "--device", "cuda"]) == 1
    assert "no CUDA GPU" in capsys.readouterr().err and not out.exists()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(DeviceError, match=r"finds 1 CUDA GPU\(s\) here \(cuda:0 to cuda:0\)"):
        pick_device("cuda:1")


def test_without_matplotlib_the_demo_stops_before_out_is_made(tmp_path: Path, capsys,  # type: ignore[no-untyped-def]
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    out = tmp_path / "demo"
    assert main(["demo", "--fast", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "matplotlib, which is not installed: pip install 'mmtok[plot]'" in err
    assert not out.exists()


@pytest.fixture
def light_demo(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """run_demo with stand-ins for the shipped tokenizers and one step, which records an unreliable figure."""
    import mmtok.pretrained
    from mmtok.demo import run

    def step(d: Demo) -> str:
        d.figure("fit_exponent", 0.18, "exponent", "a fit the page does not report", reliable=False)
        return "done"

    monkeypatch.setattr(mmtok.pretrained, "load", lambda name, device=None: SimpleNamespace())
    monkeypatch.setattr(run, "_steps", lambda: [("one", step)])
    monkeypatch.setitem(sys.modules, "av", None)  # the PyAV note is a human line too
    threads = torch.get_num_threads()
    yield []
    torch.set_num_threads(threads)


def test_demo_json_is_the_whole_of_stdout(tmp_path: Path, capsys, light_demo: list[str]) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--json", "--no-progress", "--threads", "1", "--device", "cpu"]) == 0
    said = capsys.readouterr()
    summary = json.loads(said.out)
    assert said.out.count("\n") == 1 and summary["figures"]["fit_exponent"] == 0.18
    assert summary["unreliable_figures"] == ["fit_exponent"] and torch.get_num_threads() == 1
    for line in ("note: PyAV is not installed", "[1/1] one: done", "open it in a browser"):
        assert line in said.err, line
    page = html.unescape((out / "index.html").read_text())
    assert "audio_tokens_per_second and image_tokens, which the shipped tokenizers' configs fix" in page
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0  # without --json the lines are the output
    assert "[1/1] one: done" in capsys.readouterr().out


def test_data_inside_out_is_refused_before_out_is_emptied(tmp_path: Path, light_demo: list[str]) -> None:
    out = claim_out(tmp_path / "demo")
    media = out / "media"
    media.mkdir()
    Image.new("RGB", (40, 40)).save(media / "a.png")
    (media / "a.wav").write_bytes(b"checked by name only")
    with pytest.raises(UsageError, match="is inside --out"):
        run_demo(out, data=media, device="cpu")
    assert sorted(p.name for p in media.iterdir()) == ["a.png", "a.wav"]


def test_progress_and_thread_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    import mmtok.cli
    import mmtok.lm.train
    from mmtok.lm.command import main as train_main

    parser = build_parser()
    for flags, off in (([], False), (["--quiet"], True), (["--no-progress"], True)):
        assert parser.parse_args(["tokenize", "c.jsonl", "--out", "o", *flags]).no_progress is off
    asked: dict[str, Any] = {}
    monkeypatch.setattr(mmtok.demo, "run_demo", lambda **kw: asked.update(kw) or {})
    assert main(["demo", "--no-progress", "--threads", "2"]) == 0
    assert asked["progress"] is False and asked["threads"] == 2
    for bad in ("0", "two"):
        with pytest.raises(SystemExit) as e:
            main(["demo", "--threads", bad])
        assert e.value.code == 2

    class Stop(Exception):
        pass

    def train(cfg: Any, **kw: Any) -> Path:
        asked.update(kw)
        raise Stop

    monkeypatch.setattr(mmtok.lm.train, "train", train)
    for flags, progress in (([], True), (["--no-progress"], False)):
        with pytest.raises(Stop):
            train_main(["--data", "shards", "--out", "run", *flags])
        assert asked["progress"] is progress
    assert "mmtok demo [--fast] [--out DIR] [--data DIR]" in (mmtok.cli.__doc__ or "")


def test_one_load_average_helper() -> None:
    package = Path(mmtok.demo.__file__).parents[1]
    callers = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if "getloadavg()" in p.read_text())
    assert callers == ["context/growth.py"]


def test_files_of_the_users_in_an_earlier_demos_folder_are_never_removed(tmp_path: Path) -> None:
    """Only what a demo writes is removed before a run; a demo folder holding a user's file beside the demo's own
    is refused in one line, and nothing in it changes."""
    from mmtok.core.errors import UsageError

    out = claim_out(tmp_path / "demo")
    (out / "images").mkdir()
    (out / "images" / "coffee.jpg.png").write_bytes(b"the demo's")
    (out / "index.html").write_text("the earlier page")
    (out / "my-notes.txt").write_text("notes")
    (out / "keep").mkdir()
    (out / "keep" / "results.csv").write_text("1,2")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    with pytest.raises(UsageError, match=r"holds files the demo did not write \(keep, my-notes.txt, \.\.\.\)"):
        claim_out(out)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    (out / "my-notes.txt").unlink()
    shutil.rmtree(out / "keep")
    assert claim_out(out) == out and sorted(p.name for p in out.iterdir()) == [MARK]


def test_a_photo_that_only_shares_a_training_file_s_name_is_not_called_a_training_image(tmp_path: Path) -> None:
    """The shipped image model trained on ``butterfly.jpg`` of its corpus: a user's ``butterfly.png`` may be another
    picture, so it is neither called a training image nor counted among the unseen ones; the training file itself
    is one, and so is an example shipped under a training picture's name."""
    from types import SimpleNamespace

    from mmtok.demo.media import SAME_NAME, SEEN, UNSEEN, training_match

    corpus = tmp_path / "corpus"
    (corpus / "images" / "skimage").mkdir(parents=True)
    (corpus / "images" / "skimage" / "butterfly.jpg").write_bytes(b"x")
    tok = SimpleNamespace(provenance={"data": {"folder": str(corpus / "manifest.jsonl"), "split": "train",
                                               "files": ["images/skimage/butterfly.jpg"]}})
    mine = training_match(tok, shipped_examples=False)
    assert mine(corpus / "images" / "skimage" / "butterfly.jpg") == SEEN
    assert mine(tmp_path / "butterfly.png") == SAME_NAME
    assert mine(tmp_path / "my_photo.png") == UNSEEN
    assert training_match(tok, shipped_examples=True)(tmp_path / "butterfly.png") == SEEN
    assert training_match(SimpleNamespace(), shipped_examples=False)(tmp_path / "butterfly.png") == UNSEEN
