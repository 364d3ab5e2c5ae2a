"""What a shard folder's refusals say: a --part into a folder of the other layout names what is there and where
the new part would go; a tokenize run that has not finished is said so, with the way to resume it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmtok.cli import main
from mmtok.core.errors import CorpusError
from mmtok.data.shards import MANIFEST, check_one_layout, open_shards


def test_the_whole_corpus_into_a_folder_of_parts(tmp_path: Path) -> None:
    (tmp_path / "part-00001-of-00002").mkdir()
    with pytest.raises(CorpusError) as said:
        check_one_layout(tmp_path, (0, 1))
    assert str(said.value).startswith(f"{tmp_path} holds part folders (part-00001-of-00002); the whole corpus "
                                      "(--part 0/1) would go beside them")
    assert "holds a whole corpus" not in str(said.value)


def test_a_part_into_a_folder_of_the_whole_corpus(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text("{}")
    with pytest.raises(CorpusError, match=r"holds a whole corpus \(manifest.json at its top\); part 1/2 would go "
                                          "beside it"):
        check_one_layout(tmp_path, (1, 2))


def test_both_layouts_at_once_are_named_as_both(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text("{}")
    (tmp_path / "part-00000-of-00002").mkdir()
    with pytest.raises(CorpusError, match=r"holds a whole corpus .* and part folders too"):
        check_one_layout(tmp_path)


def test_an_unfinished_tokenize_run_is_said_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("docs.jsonl").write_text('{"segments": [{"text": "a short document"}]}\n' * 5)
    assert main(["tokenize", "docs.jsonl", "--out", "sh", "--no-progress"]) == 0
    (tmp_path / "sh" / MANIFEST).unlink()  # as a run killed before it wrote its manifest leaves the folder
    with pytest.raises(CorpusError, match=r"holds the shards of a .mmtok tokenize. that has not finished .*run the "
                                          "same command again to resume it"):
        open_shards(tmp_path / "sh")
    capsys.readouterr()
    assert main(["export", "sh", "--to", "parquet", "--out", "out.parquet"]) != 0
    assert "has not finished" in capsys.readouterr().err


def test_a_tokenize_run_killed_before_its_first_shard_is_said_unfinished(tmp_path: Path) -> None:
    folder = tmp_path / "sh"
    folder.mkdir()
    (folder / ".lock").write_text("")  # what a run killed before its first shard leaves
    with pytest.raises(CorpusError, match="has not finished"):
        open_shards(folder)
