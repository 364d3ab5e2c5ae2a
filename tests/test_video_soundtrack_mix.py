"""A video's soundtrack is the same sound an audio file gives: its channels averaged and its rate changed by
the audio package's own steps; chunks past the end of the sound carry none; a repeat code in a video's first
frame is refused, or repaired, with mmtok's errors.

Every clip is made here with PyAV: PCM sound (lossless) beside a few small frames.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mmtok.audio.io import load_audio
from mmtok.audio.tokenizer import AudioTokenizer, AudioTokenizerConfig
from mmtok.core.errors import DocumentError, MmtokError, StreamError, VideoError
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.stream.interleave import Interleaver
from mmtok.video.tokenizer import VideoTokenizer
from mmtok.vq.quantizer import VQConfig

av = pytest.importorskip("av", reason="PyAV (the video extra: pip install mmtok[video]) is not installed")

FPS = 10  # frames per second of the generated clips
SIDE = 16  # pixels a side of their frames


def sound(rate: int, seconds: float, channels: int) -> np.ndarray:
    """int16 ``(samples, channels)``: a different tone on each channel, seeded noise under it."""
    t = np.arange(round(rate * seconds)) / rate
    noise = np.random.default_rng(0).normal(0, 0.02, (t.size, channels))
    tones = np.stack([0.4 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)], axis=1)
    return np.round((tones + noise) * 32767).clip(-32768, 32767).astype(np.int16)


def pcm_clip(path: Path, pcm: np.ndarray, rate: int, frames: int) -> Path:
    """An MKV of ``frames`` small frames at ``FPS`` and ``pcm`` (int16 ``(samples, channels)``) as PCM at ``rate``."""
    layout = {1: "mono", 2: "stereo"}[pcm.shape[1]]
    with av.open(str(path), "w", format="matroska") as c:
        v = c.add_stream("ffv1", rate=FPS)
        v.width = v.height = SIDE
        v.pix_fmt = "yuv444p"
        a = c.add_stream("pcm_s16le", rate=rate)
        a.layout = layout
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.full((SIDE, SIDE, 3), 6 * i % 256, np.uint8), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, FPS)
            c.mux(v.encode(f.reformat(format="yuv444p")))
        c.mux(v.encode(None))
        for i in range(0, pcm.shape[0], 1024):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[i : i + 1024].T), format="s16p", layout=layout)
            fr.sample_rate, fr.pts, fr.time_base = rate, i, Fraction(1, rate)
            c.mux(a.encode(fr))
        c.mux(a.encode(None))
    return path


def tiny_audio() -> AudioTokenizer:
    torch.manual_seed(0)
    return AudioTokenizer(AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=32), decoder_channels=16,
                                               decoder_blocks=1)).eval()


def tiny_video(temporal: str = "none") -> VideoTokenizer:
    torch.manual_seed(0)
    image = ImageTokenizer(ImageTokenizerConfig(image_size=16, patch=4, enc_channels=(16, 32), dec_channels=(32, 16),
                                                latent_dim=16, vq=VQConfig(dim=16, codebook_size=64))).eval()
    return VideoTokenizer(image, fps=float(FPS), temporal=temporal).eval()


# --------------------------------------------------------------------------- the soundtrack is the audio file's sound


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", [16_000, 22_050])
def test_pcm_soundtrack_gives_the_samples_and_codes_of_the_same_wav(tmp_path: Path, channels: int, rate: int) -> None:
    """The same int16 samples in a WAV and as an MKV's PCM soundtrack: the same mono samples at 16 kHz (channels
    averaged, resampled by mmtok.audio.resample, in the blocks load_audio reads), so the same codes."""
    from mmtok.video.read import read_audio

    pcm = sound(rate, 1.5, channels)
    sf.write(tmp_path / "a.wav", pcm, rate, subtype="PCM_16")
    got = read_audio(pcm_clip(tmp_path / "a.mkv", pcm, rate, frames=15))
    assert got is not None and got[1] == 16_000
    want = load_audio(tmp_path / "a.wav")
    assert torch.equal(got[0], want)
    tok = tiny_audio()
    assert torch.equal(tok.encode(got[0], sample_rate=16_000), tok.encode(tmp_path / "a.wav"))


def test_equal_stereo_channels_are_as_loud_as_one(tmp_path: Path) -> None:
    """L = R = a 0.5 sine: the soundtrack peaks at 0.5, as the audio loader's channel mean gives (FFmpeg's
    stereo-to-mono matrix would give 0.707, 3 dB louder)."""
    from mmtok.video.read import read_audio

    t = np.arange(16_000) / 16_000
    tone = np.round(0.5 * np.sin(2 * np.pi * 250 * t) * 32767).astype(np.int16)
    stereo = read_audio(pcm_clip(tmp_path / "s.mkv", np.stack([tone, tone], axis=1), 16_000, frames=10))
    mono = read_audio(pcm_clip(tmp_path / "m.mkv", tone[:, None], 16_000, frames=10))
    assert stereo is not None and mono is not None
    assert torch.equal(stereo[0], mono[0]) and float(stereo[0].abs().max()) == pytest.approx(0.5, abs=1e-3)


def test_soundtrack_past_max_seconds_is_refused_at_its_own_rate(tmp_path: Path) -> None:
    from mmtok.video.read import read_audio

    path = pcm_clip(tmp_path / "long.mkv", sound(44_100, 2.0, 2), 44_100, frames=20)
    with pytest.raises(VideoError, match="longer than max_seconds=1"):
        read_audio(path, max_seconds=1.0)
    got = read_audio(path, max_seconds=2.5)
    assert got is not None and got[0].numel() == 32_000


# --------------------------------------------------------------------------- chunks after the sound has ended


def test_chunks_after_the_sound_ends_carry_no_audio(tmp_path: Path) -> None:
    """4 s of frames, 2 s of sound, 1 s chunks: the last two chunks are frames only, and the document encodes."""
    path = pcm_clip(tmp_path / "half.mkv", sound(16_000, 2.0, 1), 16_000, frames=4 * FPS)
    vt = tiny_video()
    segs = vt.segments(path, chunk_seconds=1.0, samples_per_token=320)
    assert [next(iter(s)) for s in segs] == ["video_codes", "audio"] * 2 + ["video_codes"] * 2
    assert [s["audio"].numel() for s in segs if "audio" in s] == [16_000, 16_000]
    il = Interleaver(None, audio=tiny_audio(), video=vt)
    doc = il.normalize([{"video": str(path), "chunk_seconds": 1.0}])
    assert [next(iter(s)) for s in doc] == ["video_codes", "audio_codes"] * 2 + ["video_codes"] * 2
    assert len(il.encode([{"video": str(path), "chunk_seconds": 1.0}]).ids) > 0


# --------------------------------------------------------------------------- a repeat code in the first frame


def repeat_stream() -> tuple[Interleaver, torch.Tensor, torch.Tensor]:
    """An interleaver with a repeat-coded video tokenizer, a stream of ``"x"`` and a 2-frame video, and the
    video's codes; the stream's first frame's codes 0 and 2 are then turned into the repeat code."""
    vt = tiny_video("repeat")
    il = Interleaver(None, video=vt)
    codes = torch.tensor([[[5, 6, 7, 8], [9, 10, 11, 12], [1, 2, 3, 4], [13, 14, 15, 16]]] * 2)
    codes[1, 0, 0] = vt.repeat_id
    ids = il.encode(["x", {"video_codes": codes}]).ids.clone()
    bov = int((ids == il.BOV).nonzero()[0])
    ids[bov + 1] = ids[bov + 3] = il.vocab.range("video").start + vt.repeat_id
    return il, ids, codes


