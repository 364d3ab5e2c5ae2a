"""Inputs the evaluation contracts promise to read as they are meant: float audio is about [-1, 1]
(integer PCM stored as float is refused, wherever arrays enter, and in a float file), and a Pillow image's EXIF
orientation is applied once: to a file, an image fresh from it, and one made from it (convert, copy),
which keeps both the camera's pixels and the tag; never to one ``ImageOps.exif_transpose`` turned."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from mmtok.audio.arrays import MAX_FLOAT_PEAK
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.io import load_audio
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.errors import AudioError
from mmtok.image.io import load_image
from tests.audio_helpers import small_config, small_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: one thread is steadier

SMALL = small_config()
INT16_AS_FLOAT = r"float samples reach 9830, far outside \[-1, 1\] .*divide int16 values by 32768"


@pytest.fixture(scope="module")
def tok() -> AudioTokenizer:
    return small_tokenizer()


def speech_pcm(n: int = 8000) -> np.ndarray:
    """int16 samples peaking at 9830 (0.3 of full scale), seeded."""
    x = np.random.default_rng(0).standard_normal(n)
    return np.round(x / np.abs(x).max() * 9830).astype(np.int16)


# --------------------------------------------------------------------------- float audio out of range


def test_int16_samples_stored_as_float_are_refused_wherever_arrays_enter(tok: AudioTokenizer) -> None:
    pcm = speech_pcm()
    floats = pcm.astype(np.float32)  # the mistake: int16 values, float dtype
    entries = {
        "load_audio": lambda: load_audio(floats, SAMPLE_RATE),
        "encode": lambda: tok.encode(floats, SAMPLE_RATE),
        "encode (stereo tensor)": lambda: tok.encode(torch.from_numpy(np.stack([floats, floats])), SAMPLE_RATE),
        "encode_stream": lambda: tok.encode_stream([floats[:4000], floats[4000:]]),
        "encode_iter": lambda: list(tok.encode_iter([floats[:4000], floats[4000:]])),
    }
    for name, call in entries.items():
        with pytest.raises(AudioError, match=INT16_AS_FLOAT) as e:
            call()
        assert "\n" not in str(e.value), name
    with pytest.raises(AudioError, match=r"encode_stream chunk 1: float samples reach"):
        tok.encode_stream([pcm[:4000] / 32768.0, floats[4000:]])  # the chunk is named
    # the integers themselves, or the floats divided as the message says, read the same
    assert torch.equal(tok.encode(pcm, SAMPLE_RATE), tok.encode(floats / 32768, SAMPLE_RATE))


def test_loud_float_audio_under_the_bound_is_accepted() -> None:
    x = speech_pcm().astype(np.float32) / 32768
    for peak in (1.0, 2.5, MAX_FLOAT_PEAK):  # a signal over 1 after gain is sound, not a mistake
        loud = x * np.float32(peak / np.abs(x).max())
        assert torch.equal(load_audio(loud, SAMPLE_RATE), torch.from_numpy(loud))
    with pytest.raises(AudioError, match="far outside"):
        load_audio(x * np.float32(2 * MAX_FLOAT_PEAK / np.abs(x).max()), SAMPLE_RATE)
    with pytest.raises(AudioError, match="NaN/inf"):  # not a peak of inf
        load_audio(np.array([0.1, np.inf, 3e4], np.float32), SAMPLE_RATE)


def test_int16_samples_in_a_float_file_are_refused_naming_it(tmp_path: Path) -> None:
    import soundfile as sf

    floats = speech_pcm().astype(np.float32)
    path = tmp_path / "f.wav"
    sf.write(path, floats, SAMPLE_RATE, subtype="FLOAT")  # int16 values in a 32-bit float WAV
    with pytest.raises(AudioError, match=r"audio file .*f\.wav: float samples reach 9830, far outside") as e:
        load_audio(path)
    assert "\n" not in str(e.value)
    sf.write(path, floats / 32768, SAMPLE_RATE, subtype="FLOAT")  # divided, as the message says: read as it is
    assert torch.allclose(load_audio(path), torch.from_numpy(floats / 32768))
    sf.write(path, speech_pcm(), SAMPLE_RATE, subtype="PCM_16")  # integer PCM decodes to [-1, 1)
    assert float(load_audio(path).abs().max()) < 1


# --------------------------------------------------------------------------- EXIF orientation once


@pytest.fixture(scope="module")
def turned_jpeg() -> bytes:
    """A 40×20 JPEG, left half red and right half blue, whose EXIF orientation 6 says: turn it a quarter
    clockwise to show it (20×40, red on top)."""
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)
    a[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def test_exif_orientation_turns_a_fresh_image_once(turned_jpeg: bytes, tmp_path: Path) -> None:
    path = tmp_path / "turned.jpg"
    path.write_bytes(turned_jpeg)
    upright = load_image(path)
    assert tuple(upright.shape) == (3, 40, 20)
    assert float(upright[0, 5, 10]) > 0.8 and float(upright[2, 35, 10]) > 0.8  # red on top, blue below
    assert torch.equal(load_image(Image.open(path)), upright)  # fresh from the file: the same as the path


@pytest.mark.parametrize("derive", [lambda im: im.convert("RGB"), lambda im: im.copy()])
def test_an_image_made_from_a_turned_jpeg_is_turned_once_too(turned_jpeg: bytes, tmp_path: Path, derive) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "turned.jpg"
    path.write_bytes(turned_jpeg)
    made = derive(Image.open(path))  # convert/copy keep the camera's pixels and the tag that says how to turn them
    assert made.getexif().get(0x0112) == 6
    upright = load_image(path)
    assert tuple(upright.shape) == (3, 40, 20)
    assert torch.equal(load_image(made), upright)
    transposed = ImageOps.exif_transpose(Image.open(path))  # turns the pixels and drops the tag
    assert transposed.getexif().get(0x0112) is None
    assert torch.equal(load_image(transposed), upright)
    assert torch.equal(load_image(np.asarray(transposed)), upright)  # an array carries no tag: turn it first
