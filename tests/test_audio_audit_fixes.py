"""Audio decode with bounded memory and scores of a round trip: Griffin-Lim and the log-mel decoder
run a long clip in windows with real context (the same result as one piece, a short clip exactly as
before), and STOI/PESQ take a decoded waveform of whole tokens against the original it came from.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torchaudio.functional as AF

import mmtok
import mmtok.audio.tokenizer as tokenizer_module
from mmtok.audio.config import VOCODER_CHUNK_FRAMES
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.griffin_lim import griffin_lim, reach_frames
from mmtok.audio.io import fit_length, load_audio
from mmtok.audio.scores import speech_scores
from mmtok.audio.tokenizer import AudioTokenizer
from tests.audio_helpers import small_config

SMALL = small_config(griffin_lim_iters=4)
SPEECH = Path(__file__).parents[1] / "examples" / "data" / "speech_en.wav"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok() -> AudioTokenizer:
    torch.manual_seed(0)
    return AudioTokenizer(SMALL).eval()


def codes(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, SMALL.vq.codebook_size, (n,), generator=torch.Generator().manual_seed(seed))


def frames_seen(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The frames of every spectrogram handed to torchaudio's Griffin-Lim from now on."""
    seen: list[int] = []
    real = AF.griffinlim

    def spy(specgram: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        seen.append(specgram.shape[-1])
        return real(specgram, *args, **kwargs)

    monkeypatch.setattr(AF, "griffinlim", spy)
    return seen


def test_griffin_lim_decodes_a_long_clip_in_windows(tok: AudioTokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    c = codes(300)  # 600 frames
    mel = tok.decode_features(c)
    whole = griffin_lim(mel, tok.filters, n_fft=SMALL.n_fft, hop_length=SMALL.hop_length, n_iter=4)
    monkeypatch.setattr(tokenizer_module, "VOCODER_CHUNK_FRAMES", 100)
    seen = frames_seen(monkeypatch)
    wave = tok.decode(c, vocoder="griffin-lim")
    reach = reach_frames(n_fft=SMALL.n_fft, hop_length=SMALL.hop_length, n_iter=4)
    assert len(seen) == 6 and max(seen) <= 100 + 2 * reach < 600  # memory follows the window, not the clip
    assert wave.shape == (300 * SMALL.samples_per_token,)
    torch.testing.assert_close(wave[: whole.numel()], whole, rtol=0, atol=1e-6)  # the same samples as whole


def test_griffin_lim_windows_with_the_default_iterations_equal_the_whole_clip(tok: AudioTokenizer) -> None:
    mel = tok.decode_features(codes(350, seed=1))  # 700 frames: windows of 100 + 2 * 231
    kw: dict[str, int] = dict(n_fft=SMALL.n_fft, hop_length=SMALL.hop_length, n_iter=32)
    whole = griffin_lim(mel, tok.filters, **kw)
    for chunk in (100, 699):
        windowed = griffin_lim(mel, tok.filters, chunk_frames=chunk, **kw)
        torch.testing.assert_close(windowed, whole, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="chunk_frames must be positive, got 0"):
        griffin_lim(mel, tok.filters, chunk_frames=0, **kw)


def test_a_clip_in_one_window_decodes_exactly_as_one_piece(tok: AudioTokenizer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    c = codes(VOCODER_CHUNK_FRAMES // SMALL.frames_per_token)  # exactly one window: 60 s
    mel = tok.decode_features(c)
    whole = griffin_lim(mel, tok.filters, n_fft=SMALL.n_fft, hop_length=SMALL.hop_length, n_iter=4)
    seen = frames_seen(monkeypatch)
    wave = tok.decode(c, vocoder="griffin-lim")
    assert seen == [VOCODER_CHUNK_FRAMES]
    assert torch.equal(wave[: whole.numel()], whole) and not wave[whole.numel() :].any()
    doc = " ".join((griffin_lim.__doc__ or "").split()) + " ".join((tok.mel_to_wave.__doc__ or "").split())
    assert "windowed" in doc and "memory stays bounded" in doc


def test_the_log_mel_decoder_runs_a_long_clip_in_windows(tok: AudioTokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    c = torch.stack([codes(500, seed=2), codes(500, seed=3)])  # (B, n)
    whole = tok.decode_features(c)
    monkeypatch.setattr(tokenizer_module, "VOCODER_CHUNK_FRAMES", 120)  # windows of 60 tokens
    seen: list[int] = []
    real = tok.decoder.forward
    monkeypatch.setattr(tok.decoder, "forward", lambda z: seen.append(z.shape[-1]) or real(z))
    windowed = tok.decode_features(c)
    ctx = tok.decoder.context_tokens
    assert len(seen) == 9 and max(seen) <= 60 + 2 * ctx and min(seen) >= 500 // 9 + ctx  # even windows
    assert sum(seen) == 500 + 2 * ctx * 8  # each code decoded once
    assert windowed.shape == whole.shape == (2, SMALL.n_mels, 1000)
    torch.testing.assert_close(windowed, whole, rtol=0, atol=1e-5)


def test_the_shipped_log_mel_decoder_gives_the_same_log_mel_in_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = mmtok.load("audio")
    step = VOCODER_CHUNK_FRAMES // shipped.cfg.frames_per_token
    c = torch.randint(0, shipped.codebook_size, (2 * step + 17,), generator=torch.Generator().manual_seed(4))
    windowed = shipped.decode_features(c)
    monkeypatch.setattr(tokenizer_module, "VOCODER_CHUNK_FRAMES", 10**9)  # one piece
    torch.testing.assert_close(windowed, shipped.decode_features(c), rtol=0, atol=1e-5)  # float rounding


def test_fit_length_cuts_or_pads_the_end() -> None:
    x = torch.arange(1.0, 6.0)
    assert fit_length(x, 3).tolist() == [1.0, 2.0, 3.0]
    assert fit_length(x, 7).tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0]
    assert torch.equal(fit_length(x, 5), x)
    assert fit_length(torch.ones(2, 4), 6).shape == (2, 6)


def test_speech_scores_of_a_round_trip() -> None:
    """``decode`` gives whole tokens, longer than the clip encoded: the scores line them up."""
    pytest.importorskip("pystoi")
    shipped = mmtok.load("audio")
    w = load_audio(SPEECH, target_rate=SAMPLE_RATE)
    deg = shipped.decode(shipped.encode(w, sample_rate=SAMPLE_RATE))
    assert deg.numel() > w.numel()
    scores = speech_scores(w, deg)
    assert "stoi" in scores and 0.5 < scores["stoi"] <= 1.0
    assert scores == speech_scores(w, fit_length(deg, w.numel()))
    short = speech_scores(w, deg[: w.numel() - 500])  # a shorter one is padded with silence
    assert math.isfinite(short["stoi"])


def test_a_cast_audio_model_encodes_and_decodes_to_float32() -> None:
    """``tok.to(torch.float64)`` or ``bfloat16`` encodes (float64: the float32 codes) and decodes, by both vocoders,
    to a float32 waveform; a float32 model is untouched."""
    import mmtok

    wave = mmtok.load_audio(SPEECH, target_rate=16000)[:16000]
    ref = mmtok.load("audio")
    codes = ref.encode(wave, sample_rate=16000)
    for dtype in (torch.float64, torch.bfloat16):
        tok = mmtok.load("audio").to(dtype)
        got = tok.encode(wave, sample_rate=16000)
        assert got.shape == codes.shape and (dtype != torch.float64 or torch.equal(got, codes))
        for vocoder in ("auto", "griffin-lim"):
            out = tok.decode(codes, vocoder=vocoder)
            assert out.dtype == torch.float32 and out.shape == (16000,) and bool(torch.isfinite(out).all())
        streamed = torch.cat(list(tok.decode_stream([codes[:20], codes[20:]])))
        assert streamed.dtype == torch.float32 and streamed.shape == (16000,)
