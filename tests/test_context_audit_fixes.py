"""The context planner and growth measurement as a first-time user meets them: the figures the table shows, the
inputs refused before any work, and the plots' axes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from mmtok.cli import main
from mmtok.context import growth, planner
from mmtok.context.presets import Preset
from mmtok.context.shipped import plan
from mmtok.lm.model import ModelConfig
from mmtok.pretrained import available

# --------------------------------------------------------------------------- the planner and `mmtok context`


def _rows(out: str) -> dict[str, str]:
    """The window rows of the table: name -> its "holds" cell."""
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and cells[0] in planner.WINDOWS:
            rows[cells[0]] = " ".join(cells[3:-1])
    return rows


def test_a_folder_called_image_or_audio_in_the_working_folder_does_not_hide_the_shipped_tokenizers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """As mmtok.load finds them: a folder of pictures called image/ was read as the image checkpoint (exit 2)."""
    if not {"image", "audio"} <= set(available()):
        pytest.skip("needs the shipped image and audio tokenizers")
    expected = plan(60)
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "cat.png").write_bytes(b"not read")
    (tmp_path / "audio").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["context", "60", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["total_tokens"] == expected.total_tokens and d["vocab_size"] == expected.vocab_size
    assert plan(60) == expected


def test_a_window_that_holds_a_few_frames_or_none_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    """Both read "0.0 s": 8 frames at 1,000 fps (8 ms) and a window that holds not one frame."""
    assert main(["context", "1", "--preset", "lwm", "--fps", "1000", "--resolution", "640x360"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["8k"] == "8.0 ms" and rows["32k"] == "35.0 ms"  # 8 and 35 frames of 921 tokens
    assert plan(0.008, preset="lwm", fps=1000, resolution=(360, 640)).total_tokens <= 8192
    assert main(["context", "1", "--preset", "custom", "--resolution", "4096", "--downsample", "1"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert set(rows.values()) == {"none"}  # 16.8M tokens a frame: no window holds one
    assert planner._duration(4e-6) == "4.0 µs" and planner._duration(25.0) == "25.0 s"


def test_a_rate_below_one_token_a_second_is_not_shown_as_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["context", "1", "--preset", "cosmos", "--fps", "0.001"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("tokens / second"))
    assert line.split()[3:7] == ["0.032", "(video", "0.032", "+"]  # 256 tokens per 8 frames at 0.001 fps


@pytest.mark.parametrize("fields, field", [
    ({"temporal": 0}, "temporal"), ({"temporal": -2}, "temporal"), ({"downsample": 0}, "downsample"),
    ({"fps": 0.0}, "fps"), ({"fps": math.nan}, "fps"), ({"resolution": (0, 5)}, "resolution"),
    ({"resolution": "256"}, "resolution"), ({"tokens_per_video": -3}, "tokens_per_video"),
    ({"fixed_tokens_per_frame": 0, "resolution": None}, "fixed_tokens_per_frame"),
    ({"fixed_tokens_per_frame": -5, "resolution": None}, "fixed_tokens_per_frame"),
    ({"audio_tokens_per_second": math.inf}, "audio_tokens_per_second"),
    ({"causal_first_frame": 1}, "causal_first_frame"),
])
def test_a_hand_built_preset_is_checked_like_the_callers_numbers(fields: dict[str, Any], field: str) -> None:
    """A Preset passed to plan: ZeroDivisionError, "max() arg is an empty sequence", or 0 tokens a frame."""
    with pytest.raises(ValueError, match=rf"preset 'mine': {field}"):
        plan(10, preset=Preset("mine", "by hand", **fields))


def test_a_hand_built_preset_counts_whole_tokens() -> None:
    p = plan(10, preset=Preset("mine", "by hand", resolution=[256, 256], downsample=16.0))  # type: ignore[arg-type]
    assert p.grid == (16, 16) and p.total_tokens == 2560 and isinstance(p.total_tokens, int)
    assert json.dumps(p.to_dict())  # no Infinity where a window would hold an unlimited video


@pytest.mark.parametrize("text", ["1.5:30", "-0:30", "1:+5", "1e2:00", "1:3e1", "0:-0"])
def test_a_duration_of_fractional_minutes_or_signed_parts_is_refused(
        text: str, capsys: pytest.CaptureFixture[str]) -> None:
    """"1.5:30" was read as 120 s and "-0:30" as 30 s."""
    with pytest.raises(SystemExit) as e:
        main(["context", "--", text])
    assert e.value.code == 2
    captured = capsys.readouterr()
    assert f"m:ss or h:mm:ss, got {text!r}" in captured.err and not captured.out


def test_the_seconds_of_m_ss_may_still_have_a_fraction(capsys: pytest.CaptureFixture[str]) -> None:
    for text, seconds in (("1:30.5", 90.5), ("90:00", 5400.0), ("1:5", 65.0), ("0:00:01.25", 1.25)):
        assert main(["context", text, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["duration_s"] == seconds


def test_frame_overhead_is_per_latent_frame_and_the_help_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["context", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "per latent frame for cosmos" in help_text and "<eol> per row stays" in help_text
    assert main(["context", "10", "--preset", "cosmos", "--frame-overhead", "1", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["latent_frames"] == 31 and d["video_tokens"] == 31 * (256 + 1)  # not one per each of its 240 frames


# --------------------------------------------------------------------------- growth


class _NoModel:
    """Stands in for the Transformer: a check that passes bad input on to a step fails the test, not the process
    (a zero-length step kills the interpreter with SIGFPE)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was built for input that should have been refused")


