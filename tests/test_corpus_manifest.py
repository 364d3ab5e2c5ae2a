"""The trainers' --data manifest rules (mmtok.core.corpus_manifest): which folders hold held-out files."""

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


def test_a_corpus_whose_build_has_not_finished_is_refused(tmp_path: Path) -> None:
    """benchmarks/fetch_corpus.py keeps build.unfinished.jsonl beside the manifest while it builds (and after a
    kill): a trainer or cache builder reading the manifest then refuses it in one line instead of using half."""
    import pytest

    from mmtok.core.corpus_manifest import split_files
    from mmtok.core.errors import CorpusError
    from mmtok.core.manifest import UNFINISHED_NAME

    manifest = _corpus(tmp_path, "")
    assert [p.name for p in split_files(manifest, "test", suffixes={".png"}, media="image")] == ["2.png"]
    (tmp_path / UNFINISHED_NAME).write_text("")
    with pytest.raises(CorpusError, match="the corpus build that writes it has not finished"):
        split_files(manifest, "test", suffixes={".png"}, media="image")
