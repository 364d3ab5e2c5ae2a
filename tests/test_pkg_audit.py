"""What a new install meets: the vocoder cache without PyAV, extras named when they are missing, a
``module:callable`` tokenizer in the working folder, the shipped names, and what pyproject ships."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
M4A_HEAD = b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00M4A mp42isom" + bytes(64)  # an MP4 box start: AAC/M4A


def write_corpus(root: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Two 0.5 s tones per split and ``extra`` files (name -> bytes) in the train split, with the manifest."""
    root.mkdir(parents=True)
    t = np.arange(8000) / 16000
    rows = []
    for i, split in enumerate(("train", "train", "validation", "validation")):
        sf.write(root / f"t{i}.wav", (0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t)).astype(np.float32), 16000)
        rows.append({"path": f"t{i}.wav", "split": split, "source": "s", "group": f"g{i}", "kind": "sounds"})
    for name, data in (extra or {}).items():
        (root / name).write_bytes(data)
        rows.append({"path": name, "split": "train", "source": "s", "group": name, "kind": "sounds"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_a_cache_of_aac_files_without_pyav_is_refused_before_anything_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.audio.vocoder_data import build_cache
    from mmtok.core.errors import UsageError

    monkeypatch.setitem(sys.modules, "av", None)  # PyAV not installed
    corpus = write_corpus(tmp_path / "corpus", {"m.m4a": M4A_HEAD})
    with pytest.raises(UsageError, match=r"1 AAC/M4A file.*m\.m4a.*pip install av"):
        build_cache(corpus, tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists()


def test_a_file_libsndfile_cannot_read_without_pyav_stops_the_build_instead_of_being_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.audio.vocoder_data import build_cache
    from mmtok.core.errors import UsageError

    monkeypatch.setitem(sys.modules, "av", None)
    corpus = write_corpus(tmp_path / "corpus", {"x.wma": b"\x30\x26\xb2\x75" + bytes(200)})
    with pytest.raises(UsageError, match=r"cannot cache .*x\.wma.*PyAV"):
        build_cache(corpus, tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache" / "index.json").exists()  # never marked complete without it


def test_only_decode_errors_skip_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("av")
    from mmtok.audio import vocoder_data

    corpus = write_corpus(tmp_path / "corpus", {"x.wma": b"\x30\x26\xb2\x75" + bytes(200)})
    summary = vocoder_data.build_cache(corpus, tmp_path / "cache", progress=False)  # FFmpeg cannot read it either
    assert summary["splits"]["train"]["files"] == 2
    assert sum(summary["splits"]["train"]["skipped"].values()) == 1
    assert all(why.startswith("decode failed: ") for why in summary["splits"]["train"]["skipped"])

    def broken(path: Path) -> None:
        raise RuntimeError("a fault of the code, not of the file")

    monkeypatch.setattr(vocoder_data, "decode_file", broken)
    with pytest.raises(RuntimeError, match="a fault of the code"):
        vocoder_data.build_cache(corpus, tmp_path / "cache2", progress=False)


def test_a_cache_that_skipped_files_for_want_of_pyav_is_refused(tmp_path: Path) -> None:
    from mmtok.audio.vocoder_data import build_cache
    from mmtok.core.errors import CorpusError

    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    build_cache(corpus, cache, progress=False)
    index = json.loads((cache / "index.json").read_text())
    index["splits"]["train"]["skipped"] = {"decode failed: ModuleNotFoundError": 3}
    (cache / "index.json").write_text(json.dumps(index))
    with pytest.raises(CorpusError, match=r"skipped 3 file\(s\) because PyAV was not installed.*delete the folder"):
        build_cache(corpus, cache, progress=False)


def test_a_module_callable_in_the_working_folder_is_imported_and_sys_path_restored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver

    name = "pkg_audit_cwd_tokenizer"
    (tmp_path / f"{name}.py").write_text(
        "import torch\n\n\n"
        "class Tones:\n"
        "    codebook_size = 16\n    sample_rate = 16000\n    tokens_per_second = 40\n    fingerprint = 'tones-v1'\n\n"
        "    def encode(self, x, sample_rate=None):\n        return torch.zeros(4, dtype=torch.long)\n\n"
        "    def decode(self, codes):\n        return torch.zeros(codes.numel() * 400)\n\n\n"
        "def make():\n    return Tones()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])  # as a console script
    before = list(sys.path)
    try:
        il = build_interleaver(TokenizerSpec(audio=f"{name}:make"))
    finally:
        sys.modules.pop(name, None)
    assert type(il.audio).__name__ == "Tones"
    assert sys.path == before


def test_export_without_pyarrow_names_the_extra_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.core.errors import CorpusError
    from mmtok.data.corpus import tokenize_corpus
    from mmtok.data.export import export_shards

    (tmp_path / "docs.jsonl").write_text('{"segments": ["hi"]}\n')
    tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "shards")
    for module in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, module, None)
    for to in ("parquet", "datasets"):
        with pytest.raises(CorpusError, match=re.escape("pip install 'mmtok[hf]'")):
            export_shards(tmp_path / "shards", to=to, out=tmp_path / "out" / to)
    assert not (tmp_path / "out").exists()


def test_make_data_without_pygame_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.audio import corpus
    from mmtok.core.errors import UsageError

    monkeypatch.setattr(corpus.shutil, "which", lambda cmd: f"/usr/bin/{cmd}")  # espeak-ng there
    monkeypatch.setitem(sys.modules, "pygame", None)
    with pytest.raises(UsageError, match=re.escape("pip install 'mmtok[audio-data]'")):
        corpus.build_corpus(tmp_path / "data", progress=False)
    assert not (tmp_path / "data").exists()


def test_an_unknown_name_lists_every_shipped_name_load_takes() -> None:
    import mmtok
    from mmtok.core.checkpoint_names import shipped_names
    from mmtok.core.errors import CheckpointError

    names = shipped_names()
    assert ("video" in names) == ("image" in names)
    with pytest.raises(CheckpointError) as e:
        mmtok.load("no-such-tokenizer")
    assert f"shipped: {names}" in str(e.value)
    assert "video" in str(e.value) or "image" not in names


# --------------------------------------------------------------------------- pyproject


@pytest.fixture(scope="module")
def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def imported_top_names() -> set[str]:
    """Every top-level module name a module of the package imports, at the top or inside a function, and
    every one it names to ``importlib.import_module`` or ``importlib.util.find_spec``."""
    names: set[str] = set()
    for path in (ROOT / "mmtok").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in ("import_module", "find_spec") and node.args
                  and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                names.add(node.args[0].value.split(".")[0])
    return names


def requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower()


def test_every_required_dependency_is_imported_and_librosa_is_a_test_one(pyproject: dict) -> None:
    used = imported_top_names()
    module = {"pillow": "PIL"}  # distribution name -> the module it installs, where they differ
    required = [requirement_name(r) for r in pyproject["project"]["dependencies"]]
    assert [r for r in required if module.get(r, r.replace("-", "_")) not in used] == []
    assert "librosa" not in required and "librosa" not in used
    extras = pyproject["project"]["optional-dependencies"]
    assert "librosa" in {requirement_name(r) for r in extras["test"]}
    assert {requirement_name(r) for r in extras["audio-data"]} == {"pygame"}


def test_the_wheel_ships_the_example_media_but_not_the_script_that_makes_them(pyproject: dict) -> None:
    forced = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    data = ROOT / "examples" / "data"
    wanted = {f"examples/data/{p.name}": f"mmtok/_examples/{p.name}"
              for p in data.iterdir() if p.is_file() and p.name != "make_data.py"}
    assert {k: v for k, v in forced.items() if k.startswith("examples")} == wanted
    assert "examples/data/make_data.py" not in forced and "examples/data" not in forced


def test_the_sdist_carries_the_license_and_the_readme_picture(pyproject: dict) -> None:
    include = pyproject["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    assert "LICENSE" in include and "docs/demo-overview.png" in include
    assert (ROOT / "docs" / "demo-overview.png").is_file()
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the mmtok authors" in text


def test_the_readme_names_every_extra(pyproject: dict) -> None:
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("Extras: "):readme.index("\n\n", readme.index("Extras: "))]
    assert [e for e in pyproject["project"]["optional-dependencies"] if f"`{e}`" not in paragraph] == []


def test_the_declared_torch_floor_has_every_torch_keyword_the_code_passes() -> None:
    """``enable_gqa=`` of ``F.scaled_dot_product_attention`` came in torch 2.5: an install the floor admits must have it."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {m.group(1): tuple(int(x) for x in m.group(2).split(".")) for d in deps
              if (m := re.fullmatch(r"(torch|torchaudio)>=([\d.]+)", d.split(";")[0].strip()))}
    uses_gqa = any("enable_gqa=" in p.read_text() for p in (ROOT / "mmtok").rglob("*.py"))
    assert uses_gqa and floors["torch"] >= (2, 5) and floors["torchaudio"] >= (2, 5), floors
