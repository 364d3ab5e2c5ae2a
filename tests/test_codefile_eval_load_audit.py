"""``mmtok.load``, ``mmtok encode``/``decode`` and ``mmtok eval`` as a first-time user meets them: ``"video"`` is the
shipped image tokenizer wherever it is loaded, a misspelt ``kind`` or a name of the wrong type is said so, a folder
with a colon in its name is a folder, a tokenizer of one's own that keeps the protocol's contract works in every
command (or is refused in one line naming what it lacks), and code files without a fingerprint or written
big-endian are read as what they are."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from image_helpers import save_smooth_picture, tiny_config

import mmtok
from mmtok.cli import main
from mmtok.core.checkpoint_names import models_dir
from mmtok.core.errors import CheckpointError
from mmtok.core.protocol import takes_keyword
from mmtok.data.codes import load_codes, save_codes
from mmtok.evaluate import _fmt_summary
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.pretrained import is_callable_spec, load_config, load_tokenizer

OWN = '''
import torch

class Levels:
    """A sound tokenizer of one's own: the loudness of each 80 ms, 12.5 codes per second; encode and decode take
    what the protocol gives them and nothing more."""
    KIND = "audio"
    codebook_size = 64
    fingerprint = "levels-v1"
    sample_rate = 16000
    tokens_per_second = 12.5

    def encode(self, x):
        if not torch.is_tensor(x):
            from mmtok.audio.io import load_audio
            x = load_audio(x, target_rate=self.sample_rate)
        n = x.numel() // 1280
        return (x[: n * 1280].reshape(n, 1280).abs().mean(1) * 63).round().long().clamp(0, 63)

    def decode(self, codes):
        return (codes.float() / 63).repeat_interleave(1280)


class Gray:
    """A picture tokenizer of one's own with no fingerprint and no preprocess."""
    KIND = "image"
    codebook_size = 256

    def encode(self, x):
        return torch.zeros(2, 2, dtype=torch.long)

    def decode(self, codes):
        return torch.zeros(3, 32, 32)


def levels():
    return Levels()


def gray():
    return Gray()
