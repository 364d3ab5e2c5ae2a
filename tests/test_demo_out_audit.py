"""An earlier demo's folder given again as ``--out``: only the paths that demo wrote are removed (its mark records
them after each step and at the end); a user's file anywhere in it, inside its subfolders too, is refused in one
line and nothing is removed. Folder layouts are made by hand; one slow test runs the fast demo itself."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mmtok.cli import main
from mmtok.core.errors import UsageError
from mmtok.demo.run import MARK, claim_out, record_paths, run_demo
from mmtok.demo.state import Demo

OLD_MARK = "this folder is mmtok demo's output: a new demo run rewrites it\n"  # what older demos wrote


def _tree(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its contents (a folder: ``/``)."""
    return {str(p.relative_to(folder)): "/" if p.is_dir() else p.read_text(errors="replace")
            for p in sorted(folder.rglob("*"))}


def _write(out: Path, *paths: str) -> None:
    for rel in paths:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(f"the demo's {rel}")


DEMO_FILES = ("index.html", "summary.json", "images/coffee.jpg.png", "images/coffee.jpg.tokens.png",
              "audio/speech_en.wav.wav", "corpus/img/00000.png", "shards/shard-00000.bin", "run/log.jsonl",
              "run/ckpt-0000090/model.safetensors", "samples/red-square-0.png", "context/cost_vs_length.png")


def _earlier_demo(tmp_path: Path, *, complete: bool = True) -> Path:
    """A folder as a demo leaves it: its files, recorded in its mark (``complete``: the run ended)."""
    out = claim_out(tmp_path / "demo")
    _write(out, *DEMO_FILES)
    record_paths(out, complete=complete)
    return out


