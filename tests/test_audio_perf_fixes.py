"""Audio costs that follow the signal: the log-mel decoder runs a long clip in windows that share the
codes out evenly (each code decoded once, no window short), with the log-mel of one piece, and the learned
vocoder and Griffin-Lim window the same way, with the waveform of one piece; a streamed encode joins its
chunks once per block, with the codes of a whole encode.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import torch

import mmtok
import mmtok.audio.griffin_lim as griffin_lim_module
import mmtok.audio.tokenizer as tokenizer_module
from mmtok.audio.config import VOCODER_CHUNK_FRAMES
from mmtok.audio.features import log_mel, mel_filters
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.griffin_lim import griffin_lim, reach_frames
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder import Vocoder
from mmtok.audio.vocoder_config import VocoderConfig
from mmtok.audio.windows import context_windows
from tests.test_audio_batch_decode import SMALL as BATCH_SMALL

SMALL = replace(BATCH_SMALL, block_tokens=25)  # the small tokenizer of the batch-decode tests, shorter blocks

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok() -> AudioTokenizer:
    torch.manual_seed(0)
    return AudioTokenizer(SMALL).eval()


@pytest.fixture(scope="module")
def shipped() -> AudioTokenizer:
    return mmtok.load("audio")


def codes(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, size, (n,), generator=torch.Generator().manual_seed(seed))


def one_piece(tok: AudioTokenizer, c: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> torch.Tensor:
    with monkeypatch.context() as m:
        m.setattr(tokenizer_module, "VOCODER_CHUNK_FRAMES", 10**9)
        return tok.decode_features(c)


def test_even_windows_share_the_frames_out() -> None:
    assert list(context_windows(61, 60, 7, even=True)) == [(0, 30, 0, 37), (30, 61, 23, 61)]
    assert list(context_windows(60, 60, 7, even=True)) == [(0, 60, 0, 60)]
    assert list(context_windows(0, 60, 7, even=True)) == []
    for n in (1, 59, 61, 119, 121, 179, 180, 181, 6001):
        kept = [b - a for a, b, _, _ in context_windows(n, 60, 7, even=True)]
        assert len(kept) == math.ceil(n / 60) and sum(kept) == n
        assert max(kept) - min(kept) <= 1 and max(kept) <= 60 and (len(kept) == 1 or min(kept) >= 30)


@pytest.mark.parametrize("n", [61, 121, 179, 500])
def test_the_log_mel_decoder_decodes_each_code_once(tok: AudioTokenizer, n: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    c = torch.stack([codes(n, SMALL.vq.codebook_size, seed=n), codes(n, SMALL.vq.codebook_size, seed=n + 1)])
    whole = one_piece(tok, c, monkeypatch)
    monkeypatch.setattr(tokenizer_module, "VOCODER_CHUNK_FRAMES", 120)  # windows of at most 60 tokens
    seen: list[int] = []
    real = tok.decoder.forward
    monkeypatch.setattr(tok.decoder, "forward", lambda z: seen.append(z.shape[-1]) or real(z))
    windowed = tok.decode_features(c)
    ctx, windows = tok.decoder.context_tokens, math.ceil(n / 60)
    assert len(seen) == windows and sum(seen) == n + 2 * ctx * (windows - 1)  # 61 tokens: 30 + 31, not 60 + 60
    assert max(seen) <= 60 + 2 * ctx and min(seen) >= 30 + ctx  # bounded memory, and no short window
    assert windowed.shape == whole.shape == (2, SMALL.n_mels, 2 * n)
    torch.testing.assert_close(windowed, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("seconds", [59.98, 60, 60.02, 61, 89.9, 120, 120.02, 181])
def test_the_shipped_log_mel_decoder_in_windows_equals_one_piece_bit_for_bit(
    shipped: AudioTokenizer, seconds: float, monkeypatch: pytest.MonkeyPatch,
) -> None:
    n = round(seconds * shipped.tokens_per_second)
    c = codes(n, shipped.codebook_size, seed=n)
    step = VOCODER_CHUNK_FRAMES // shipped.cfg.frames_per_token
    seen: list[int] = []
    real = shipped.decoder.forward
    with monkeypatch.context() as m:
        m.setattr(shipped.decoder, "forward", lambda z: seen.append(z.shape[-1]) or real(z))
        windowed = shipped.decode_features(c)
    assert sum(seen) <= n + 2 * shipped.decoder.context_tokens * (math.ceil(n / step) - 1)
    assert torch.equal(windowed, one_piece(shipped, c, monkeypatch))


@pytest.fixture(scope="module")
def shipped_mel(shipped: AudioTokenizer) -> torch.Tensor:
    """The shipped model's log-mel ``[M, F]`` of 120.02 s of codes; the clips below are its beginnings."""
    return shipped.decode_features(codes(round(120.02 * shipped.tokens_per_second), shipped.codebook_size, seed=7))


@pytest.mark.parametrize("seconds", [59.98, 60.02, 61, 120.02])
def test_the_shipped_vocoder_in_windows_equals_one_piece_bit_for_bit(
    shipped: AudioTokenizer, shipped_mel: torch.Tensor, seconds: float,
) -> None:
    voc = shipped.vocoder
    mel = shipped_mel[:, : round(seconds * shipped.tokens_per_second) * shipped.cfg.frames_per_token]
    windowed = voc.decode(mel, chunk_frames=VOCODER_CHUNK_FRAMES)  # 61 s: two windows of 30.5 s, not 60 s + 1 s
    assert torch.equal(windowed, voc.decode(mel))


