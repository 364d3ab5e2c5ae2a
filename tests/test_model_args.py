"""``--device`` and the MODEL arguments: one check of the device, one way to name a tokenizer in every command."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import mmtok
from mmtok.cli import main
from mmtok.core.device import pick_device
from mmtok.core.errors import CheckpointError, CorpusError, DeviceError
from mmtok.data.codes import load_codes
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver
from mmtok.pretrained import load_tokenizer
from mmtok.vq.quantizer import VectorQuantizer, VQConfig

TINY_VIDEO = '''
import torch

from mmtok.image.tokenizer import ImageTokenizer, ImageTokenizerConfig
from mmtok.video.tokenizer import VideoTokenizer
from mmtok.vq.quantizer import VQConfig


def make(fps=2.0):
    torch.manual_seed(0)
    cfg = ImageTokenizerConfig(image_size=64, enc_channels=(8, 16, 32), enc_blocks=1, latent_dim=8,
                               dec_channels=(32, 16, 8), dec_blocks=1, vq=VQConfig(dim=8, codebook_size=64))
    return VideoTokenizer(ImageTokenizer(cfg), fps=fps).eval()


def one_fps():
    return make(fps=1.0)


class Tones:
    codebook_size = 16
    sample_rate = 16000
    tokens_per_second = 40
    fingerprint = "tones-v1"

    def encode(self, x, sample_rate=None):
        return torch.zeros(4, dtype=torch.long)

    def decode(self, codes, vocoder=None):
        return torch.zeros(codes.numel() * 400)


def tones():
    return Tones()
'''


@pytest.mark.parametrize("device", ["mps", "meta", "xpu", "meta:0"])
def test_a_device_of_another_type_than_cpu_or_cuda_is_refused_in_one_line(device: str) -> None:
    with pytest.raises(DeviceError, match=rf"^device '{device}' is not one mmtok runs on: give cpu, cuda or cuda:N"):
        pick_device(device)
    with pytest.raises(DeviceError, match="is not one mmtok runs on"):
        pick_device(torch.device(device))
    assert pick_device("cpu") == torch.device("cpu")


def test_load_refuses_a_device_mmtok_does_not_run_on_before_reading(tmp_path: Path) -> None:
    folder = mmtok.save(VectorQuantizer(VQConfig(dim=4, codebook_size=8)), tmp_path / "vq")
    with pytest.raises(DeviceError, match="'meta' is not one mmtok runs on"):
        mmtok.load(folder, device="meta")


def test_the_demo_refuses_mps_before_its_folder_is_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dm"
    with pytest.raises(SystemExit) as e:  # refused with the flags, as a device torch does not know
        main(["demo", "--fast", "--device", "mps", "--out", str(out)])
    assert e.value.code == 2 and capsys.readouterr().err == (
        "mmtok: error: demo: --device 'mps' is not one mmtok runs on (cpu, cuda, cuda:1, ...); see 'mmtok demo --help'\n")
    assert not out.exists()


@pytest.fixture
def tiny_vt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``tinyvt:make`` in the working folder (``tmp_path``): a seeded tiny image tokenizer at 2 frames per second."""
    (tmp_path / "tinyvt.py").write_text(TINY_VIDEO)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])  # a console script's
    yield "tinyvt:make"
    sys.modules.pop("tinyvt", None)


def _clip(path: Path) -> Path:
    pytest.importorskip("av")
    from mmtok.video.write import write_video

    g = torch.Generator().manual_seed(0)
    frames = torch.rand(1, 3, 1, 1, generator=g).expand(4, 3, 64, 64).clone()  # 2 s at 2 fps, no sound
    frames[2:] = 1 - frames[2:]
    with path.open("wb") as f:
        write_video(f, frames, fps=2.0)
    return path


def test_a_module_callable_video_tokenizer_encodes_and_decodes_from_the_command_line(
        tiny_vt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = _clip(tmp_path / "pan.mp4")
    sound = ["--audio", "tinyvt:tones"]  # the clip has none: a light stand-in for the shipped audio tokenizer
    assert main(["encode", str(clip), "--out", "vc", "--video", tiny_vt, *sound]) == 0
    codes, meta, audio_codes = load_codes(tmp_path / "vc" / "pan.mp4.npz")
    tok = load_tokenizer(tiny_vt, kind="video")
    assert torch.equal(torch.from_numpy(codes), tok.encode(clip)) and audio_codes is None
    assert meta["model"] == tiny_vt and meta["fingerprint"] == tok.fingerprint and meta["fps"] == 2.0
    assert main(["decode", "vc/pan.mp4.npz", "--out", "back", "--video", tiny_vt, *sound]) == 0
    assert f"{codes.shape[0]} frames at 2 fps" in capsys.readouterr().out
    assert (tmp_path / "back" / "pan.mp4.decoded.mp4").is_file()
    other = load_tokenizer("tinyvt:one_fps", kind="video")  # the same weights at another frame rate
    assert main(["decode", "vc/pan.mp4.npz", "--out", "back2", "--video", "tinyvt:one_fps", *sound]) == 2
    assert (f"made by {tiny_vt} (fingerprint {tok.fingerprint}), but the video model given is tinyvt:one_fps "
            f"(fingerprint {other.fingerprint})") in capsys.readouterr().err
    assert not (tmp_path / "back2" / "pan.mp4.decoded.mp4").exists()


def test_eval_takes_a_module_callable_and_refuses_one_of_another_kind(
        tiny_vt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = _clip(tmp_path / "pan.mp4")
    assert main(["eval", str(clip), "--video", tiny_vt, "--audio", "tinyvt:tones", "--json"]) == 0
    assert '"kind": "video", "model": "tinyvt:make"' in capsys.readouterr().out
    assert main(["eval", str(clip), "--image", tiny_vt]) == 2
    assert capsys.readouterr().err == (f"mmtok: error: --image {tiny_vt}: tokenizer '{tiny_vt}' gives a VideoTokenizer "
                                       "of kind 'video', not 'image'\n")


def test_one_resolver_for_every_command(tiny_vt: str) -> None:
    assert type(build_interleaver(TokenizerSpec(video=tiny_vt)).video).__name__ == "VideoTokenizer"
    with pytest.raises(CorpusError, match="gives a VideoTokenizer of kind 'video', not 'image'"):
        build_interleaver(TokenizerSpec(image=tiny_vt))
    with pytest.raises(CheckpointError, match=r"cannot build tokenizer 'tinyvt:nope': module 'tinyvt' has no"):
        load_tokenizer("tinyvt:nope", kind="video")
    assert sys.path == [p for p in sys.path if p != str(Path.cwd())]  # the working folder is not left on it
