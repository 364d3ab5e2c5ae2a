"""Which stream of a media file is read: of several audio or video streams every reader takes the same one,
the one marked default, else FFmpeg's pick, never a cover picture, and says which when there was a choice.

Every file is made here with PyAV: a second of steady mono sound, small pictures.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from mmtok.core.errors import VideoError

av = pytest.importorskip("av", reason="PyAV (the video extra: pip install mmtok[video]) is not installed")

RATE = 16_000  # Hz of the generated sound
SIDE = 16  # pixels of the generated pictures
COVER = 200  # the grey of a cover picture
D = av.stream.Disposition


def _sound(c: object, s: object, level: float) -> None:
    """One second of a steady ``level`` muxed into ``c`` through the mono stream ``s``."""
    for i in range(0, RATE, 1024):
        f = av.AudioFrame.from_ndarray(np.full((1, 1024), level, np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts, f.time_base = RATE, i, Fraction(1, RATE)
        c.mux(s.encode(f))
    c.mux(s.encode(None))


def _audio_stream(c: object, codec: str = "aac", disposition: object = None) -> object:
    s = c.add_stream(codec, rate=RATE)
    s.layout = "mono"
    if disposition is not None:
        s.disposition = disposition
    return s


def _picture_stream(c: object, codec: str = "mjpeg", *, cover: bool = True) -> object:
    """A one-picture stream: cover art (an attached picture) or, with ``cover`` False, a plain one-frame track."""
    p = c.add_stream(codec, rate=1)
    p.width = p.height = SIDE
    p.pix_fmt = "yuvj420p"
    p.disposition = D.attached_pic if cover else D(0)
    return p


def _picture(c: object, p: object) -> None:
    f = av.VideoFrame.from_ndarray(np.full((SIDE, SIDE, 3), COVER, np.uint8), format="rgb24")
    f.pts, f.time_base = 0, Fraction(1, 1)
    for packet in [*p.encode(f), *p.encode(None)]:
        c.mux(packet)


def _frames(c: object, v: object, n: int = 10) -> None:
    """``n`` frames at 10 fps, frame ``i`` red ``20 * i``."""
    for i in range(n):
        a = np.zeros((SIDE, SIDE, 3), np.uint8)
        a[..., 0] = 20 * i
        f = av.VideoFrame.from_ndarray(a, format="rgb24")
        f.pts, f.time_base = i, Fraction(1, 10)
        c.mux(v.encode(f))
    c.mux(v.encode(None))


def two_soundtracks_m4a(path: Path) -> Path:
    """An M4A with two AAC streams, a steady 0.1 (stream #0) and 0.3 (stream #1, the one marked default)."""
    with av.open(str(path), "w", format="mp4") as c:
        first, second = _audio_stream(c, disposition=D(0)), _audio_stream(c, disposition=D.default)
        _sound(c, first, 0.1)
        _sound(c, second, 0.3)
    return path


def described_first_mkv(path: Path, marked: bool = False) -> Path:
    """A Matroska clip with two AAC streams, both marked default (``marked``) or neither: an audio description
    first (0.1, marked for the visually impaired), the main sound second (0.3); FFmpeg's pick is the second."""
    with av.open(str(path), "w", format="matroska", options={"default_mode": "passthrough"}) as c:
        v = c.add_stream("libx264", rate=10)
        v.width = v.height = SIDE
        v.pix_fmt = "yuv420p"
        v.disposition = D(0)
        default = D.default if marked else D(0)
        described = _audio_stream(c, disposition=D.visual_impaired | default)
        main = _audio_stream(c, disposition=default)
        _frames(c, v)
        _sound(c, described, 0.1)
        _sound(c, main, 0.3)
    return path


def song_with_cover(path: Path, fmt: str, codec: str) -> Path:
    """A one-second sound (0.2) with cover art, as a music file carries it."""
    with av.open(str(path), "w", format=fmt) as c:
        a = _audio_stream(c, codec)
        p = _picture_stream(c)
        _picture(c, p)
        _sound(c, a, 0.2)
    return path


def thumbnail_first_mkv(path: Path) -> Path:
    """A Matroska clip whose first video stream is a one-frame thumbnail, its second the 10 frames of the video."""
    with av.open(str(path), "w", format="matroska", options={"default_mode": "passthrough"}) as c:
        p = _picture_stream(c, cover=False)
        v = c.add_stream("libx264", rate=10)
        v.width = v.height = SIDE
        v.pix_fmt = "yuv420p"
        v.disposition = D(0)
        _picture(c, p)
        _frames(c, v)
    return path


def level(wave: torch.Tensor | np.ndarray) -> float:
    return float(np.asarray(wave)[4000:12000].mean())


# --------------------------------------------------------------------------- the audio readers agree


def test_every_reader_takes_the_soundtrack_marked_default_and_says_so(tmp_path: Path) -> None:
    from mmtok.audio.io import load_audio
    from mmtok.audio.vocoder_data import decode_file
    from mmtok.video.read import read_audio

    path = two_soundtracks_m4a(tmp_path / "two.m4a")
    said = r"two\.m4a'? has 2 audio streams: .*stream #1 \(the one marked default\)"
    with pytest.warns(UserWarning, match=said):
        assert level(load_audio(path)) == pytest.approx(0.3, abs=0.02)
    with pytest.warns(UserWarning, match=said):
        assert level(decode_file(path)[0]) == pytest.approx(0.3, abs=0.02)
    with pytest.warns(UserWarning, match=said):
        assert level(read_audio(path)[0]) == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize(("marked", "why"), [(False, "FFmpeg's pick: none is marked default"),
                                             (True, "FFmpeg's pick of the 2 marked default")])
def test_of_soundtracks_marked_alike_ffmpeg_picks_the_main_one_not_the_description(tmp_path: Path, marked: bool,
                                                                                  why: str) -> None:
    from mmtok.video.read import read_audio

    path = described_first_mkv(tmp_path / "described.mkv", marked)
    with pytest.warns(UserWarning, match=rf"its soundtrack is stream #2 \({why}\)"):
        wave, _ = read_audio(path)
    assert level(wave) == pytest.approx(0.3, abs=0.02)


def test_one_soundtrack_and_a_cover_is_read_without_a_word(tmp_path: Path) -> None:
    from mmtok.audio.io import load_audio
    from mmtok.video.read import read_audio

    path = song_with_cover(tmp_path / "song.m4a", "mp4", "aac")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert level(load_audio(path)) == pytest.approx(0.2, abs=0.02)
        assert level(read_audio(path)[0]) == pytest.approx(0.2, abs=0.02)


# --------------------------------------------------------------------------- a cover picture is not a video


@pytest.mark.parametrize(("name", "fmt", "codec"), [("song.mp3", "mp3", "libmp3lame"), ("song.mp4", "mp4", "aac")])
def test_a_sound_file_with_cover_art_is_not_read_as_a_one_frame_video(tmp_path: Path, name: str, fmt: str,
                                                                      codec: str) -> None:
    from mmtok.image.config import ImageTokenizerConfig
    from mmtok.image.tokenizer import ImageTokenizer
    from mmtok.video.read import iter_video, read_video
    from mmtok.video.tokenizer import VideoTokenizer
    from mmtok.vq.quantizer import VQConfig

    path = song_with_cover(tmp_path / name, fmt, codec)
    said = rf"{name}' has no video stream: its only picture is cover art \(stream #1, an attached picture\)"
    with pytest.raises(VideoError, match=said):
        read_video(path)
    with pytest.raises(VideoError, match=said):
        next(iter_video(path))
    torch.manual_seed(0)
    cfg = ImageTokenizerConfig(image_size=32, patch=4, enc_channels=(16, 32), dec_channels=(32, 16), latent_dim=16,
                               vq=VQConfig(dim=16, codebook_size=64))
    with pytest.raises(VideoError, match=said):
        VideoTokenizer(ImageTokenizer(cfg).eval(), fps=1.0).encode(path)


def test_a_video_with_cover_art_reads_its_frames_without_a_word(tmp_path: Path) -> None:
    from mmtok.video.read import read_video

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        v = c.add_stream("libx264", rate=10)
        v.width = v.height = SIDE
        v.pix_fmt = "yuv420p"
        p = _picture_stream(c)
        _picture(c, p)
        _frames(c, v)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frames, _ = read_video(path, fps=10)
    assert frames.shape[0] == 10 and float(frames[:, 1].mean()) < 0.1  # red ramps, never the grey cover


def test_a_thumbnail_track_first_gives_way_to_the_video_streamed_or_whole(tmp_path: Path) -> None:
    from mmtok.video.read import frames_to_float, iter_video, read_video

    path = thumbnail_first_mkv(tmp_path / "thumb.mkv")
    said = r"thumb\.mkv' has 2 video streams: its frames are stream #1 \(FFmpeg's pick: none is marked default\)"
    with pytest.warns(UserWarning, match=said) as caught:
        frames, times = read_video(path, fps=10)
    assert len(caught) == 1
    assert [round(float(r) * 255 / 20) for r in frames[:, 0].mean((1, 2))] == list(range(10))
    with pytest.warns(UserWarning, match=said):
        chunks = list(iter_video(path, fps=10, chunk=3))
    assert torch.equal(torch.cat([frames_to_float(f) for f, _ in chunks]), frames)
    assert np.array_equal(np.concatenate([t for _, t in chunks]), times.numpy())
