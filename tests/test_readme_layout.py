"""README's "What is inside" table names every module of the package, so the map does not fall behind the code."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rows() -> dict[str, str]:
    """Each row of the table: its first cell (the packages or files it covers) -> its second (what they hold)."""
    rows = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        cells = line.split(" | ")
        if line.startswith("| `mmtok/") and len(cells) >= 3:
            rows[cells[0]] = cells[1]
    return rows


def test_every_module_is_named_in_the_readme_table() -> None:
    rows = _rows()
    missing = []
    for path in sorted((ROOT / "mmtok").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if path.name.startswith("_"):
            continue
        if path.parent == ROOT / "mmtok":
            found = any(f"`{rel}`" in first for first in rows)
        else:
            folder = f"`{path.parent.relative_to(ROOT).as_posix()}/`"
            found = any(folder in first and f"`{path.stem}`" in what for first, what in rows.items())
        if not found:
            missing.append(rel)
    assert missing == [], f"README's table of what is inside does not name: {missing}"
