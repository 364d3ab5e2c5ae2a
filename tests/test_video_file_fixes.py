"""Video files as they are written and read back: a variable-rate MP4 ends where its stream says, decoded frames
go to an MP4 chunk by chunk, frames smaller than a patch and several soundtracks are named.

Every clip is made here with PyAV: small frames, coded with x264.
"""

from __future__ import annotations

import io
import weakref
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from mmtok.core.errors import VideoError
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.video.tokenizer import VideoTokenizer
from mmtok.vq.quantizer import VQConfig

av = pytest.importorskip("av", reason="PyAV (the video extra: pip install mmtok[video]) is not installed")

MS = Fraction(1, 1000)  # the clock the clips' timestamps are given on
RATE = 16_000  # Hz of the generated soundtracks
RED_STEP = 25  # frame i is red RED_STEP * i
B_FRAMES = {"x264-params": "bframes=2:b-adapt=0:scenecut=0"}  # frame 1 of three a B-frame, whatever the pictures


def picture(i: int, w: int, h: int) -> np.ndarray:
    """Frame ``i`` (up to 10): red ``RED_STEP * i`` over green and blue ramps."""
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = RED_STEP * i
    a[..., 1] = np.arange(w)[None, :] % 256
    a[..., 2] = np.arange(h)[:, None] % 256
    return a


def clip(path: Path, pts: list[int], *, side: tuple[int, int] = (32, 32), fmt: str | None = None,
         options: dict[str, str] | None = None) -> Path:
    """Frames shown at ``pts`` milliseconds, x264 with its own settings (B-frames) unless ``options``."""
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height = side
        s.pix_fmt = "yuv420p"
        if options:
            s.codec_context.options = options
        s.time_base = s.codec_context.time_base = MS
        for i, t in enumerate(pts):
            f = av.VideoFrame.from_ndarray(picture(i, *side), format="rgb24")
            f.pts, f.time_base = t, MS
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    return path


def red(frames: torch.Tensor) -> list[int]:
    """Which generated frame each read frame is (by its red)."""
    return [round(float(f[0].mean()) * 255 / RED_STEP) for f in frames]


def tiny_video(chunk_frames: int = 2) -> VideoTokenizer:
    torch.manual_seed(0)
    cfg = ImageTokenizerConfig(image_size=32, patch=4, enc_channels=(16, 32), dec_channels=(32, 16), latent_dim=16,
                               vq=VQConfig(dim=16, codebook_size=64))
    return VideoTokenizer(ImageTokenizer(cfg).eval(), fps=1.0, chunk_frames=chunk_frames)


# --------------------------------------------------------------------------- a variable-rate MP4 ends on time


def test_a_variable_rate_mp4_ends_where_its_stream_says_not_at_a_reordered_frames_duration(tmp_path: Path) -> None:
    """Frames at 0, 0.1 and 5 s, the stream 5.1 s long. After B-frame reordering PyAV gives the last frame the
    4.9 s gap as its duration: the stated end decides, as Matroska's does."""
    from mmtok.video.read import read_video

    path = clip(tmp_path / "gap.mp4", [0, 100, 5000], options=B_FRAMES)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert float(stream.duration * stream.time_base) == pytest.approx(5.1)
        last = list(c.decode(stream))[-1]
        assert float(last.pts * last.time_base) == 5.0 and float(last.duration * last.time_base) == pytest.approx(4.9)
    frames, times = read_video(path, fps=10)
    assert len(times) == 51 and times[-1].item() == pytest.approx(5.0)
    assert red(frames) == [0] + [1] * 49 + [2]
    own = clip(tmp_path / "own.mp4", [0, 100, 5000])  # x264's own choice of frame types: the same
    mkv = clip(tmp_path / "gap.mkv", [0, 100, 5000], fmt="matroska")
    assert len(read_video(own, fps=10).frames) == len(read_video(mkv, fps=10).frames) == 51


