"""Video: frame sampling on generated files (constant and variable frame rate), the
tokenizer through the Interleaver, the temporal compression's exact inverse, bad files."""

from __future__ import annotations

import builtins
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtok.core.errors import VideoError
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.stream.interleave import Interleaver
from mmtok.stream.positions import positions_thw
from mmtok.video.temporal import (
    compression_stats,
    repeat_decode,
    repeat_encode,
    run_length_decode,
    run_length_encode,
)
from mmtok.video.tokenizer import VideoTokenizer
from mmtok.vq.quantizer import VQConfig

LEVEL0, LEVEL_STEP = 10, 8  # frame i is a flat gray of LEVEL0 + LEVEL_STEP * i (identifiable after lossy coding)


def _levels(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    lv = LEVEL0 + LEVEL_STEP * np.arange(n)
    return np.broadcast_to(lv[:, None, None, None], (n, h, w, 3)).astype(np.uint8).copy()


def _index(frames: torch.Tensor) -> list[int]:
    """Which generated frame each decoded frame is, from its mean gray level."""
    return [round((float(f.mean()) * 255 - LEVEL0) / LEVEL_STEP) for f in frames]


def write_video(path: Path, frames: np.ndarray, times: list[float], *, codec: str = "mpeg4",
                audio_seconds: float = 0.0, rate: int = 1000) -> Path:
    """Write uint8 ``[N, H, W, 3]`` frames shown at ``times`` (seconds), optionally with a sine soundtrack.

    ``rate``: the nominal frame rate (a constant-rate file's), 1000 for millisecond timestamps (VFR).
    """
    av = pytest.importorskip("av", reason="PyAV (the video extra: pip install mmtok[video]) is not installed")
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        a = c.add_stream("aac", rate=16000) if audio_seconds else None
        for img, t in zip(frames, times, strict=True):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts, f.time_base = round(t * 1000), Fraction(1, 1000)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
        if a is not None:
            n = int(16000 * audio_seconds)
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)).astype(np.float32)
            for k in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(wave[None, k : k + 1024], format="fltp", layout="mono")
                af.sample_rate, af.pts = 16000, k
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


@pytest.fixture(scope="module")
def cfr(tmp_path_factory) -> Path:
    """3 s at 10 fps: frame i shown over [i/10, (i+1)/10)."""
    return write_video(tmp_path_factory.mktemp("v") / "cfr.mp4", _levels(30), [i / 10 for i in range(30)],
                       codec="libx264", rate=10)


VFR_TIMES = [0.0, 0.1, 0.15, 0.5, 0.9, 1.0, 1.7, 2.0, 2.05, 2.6]


@pytest.fixture(scope="module")
def vfr(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "vfr.mkv", _levels(len(VFR_TIMES)), VFR_TIMES)


def tiny_tokenizer() -> ImageTokenizer:
    cfg = ImageTokenizerConfig(image_size=32, patch=4, enc_channels=(16, 32), dec_channels=(32, 16),
                               latent_dim=16, vq=VQConfig(dim=16, codebook_size=64))
    return ImageTokenizer(cfg).eval()


# --------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("fps", [2.0, 3.0, 10.0, 25.0])
def test_constant_rate_sampling(cfr: Path, fps: float) -> None:
    from mmtok.video.read import read_video

    frames, times = read_video(cfr, fps=fps)
    assert frames.dtype == torch.float32 and frames.shape[1:] == (3, 48, 64)
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    n = int(np.ceil(3.0 * fps - 1e-9))
    assert frames.shape[0] == n and torch.allclose(times, torch.arange(n, dtype=torch.float64) / fps)
    expected = [min(29, int(np.floor(t * 10 + 1e-6))) for t in times.tolist()]  # the frame on screen at t
    assert _index(frames) == expected


def test_variable_rate_sampling(vfr: Path) -> None:
    from mmtok.video.read import read_video

    frames, times = read_video(vfr, fps=4.0)
    seen = _index(frames)
    inside = [k for k, t in enumerate(times.tolist()) if t < VFR_TIMES[-1]]
    assert len(inside) == 11 and len(seen) >= len(inside)
    for k in inside:
        t = float(times[k])
        assert seen[k] == max(i for i, s in enumerate(VFR_TIMES) if s <= t + 1e-9), (t, seen)
    assert all(s == len(VFR_TIMES) - 1 for s in seen[len(inside) :])


