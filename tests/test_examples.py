"""Every script in examples/ runs to the end (they are what newcomers run first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))


def test_there_are_examples() -> None:
    assert EXAMPLES


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip()


def test_readme_quickstart_runs(tmp_path: Path) -> None:
    """The README's Quickstart block, run as written beside the media files it names."""
    root = Path(__file__).parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    data = root / "examples" / "data"
    for name, source in {"photo.jpg": "coffee.jpg", "speech.wav": "speech_en.wav", "a.wav": "speech_en.wav",
                         "b.flac": "speech_de.flac"}.items():
        (tmp_path / name).write_bytes((data / source).read_bytes())
    (tmp_path / "quickstart.py").write_text(block, encoding="utf-8")
    done = subprocess.run([sys.executable, "quickstart.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "a photo of [image 16×16] at dusk"  # the line its comment promises
