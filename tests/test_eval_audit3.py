"""``mmtok eval`` read as a researcher comparing tokenizers: ties, single-file intervals, what the text and plot say."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from image_helpers import save_smooth_picture
from matplotlib.figure import Figure

from mmtok.cli import main
from mmtok.core.metrics import paired_difference
from mmtok.evaluate import Evaluation, _fmt_pair, plot_scores


def test_scores_that_differ_only_by_float_rounding_are_a_tie() -> None:
    """STOI of a decode and of its quieter copy differ by 1e-16: that was a win for one model and a "-0.0000"."""
    above = paired_difference([{"x": 0.1 + 0.2}] * 3, [{"x": 0.3}] * 3, ["x"])["x"]  # 0.30000000000000004 > 0.3
    assert above == {"mean": 0.0, "ci95": [0.0, 0.0], "wins": 0, "n": 3}
    below = paired_difference([{"x": 0.3}] * 3, [{"x": 0.1 + 0.2}] * 3, ["x"], lower_better=["x"])["x"]
    assert below["wins"] == 0 and math.copysign(1.0, below["mean"]) == 1.0  # not -0.0
    assert all(math.copysign(1.0, v) == 1.0 for v in below["ci95"])
    real = paired_difference([{"x": 0.31}, {"x": 0.32}], [{"x": 0.3}, {"x": 0.3}], ["x"])["x"]
    assert real["wins"] == 2 and real["mean"] == pytest.approx(0.015)  # a real difference still counts


def test_one_file_gives_no_interval_rather_than_a_zero_width_one() -> None:
    """One file's bootstrap resamples are all that file: the interval was [d, d], as if the difference were sure."""
    (d,) = [paired_difference([{"x": 2.0}], [{"x": 1.0}], ["x"])["x"]]
    assert d == {"mean": 1.0, "ci95": None, "wins": 1, "n": 1}
    ev = Evaluation({"image": ["image", "image"]})
    ev.models["image"] = [type("M", (), {"label": label})() for label in ("a", "b")]  # labels alone are paired
    ev.rows += [{"file": "f.png", "kind": "image", "model": "a", "psnr_db": 20.0, "ssim": 0.5},
                {"file": "f.png", "kind": "image", "model": "b", "psnr_db": 21.5, "ssim": 0.5}]
    (pair,) = ev.pairs()
    text = list(_fmt_pair(pair))
    assert text[0] == ("image · b − a: PSNR +1.5000 dB [no interval from 1 file] (higher is better), "
                       "better on 1 of 1 file")
    assert text[1].startswith("image · b − a: SSIM +0.0000 [no interval")


def test_the_table_says_the_summaries_are_means_and_what_the_pairs_are(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A summary line said "2 files: PSNR 17.07 dB" and a pair "PSNR -0.0844 [-0.35, +0.07]": neither said
    that these are means over files, a mean per-file difference, a 95 % interval, or the unit of the difference."""
    pictures = [str(save_smooth_picture(tmp_path / f"p{i}.png", size=64, seed=i)) for i in range(2)]
    assert main(["eval", *pictures, "--image", "image", "--image", "image"]) == 0
    lines = capsys.readouterr().out.splitlines()
    summaries = [line for line in lines if line.startswith("image · ") and " − " not in line]
    assert len(summaries) == 2 and all(": 2 files, means: PSNR " in line for line in summaries)
    (head,) = [i for i, line in enumerate(lines) if "mean per-file difference" in line]
    assert "95 % bootstrap interval" in lines[head] and " − " not in lines[head]  # said once, above the pairs
    assert lines[head + 1].endswith(": PSNR +0.0000 dB [+0.0000, +0.0000] (higher is better), better on 0 of 2 files")
    assert lines[head + 2].endswith(": SSIM +0.0000 [+0.0000, +0.0000] (higher is better), better on 0 of 2 files")


def test_each_plot_panel_names_its_score_its_unit_and_which_way_is_better(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Panels were titled "image: PSNR" with no unit, no axis label, and a direction only for the log-mel L1."""
    drawn: list[Figure] = []
    save = Figure.savefig

    def keep(fig: Figure, *a: Any, **k: Any) -> None:
        drawn.append(fig)
        save(fig, *a, **k)

    monkeypatch.setattr(Figure, "savefig", keep)
    rows = [{"file": f"f{i}", "kind": kind, "model": "m", **scores} for i in range(2) for kind, scores in
            (("image", {"psnr_db": 20.0 + i, "ssim": 0.5}), ("audio", {"stoi": 0.7, "logmel_l1": 0.9 - i / 10}))]
    plot_scores(rows, tmp_path / "scores.png")
    (fig,) = drawn
    panels = [(ax.get_title(), ax.get_ylabel()) for ax in fig.axes]
    assert panels == [("image: PSNR (higher is better)", "PSNR (dB)"), ("image: SSIM (higher is better)", "SSIM"),
                      ("audio: STOI (higher is better)", "STOI"),
                      ("audio: log-mel L1 (lower is better)", "log-mel L1")]


@pytest.mark.parametrize(("flag", "name", "fix"), [("--image", "audio", "--audio audio"),
                                                   ("--audio", "image", "--image image")])
def test_a_model_of_another_kind_is_refused_with_the_flag_that_takes_it(
        flag: str, name: str, fix: str, capsys: pytest.CaptureFixture[str]) -> None:
    """"checkpoint .../audio is of kind 'audio', expected 'image'" said what was wrong, not which flag to use."""
    assert main(["eval", "no-such.png", flag, name]) == 2
    err = capsys.readouterr().err
    assert f"expected '{flag[2:]}'; give it as {fix}\n" in err and err.count("\n") == 1
