"""A video file that holds only sound (speech saved as .mp4) is encoded, decoded and scored as the sound it is
(it was refused: "has no video stream"); a one-frame video is said as "1 frame"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import mmtok
from mmtok.audio.av_read import sound_only
from mmtok.cli import main
from mmtok.data.codes import load_codes
from mmtok.data.media_files import file_media_kind

av = pytest.importorskip("av")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


def _sound_mp4(path: Path, seconds: float = 2.0) -> Path:
    """An MP4 of AAC sound and no video stream."""
    rate = 16000
    n = int(rate * seconds)
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / rate)).astype(np.float32)[None]
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=rate)
        s.layout = "mono"
        for i in range(0, n, 1024):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, i:i + 1024]), format="fltp", layout="mono")
            f.sample_rate = rate
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def _one_frame_mp4(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=1)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 120, np.uint8), format="rgb24")
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def test_a_sound_only_mp4_is_a_sound(tmp_path: Path) -> None:
    voice = _sound_mp4(tmp_path / "voice.mp4")
    assert sound_only(voice) and file_media_kind(voice) == "audio"
    assert not sound_only(EXAMPLES / "pan.mp4") and file_media_kind(EXAMPLES / "pan.mp4") == "video"
    assert file_media_kind(tmp_path / "missing.mp4") == "video"  # its own error comes later, by name


def test_encode_decode_and_eval_take_it_as_a_sound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    voice = _sound_mp4(tmp_path / "voice.mp4")
    assert main(["encode", str(voice), "--out", str(tmp_path / "codes")]) == 0
    assert "audio tokens (2.08 s)" in capsys.readouterr().out
    codes, meta, _ = load_codes(tmp_path / "codes" / "voice.mp4.npz")
    tok = mmtok.load("audio")
    assert meta["kind"] == "audio"
    assert torch.equal(torch.from_numpy(codes), tok.encode(mmtok.load_audio(voice, target_rate=16000), sample_rate=16000))
    assert main(["decode", str(tmp_path / "codes" / "voice.mp4.npz"), "--out", str(tmp_path / "back")]) == 0
    assert (tmp_path / "back" / "voice.mp4.decoded.wav").is_file()
    assert main(["eval", str(voice), "--json"]) == 0
    assert '"kind": "audio"' in capsys.readouterr().out


def test_a_one_frame_video_is_one_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = _one_frame_mp4(tmp_path / "still.mp4")
    assert main(["encode", str(clip), "--out", str(tmp_path / "codes")]) == 0
    assert ": 1 frame of 16 rows × 16 columns of tokens" in capsys.readouterr().out
    assert main(["decode", str(tmp_path / "codes" / "still.mp4.npz"), "--out", str(tmp_path / "back")]) == 0
    assert ": 1 frame at 1 fps" in capsys.readouterr().out
