"""MP3 and AAC/M4A files: an MP3's length counted from its MPEG frame headers (libsndfile only guesses
it without a Xing/Info header, and stops reading at its guess), MP3s that libsndfile reads short
decoded through PyAV (or refused, saying so, without it), files cut off part-way refused, and
AAC/M4A, which libsndfile cannot open, read through PyAV."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mmtok.audio.av_read import stated_samples
from mmtok.audio.file_checks import Mp3Frames, check_length, mp3_frames
from mmtok.audio.io import load_audio
from mmtok.core.errors import AudioError

RATE = 44_100
SECONDS = 10


def signal(channels: int = 1, seconds: int = SECONDS) -> np.ndarray:
    """float32 ``[channels, S]`` at 44.1 kHz: half a second of loud noise, then a quiet tone; an VBR
    encoder spends many bits on its first frames, so libsndfile's guess of the length is far too short."""
    rng = np.random.default_rng(0)
    n = seconds * RATE
    x = 0.05 * np.sin(2 * np.pi * 220 * np.arange(n) / RATE)[None].repeat(channels, 0)
    x[:, : RATE // 2] += 0.5 * rng.standard_normal((channels, RATE // 2))
    return np.clip(x, -0.99, 0.99).astype(np.float32)


def encode(path: Path, x: np.ndarray, *, fmt: str, codec: str, vbr: bool = False, xing: bool = False) -> Path:
    """``x`` ``[channels, S]`` at 44.1 kHz encoded by PyAV to ``path`` (an MP3 without a Xing/Info header
    unless ``xing``: what ffmpeg writes to a pipe)."""
    av = pytest.importorskip("av", reason="PyAV builds the test files")
    from av.codec.context import Flags

    layout = "mono" if x.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format=fmt, options={"write_xing": str(int(xing))} if fmt == "mp3" else {}) as out:
        try:
            stream = out.add_stream(codec, rate=RATE)
        except (ValueError, av.error.FFmpegError) as e:  # pragma: no cover - an FFmpeg built without it
            pytest.skip(f"FFmpeg has no {codec} encoder: {e}")
        stream.layout = layout
        if vbr:
            stream.codec_context.flags |= Flags.qscale
            stream.codec_context.qscale = 4
        else:
            stream.bit_rate = 64_000
        frame = 1152 if fmt == "mp3" else 1024
        for i in range(0, x.shape[1], frame):
            piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, i : i + frame]), format="fltp", layout=layout)
            piece.sample_rate = RATE
            for packet in stream.encode(piece):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def decoded_by_av(path: Path) -> np.ndarray:
    """float32 ``[S, channels]`` as FFmpeg decodes ``path``."""
    import av

    with av.open(str(path)) as container:
        planes = [f.to_ndarray() for f in container.decode(audio=0)]
    return np.concatenate(planes, axis=1).T.astype(np.float32)


