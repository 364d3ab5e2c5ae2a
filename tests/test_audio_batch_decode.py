"""Decoding a batch of audio codes: a rectangular ``[B, n]`` batch, and the padded batch with
lengths that a batched ``encode`` returns, through Griffin-Lim and through a learned vocoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder import Vocoder
from mmtok.audio.vocoder_config import VocoderConfig
from mmtok.core.errors import AudioError
from tests.audio_helpers import small_config

SMALL = small_config()

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok() -> AudioTokenizer:
    torch.manual_seed(0)
    tok = AudioTokenizer(SMALL).eval()
    tok.vocoder = Vocoder(VocoderConfig(dim=16, intermediate=32, blocks=1)).eval()
    return tok


def clips() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [(0.2 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 5000, 320, 23456)]


@pytest.mark.parametrize("vocoder", ["learned", "griffin-lim"])
def test_decode_of_a_batched_encode_gives_each_clip_its_own_decode(tok: AudioTokenizer, vocoder: str) -> None:
    xs = clips()
    batch = tok.encode(xs, SAMPLE_RATE)
    waves = tok.decode(batch, vocoder=vocoder)
    assert isinstance(waves, list) and len(waves) == len(xs)
    same = tok.decode(batch[0], lengths=batch[1], vocoder=vocoder)  # the pair, or codes with lengths=
    assert all(torch.equal(a, b) for a, b in zip(waves, same, strict=True))
    for x, wave, n in zip(xs, waves, batch[1].tolist(), strict=True):
        single = tok.decode(tok.encode(x, SAMPLE_RATE), vocoder=vocoder)
        assert wave.shape == (n * SMALL.samples_per_token,)
        assert torch.equal(wave, single)  # the padding after a clip is never read
        assert not wave.is_inference()


@pytest.mark.parametrize("vocoder", ["learned", "griffin-lim"])
def test_a_rectangular_batch_decodes_row_by_row(tok: AudioTokenizer, vocoder: str) -> None:
    codes = torch.randint(0, tok.codebook_size, (3, 40), generator=torch.Generator().manual_seed(1))
    out = tok.decode(codes, vocoder=vocoder)
    assert out.shape == (3, 40 * SMALL.samples_per_token) and not out.is_inference()
    for row, wave in zip(codes, out, strict=True):
        assert torch.allclose(wave, tok.decode(row, vocoder=vocoder), atol=1e-5)
    # numpy and nested lists are batches too
    assert torch.allclose(tok.decode(codes.numpy().astype(np.uint16), vocoder=vocoder), out, atol=1e-6)
    assert torch.allclose(tok.decode(codes.tolist(), vocoder=vocoder), out, atol=1e-6)


def test_lengths_are_checked_before_anything_is_decoded(tok: AudioTokenizer) -> None:
    codes, lengths = tok.encode(clips()[:2], SAMPLE_RATE)
    width = codes.shape[1]
    bad = {
        "one per row": [width],
        r"lengths\[1\] is 0": [width, 0],
        rf"lengths\[0\] is {width + 1}": [width + 1, 1],
        "integers": [1.0, 2.0],
        "integers, one per row": [[1], [2]],
    }
    for match, value in bad.items():
        with pytest.raises(AudioError, match=match):
            tok.decode(codes, lengths=value)
    with pytest.raises(AudioError, match=r"a batch \[B, n\]"):
        tok.decode(codes[0], lengths=[3])
    with pytest.raises(AudioError, match="PAD_CODE"):  # a length past a clip's end reads its padding
        tok.decode(codes, lengths=[width, width])
    with pytest.raises(AudioError, match="lengths must be 2 integers"):
        tok.decode((codes, lengths[:1]))
    assert [w.numel() for w in tok.decode(codes, lengths=lengths.numpy())] == (lengths * 320).tolist()