@pytest.mark.parametrize("frames", [61, 121, 500])
def test_the_vocoder_runs_windows_that_share_the_frames_out(frames: int, monkeypatch: pytest.MonkeyPatch) -> None:
    voc = Vocoder(VocoderConfig(dim=32, intermediate=64, blocks=2)).eval()
    mel = torch.randn(2, voc.cfg.n_mels, frames, generator=torch.Generator().manual_seed(frames)) - 5
    whole = voc.decode(mel)
    seen: list[int] = []
    real = voc.render
    monkeypatch.setattr(voc, "render", lambda x: seen.append(x.shape[-1]) or real(x))
    windowed = voc.decode(mel, chunk_frames=60)
    ctx, windows = voc.context_frames, math.ceil(frames / 60)
    assert len(seen) == windows and sum(seen) == frames + 2 * ctx * (windows - 1)
    assert max(seen) <= 60 + 2 * ctx and min(seen) >= 30 + ctx  # 61 frames: 30 + 31, not 60 + 1
    assert windowed.shape == whole.shape == (2, frames * voc.cfg.hop_length)
    torch.testing.assert_close(windowed, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("frames", [201, 301])
def test_griffin_lim_runs_windows_that_share_the_frames_out(frames: int, monkeypatch: pytest.MonkeyPatch) -> None:
    fb = mel_filters(SAMPLE_RATE, 1024, 80, 0.0, 8000.0)
    wave = 0.3 * torch.randn((frames - 1) * 160, generator=torch.Generator().manual_seed(frames))
    mel = log_mel(wave[None], fb, n_fft=1024, hop_length=160)[0]  # (M, frames)
    kw = {"n_fft": 1024, "hop_length": 160, "n_iter": 4}
    whole = griffin_lim(mel, fb, **kw)
    seen: list[int] = []
    real = griffin_lim_module._invert
    monkeypatch.setattr(griffin_lim_module, "_invert", lambda m, *a, **k: seen.append(m.shape[-1]) or real(m, *a, **k))
    windowed = griffin_lim(mel, fb, chunk_frames=100, **kw)
    ctx = reach_frames(n_fft=1024, hop_length=160, n_iter=4)
    assert len(seen) == math.ceil(frames / 100) and min(seen) >= 50 + ctx  # 201 frames: 67 + 67 + 67, not 100 + 100 + 1
    assert torch.equal(windowed, whole)


def chunk_sizes(total: int, seed: int) -> list[int]:
    """Random chunk sizes adding up to ``total``: runs of 1-sample chunks, short ones and long ones."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        kind = rng.integers(3)
        sizes += [1] * int(rng.integers(1, 40)) if kind == 0 else [int(rng.integers(2, 400 if kind == 1 else 9000))]
    sizes[-1] -= sum(sizes) - total
    return [s for s in sizes if s]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streamed_chunks_of_any_size_give_the_whole_encode(tok: AudioTokenizer, seed: int,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    wave = 0.3 * torch.randn(int(1.7 * SAMPLE_RATE) + 37, generator=torch.Generator().manual_seed(seed))
    whole = tok.encode(wave, SAMPLE_RATE)
    parts = list(wave.split(chunk_sizes(wave.numel(), seed)))
    assert min(p.numel() for p in parts) == 1
    joined: list[int] = []  # samples of every 1-D tensor torch.cat makes while streaming
    real_cat = torch.cat

    def cat(tensors: list[torch.Tensor], *args: object, **kwargs: object) -> torch.Tensor:
        out = real_cat(tensors, *args, **kwargs)  # type: ignore[arg-type]
        if out.dim() == 1 and out.is_floating_point():
            joined.append(out.numel())
        return out

    monkeypatch.setattr(torch, "cat", cat)
    streamed = tok.encode_stream(parts, SAMPLE_RATE)
    monkeypatch.undo()
    assert torch.equal(streamed, whole)
    assert torch.equal(torch.cat(list(tok.encode_iter(iter(parts)))), whole)
    window = (SMALL.frames_per_token * SMALL.block_tokens + 2 * tok.context_frames) * SMALL.hop_length + SMALL.n_fft
    assert len(joined) <= math.ceil(wave.numel() / (SMALL.block_tokens * SMALL.samples_per_token)) + 1
    assert sum(joined) <= 2 * (wave.numel() + window)  # not the whole buffer again for every chunk


def test_a_chunk_array_refilled_by_its_source_gives_the_whole_encode(tok: AudioTokenizer) -> None:
    wave = (0.3 * torch.randn(SAMPLE_RATE, generator=torch.Generator().manual_seed(5))).numpy()

    def refilled(size: int) -> Iterator[np.ndarray]:  # one array, overwritten for every chunk (a reader's `out=`)
        buf = np.empty(size, dtype=np.float32)
        for i in range(0, wave.size, size):
            part = wave[i : i + size]
            buf[: part.size] = part
            yield buf[: part.size]

    whole = tok.encode(wave, SAMPLE_RATE)
    assert torch.equal(tok.encode_stream(refilled(320), SAMPLE_RATE), whole)
    assert torch.equal(torch.cat(list(tok.encode_iter(refilled(77), SAMPLE_RATE))), whole)
