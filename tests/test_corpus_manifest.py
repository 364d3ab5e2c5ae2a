"""The trainers' --data manifest rules (mmtok.core.corpus_manifest): which folders hold held-out files, and a
corpus whose build has not finished refused, by the trainers and by the benchmarks that read a manifest."""

from __future__ import annotations

import json
from pathlib import Path

from mmtok.core.checkpoint_folder import sibling_prefix
from mmtok.core.corpus_manifest import folder_manifest
from mmtok.core.run_folder import holds_train_state


def _corpus(root: Path, prefix: str) -> Path:
    (root / "images").mkdir(parents=True)
    rows = [{"path": f"{prefix}images/{i}.png", "split": s} for i, s in enumerate(["train", "validation", "test"])]
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "manifest.jsonl"


def test_a_manifest_above_holds_out_files_under_the_folder_however_its_paths_are_written(tmp_path: Path) -> None:
    for prefix in ("", "./", "images/../"):
        manifest = _corpus(tmp_path / f"c{len(prefix)}", prefix)
        assert folder_manifest(manifest.parent / "images") == manifest, prefix
    other = tmp_path / "c0" / "imagesX"  # a name that only starts like the held-out folder
    other.mkdir()
    assert folder_manifest(other) is None


def test_a_train_state_a_killed_swap_left_as_its_backup_counts(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    assert not holds_train_state(out)
    backup = out / (sibling_prefix(out / "train-state") + ".old-0123abcd")
    backup.mkdir()
    (backup / "config.json").write_text("{}")
    assert holds_train_state(out)


def test_a_corpus_whose_build_has_not_finished_is_refused_quoting_the_build_command(tmp_path: Path) -> None:
    """benchmarks/fetch_corpus.py keeps build.unfinished.jsonl beside the manifest while it builds (and after a
    kill), its command line first: a trainer or cache builder reading the manifest then refuses it in one line
    that quotes that command instead of using half."""
    import pytest

    from mmtok.core.corpus_manifest import split_files
    from mmtok.core.errors import CorpusError
    from mmtok.core.manifest import UNFINISHED_NAME

    manifest = _corpus(tmp_path, "")
    assert [p.name for p in split_files(manifest, "test", suffixes={".png"}, media="image")] == ["2.png"]
    command = f"python benchmarks/fetch_corpus.py image --out {tmp_path} --packages-dir debs"
    (tmp_path / UNFINISHED_NAME).write_text(command + '\n{"listed": []}\n')
    with pytest.raises(CorpusError) as refused:
        split_files(manifest, "test", suffixes={".png"}, media="image")
    message = str(refused.value)
    assert "\n" not in message and "is running or was stopped" in message
    assert f"once it is not running, rerun its command `{command}` to finish it, or delete " in message
    (tmp_path / UNFINISHED_NAME).write_text('{"listed": []}\n')  # no command line: a general hint
    with pytest.raises(CorpusError, match=r"rerun benchmarks/fetch_corpus\.py as it was run to finish it"):
        split_files(manifest, "test", suffixes={".png"}, media="image")


def _benchmark(name: str):
    import importlib
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    return importlib.import_module(name)


def test_the_audio_benchmarks_read_a_manifest_with_the_one_reader(tmp_path: Path) -> None:
    """audio_quality.py and audio_levels.py (audio_clips.read_manifest) refuse, in one line, what the trainers
    refuse: a corpus whose build has not finished and a file listed in two splits."""
    import pytest

    from mmtok.core.manifest import UNFINISHED_NAME

    read_manifest = _benchmark("audio_clips").read_manifest
    manifest = _corpus(tmp_path, "")
    assert [r["split"] for r in read_manifest(manifest)] == ["train", "validation", "test"]
    (tmp_path / UNFINISHED_NAME).write_text("")
    with pytest.raises(SystemExit, match=r"^--manifest .*manifest\.jsonl: the corpus build that writes it is running"):
        read_manifest(manifest)
    (tmp_path / UNFINISHED_NAME).unlink()
    manifest.write_text('{"path": "a.wav", "split": "train"}\n{"path": "./a.wav", "split": "test"}\n')
    with pytest.raises(SystemExit, match=r"manifest\.jsonl:2: \./a\.wav is listed in test here and in train at line 1"):
        read_manifest(manifest)


def test_the_image_benchmark_refuses_an_unfinished_corpus_in_one_line(tmp_path: Path) -> None:
    import argparse

    import pytest

    from mmtok.core.manifest import UNFINISHED_NAME

    bench = _benchmark("image")
    manifest = _corpus(tmp_path, "")
    (tmp_path / UNFINISHED_NAME).write_text("")
    args = argparse.Namespace(manifest=manifest, split="validation", data=None)
    with pytest.raises(SystemExit, match=r"^\S*manifest\.jsonl: the corpus build that writes it is running or was "):
        bench.select_files(args)
