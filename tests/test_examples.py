"""Every script in examples/ runs to the end (they are what newcomers run first)."""

from __future__ import annotations

import json
import os
import shlex
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


def test_readme_quickstart_eval_commands_run(tmp_path: Path) -> None:
    """The README's ``mmtok eval`` lines, run as written on a folder of photos, one of recordings and a clip."""
    root = Path(__file__).parents[1]
    section = (root / "README.md").read_text(encoding="utf-8").split("## Quickstart", 1)[1]
    lines = [x for x in section.split("```bash\n", 1)[1].split("```", 1)[0].splitlines() if x.strip()]
    data = root / "examples" / "data"
    for name, source in {"photos/coffee.jpg": "coffee.jpg", "recordings/speech.wav": "speech_en.wav",
                         "clip.mp4": "pan.mp4"}.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes((data / source).read_bytes())
    mmtok_save = "import mmtok; mmtok.save(mmtok.load('audio'), 'run/model')"
    subprocess.run([sys.executable, "-c", mmtok_save], cwd=tmp_path, check=True, timeout=120)
    mmtok_cmd = [sys.executable, "-c", "import sys; from mmtok.cli import main; sys.exit(main())"]
    outs = []
    for line in lines:
        args = shlex.split(line, comments=True)
        assert args[:2] == ["mmtok", "eval"], line
        done = subprocess.run([*mmtok_cmd, *args[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        outs.append(done.stdout)
    assert "photos/coffee.jpg  image v3" in outs[0] and "clip.mp4 (soundtrack)" in outs[0]
    paired = [json.loads(x) for x in outs[1].splitlines() if '"paired"' in x]
    assert len(paired) == 1 and paired[0]["model"] == "run/model"  # the same weights: a model name of its own