def test_size_start_duration_and_streaming(cfr: Path) -> None:
    from mmtok.video.read import iter_video, read_video

    frames, _ = read_video(cfr, fps=2.0, size=24)
    assert frames.shape[-2:] == (24, 32)  # shorter side 24, aspect kept
    frames, times = read_video(cfr, fps=5.0, size=(16, 20), start=1.0, duration=1.0)
    assert frames.shape == (5, 3, 16, 20)
    assert times.tolist() == pytest.approx([1.0, 1.2, 1.4, 1.6, 1.8])
    assert _index(frames) == [10, 12, 14, 16, 18]
    chunks = list(iter_video(cfr, fps=10.0, chunk=7))
    assert [len(c) for c, _ in chunks] == [7, 7, 7, 7, 2]  # streamed in bounded chunks


# --------------------------------------------------------------------------- bad input


def test_bad_files(tmp_path: Path, cfr: Path) -> None:
    from mmtok.video.read import read_video

    av = pytest.importorskip("av", reason="PyAV (the video extra: pip install mmtok[video]) is not installed")
    with pytest.raises(FileNotFoundError, match=r"nope\.mp4"):
        read_video(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match=r"junk\.mp4"):
        read_video(junk)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(cfr.read_bytes()[: cfr.stat().st_size // 2])  # mp4 with its index missing
    with pytest.raises(VideoError, match=r"cut\.mp4"):
        read_video(cut)
    sound = tmp_path / "sound.wav"
    with av.open(str(sound), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        f.sample_rate = 8000
        c.mux(s.encode(f))
        c.mux(s.encode(None))
    with pytest.raises(VideoError, match=r"sound.wav.*no video stream"):
        read_video(sound)
    with pytest.raises(VideoError, match="folder"):
        read_video(tmp_path)
    for fps in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="fps"):
            read_video(cfr, fps=fps)
    with pytest.raises(ValueError, match="fps"):
        VideoTokenizer(tiny_tokenizer(), fps=0)
    with pytest.raises(VideoError, match=r"cfr\.mp4: no frames from 100 s.*past the end"):
        read_video(cfr, start=100.0)
    vt = VideoTokenizer(tiny_tokenizer(), fps=2.0)
    with pytest.raises(VideoError, match=r"cfr\.mp4: no frames from 100 s"):
        vt.encode(cfr, start=100.0)
    with pytest.raises(VideoError, match="integers, got dtype float32"):
        vt.decode(torch.zeros(1, 4, 4) + 0.7)  # not truncated to code 0
    with pytest.raises(VideoError, match="zero frames"):
        vt.decode(torch.zeros(0, 4, 4, dtype=torch.long))
    with pytest.raises(VideoError, match="zero frames"):
        vt.encode([])


def test_a_list_of_images_of_different_sizes_is_one_clip(tmp_path: Path) -> None:
    from PIL import Image

    vt = VideoTokenizer(tiny_tokenizer(), fps=1.0)
    for name, size in (("a.png", (48, 32)), ("b.png", (47, 32))):
        Image.new("RGB", size, (200, 40, 40)).save(tmp_path / name)
    codes = vt.encode([tmp_path / "a.png", tmp_path / "b.png"])
    assert codes.shape == (2, 4, 4)
    assert torch.equal(codes[0], vt.image.encode(tmp_path / "a.png")) and torch.equal(codes[1], vt.image.encode(tmp_path / "b.png"))


def test_missing_pyav_says_how_to_install(monkeypatch, tmp_path: Path) -> None:
    import mmtok.video.read as video

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 64)

    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "av" or name.startswith("av."):
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "av", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_av)
    with pytest.raises(ImportError, match=r"pip install mmtok\[video\]"):
        video.read_video(clip)


# --------------------------------------------------------------------------- tokenizer + interleaver


