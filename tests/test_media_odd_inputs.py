"""Odd but legal inputs on the image and video side: rates of any real type and very low ones, settings refused
where they are given, frames a policy keeps at their own sizes, long file names, links that lead nowhere, and a
plot format that cannot carry the mark its later runs replace it by."""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmtok
from mmtok.cli import main
from mmtok.core.errors import ImageError, UsageError, VideoError
from mmtok.core.files import temp_name
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.video.frame_settings import frame_size, video_fps
from mmtok.video.tokenizer import VideoTokenizerConfig


@pytest.fixture(scope="module")
def small() -> ImageTokenizer:
    torch.manual_seed(0)
    return ImageTokenizer(ImageTokenizerConfig(image_size=32)).eval()


@pytest.fixture(scope="module")
def small_saved(small: ImageTokenizer, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(mmtok.save(small, tmp_path_factory.mktemp("models") / "small"))


def _picture(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (200, 30, 40)).save(path)
    return path


def test_fps_of_any_real_type(small: ImageTokenizer) -> None:
    assert mmtok.VideoTokenizer(small, fps=Fraction(30000, 1001)).fps == pytest.approx(29.97002997)
    vt = mmtok.VideoTokenizer(small, fps=np.int64(2), size=np.int64(128), chunk_frames=np.int64(4))
    assert (type(vt.cfg.fps), vt.cfg.size, type(vt.cfg.chunk_frames)) == (float, 128, int)
    assert video_fps(np.float32(0.5)) == 0.5
    for bad in (True, "2", 0, -1.0, float("inf"), None):
        with pytest.raises(ValueError, match="fps must be a positive number"):
            video_fps(bad)


@pytest.mark.parametrize("size", ["abc", 2.5, (16, 16, 16), (16, 0), 0, True])
def test_a_wrong_size_is_refused_when_given(small: ImageTokenizer, size: object) -> None:
    with pytest.raises(ValueError, match="size must be None, the shorter side in pixels"):
        mmtok.VideoTokenizer(small, size=size)  # type: ignore[arg-type]


def test_size_pairs_and_chunk_frames() -> None:
    assert frame_size([90, 160]) == (90, 160)
    with pytest.raises(ValueError, match=r"chunk_frames must be an integer >= 1, got 2\.5"):
        VideoTokenizerConfig(chunk_frames=2.5)  # type: ignore[arg-type]


def test_very_low_frame_rates_are_written_as_asked() -> None:
    av = pytest.importorskip("av")
    from mmtok.video.write import write_video

    for fps, times in ((1 / 3600, [0.0, 3600.0, 7200.0]), (1 / 1500, [0.0, 1500.0, 3000.0]),
                       (30000 / 1001, [0.0, 1001 / 30000, 2002 / 30000])):
        buf = io.BytesIO()
        write_video(buf, torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)), fps=fps)
        buf.seek(0)
        with av.open(buf) as c:
            got = [float(f.pts * f.time_base) for f in c.decode(c.streams.video[0])]
        assert got == pytest.approx(times, abs=1e-4)
    for fps in (1e12, 1e-7):
        with pytest.raises(VideoError, match=r"write_video cannot write .* frames per second"):
            write_video(io.BytesIO(), torch.rand(1, 3, 32, 32), fps=fps)


def test_frames_kept_at_their_own_sizes_are_no_video() -> None:
    native = ImageTokenizer(ImageTokenizerConfig(image_size=32, size_policy="native")).eval()
    vt = mmtok.VideoTokenizer(native)
    with pytest.raises(VideoError, match=r"preprocess to different sizes \[\(48, 80\), \(64, 64\)\] under "
                                         "size_policy 'native'"):
        vt.encode([torch.rand(3, 64, 64), torch.rand(3, 48, 80)])
    assert vt.encode([torch.rand(3, 64, 64), torch.rand(3, 64, 64)]).shape == (2, 4, 4)


@pytest.mark.parametrize("codes", [None, "ab", {"a": 1}])
def test_decode_of_no_codes(small: ImageTokenizer, codes: object) -> None:
    with pytest.raises(ImageError, match="decode takes codes"):
        small.decode(codes)  # type: ignore[arg-type]


def test_a_long_name_takes_a_short_temporary_name(tmp_path: Path, small_saved: str) -> None:
    name = "a" * 241 + ".png"  # its code file's name is 249 bytes: legal, though ".NAME.tmp-PID" would not be
    assert len(temp_name(tmp_path / (name + ".npz")).name.encode()) <= 255
    assert temp_name(tmp_path / "b.npz").name == f".b.npz.tmp-{os.getpid()}"
    _picture(tmp_path / "in" / name)
    assert main(["encode", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--image", small_saved]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == [name + ".npz"]


def test_a_link_to_nothing_in_a_folder_fails_on_its_own_line(tmp_path: Path, small_saved: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    _picture(tmp_path / "in" / "a.png")
    try:
        (tmp_path / "in" / "broken.png").symlink_to(tmp_path / "nowhere.png")
    except OSError:
        pytest.skip("no symbolic links here")
    assert main(["encode", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--image", small_saved]) == 2
    err = capsys.readouterr().err
    assert f"broken.png: no such file (a link to {tmp_path / 'nowhere.png'}, which does not exist)" in err
    assert (tmp_path / "out" / "a.png.npz").is_file()


@pytest.mark.parametrize("name", ["q.jpg", "q.tif", "q.webp"])
def test_a_plot_format_without_a_mark_is_refused_before_drawing(tmp_path: Path, name: str) -> None:
    pytest.importorskip("matplotlib")
    from mmtok.evaluate import plot_target

    with pytest.raises(UsageError, match="holds no mark saying 'mmtok eval' drew it"):
        plot_target(tmp_path / name)
    assert plot_target(tmp_path / "q.eps") == tmp_path / "q.eps"
