"""Audio out: a long chunk streams in bounded pieces with the same samples, ``--vocoder learned`` on a model
without one is refused once before any work, the encode and decode lines say which side is which, and
``mmtok info`` on a media file says to encode it first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import mmtok
import mmtok.audio.decode_stream as ds
from mmtok.audio.config import VOCODER_CHUNK_FRAMES
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.cli import main
from mmtok.core.errors import AudioError, CheckpointError, MmtokError
from mmtok.info import describe
from tests.test_audio_decode_stream import SMALL, tokenizer

STEP = VOCODER_CHUNK_FRAMES // SMALL.frames_per_token  # tokens per push in the exact engine

pytestmark = pytest.mark.usefixtures("one_thread")


def codes(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, SMALL.vq.codebook_size, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def push_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of token vectors each push into the streamed log-mel decoder carried."""
    sizes: list[int] = []
    push = ds.StreamMelDecoder.push

    def spy(self: ds.StreamMelDecoder, z: torch.Tensor, *, last: bool = False) -> torch.Tensor:
        sizes.append(z.shape[-1])
        return push(self, z, last=last)

    monkeypatch.setattr(ds.StreamMelDecoder, "push", spy)
    return sizes


# --------------------------------------------------------------------------- 1: one long chunk, bounded pieces


def test_a_long_chunk_goes_through_in_bounded_pieces_with_the_same_samples(push_sizes: list[int]) -> None:
    tok, c = tokenizer(), codes(STEP + 137)
    assert ds.streams_exactly(tok.vocoder)
    long = list(tok.decode_stream([c]))
    assert len(long) == 2 and max(push_sizes) <= STEP and sum(push_sizes) == c.numel()
    push_sizes.clear()
    small = list(tok.decode_stream(c.split(STEP)))
    assert push_sizes[:-1] == [STEP, 137]
    assert torch.equal(long[0], torch.cat(small[:-1])) and torch.equal(long[1], small[-1])
    torch.testing.assert_close(torch.cat(long), tok.decode(c), atol=1e-4, rtol=0)


def test_the_piece_size_follows_chunk_frames(push_sizes: list[int]) -> None:
    tok, c = tokenizer(), codes(95, seed=1)
    bounded = torch.cat(list(ds.stream_waveform(tok, [c[:3], c[3:]], tok.vocoder, chunk_frames=20)))
    assert push_sizes[:-1] == [3, *[10] * 9, 2]  # at most 10 tokens (of 2 frames) a push
    push_sizes.clear()
    same = torch.cat(list(ds.stream_waveform(tok, [c[:3], *c[3:].split(10)], tok.vocoder, chunk_frames=20)))
    assert torch.equal(bounded, same)
    whole = torch.cat(list(ds.stream_waveform(tok, [c], tok.vocoder, chunk_frames=None)))
    assert push_sizes[-2:] == [95, 0]  # None: one push, as asked
    torch.testing.assert_close(bounded, whole, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- 2: --vocoder learned without one


@pytest.fixture(scope="module")
def no_vocoder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """An audio model without a learned vocoder, a short sound, and that sound's code file made by the model."""
    root = tmp_path_factory.mktemp("novoc")
    model = mmtok.save(tokenizer(None), root / "novoc")
    wav = root / "tone.wav"
    sf.write(wav, (0.3 * np.sin(np.arange(8000) / 5.0)).astype(np.float32), 16000, subtype="PCM_16")
    assert main(["encode", str(wav), "--audio", str(model), "--out", str(root / "codes")]) == 0
    return Path(model), wav, root / "codes" / "tone.wav.npz"


def test_the_library_says_how_to_attach_a_vocoder(no_vocoder: tuple[Path, Path, Path]) -> None:
    tok = mmtok.load(no_vocoder[0])
    with pytest.raises(AudioError, match=r"no learned vocoder; attach one \(mmtok train-tokenizer vocoder "
                                         r"--tokenizer MODEL --vocoder CKPT --attach OUT.*griffin-lim") as e:
        tok.decode(codes(5), vocoder="learned")
    assert isinstance(e.value, MmtokError) and isinstance(e.value, ValueError)
    with pytest.raises(AudioError, match="no learned vocoder"):
        tok.decode_stream([codes(5)], vocoder="learned")


def test_decode_refuses_learned_once_before_any_file(no_vocoder: tuple[Path, Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    model, _, code_file = no_vocoder
    out, other = tmp_path / "back", tmp_path / "other.wav.npz"
    other.write_bytes(code_file.read_bytes())
    assert main(["decode", str(code_file), str(other), "--audio", str(model), "--vocoder", "learned",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"mmtok: error: --vocoder learned: the audio model {model} has no learned vocoder; "
                   "use --vocoder auto or griffin-lim\n")
    assert not out.exists()
    assert main(["decode", str(code_file), "--audio", str(model), "--vocoder", "griffin-lim", "--out", str(out)]) == 0


def test_eval_refuses_learned_once_before_encoding(no_vocoder: tuple[Path, Path, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    model, wav, _ = no_vocoder
    other = tmp_path / "other.wav"
    other.write_bytes(wav.read_bytes())

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("encoded before the refusal")

    monkeypatch.setattr(AudioTokenizer, "encode", no_work)
    assert main(["eval", str(wav), str(other), "--audio", "audio", "--audio", str(model),
                 "--vocoder", "learned"]) == 2
    err = capsys.readouterr().err
    assert err == (f"mmtok: error: --vocoder learned: the audio model {model} has no learned vocoder; "
                   "use --vocoder auto or griffin-lim\n")


# --------------------------------------------------------------------------- 3: which side is which


def test_encode_and_decode_lines_name_rows_columns_width_height(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.image.config import ImageTokenizerConfig
    from mmtok.image.tokenizer import ImageTokenizer

    torch.manual_seed(0)
    model = mmtok.save(ImageTokenizer(ImageTokenizerConfig(image_size=32, size_policy="native")).eval(),
                       tmp_path / "native")
    pixels = (np.random.default_rng(0).random((32, 48, 3)) * 255).astype(np.uint8)  # 48 wide, 32 high
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    assert main(["encode", str(tmp_path / "wide.png"), "--image", str(model), "--out", str(tmp_path / "c")]) == 0
    assert "wide.png.npz: 2 rows × 3 columns of image tokens, codebook" in capsys.readouterr().out
    assert main(["decode", str(tmp_path / "c"), "--image", str(model), "--out", str(tmp_path / "d")]) == 0
    assert "wide.png.decoded.png: 48×32 image (width × height in pixels)" in capsys.readouterr().out


# --------------------------------------------------------------------------- 4: info on a media file


@pytest.mark.parametrize(("name", "what"), [("photo.jpg", "an image"), ("speech.WAV", "a sound"),
                                            ("clip.mp4", "a video")])
def test_info_on_a_media_file_says_to_encode_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                name: str, what: str) -> None:
    media = tmp_path / name
    media.write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match=rf"{what} \(a media file by its extension\), not a code file or a "
                                              rf"checkpoint; encode it first \(mmtok encode .*{name} --out DIR\), "
                                              rf"then describe DIR/{name}\.npz"):
        describe(media)
    assert main(["info", str(media)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mmtok: error: {media} is {what}") and err.count("\n") == 1