@pytest.mark.parametrize("temporal", ["none", "repeat"])
def test_stream_round_trip(cfr: Path, temporal: str) -> None:
    vt = VideoTokenizer(tiny_tokenizer(), fps=2.0, temporal=temporal)
    assert vt.codebook_size == 64 + (temporal == "repeat")
    codes = vt.encode(cfr)
    assert codes.shape == (6, 4, 4) and codes.dtype == torch.int64
    il = Interleaver(None, video=vt)
    s = il.encode(["a clip: ", {"video": cfr}, " end"])
    t, h, w = codes.shape
    assert len(s) == 1 + 8 + 1 + t * (h * (w + 1) + 1) + 1 + 4 + 1  # <bos> text <bov> frames <eov> text <eos>
    assert torch.equal(positions_thw(il.vocab, s.ids), s.pos_thw)
    segs = il.decode(s, media=True)
    assert [next(iter(x)) for x in segs] == ["text", "video_codes", "text"]
    assert torch.equal(segs[1]["video_codes"], codes)
    assert segs[1]["video"].shape == (6, 3, 32, 32)
    assert torch.equal(vt.expand(codes), VideoTokenizer(vt.image, fps=2.0).encode(cfr))
    assert il.pretty(s) == "a clip: [video 3.0 s, 6×4×4] end"


def test_encode_tensor_matches_file(cfr: Path) -> None:
    from mmtok.video.read import read_video

    vt = VideoTokenizer(tiny_tokenizer(), fps=2.0, chunk_frames=4)
    frames, _ = read_video(cfr, fps=2.0, size=32)
    assert torch.equal(vt.encode(frames), vt.encode(cfr))
    assert torch.equal(vt.encode((frames * 255).round().to(torch.uint8)), vt.encode(frames))


def test_segments_with_soundtrack(tmp_path: Path) -> None:
    path = write_video(tmp_path / "av.mp4", _levels(20), [i / 10 for i in range(20)], audio_seconds=2.0,
                       rate=10)
    vt = VideoTokenizer(tiny_tokenizer(), fps=4.0, temporal="repeat")
    segs = vt.segments(path, chunk_seconds=1.0)
    assert [next(iter(x)) for x in segs] == ["video_codes", "audio", "video_codes", "audio"]
    assert [x["video_codes"].shape[0] for x in segs[::2]] == [4, 4]
    assert not bool((segs[2]["video_codes"][0] == vt.repeat_id).any())  # each chunk decodes on its own
    n = sum(x["audio"].numel() for x in segs[1::2])
    assert abs(n - 32000) < 2048 and segs[1]["sample_rate"] == 16000
    assert float(segs[1]["audio"].abs().max()) > 0.1
    assert VideoTokenizer(tiny_tokenizer()).segments(write_video(
        tmp_path / "mute.mkv", _levels(3), [0, 0.1, 0.2]), chunk_seconds=1.0)[-1].keys() == {"video_codes"}


def test_chunked_soundtrack_codes_are_the_whole_soundtracks(tmp_path: Path) -> None:
    """Chunks of a third of a second (or a frame and a half, rounded half up to two frames) cut the sound on
    whole audio tokens: end to end they have as many codes as the whole soundtrack, no padded token per chunk
    (each stretch is encoded on its own, so codes at its edges may differ)."""
    import mmtok
    from mmtok.stream.interleave import Interleaver
    from mmtok.stream.vocab import Modality

    path = write_video(tmp_path / "av.mp4", _levels(20), [i / 10 for i in range(20)], audio_seconds=2.0, rate=10)
    audio = mmtok.load("audio")
    il = Interleaver(None, audio=audio, video=VideoTokenizer(tiny_tokenizer(), fps=3.0))
    whole = il.decode(il.encode([{"video": str(path)}]))
    want = torch.cat([x["audio_codes"] for x in whole if "audio_codes" in x])
    for chunk, frames in ((1 / 3, 1), (0.5, 2)):
        s = il.encode([{"video": str(path), "chunk_seconds": chunk}])
        parts = il.decode(s)
        assert [x["video_codes"].shape[0] for x in parts if "video_codes" in x][:2] == [frames, frames]
        got = torch.cat([x["audio_codes"] for x in parts if "audio_codes" in x])
        assert got.numel() == want.numel(), chunk
        chunks = sum("audio_codes" in x for x in parts)
        assert int((s.modality == Modality.AUDIO).sum()) == want.numel() + 2 * chunks


