"""The HTML report links a file by its URL: a name holding '#', '?', '%' or a space still reaches the file."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from mmtok.core.report import Report


def test_a_name_with_url_characters_is_quoted_in_its_link(tmp_path: Path) -> None:
    report = Report(tmp_path, "t")
    ref = report._ref("audio/sound #1 ?50%.ogg.wav")
    assert ref == "audio/sound%20%231%20%3F50%25.ogg.wav"
    assert urllib.parse.unquote(ref) == "audio/sound #1 ?50%.ogg.wav"
    assert report.files[-1] == "audio/sound #1 ?50%.ogg.wav"  # the file itself, as it is on disk
    assert report._ref("images/coffee.jpg.png") == "images/coffee.jpg.png"
