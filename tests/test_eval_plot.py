"""``mmtok eval --plot``: it draws over an earlier plot of its own, never over a user's file or a file it scores."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmtok.cli import main

EXAMPLES = Path(__file__).parents[1] / "examples" / "data"
COFFEE = str(EXAMPLES / "coffee.jpg")


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], why: str) -> None:
    """``argv`` exits 2 with one error line saying ``why``, before any file is scored (nothing on stdout)."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("mmtok: error: --plot ") and why in err


def test_plot_replaces_only_an_earlier_plot_of_its_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    from mmtok.evaluate import PLOT_MARK

    assert main(["eval", COFFEE, "--plot", str(tmp_path / "eval.png")]) == 0
    assert main(["eval", COFFEE, "--plot", str(tmp_path / "eval.png")]) == 0  # its own plot: drawn again
    assert "drew" in capsys.readouterr().err
    with Image.open(tmp_path / "eval.png") as im:
        assert im.info.get("Software") == PLOT_MARK
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "mine.png")  # a user's picture
    (tmp_path / "notes.png").write_text("not even a picture")
    (tmp_path / "scores.svg").write_text("<svg/>")  # an SVG it did not draw
    for name, given in (("mine.png", "mine.png"), ("mine.png", "mine"), ("notes.png", "notes.png"),
                        ("scores.svg", "scores.svg")):
        kept = (tmp_path / name).read_bytes()
        _refused(["eval", COFFEE, "--plot", str(tmp_path / given)], capsys, "is not a plot that 'mmtok eval' drew")
        assert (tmp_path / name).read_bytes() == kept


def test_plot_refuses_a_file_it_would_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    shutil.copy(EXAMPLES / "camera.png", tmp_path / "camera.png")
    kept = (tmp_path / "camera.png").read_bytes()
    _refused(["eval", str(tmp_path / "camera.png"), "--plot", str(tmp_path / "camera.png")], capsys,
             "is one of the files to score")
    _refused(["eval", str(tmp_path), "--plot", str(tmp_path / "camera")], capsys, "is inside")
    assert (tmp_path / "camera.png").read_bytes() == kept
    # an earlier plot in a folder that is scored is an input too: it is not drawn over while it is read
    assert main(["eval", COFFEE, "--plot", str(tmp_path / "eval.png")]) == 0
    capsys.readouterr()
    _refused(["eval", str(tmp_path), "--plot", str(tmp_path / "eval.png")], capsys, "is inside")