def test_interleaver_puts_the_soundtrack_after_the_frames(tmp_path: Path) -> None:
    import json

    import mmtok
    from mmtok.core.errors import DocumentError
    from mmtok.data.corpus import tokenize_corpus
    from mmtok.data.tokenizer_spec import TokenizerSpec
    from mmtok.stream.interleave import Interleaver
    from tests.test_interleave import LoudnessAudio

    path = write_video(tmp_path / "av.mp4", _levels(20), [i / 10 for i in range(20)], audio_seconds=2.0, rate=10)
    mute = write_video(tmp_path / "mute.mkv", _levels(4), [0, 0.25, 0.5, 0.75])
    vt = VideoTokenizer(tiny_tokenizer(), fps=2.0)
    il = Interleaver(None, audio=LoudnessAudio(), video=vt)
    whole = il.normalize([{"video": path}])
    assert [next(iter(x)) for x in whole] == ["video_codes", "audio_codes"]
    assert whole[0]["video_codes"].shape[0] == 4 and abs(whole[1]["audio_codes"].numel() - 80) <= 2  # 2 s at 40/s
    assert int(whole[1]["audio_codes"].max()) > 0  # the tone, not silence
    chunks = il.normalize(["a clip: ", {"video": str(path), "chunk_seconds": 1.0}])
    assert [next(iter(x)) for x in chunks] == ["text", "video_codes", "audio_codes", "video_codes", "audio_codes"]
    assert torch.equal(torch.cat([chunks[1]["video_codes"], chunks[3]["video_codes"]]), whole[0]["video_codes"])
    assert torch.equal(torch.cat([chunks[2]["audio_codes"], chunks[4]["audio_codes"]]), whole[1]["audio_codes"])
    # decode(encode(doc)) gives the same segments back, soundtrack included
    back = il.decode(il.encode([{"video": path, "chunk_seconds": 1.0}]))
    assert [next(iter(x)) for x in back] == [next(iter(x)) for x in chunks[1:]]
    assert all(torch.equal(a[k], b[k]) for a, b in zip(il.normalize([path]), whole, strict=True) for k in a)
    assert [next(iter(x)) for x in il.normalize([{"video": path, "soundtrack": False}])] == ["video_codes"]
    assert [next(iter(x)) for x in il.normalize([{"video": mute}])] == ["video_codes"]  # no sound: frames only
    no_audio = Interleaver(None, video=vt)
    assert [next(iter(x)) for x in no_audio.normalize([{"video": path}])] == ["video_codes"]
    with pytest.raises(ValueError, match="needs an audio tokenizer"):
        no_audio.normalize([{"video": path, "soundtrack": True}])
    with pytest.raises(DocumentError, match="no audio stream"):
        il.normalize([{"video": mute, "soundtrack": True}])
    with pytest.raises(ValueError, match="chunk_seconds must be a number of seconds > 0"):
        il.normalize([{"video": path, "chunk_seconds": 0}])
    with pytest.raises(ValueError, match="takes the options"):
        il.normalize([{"video": path, "fps": 3}])

    # the same document through the corpus tokenizer and `mmtok tokenize`'s code path
    folder = mmtok.save(vt, tmp_path / "video")
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(json.dumps({"segments": ["a clip: ", {"video": "av.mp4", "chunk_seconds": 1.0}]}) + "\n"
                      + json.dumps({"segments": [{"video": "av.mp4", "fps": 2}]}) + "\n")
    spec = TokenizerSpec(video=str(folder), audio="tests.test_interleave:LoudnessAudio")
    manifest = tokenize_corpus(corpus, tmp_path / "shards", tokenizers=spec, progress=False)
    assert manifest["docs"] == 1 and manifest["tokens"]["audio"] == 2 * 2 + whole[1]["audio_codes"].numel()
    assert "optional soundtrack and chunk_seconds" in manifest["skipped"][0]["reason"]


def test_shipped_video_name_builds_on_the_shipped_image_tokenizer() -> None:
    import mmtok

    vt = mmtok.load("video")
    assert isinstance(vt, VideoTokenizer) and vt.fps == 1.0 and "video" in mmtok.pretrained.available()
    assert vt.codebook_size == mmtok.load("image").codebook_size and not vt.training
    with pytest.raises(mmtok.CheckpointError, match="kind 'video'"):
        mmtok.load("video", kind="image")


# --------------------------------------------------------------------------- temporal compression


codes_strategy = st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 5), st.integers(1, 4),
                           st.integers(0, 2**31 - 1))


