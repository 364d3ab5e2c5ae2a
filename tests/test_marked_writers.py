"""The one marked-picture writer and the one marked-sound writer: ``mmtok decode`` and ``mmtok sample`` both write
through them, each with its own mark, and only the formats that keep a mark carry it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from mmtok import codefile
from mmtok.data.media_files import SOUND_MARKED, marked, write_marked_image, write_marked_sound
from mmtok.lm import sample_output


def _picture() -> torch.Tensor:
    return torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0)) * 1.4 - 0.2  # some outside [0, 1]


def _wave() -> torch.Tensor:
    return torch.randn(800, generator=torch.Generator().manual_seed(1)) * 0.7  # peaks above 1


def test_a_png_carries_the_mark_and_the_clamped_pixels(tmp_path: Path) -> None:
    img = _picture()
    path = write_marked_image(tmp_path / "a.png", img, "mmtok decode")
    assert marked(path, "mmtok decode") and not marked(path, "mmtok sample")
    want = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    with Image.open(path) as im:
        assert np.array_equal(np.asarray(im), want)


def test_a_jpeg_is_written_without_a_mark(tmp_path: Path) -> None:
    path = write_marked_image(tmp_path / "a.jpg", _picture(), "mmtok sample", fmt="JPEG")
    with Image.open(path) as im:
        assert im.format == "JPEG" and "Software" not in im.info
    assert not marked(path, "mmtok sample")


def test_a_float_wav_keeps_every_sample_and_the_mark(tmp_path: Path) -> None:
    wave = _wave()
    path = write_marked_sound(tmp_path / "a.wav", wave, 16000, "mmtok decode", subtype="FLOAT", fmt="WAV")
    samples, rate = sf.read(path, dtype="float32")
    assert rate == 16000 and np.array_equal(samples, wave.numpy())  # nothing scaled, nothing clipped
    assert marked(path, "mmtok decode")


@pytest.mark.parametrize(("fmt", "keeps"), [(f, True) for f in ("WAV", "FLAC", "AIFF", "CAF", "RF64")]
                         + [("AU", False), ("W64", False)])
def test_a_sound_is_marked_where_its_format_keeps_it(tmp_path: Path, fmt: str, keeps: bool) -> None:
    path = write_marked_sound(tmp_path / f"a.{fmt.lower()}", _wave() / 2, 8000, "mmtok sample", subtype="PCM_16",
                              fmt=fmt)
    assert marked(path, "mmtok sample") == keeps == (fmt in SOUND_MARKED)


@pytest.mark.parametrize(("name", "fmt"), [("s.png", "PNG"), ("s", "PNG"), ("s.jpg", "JPEG"), ("s.webp", "WEBP")])
def test_sample_writes_pictures_through_the_one_writer(tmp_path: Path, name: str, fmt: str) -> None:
    img = _picture()
    sample_output.write_image(tmp_path / name, img)
    write_marked_image(tmp_path / f"shared-{name}", img, sample_output.MARK, fmt=fmt)
    assert (tmp_path / name).read_bytes() == (tmp_path / f"shared-{name}").read_bytes()


@pytest.mark.parametrize("name", ["s.wav", "s.flac", "s.aiff", "s.caf", "s.rf64", "s.au"])
def test_sample_writes_sounds_through_the_one_writer(tmp_path: Path, name: str) -> None:
    wave = _wave()
    sample_output.write_sound(tmp_path / name, wave, 16000)
    scaled = wave / (float(wave.abs().max()) / 0.99)  # sample scales a sound that would clip
    fmt = name.rsplit(".", 1)[1].upper()
    write_marked_sound(tmp_path / f"shared-{name}", scaled, 16000, sample_output.MARK, subtype="PCM_16", fmt=fmt)
    assert (tmp_path / name).read_bytes() == (tmp_path / f"shared-{name}").read_bytes()


def test_decode_keeps_no_writer_of_its_own() -> None:
    assert not hasattr(codefile, "_save_image") and not hasattr(codefile, "_save_wav")
    assert sample_output.MARKED_FORMATS == ("PNG", *SOUND_MARKED)


@pytest.mark.parametrize(("fmt", "name", "order"), [("WAV", "a.wav", "little"), ("AIFF", "a.aiff", "big")])
def test_a_float_sound_carries_no_time_of_writing(tmp_path: Path, fmt: str, name: str, order: str) -> None:
    """libsndfile stamps the time into a float file's PEAK chunk; the same samples must give the same bytes."""
    wave = _wave()
    data = write_marked_sound(tmp_path / name, wave, 16000, "mmtok decode", subtype="FLOAT", fmt=fmt).read_bytes()
    at = data.index(b"PEAK")
    assert int.from_bytes(data[at + 12:at + 16], order) == 0  # the time stamp, after id, size and version
    assert int.from_bytes(data[at + 8:at + 12], order) == 1  # the version is kept
    back, rate = sf.read(tmp_path / name, dtype="float32")
    assert rate == 16000 and np.array_equal(back, wave.numpy()) and marked(tmp_path / name, "mmtok decode")
