"""What load_audio says of a damaged file, in one line: an MP3 overwritten in the middle is damaged at a
byte, not truncated; libmpg123's own notes on a damaged MP3 never reach stderr (the first line it said
joins the error when a read fails); a cut or damaged M4A names no FFmpeg error number."""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import mmtok.audio.io
from mmtok.audio.file_checks import Mp3Frames, mp3_frames
from mmtok.audio.io import load_audio
from mmtok.core.errors import AudioError
from tests.test_audio_mp3 import RATE, encode, id3v2_tag, signal

FRAME = b"\xff\xfb\x90\xc4" + bytes(413)  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, mono: 417 bytes


def frame_starts(path: Path) -> list[int]:
    """Byte offsets of the audio frames of ``path``, as FFmpeg demuxes them."""
    import av

    with av.open(str(path)) as container:
        return [packet.pos for packet in container.demux(audio=0) if packet.size]


def one_line(e: pytest.ExceptionInfo[AudioError]) -> str:
    message = str(e.value)
    assert "\n" not in message and "Errno" not in message, message
    return message


# --------------------------------------------------------------------------- MP3: damaged, not truncated


def test_the_frame_walk_tells_damage_from_a_cut(tmp_path: Path) -> None:
    path = tmp_path / "a.mp3"
    damaged = bytearray(FRAME * 8)
    damaged[3 * 417 + 100 : 3 * 417 + 700] = bytes(600)  # over the 4th frame's end and the 5th frame's header
    path.write_bytes(bytes(damaged))
    assert mp3_frames(path) == Mp3Frames(7 * 1152, 7, None, False, damaged_at=4 * 417)
    path.write_bytes(FRAME * 8 + FRAME[:100])  # cut short: no damage
    assert mp3_frames(path) == Mp3Frames(8 * 1152, 8, None, True, damaged_at=None)
    path.write_bytes(FRAME * 3 + id3v2_tag(b"picture") + FRAME * 3)  # files joined, a tag between: no damage
    assert mp3_frames(path) == Mp3Frames(6 * 1152, 6, None, False, damaged_at=None)


@pytest.mark.parametrize(("vbr", "xing"), [(False, False), (True, False), (True, True)])
def test_an_mp3_overwritten_in_the_middle_is_damaged_not_truncated(tmp_path: Path, vbr: bool, xing: bool) -> None:
    path = encode(tmp_path / "a.mp3", signal(seconds=4), fmt="mp3", codec="libmp3lame", vbr=vbr, xing=xing)
    data = bytearray(path.read_bytes())
    start, size = len(data) // 2, 300  # the file's length stays the same
    at = min(p for p in frame_starts(path) if p >= start)  # the first frame header overwritten
    assert at < start + size
    data[start : start + size] = np.random.default_rng(0).integers(0, 256, size, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError) as e:
        load_audio(path)  # before: "truncated" (Xing), an FFmpeg error (VBR), or loaded with a gap (CBR)
    message = one_line(e)
    assert f"a.mp3: the audio stream is corrupt, damaged at byte {at}: " in message
    assert "not cut short" in message and "is truncated" not in message


# --------------------------------------------------------------------------- MP3: libmpg123's stderr