def test_a_users_files_inside_an_earlier_demos_subfolders_are_refused_and_kept(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = _earlier_demo(tmp_path)
    (out / "run" / "NOTES.md").write_text("notes")
    (out / "images" / "my-photo.jpg").write_bytes(b"a photo")
    before = _tree(out)
    assert main(["demo", "--fast", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "holds files the demo did not write (images/my-photo.jpg, run/NOTES.md, ...): 2 in all" in err
    assert "nothing was removed or written" in err and _tree(out) == before
    (out / "run" / "NOTES.md").unlink()
    (out / "images" / "my-photo.jpg").unlink()
    assert claim_out(out) == out and [p.name for p in out.iterdir()] == [MARK]
    assert json.loads((out / MARK).read_text())["paths"] == []


def test_a_complete_record_takes_only_its_paths_and_a_killed_runs_takes_the_demos_names(tmp_path: Path) -> None:
    """After a run that ended, a file of the demo's kind it did not record (a user's picture in images/) is the
    user's; after a run killed part-way it may be the demo's last write, and only names the demo writes are."""
    out = _earlier_demo(tmp_path)
    (out / "images" / "holiday.png").write_text("a user's picture")
    (out / "keep").mkdir()
    before = _tree(out)
    with pytest.raises(UsageError, match=r"\(images/holiday.png, keep, \.\.\.\): 2 in all"):
        claim_out(out)
    assert _tree(out) == before

    killed = _earlier_demo(tmp_path / "killed", complete=False)
    _write(killed, "samples/blue-ring-0.png", "run/.ckpt-0000099.tmp-41-0badf00d/config.json")  # after the record
    (killed / "samples" / "my-notes.txt").write_text("mine")
    before = _tree(killed)
    with pytest.raises(UsageError, match=r"\(samples/my-notes.txt, \.\.\.\): 1 in all"):
        claim_out(killed)
    assert _tree(killed) == before
    (killed / "samples" / "my-notes.txt").unlink()
    assert claim_out(killed) == killed and [p.name for p in killed.iterdir()] == [MARK]


@pytest.mark.parametrize("mark", ["words", "summary only"])
def test_a_folder_an_older_demo_marked_without_a_record(tmp_path: Path, mark: str) -> None:
    """No record of the paths: what the demo writes (temporary names a killed writer leaves included) is taken,
    a name the demo never writes is refused, wherever it is; a link is removed, never followed."""
    out = tmp_path / "old"
    _write(out, *DEMO_FILES, "shards/.shard-00001.bin.tmp-77", "run/.lock", "figures.json")
    if mark == "words":
        (out / MARK).write_text(OLD_MARK)
    else:
        (out / "summary.json").write_text(json.dumps({"page": "index.html", "steps": {}, "figures": {}}))
    mine = tmp_path / "mine.png"
    mine.write_text("the user's picture, linked in")
    (out / "images" / "link.png").symlink_to(mine)
    for foreign, named in (("images/my-photo.jpg", "images/my-photo.jpg"), ("run/NOTES.md", "run/NOTES.md"),
                           ("images/album/a.png", "images/album"), ("notes.txt", "notes.txt")):
        _write(out, foreign)
        before = _tree(out)
        with pytest.raises(UsageError, match=rf"\({named}, \.\.\.\): 1 in all"):
            claim_out(out)
        assert _tree(out) == before
        (out / foreign).unlink()
        if (out / foreign).parent.name == "album":
            (out / foreign).parent.rmdir()
    assert claim_out(out) == out and [p.name for p in out.iterdir()] == [MARK]
    assert mine.read_text() == "the user's picture, linked in"


def test_a_folder_that_is_no_demos_is_refused_whole(tmp_path: Path) -> None:
    out = tmp_path / "proj"
    _write(out, *DEMO_FILES)  # the demo's names, but no mark and no demo's summary.json
    (out / "summary.json").write_text("{}")
    with pytest.raises(UsageError, match=r"\(audio, context, corpus, images, \.\.\.\): 9 in all"):
        claim_out(out)


@pytest.fixture
def stub_demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """run_demo with stand-ins for the shipped tokenizers; the test sets the steps."""
    import mmtok.pretrained

    monkeypatch.setattr(mmtok.pretrained, "load", lambda name, device=None: SimpleNamespace())
    monkeypatch.setitem(sys.modules, "av", None)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_the_mark_records_each_step_and_a_run_killed_or_stopped_part_way_is_reclaimed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_demo: None) -> None:
    from mmtok.demo import run

    out = tmp_path / "demo"
    at_kill: dict[str, str] = {}

    def first(d: Demo) -> str:
        _write(d.out, "images/a.png.png")
        return "one"

    def second(d: Demo) -> str:
        _write(d.out, "samples/low-0.wav")
        at_kill["mark"] = (d.out / MARK).read_text()  # what a kill here leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "_steps", lambda: [("one", first), ("two", second)])
    with pytest.raises(KeyboardInterrupt):
        run_demo(out, device="cpu", progress=False, log=sys.stderr)
    record = json.loads((out / MARK).read_text())  # stopped: all it wrote is recorded
    assert record["complete"] is True and {"images/a.png.png", "samples/low-0.wav", "samples/"} <= set(record["paths"])
    killed = json.loads(at_kill["mark"])  # the record of the first step
    assert killed["complete"] is False and "images/a.png.png" in killed["paths"]
    assert "samples/low-0.wav" not in killed["paths"]
    (out / MARK).write_text(at_kill["mark"])  # as if killed in the second step
    assert claim_out(out) == out and [p.name for p in out.iterdir()] == [MARK]

    monkeypatch.setattr(run, "_steps", lambda: [("one", first)])
    run_demo(out, device="cpu", progress=False, log=sys.stderr)
    record = json.loads((out / MARK).read_text())
    on_disk = sorted(str(p.relative_to(out)) + ("/" if p.is_dir() else "") for p in out.rglob("*") if p.name != MARK)
    assert record["complete"] is True and sorted(record["paths"]) == on_disk
    assert {"index.html", "summary.json", "images/a.png.png"} <= set(on_disk)


@pytest.mark.slow
def test_a_fast_demos_folder_is_recorded_whole_and_reclaimed(tmp_path: Path) -> None:
    """The fast demo, once: its mark lists every path it wrote; a user's files among them are refused; the
    folder is taken again by its record, and also read as an older demo's (no record) by the demo's names."""
    out = tmp_path / "demo"
    run_demo(out, fast=True, progress=False, device="cpu", log=sys.stderr)
    record = json.loads((out / MARK).read_text())
    on_disk = sorted(str(p.relative_to(out)) + ("/" if p.is_dir() else "") for p in out.rglob("*") if p.name != MARK)
    assert record["complete"] is True and sorted(record["paths"]) == on_disk
    (out / "run" / "NOTES.md").write_text("notes")
    (out / "images" / "my-photo.jpg").write_bytes(b"a photo")
    before = _tree(out)
    with pytest.raises(UsageError, match=r"\(images/my-photo.jpg, run/NOTES.md, \.\.\.\): 2 in all"):
        claim_out(out)
    assert _tree(out) == before
    (out / "run" / "NOTES.md").unlink()
    (out / "images" / "my-photo.jpg").unlink()
    (out / MARK).write_text(OLD_MARK)  # every name the demo writes is one LAYOUT knows
    assert claim_out(out) == out and [p.name for p in out.iterdir()] == [MARK]
