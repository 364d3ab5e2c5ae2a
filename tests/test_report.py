"""The HTML report: escaping, figures that must be numbers, and no page with missing files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mmtok.core.report import Report, referenced_files


def test_page_files_and_figures(tmp_path: Path) -> None:
    r = Report(tmp_path, "t <1>")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x y.png").write_bytes(b"png")
    (tmp_path / "s.wav").write_bytes(b"wav")
    r.section("Pictures & sound", r.grid([r.image("a/x y.png", "cap"), r.audio("s.wav", "hear")]),
              r.table(["n", "name"], [[1234, "<b>"], [0.5, "ok"]]))
    r.figure("n", 3, "things", "a count")
    for bad in (math.nan, math.inf, "3", True):
        with pytest.raises(ValueError, match="finite number"):
            r.figure("bad", bad, "", "")  # type: ignore[arg-type]
    page = r.write()
    text = page.read_text()
    assert "t &lt;1&gt;" in text and "&lt;b&gt;" in text and "1,234" in text
    assert 'href="#pictures-sound"' in text  # the table of contents
    assert sorted(referenced_files(page)) == ["a/x y.png", "s.wav"]
    assert json.loads((tmp_path / "figures.json").read_text()) == {"n": {"value": 3, "unit": "things",
                                                                        "what": "a count"}}


def test_missing_file_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    r = Report(tmp_path, "t")
    r.section("s", r.image("gone.png"))
    with pytest.raises(FileNotFoundError, match=r"gone\.png"):
        r.write()
    assert not (tmp_path / "index.html").exists()