def _fake_step(calls: list[int]) -> Any:
    def step(model: Any, backend: str, ids: torch.Tensor, vocab_size: int, device: Any = "cpu", *,
             repeats: int = 1) -> dict[str, float]:
        calls.append(int(ids.numel()))
        return {"seconds": 0.01, "peak_mib": 1.0, "train_flops": 1.0}
    return step


IDS = torch.arange(100)


@pytest.mark.parametrize("kwargs, message", [
    ({"lengths": {}}, "lengths must map a backend"),
    ({"lengths": {"sdpa": [0, 64]}}, "at least 2"),
    ({"lengths": {"sdpa": [1]}}, "at least 2"),
    ({"lengths": {"sdpa": [-5]}}, "at least 2"),
    ({"lengths": {"sdpa": [64.5]}}, "whole number"),
    ({"lengths": {"sdpa": "64"}}, "list of sequence lengths"),
    ({"lengths": {"flash": [64]}}, "backend must be one of"),
    ({"ids": IDS[:0]}, "at least 1 token id"),
    ({"ids": IDS.view(4, 25)}, "1-D tensor"),
    ({"ids": IDS.float()}, "1-D tensor"),
    ({"vocab_size": 10}, r"ids must lie in \[0, 10\)"),
    ({"max_memory_gb": math.nan}, "max_memory_gb"),
    ({"max_memory_gb": -1.0}, "max_memory_gb"),
    ({"repeats": 0}, "repeats"),
    ({"model": ModelConfig.preset("tiny", vocab_size=100, max_seq_len=64), "lengths": {"sdpa": [32, 128]}},
     "max_seq_len 64"),
])
def test_measure_growth_refuses_bad_arguments_before_any_step(
        kwargs: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(growth, "measure_step", _fake_step(calls))
    args = {"model": "tiny", "lengths": {"sdpa": [64]}, "ids": IDS, "vocab_size": 100, **kwargs}
    with pytest.raises(ValueError, match=message):
        growth.measure_growth(args.pop("model"), args.pop("lengths"), args.pop("ids"), args.pop("vocab_size"), **args)
    assert calls == []


@pytest.mark.parametrize("ids, vocab_size, message", [
    (IDS[:1], 100, "at least 2 token ids"), (IDS[:0], 100, "at least 2 token ids"),
    (IDS, 50, r"ids must lie in \[0, 50\)"), (IDS - 1, 100, "from -1 to 98"),
])
def test_measure_step_refuses_what_no_step_can_read(ids: torch.Tensor, vocab_size: int, message: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """One id or none crashed the interpreter (SIGFPE); ids past the vocabulary were "index out of range in self"."""
    monkeypatch.setattr(growth, "Transformer", _NoModel)
    with pytest.raises(ValueError, match=message):
        growth.measure_step("tiny", "sdpa", ids, vocab_size)
    with pytest.raises(ValueError, match="repeats"):
        growth.measure_step("tiny", "sdpa", IDS, 100, repeats=0)


def test_lengths_run_shortest_first_and_a_skip_names_the_length_that_did_not_fit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Given longest first, 64 tokens was skipped as "a shorter length (16,384) did not fit"."""
    from mmtok.core.memory import rss_mib

    calls: list[int] = []
    monkeypatch.setattr(growth, "measure_step", _fake_step(calls))
    budget = (rss_mib() + 300) / 1024  # room for 64 tokens, not for 16,384 of math attention
    g = growth.measure_growth("tiny", {"math": [16384, 64, 64, 32768]}, IDS, 100, max_memory_gb=budget, repeats=1)
    assert [r["tokens"] for r in g.series["tiny math"]] == [64]
    (_, first, why), (_, second, why2) = g.skipped
    assert (first, second) == (16384, 32768) and "GiB budget" in why and "(16,384) did not fit" in why2


def test_the_cost_plot_labels_the_lengths_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """256 and 512 tokens (the fast demo's, when 1,024 does not fit) drew an x axis with no label at all."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    figures: list[Figure] = []
    save = Figure.savefig

    def keep(fig: Figure, *args: Any, **kwargs: Any) -> None:
        figures.append(fig)
        save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    rows = [{"tokens": n, "seconds": n / 1e4, "peak_mib": n / 10} for n in (256, 512)]
    growth.plot_cost_vs_length(tmp_path / "c.png", {"tiny sdpa": rows}, where="CPU")
    for ax in figures[0].axes:
        lo, hi = ax.get_xlim()
        shown = [t.get_text() for t in ax.get_xticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]
        assert shown == ["256", "512"], shown


@pytest.mark.parametrize("minutes", [0, -5, math.nan, 0.001, 1e7, True])
def test_the_minutes_plot_refuses_a_range_it_cannot_draw(minutes: float, tmp_path: Path) -> None:
    """0 was numpy's "Geometric sequence cannot include zero", NaN or 1e7 a DURATION error naming np.float64."""
    with pytest.raises(ValueError, match="max_minutes must be a number above 1/60"):
        growth.plot_tokens_vs_minutes(tmp_path / "t.png", max_minutes=minutes)
    assert not (tmp_path / "t.png").exists()
