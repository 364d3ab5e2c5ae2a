"""The demo page's layout: originals beside their reconstructions in one card, pictures and the stream that
fit any width, sound that never clips; in a headless browser when chromium is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from mmtok.core.report import Report
from mmtok.demo.plots import PEAK, save_png, save_wav

WIDTHS = (500, 1280)  # a narrow window (headless chromium goes no narrower) and a laptop, in CSS pixels


def _page(out: Path) -> Path:
    """A page made of the demo's pieces: image pairs, a sound pair, a wide overview, a long stream, a table."""
    gen = torch.Generator().manual_seed(0)
    for name, size in (("a", 256), ("a-tokens", 256), ("b", 256), ("b-tokens", 256), ("overview", 1100)):
        save_png(out / f"{name}.png", torch.rand(3, size // 4, size // 4, generator=gen), scale=4)
    save_wav(out / "s.wav", 1.7 * torch.sin(torch.linspace(0, 600, 16000)), 16000)
    r = Report(out, "layout")
    r.parts.append(r.grid([r.image("overview.png", "", width=1100)]))
    r.section("Pairs", r.grid([r.pair((f"{k}.png", "original"), (f"{k}-tokens.png", "from tokens"), f"{k}: PSNR",
                                      width=256) for k in ("a", "b")]),
              r.grid([r.sound_pair("a.png", ("s.wav", "original"), ("s.wav", "from tokens"), "s", width=480)]),
              r.pre("<bos> " + "a long line of the pretty-printed stream " * 40),
              r.table(["a", "b"], [["x" * 300, 1]]))
    return r.write()


def test_pairs_share_one_card_and_everything_shrinks(tmp_path: Path) -> None:
    text = _page(tmp_path).read_text()
    cards = re.findall(r'<div class="card pair">(.*?)</div></div>', text)
    assert len(cards) == 2 and all(c.count("<img ") == 2 for c in cards)
    style = text[text.index("<style>"):text.index("</style>")]
    for rule in ("flex-wrap:wrap", ".card img{display:block;max-width:100%;height:auto", "white-space:pre-wrap"):
        assert rule in style, rule


def test_written_sound_never_clips(tmp_path: Path) -> None:
    import soundfile as sf

    save_wav(tmp_path / "loud.wav", torch.tensor([0.0, 2.5, -3.0, 0.5]), 16000)
    pcm, _ = sf.read(str(tmp_path / "loud.wav"), dtype="int16")
    assert int((np.abs(pcm.astype(np.int32)) >= 32767).sum()) == 0
    assert abs(np.abs(pcm).max() / 32767 - PEAK) < 1e-3  # scaled down as a whole, not cut
    assert pcm[1] / pcm[2] == pytest.approx(2.5 / -3.0, rel=1e-3)


CHECK = """<script>addEventListener('load', () => {
  const w = document.documentElement.clientWidth, box = e => e.getBoundingClientRect();
  const outside = [...document.querySelectorAll('img, audio, pre, .card')]
    .filter(e => box(e).left < -1 || box(e).right > w + 1).map(e => e.getAttribute('src') || e.className);
  const apart = [...document.querySelectorAll('.pair')].filter(p => {
    const [a, b] = p.querySelectorAll('img'); return Math.abs(box(a).top - box(b).top) > 1; }).length;
  document.body.dataset.result = JSON.stringify({width: w, outside, apart});
});</script>"""


def _chromium() -> str | None:
    return next((c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)


@pytest.mark.skipif(_chromium() is None, reason="needs chromium (apt-get install chromium)")
@pytest.mark.parametrize("width", WIDTHS)
def test_every_figure_fits_the_viewport_in_a_browser(tmp_path: Path, width: int) -> None:
    page = _page(tmp_path)
    page.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    cmd = [str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--window-size={width},900", "--virtual-time-budget=5000"]
    shot = tmp_path / f"page-{width}.png"
    subprocess.run([*cmd, f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 1000
    dom = subprocess.run([*cmd, "--dump-dom", page.as_uri()], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    found = re.search(r"data-result=\"([^\"]*)\"", dom)
    assert found, dom[-500:]
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["width"] <= width and result["outside"] == [], result
    assert result["apart"] == 0, result  # each original stays beside its reconstruction
