"""Media loading stays bounded and fails clearly: resampling from any rate, long files,
decompression bombs, thin and huge images, folders and devices, truncated files, and a
property-based fuzz of the loaders (only mmtok errors may escape)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmtok.audio.io import BLOCK_SAMPLES, MAX_SECONDS, load_audio
from mmtok.core.errors import AudioError, ImageError, MissingFileError, MmtokError
from mmtok.core.memory import PeakMemory
from mmtok.image.io import load_image
from mmtok.image.sizing import MAX_SIDE

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
ROOT = Path(__file__).resolve().parents[1]
COMMON_RATES = (8000, 11025, 22050, 24000, 32000, 44100, 48000)
ODD_RATES = (7999, 22051, 44101, 48001)


def peak_mib(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (one thread); its peak RSS above the post-import baseline.

    ``code`` runs inside ``PeakMemory`` after mmtok and torch are imported and may set ``result``.
    """
    script = (
        "import json, time, torch\n"
        "torch.set_num_threads(1)\n"
        "import mmtok\n"
        "from mmtok.core.memory import PeakMemory\n"
        "result = None\n"
        "t0 = time.perf_counter()\n"
        "with PeakMemory('cpu') as m:\n"
        + "".join(f"    {line}\n" for line in code.strip().splitlines())
        + "print(json.dumps({'peak_mib': m.peak_mib, 'seconds': time.perf_counter() - t0, 'result': result}))\n"
    )
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def tones(rate: int, seconds: float, freqs: list[float]) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return sum(0.1 * np.sin(2 * np.pi * f * t + i) for i, f in enumerate(freqs)).astype(np.float32)


def snr_db(ours: np.ndarray, ref: np.ndarray, edge: int = 1600) -> float:
    """SNR of ``ours`` against ``ref`` away from the ends (the filters' edge transients)."""
    n = min(len(ours), len(ref))
    a, b = ours[edge : n - edge], ref[edge : n - edge]
    err = float(((a - b) ** 2).sum())
    return float("inf") if err == 0 else 10 * np.log10(float((b**2).sum()) / err)


# --------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("rate", COMMON_RATES)
def test_common_rates_keep_the_pinned_resampler(rate: int) -> None:
    """Rates with a small reduced ratio give exactly what torchaudio's resample gave (codes stay)."""
    x = torch.from_numpy(tones(rate, 1.3, [220.0, 0.3 * min(rate, 16000)]))
    assert torch.equal(load_audio(x, rate), AF.resample(x, rate, 16000))


def test_common_rate_streamed_over_many_blocks_matches_whole_signal() -> None:
    """Blocks join without seams: a signal several blocks long equals the one-shot resample."""
    rate = 48000
    x = torch.from_numpy(tones(rate, 3 * BLOCK_SAMPLES / rate + 0.1, [440.0, 3000.0]))
    torch.testing.assert_close(load_audio(x, rate), AF.resample(x, rate, 16000), rtol=0, atol=1e-6)


@pytest.mark.parametrize("rate", COMMON_RATES)
def test_common_rates_agree_with_librosa_soxr_hq(rate: int) -> None:
    """The windowed-sinc path (6 zero crossings, rolloff 0.99) against librosa's soxr_hq.

    Up to 0.2 x the lower rate (3.2 kHz at 16 kHz) the two agree to > 60 dB SNR; up to
    0.35 x (5.6 kHz) the sinc kernel's passband ripple keeps the gain within 0.05 dB.
    """
    librosa = pytest.importorskip("librosa")
    low = min(rate, 16000)
    x = tones(rate, 2.0, list(np.linspace(100.0, 0.2 * low, 6)))
    ref = librosa.resample(x, orig_sr=rate, target_sr=16000, res_type="soxr_hq")
    assert snr_db(load_audio(x, rate).numpy(), ref) > 60.0
    for frac in (0.25, 0.3, 0.35):
        y = tones(rate, 1.0, [frac * low])
        ours, ref = load_audio(y, rate).numpy()[800:-800], librosa.resample(
            y, orig_sr=rate, target_sr=16000, res_type="soxr_hq")[800:-800]
        assert abs(20 * np.log10(ours.std() / ref.std())) < 0.05


