"""Streaming decode: codes in chunks -> waveform pieces that join into the whole decode, each out
as soon as no later code can change it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import mmtok
import mmtok.audio.decode_stream as ds
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.streaming import StreamConv, StreamISTFT
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder import Vocoder
from mmtok.audio.vocoder_config import VocoderConfig
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


def test_samples_are_out_once_the_lookahead_has_arrived(tok: AudioTokenizer) -> None:
    behind = ds.lookahead_samples(tok, tok.vocoder)
    assert tok.decode_lookahead == -(-behind // SPT)
    out = 0
    for received, piece in enumerate(tok.decode_stream(codes(60).split(1)), start=1):
        out += piece.numel()
        if received <= 60:  # exact streaming: every final sample is out, and none more
            assert out == max(0, received * SPT - behind), received
    assert out == 60 * SPT


@pytest.mark.parametrize("sizes", [[40], [1] * 40, [0, 3, 0, 17, 20]])
def test_the_streaming_layers_equal_the_whole_ones(sizes: list[int]) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(3, 4, 5, padding=4, dilation=2)
    x = torch.randn(2, 3, 40)
    s = StreamConv(conv)
    parts = [s.push(p) for p in x.split(sizes, dim=-1)] + [s.push(x[..., :0], last=True)]
    assert torch.allclose(torch.cat(parts, -1), conv(x), atol=1e-6)
    window = torch.hann_window(64)
    spec = torch.randn(2, 33, 40, dtype=torch.complex64)
    istft = StreamISTFT(64, 16, window)
    parts = [istft.push(p) for p in spec.split(sizes, dim=-1)] + [istft.push(spec[..., :0], last=True)]
    whole = torch.istft(spec, 64, 16, 64, window=window, center=True, length=40 * 16)
    assert torch.allclose(torch.cat(parts, -1), whole, atol=1e-6)
    with pytest.raises(ValueError, match="stride 1 and zero padding"):
        StreamConv(torch.nn.Conv1d(3, 4, 5, padding=1))


def test_the_shipped_model_streams_exactly_and_in_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the shipped model (trained weights reach further than random ones) both engines equal the
    whole decode of real speech; windows with 12 tokens less of lookahead do not."""
    shipped = mmtok.load("audio")
    c = shipped.encode(EXAMPLES / "speech_en.wav")[:150]
    whole = shipped.decode(c)
    for engine in ("exact", "windows"):
        monkeypatch.setattr(ds, "streams_exactly", lambda v, e=engine: e == "exact")
        joined = torch.cat(list(shipped.decode_stream(c.split(9))))
        assert torch.allclose(joined, whole, atol=2e-3), (engine, float((joined - whole).abs().max()))
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


def test_one_array_of_codes_is_a_type_error_that_says_to_split_it(tok: AudioTokenizer) -> None:
    c = codes(40)
    for whole in (c, c.numpy(), c[None]):
        with pytest.raises(TypeError, match=r"decode_stream takes .*chunks.*codes\.split\(k\).*decode\(codes\)"):
            tok.decode_stream(whole)  # refused when called, before any chunk is read
    with pytest.raises(TypeError, match=r"chunk 0 is one code"):
        list(tok.decode_stream(c.tolist()))  # a list of ints: each "chunk" a single code


def test_an_empty_chunk_of_any_kind_is_skipped(tok: AudioTokenizer) -> None:
    c = codes(60)
    want = torch.cat(list(tok.decode_stream([c[:20], c[20:]])))
    for empty in (c[:0], c[:0].numpy(), np.zeros(0, np.int64), np.zeros(0), [], ()):
        joined = torch.cat(list(tok.decode_stream([c[:20], empty, c[20:]])))
        assert torch.equal(joined, want)
    with pytest.raises(AudioError, match="no codes"):
        list(tok.decode_stream([[], np.zeros(0, np.int64)]))
    with pytest.raises(AudioError, match=r"chunk 1: codes are empty \(shape \(0, 3\)\)"):
        list(tok.decode_stream([c[:20], np.zeros((0, 3), np.int64)]))  # empty, but not [k]


def test_a_slice_tokenizer_with_a_skip_decoder_streams_too() -> None:
    """The "slice" encoder's decoder adds its input back (a skip): that path waits for its frames too."""
    torch.manual_seed(0)
    slice_tok = AudioTokenizer(AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=32), decoder_channels=16)).eval()
    assert slice_tok.cfg.encoder_kind == "slice" and slice_tok.decoder.skip
    with torch.no_grad():
        slice_tok.decoder.proj.weight.normal_(0, 0.1)  # the correction starts at zero: give it something to add
    slice_tok.vocoder = Vocoder(VocoderConfig(dim=16, intermediate=32, blocks=1)).eval()
    c = torch.randint(0, 32, (90,), generator=torch.Generator().manual_seed(3))
    joined = torch.cat(list(slice_tok.decode_stream(c.split(4))))
    assert torch.allclose(joined, slice_tok.decode(c), atol=1e-6)
