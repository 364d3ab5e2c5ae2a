"""The context planner reproduces published token rates; the CLI prints it as a table or JSON."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mmtok.audio.config import AudioTokenizerConfig
from mmtok.cli import main
from mmtok.context import planner
from mmtok.context.planner import WINDOWS, count_params
from mmtok.context.shipped import plan, shipped_preset, shipped_vocab
from mmtok.core.checkpoint import save_checkpoint
from mmtok.core.errors import CheckpointError
from mmtok.image.config import ImageTokenizerConfig
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.pretrained import available, load_config


def test_gemini_published_rate() -> None:
    p = plan(60, preset="gemini")
    assert p.fps == 1.0 and p.tokens_per_frame == 258 and p.audio_tokens_per_second == 32
    assert p.tokens_per_second == 290 and p.tokens_per_minute == 17_400
    assert p.total_tokens == 60 * 258 + 60 * 32
    one_m = next(w for w in p.windows if w.name == "1M")
    # ~1 hour, as Google advertises: 3,615 whole frames and seconds of audio (1,048,576 / 290 = 3,615.8)
    assert one_m.seconds == 3615


def test_lwm_published_rate() -> None:
    p = plan(10, preset="lwm")
    assert p.tokens_per_frame == 257 and p.grid == (16, 16) and p.total_tokens == 2570


def test_chameleon_published_rate() -> None:
    p = plan(1, preset="chameleon")
    assert p.resolution == (512, 512) and p.tokens_per_frame == 1024 and p.total_tokens == 1024


def test_cosmos_published_rate() -> None:
    p = plan(8 * 100 / 24, preset="cosmos")  # 800 frames at 24 fps
    assert p.fps == 24 and p.grid == (16, 16)
    assert p.tokens_per_frame == 256 / 8  # 256 tokens per 8 frames
    assert p.latent_frames == 1 + 100  # causal: the first frame on its own, then one per 8
    assert p.video_tokens == 101 * 256
    assert p.video_tokens_per_second == 256 * 24 / 8


def test_mmtok_preset_reads_shipped_config_or_default(tmp_path) -> None:
    p = plan(2, preset="mmtok", image=tmp_path / "missing", audio=None)
    cfg = ImageTokenizerConfig()
    side = cfg.image_size // cfg.downsample
    assert "default ImageTokenizerConfig" in p.source
    assert p.tokens_per_frame == side * side + side + 1  # codes, <eol> per row, <eof>
    assert p.video_tokens == 2 * (side * side + side + 1) + 2  # <bov> <eov>
    image = save_checkpoint(tmp_path / "image", kind="image", tensors={}, config=ImageTokenizerConfig(
        image_size=128, patch=4, enc_channels=(32, 64), dec_channels=(64, 32), latent_dim=64))
    p = plan(1, preset="mmtok", image=image, audio=tmp_path / "no-audio")
    assert str(image / "config.json") in p.source and p.grid == (16, 16) and p.tokens_per_frame == 16 * 16 + 16 + 1
    assert p.audio_tokens_per_second == 0 and "no audio tokenizer" in p.note
    audio = save_checkpoint(tmp_path / "audio", kind="audio", tensors={}, config=AudioTokenizerConfig(hop_length=200))
    p = plan(1, preset="mmtok", image=image, audio=audio)
    assert p.audio_tokens_per_second == 40 and p.audio_tokens == 40 + 2  # 16 kHz / (200 hop * 2 frames), <boa> <eoa>
    with pytest.raises(CheckpointError, match="kind 'image'"):  # a checkpoint of the wrong kind is refused
        plan(1, preset="mmtok", image=image, audio=image)


def test_shipped_plan_counts_what_the_interleaver_writes_for_a_video_with_sound() -> None:
    """Every token of the plan is one the interleaver writes for that video: frames, separators, <bov> <eov>,
    the soundtrack and its <boa> <eoa>."""
    pytest.importorskip("av")
    import mmtok
    from mmtok.stream.vocab import Modality
    from mmtok.video.read import read_audio

    clip = Path(__file__).parents[1] / "examples" / "data" / "pan.mp4"  # 6 frames at 1 fps, 6.0 s of AAC sound
    il = mmtok.Interleaver(None, image=mmtok.load("image"), audio=mmtok.load("audio"), video=mmtok.load("video"))
    written = il.encode([{"video": str(clip)}]).modality
    sound_s = read_audio(clip, 16000)[0].numel() / 16000
    assert plan(6.0, preset="mmtok").video_tokens == int((written == Modality.VIDEO).sum())
    assert plan(sound_s, preset="mmtok").audio_tokens == int((written == Modality.AUDIO).sum()) == 300 + 2
    assert not plan(6.0, preset="mmtok", audio=None).audio_tokens  # no soundtrack, no markers


def test_shipped_plan_is_the_planner_with_the_shipped_numbers() -> None:
    p = plan(600, preset="mmtok")
    image = load_config("image") if "image" in available() else ImageTokenizerConfig()
    side = image.image_size // image.downsample
    assert p.preset == "mmtok" and p.frames == 600 and p.tokens_per_frame == side * side + side + 1
    if "audio" in available():
        audio = load_config("audio")
        assert p.audio_tokens_per_second == audio.sample_rate // audio.samples_per_token
    size, parts = shipped_vocab()
    same = planner.plan(600, preset=shipped_preset(), model="small", vocab_size=size, vocab_source=parts)
    assert same == p
    with pytest.raises(ValueError, match=r"mmtok\.plan"):  # the arithmetic planner reads no model files
        planner.plan(600, preset="mmtok")
    assert plan(60, preset="gemini") == planner.plan(60, preset="gemini", vocab_size=size, vocab_source=parts)


def test_planner_reads_no_model_files() -> None:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(planner))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.split(".")[:2] in (["mmtok", "image"], ["mmtok", "audio"],
                                                                   ["mmtok", "pretrained"], ["mmtok", "video"])}
    assert "open(" not in inspect.getsource(planner) and "read_text" not in inspect.getsource(planner)


def test_overrides_and_windows() -> None:
    p = plan(30, preset="custom", fps=2, resolution=(360, 640), downsample=16, tokens_per_frame_overhead=1,
             audio_tokens_per_second=50)
    assert p.grid == (23, 40) and p.frames == 60
    assert p.tokens_per_frame == 23 * 40 + 1
    assert p.total_tokens == 60 * (23 * 40 + 1) + 30 * 50
    assert [w.name for w in p.windows] == list(WINDOWS)
    for w in p.windows:
        assert w.fits == (p.total_tokens <= w.tokens)
        assert w.tokens / p.tokens_per_second - 1 < w.seconds <= w.tokens / p.tokens_per_second


def test_costs_match_the_model() -> None:
    p = plan(60, preset="gemini", model="tiny", kv_dtype="fp32")
    cfg = replace(ModelConfig.preset("tiny"), vocab_size=shipped_vocab()[0])  # the vocabulary of mmtok's shards
    assert p.vocab_size == cfg.vocab_size and p.n_params == count_params(cfg)
    assert count_params(cfg) == Transformer(cfg).num_params(non_embedding=False)
    assert p.kv_cache_bytes == 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * 4 * p.total_tokens
    model = Transformer(cfg)
    assert p.train_flops == pytest.approx(p.total_tokens * model.flops_per_token(p.total_tokens))
    # the attention term grows with the square of the length
    q = plan(120, preset="gemini", model="tiny")
    assert q.attention_flops / p.attention_flops == pytest.approx((q.total_tokens / p.total_tokens) ** 2)


def test_kv_cache_matches_the_model_cache() -> None:
    from mmtok.lm.model import KVCache

    cfg = replace(ModelConfig.preset("tiny"), max_seq_len=plan(1, preset="lwm").total_tokens)  # exactly that long

    cache = KVCache.empty(cfg, 1, torch.device("cpu"), torch.bfloat16)
    nbytes = sum(t.numel() * t.element_size() for t in cache.keys + cache.values)
    assert plan(1, preset="lwm", model="tiny").kv_cache_bytes == nbytes


@pytest.mark.parametrize("kwargs", [dict(duration_s=0), dict(duration_s=10, fps=0), dict(duration_s=10, fps=-1),
                                    dict(duration_s=10, preset="sora"), dict(duration_s=10, kv_dtype="int3")])
def test_bad_arguments(kwargs) -> None:
    with pytest.raises(ValueError):
        plan(**kwargs)


def test_cli_table_and_json(capsys) -> None:
    assert main(["context", "5m", "--preset", "gemini"]) == 0
    out = capsys.readouterr().out
    assert "tokens / frame" in out and "258.00" in out and "1M" in out
    assert main(["context", "1:00", "--preset", "lwm", "--json", "--model", "tiny"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["total_tokens"] == 60 * 257 and d["model"] == "tiny" and len(d["windows"]) == 5


def test_cli_help_names_sources(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["context", "--help"])
    out = capsys.readouterr().out
    for key in ("arXiv:2402.08268", "arXiv:2405.09818", "arXiv:2501.03575", "ai.google.dev", "models/image/config.json"):
        assert key in out


def test_cli_reports_bad_arguments(capsys) -> None:
    assert main(["context", "60", "--preset", "custom"]) == 2
    assert "--resolution" in capsys.readouterr().err
    assert main(["context", "60", "--preset", "custom", "--resolution", "640x360", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["grid"] == [23, 40] and d["resolution"] == [360, 640]


def test_growth_step_and_fits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mmtok.context.growth import fit_power, measure_step, plot_cost_vs_length, project

    ids = torch.randint(0, 300, (96,), generator=torch.Generator().manual_seed(0))
    rows = [{"tokens": n, **measure_step("tiny", b, ids[:n], 300)} for b in ("sdpa", "math") for n in (48, 96)]
    assert all(r["seconds"] > 0 and r["peak_mib"] >= 0 and r["train_flops"] > 0 for r in rows)
    assert rows[1]["train_flops"] > 2 * rows[0]["train_flops"]  # 6N per token plus the attention term
    b, a = fit_power([10, 100, 1000], [5, 50, 500])
    assert abs(b - 1) < 1e-9 and abs(project((b, a), 10_000) - 5000) < 1e-6
    assert fit_power([10], [1]) is None and fit_power([10, 10], [1, 2]) is None and project(None, 5) is None
    with pytest.raises(ValueError, match="backend must be one of"):
        measure_step("tiny", "flash", ids, 300)
    pytest.importorskip("matplotlib")
    png = plot_cost_vs_length(tmp_path / "c.png", {"tiny sdpa": rows[:2], "tiny math": rows[2:]}, where="CPU")
    assert png.stat().st_size > 10_000


def test_growth_estimates_memory_first_and_skips_what_would_not_fit() -> None:
    from mmtok.context.growth import estimate_peak_mib, math_scores_mib, measure_growth
    from mmtok.lm.model import ModelConfig

    cfg = ModelConfig.preset("tiny")
    # the measured non-attention part scales linearly; the math backend adds its T×T scores by formula
    assert estimate_peak_mib(cfg, "sdpa", 2048, [{"tokens": 256, "peak_mib": 1.0}, {"tokens": 512, "peak_mib": 4.0}]) == 16
    quad = math_scores_mib(cfg, 1024)
    assert estimate_peak_mib(cfg, "math", 2048, [{"tokens": 1024, "peak_mib": quad + 10}]) == pytest.approx(
        20 + 4 * quad)
    assert estimate_peak_mib(cfg, "math", 8192, []) == math_scores_mib(cfg, 8192) > 6000  # the old demo's 7.6 GB step
    ids = torch.randint(0, 300, (128,), generator=torch.Generator().manual_seed(0))
    from mmtok.core.memory import rss_mib

    budget = (rss_mib() + 300) / 1024  # room for the short steps, not for 8,192 tokens of math attention
    g = measure_growth("tiny", {"sdpa": [64, 128], "math": [64, 8192, 16384]}, ids, 300, max_memory_gb=budget,
                       repeats=2)
    assert [r["tokens"] for r in g.series["tiny sdpa"]] == [64, 128]
    assert [r["tokens"] for r in g.series["tiny math"]] == [64]
    (_, n, why), (_, n2, why2) = g.skipped
    assert (n, n2) == (8192, 16384) and "over the" in why and "GiB budget" in why and "did not fit" in why2
    f = g.fits("tiny sdpa")
    assert f is not None and 0 <= f.r2 <= 1 and not f.reliable and f.why == ("the machine was busy with other work" if g.load.busy else "only 2 lengths")
    assert "load average" in g.load.describe()


def test_a_fit_on_a_busy_machine_or_with_a_poor_r2_is_marked_unreliable() -> None:
    from mmtok.context.growth import fit

    good = fit([256, 512, 1024, 2048], [1.0, 2.1, 4.0, 8.2])
    assert good is not None and good.reliable and abs(good.exponent - 1) < 0.05 and good.r2 > 0.99
    busy = fit([256, 512, 1024, 2048], [1.0, 2.1, 4.0, 8.2], busy=True)
    assert busy is not None and not busy.reliable and "busy" in busy.why
    noisy = fit([256, 512, 1024, 2048], [1.0, 0.2, 5.0, 0.6])
    assert noisy is not None and not noisy.reliable and "R²" in noisy.why


@pytest.mark.parametrize("preset, kwargs", [
    ("gemini", {}), ("lwm", {}), ("chameleon", {}), ("cosmos", {}), ("cosmos", {"fps": 30}), ("mmtok", {}),
    ("mmtok", {"fps": 2.5, "audio_tokens_per_second": 37.5}),
    ("custom", {"resolution": (360, 640), "fps": 3, "audio_tokens_per_second": 50, "tokens_per_frame_overhead": 1}),
])
def test_a_window_holds_the_longest_video_that_really_fits(preset: str, kwargs: dict) -> None:
    """Frames and audio tokens are whole and Cosmos's first frame is a latent frame of its own: "holds" is the
    longest duration whose own plan fits the window, not the window over the mean rate."""
    for w in plan(60, preset=preset, **kwargs).windows:
        assert plan(w.seconds, preset=preset, **kwargs).total_tokens <= w.tokens, (w.name, w.seconds)
        assert plan(w.seconds + 1e-6, preset=preset, **kwargs).total_tokens > w.tokens, (w.name, w.seconds)
        shown = planner._duration(w.seconds)  # the table rounds down, so what it shows fits too
        value, unit = shown.split()
        seconds = float(value) * {"s": 1, "min": 60, "h": 3600}[unit]
        assert plan(seconds, preset=preset, **kwargs).total_tokens <= w.tokens, (w.name, shown)


def test_the_table_shows_what_a_window_holds_and_that_duration_fits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["context", "60"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("8k"))
    held = row.split()[3]  # "8k  8,192  no  25.0 s  ..."
    assert main(["context", held, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["total_tokens"] <= 8192 and d["windows"][0]["fits"]


def test_resolution_is_refused_where_the_count_does_not_depend_on_it(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped image tokenizer crops every frame to its size, and Gemini counts 258 tokens a frame: a
    --resolution would give counts that tokenizer never makes."""
    with pytest.raises(ValueError, match="size_policy 'crop'"):
        plan(60, resolution=(360, 640))
    with pytest.raises(ValueError, match="258 tokens per frame"):
        plan(60, preset="gemini", resolution=512)
    for preset in ("mmtok", "gemini"):
        assert main(["context", "60", "--preset", preset, "--resolution", "640x360"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "--resolution" in err and preset in err
    native = planner.mmtok_preset(image_size=None, downsample=16, size_policy="native")  # its frames keep their size
    assert plan(1, preset=native, resolution=(360, 640)).grid == (23, 40)
    assert plan(1, preset="lwm", resolution=512).grid == (32, 32)  # a published preset's size stays a knob


def test_the_model_is_priced_with_the_vocabulary_of_mmtoks_shards(capsys: pytest.CaptureFixture[str]) -> None:
    """What `mmtok tokenize` builds for video with its soundtrack (text bytes, specials, the video and audio
    codes), not ModelConfig's default vocabulary; the table says which size it assumed."""
    import mmtok
    from mmtok.stream.text import ByteTokenizer
    from mmtok.stream.vocab import Vocabulary

    vocab = Vocabulary.for_tokenizers(text=ByteTokenizer(), video=mmtok.load("video"), audio=mmtok.load("audio"))
    p = plan(60, model="tiny")
    cfg = replace(ModelConfig.preset("tiny"), vocab_size=vocab.size)
    assert p.vocab_size == vocab.size and p.n_params == Transformer(cfg).num_params(non_embedding=False)
    assert p.train_flops == pytest.approx(p.total_tokens * Transformer(cfg).flops_per_token(p.total_tokens))
    assert f"vocabulary of {vocab.size:,} ids" in p.table() and "special" in p.vocab_source
    no_sound = plan(60, model="tiny", audio=None)
    assert no_sound.vocab_size == vocab.size - len(vocab.range("audio"))
    own = replace(cfg, vocab_size=100)  # a ModelConfig keeps its own vocabulary
    assert plan(60, model=own).vocab_size == 100 and plan(60, model=own).vocab_source == ""


@pytest.mark.parametrize("args, flag", [
    (["60", "--audio-tokens-per-second", "nan"], "--audio-tokens-per-second"),
    (["60", "--audio-tokens-per-second", "inf"], "--audio-tokens-per-second"),
    (["60", "--audio-tokens-per-second", "1e9"], "--audio-tokens-per-second"),
    (["1e308", "--preset", "gemini"], "DURATION"), (["nan"], "DURATION"), (["inf"], "DURATION"),
    (["60", "--fps", "1e300"], "--fps"), (["60", "--fps", "nan"], "--fps"), (["60", "--fps", "1e-300"], "--fps"),
    (["60", "--preset", "custom", "--resolution", "100000x360"], "--resolution"),
    (["60", "--preset", "custom", "--resolution", "64", "--downsample", "99999999"], "--downsample"),
    (["60", "--preset", "lwm", "--frame-overhead", "99999999"], "--frame-overhead"),
])
def test_non_finite_or_absurd_numbers_are_one_line_naming_the_flag(
        args: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["context", *args]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and flag in err and len(err) < 300 and not captured.out, err


def test_the_library_checks_the_same_numbers() -> None:
    for kwargs in (dict(duration_s=math.nan), dict(duration_s=10, fps=math.inf), dict(duration_s=10, downsample=1.5),
                   dict(duration_s=10, audio_tokens_per_second=-1), dict(duration_s=10, resolution=(0, 64)),
                   dict(duration_s=10, model="tiny", preset="lwm", tokens_per_frame_overhead=math.nan)):
        with pytest.raises(ValueError, match="must be"):
            plan(**{"preset": "custom", "resolution": 64, **kwargs})


def test_the_demo_table_shows_minutes_that_fit_128k() -> None:
    from types import SimpleNamespace

    from mmtok.demo.budget import _plan_rows

    for row in _plan_rows(SimpleNamespace(figure=lambda *a, **k: None)):  # type: ignore[arg-type]
        assert plan(row[5] * 60, preset=row[0]).total_tokens <= WINDOWS["128k"], row


@pytest.mark.parametrize("text, seconds", [("90", 90.0), ("1:30", 90.0), ("0:59.5", 59.5), ("1:00:00", 3600.0),
                                           ("2:05:30", 7530.0), ("5m", 300.0)])
def test_cli_duration_forms(text: str, seconds: float, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["context", text, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["duration_s"] == seconds


@pytest.mark.parametrize("text", ["1:2:3:4", "1:90", "1:60", "1:00:60", "1:-5", "0:-30", "1::2", "1:x"])
def test_cli_duration_past_h_mm_ss_is_a_usage_error(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    """At most h:mm:ss, minutes and seconds after the first part below 60, none negative."""
    with pytest.raises(SystemExit) as e:
        main(["context", text, "--json"])
    assert e.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and f"m:ss or h:mm:ss, got {text!r}" in err and not captured.out, err


def test_a_growth_plot_with_no_length_measured_says_so_without_a_warning(tmp_path: Path) -> None:
    """Every length skipped for the memory budget: the plot is drawn, with no legend warning reaching the user."""
    import warnings

    from PIL import Image

    from mmtok.context.growth import plot_cost_vs_length

    pytest.importorskip("matplotlib")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = plot_cost_vs_length(tmp_path / "empty.png", {}, where="CPU")
    Image.open(png).verify()