'''


@pytest.fixture
def own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding ``own_tokenizers_audit.py`` (:data:`OWN`) and two seconds of a tone."""
    (tmp_path / "own_tokenizers_audit.py").write_text(OWN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "own_tokenizers_audit", raising=False)
    t = np.arange(32_000) / 16_000
    sf.write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 220 * t) * np.minimum(1, 2 * t)).astype(np.float32),
             16_000)
    return tmp_path


@pytest.fixture(scope="module")
def tiny_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return mmtok.save(ImageTokenizer(tiny_config()).eval(), tmp_path_factory.mktemp("models") / "tiny image")


# --------------------------------------------------------------------------- mmtok.load


def test_the_shipped_video_is_built_from_the_shipped_image_whatever_the_working_folder_holds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mmtok.save(mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8)), tmp_path / "image")  # one's own "image"
    monkeypatch.chdir(tmp_path)
    shipped = mmtok.load(models_dir() / "image")
    video = mmtok.load("video")
    assert isinstance(video.image, ImageTokenizer) and video.image.fingerprint == shipped.fingerprint
    assert load_config("video").image == shipped.cfg
    assert isinstance(mmtok.load("image"), mmtok.VectorQuantizer)  # the name "image" still finds the folder here


def test_a_misspelt_kind_and_a_name_of_the_wrong_type_are_said_so(tmp_path: Path) -> None:
    folder = mmtok.save(mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8)), tmp_path / "vq")
    for call in (mmtok.load, load_config):
        with pytest.raises(CheckpointError, match=r"kind 'imgae' is not a kind of checkpoint: give one of vq, image"):
            call(folder, kind="imgae")
        with pytest.raises(TypeError, match=r"shipped name \(.*\) or a checkpoint folder.*got NoneType"):
            call(None)  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="is of kind 'vq', expected 'image'"):
        mmtok.load(folder, kind="image")  # a real kind: the checkpoint's own is named


def test_a_folder_with_a_colon_in_its_name_is_a_folder(tmp_path: Path) -> None:
    missing = tmp_path / "runs" / "2026-12-04T10:30" / "model"
    assert not is_callable_spec(str(missing)) and is_callable_spec("mmtok.pretrained:native_image_tokenizer")
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*10:30/model: the folder does not exist"):
        load_tokenizer(str(missing), kind="image")
    mmtok.save(mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8)), missing)
    assert isinstance(load_tokenizer(str(missing)), mmtok.VectorQuantizer)


def test_takes_keyword_reads_the_shipped_tokenizers_through_their_wrappers() -> None:
    sound = mmtok.load("audio")
    assert takes_keyword(sound.decode, "vocoder") and takes_keyword(sound.encode, "sample_rate")
    assert not takes_keyword(lambda codes: codes, "vocoder") and takes_keyword(lambda codes, **kw: codes, "vocoder")


# --------------------------------------------------------------------------- a tokenizer of one's own


def test_a_sound_tokenizer_of_ones_own_encodes_decodes_and_is_scored(
        own: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = "own_tokenizers_audit:levels"
    assert main(["encode", "tone.wav", "--audio", spec, "--out", "codes"]) == 0
    codes, meta, _ = load_codes(own / "codes" / "tone.wav.npz")
    assert codes.shape == (25,) and meta["tokens_per_second"] == 12.5 and meta["seconds"] == 2.0  # not 12
    assert main(["decode", "codes", "--audio", spec, "--out", "back"]) == 0
    wave, rate = sf.read(own / "back" / "tone.wav.decoded.wav", dtype="float32")
    assert rate == 16_000 and np.array_equal(wave, (torch.from_numpy(codes).float() / 63).repeat_interleave(1280))
    capsys.readouterr()
    assert main(["decode", "codes", "--audio", spec, "--out", "gl", "--vocoder", "griffin-lim"]) == 2
    assert "--vocoder griffin-lim: the audio tokenizer own_tokenizers_audit:levels decodes its own way" in (
        capsys.readouterr().err) and not (own / "gl").exists()
    assert main(["eval", "tone.wav", "--audio", spec, "--json"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["model"] == spec and row["seconds"] == 2.0 and "logmel_l1" not in row  # it has no log_mel


def test_a_tokenizer_of_ones_own_that_lacks_what_a_command_reads_is_refused_in_one_line(
        own: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_smooth_picture(own / "pic.png", size=32)
    assert main(["encode", "pic.png", "--image", "own_tokenizers_audit:gray", "--out", "codes"]) == 2
    err = capsys.readouterr().err
    assert "--image own_tokenizers_audit:gray gives a Gray, which has no fingerprint" in err and "Traceback" not in err
    assert not (own / "codes").exists()
    assert main(["eval", "pic.png", "--image", "own_tokenizers_audit:gray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gives a Gray, which has no preprocess: mmtok eval scores the decoded picture" in err


# --------------------------------------------------------------------------- code files


def test_a_code_file_without_a_fingerprint_is_said_so_and_big_endian_codes_decode(
        tiny_image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    picture = save_smooth_picture(tmp_path / "pic.png", size=64)
    assert main(["encode", str(picture), "--image", str(tiny_image), "--out", str(tmp_path / "codes")]) == 0
    codes, meta, _ = load_codes(tmp_path / "codes" / "pic.png.npz")
    save_codes(tmp_path / "odd" / "bare.png.npz", codes, {k: v for k, v in meta.items() if k != "fingerprint"})
    with open(tmp_path / "odd" / "big.png.npz", "wb") as f:
        np.savez(f, codes=codes.astype(">i8"), meta=np.array(json.dumps(meta)))
    capsys.readouterr()
    assert main(["decode", str(tmp_path / "odd"), "--image", str(tiny_image), "--out", str(tmp_path / "back")]) == 2
    err = capsys.readouterr().err
    assert "bare.png.npz: its meta records no fingerprint of the image model that made it (None)" in err
    assert "encode pic.png again" in err and "changed since" not in err and "ValueError" not in err
    assert main(["decode", str(tmp_path / "codes"), "--image", str(tiny_image), "--out", str(tmp_path / "ok")]) == 0
    big, native = (tmp_path / "back" / "big.png.decoded.png").read_bytes(), (
        tmp_path / "ok" / "pic.png.decoded.png").read_bytes()
    assert big == native


# --------------------------------------------------------------------------- eval's summary


def test_the_summary_names_scores_given_to_some_files_as_the_table_does() -> None:
    line = _fmt_summary({"summary": "audio", "model": "m", "files": 3, "stoi": 0.5, "stoi_files": 1, "pesq_wb": 1.5,
                         "pesq_wb_files": 2, "codes_used": 4, "codebook_size": 64, "tokens": 9, "usage": 0.5,
                         "perplexity": 3.0})
    assert "3 files (STOI on 1 of them, PESQ-WB on 2 of them), means: STOI 0.500, PESQ-WB 1.50" in line