def test_encode_refuses_a_repeat_code_in_the_first_frame() -> None:
    il, _, codes = repeat_stream()
    codes[0, 2, 1] = il.video.repeat_id  # type: ignore[union-attr]
    with pytest.raises(DocumentError, match="segment 1: the video's first frame holds the repeat code 64"):
        il.encode(["x", {"video_codes": codes}])


def test_decode_names_the_position_of_a_repeat_code_in_the_first_frame() -> None:
    il, ids, _ = repeat_stream()
    for media in (False, True):
        with pytest.raises(StreamError, match=r"^position 3: expected a code in a video's first frame") as e:
            il.decode(ids, media=media)
        assert e.value.position == 3


def test_repair_gives_a_first_frame_repeat_the_code_before_it() -> None:
    """Position 3 (the frame's first code) has no code before it: code 0; position 5 takes code 6, before it."""
    il, ids, codes = repeat_stream()
    got = il.decode(ids, media=True, repair=True)
    assert [(r.position, r.action) for r in got.repairs] == [(3, "replaced it with video code 0"),
                                                           (5, "replaced it with video code 6")]
    assert got[1]["video_codes"][0, 0].tolist() == [0, 6, 6, 8]
    assert torch.equal(got[1]["video_codes"][1:], codes[1:]) and got[1]["video"].shape[:2] == (2, 3)


def test_video_decode_of_a_first_frame_repeat_is_a_video_error() -> None:
    vt = tiny_video("repeat")
    codes = torch.zeros(2, 4, 4, dtype=torch.long)
    codes[0, 1, 1] = vt.repeat_id
    with pytest.raises(VideoError, match="first frame holds the repeat code 64") as e:
        vt.decode(codes)
    assert isinstance(e.value, MmtokError)
