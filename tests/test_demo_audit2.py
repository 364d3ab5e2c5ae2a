"""``mmtok demo`` on odd --data folders: hidden and unreadable files, a copy of a training picture under
another name, a sound named like speech, a video without sound, and the words of its step lines.

The steps run on stand-in tokenizers and tiny generated files, never the whole demo."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from mmtok.core.errors import DemoError
from mmtok.demo.state import check_data, example_data
from tests.test_demo_audit_fixes import _demo, _Pictures, _Sounds


def _tone(path: Path, seconds: float = 0.5) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return path


def test_hidden_files_and_folders_named_like_media_are_not_taken_for_media(tmp_path: Path) -> None:
    from mmtok.demo.media import images_step

    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(data / "photo.jpg")
    (data / "._photo.jpg").write_bytes(b"\x00\x05\x16\x07 a macOS resource fork")
    (data / "album.jpg").mkdir()
    _tone(data / "tone.wav")
    d = _demo(tmp_path / "demo", image=_Pictures(), data=check_data(data))
    line = images_step(d)
    assert line.startswith("1 image,") and d.skipped == () and [f.name for f in d.images] == ["photo.jpg"]
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    shutil.copy(data / "._photo.jpg", hidden / "._photo.jpg")
    _tone(hidden / "tone.wav")
    with pytest.raises(DemoError, match="has no images"):
        check_data(hidden)


def test_an_unreadable_file_is_left_out_and_named_on_the_page(tmp_path: Path) -> None:
    from mmtok.demo.media import audio_step, images_step

    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (40, 40), (30, 200, 30)).save(data / "good.png")
    (data / "broken.png").write_bytes(b"not a png")
    _tone(data / "good.wav")
    (data / "broken.wav").write_bytes(b"xx")
    d = _demo(tmp_path / "demo", image=_Pictures(), audio=_Sounds(), data=data)
    img_line, snd_line = images_step(d), audio_step(d)
    assert "1 image," in img_line and "left out, unreadable: broken.png" in img_line
    assert "1 clip " in snd_line and "broken.wav" in snd_line
    assert [f.name for f in d.images] == ["good.png"] and [f.name for f in d.sounds] == ["good.wav"]
    page = "".join(d.report.parts)
    assert "Left out, as they cannot be read: broken.png" in page and "broken.wav" in page


def test_a_folder_none_of_whose_images_reads_is_one_clear_error(tmp_path: Path) -> None:
    from mmtok.demo.media import images_step

    data = tmp_path / "data"
    data.mkdir()
    (data / "broken.png").write_bytes(b"not a png")
    d = _demo(tmp_path / "demo", image=_Pictures(), data=data)
    with pytest.raises(DemoError, match=r"none of its images can be read \(broken.png: .*fix or replace"):
        images_step(d)


def test_a_renamed_copy_of_a_training_picture_is_not_called_never_seen(tmp_path: Path) -> None:
    from mmtok.demo.media import SEEN, UNSEEN, training_match

    train = tmp_path / "train"
    train.mkdir()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(train / "butterfly.png")
    Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "other.png")
    tok = SimpleNamespace(provenance={"data": {"folder": str(train), "files": ["butterfly.png"]}})
    shutil.copy(train / "butterfly.png", tmp_path / "mine.png")
    match = training_match(tok, shipped_examples=False)
    assert match(tmp_path / "mine.png") == SEEN and match(tmp_path / "other.png") == UNSEEN
    # a shipped example that is a training picture, copied under a name of the user's
    shipped = example_data() / "astronaut.jpg"
    if shipped.is_file():
        ship_tok = SimpleNamespace(provenance={"data": {"folder": str(tmp_path / "gone"), "files": ["a/astronaut.jpg"]}})
        shutil.copy(shipped, tmp_path / "my photo.jpg")
        assert training_match(ship_tok, shipped_examples=False)(tmp_path / "my photo.jpg") == SEEN


def test_a_sound_named_speech_in_a_users_folder_is_not_called_a_spoken_sentence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmtok.demo.media as media

    data = tmp_path / "data"
    data.mkdir()
    noise = data / "speech_noise.wav"
    sf.write(noise, (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32), 16000)
    said: list[list[object]] = []

    class _Stop(Exception):
        pass

    class _Il:  # records the document the stream step builds, then stops it
        def __init__(self, *a: object, **k: object) -> None:
            pass

        def encode(self, doc: list[object]) -> None:
            said.append(doc)
            raise _Stop

    monkeypatch.setattr("mmtok.stream.interleave.Interleaver", _Il)
    monkeypatch.setattr("mmtok.video.tokenizer.VideoTokenizer", lambda *a, **k: None)
    for shipped in (False, True):
        d = _demo(tmp_path / "demo", data=data, has_video=False, shipped_examples=shipped, image=None, audio=None,
                  images=[data / "x.png"], sounds=[noise])
        with pytest.raises(_Stop):
            media.stream_step(d)
    assert " A sound: " in said[0] and " Someone reads a sentence: " in said[1]


def test_a_video_without_sound_is_not_called_a_video_with_its_soundtrack(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    from mmtok.demo.media import _has_sound

    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=4)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * i, np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    assert _has_sound(path) is False
    shipped = example_data() / "pan.mp4"
    if shipped.is_file():
        assert _has_sound(shipped) is True


def test_plural() -> None:
    from mmtok.core.command_output import counted as plural

    assert (plural(1, "image"), plural(2, "clip"), plural(0, "image")) == ("1 image", "2 clips", "0 images")


def test_figures_json_holds_the_numbers_the_pages_table_shows(tmp_path: Path) -> None:
    import html
    import json
    import re

    from mmtok.core.report import Report
    from mmtok.demo.state import Demo

    d = Demo.__new__(Demo)
    d.report = Report(tmp_path, "t")
    for key, value in {"loss": 8.6687, "speed": 4664.8, "tiny": 0.000235, "count": 256, "rate": 293.44}.items():
        d.figure(key, value, "u", key)
    d.report.parts.append(d.report.figures_table())
    d.report.write()
    shown = dict(re.findall(r'<td class="num">([^<]+)</td><td>u</td><td>([a-z]+)</td>',
                            (tmp_path / "index.html").read_text()))
    saved = json.loads((tmp_path / "figures.json").read_text())
    assert {k: float(html.unescape(v).replace(",", "")) for v, k in shown.items()} == {
        k: f["value"] for k, f in saved.items()}
    assert saved["loss"]["value"] == 8.669 and saved["speed"]["value"] == 4665


def test_an_unreadable_video_is_left_out_of_the_stream_not_the_end_of_the_demo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("av")
    import mmtok.demo.media as media
    from mmtok.core.errors import VideoError

    data = tmp_path / "data"
    data.mkdir()
    (data / "clip.mp4").write_bytes(b"nope")
    docs: list[list[object]] = []

    class _Stop(Exception):
        pass

    class _Il:  # refuses a document with a video as a corrupt file is refused, and stops at the next
        def __init__(self, *a: object, **k: object) -> None:
            pass

        def encode(self, doc: list[object]) -> None:
            docs.append(doc)
            if any(isinstance(x, dict) and "video" in x for x in doc):
                raise VideoError("video file 'clip.mp4' is corrupt")
            raise _Stop

    monkeypatch.setattr("mmtok.stream.interleave.Interleaver", _Il)
    monkeypatch.setattr("mmtok.video.tokenizer.VideoTokenizer", lambda *a, **k: None)
    d = _demo(tmp_path / "demo", data=data, has_video=True, image=None, audio=None,
              images=[data / "x.png"], sounds=[data / "y.wav"])
    with pytest.raises(_Stop):
        media.stream_step(d)
    assert len(docs) == 2 and not any(isinstance(x, dict) and "video" in x for x in docs[1])
    assert d.skipped == (("clip.mp4", "video file 'clip.mp4' is corrupt"),)
