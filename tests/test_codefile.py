"""``mmtok encode`` / ``mmtok decode``: media files <-> code files that say which model made them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import mmtok
from mmtok.cli import main
from mmtok.data.codes import load_codes, save_codes
from mmtok.info import describe

EXAMPLES = Path(__file__).parents[1] / "examples" / "data"


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("codes")
    assert main(["encode", str(EXAMPLES / "coffee.jpg"), str(EXAMPLES / "speech_en.wav"), "--out", str(out)]) == 0
    return out


def test_encode_writes_the_codes_and_what_made_them(encoded: Path) -> None:
    image, audio = mmtok.load("image"), mmtok.load("audio")
    codes, meta, _ = load_codes(encoded / "coffee.jpg.npz")
    assert torch.equal(torch.from_numpy(codes), image.encode(EXAMPLES / "coffee.jpg"))
    assert meta["kind"] == "image" and meta["fingerprint"] == image.fingerprint and meta["source"] == "coffee.jpg"
    assert meta["model_version"] == image.provenance["model_version"] and meta["codebook_size"] == image.codebook_size
    codes, meta, _ = load_codes(encoded / "speech_en.wav.npz")
    assert torch.equal(torch.from_numpy(codes), audio.encode(EXAMPLES / "speech_en.wav"))
    assert meta["kind"] == "audio" and meta["sample_rate"] == 16000 and meta["tokens_per_second"] == 50
    assert meta["seconds"] == pytest.approx(codes.size / 50)
    with np.load(encoded / "speech_en.wav.npz", allow_pickle=False) as z:  # plain numpy reads it, no pickle
        assert json.loads(str(z["meta"]))["fingerprint"] == audio.fingerprint


def test_decode_gives_back_what_the_library_decodes(encoded: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(encoded / "coffee.jpg.npz"), str(encoded / "speech_en.wav.npz")]
    assert main(["decode", *files, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "coffee.jpg.decoded.png: 256×256 image" in printed and "16000 Hz" in printed
    image, audio = mmtok.load("image"), mmtok.load("audio")
    png = np.asarray(Image.open(tmp_path / "coffee.jpg.decoded.png"))
    want = image.decode(torch.from_numpy(load_codes(encoded / "coffee.jpg.npz").codes))
    assert png.shape == (256, 256, 3)
    assert np.abs(png.astype(int) - (want.permute(1, 2, 0).numpy() * 255).round().astype(int)).max() == 0
    wave, rate = sf.read(tmp_path / "speech_en.wav.decoded.wav", dtype="float32")
    codes = torch.from_numpy(load_codes(encoded / "speech_en.wav.npz").codes)
    assert rate == 16000 and torch.equal(torch.from_numpy(wave), audio.decode(codes))  # float WAV: exact
    assert main(["decode", files[1], "--out", str(tmp_path / "gl"), "--vocoder", "griffin-lim"]) == 0
    gl, _ = sf.read(tmp_path / "gl" / "speech_en.wav.decoded.wav", dtype="float32")
    assert torch.equal(torch.from_numpy(gl), audio.decode(codes, vocoder="griffin-lim"))


def test_bad_files_are_named_and_the_others_still_written(encoded: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert main(["encode", str(tmp_path / "notes.txt"), str(tmp_path / "missing.wav"), str(tmp_path / "broken.png"),
                 str(EXAMPLES / "coffee.jpg"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"mmtok: error: {tmp_path / 'notes.txt'}: not an image, a sound or a video")
    assert err[1] == f"mmtok: error: {tmp_path / 'missing.wav'}: no such file"
    assert str(tmp_path / "broken.png") in err[2] and err[3] == "mmtok: 3 of 4 files failed; the others were written"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["coffee.jpg.npz"]

    (tmp_path / "junk.npz").write_bytes(b"\x00" * 10)
    assert main(["decode", str(tmp_path / "junk.npz"), str(encoded / "coffee.jpg.npz"),
                 "--out", str(tmp_path / "back")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'junk.npz'}: not a code file from 'mmtok encode' (ValueError: not an .npz archive)\n" in err
    assert (tmp_path / "back" / "coffee.jpg.decoded.png").is_file()


def test_two_inputs_for_one_output_or_an_out_that_is_a_file_are_refused_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.jpg").write_bytes((EXAMPLES / "coffee.jpg").read_bytes())
    for inputs in ([tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg"], [tmp_path / "a", tmp_path / "b"]):
        capsys.readouterr()
        assert main(["encode", *map(str, inputs), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(tmp_path / "a" / "x.jpg") in err and str(tmp_path / "b" / "x.jpg") in err
        assert "nothing was written" in err and not (tmp_path / "out").exists()
    (tmp_path / "afile").write_text("mine")
    assert main(["encode", str(tmp_path / "a" / "x.jpg"), "--out", str(tmp_path / "afile")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err and (tmp_path / "afile").read_text() == "mine"
    two = [str(tmp_path / "a" / "x.jpg"), str(EXAMPLES / "speech_en.wav")]  # one line, not one per file
    assert main(["encode", *two, "--out", str(tmp_path / "afile" / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{tmp_path / 'afile'} is a file, not a folder; nothing was written" in err
    assert main(["encode", str(tmp_path / "a" / "x.jpg"), "--out", str(tmp_path / "ca")]) == 0
    assert main(["encode", str(tmp_path / "b" / "x.jpg"), "--out", str(tmp_path / "cb")]) == 0
    capsys.readouterr()
    assert main(["decode", str(tmp_path / "ca" / "x.jpg.npz"), str(tmp_path / "cb" / "x.jpg.npz"),
                 "--out", str(tmp_path / "back")]) == 2
    assert "would both be written to" in capsys.readouterr().err and not (tmp_path / "back").exists()


def test_encode_replaces_an_earlier_code_file_and_refuses_anything_else_first(
        encoded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A numpy archive of the user's (or a folder) where a code file would go stops the run before any work,
    naming it; an earlier code file there is replaced."""
    out = tmp_path / "out"
    out.mkdir()
    np.savez(out / "coffee.jpg.npz", weights=np.arange(3))
    mine = (out / "coffee.jpg.npz").read_bytes()
    (out / "speech_en.wav.npz").mkdir()
    nomodel = ["--image", str(tmp_path / "nosuchmodel"), "--audio", str(tmp_path / "nosuchmodel")]  # no work done
    for files, named in (([EXAMPLES / "coffee.jpg", EXAMPLES / "speech_en.wav"], out / "coffee.jpg.npz"),
                         ([EXAMPLES / "speech_en.wav"], out / "speech_en.wav.npz")):
        capsys.readouterr()
        assert main(["encode", *map(str, files), "--out", str(out), *nomodel]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"{named} is there and is not a code file" in err, err
        assert "nothing was written" in err
    assert (out / "coffee.jpg.npz").read_bytes() == mine and sorted(p.name for p in out.iterdir()) == [
        "coffee.jpg.npz", "speech_en.wav.npz"]
    save_codes(out / "coffee.jpg.npz", np.zeros((2, 2), np.int64), {"kind": "image", "source": "an earlier run"})
    (out / "speech_en.wav.npz").rmdir()
    capsys.readouterr()
    assert main(["encode", str(EXAMPLES / "coffee.jpg"), "--out", str(out)]) == 0
    again = load_codes(out / "coffee.jpg.npz")
    assert again.meta["source"] == "coffee.jpg" and again.codes.tolist() == load_codes(encoded / "coffee.jpg.npz").codes.tolist()


def test_decode_replaces_what_it_wrote_before_and_refuses_a_users_file_first(
        encoded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A picture or sound of the user's under the name decode would write stops the run before any work, naming
    it; a file an earlier decode wrote (its mark inside) is replaced."""
    files = [str(encoded / "coffee.jpg.npz"), str(encoded / "speech_en.wav.npz")]
    out = tmp_path / "back"
    assert main(["decode", *files, "--out", str(out)]) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["coffee.jpg.decoded.png", "speech_en.wav.decoded.wav"]
    for p in out.iterdir():
        p.write_bytes(p.read_bytes()[: len(first[p.name]) // 2])  # an earlier decode's files, cut: still its own
    assert main(["decode", *files, "--out", str(out)]) == 0  # a rerun replaces its own files
    assert {p.name: len(p.read_bytes()) for p in out.iterdir()} == {n: len(b) for n, b in first.items()}
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    for name, write in (("coffee.jpg.decoded.png", lambda p: Image.new("RGB", (8, 8), "red").save(p)),
                        ("speech_en.wav.decoded.wav", lambda p: sf.write(p, np.zeros(160, np.float32), 16000))):
        mine = tmp_path / "mine" / name
        mine.parent.mkdir(exist_ok=True)
        write(mine)
        (out / name).write_bytes(mine.read_bytes())
        capsys.readouterr()
        assert main(["decode", *files, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"{out / name} is there and was not written by 'mmtok decode'" in err, err
        assert (out / name).read_bytes() == mine.read_bytes()  # the user's file is kept
        other = next(n for n in first if n != name)
        assert (out / other).read_bytes() == first[other]  # and nothing else was written either
        (out / name).write_bytes(first[name])


def test_a_model_that_cannot_load_stops_the_run_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(EXAMPLES / "coffee.jpg"), str(EXAMPLES / "coffee.jpg")]
    assert main(["encode", files[0], str(EXAMPLES / "speech_en.wav"), "--image", str(tmp_path / "nosuchmodel"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mmtok: error: --image ") and "nosuchmodel" in err[0]


def test_every_model_the_files_need_loads_before_any_file_is_written(encoded: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The model of each kind the inputs need is loaded first: one that cannot load stops the run before any file
    is written, though the files of the kinds before it could have been (a video needs the audio model too)."""
    images = [str(EXAMPLES / "coffee.jpg"), str(EXAMPLES / "rocket.jpg")]
    nowhere = str(tmp_path / "nosuchmodel")
    runs = [("encode", [*images, str(EXAMPLES / "speech_en.wav")], "--audio"),
            ("encode", [*images, str(EXAMPLES / "pan.mp4")], "--audio"),
            ("encode", [str(EXAMPLES / "speech_en.wav"), *images], "--image"),
            ("decode", [str(encoded / "coffee.jpg.npz"), str(encoded / "speech_en.wav.npz")], "--audio")]
    for i, (command, files, flag) in enumerate(runs):
        out = tmp_path / f"out{i}"
        assert main([command, *files, flag, nowhere, "--out", str(out)]) == 2
        printed, err = capsys.readouterr()
        assert printed == "" and err.count("\n") == 1 and err.startswith(f"mmtok: error: {flag} {nowhere}: ")
        assert not out.exists()


def test_malformed_code_files_are_named_and_the_others_decoded(encoded: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:

    codes, meta, _ = load_codes(encoded / "speech_en.wav.npz")
    image, image_meta, _ = load_codes(encoded / "coffee.jpg.npz")
    bad = {"float.wav.npz": (codes.astype(np.float32), meta, "float32, not integers"),
           "flat2d.wav.npz": (codes[None], meta, "where audio codes have 1 dimension"),
           "stack.jpg.npz": (image[None], image_meta, "where image codes have 2 dimension")}
    for name, (c, m, _) in bad.items():  # written as a hand-made file would be (save_codes casts to int64)
        np.savez(tmp_path / name, codes=c, meta=np.array(json.dumps(m)))
    args = [str(tmp_path / n) for n in bad] + [str(encoded / "coffee.jpg.npz")]
    assert main(["decode", *args, "--out", str(tmp_path / "back")]) == 2
    err = capsys.readouterr().err.splitlines()
    for line, (name, (_, _, why)) in zip(err, bad.items(), strict=False):
        assert line.startswith(f"mmtok: error: {tmp_path / name}: ") and why in line, line
    assert err[-1] == "mmtok: 3 of 4 files failed; the others were written"
    assert (tmp_path / "back" / "coffee.jpg.decoded.png").is_file()

    import mmtok.codefile as cf

    def broken(path: Path, out: Path, models: object, vocoder: str) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cf, "_decode_one", broken)  # a failure mmtok does not know: its type, and exit 1
    assert main(["decode", str(encoded / "coffee.jpg.npz"), "--out", str(tmp_path / "b2")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"mmtok: error: {encoded / 'coffee.jpg.npz'}: RuntimeError: a bug", "mmtok: 1 of 1 files failed"]


def test_codes_from_another_model_are_refused_naming_both(encoded: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio.config import AudioTokenizerConfig
    from mmtok.audio.tokenizer import AudioTokenizer
    from mmtok.vq.quantizer import VQConfig

    other = mmtok.save(AudioTokenizer(AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=8192),
                                                           decoder_channels=8)), tmp_path / "other")
    assert main(["decode", str(encoded / "speech_en.wav.npz"), "--audio", str(other), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "made by audio v7" in err and mmtok.load("audio").fingerprint in err and "--audio" in err
    assert not list(tmp_path.glob("*.wav"))


def test_info_describes_a_code_file(encoded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = describe(encoded / "speech_en.wav.npz")
    assert d["what"] == "code file" and d["kind"] == "audio" and d["source"] == "speech_en.wav"
    assert d["tokens"] == d["shape"][0] and d["seconds"] == d["tokens"] / 50 and d["shipped_model_reads_it"] is True
    img = describe(encoded / "coffee.jpg.npz")
    assert img["shape"] == [16, 16] and img["tokens"] == 256 and "seconds" not in img
    stale = tmp_path / "old.wav.npz"
    codes, meta, _ = load_codes(encoded / "speech_en.wav.npz")
    from mmtok.data.codes import save_codes

    save_codes(stale, codes, meta | {"fingerprint": "0000000000000000", "model_version": "audio v1"})
    assert describe(stale)["shipped_model_reads_it"] is False
    save_codes(tmp_path / "far.wav.npz", np.full_like(codes, 99_999), meta)  # its model, but no such codes
    assert describe(tmp_path / "far.wav.npz")["shipped_model_reads_it"] is False
    assert main(["info", str(stale)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"code file: {stale}") and "audio v1" in out


def test_a_video_and_its_soundtrack_go_to_codes_and_back_to_an_mp4(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("av")
    from mmtok.video.read import read_audio

    clip = EXAMPLES / "pan.mp4"
    assert main(["encode", str(clip), "--out", str(tmp_path)]) == 0
    codes, meta, audio_codes = load_codes(tmp_path / "pan.mp4.npz")
    video, audio = mmtok.load("video"), mmtok.load("audio")
    assert torch.equal(torch.from_numpy(codes), video.encode(clip)) and meta["fps"] == video.fps
    assert meta["model_version"] == video.image.provenance["model_version"]
    sound, rate = read_audio(clip, 16000)
    assert torch.equal(torch.from_numpy(audio_codes), audio.encode(sound, sample_rate=rate))
    assert meta["audio"]["fingerprint"] == audio.fingerprint and meta["audio"]["seconds"] == audio_codes.size / 50
    assert main(["decode", str(tmp_path / "pan.mp4.npz"), "--out", str(tmp_path / "back")]) == 0
    assert f"{codes.shape[0]} frames at 1 fps with" in capsys.readouterr().out
    back = tmp_path / "back" / "pan.mp4.decoded.mp4"
    made = back.read_bytes()
    assert main(["decode", str(tmp_path / "pan.mp4.npz"), "--out", str(tmp_path / "back")]) == 0  # replaced: its own
    back.write_bytes(clip.read_bytes())  # a video of the user's under that name is kept
    assert main(["decode", str(tmp_path / "pan.mp4.npz"), "--out", str(tmp_path / "back")]) == 2
    assert "was not written by 'mmtok decode'" in capsys.readouterr().err and back.read_bytes() == clip.read_bytes()
    back.write_bytes(made)
    frames = video.frames(back)  # the MP4 plays back: one frame per code grid, and its sound
    assert sum(f.shape[0] for f, _ in frames) == codes.shape[0]
    sound_back, _ = read_audio(back, 16000)
    assert sound_back.numel() == audio_codes.size * 320  # cut at the stream's stated end, not AAC's padded frame
    wave = audio.decode(torch.from_numpy(audio_codes))
    lag = max(range(-400, 401), key=lambda k: float(torch.dot(wave[2000:60000], sound_back[2000 + k : 60000 + k])))
    assert lag == 0  # in step with the frames: the encoder's priming is skipped on reading
    d = describe(tmp_path / "pan.mp4.npz")
    assert d["soundtrack"]["tokens"] == audio_codes.size and d["shipped_model_reads_it"] is True


def test_folders_are_walked_into_the_same_subfolders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    media = tmp_path / "media"
    for rel, src in {"coffee.jpg": "coffee.jpg", "sub/speech_en.wav": "speech_en.wav",
                     ".hidden/camera.png": "camera.png", "notes.txt": None}.items():
        (media / rel).parent.mkdir(parents=True, exist_ok=True)
        (media / rel).write_bytes((EXAMPLES / src).read_bytes() if src else b"not media")
    (tmp_path / "empty").mkdir()
    assert main(["encode", str(media), str(tmp_path / "empty"), "--out", str(tmp_path / "codes")]) == 2
    note, error = capsys.readouterr().err.splitlines()[:2]
    assert note == f"mmtok: note: skipped 1 file of a kind mmtok does not read (by the extension): {media / 'notes.txt'}"
    assert error == f"mmtok: error: {tmp_path / 'empty'}: a folder with no file to read in it"
    written = sorted(str(p.relative_to(tmp_path / "codes")) for p in (tmp_path / "codes").rglob("*.npz"))
    assert written == ["coffee.jpg.npz", "sub/speech_en.wav.npz"]  # hidden folders and other files left out
    assert main(["decode", str(tmp_path / "codes"), "--out", str(tmp_path / "back")]) == 0
    back = sorted(str(p.relative_to(tmp_path / "back")) for p in (tmp_path / "back").rglob("*.*"))
    assert back == ["coffee.jpg.decoded.png", "sub/speech_en.wav.decoded.wav"]


def test_decode_reads_each_code_file_once_before_the_work_and_once_to_decode_it(
        encoded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok import codefile

    reads: list[Path] = []

    def counted(path: Path):  # type: ignore[no-untyped-def]
        reads.append(Path(path))
        return load_codes(path)

    monkeypatch.setattr(codefile, "load_codes", counted)
    files = [encoded / "coffee.jpg.npz", encoded / "speech_en.wav.npz"]
    assert main(["decode", *map(str, files), "--out", str(tmp_path)]) == 0
    assert sorted(reads) == sorted(files * 2)


def test_each_models_fingerprint_is_computed_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio.tokenizer import AudioTokenizer
    from mmtok.image.tokenizer import ImageTokenizer

    want = {"image": mmtok.load("image").fingerprint, "audio": mmtok.load("audio").fingerprint}
    calls = {"image": 0, "audio": 0}
    for kind, cls in (("image", ImageTokenizer), ("audio", AudioTokenizer)):
        def counted(tok: object, kind: str = kind, hash_weights=cls.fingerprint.fget) -> str:  # type: ignore[no-untyped-def]
            calls[kind] += 1
            return hash_weights(tok)

        monkeypatch.setattr(cls, "fingerprint", property(counted))
    names = ["coffee.jpg", "camera.png", "chelsea.jpg", "speech_en.wav", "speech_de.flac"]
    assert main(["encode", *(str(EXAMPLES / n) for n in names), "--out", str(tmp_path / "codes")]) == 0
    assert calls == {"image": 1, "audio": 1}  # not once per file
    for n in names:
        meta = load_codes(tmp_path / "codes" / f"{n}.npz").meta
        assert meta["fingerprint"] == want[meta["kind"]]
    calls.update(image=0, audio=0)
    codes = [str(tmp_path / "codes" / f"{n}.npz") for n in ("coffee.jpg", "camera.png", "speech_en.wav")]
    assert main(["decode", *codes, "--out", str(tmp_path / "back")]) == 0
    assert calls == {"image": 1, "audio": 1}
    capsys.readouterr()


def test_decode_of_a_code_file_that_is_not_there_says_so_in_one_line(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """As encode says a missing input: the path and 'no such file', not Python's errno text."""
    from mmtok.cli import main

    assert main(["decode", str(tmp_path / "nosuch.npz"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nosuch.npz'}: no such file" in err and "Errno" not in err
