"""Files as FFmpeg writes them to a pipe or with its own encoders, which libsndfile reads wrongly or not at
all, and a few argument shapes: each reads as the sound it holds, or gets a clear error."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import mmtok
from mmtok.audio.arrays import mono_chunks
from mmtok.core.errors import AudioError

av = pytest.importorskip("av")


class _Pipe(io.RawIOBase):
    """An output FFmpeg cannot seek back in: it leaves the header's length unstated (FLAC's total 0,
    no Xing/Info frame in an MP3)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def]
        self.buf += bytes(b)
        return len(b)


def _write(out, fmt: str | None, codec: str, rate: int, x: np.ndarray, sample_fmt: str, block: int) -> None:
    """``x`` ``[S]`` (in ``sample_fmt``'s dtype) through PyAV's ``codec`` into ``out`` (a path or a pipe)."""
    c = av.open(out, "w", format=fmt) if fmt else av.open(str(out), "w")
    s = c.add_stream(codec, rate=rate, layout="mono")
    for i in range(0, len(x), block):
        f = av.AudioFrame.from_ndarray(x[None, i : i + block], format=sample_fmt, layout="mono")
        f.sample_rate = rate
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode(None):
        c.mux(p)
    c.close()


def _tone(n: int, rate: int) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)


def test_ogg_opus_starts_at_its_first_sample(tmp_path: Path) -> None:
    # libsndfile opens FFmpeg's Opus past its pre-skip without applying it: every sample came 312 late
    path = tmp_path / "t.opus"
    try:
        _write(path, None, "libopus", 48000, _tone(96000, 48000), "flt", 960)
    except Exception as e:  # an FFmpeg build without libopus
        pytest.skip(f"no Opus encoder: {e}")
    got = mmtok.load_audio(path, target_rate=48000).numpy()
    first = int(np.argmax(np.abs(got) > 0.01))
    with sf.SoundFile(path) as f:
        f.seek(0)
        ref = f.read(dtype="float32")
    assert first == int(np.argmax(np.abs(ref) > 0.01)) < 50
    assert got.size == ref.size == 96000
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_flac_of_unstated_length_reads_through_ffmpeg(tmp_path: Path) -> None:
    pipe = _Pipe()
    x = (_tone(32000, 16000) * 32767).astype(np.int16)
    _write(pipe, "flac", "flac", 16000, x, "s16", 4096)
    path = tmp_path / "piped.flac"
    path.write_bytes(pipe.buf)
    assert sf.info(str(path)).frames > 1 << 62  # libsndfile's "unknown" (it once said 576460752303423.5 s long)
    for limit in (600, None):
        got = mmtok.load_audio(path, max_seconds=limit)
        assert got.shape == (32000,)
        np.testing.assert_allclose(got.numpy(), x / 32768, atol=1e-6)
    with pytest.raises(AudioError, match=r"piped\.flac is 2\.\d s long, over max_seconds=1"):
        mmtok.load_audio(path, max_seconds=1)


@pytest.mark.parametrize("pad", [1028, 4096])
def test_mp3_without_xing_header_and_trailing_zeros(tmp_path: Path, pad: int) -> None:
    pipe = _Pipe()
    x = (_tone(132300, 44100) * 2**31).astype(np.int32)
    _write(pipe, "mp3", "libmp3lame", 44100, x, "s32p", 1152)
    clean, padded = tmp_path / "clean.mp3", tmp_path / "pad.mp3"
    clean.write_bytes(pipe.buf)
    padded.write_bytes(bytes(pipe.buf) + b"\0" * pad)  # libmpg123 fails on these bytes part-way through its reads
    want = mmtok.load_audio(clean)
    got = mmtok.load_audio(padded)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) < 1e-3


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file names are bytes")
def test_file_name_that_is_no_utf8(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad\xff.wav")
    try:
        (tmp_path / name).write_bytes(b"")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses the name")
    sf.write(os.fsencode(tmp_path / name), _tone(8000, 8000), 8000)
    assert mmtok.load_audio(tmp_path / name).shape == (16000,)


def test_nested_list_is_no_batch() -> None:
    tok = mmtok.load("audio")
    w = 0.1 * torch.randn(1600, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="clip 1 of the batch is a tuple: a batch is a flat list"):
        tok.encode([w, (w, w[:800])], sample_rate=16000)


@pytest.mark.parametrize("value", ["5", True, float("nan"), 0])
def test_max_seconds_of_a_wrong_kind(tmp_path: Path, value: object) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, _tone(1600, 16000), 16000)
    with pytest.raises(ValueError, match="max_seconds must be a number > 0 or None"):
        mmtok.load_audio(path, max_seconds=value)  # type: ignore[arg-type]


def test_one_channel_chunks_after_mono_ones() -> None:
    w = torch.randn(3000, generator=torch.Generator().manual_seed(1))
    for chunks in ([w[:1000], w[None, 1000:2000], w[2000:, None]], [w[None, :1000], w[1000:]]):
        assert torch.equal(torch.cat(list(mono_chunks(chunks))), w)
    with pytest.raises(AudioError, match="fixed the stream's layout as mono"):
        list(mono_chunks([w[:1000], torch.stack([w[1000:], w[1000:]])]))