@settings(max_examples=200, deadline=None)
@given(codes_strategy, st.integers(1, 8))
def test_compression_exact_inverse(spec, max_run: int) -> None:
    t, h, w, k, seed = spec
    codes = torch.from_numpy(np.random.default_rng(seed).integers(0, k, (t, h, w)))
    rep = repeat_encode(codes, k)
    assert rep.shape == codes.shape and torch.equal(repeat_decode(rep, k), codes)
    rle = run_length_encode(codes, k, max_run=max_run)
    assert int(rle.max()) < k + max_run and rle.numel() <= codes.numel()
    assert torch.equal(run_length_decode(rle, k, codes.shape), codes)


def test_compression_known_answer_and_static_scene() -> None:
    codes = torch.tensor([[[1, 2], [3, 4]], [[1, 2], [3, 5]], [[1, 2], [3, 5]]])
    assert repeat_encode(codes, 9).tolist() == [[[1, 2], [3, 4]], [[9, 9], [9, 5]], [[9, 9], [9, 9]]]
    assert run_length_encode(codes, 9).tolist() == [1, 2, 3, 4, 11, 5, 12]  # 9 + 3 - 1, 9 + 4 - 1
    static = torch.randint(0, 100, (1, 8, 8)).repeat(10, 1, 1)
    stats = compression_stats(static, 100)
    assert stats["repeat_fraction"] == 1.0 and stats["rle_tokens"] == 64 + 9
    with pytest.raises(ValueError, match="first frame"):
        repeat_decode(torch.tensor([[[9]]]), 9)
    with pytest.raises(ValueError, match="expand to"):
        run_length_decode(torch.tensor([1, 12]), 9, (2, 2, 2))


def test_checkpoint_round_trip_and_tokenize_corpus(tmp_path: Path, cfr: Path) -> None:
    import json

    import mmtok
    from mmtok.data.corpus import tokenize_corpus
    from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver

    vt = VideoTokenizer(tiny_tokenizer(), fps=2.0, temporal="repeat")
    folder = mmtok.save(vt, tmp_path / "video")
    again = mmtok.load(folder)
    assert isinstance(again, VideoTokenizer) and again.cfg == vt.cfg
    assert torch.equal(again.encode(cfr), vt.encode(cfr))
    il = build_interleaver(TokenizerSpec(video=str(folder)))
    assert il.vocab.range("video").stop - il.vocab.range("video").start == 65
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(json.dumps({"segments": ["a clip: ", {"video": str(cfr)}]}) + "\n")
    manifest = tokenize_corpus(corpus, tmp_path / "shards", tokenizers=TokenizerSpec(video=str(folder)),
                               progress=False, allow_outside=True)  # the clip was written beside, not inside
    assert manifest["docs"] == 1 and manifest["tokens"]["total"] == len(il.encode(["a clip: ", {"video": cfr}]))


def test_a_soundtrack_longer_than_max_seconds_is_refused(tmp_path: Path) -> None:
    """A soundtrack longer than ``max_seconds`` is refused: before decoding when the file states its length,
    else once decoding passes it (memory stays bounded)."""
    from mmtok.video.read import read_audio

    clip = Path(__file__).resolve().parents[1] / "examples" / "data" / "pan.mp4"
    wave, rate = read_audio(clip)
    seconds = wave.numel() / rate
    assert seconds > 1.0
    with pytest.raises(VideoError, match="longer than max_seconds=1 s"):
        read_audio(clip, max_seconds=1.0)
    again, _ = read_audio(clip, max_seconds=None)
    assert torch.equal(again, wave)


def test_a_cut_file_is_refused_not_padded_with_its_last_frame(tmp_path: Path) -> None:
    """A video whose frames end long before its stream's stated end (a download cut short) is a VideoError,
    not its last decoded frame held to the stated end; the whole file still reads."""
    av = pytest.importorskip("av", reason="PyAV (the video extra: pip install mmtok[video]) is not installed")
    from mmtok.video.read import iter_video

    whole = tmp_path / "faststart.mp4"  # the index first, so that a cut file still opens
    with av.open(str(Path(__file__).resolve().parents[1] / "examples" / "data" / "pan.mp4")) as src, \
            av.open(str(whole), "w", options={"movflags": "faststart"}) as dst:
        video = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                dst.mux(packet)
    assert sum(len(frames) for frames, _ in iter_video(whole, fps=1.0, size=32)) == 6
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    with pytest.raises(VideoError, match=r"cut\.mp4' is (truncated or )?corrupt"):
        list(iter_video(cut, fps=1.0, size=32))
