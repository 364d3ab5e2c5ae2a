"""Inputs at the public entry points that used to give a wrong result or an unclear error: the value
scale of 16-bit, 32-bit and float images, premultiplied ``La`` images, one array given to
``encode_stream``/``encode_iter``, a list of numbers given to ``encode``, a stray file named like a
shipped checkpoint, and a video file against its own frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmtok
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.checkpoint_names import models_dir, resolve_checkpoint
from mmtok.core.errors import AudioError, CheckpointError, ImageError
from mmtok.image.io import load_image
from mmtok.vq.quantizer import VQConfig

torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
DARK = (np.arange(32 * 32).reshape(32, 32) % 256).astype(np.uint16)  # 16-bit values 0..255: a dark picture


# --------------------------------------------------------------------------- image value scale


def _pgm(path: Path, values: np.ndarray, maxval: int) -> Path:
    h, w = values.shape
    path.write_bytes(f"P5\n{w} {h}\n{maxval}\n".encode() + values.astype(">u2").tobytes())
    return path


def test_a_dark_16_bit_pgm_stays_dark_like_the_same_tiff(tmp_path: Path) -> None:
    pgm = _pgm(tmp_path / "dark.pgm", DARK, 65535)
    assert Image.open(pgm).mode == "I"  # Pillow's mode for it: 32-bit integers
    Image.fromarray(DARK).save(tmp_path / "dark.tif")  # mode I;16
    want = load_image(DARK)  # a uint16 array: / 65535
    assert float(want.max()) == pytest.approx(255 / 65535)
    assert torch.equal(load_image(pgm), want) and torch.equal(load_image(tmp_path / "dark.tif"), want)
    assert float(mmtok.load("image").preprocess(pgm).max()) < 0.01


def test_mode_i_is_read_on_the_16_bit_scale_whatever_its_range() -> None:
    for top in (1, 200, 60000):
        img = Image.fromarray(np.full((16, 16), top, dtype=np.int32), mode="I")
        assert float(load_image(img)[0, 0, 0]) == pytest.approx(top / 65535, abs=1e-7), top


@pytest.mark.parametrize(("low", "high"), [(0, 70000), (-5, 100)])
def test_mode_i_outside_the_16_bit_scale_is_refused(tmp_path: Path, low: int, high: int) -> None:
    a = np.full((16, 16), low, dtype=np.int32)
    a[0, 0] = high
    Image.fromarray(a, mode="I").save(tmp_path / "wide.tif")
    with pytest.raises(ImageError, match=rf"wide\.tif.*16-bit scale 0\.\.65535, got range \[{low}, {high}\]"):
        load_image(tmp_path / "wide.tif")


def test_a_float_tiff_within_the_tolerance_reads_as_the_same_array(tmp_path: Path) -> None:
    a = np.linspace(0.0, 1.0005, 32 * 32, dtype=np.float32).reshape(32, 32)
    Image.fromarray(a, mode="F").save(tmp_path / "f.tif")
    got = load_image(tmp_path / "f.tif")
    assert float(got.max()) == 1.0
    assert torch.allclose(got, load_image(a), atol=1e-6)


@pytest.mark.parametrize("top", [300.0, 70000.0])
def test_a_float_tiff_past_both_float_scales_is_refused(tmp_path: Path, top: float) -> None:
    a = np.zeros((16, 16), np.float32)
    a[0, 0] = top
    Image.fromarray(a, mode="F").save(tmp_path / "hdr.tif")
    with pytest.raises(ImageError, match=r"hdr\.tif.*mode F pixels must lie in \[0, 1\].*got range \[0, "):
        load_image(tmp_path / "hdr.tif")


def test_a_premultiplied_la_image_is_unpremultiplied_and_composited() -> None:
    la = Image.new("La", (32, 32), (100, 128))
    got = load_image(la)
    assert torch.equal(got, load_image(la.convert("LA")))
    gray, alpha = round(100 * 255 / 128) / 255, 128 / 255  # un-premultiplied, then on white
    assert float(got[0, 0, 0]) == pytest.approx(gray * alpha + 1 - alpha, abs=1e-6)


# --------------------------------------------------------------------------- audio inputs


@pytest.fixture(scope="module")
def tiny_audio() -> AudioTokenizer:
    cfg = AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=64), encoder_channels=32, decoder_channels=32)
    return AudioTokenizer(cfg).eval()


WAVE = torch.sin(torch.arange(4000) / 7.0) * 0.3


@pytest.mark.parametrize("one", [torch.stack([WAVE, WAVE], 1), torch.stack([WAVE, WAVE]).numpy(), WAVE],
                         ids=["tensor [S, 2]", "array [2, S]", "tensor [S]"])
@pytest.mark.parametrize("method", ["encode_stream", "encode_iter"])
def test_one_array_given_as_chunks_is_refused(tiny_audio: AudioTokenizer, one: object, method: str) -> None:
    with pytest.raises(TypeError, match=rf"^{method} takes an iterable of chunks .* not one .*chunk_seconds"):
        getattr(tiny_audio, method)(one)


def test_encode_iter_names_itself_in_its_errors(tiny_audio: AudioTokenizer) -> None:
    with pytest.raises(AudioError, match=r"^encode_iter chunk 1 has shape \(3, 3, 3\)"):
        list(tiny_audio.encode_iter([WAVE, np.zeros((3, 3, 3))]))
    with pytest.raises(AudioError, match=r"^encode_iter got no samples"):
        list(tiny_audio.encode_iter([torch.zeros(0)]))
    whole = tiny_audio.encode(WAVE, 16000)
    assert torch.equal(torch.cat(list(tiny_audio.encode_iter(WAVE.split(999)))), whole)
    assert torch.equal(tiny_audio.encode_stream(WAVE.split(999)), whole)


@pytest.mark.parametrize("numbers", [[0.1, 0.2, 0.3], (1, 2), [np.float32(0.5)]])
def test_a_list_of_numbers_is_not_taken_for_a_batch(tiny_audio: AudioTokenizer, numbers: object) -> None:
    with pytest.raises(TypeError, match=r"a list is a batch of clips; pass one clip's samples as a numpy array"):
        tiny_audio.encode(numbers, 16000)


# --------------------------------------------------------------------------- shipped names


def test_a_stray_file_named_like_a_shipped_model_does_not_hide_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "audio").write_text("notes")
    (tmp_path / "image").write_text("notes")
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("audio") == models_dir() / "audio"
    assert isinstance(mmtok.load("audio"), AudioTokenizer) and isinstance(mmtok.load("image"), mmtok.ImageTokenizer)
    for explicit in ("./audio", str(tmp_path / "audio")):  # a path is still taken as the user's checkpoint
        with pytest.raises(CheckpointError, match=r"is a file, expected a folder with config\.json"):
            mmtok.load(explicit)


def test_a_checkpoint_folder_of_a_shipped_name_still_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("image") == Path("image")


# --------------------------------------------------------------------------- video


def test_a_small_video_file_gives_the_codes_of_its_frames() -> None:
    pytest.importorskip("av")
    video, clip = mmtok.load("video"), DATA / "pan.mp4"  # 192×144: under the 256 the tokenizer crops to
    frames = mmtok.read_video(clip, fps=video.fps).frames
    assert torch.equal(video.encode(clip), video.encode(frames))


def test_frames_are_only_shrunk_while_decoding() -> None:
    from mmtok.video.frame_settings import ShrinkTo
    from mmtok.video.frame_settings import target_size as _target_size

    assert _target_size(192, 144, ShrinkTo(256)) == (192, 144)
    assert _target_size(640, 360, ShrinkTo(256)) == (455, 256)
    assert _target_size(192, 144, 256) == (341, 256)  # a size asked for is still reached both ways
