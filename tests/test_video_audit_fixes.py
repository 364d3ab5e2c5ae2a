"""Reading video as it plays and as it was written: frames on time on a millisecond clock, cut files
refused (frames and sound), frames filled into one tensor under a memory limit; and the planner's
counts and costs as the stream and the model have them.

Every clip is made here with PyAV: small frames, flat grays that name their index.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from mmtok.core.errors import VideoError

av = pytest.importorskip("av", reason="PyAV (the video extra: pip install mmtok[video]) is not installed")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
GRAY_STEP = 4  # frame i is a flat gray of GRAY_STEP * i
RATE = 16_000  # Hz of the generated soundtracks


def gray_clip(path: Path, fps: int, n: int, *, options: dict[str, str] | None = None, side: int = 16) -> Path:
    """``n`` frames at ``fps``, frame i a flat gray of ``GRAY_STEP * i``, coded losslessly (x264, qp 0, 4:4:4)."""
    with av.open(str(path), "w", options=options or {}) as c:
        s = c.add_stream("libx264", rate=fps)
        s.width = s.height = side
        s.pix_fmt = "yuv444p"
        s.codec_context.options = {"qp": "0", "bf": "0"}
        for i in range(n):
            f = av.VideoFrame.from_ndarray(np.full((side, side, 3), GRAY_STEP * i, np.uint8), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    return path


def shown(frames: torch.Tensor) -> list[int]:
    """Which generated frame each read frame is."""
    return [round(float(f.mean()) * 255 / GRAY_STEP) for f in frames]


# --------------------------------------------------------------------------- frames on time


@pytest.mark.parametrize("name", ["clip.mkv", "clip.webm", "clip.mp4"])
def test_each_frame_is_sampled_once_at_its_own_rate_on_a_millisecond_clock(tmp_path: Path, name: str) -> None:
    """Matroska and WebM store 30 fps times as whole milliseconds (33, 67, 100, ...): a time rounded up is
    still on screen at its true time, so no frame is taken one late (MP4's clock holds them exactly)."""
    from mmtok.video.read import read_video

    if name.endswith(".webm"):
        path = tmp_path / name
        with av.open(str(path), "w") as c:  # WebM takes VP8/VP9: gray levels within one of the written
            s = c.add_stream("libvpx-vp9", rate=30)
            s.width = s.height = 16
            s.codec_context.options = {"lossless": "1"}
            s.pix_fmt = "yuv444p"
            for i in range(60):
                f = av.VideoFrame.from_ndarray(np.full((16, 16, 3), GRAY_STEP * i, np.uint8), format="rgb24")
                f.pts, f.time_base = i, Fraction(1, 30)
                c.mux(s.encode(f))
            c.mux(s.encode(None))
    else:
        path = gray_clip(tmp_path / name, 30, 60)
    assert shown(read_video(path, fps=30).frames) == list(range(60))
    assert shown(read_video(path, fps=15).frames) == list(range(0, 60, 2))


def test_a_clock_that_ticks_once_a_frame_keeps_exact_times(tmp_path: Path) -> None:
    """A 25 fps MP4 whose clock counts whole frames (timescale 25) read at 30 fps: each sample is the frame on
    screen then, never the next one taken half a tick early."""
    from mmtok.video.read import read_video

    path = gray_clip(tmp_path / "ticks.mp4", 25, 50, options={"video_track_timescale": "25"})
    with av.open(str(path)) as c:
        assert c.streams.video[0].time_base == Fraction(1, 25)
    assert shown(read_video(path, fps=30).frames) == [k * 25 // 30 for k in range(60)]


# --------------------------------------------------------------------------- cut files


def _faststart_with_sound(path: Path) -> Path:
    """2 s at 10 fps with 2 s of AAC sound, the index first (as cameras and web encoders write)."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        a = c.add_stream("aac", rate=RATE)
        a.layout = "mono"
        noise = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
        for i in range(20):
            f = av.VideoFrame.from_ndarray(noise[i], format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 10)
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        wave = (0.2 * np.sin(np.arange(2 * RATE) * 0.17)).astype(np.float32)
        for k in range(0, wave.size, 1024):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[None, k : k + 1024]), format="flt",
                                           layout="mono")
            f.sample_rate, f.pts, f.time_base = RATE, k, Fraction(1, RATE)
            c.mux(a.encode(f))
        c.mux(a.encode(None))
    return path


def test_a_cut_mp4_is_refused_by_its_boxes(tmp_path: Path) -> None:
    """Cut by a tenth, an MP4 with its index first still opens; its 'mdat' box says the rest is missing."""
    from mmtok.video.read import read_audio, read_video

    whole = _faststart_with_sound(tmp_path / "whole.mp4")
    assert read_video(whole, fps=10).frames.shape[0] == 20 and read_audio(whole)[0].numel() == 2 * RATE
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.9)])
    pattern = r"^video file '.*cut\.mp4' is truncated or corrupt: its MP4 'mdat' box declares [\d,]+ bytes, the file ends [\d,]+ bytes into it$"
    with pytest.raises(VideoError, match=pattern):
        read_video(cut, fps=10)
    with pytest.raises(VideoError, match=pattern):
        read_audio(cut)


def _matroska_cut_in_its_last_half_second(tmp_path: Path) -> Path:
    """4 s at 10 fps with PCM sound in 50 ms frames, cut where frame 36's packet starts: the last 0.3 to 0.4 s
    of frames and sound lost (more than two frames, less than the half second once let through), the track
    DURATION tags (written first) still saying 4 s."""
    whole = tmp_path / "whole.mkv"
    with av.open(str(whole), "w") as c:
        v = c.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        a = c.add_stream("pcm_s16le", rate=RATE, layout="mono")
        tone = (8000 * np.sin(np.arange(800) * 0.1)).astype(np.int16)[None]
        for i in range(40):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 5 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 10)
            c.mux(v.encode(f))
            for half in range(2):
                s = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
                s.sample_rate, s.pts, s.time_base = RATE, (2 * i + half) * 800, Fraction(1, RATE)
                c.mux(a.encode(s))
        c.mux(v.encode(None))
        c.mux(a.encode(None))
    with av.open(str(whole)) as c:
        at = next(p.pos for p in c.demux(c.streams.video[0]) if p.pts is not None and p.pts * p.time_base >= 3.6)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[:at])
    return cut


def test_a_matroska_file_cut_short_is_refused_frames_and_sound(tmp_path: Path) -> None:
    """Matroska has no box sizes: frames or sound that end 0.3 s before their track's stated end are a cut
    file, not the last frame held and the sound returned short."""
    from mmtok.video.read import read_audio, read_video

    cut = _matroska_cut_in_its_last_half_second(tmp_path)
    with pytest.raises(VideoError, match=r"cut\.mkv' is truncated or corrupt: its frames end at 3\.[4-7]00 s, but its "
                                         r"video stream says 4\.000 s$"):
        read_video(cut, fps=10)
    with pytest.raises(VideoError, match=r"cut\.mkv' is truncated or corrupt: its soundtrack ends at 3\.\d+ s, but "
                                         r"its audio stream says 4\.000 s$"):
        read_audio(cut)
    whole = tmp_path / "whole.mkv"
    assert read_video(whole, fps=10).frames.shape[0] == 40 and read_audio(whole)[0].numel() == 4 * RATE


# --------------------------------------------------------------------------- memory


def test_frames_are_filled_chunk_by_chunk_into_one_tensor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No concatenation of every frame and no second float copy: each chunk is converted on its own into a
    tensor of exactly the frames the file's stated length gives."""
    from mmtok.video import read

    path = gray_clip(tmp_path / "clip.mp4", 10, 40)
    chunks = [c for c, _ in read.iter_video(path, fps=10)]
    converted: list[int] = []
    to_float = read.frames_to_float
    monkeypatch.setattr(read, "frames_to_float", lambda x: converted.append(len(x)) or to_float(x))
    frames, times = read.read_video(path, fps=10)
    assert max(converted) <= read.CHUNK_FRAMES and sum(converted) == 40
    assert torch.equal(frames, to_float(np.concatenate(chunks))) and times.tolist() == [i / 10 for i in range(40)]
    assert frames.is_contiguous() and frames.untyped_storage().nbytes() == frames.numel() * 4


@pytest.mark.parametrize("stated", [None, 2.0], ids=["states-no-length", "runs-past-its-stated-end"])
def test_frames_past_the_stated_length_join_the_tensor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       stated: float | None) -> None:
    from mmtok.video import read

    path = gray_clip(tmp_path / "clip.mp4", 10, 40)
    monkeypatch.setattr(read, "_stated_end", lambda stream, container: stated)
    frames, times = read.read_video(path, fps=10)
    assert shown(frames) == list(range(40)) and times.shape == (40,)


def test_more_than_max_bytes_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """40 frames of 16x16 hold 122,880 bytes as float32: under max_bytes=100,000 a one-line error that points to
    iter_video, before any frame is decoded; a file that states no length is stopped once it passes."""
    from mmtok.video import read

    path = gray_clip(tmp_path / "clip.mp4", 10, 40)
    assert read.read_video(path, fps=10, max_bytes=122_880).frames.shape[0] == 40
    assert read.read_video(path, fps=10, max_bytes=None).frames.shape[0] == 40
    with monkeypatch.context() as m:
        m.setattr(read, "iter_video", lambda *a, **k: pytest.fail("decoded before the size was checked"))
        with pytest.raises(VideoError, match=r"^video file '.*clip\.mp4': read_video at 10 fps would hold 40 frames of "
                                             r"16x16, .* more than max_bytes=100,000; .*iter_video[^\n]*$"):
            read.read_video(path, fps=10, max_bytes=100_000)
    monkeypatch.setattr(read, "_stated_end", lambda stream, container: None)
    with pytest.raises(VideoError, match=r"passes max_bytes=100,000 at 40 frames of 16x16 .*iter_video"):
        read.read_video(path, fps=10, max_bytes=100_000)
    with pytest.raises(ValueError, match="max_bytes must be > 0 or None"):
        read.read_video(path, fps=10, max_bytes=0)
    assert read.MAX_VIDEO_BYTES == 8 * 2**30


# --------------------------------------------------------------------------- the planner


def test_training_prices_the_causal_attention_at_three_forward_passes() -> None:
    from mmtok.context.planner import plan

    for p in (plan(60, preset="gemini", model="tiny", vocab_size=1000), plan(600, preset="lwm", model="base")):
        attention_train = p.train_flops - 6.0 * p.n_params * p.total_tokens
        assert attention_train == pytest.approx(3 * p.attention_flops)


def test_the_shipped_audio_rate_is_the_tokenizers_own(monkeypatch: pytest.MonkeyPatch) -> None:
    import mmtok
    from mmtok.audio.config import AudioTokenizerConfig
    from mmtok.context.shipped import plan
    from mmtok.pretrained import available

    if "audio" not in available():
        pytest.skip("no shipped audio tokenizer")
    assert plan(1, preset="mmtok").audio_tokens_per_second == mmtok.load("audio").tokens_per_second == 50
    monkeypatch.setattr(AudioTokenizerConfig, "tokens_per_second", property(lambda self: 7))
    assert plan(1, preset="mmtok").audio_tokens_per_second == 7  # the rule of the tokenizer's config, not a copy


def test_the_plan_counts_the_stream_the_interleaver_writes(tmp_path: Path) -> None:
    """Every token of the interleaver's stream but its <bos> and <eos> is one the plan counts: pan.mp4 (6 frames
    at 1 fps, 6 s of sound) and a 4.5 s clip without sound (5 frames at 1 fps)."""
    import mmtok
    from mmtok.context.shipped import plan

    il = mmtok.Interleaver(None, video=mmtok.load("video"), audio=mmtok.load("audio"))
    ends = (il.vocab.id("<bos>"), il.vocab.id("<eos>"))
    silent = gray_clip(tmp_path / "silent.mp4", 10, 45, side=48)
    for path, planned in ((EXAMPLES / "pan.mp4", plan(6.0, preset="mmtok")),
                          (silent, plan(4.5, preset="mmtok", audio=None))):
        ids = il.encode([{"video": str(path)}]).ids
        assert (int(ids[0]), int(ids[-1])) == ends
        assert planned.total_tokens == ids.numel() - 2, path.name
