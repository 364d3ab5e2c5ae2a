"""The ``mmtok`` command shows warnings in one line (``mmtok: warning: ...``), and only while it runs."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PIL import Image

from mmtok.cli import main


def test_an_animated_gif_encode_warns_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = [Image.new("RGB", (32, 32), (80 * k, 0, 0)) for k in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    before = warnings.showwarning
    assert main(["encode", str(tmp_path / "anim.gif"), "--out", str(tmp_path / "codes")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("mmtok: warning: image file ") and "is an animation of 3 frames" in err[0]
    assert warnings.showwarning is before  # the library's own warnings are left as Python shows them
    assert (tmp_path / "codes" / "anim.gif.npz").is_file()