def hide_av(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now fails as if PyAV were not installed


# --------------------------------------------------------------------------- the frame walk


HEADERS = [  # (header, frame bytes, samples): MPEG-1 layers I-III, MPEG-2 and 2.5 Layer III
    (b"\xff\xfb\x90\xc4", 417, 1152),  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, mono: 144 * 128000 / 44100
    (b"\xff\xfd\xa4\x04", 576, 1152),  # MPEG-1 Layer II, 192 kbit/s, 48 kHz: 144 * 192000 / 48000
    (b"\xff\xff\xc8\x04", 576, 384),  # MPEG-1 Layer I, 384 kbit/s, 32 kHz: (12 * 384000 / 32000) * 4
    (b"\xff\xf3\x80\xc4", 208, 576),  # MPEG-2 Layer III, 64 kbit/s, 22.05 kHz: 72 * 64000 / 22050
    (b"\xff\xe3\x18\xc4", 72, 576),  # MPEG-2.5 Layer III, 8 kbit/s, 8 kHz: 72 * 8000 / 8000
]


@pytest.mark.parametrize(("header", "length", "samples"), HEADERS)
def test_frames_are_walked_by_their_computed_lengths(tmp_path: Path, header: bytes, length: int,
                                                     samples: int) -> None:
    frame = header + bytes(length - 4)
    id3 = b"ID3\x04\x00\x00\x00\x00\x01\x00" + bytes(128)  # an ID3v2 tag of 128 bytes (7-bit size bytes)
    path = tmp_path / "a.mp3"
    path.write_bytes(id3 + frame * 7 + b"TAG" + bytes(125))  # and an ID3v1 tag at the end
    assert mp3_frames(path) == Mp3Frames(7 * samples, 7, None, False)
    path.write_bytes(id3 + frame * 7 + frame[: length // 2])
    assert mp3_frames(path) == Mp3Frames(7 * samples, 7, None, True)


def test_a_xing_frame_is_read_for_its_count_and_not_counted(tmp_path: Path) -> None:
    header = b"\xff\xfb\x90\xc4"  # mono MPEG-1 Layer III: the Xing tag sits after 17 bytes of side information
    xing = header + bytes(17) + b"Xing" + (1).to_bytes(4, "big") + (9).to_bytes(4, "big")
    xing += bytes(417 - len(xing))
    path = tmp_path / "a.mp3"
    path.write_bytes(xing + (header + bytes(413)) * 6)
    frames = mp3_frames(path)
    assert frames == Mp3Frames(6 * 1152, 6, 9, False)
    with pytest.raises(AudioError, match=r"a\.mp3 is truncated: its Xing/Info header declares 9 MPEG frames, .* 6"):
        check_length(path, "MP3", 6 * 1152, frames.samples, frames)


def id3v2_tag(payload: bytes) -> bytes:
    """An ID3v2.4 tag with a footer (as appended at the end of a file) holding one frame of ``payload``."""
    def syncsafe(n: int) -> bytes:
        return bytes((n >> s) & 127 for s in (21, 14, 7, 0))
    frame = b"APIC" + syncsafe(len(payload)) + b"\x00\x00" + payload
    return b"ID3\x04\x00\x10" + syncsafe(len(frame)) + frame + b"3DI\x04\x00\x10" + syncsafe(len(frame))


FAKE_HEADER = b"\xff\xfb\x90\xc4"  # bytes of a tag or picture that read as a 417-byte frame's header
TRAILERS = {  # what may follow the last frame, each holding FAKE_HEADER too near the end for its "frame"
    "id3v2 at the end": id3v2_tag(bytes(range(256)) + FAKE_HEADER + bytes(40)),
    "ape footer only": b"\x10\x00\x00\x00" + FAKE_HEADER + bytes(60) + b"APETAGEX" + bytes(24),
    "lyrics3": b"LYRICSBEGIN" + FAKE_HEADER + bytes(30) + b"000054LYRICS200",
    "random bytes": b"junk" + bytes(np.random.default_rng(1).integers(0, 256, 100, np.uint8)) + FAKE_HEADER + bytes(50),
}


@pytest.mark.parametrize("trailer", TRAILERS.values(), ids=TRAILERS.keys())
def test_bytes_after_the_last_frame_are_no_cut(tmp_path: Path, trailer: bytes) -> None:
    frame = FAKE_HEADER + bytes(413)
    path = tmp_path / "a.mp3"
    path.write_bytes(frame * 7 + trailer)  # every frame whole: a would-be frame found by re-syncing is no cut
    assert mp3_frames(path) == Mp3Frames(7 * 1152, 7, None, False)
    path.write_bytes(frame * 7 + frame[:200])  # the chain of frames stops part-way: cut
    assert mp3_frames(path).cut


def test_a_whole_mp3_with_a_tag_appended_loads(tmp_path: Path) -> None:
    path = encode(tmp_path / "a.mp3", signal(seconds=3), fmt="mp3", codec="libmp3lame", vbr=True, xing=True)
    whole = load_audio(path)
    path.write_bytes(path.read_bytes() + TRAILERS["id3v2 at the end"])  # refused as "truncated" before
    torch.testing.assert_close(load_audio(path), whole, rtol=0, atol=0)


# --------------------------------------------------------------------------- files without a Xing header


def test_a_cbr_mp3_without_xing_header_loads_whole(tmp_path: Path) -> None:
    path = encode(tmp_path / "cbr.mp3", signal(), fmt="mp3", codec="libmp3lame")
    assert sf.info(str(path)).frames > mp3_frames(path).samples + 2000  # libsndfile's guess runs high
    held = decoded_by_av(path).shape[0]
    assert mp3_frames(path).samples == held
    audio = load_audio(path)  # refused before as "truncated": its guess was never reached
    assert audio.numel() == -(-held * 160 // 441)  # every frame, at 16 kHz


def test_a_vbr_mp3_without_xing_header_loads_whole_through_pyav(tmp_path: Path) -> None:
    stereo = signal(channels=2)
    path = encode(tmp_path / "vbr.mp3", stereo, fmt="mp3", codec="libmp3lame", vbr=True)
    read, _ = sf.read(str(path))
    assert read.shape[0] < 0.5 * stereo.shape[1]  # libsndfile alone stops far short
    audio = load_audio(path)
    # PyAV's samples, mixed and resampled as libsndfile's would be: the channels' mean, the same resampler
    torch.testing.assert_close(audio, load_audio(decoded_by_av(path), RATE), rtol=0, atol=1e-6)
    assert audio.numel() >= SECONDS * 16_000
    with pytest.raises(AudioError, match=r"vbr\.mp3 is 10\.\d s long, over max_seconds=5"):
        load_audio(path, max_seconds=5)  # judged by its frames, not by libsndfile's short guess


def test_a_vbr_mp3_without_pyav_is_refused_not_shortened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = encode(tmp_path / "vbr.mp3", signal(), fmt="mp3", codec="libmp3lame", vbr=True)
    cbr = encode(tmp_path / "cbr.mp3", signal(seconds=3), fmt="mp3", codec="libmp3lame")
    hide_av(monkeypatch)
    with pytest.raises(AudioError, match=r"vbr\.mp3: libsndfile stops early on this MP3 .*pip install av") as e:
        load_audio(path)
    assert "\n" not in str(e.value)
    assert load_audio(cbr).numel() > 3 * 16_000  # one libsndfile reads whole needs no PyAV


def test_an_mp3_without_xing_header_with_bytes_after_its_frames_loads_through_pyav(tmp_path: Path) -> None:
    path = encode(tmp_path / "vbr.mp3", signal(seconds=3), fmt="mp3", codec="libmp3lame", vbr=True)
    whole, clean = load_audio(path), path.read_bytes()
    for trailer in (bytes(64), TRAILERS["id3v2 at the end"]):  # FFmpeg fails on that last packet: skipped
        path.write_bytes(clean + trailer)
        torch.testing.assert_close(load_audio(path), whole, rtol=0, atol=0)


def test_an_mp3_damaged_mid_stream_is_still_refused(tmp_path: Path) -> None:
    import av

    path = encode(tmp_path / "vbr.mp3", signal(seconds=3), fmt="mp3", codec="libmp3lame", vbr=True)
    with av.open(str(path)) as container:
        at = [packet.pos for packet in container.demux(audio=0)][50]  # the 51st frame
    data = bytearray(path.read_bytes())
    data[at : at + 4] = bytes(4)  # its header gone: FFmpeg cannot decode it, and frames follow
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=r"vbr\.mp3: the audio stream is corrupt") as e:
        load_audio(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("vbr", "xing"), [(False, False), (True, False), (True, True)])
def test_an_mp3_cut_off_part_way_is_refused(tmp_path: Path, vbr: bool, xing: bool) -> None:
    path = encode(tmp_path / "a.mp3", signal(seconds=4), fmt="mp3", codec="libmp3lame", vbr=vbr, xing=xing)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) * 2 // 3 + 7])  # mid-frame
    with pytest.raises(AudioError, match=r"a\.mp3 is truncated"):
        load_audio(path)


# --------------------------------------------------------------------------- AAC / M4A


def test_an_m4a_file_is_read_through_pyav(tmp_path: Path) -> None:
    import av

    path = encode(tmp_path / "a.m4a", signal(seconds=2), fmt="mp4", codec="aac")
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(path))  # libsndfile cannot open it
    audio = load_audio(path)
    with av.open(str(path)) as container:
        stated = stated_samples(container.streams.audio[0], RATE)  # what FFmpeg decodes, less the encoder's padding
    torch.testing.assert_close(audio, load_audio(decoded_by_av(path)[:stated], RATE), rtol=0, atol=1e-6)
    assert abs(audio.numel() - 2 * 16_000) < 2 * 1024  # two seconds, give or take the codec's frames


def test_an_m4a_file_without_pyav_asks_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_av(monkeypatch)
    path = tmp_path / "a.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + bytes(64))
    with pytest.raises(AudioError, match=r"a\.m4a: it is AAC/M4A, which libsndfile does not decode; pip install av"):
        load_audio(path)
    junk = tmp_path / "junk.m4a"
    junk.write_bytes(b"not audio at all" * 8)
    with pytest.raises(AudioError, match=r"junk\.m4a.*corrupt, truncated or not audio"):
        load_audio(junk)


def test_m4a_and_aac_files_are_sounds_to_the_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio.train_data import find_audio
    from mmtok.cli import main
    from mmtok.core.suffixes import AUDIO_SUFFIXES, VIDEO_SUFFIXES

    (tmp_path / "in").mkdir()
    m4a = encode(tmp_path / "in" / "a.m4a", signal(seconds=1), fmt="mp4", codec="aac")
    aac = encode(tmp_path / "in" / "b.aac", signal(seconds=1), fmt="adts", codec="aac")  # raw AAC (ADTS frames)
    assert {".m4a", ".aac"} <= AUDIO_SUFFIXES and not {".m4a", ".aac"} & VIDEO_SUFFIXES
    assert find_audio(tmp_path / "in") == [m4a, aac]
    assert main(["encode", str(m4a), str(aac), "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.m4a.npz", "b.aac.npz"]
