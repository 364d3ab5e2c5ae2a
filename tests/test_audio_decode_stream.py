"""Streaming decode: codes in chunks -> waveform pieces that join into the whole decode, each out
as soon as no later code can change it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import mmtok
import mmtok.audio.decode_stream as ds
from mmtok.audio.tokenizer import AudioTokenizer, AudioTokenizerConfig
from mmtok.audio.vocoder import Vocoder, VocoderConfig
from mmtok.core.errors import AudioError
from mmtok.vq.quantizer import VQConfig

SMALL = AudioTokenizerConfig(encoder_kind="conv", code_dim=16, encoder_channels=32, decoder_channels=32,
                             decoder_blocks=3, block_tokens=100,
                             vq=VQConfig(dim=16, codebook_size=64, cosine=True, codebook_dim=8))
VOC = VocoderConfig(dim=16, intermediate=32, blocks=2)
SPT = SMALL.samples_per_token
EXAMPLES = Path(__file__).parents[1] / "examples" / "data"

pytestmark = pytest.mark.usefixtures("one_thread")


def tokenizer(voc: VocoderConfig | None = VOC) -> AudioTokenizer:
    torch.manual_seed(0)
    tok = AudioTokenizer(SMALL).eval()
    if voc is not None:
        tok.vocoder = Vocoder(voc).eval()
    return tok


@pytest.fixture(scope="module")
def tok() -> AudioTokenizer:
    return tokenizer()


def codes(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, SMALL.vq.codebook_size, (n,), generator=torch.Generator().manual_seed(seed))


def split(x: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    assert sum(sizes) == x.numel()
    return list(x.split(sizes))


@pytest.mark.parametrize("sizes", [[200], [1] * 70 + [130], [0, 37, 0, 5, 90, 68], [150, 49, 1]])
def test_the_pieces_join_into_the_whole_decode(tok: AudioTokenizer, sizes: list[int]) -> None:
    c = codes(200)
    pieces = list(tok.decode_stream(split(c, sizes)))
    assert len(pieces) in (len(sizes), len(sizes) + 1)  # one per chunk, and the tail after the last
    whole = tok.decode(c)
    joined = torch.cat(pieces)
    assert joined.shape == whole.shape == (200 * SPT,)
    assert torch.allclose(joined, whole, atol=1e-6), float((joined - whole).abs().max())
    assert all(not p.is_inference() for p in pieces)


def test_a_token_is_out_once_the_lookahead_has_arrived(tok: AudioTokenizer) -> None:
    reach = tok.decode_lookahead
    assert reach == tok.decoder.context_tokens + -(-tok.vocoder.context_frames // SMALL.frames_per_token)
    out = 0
    for received, piece in enumerate(tok.decode_stream(codes(60).split(1)), start=1):
        out += piece.numel()
        if received <= 60:
            assert out == max(0, received - reach) * SPT
    assert out == 60 * SPT


def test_the_shipped_lookahead_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the shipped model (trained weights reach further than random ones), the pieces equal the
    whole decode of real speech, and with 12 tokens less of lookahead they do not."""
    shipped = mmtok.load("audio")
    c = shipped.encode(EXAMPLES / "speech_en.wav")[:150]
    whole = shipped.decode(c)
    joined = torch.cat(list(shipped.decode_stream(c.split(9))))
    assert torch.allclose(joined, whole, atol=5e-4), float((joined - whole).abs().max())
    reach = shipped.decode_lookahead
    monkeypatch.setattr(ds, "lookahead_tokens", lambda t, v: reach - 12)
    short = torch.cat(list(shipped.decode_stream(c.split(9))))
    assert float((short - whole).abs().max()) > 1e-2


def test_the_level_correction_widens_the_lookahead() -> None:
    plain, matched = tokenizer(), tokenizer(dataclasses.replace(VOC, mel_match=1))
    assert matched.decode_lookahead > plain.decode_lookahead
    c = codes(150, seed=2)
    joined = torch.cat(list(matched.decode_stream(c.split(11))))
    assert torch.allclose(joined, matched.decode(c), atol=1e-6)


def test_bad_streams_are_refused_with_the_chunk_named(tok: AudioTokenizer) -> None:
    with pytest.raises(ValueError, match=r"learned vocoder.*Griffin-Lim works on whole clips"):
        tok.decode_stream([codes(5)], vocoder="griffin-lim")
    with pytest.raises(ValueError, match="learned vocoder, and this tokenizer has none"):
        tokenizer(None).decode_stream([codes(5)])
    assert tokenizer(None).decode_lookahead is None
    with pytest.raises(AudioError, match=r"chunk 1: codes must be \[k\]"):
        list(tok.decode_stream([codes(5), codes(6).reshape(2, 3)]))
    with pytest.raises(AudioError, match=r"chunk 2: codes must be in 0\.\.63"):
        list(tok.decode_stream([codes(5), codes(5), torch.tensor([1, 64])]))
    with pytest.raises(TypeError, match="chunk 0: codes must be integers"):
        list(tok.decode_stream([torch.zeros(3)]))
    with pytest.raises(AudioError, match="no codes"):
        list(tok.decode_stream([torch.zeros(0, dtype=torch.long)]))
    with pytest.raises(AudioError, match="no codes"):
        list(tok.decode_stream([]))
