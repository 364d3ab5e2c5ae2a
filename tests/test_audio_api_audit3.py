"""The audio tokenizer's Python contract, as a user scripts against it: decoding inside an autocast
region, big batches of codes in bounded memory, a column of codes, and a padded batch whose lengths
came back as a list."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import mmtok.audio.tokenizer as tokenizer_module
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder import Vocoder
from mmtok.audio.vocoder_config import VocoderConfig
from mmtok.core.errors import AudioError
from tests.audio_helpers import small_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok() -> AudioTokenizer:
    torch.manual_seed(0)
    tok = AudioTokenizer(small_config()).eval()
    tok.vocoder = Vocoder(VocoderConfig(dim=16, intermediate=32, blocks=1)).eval()
    return tok


def codes(n: int, rows: int | None = None, seed: int = 0) -> torch.Tensor:
    shape = (n,) if rows is None else (rows, n)
    return torch.randint(0, 64, shape, generator=torch.Generator().manual_seed(seed))


def test_decode_in_a_bfloat16_autocast_region_gives_the_float32_sound(tok: AudioTokenizer) -> None:
    c = codes(60)
    wave, mel = tok.decode(c), tok.decode_features(c)
    batch = tok.decode(torch.stack([c, c.flip(0)]))
    streamed = torch.cat(list(tok.decode_stream(c.split(7))))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(tok.decode_features(c), mel)
        assert torch.equal(tok.decode(c), wave)
        assert torch.equal(tok.decode(torch.stack([c, c.flip(0)])), batch)
        assert torch.equal(torch.cat(list(tok.decode_stream(c.split(7)))), streamed)
        assert tok.decode(c, vocoder="griffin-lim").dtype == torch.float32


def test_decode_of_a_big_batch_runs_a_bounded_number_of_frames_at_once(
        tok: AudioTokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    c = codes(40, rows=6)
    whole = tok.decode(c)
    each = torch.stack([tok.decode(row) for row in c])
    frames = 200  # two windows of 50 tokens of 2 frames: 2 rows of 40 tokens at a time
    monkeypatch.setattr(tokenizer_module, "VOCODER_CHUNK_FRAMES", 100)
    monkeypatch.setattr(tokenizer_module, "BATCH_WINDOWS", 2)
    seen_voc: list[tuple[int, ...]] = []
    seen_dec: list[tuple[int, ...]] = []
    voc_decode, latent = tok.vocoder.decode, tok._decode_latent  # type: ignore[union-attr]

    def spy_voc(mel: torch.Tensor, **kw: Any) -> torch.Tensor:
        seen_voc.append(tuple(mel.shape))
        return voc_decode(mel, **kw)

    def spy_latent(zq: torch.Tensor) -> torch.Tensor:
        seen_dec.append(tuple(zq.shape))
        return latent(zq)

    monkeypatch.setattr(tok.vocoder, "decode", spy_voc)
    monkeypatch.setattr(tok, "_decode_latent", spy_latent)
    out = tok.decode(c)
    assert [s[0] for s in seen_voc] == [2, 2, 2] and all(s[0] * s[-1] <= frames for s in seen_voc), seen_voc
    assert seen_dec and all(s[0] * s[1] * 2 <= frames for s in seen_dec), seen_dec
    assert out.shape == (6, 40 * tok.samples_per_token)
    assert torch.allclose(out, whole, atol=1e-5) and torch.allclose(out, each, atol=1e-5)
    mel = tok.decode_features(c)
    assert mel.shape == (6, tok.cfg.n_mels, 80)


@pytest.mark.parametrize("how", ["decode", "decode_features"])
def test_a_column_of_codes_is_refused_with_the_fix(tok: AudioTokenizer, how: str) -> None:
    c = codes(30)
    with pytest.raises(AudioError, match=r"\(30, 1\).*30 clips of one code.*reshape\(-1\).*lengths="):
        getattr(tok, how)(c[:, None])
    with pytest.raises(AudioError, match=r"\(30, 1\)"):
        getattr(tok, how)(c[:, None].numpy())
    assert getattr(tok, how)(c[None]).shape[0] == 1  # [1, n] is one clip, a batch of one
    assert len(getattr(tok, how)(c[:, None], lengths=[1] * 30)) == 30  # one-code clips, said so


def test_a_batched_encode_of_one_code_clips_still_decodes(tok: AudioTokenizer) -> None:
    rng = np.random.default_rng(1)
    batch = tok.encode([(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (100, 320)], SAMPLE_RATE)
    assert batch[0].shape == (2, 1)
    assert [w.numel() for w in tok.decode(batch)] == [320, 320]


@pytest.mark.parametrize("how", ["decode", "decode_features"])
def test_a_padded_batch_with_lengths_as_a_list_decodes(tok: AudioTokenizer, how: str) -> None:
    rng = np.random.default_rng(2)
    c, lengths = tok.encode([(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (6400, 1000)], SAMPLE_RATE)
    want = getattr(tok, how)((c, lengths))
    for given in [(c, lengths.tolist()), [c, lengths], [c.numpy(), lengths.tolist()], (c, tuple(lengths.tolist()))]:
        got = getattr(tok, how)(given)
        assert isinstance(got, list) and [g.shape for g in got] == [w.shape for w in want]
        assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("rates", [[16000, 8000], (16000, 16000), np.array([16000, 8000])])
def test_a_batch_with_one_sample_rate_per_clip_is_refused_with_the_fix(tok: AudioTokenizer, rates: Any) -> None:
    clips = [np.zeros(1600, np.float32), np.zeros(800, np.float32)]
    with pytest.raises(TypeError, match=r"one per clip, but a batch takes one rate.*load_audio") as e:
        tok.encode(clips, rates)
    assert "clip 0" not in str(e.value)


def test_rows_of_codes_of_different_lengths_are_refused_with_the_fix(tok: AudioTokenizer) -> None:
    with pytest.raises(AudioError, match=r"ragged.*one by one.*lengths="):
        tok.decode([codes(10), codes(15)])