@pytest.mark.parametrize("rate", ODD_RATES)
def test_odd_rates_use_soxr_and_match_librosa(rate: int) -> None:
    librosa = pytest.importorskip("librosa")
    x = tones(rate, 2.0, list(np.linspace(100.0, 0.45 * min(rate, 16000), 7)))
    ours = load_audio(x, rate).numpy()
    ref = librosa.resample(x, orig_sr=rate, target_sr=16000, res_type="soxr_hq")
    assert abs(len(ours) - len(ref)) <= 1
    assert snr_db(ours, ref) > 100.0


def test_one_second_at_48001_hz_is_fast_and_small(tmp_path: Path) -> None:
    path = tmp_path / "odd.wav"
    sf.write(path, tones(48001, 1.0, [440.0]), 48001, subtype="PCM_16")
    m = peak_mib(f"result = tuple(mmtok.load_audio({str(path)!r}).shape)")
    assert m["result"] == [16000]
    assert m["peak_mib"] < 100 and m["seconds"] < 5, m


# --------------------------------------------------------------------------- long files


@pytest.mark.slow
def test_ten_minutes_at_384_khz_stays_small(tmp_path: Path) -> None:
    """A small FLAC that decodes to 230 M samples: blocks keep memory near the 16 kHz output."""
    rate, path = 384_000, tmp_path / "long.flac"
    block = np.zeros(rate, np.float32)
    block[:2000] = 0.1 * np.sin(np.arange(2000) / 9.0)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16", format="FLAC") as f:
        for _ in range(int(MAX_SECONDS)):
            f.write(block)
    assert path.stat().st_size < 4 << 20
    m = peak_mib(f"result = tuple(mmtok.load_audio({str(path)!r}).shape)")
    assert m["result"] == [int(MAX_SECONDS) * 16000]
    assert m["peak_mib"] < 400, m  # the output alone is 37 MiB; the old loader took 3.3 GiB


def test_max_seconds_refuses_long_files_by_name(tmp_path: Path) -> None:
    path = tmp_path / "three.wav"
    sf.write(path, tones(8000, 3.0, [300.0]), 8000)
    with pytest.raises(AudioError, match=r"three\.wav is 3\.0 s long, over max_seconds=2"):
        load_audio(path, max_seconds=2)
    assert load_audio(path, max_seconds=None).shape == (48000,)
    with pytest.raises(ValueError, match="max_seconds"):
        load_audio(path, max_seconds=0)


# --------------------------------------------------------------------------- paths and damaged audio


def test_folders_devices_and_missing_paths_say_so(tmp_path: Path) -> None:
    for load in (load_audio, load_image):
        with pytest.raises(MmtokError, match="is a folder"):
            load(tmp_path)
        with pytest.raises(MmtokError, match="not a regular file"):
            load("/dev/zero")
        with pytest.raises(MissingFileError, match=r"nothing\.bin"):
            load(tmp_path / "nothing.bin")
    assert issubclass(MissingFileError, FileNotFoundError)


def test_truncated_wav_says_promised_and_read_frames(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    sf.write(path, tones(16000, 1.0, [440.0]), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 2 * 6000])  # 6000 of 16000 frames gone
    with pytest.raises(AudioError, match=r"cut\.wav is truncated: its header promises 16000 frames, 10000 could"):
        load_audio(path)


def test_non_finite_samples_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.wav"
    x = tones(16000, 0.5, [440.0])
    x[[10, 5000]] = [np.nan, np.inf]
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"bad\.wav has 2 NaN/inf"):
        load_audio(path)


# --------------------------------------------------------------------------- images


def test_decompression_bombs_are_image_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.png"
    Image.new("RGB", (120, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # 12,000 pixels: over 2x the limit (Pillow's error)
    with pytest.raises(ImageError, match=r"bomb\.png' has 12,000 pixels, over .*MAX_IMAGE_PIXELS"):
        load_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10000)  # over the limit only: read, as Pillow reads it
    assert load_image(path).shape == (3, 100, 120)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20000)
    assert load_image(path).shape == (3, 100, 120)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_huge_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    """A 20000 x 20000 PNG (400 M pixels) is refused from its header alone."""
    path = tmp_path / "huge.png"
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)  # 8-bit RGB; no pixel data follows
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b""))
    m = peak_mib(f"""
try:
    mmtok.load_image({str(path)!r})
except mmtok.MmtokError as e:
    result = str(e)
""")
    assert "400,000,000 pixels" in m["result"] and m["peak_mib"] < 50, m


