"""The command line: output piped into a reader that goes away (``| head``) ends the run quietly with 141, not one
failure per file left; ``mmtok context`` refuses a --downsample its preset does not let change the count and names
the frame's width and height in its JSON; ``mmtok tokenize`` refuses a --ray-address for the local engine."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import mmtok
from mmtok.cli import main
from mmtok.context import planner
from mmtok.context.shipped import plan
from mmtok.core.command_output import PIPE_CLOSED, drop_unread_output
from mmtok.data.media_files import run_each


class _ReaderGone:
    """A stdout whose reader goes away after ``lines`` lines: every write after them is a broken pipe."""

    def __init__(self, lines: int) -> None:
        self.left = lines
        self.text = ""

    def write(self, s: str) -> int:
        if self.left <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.text += s
        self.left -= s.count("\n")
        return len(s)

    def flush(self) -> None:
        if self.left < 0:
            raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An untrained image tokenizer of 32×32 pictures, saved: quick to encode with."""
    from mmtok.image.config import ImageTokenizerConfig
    from mmtok.image.tokenizer import ImageTokenizer

    torch.manual_seed(0)
    return str(mmtok.save(ImageTokenizer(ImageTokenizerConfig(image_size=32)).eval(),
                          tmp_path_factory.mktemp("models") / "small"))


def _pictures(folder: Path, n: int = 6) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (40, 36), (40 * i, 30, 200 - 20 * i)).save(folder / f"i{i}.png")
    return folder


# --------------------------------------------------------------------------- 1: a closed pipe


def test_run_each_stops_at_a_closed_stdout_and_blames_no_file(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    pairs = [(tmp_path / f"f{i}.png", tmp_path) for i in range(6)]
    done: list[str] = []

    def one(path: Path, out: Path) -> str:
        done.append(path.name)
        return f"{path.name} done"

    monkeypatch.setattr(sys, "stdout", _ReaderGone(1))
    with pytest.raises(BrokenPipeError):
        run_each(pairs, one, progress=False)
    assert done == ["f0.png", "f1.png"]  # the second line could not be printed: no file after it is read
    err = capsys.readouterr().err
    assert "failed" not in err and "Broken pipe" not in err


def test_a_broken_pipe_inside_one_file_is_that_files_failure(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    def one(path: Path, out: Path) -> str:
        if path.name == "b.png":
            raise BrokenPipeError(32, "Broken pipe")
        return f"{path.name} done"

    pairs = [(tmp_path / name, tmp_path) for name in ("a.png", "b.png", "c.png")]
    assert run_each(pairs, one, progress=False) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["a.png done", "c.png done"]
    assert "b.png: [Errno 32] Broken pipe" in captured.err and "1 of 3 files failed" in captured.err


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("command", [["encode", "--out", "{out}"], ["eval", "--json"]])
def test_encode_and_eval_stop_quietly_when_their_reader_goes_away(
        command: list[str], small_image: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    many = _pictures(tmp_path / "many")
    out = tmp_path / "codes"
    monkeypatch.setattr(sys, "stdout", _ReaderGone(1))
    args = [arg.format(out=out) for arg in command]
    assert main([args[0], str(many), *args[1:], "--image", small_image]) == PIPE_CLOSED == 141
    assert capsys.readouterr().err == ""
    if args[0] == "encode":  # the file whose line could not be printed was written; none after it
        assert sorted(p.name for p in out.iterdir()) == ["i0.png.npz", "i1.png.npz"]


def test_what_stdout_still_buffers_is_dropped_once_its_reader_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python flushes stdout as it exits: after a broken pipe that flush must neither fail again (a traceback line,
    and status 120) nor reach the pipe."""
    read, write = os.pipe()
    stdout = os.fdopen(write, "w", buffering=1 << 16)
    try:
        os.close(read)  # the reader is gone
        stdout.write("a line still buffered\n")
        with pytest.raises(BrokenPipeError):
            os.write(write, b"x")
        monkeypatch.setattr(sys, "stdout", stdout)
        drop_unread_output()
        stdout.flush()  # to the null device now
    finally:
        stdout.close()


# --------------------------------------------------------------------------- 2: --downsample


def test_downsample_is_refused_where_the_preset_fixes_the_count_or_the_patch(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"downsample \(--downsample\) does not apply to preset 'gemini': .*258"):
        plan(600, preset="gemini", downsample=8)
    with pytest.raises(ValueError, match=r"does not apply to preset 'mmtok': its image tokenizer's model fixes it "
                                         r"at 16 pixels per token side"):
        plan(600, downsample=8)
    own = planner.mmtok_preset(image_size=64, downsample=16)
    with pytest.raises(ValueError, match="downsample"):
        planner.plan(1, preset=own, downsample=8)
    for preset in ("gemini", "mmtok"):
        assert main(["context", "600", "--preset", preset, "--downsample", "8", "--json"]) == 2
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert not captured.out and err.count("\n") == 0 and "--downsample" in err and repr(preset) in err
    assert plan(1, preset="lwm", downsample=8).grid == (32, 32)  # a published grid's patch stays a knob
    assert plan(1, preset="custom", resolution=64, downsample=8).grid == (8, 8)
    assert plan(1, preset="mmtok").grid == (16, 16)  # left out: the model's


# --------------------------------------------------------------------------- 3: width and height in the JSON


def test_context_json_names_the_width_and_height(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["context", "60", "--preset", "custom", "--resolution", "640x360", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["width"], d["height"]) == (640, 360)
    assert d["resolution"] == [360, 640] and d["grid"] == [23, 40]  # [height, width], as before
    assert list(d)[list(d).index("resolution"):][:3] == ["resolution", "width", "height"]
    assert main(["context", "60", "--preset", "gemini", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["resolution"] is None and d["width"] is None and d["height"] is None


# --------------------------------------------------------------------------- 4: --ray-address


def test_tokenize_refuses_a_ray_address_for_the_local_engine(capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(json.dumps({"segments": [{"text": "hello"}]}) + "\n")
    out = tmp_path / "shards"
    assert main(["tokenize", str(corpus), "--out", str(out), "--ray-address", "auto", "--no-progress"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and "--ray-address auto" in err and "--engine ray" in err, err
    assert not captured.out and not out.exists()