def test_libmpg123_notes_stay_off_stderr_and_other_output_does_not(tmp_path: Path,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    path = encode(tmp_path / "a.mp3", signal(seconds=4), fmt="mp3", codec="libmp3lame")
    whole = path.read_bytes()
    starts = frame_starts(path)
    garbled = bytearray(whole)
    rng = np.random.default_rng(0)
    for begin, end in itertools.pairwise(starts[20:41]):  # headers kept, the bits after them garbled
        garbled[begin + 4 : end] = rng.integers(0, 256, end - begin - 4, np.uint8).tobytes()
    path.write_bytes(bytes(garbled))
    assert load_audio(path).numel() > 3 * 16_000  # libmpg123 decodes it, complaining frame by frame
    xing = encode(tmp_path / "x.mp3", signal(seconds=4), fmt="mp3", codec="libmp3lame", vbr=True, xing=True)
    xing.write_bytes(xing.read_bytes()[: len(whole) // 2])
    with pytest.raises(AudioError, match=r"x\.mp3 is truncated"):
        load_audio(xing)  # libmpg123 warns of its Xing header on opening it
    os.write(2, b"stderr is back\n")
    assert capfd.readouterr().err == "stderr is back\n"


def test_a_failed_mp3_read_names_what_the_decoder_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    mp3 = encode(tmp_path / "a.mp3", signal(seconds=1), fmt="mp3", codec="libmp3lame")
    wav = tmp_path / "a.wav"
    sf.write(wav, signal(seconds=1)[0], RATE)
    read = sf.SoundFile.read

    def failing_read(self: sf.SoundFile, *args: object, **kwargs: object) -> np.ndarray:
        os.write(2, b"[src/libmpg123/parse.c:wetwork():1349] error: Giving up resync after 1024 bytes\n")
        if self.format == "WAV":
            return read(self, *args, **kwargs)
        raise sf.LibsndfileError(29)  # "Unspecified internal error."

    want = load_audio(mp3)
    monkeypatch.setattr(sf.SoundFile, "read", failing_read)
    # its frames are whole: FFmpeg decodes what libmpg123 gave up on, and what libmpg123 said stays held
    got = load_audio(mp3)  # FFmpeg's decoder: the same samples but for rounding
    assert got.shape == want.shape and float((got - want).abs().max()) < 1e-3
    assert capfd.readouterr().err == ""
    monkeypatch.setattr(mmtok.audio.io, "optional_av", lambda: None)
    with pytest.raises(AudioError) as e:
        load_audio(mp3)
    assert one_line(e).endswith("a.mp3: libsndfile fails part-way through this MP3 (Unspecified internal error.; "
                                "the decoder says: Giving up resync after 1024 bytes), although its MPEG frames are "
                                "whole; pip install av (or pip install mmtok[video]) to decode it through FFmpeg")
    assert capfd.readouterr().err == ""
    load_audio(wav)  # what a WAV read prints is not held back
    assert "Giving up resync" in capfd.readouterr().err


# --------------------------------------------------------------------------- M4A


def m4a(path: Path, *, faststart: bool) -> Path:
    """Two seconds of mono AAC in MP4 at 44.1 kHz: the index (``moov``) after the samples (``mdat``),
    as ffmpeg writes it, or before them with ``faststart``."""
    av = pytest.importorskip("av", reason="PyAV builds the test files")
    x = signal(seconds=2)
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"} if faststart else {}) as out:
        stream = out.add_stream("aac", rate=RATE)
        stream.layout, stream.bit_rate = "mono", 64_000
        for i in range(0, x.shape[1], 1024):
            piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, i : i + 1024]), format="fltp", layout="mono")
            piece.sample_rate = RATE
            out.mux(stream.encode(piece))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("faststart", [False, True], ids=["moov last", "moov first"])
def test_a_cut_m4a_is_truncated_in_one_line(tmp_path: Path, faststart: bool) -> None:
    path = m4a(tmp_path / "a.m4a", faststart=faststart)
    whole = path.read_bytes()
    path.write_bytes(whole + b"junk after the boxes")
    assert load_audio(path).numel() > 31_000  # bytes after the last box are no cut
    path.write_bytes(whole[: len(whole) // 2])  # before: an FFmpeg error number (moov last) or loaded short
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert "a.m4a is truncated: its MP4 'mdat' box declares " in one_line(e)


def test_an_m4a_ffmpeg_cannot_open_says_so_in_one_line(tmp_path: Path) -> None:
    path = m4a(tmp_path / "a.m4a", faststart=False)
    whole = path.read_bytes()
    path.write_bytes(whole[: whole.index(b"moov") - 4])  # whole boxes, but no index
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert one_line(e).endswith("a.m4a: not a readable AAC/M4A file (cut short or damaged: Invalid data found "
                                "when processing input)")


def test_an_m4a_damaged_in_the_middle_names_no_ffmpeg_error_number(tmp_path: Path) -> None:
    path = m4a(tmp_path / "a.m4a", faststart=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 500] = np.random.default_rng(0).integers(0, 256, 500, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert one_line(e).endswith("a.m4a: the audio stream is corrupt (Invalid data found when processing input)")


# --------------------------------------------------------------------------- stderr held only for MP3, thread-safe


def test_loads_from_several_threads_leave_stderr_where_it_was(tmp_path: Path) -> None:
    mp3 = encode(tmp_path / "a.mp3", signal(seconds=1), fmt="mp3", codec="libmp3lame")
    wav = tmp_path / "a.wav"
    sf.write(wav, signal(seconds=1)[0], RATE)
    before = os.fstat(2)
    failed: list[BaseException] = []

    def loads(path: Path) -> None:
        try:
            for _ in range(10):
                load_audio(path)
        except BaseException as e:
            failed.append(e)

    threads = [threading.Thread(target=loads, args=(path,)) for path in (mp3, wav, mp3, wav)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = os.fstat(2)
    assert not failed, failed
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_a_wav_flac_or_ogg_load_holds_no_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, signal(seconds=1)[0], RATE, format=fmt)

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{fmt}: stderr held")

    monkeypatch.setattr(mmtok.audio.io, "held_stderr", refused)
    monkeypatch.setattr(mmtok.audio.io.tempfile, "TemporaryFile", refused)
    assert load_audio(path).numel() > 0
