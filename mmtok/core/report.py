"""A self-contained HTML report: sections of text, pictures, sound players, tables and measured figures.

Everything a page shows lives next to it in its folder and is referenced by a
relative path; :meth:`Report.write` refuses to write a page whose files are
missing, and the page loads nothing from the network. Figures are kept as
numbers (``figures.json`` beside the page) as well as shown in a table.

>>> import tempfile
>>> out = Path(tempfile.mkdtemp())
>>> r = Report(out, "demo")
>>> r.figure("psnr_db", 22.31, "dB", "mean PSNR")
>>> r.section("Numbers", r.table(["a", "b"], [[1, "<x>"]]))
>>> page = r.write()
>>> "&lt;x&gt;" in page.read_text(), json.loads((out / "figures.json").read_text())["psnr_db"]["value"]
(True, 22.31)
"""

from __future__ import annotations

import html
import json
import math
import re
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["Report", "referenced_files"]

STYLE = """
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1180px;padding:0 18px 60px;color:#1d232b}
h1{margin:28px 0 4px}h2{margin-top:38px;border-bottom:2px solid #e4e7eb;padding-bottom:4px}
.sub{color:#5b6675;margin:0 0 18px}.note{color:#5b6675;font-size:13px}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:10px 0 14px;font-size:14px}td,th{border:1px solid #dde1e6;padding:4px 9px;text-align:left;vertical-align:top}
th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.card{border:1px solid #e4e7eb;border-radius:6px;padding:8px;background:#fafbfc;max-width:100%;min-width:0}
.card img{display:block;max-width:100%;height:auto;image-rendering:auto}.card .cap{font-size:13px;color:#3d4652;margin-top:4px;max-width:520px;overflow-wrap:anywhere}
.pair .both{display:flex;gap:8px}.pair figure{margin:0;flex:1 1 0;min-width:0}.pair figcaption{font-size:12px;color:#5b6675}
img.pixel{image-rendering:pixelated}audio{display:block;width:260px;max-width:100%;margin-top:4px}
.stream{font:12px/1.9 ui-monospace,SFMono-Regular,Menlo,monospace;border:1px solid #e4e7eb;border-radius:6px;padding:10px;max-height:520px;overflow:auto;background:#fff;overflow-wrap:anywhere}
.stream .sp{background:#334155;color:#fff;border-radius:3px;padding:0 3px;margin:0 1px}
.stream .t{color:#111;white-space:pre-wrap}.stream .c{display:inline-block;width:9px;height:9px;margin:0;vertical-align:middle}
.stream .a{display:inline-block;width:7px;height:14px;margin:0 1px 0 0;vertical-align:middle}
.legend span{margin-right:14px}pre{background:#f6f8fa;padding:10px;border-radius:6px;font-size:13px;white-space:pre-wrap;overflow-wrap:anywhere}
"""

def referenced_files(page: str | Path) -> list[str]:
    """The relative paths an HTML page's ``src``/``href`` attributes point at (links to ``#`` excluded), as file
    paths (their URL quoting undone)."""
    text = Path(page).read_text(encoding="utf-8")
    refs = re.findall(r'(?:src|href)="([^"#][^"]*)"', text)
    return [urllib.parse.unquote(html.unescape(r)) for r in refs
            if "://" not in r and not r.startswith(("data:", "mailto:"))]


