"""Audio files whose header and bytes disagree: cut short (Ogg/Vorbis, Ogg/Opus, AIFF, AU), or a WAV
whose header was never finished; and intact files of every format, which still load."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.io import load_audio
from mmtok.core.errors import AudioError

FRAMES = 3 * SAMPLE_RATE

# (file name, sample rate, soundfile keywords, channels)
FORMATS = [
    ("a.ogg", SAMPLE_RATE, {"format": "OGG", "subtype": "VORBIS"}, 1),
    ("a.opus", 48_000, {"format": "OGG", "subtype": "OPUS"}, 1),
    ("a.aiff", SAMPLE_RATE, {"format": "AIFF"}, 1),
    ("stereo.aiff", SAMPLE_RATE, {"format": "AIFF", "subtype": "PCM_24"}, 2),
    ("ulaw.aifc", SAMPLE_RATE, {"format": "AIFF", "subtype": "ULAW"}, 1),
    ("a.au", SAMPLE_RATE, {"format": "AU"}, 1),
    ("stereo.au", SAMPLE_RATE, {"format": "AU", "subtype": "FLOAT"}, 2),
    ("ulaw.au", SAMPLE_RATE, {"format": "AU", "subtype": "ULAW"}, 1),
]


def noise(frames: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    x = 0.1 * np.random.default_rng(seed).standard_normal((frames, channels))
    return x.astype(np.float32)[:, 0] if channels == 1 else x.astype(np.float32)


def write(path: Path, rate: int, kw: dict, channels: int, frames: int = FRAMES) -> Path:
    sf.write(path, noise(frames, channels), rate, **kw)
    return path


def ogg_pages(data: bytes) -> list[int]:
    """The byte offset of every Ogg page."""
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        table = data[pos + 27 : pos + 27 + data[pos + 26]]
        pos += 27 + len(table) + sum(table)
    return starts


@pytest.mark.parametrize(("name", "rate", "kw", "channels"), FORMATS)
def test_a_file_cut_short_is_refused_as_truncated(tmp_path: Path, name: str, rate: int, kw: dict,
                                                  channels: int) -> None:
    whole = write(tmp_path / name, rate, kw, channels)
    assert load_audio(whole).numel() > 0
    data = whole.read_bytes()
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(data[: len(data) * 3 // 4])  # the last quarter of the bytes lost
    pattern = (rf"cut_{name}.* is truncated" if name.endswith(("ogg", "opus"))
               else rf"cut_{name} is truncated: its header promises {FRAMES * rate // SAMPLE_RATE} frames, \d+ could")
    with pytest.raises(AudioError, match=pattern):
        load_audio(cut)


@pytest.mark.parametrize("name", ["a.ogg", "a.opus"])
def test_an_ogg_cut_on_a_page_boundary_lacks_its_end_of_stream_mark(tmp_path: Path, name: str) -> None:
    rate, kw, _ = next((r, k, c) for n, r, k, c in FORMATS if n == name)
    data = write(tmp_path / name, rate, kw, 1).read_bytes()
    pages = ogg_pages(data)
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(data[: pages[len(pages) * 3 // 4]])  # whole pages, the last ones missing
    with pytest.raises(AudioError, match=rf"cut_{name} is truncated: .*end-of-stream"):
        load_audio(cut)


@pytest.mark.parametrize(
    ("name", "rate", "kw"),
    [(n, r, k) for n, r, k, _ in FORMATS]
    + [("a.flac", SAMPLE_RATE, {}), ("a.mp3", SAMPLE_RATE, {}), ("a.wav", SAMPLE_RATE, {"subtype": "PCM_16"}),
       ("float.wav", 22_050, {"subtype": "FLOAT"})],
)
def test_intact_files_of_every_format_load_whole(tmp_path: Path, name: str, rate: int, kw: dict) -> None:
    path = write(tmp_path / name, rate, kw, 2)  # stereo
    audio = load_audio(path)
    assert abs(audio.numel() - FRAMES * SAMPLE_RATE // rate) <= (1200 if name.endswith(("mp3", "opus")) else 1)


def test_a_chained_ogg_is_refused_and_a_grouped_one_loads(tmp_path: Path) -> None:
    kw = {"format": "OGG", "subtype": "VORBIS"}
    a = write(tmp_path / "a.ogg", SAMPLE_RATE, kw, 1).read_bytes()
    b = write(tmp_path / "b.ogg", SAMPLE_RATE, kw, 1, frames=SAMPLE_RATE).read_bytes()
    c = write(tmp_path / "c.ogg", SAMPLE_RATE, kw, 1, frames=SAMPLE_RATE // 2).read_bytes()
    assert len({a[14:18], b[14:18], c[14:18]}) == 3  # three logical streams (their serial numbers differ)
    (tmp_path / "chain.ogg").write_bytes(a + b + c)  # one stream after another: libsndfile reads only a
    with pytest.raises(AudioError, match=r"chain\.ogg holds 3 Ogg streams one after another \(a chained Ogg\); "
                                         r"only the first could be read"):
        load_audio(tmp_path / "chain.ogg")
    pa, pb = [*ogg_pages(a), len(a)], [*ogg_pages(b), len(b)]
    # both streams' first pages, then the rest of each: two streams at once ("grouped")
    grouped = a[: pa[1]] + b[: pb[1]] + a[pa[1] :] + b[pb[1] :]
    (tmp_path / "grouped.ogg").write_bytes(grouped)
    try:
        sf.info(str(tmp_path / "grouped.ogg"))
    except (sf.LibsndfileError, RuntimeError):
        pytest.skip("this libsndfile does not open grouped Ogg streams")
    assert load_audio(tmp_path / "grouped.ogg").numel() > 0


def test_a_wav_whose_header_was_never_finished_says_so(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    sf.write(path, noise(SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.find(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 0)  # a recorder that died before writing the sizes
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=rf"rec\.wav.* declares 0 data bytes but {2 * SAMPLE_RATE} follow.*"
                                         r"never finished.*sox --ignore-length"):
        load_audio(path)
    sf.write(tmp_path / "none.wav", np.zeros(0, np.float32), SAMPLE_RATE)  # truly empty: still called empty
    with pytest.raises(AudioError, match=r"none\.wav is empty \(zero samples\)"):
        load_audio(tmp_path / "none.wav")