def test_a_stated_end_before_the_last_frame_leaves_the_frames_to_decide(tmp_path: Path) -> None:
    """Files whose stream states an end before their last frame keep every frame, held for its own duration."""
    from mmtok.video.read import read_video

    vfr = clip(tmp_path / "vfr.mp4", [0, 100, 150, 500, 510, 520, 1500, 1600, 2900, 3000], side=(64, 48))
    with av.open(str(vfr)) as c:
        stream = c.streams.video[0]
        assert float(stream.duration * stream.time_base) < 2.9  # states less than the frames show
    frames, times = read_video(vfr, fps=10)
    assert len(times) == 31 and times[-1].item() == pytest.approx(3.0) and red(frames)[-2:] == [8, 9]
    short = clip(tmp_path / "short.mp4", [0, 100, 5000], options={"x264-params": "bframes=1:b-adapt=0:scenecut=0"})
    with av.open(str(short)) as c:
        stream = c.streams.video[0]
        assert float(stream.duration * stream.time_base) < 1.0  # states 0.3 s
    frames, times = read_video(short, fps=10)
    assert len(times) == 51 and red(frames)[-1] == 2


# --------------------------------------------------------------------------- decoding to an MP4 chunk by chunk


def test_decode_chunks_are_decoded_one_at_a_time_and_join_to_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    vt = tiny_video(chunk_frames=2)
    codes = torch.randint(0, 64, (5, 4, 4), generator=torch.Generator().manual_seed(1))
    whole = vt.decode(codes)
    assert whole.shape == (5, 3, 32, 32) and not whole.is_inference()
    assert torch.equal(whole, torch.cat([vt.image.decode(codes[i : i + 2]) for i in range(0, 5, 2)]))
    calls = []
    decode = vt.image.decode
    monkeypatch.setattr(vt.image, "decode", lambda c: calls.append(len(c)) or decode(c))
    chunks = vt.decode_chunks(codes)
    first = next(chunks)
    assert calls == [2] and first.shape == (2, 3, 32, 32) and not first.is_inference()
    assert torch.equal(torch.cat([first, *chunks]), whole) and calls == [2, 2, 1]
    with pytest.raises(VideoError, match="zero frames"):  # checked when asked, not on the first chunk
        vt.decode_chunks(torch.zeros(0, 4, 4, dtype=torch.long))


def test_write_video_takes_chunks_without_holding_them(tmp_path: Path) -> None:
    """Chunks are written as they come (none is kept once the next is asked for), and the MP4 is the one the
    whole tensor gives, with its soundtrack."""
    from mmtok.video.read import read_video
    from mmtok.video.write import write_video

    frames = torch.rand(7, 3, 32, 48, generator=torch.Generator().manual_seed(2))
    sound = torch.sin(torch.arange(7 * RATE) / RATE * 2 * torch.pi * 440)
    seen: list[weakref.ref[torch.Tensor]] = []

    def chunks() -> Iterator[torch.Tensor]:
        for i in range(0, 7, 3):
            assert all(r() is None for r in seen[:-1])  # the chunks before the last are let go
            piece = frames[i : i + 3].clone()
            seen.append(weakref.ref(piece))
            yield piece
            del piece

    whole, streamed = io.BytesIO(), io.BytesIO()
    write_video(whole, frames, fps=2.0, audio=sound, sample_rate=RATE)
    write_video(streamed, chunks(), fps=2.0, audio=sound, sample_rate=RATE)
    assert len(seen) == 3
    for name, buf in (("whole.mp4", whole), ("streamed.mp4", streamed)):
        (tmp_path / name).write_bytes(buf.getvalue())
    a, b = read_video(tmp_path / "whole.mp4", fps=2.0), read_video(tmp_path / "streamed.mp4", fps=2.0)
    assert len(a.frames) == 7 and torch.equal(a.frames, b.frames)
    with pytest.raises(VideoError, match="frames of one size, got 48×32 after 32×32"):
        write_video(io.BytesIO(), iter([torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 48)]), fps=1.0)
    with pytest.raises(VideoError, match="T >= 1, got no frames"):
        write_video(io.BytesIO(), iter([]), fps=1.0)