def test_thin_image_is_reduced_before_float_conversion(tmp_path: Path) -> None:
    path = tmp_path / "thin.png"
    Image.new("RGB", (100_000, 16), (200, 40, 90)).save(path)
    m = peak_mib(f"""
result = [list(mmtok.load_image({str(path)!r}).shape)]
result.append(list(mmtok.load("image").encode({str(path)!r}).shape))
""")
    # load_image reduces it to MAX_SIDE; the tokenizer's crop reads only its middle at full size
    assert m["result"] == [[3, 1, MAX_SIDE], [16, 16]]
    assert m["peak_mib"] < 300, m  # the old loader and tokenizer took 5 GiB


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    ramp = np.linspace(0, 255, 9000, dtype=np.float32)
    img = np.stack([np.broadcast_to(ramp, (3000, 9000))] * 3, axis=2).astype(np.uint8)
    Image.fromarray(img).save(path, quality=90)
    x = load_image(path)
    assert tuple(x.shape) == (3, round(3000 * MAX_SIDE / 9000), MAX_SIDE)
    expect = torch.linspace(0, 1, MAX_SIDE)
    assert (x[0, x.shape[1] // 2] - expect).abs()[8:-8].max() < 0.02


@pytest.mark.parametrize("mode", ["P", "1", "I;16", "LA", "CMYK", "F"])
def test_huge_images_of_every_mode_are_reduced(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"wide-{mode.replace(';', '')}.{'tiff' if mode in ('F', 'CMYK') else 'png'}"
    Image.new(mode, (MAX_SIDE * 2 + 2, 10)).save(path)
    x = load_image(path)
    assert tuple(x.shape) == (3, 5, MAX_SIDE) and x.min() >= 0 and x.max() <= 1


def test_normal_images_are_exactly_as_decoded() -> None:
    for name in ("astronaut.jpg", "camera.png", "coffee.jpg"):
        with Image.open(DATA / name) as img:
            want = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        assert torch.equal(load_image(DATA / name), torch.from_numpy(want).permute(2, 0, 1))


# --------------------------------------------------------------------------- fuzz

MEDIA = sorted(p for p in DATA.iterdir() if p.suffix in (".wav", ".flac", ".ogg", ".png", ".jpg"))
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load_any(path: Path) -> None:
    """Load ``path`` with the loader its suffix suggests and the other one; only mmtok errors may escape."""
    for load in (load_audio, load_image):
        try:
            load(path)
        except MmtokError:
            pass


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from([".wav", ".flac", ".ogg", ".mp3", ".png", ".jpg"]))
def test_fuzz_random_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    _load_any(path)


@FUZZ
@given(source=st.sampled_from(MEDIA), cut=st.floats(0.0, 0.999),
       flips=st.lists(st.tuples(st.integers(0, 511), st.integers(0, 255)), max_size=6))
def test_fuzz_truncated_and_damaged_real_files(tmp_path: Path, source: Path, cut: float,
                                               flips: list[tuple[int, int]]) -> None:
    data = bytearray(source.read_bytes())
    for pos, byte in flips:  # odd headers: bytes changed near the start
        if pos < len(data):
            data[pos] = byte
    path = tmp_path / f"damaged{source.suffix}"
    path.write_bytes(bytes(data[: max(1, int(len(data) * cut))] if cut else data))
    _load_any(path)


@FUZZ
@given(rate=st.sampled_from([1, 3, 1000, 44101, 96000, 400_000]),
       header=st.dictionaries(st.sampled_from(["frames", "channels", "rate"]), st.integers(0, 2**32 - 1)))
def test_fuzz_wav_headers_with_wrong_numbers(tmp_path: Path, rate: int, header: dict[str, int]) -> None:
    """A WAV whose header fields say anything: bounded work, and a tensor or an mmtok error."""
    path = tmp_path / "odd.wav"
    sf.write(path, tones(rate, 0.01, [0.1 * rate]) if rate > 100 else np.zeros(5, np.float32), rate)
    data = bytearray(path.read_bytes())
    offsets = {"channels": (22, "<H"), "rate": (24, "<I"), "frames": (40, "<I")}
    for key, value in header.items():
        pos, fmt = offsets[key]
        data[pos : pos + (2 if fmt == "<H" else 4)] = int(value % (2**16 if fmt == "<H" else 2**32)).to_bytes(
            2 if fmt == "<H" else 4, "little")
    path.write_bytes(bytes(data))
    with PeakMemory("cpu") as m:
        try:
            load_audio(path)
        except MmtokError:
            pass
    assert m.peak_mib < 200, m.peak_mib  # bounded by the file's bytes, whatever its header says