class Report:
    """An HTML page under construction in folder ``out``; call :meth:`write` to save it."""

    def __init__(self, out: str | Path, title: str, subtitle: str = "") -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.title, self.subtitle = title, subtitle
        self.parts: list[str] = []
        self.figures: dict[str, dict[str, Any]] = {}
        self.files: list[str] = []

    # ----------------------------------------------------------------- pieces (each returns HTML)

    def _ref(self, rel: str | Path) -> str:
        rel = Path(rel)
        if rel.is_absolute():
            rel = rel.relative_to(self.out)
        self.files.append(rel.as_posix())
        # a URL: a name's '#', '?' or '%' would end the path or start an escape (a space, too, is quoted)
        return html.escape(urllib.parse.quote(rel.as_posix()), quote=True)

    def image(self, rel: str | Path, caption: str = "", *, width: int | None = None, pixel: bool = False) -> str:
        """A picture with a caption, as a card."""
        w = f' width="{width}"' if width else ""
        cls = ' class="pixel"' if pixel else ""
        cap = f'<div class="cap">{caption}</div>' if caption else ""
        return f'<div class="card"><img src="{self._ref(rel)}"{w}{cls} alt="{html.escape(Path(rel).name)}">{cap}</div>'

    def pair(self, left: tuple[str | Path, str], right: tuple[str | Path, str], caption: str = "", *,
             width: int | None = None, pixel: bool = False) -> str:
        """Two pictures side by side in one card (``(file, label)`` each, e.g. an original and its
        reconstruction): they shrink together on a narrow screen and are never split across rows."""
        w = f' width="{width}"' if width else ""
        cls = ' class="pixel"' if pixel else ""
        figs = "".join(f'<figure><img src="{self._ref(rel)}"{w}{cls} alt="{html.escape(Path(rel).name)}">'
                       f"<figcaption>{label}</figcaption></figure>" for rel, label in (left, right))
        cap = f'<div class="cap">{caption}</div>' if caption else ""
        return f'<div class="card pair"><div class="both">{figs}</div>{cap}</div>'

    def sound_pair(self, picture: str | Path, left: tuple[str | Path, str], right: tuple[str | Path, str],
                   caption: str = "", *, width: int | None = None) -> str:
        """A picture (e.g. spectrograms) over two sound players (``(file, label)`` each) in one card."""
        w = f' width="{width}"' if width else ""
        players = "".join(f'<div class="cap">{label}</div><audio controls preload="none" src="{self._ref(rel)}">'
                          "</audio>" for rel, label in (left, right))
        cap = f'<div class="cap">{caption}</div>' if caption else ""
        return (f'<div class="card"><img src="{self._ref(picture)}"{w} alt="{html.escape(Path(picture).name)}">'
                f"{cap}{players}</div>")

    def audio(self, rel: str | Path, caption: str = "") -> str:
        """A sound player with a caption (WAV files play in every browser)."""
        return (f'<div class="card"><audio controls preload="none" src="{self._ref(rel)}"></audio>'
                f'<div class="cap">{caption}</div></div>')

    def link(self, rel: str | Path, text: str) -> str:
        return f'<a href="{self._ref(rel)}">{html.escape(text)}</a>'

    @staticmethod
    def grid(cards: Sequence[str]) -> str:
        return '<div class="grid">' + "".join(cards) + "</div>"

    @staticmethod
    def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
        """A table; numbers are right-aligned, strings escaped."""
        def cell(v: Any) -> str:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return f"<td>{html.escape(str(v))}</td>"
            if isinstance(v, int) or abs(v) >= 1000:  # 12,319 rather than 1.232e+04
                return f'<td class="num">{v:,.0f}</td>'
            return f'<td class="num">{v:,.4g}</td>'

        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
        return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'

    @staticmethod
    def text(s: str) -> str:
        return f"<p>{html.escape(s)}</p>"

    @staticmethod
    def note(s: str) -> str:
        return f'<p class="note">{html.escape(s)}</p>'

    @staticmethod
    def pre(s: str) -> str:
        return f"<pre>{html.escape(s)}</pre>"

    # ----------------------------------------------------------------- structure

    def section(self, title: str, *parts: str) -> None:
        anchor = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        self.parts.append(f'<h2 id="{anchor}">{html.escape(title)}</h2>' + "".join(parts))

    def figure(self, key: str, value: float, unit: str, what: str) -> None:
        """Record a measured figure (a finite number) for the figures table and ``figures.json``."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"figure {key!r} must be a finite number, got {value!r}")
        self.figures[key] = {"value": value, "unit": unit, "what": what}

    def figures_table(self) -> str:
        rows = [[f["what"], f["value"], f["unit"], key] for key, f in self.figures.items()]
        return self.table(["measured", "value", "unit", "key in figures.json"], rows)

    def write(self, name: str = "index.html") -> Path:
        """Write the page and ``figures.json``; raise if a referenced file is missing."""
        missing = sorted({f for f in self.files if not (self.out / f).is_file()})
        if missing:
            raise FileNotFoundError(f"the page would reference missing files in {self.out}: {missing}")
        toc = " · ".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in
                         re.findall(r'<h2 id="([^"]+)">([^<]+)</h2>', "".join(self.parts)))
        body = "".join(self.parts)
        page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
                f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
                f'<body><h1>{html.escape(self.title)}</h1><p class="sub">{html.escape(self.subtitle)}</p>'
                f'<p class="note">{toc}</p>{body}</body></html>\n')
        (self.out / "figures.json").write_text(json.dumps(self.figures, indent=1) + "\n")
        path = self.out / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
        return path