def test_mmtok_decode_writes_a_video_chunk_by_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """``mmtok decode`` never asks for the whole clip (``decode``), and writes the MP4 the whole clip gives."""
    from mmtok.cli import main
    from mmtok.video.read import read_video
    from mmtok.video.write import write_video

    (tmp_path / "tinyvideo.py").write_text(
        "import torch\n"
        "from mmtok.image.tokenizer import ImageTokenizer, ImageTokenizerConfig\n"
        "from mmtok.video.tokenizer import VideoTokenizer\n"
        "from mmtok.vq.quantizer import VQConfig\n\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    cfg = ImageTokenizerConfig(image_size=32, patch=4, enc_channels=(16, 32), dec_channels=(32, 16),\n"
        "                               latent_dim=16, vq=VQConfig(dim=16, codebook_size=64))\n"
        "    return VideoTokenizer(ImageTokenizer(cfg).eval(), fps=1.0, chunk_frames=2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    source = clip(tmp_path / "five.mp4", [0, 1000, 2000, 3000, 4000])
    assert main(["encode", str(source), "--video", "tinyvideo:make", "--out", str(tmp_path / "codes")]) == 0
    codes = torch.from_numpy(np.load(tmp_path / "codes" / "five.mp4.npz")["codes"])
    expected = tiny_video(chunk_frames=2).decode(codes)

    def whole(self: VideoTokenizer, codes: object) -> torch.Tensor:
        raise AssertionError("the whole clip was decoded at once")

    monkeypatch.setattr(VideoTokenizer, "decode", whole)
    assert main(["decode", str(tmp_path / "codes" / "five.mp4.npz"), "--video", "tinyvideo:make",
                 "--out", str(tmp_path / "back")]) == 0
    assert "five.mp4.decoded.mp4: 5 frames at 1 fps" in capsys.readouterr().out
    with open(tmp_path / "expected.mp4", "wb") as f:
        write_video(f, expected, fps=1.0)
    back = read_video(tmp_path / "back" / "five.mp4.decoded.mp4", fps=1.0).frames
    assert len(back) == 5 and torch.equal(back, read_video(tmp_path / "expected.mp4", fps=1.0).frames)


# --------------------------------------------------------------------------- messages that name the file


def test_frames_smaller_than_a_patch_name_the_video_file(tmp_path: Path) -> None:
    path = clip(tmp_path / "thin.mp4", [0, 1000], side=(64, 2))
    with pytest.raises(VideoError, match=r"video file '.*thin\.mp4': its frames are 64×2 pixels, smaller than one "
                                         r"8×8 patch"):
        tiny_video().encode(path)


def two_soundtracks(path: Path, default: int | None) -> Path:
    """A 1 s Matroska clip with two mono AAC streams, a steady 0.1 and 0.2; ``default``: the one marked default
    (None: neither; an MP4 writer marks the first)."""
    with av.open(str(path), "w", format="matroska", options={"default_mode": "passthrough"}) as c:
        v = c.add_stream("libx264", rate=10)
        v.width = v.height = 16
        v.pix_fmt = "yuv420p"
        sounds = [c.add_stream("aac", rate=RATE) for _ in range(2)]
        for k, s in enumerate(sounds):
            s.layout = "mono"
            s.disposition = av.stream.Disposition.default if k == default else av.stream.Disposition(0)
        for i in range(10):
            f = av.VideoFrame.from_ndarray(picture(i, 16, 16), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 10)
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        for k, s in enumerate(sounds):
            for i in range(0, RATE, 1024):
                f = av.AudioFrame.from_ndarray(np.full((1, 1024), 0.1 * (k + 1), np.float32), format="fltp",
                                               layout="mono")
                f.sample_rate, f.pts, f.time_base = RATE, i, Fraction(1, RATE)
                c.mux(s.encode(f))
            c.mux(s.encode(None))
    return path


@pytest.mark.parametrize(("default", "level", "said"), [(1, 0.2, "stream #2 (the one marked default)"),
                                                        (None, 0.1, "stream #1 (the first: none is marked default)")])
def test_of_two_soundtracks_the_default_one_is_read_and_named(tmp_path: Path, default: int | None, level: float,
                                                              said: str) -> None:
    from mmtok.video.read import read_audio

    path = two_soundtracks(tmp_path / "two.mkv", default)
    with pytest.warns(UserWarning, match=r"two\.mkv' has 2 audio streams: its soundtrack is ") as caught:
        wave, _ = read_audio(path)
    assert len(caught) == 1 and said in str(caught[0].message)
    assert float(wave[4000:12000].mean()) == pytest.approx(level, abs=0.02)
