"""What the wheel, an editable install and the sdist hold, read from pyproject.toml: the shipped checkpoints
and example media land where the installed code looks for them, an editable install copies no checkpoint
into site-packages, and the sdist carries the CI script the README names."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import mmtok
from mmtok.core import checkpoint_names
from mmtok.demo import state

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(mmtok.__file__).resolve().parent


@pytest.fixture(scope="module")
def wheel_config() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]


def under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def wheel_path(config: dict, path: str) -> str | None:
    """Where the wheel puts repository file ``path`` (None: left out), by the rules hatchling applies: a
    force-included file or folder first, then ``only-include`` (or ``packages``) with the longest ``sources``
    prefix rewritten."""
    for source, target in config.get("force-include", {}).items():
        if under(path, source):
            return target + path[len(source):]
    selected = list(config.get("only-include", [])) + list(config.get("packages", []))
    if not any(under(path, s) for s in selected):
        return None
    if any(under(path, e) for e in config.get("exclude", [])):
        return None
    sources = config.get("sources", {})
    prefix = max((s for s in sources if under(path, s)), key=len, default=None)
    return path if prefix is None else sources[prefix] + path[len(prefix):]


def test_the_wheel_puts_every_shipped_checkpoint_where_the_installed_code_looks(wheel_config: dict) -> None:
    where = "mmtok/" + checkpoint_names._PACKAGE_MODELS.relative_to(PACKAGE).as_posix()
    folders = [p for p in (ROOT / "models").iterdir() if (p / "config.json").is_file()]
    assert folders, "no shipped checkpoint under models/"
    for folder in folders:
        for f in sorted(p for p in folder.iterdir() if p.is_file()):
            rel = f.relative_to(ROOT).as_posix()
            assert wheel_path(wheel_config, rel) == f"{where}/{folder.name}/{f.name}", rel


def test_the_wheel_puts_the_example_media_where_the_demo_looks_and_leaves_make_data_out(wheel_config: dict) -> None:
    where = "mmtok/" + state._PACKAGE_EXAMPLES.relative_to(PACKAGE).as_posix()
    for f in sorted((ROOT / "examples" / "data").iterdir()):
        rel = f.relative_to(ROOT).as_posix()
        expected = None if f.name == "make_data.py" else f"{where}/{f.name}"
        assert wheel_path(wheel_config, rel) == expected, rel


def test_an_editable_install_copies_no_checkpoint_into_site_packages(wheel_config: dict) -> None:
    """hatchling writes every force-included file into an editable wheel too, where nothing reads it."""
    forced = wheel_config.get("force-include", {})
    assert [s for s in forced if under(s, "models")] == []
    size = sum(p.stat().st_size for s in forced for p in ([ROOT / s] if (ROOT / s).is_file()
                                                             else (ROOT / s).rglob("*")) if p.is_file())
    assert size < 5_000_000, f"force-included files take {size:,} bytes in every editable install"
    rewritten = [s for s, t in wheel_config.get("sources", {}).items() if t != ""]
    assert not [p for s in rewritten for p in (ROOT / s).rglob("*.py")], \
        "a .py file under a rewritten source makes hatchling refuse editable installs"


def test_an_editable_wheel_built_by_hatchling_holds_no_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("editables")
    wheel = pytest.importorskip("hatchling.builders.wheel")
    built = list(wheel.WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["editable"]))
    with zipfile.ZipFile(built[0]) as z:
        assert [n for n in z.namelist() if "_models/" in n] == []
        assert sum(i.file_size for i in z.infolist()) < 5_000_000


def test_the_sdist_carries_the_ci_script_the_readme_names() -> None:
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    assert "`.ci/run`" in (ROOT / "README.md").read_text()
    assert (ROOT / ".ci" / "run").is_file()
    assert any(under(".ci/run", s) for s in include), include
