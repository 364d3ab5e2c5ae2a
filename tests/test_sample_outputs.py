"""What ``mmtok sample`` writes: a user's own file is never replaced, its own earlier output is (a PNG under any
name, a WAV, FLAC, AIFF, CAF or RF64: the formats that keep its mark), every write is atomic, and ``--seed`` takes
the range every other command's ``--seed`` takes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image, PngImagePlugin

from mmtok.cli import main
from mmtok.core.checkpoint import save_checkpoint
from mmtok.core.errors import UsageError
from mmtok.data.media_files import marked
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver
from mmtok.lm import sample
from mmtok.lm.model import ModelConfig, Transformer

MARK = "mmtok sample"  # what sample writes in the PNG, WAV, FLAC, AIFF, CAF and RF64 files it makes
SMALL = {"image": ["--image-grid", "2x2"], "audio": ["--audio-tokens", "1,4"]}  # a few tokens: quick to sample


def _make_run(folder: Path, kind: str) -> Path:
    """A run folder holding one checkpoint of an untrained tiny model over the shipped ``kind`` tokenizer's codes."""
    spec = TokenizerSpec(**{kind: kind})
    vocab = build_interleaver(spec).vocab
    torch.manual_seed(0)
    cfg = replace(ModelConfig.preset("tiny", vocab_size=vocab.size), max_seq_len=64)
    save_checkpoint(folder / "ckpt-0000001", kind=Transformer.KIND, tensors=Transformer(cfg).state_dict(),
                    config={"model": asdict(cfg), "vocab": vocab.to_dict(), "tokenizers": asdict(spec)})
    return folder


@pytest.fixture(scope="module")
def run_of(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The run of each medium (``"image"``, ``"audio"``), made the first time it is asked for."""
    made: dict[str, Path] = {}

    def run(kind: str) -> Path:
        if kind not in made:
            made[kind] = _make_run(tmp_path_factory.mktemp(f"sample-{kind}") / "run", kind)
        return made[kind]

    return run


def _users_file(path: Path) -> bytes:
    """A picture or sound of the user's, in its extension's format (a PNG without one)."""
    if path.suffix in ("", ".png"):
        Image.new("RGB", (8, 8), (200, 30, 30)).save(path, format="PNG")
    else:
        with sf.SoundFile(path, "w", 16000, 1, "PCM_16", format=path.suffix[1:].upper()) as sound:
            sound.software = "another program"
            sound.write(np.zeros(1600, dtype=np.float32))
    return path.read_bytes()


def _sample(run: Path, kind: str, out: Path, seed: str = "0") -> int:
    return main(["sample", "--run", str(run), "--prompt", "a", f"--{kind}-out", str(out), "--seed", seed,
                 *SMALL[kind]])


USERS = [("image", "mine.png"), ("image", "mine"), ("audio", "mine.wav"), ("audio", "mine.flac")]


@pytest.mark.parametrize(("kind", "name"), USERS)
def test_a_users_file_is_refused_before_the_run_is_read(tmp_path: Path, kind: str, name: str) -> None:
    mine = tmp_path / name
    before = _users_file(mine)
    with pytest.raises(UsageError, match=rf"--{kind}-out .*{name} is there and was not written by 'mmtok sample'"):
        sample.sample_run(tmp_path / "no-run", "a", **{f"{kind}_out": mine})
    assert mine.read_bytes() == before


@pytest.mark.parametrize(("kind", "name"), USERS)
def test_mmtok_sample_leaves_a_users_file_alone(run_of: Callable[[str], Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], kind: str, name: str) -> None:
    mine = tmp_path / name
    before = _users_file(mine)
    assert _sample(run_of(kind), kind, mine) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"mmtok: error: --{kind}-out {mine} is there and was not written"), err
    assert mine.read_bytes() == before


@pytest.mark.parametrize(("kind", "name"), [("image", "a.png"), ("image", "a"), ("image", "a.apng"),
                                           ("audio", "a.wav"), ("audio", "a.flac"), ("audio", "a.aiff"),
                                           ("audio", "a.caf"), ("audio", "a.rf64")])
def test_its_own_earlier_output_is_replaced(run_of: Callable[[str], Path], tmp_path: Path, kind: str,
                                            name: str) -> None:
    out = tmp_path / name
    assert _sample(run_of(kind), kind, out, seed="1") == 0
    assert marked(out, MARK)
    assert _sample(run_of(kind), kind, out, seed="4294967295") == 0  # the largest seed
    assert marked(out, MARK)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp file left beside it


@pytest.mark.parametrize(("kind", "name"), [("image", "a.jpg"), ("audio", "a.au"), ("audio", "a.w64")])
def test_a_format_that_keeps_no_mark_is_written_once_then_refused(run_of: Callable[[str], Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str], kind: str,
                                                                  name: str) -> None:
    out = tmp_path / name
    assert _sample(run_of(kind), kind, out, seed="1") == 0
    written = out.read_bytes()
    capsys.readouterr()
    assert _sample(run_of(kind), kind, out, seed="2") == 2
    assert f"--{kind}-out {out} is there and keeps no mark of 'mmtok sample'" in capsys.readouterr().err
    assert out.read_bytes() == written


def _earlier_output(path: Path) -> bytes:
    """A file as ``mmtok sample`` writes it: a PNG, WAV or FLAC carrying its mark."""
    if path.suffix == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", MARK)
        Image.new("RGB", (8, 8), (10, 200, 10)).save(path, pnginfo=info)
    else:
        with sf.SoundFile(path, "w", 16000, 1, "PCM_16") as wav:
            wav.software = MARK
            wav.write(np.zeros(1600, dtype=np.float32))
    return path.read_bytes()


def _broken_png(im: Image.Image, fp, filename) -> None:  # type: ignore[no-untyped-def]
    if im.size == (1, 1):  # the --image-out check's probe
        return PngImagePlugin._save(im, fp, filename)
    fp.write(b"\x89PNG half a picture")
    raise OSError("No space left on device")


def _broken_sound(self: sf.SoundFile, data: np.ndarray) -> None:
    raise OSError("No space left on device")


@pytest.mark.parametrize(("kind", "name"), [("image", "a.png"), ("audio", "a.wav"), ("audio", "a.flac")])
def test_a_write_that_fails_leaves_the_earlier_file_whole(run_of: Callable[[str], Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch, kind: str,
                                                          name: str) -> None:
    out = tmp_path / name
    before = _earlier_output(out)
    monkeypatch.setitem(Image.SAVE, "PNG", _broken_png)
    monkeypatch.setattr(sf.SoundFile, "write", _broken_sound)
    with pytest.raises(OSError, match="No space left"):
        sample.sample_run(run_of(kind), "a", **{f"{kind}_out": out}, seed=0, image_grid=(2, 2), audio_tokens=(1, 4))
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("seed", ["-1", "4294967296", "18446744073709551616", "x"])
def test_a_seed_out_of_range_is_refused_by_argparse(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    seed: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        sample.main(["--run", str(tmp_path / "no-run"), "--seed", seed])
    assert exit_.value.code == 2
    assert "argument --seed:" in capsys.readouterr().err

