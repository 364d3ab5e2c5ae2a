"""Numeric inputs of the audio, image and video paths: samples that own their memory, unscaled float files
in the vocoder cache, a codebook fitted on identical vectors, numpy arrays of any strides and byte order,
chunk_seconds out of range, the failing clip of a batch named, and audio dtypes no tensor holds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mmtok.audio.arrays import to_mono_float
from mmtok.audio.codebook import balance_codes
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.io import audio_samples, load_audio
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder_data import UNSCALED, to_cache_samples
from mmtok.core.codes import integer_codes
from mmtok.core.errors import AudioError, ImageError, MissingFileError, VideoError
from mmtok.core.seconds import MAX_CHUNK_SECONDS
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.video.tokenizer import VideoTokenizer
from mmtok.vq.kmeans import lloyd
from tests.audio_helpers import small_config, small_tokenizer
from tests.image_helpers import tiny_config

SMALL = small_config()

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: one thread is steadier


@pytest.fixture(scope="module")
def tok() -> AudioTokenizer:
    return small_tokenizer()


@pytest.fixture(scope="module")
def image_tok() -> ImageTokenizer:
    torch.manual_seed(0)
    return ImageTokenizer(tiny_config(image_size=32)).eval()


def tone(n: int = 8000) -> np.ndarray:
    return (0.5 * np.sin(np.arange(n) / 7.0)).astype(np.float32)


def read_only_copy(x: np.ndarray, path: Path) -> np.ndarray:
    """``x`` memory-mapped read-only from a ``.npy`` file, as ``np.load(path, mmap_mode="r")`` gives it."""
    np.save(path, x)
    out = np.load(path, mmap_mode="r")
    assert not out.flags.writeable
    return out


# --------------------------------------------------------------------------- 1. samples of their own


def test_load_audio_never_hands_back_the_callers_memory(tmp_path: Path) -> None:
    x = tone()
    w = load_audio(x, SAMPLE_RATE)
    w += 1.0
    assert np.array_equal(x, tone())  # the caller's array is as it was
    t = torch.from_numpy(tone())
    load_audio(t, SAMPLE_RATE).mul_(0.0)
    assert torch.equal(t, torch.from_numpy(tone()))
    mapped = read_only_copy(x, tmp_path / "w.npy")
    frozen = np.frombuffer(x.tobytes(), np.float32)  # over an immutable bytes object
    for ro in (mapped, frozen):
        w = load_audio(ro, SAMPLE_RATE)
        assert not np.shares_memory(w.numpy(), ro)  # checked before writing: a tensor over the mmap would crash
        w -= w.mean()
        assert np.array_equal(ro, x)


def test_reading_read_only_arrays_copies_them_and_encode_shares_writable_ones(tmp_path: Path) -> None:
    x = tone()
    mapped = read_only_copy(x, tmp_path / "w.npy")
    t = to_mono_float(mapped, "audio array")
    assert t.numpy().flags.writeable and not np.shares_memory(t.numpy(), mapped)
    assert np.shares_memory(audio_samples(x, SAMPLE_RATE).numpy(), x)  # encode reads: no copy of a writable array
    codes = read_only_copy(np.arange(12, dtype=np.int64).reshape(3, 4), tmp_path / "c.npy")
    out = integer_codes(codes, what="codes", error=ValueError)
    assert out.tolist() == codes.tolist() and not np.shares_memory(out.numpy(), codes)
    ordinary = np.arange(4, dtype=np.int64)
    assert np.shares_memory(integer_codes(ordinary, what="codes", error=ValueError).numpy(), ordinary)


# --------------------------------------------------------------------------- 2. the vocoder cache


def test_vocoder_cache_skips_an_unscaled_float_file_as_load_audio_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "unscaled.wav"
    sf.write(path, 8000 * np.sin(np.arange(SAMPLE_RATE) / 7.0), SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"^float samples over 64, far outside") as e:
        to_cache_samples(path)
    assert str(e.value) == UNSCALED
    with pytest.raises(AudioError, match=r"float samples reach 8000.*the limit is 64"):
        load_audio(path)
    sf.write(tmp_path / "ok.wav", 0.9 * np.sin(np.arange(SAMPLE_RATE) / 7.0), SAMPLE_RATE, subtype="FLOAT")
    assert to_cache_samples(tmp_path / "ok.wav").size == SAMPLE_RATE


# --------------------------------------------------------------------------- 3. a codebook on identical vectors


def test_balancing_a_codebook_of_identical_vectors_leaves_codes_of_empty_clusters() -> None:
    """Three steady tones give three distinct vectors: 61 of 64 clusters are empty, and a weak code that
    would be re-seeded inside one of them stays where it is."""
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(3, 8, generator=g).repeat_interleave(200, dim=0)  # (600, 8)
    groups = torch.arange(3).repeat_interleave(200)
    centers, counts = lloyd(rows, rows[torch.randperm(600, generator=g)[:64]].clone(), 3)
    assert int((counts > 0).sum()) == 3
    out, counts = balance_codes(rows, groups, centers, rounds=3, min_groups=15, iters=2, generator=g)
    assert out.shape == (64, 8) and bool(torch.isfinite(out).all()) and int(counts.sum()) == 600


# --------------------------------------------------------------------------- 4. any strides and byte order


def test_image_and_video_take_reversed_and_big_endian_numpy_arrays(image_tok: ImageTokenizer) -> None:
    codes = image_tok.encode(torch.rand(3, 32, 32)).numpy()  # (2, 2)
    flipped = np.ascontiguousarray(codes[::-1])
    want = image_tok.decode(flipped)
    assert torch.equal(image_tok.decode(codes[::-1]), want)
    assert torch.equal(image_tok.decode(flipped.astype(">i8")), want)
    assert torch.equal(image_tok.decode([codes[::-1], codes[::-1]]), torch.stack([want, want]))
    vt = VideoTokenizer(image_tok, fps=1.0)
    frames = np.random.default_rng(0).random((3, 3, 32, 32)).astype(np.float32)
    want_video = vt.encode(np.ascontiguousarray(frames[::-1]))
    assert torch.equal(vt.encode(frames[::-1]), want_video)
    assert torch.equal(vt.encode(np.ascontiguousarray(frames[::-1]).astype(">f4")), want_video)


# --------------------------------------------------------------------------- 5. chunk_seconds


@pytest.mark.parametrize("seconds", [1e305, 10**400])
def test_audio_chunk_seconds_too_large_to_count_samples_in_is_refused(tok: AudioTokenizer, seconds: float) -> None:
    with pytest.raises(AudioError, match="^" + re.escape(f"chunk_seconds must be at most {MAX_CHUNK_SECONDS:.1e} seconds")):
        tok.encode(tone(1600), SAMPLE_RATE, chunk_seconds=seconds)


def test_audio_chunk_seconds_of_float32_is_counted_as_a_python_float(tok: AudioTokenizer) -> None:
    x = tone(1600)
    whole = tok.encode(x, SAMPLE_RATE)
    assert torch.equal(tok.encode(x, SAMPLE_RATE, chunk_seconds=np.float32(3e38)), whole)
    assert torch.equal(tok.encode(x, SAMPLE_RATE, chunk_seconds=np.float32(0.03)), whole)


@pytest.mark.parametrize("bad", [float("nan"), 0, -1.0, float("inf"), 1e305, True, "1"])
def test_video_segments_checks_chunk_seconds_as_the_interleaver_does(image_tok: ImageTokenizer, bad: object,
                                                                     tmp_path: Path) -> None:
    vt = VideoTokenizer(image_tok, fps=1.0)
    with pytest.raises(VideoError, match=r"^chunk_seconds must be"):  # before the file is opened
        vt.segments(tmp_path / "missing.mp4", chunk_seconds=bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- 6. the failing item of a batch


def test_a_failing_clip_or_image_of_a_list_is_named(tok: AudioTokenizer, image_tok: ImageTokenizer) -> None:
    with pytest.raises(AudioError, match=r"^clip 1 of the batch: audio array is empty"):
        tok.encode([tone(1600), np.zeros(0, np.float32)], SAMPLE_RATE)
    with pytest.raises(TypeError, match=r"^clip 2 of the batch: .*integer PCM"):
        tok.encode([tone(1600), tone(1600), np.zeros(1600, np.int64)], SAMPLE_RATE)
    ok = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ImageError, match=r"^image 1 of the batch: .*empty \(0 pixels\)"):
        image_tok.encode([ok, np.zeros((0, 0, 3), np.uint8)])
    with pytest.raises(TypeError, match=r"^image 2 of the batch: an image is a path, PIL.Image, numpy array or torch.Tensor, got int"):
        image_tok.encode([ok, ok, 5])  # type: ignore[list-item]


def test_a_missing_file_in_a_list_is_named_and_keeps_its_class(
        tok: AudioTokenizer, image_tok: ImageTokenizer, tmp_path: Path) -> None:
    """A path that is not there is still a MissingFileError (a FileNotFoundError), now naming its place."""
    with pytest.raises(MissingFileError, match=r"^clip 1 of the batch: audio file .*gone\.wav' does not exist"):
        tok.encode([tone(1600), str(tmp_path / "gone.wav")], SAMPLE_RATE)
    with pytest.raises(FileNotFoundError, match=r"^image 1 of the batch: image file .*gone\.png' does not exist"):
        image_tok.encode([np.zeros((32, 32, 3), np.uint8), tmp_path / "gone.png"])


# --------------------------------------------------------------------------- 7. dtypes no tensor holds


@pytest.mark.parametrize("dtype", [np.longdouble, object, str, "datetime64[s]"])
def test_audio_of_a_dtype_torch_has_not_is_refused_by_mmtok(tok: AudioTokenizer, dtype: object) -> None:
    with pytest.raises(TypeError, match=r"^audio array: samples must be float16, bfloat16, float32 or float64"):
        tok.encode(np.zeros(1600, dtype=dtype), SAMPLE_RATE)  # type: ignore[call-overload]


def test_float8_audio_is_refused_by_mmtok(tok: AudioTokenizer) -> None:
    x = torch.zeros(1600).to(torch.float8_e4m3fn)
    with pytest.raises(TypeError, match=r"samples must be .* got dtype torch.float8_e4m3fn"):
        tok.encode(x, SAMPLE_RATE)
