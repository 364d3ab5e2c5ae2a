"""Audio tokenizer: loading every format, resampling, mel parity with librosa, exact
chunk/batch invariance, bad input, silence, and the shipped checkpoint."""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

import mmtok
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.features import mel_filters, mel_power
from mmtok.audio.front_end import HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE
from mmtok.audio.io import load_audio
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.checkpoint_names import models_dir
from mmtok.core.errors import AudioError
from mmtok.vq.quantizer import VQConfig
from tests.audio_helpers import small_config

SMALL = small_config(vq_kw={"dead_code_threshold": 0.2})


def tone(seconds: float, rate: int, freqs: tuple[float, ...] = (440.0,), seed: int = 0) -> np.ndarray:
    """A few sines plus a little noise, peak ~0.6."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in freqs) / len(freqs)
    return (0.5 * x + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _speechlike(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 60 * np.sin(2 * np.pi * 0.7 * t) + 30 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(h * phase) / h for h in range(1, 7))
    env = (np.sin(2 * np.pi * 2.3 * t) > -0.3).astype(float)
    noise = rng.standard_normal(t.size) * (np.sin(2 * np.pi * 1.3 * t) > 0.6)
    return (0.25 * voiced * env + 0.1 * noise).astype(np.float32)


def speechlike(seconds: float, rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """Gliding harmonic tone with an on/off envelope and noise bursts: varied, like speech."""
    return _speechlike(seconds, rate, seed).copy()


pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: one thread is steadier


@pytest.fixture(scope="module")
def small_tok() -> AudioTokenizer:
    torch.manual_seed(0)
    tok = AudioTokenizer(SMALL)
    with torch.inference_mode():  # normalize like training would, so the encoder's outputs vary
        feats = tok.context_features(torch.from_numpy(speechlike(5.0, seed=1)))
    tok.feature_mean.copy_(feats.mean(1, keepdim=True))
    tok.feature_std.copy_(feats.std(1, keepdim=True).clamp_min(0.1))
    with torch.inference_mode():
        z = tok.encoder(tok._normalize(feats[None]))[0].t()  # (n, D)
    tok.vq.train()
    with torch.no_grad():
        tok.vq(z.clone())  # k-means initialisation on real encodings: many codes in play
    return tok.eval()


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize(
    ("ext", "subtype"),
    [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "FLOAT"), ("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")],
)
def test_every_format_loads_as_mono_at_16k(tmp_path: Path, ext: str, subtype: str) -> None:
    rate = 22050
    left, right = tone(1.0, rate, (440.0,)), tone(1.0, rate, (1000.0,), seed=1)
    path = tmp_path / f"clip.{ext}"
    sf.write(path, np.stack([left, right], 1), rate, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == torch.float32 and audio.dim() == 1
    assert abs(audio.numel() - SAMPLE_RATE) <= 1200  # lossy codecs pad a little
    expect = load_audio((left + right) / 2, rate)  # stereo is averaged
    n = min(audio.numel(), expect.numel())
    if ext in ("wav", "flac"):  # lossless: the same samples up to PCM rounding
        tol = 2e-3 if subtype != "FLOAT" else 1e-6
        assert (audio[:n] - expect[:n]).abs().max() < tol
    else:  # lossy: same spectrum, peaks at 440 and 1000 Hz
        spec = np.abs(np.fft.rfft(audio.numpy()))
        freqs = np.fft.rfftfreq(audio.numel(), 1 / SAMPLE_RATE)
        top = sorted(freqs[np.argsort(spec)[-2:]])
        assert abs(top[0] - 440) < 5 and abs(top[1] - 1000) < 5


def test_integer_pcm_is_scaled_and_channels_averaged() -> None:
    x = np.array([[16384, -32768, 0, 32767]] * 2, dtype=np.int16)  # (C, S)
    out = load_audio(x, SAMPLE_RATE)
    assert torch.allclose(out, torch.tensor([0.5, -1.0, 0.0, 32767 / 32768]))
    assert torch.equal(load_audio(x.T.copy(), SAMPLE_RATE), out)  # (S, C) as well
    u8 = load_audio(np.array([128, 255, 0], dtype=np.uint8), SAMPLE_RATE)
    assert torch.allclose(u8, torch.tensor([0.0, 127 / 128, -1.0]))
    i32 = load_audio(torch.tensor([2**30, -(2**31)], dtype=torch.int32), SAMPLE_RATE)
    assert torch.allclose(i32, torch.tensor([0.5, -1.0]))


def test_resampling_is_band_limited_and_keeps_pitch() -> None:
    rate = 44100
    x = tone(2.0, rate, (1000.0,))
    y = load_audio(x, rate)
    assert y.numel() == 2 * SAMPLE_RATE
    spec = np.abs(np.fft.rfft(y.numpy()))
    freqs = np.fft.rfftfreq(y.numel(), 1 / SAMPLE_RATE)
    assert abs(freqs[spec.argmax()] - 1000) < 1
    # a 12 kHz tone is above the new Nyquist: a band-limited resampler removes it (no alias at 4 kHz)
    t = np.arange(2 * rate) / rate
    high = (0.5 * np.sin(2 * np.pi * 12000.0 * t)).astype(np.float32)
    alias = load_audio(high, rate)[400:-400]  # away from the abrupt start and end
    assert float(alias.pow(2).mean().sqrt()) < 0.01 * 0.5
    assert torch.equal(load_audio(x, rate, target_rate=rate), torch.from_numpy(x))  # same rate: untouched


def test_bad_inputs_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.wav"):
        load_audio(tmp_path / "nope.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match=r"junk\.wav"):
        load_audio(junk)
    for ext, subtype in (("wav", "PCM_16"), ("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")):
        whole = tmp_path / f"whole.{ext}"
        sf.write(whole, tone(2.0, 16000), 16000, subtype=subtype)
        cut = tmp_path / f"cut.{ext}"
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        with pytest.raises(AudioError, match=rf"cut\.{ext}"):
            load_audio(cut)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match=r"empty\.wav is empty"):
        load_audio(empty)
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(np.zeros(100, dtype=np.float32))
    bad = tone(0.5, 16000)
    bad[100] = np.nan
    bad[200] = np.inf
    with pytest.raises(AudioError, match="2 NaN/inf"):
        load_audio(bad, 16000)
    nanfile = tmp_path / "nan.wav"
    sf.write(nanfile, bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav"):
        load_audio(nanfile)
    with pytest.raises(AudioError, match="empty"):
        load_audio(np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(TypeError, match="path, numpy array or tensor"):
        load_audio([0.0, 0.1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="channel axis"):
        load_audio(np.zeros((100, 200), dtype=np.float32), 16000)


# --------------------------------------------------------------------------- features


def test_mel_matches_librosa() -> None:
    y = speechlike(3.0) + 0.05 * tone(3.0, SAMPLE_RATE, (3000.0,))
    ref = librosa.feature.melspectrogram(
        y=y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS, fmin=0.0, fmax=8000.0,
        pad_mode="constant", power=2.0,
    )
    assert np.abs(mel_filters().numpy() - librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)).max() < 1e-6
    ours = mel_power(torch.from_numpy(y), mel_filters()).numpy()
    assert ours.shape == ref.shape == (N_MELS, 1 + y.size // HOP_LENGTH)
    assert np.abs(ours - ref).max() / ref.max() <= 1e-4  # relative to the spectrogram's peak
    # batched: leading axes are kept, each row is its own spectrogram
    batch = mel_power(torch.from_numpy(np.stack([y, y[::-1].copy()])), mel_filters())
    assert torch.allclose(batch[0], torch.from_numpy(ours), rtol=1e-5, atol=1e-4 * ref.max())


def test_features_are_log_mel(small_tok: AudioTokenizer) -> None:
    y = speechlike(1.0)
    f = small_tok.features(y, SAMPLE_RATE)
    assert f.shape == (N_MELS, 1 + y.size // HOP_LENGTH)
    ref = mel_power(torch.from_numpy(y), mel_filters()).clamp_min(SMALL.log_floor).log()
    assert torch.allclose(f, ref)
    silent = small_tok.features(np.zeros(8000, dtype=np.float32), SAMPLE_RATE)
    assert torch.allclose(silent, torch.full_like(silent, math.log(SMALL.log_floor)))


def test_token_rate_and_attributes(small_tok: AudioTokenizer) -> None:
    tok = AudioTokenizer(AudioTokenizerConfig(decoder_channels=32))
    assert tok.tokens_per_second == 50 and tok.sample_rate == 16000 and tok.codebook_size == 1024
    codes = small_tok.encode(speechlike(2.01), SAMPLE_RATE)
    assert codes.dtype == torch.int64 and codes.shape == (math.ceil(2.01 * 50),)
    assert small_tok.decode_features(codes).shape == (N_MELS, 2 * codes.numel())
    with pytest.raises(ValueError, match="multiple of"):
        AudioTokenizerConfig(hop_length=150)


# --------------------------------------------------------------------------- exact invariance


def test_chunked_and_streamed_encoding_equal_whole_on_60s(small_tok: AudioTokenizer) -> None:
    y = speechlike(60.0, seed=3)
    whole = small_tok.encode(y, SAMPLE_RATE)
    assert whole.shape == (3000,) and whole.unique().numel() > 10  # not a constant answer
    assert torch.equal(small_tok.encode(y, SAMPLE_RATE, chunk_seconds=1.37), whole)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(y.size, 40, replace=False))
    chunks = [y[a:b] for a, b in zip(np.r_[0, cuts], np.r_[cuts, y.size], strict=True)]
    assert torch.equal(small_tok.encode_stream(iter(chunks)), whole)
    # a 44.1 kHz recording: resampled once, then chunked, gives the same codes too
    y44 = speechlike(60.0, 44100, seed=3)
    assert torch.equal(small_tok.encode(y44, 44100, chunk_seconds=7.0), small_tok.encode(y44, 44100))
    # the codes do depend on the signal: changing the last second changes only nearby tokens
    z = y.copy()
    z[-SAMPLE_RATE:] = speechlike(1.0, seed=9)
    other = small_tok.encode(z, SAMPLE_RATE)
    changed = (other != whole).nonzero().flatten()
    reach = math.ceil((small_tok.context_frames * HOP_LENGTH + N_FFT // 2) / 320)  # receptive field, tokens
    assert changed.numel() > 0 and int(changed.min()) >= 3000 - 50 - reach


def test_batch_equals_single(small_tok: AudioTokenizer) -> None:
    clips = [speechlike(60.0, seed=4), speechlike(3.3, seed=5), tone(0.01, SAMPLE_RATE)]
    codes, lengths = small_tok.encode(clips, SAMPLE_RATE)
    assert codes.shape == (3, 3000) and lengths.tolist() == [3000, 165, 1]
    for i, clip in enumerate(clips):
        single = small_tok.encode(clip, SAMPLE_RATE)
        assert torch.equal(codes[i, : lengths[i]], single)
        assert (codes[i, lengths[i] :] == AudioTokenizer.PAD_CODE).all()


def test_silence_and_bad_codes(small_tok: AudioTokenizer) -> None:
    codes = small_tok.encode(np.zeros(16000, dtype=np.float32), SAMPLE_RATE)
    assert codes.shape == (50,) and (codes >= 0).all()
    mel = small_tok.decode_features(codes)
    wave = small_tok.decode(codes)
    assert torch.isfinite(mel).all() and torch.isfinite(wave).all() and wave.shape == (16000,)
    with pytest.raises(ValueError, match=r"0\.\.63"):
        small_tok.decode(torch.tensor([0, 64]))
    with pytest.raises(TypeError, match="integers"):
        small_tok.decode_features(torch.tensor([0.5]))
    with pytest.raises(AudioError, match="no samples"):
        small_tok.encode_stream([np.zeros(0, dtype=np.float32)])
    with pytest.raises(ValueError, match="resample"):
        small_tok.encode_stream([np.zeros(10, dtype=np.float32)], sample_rate=8000)


def test_slice_encoder_is_kmeans_then_learned_correction() -> None:
    """The default encoder: codes are nearest codebook slices; the decoder starts at the code's slice."""
    cfg = AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=32), decoder_channels=32, decoder_blocks=2,
                               block_tokens=100)
    tok = AudioTokenizer(cfg).eval()
    assert tok.context_frames == 0
    y = speechlike(3.0, seed=2)
    rows = tok.context_features(torch.from_numpy(y))  # (M, 2n)
    slices = rows.reshape(N_MELS, -1, 2).permute(1, 2, 0).reshape(-1, 2 * N_MELS)  # (n, f*M)
    tok.vq.embed.copy_(slices[torch.randperm(slices.shape[0])[:32]])
    codes = tok.encode(y, SAMPLE_RATE)
    assert torch.equal(codes, torch.cdist(slices, tok.vq.embed).argmin(1))
    # a fresh decoder predicts no correction: decoded features are the code slices themselves
    expect = tok.vq.embed[codes].reshape(-1, 2, N_MELS).permute(2, 0, 1).reshape(N_MELS, -1)
    assert torch.allclose(tok.decode_features(codes), expect, atol=1e-4)
    # chunked == whole holds for this encoder too
    assert torch.equal(tok.encode(y, SAMPLE_RATE, chunk_seconds=0.77), codes)
    with pytest.raises(ValueError, match="code_dim"):
        AudioTokenizerConfig(code_dim=64)


def test_training_step_reduces_loss() -> None:
    torch.manual_seed(0)
    tok = AudioTokenizer(SMALL)
    audio = torch.from_numpy(speechlike(4.0, seed=6))
    with torch.inference_mode():
        feats = tok.context_features(audio)
    tok.feature_mean.copy_(feats.mean(1, keepdim=True))
    tok.feature_std.copy_(feats.std(1, keepdim=True).clamp_min(0.1))
    opt = torch.optim.AdamW(tok.parameters(), lr=3e-3)
    batch = feats[None, :, :240].clone()
    losses = []
    for _ in range(30):
        res = tok(batch)
        opt.zero_grad()
        res.loss.backward()
        opt.step()
        losses.append(res.recon_loss.item())
    assert res.reconstruction.shape == res.target.shape == (1, N_MELS, 240 - 2 * tok.context_frames)
    assert losses[-1] < 0.6 * losses[0]


# --------------------------------------------------------------------------- shipped checkpoint


@pytest.mark.skipif(not (models_dir() / "audio" / "config.json").is_file(), reason="models/audio not built yet")
def test_shipped_model_round_trips(tmp_path: Path) -> None:
    tok = mmtok.load("audio")
    assert isinstance(tok, AudioTokenizer) and tok.tokens_per_second <= 50
    path = tmp_path / "probe.flac"
    sf.write(path, speechlike(4.0, 22050, seed=7), 22050)
    codes = tok.encode(path)
    assert codes.shape == (200,)
    target = tok.features(path)[:, : 2 * codes.numel()]
    recon = tok.decode_features(codes)
    span = float(target.max() - target.min())
    err = float((recon - target).abs().mean()) / span
    assert err < 0.08, f"relative L1 {err:.3f}"
    wave = tok.decode(codes)
    assert wave.shape == (4 * SAMPLE_RATE,) and torch.isfinite(wave).all()
    # the waveform carries the same spectrum: its own log-mel is close to the target
    again = tok.features(wave, SAMPLE_RATE)[:, : 2 * codes.numel()]
    assert float((again - target).abs().mean()) / span < 0.10
    # the shipped encoder is chunk- and batch-invariant on a minute of audio as well
    long = speechlike(60.0, seed=8)
    whole = tok.encode(long, SAMPLE_RATE)
    assert torch.equal(tok.encode(long, SAMPLE_RATE, chunk_seconds=2.9), whole)
    batch, lengths = tok.encode([long[:12345], long], SAMPLE_RATE)
    assert torch.equal(batch[1], whole)
    assert torch.equal(batch[0, : lengths[0]], tok.encode(long[:12345], SAMPLE_RATE))


# the config of the shipped audio tokenizer as it was saved before the codebook's fields moved into `vq`
OLD_FLAT_CONFIG = {
    "sample_rate": 16000, "n_fft": 1024, "hop_length": 160, "n_mels": 80, "f_min": 0.0, "f_max": 8000.0,
    "log_floor": 1e-05, "frames_per_token": 2, "codebook_size": 1024, "encoder_kind": "slice", "code_dim": 160,
    "encoder_channels": 128, "encoder_token_blocks": 3, "decoder_channels": 256, "decoder_blocks": 4,
    "block_tokens": 250, "vq_decay": 0.99, "commitment_weight": 0.25, "dead_code_threshold": 0.2,
    "vq_cosine": False, "vq_lookup_dim": None, "griffin_lim_iters": 32,
}


def test_old_flat_config_reads_into_the_nested_vq() -> None:
    from mmtok.core.checkpoint import config_from_dict

    new = AudioTokenizerConfig.upgrade_dict(OLD_FLAT_CONFIG)
    assert not set(new) & {"codebook_size", "vq_decay", "commitment_weight", "dead_code_threshold", "vq_cosine",
                           "vq_lookup_dim"}
    cfg = config_from_dict(AudioTokenizerConfig, new)
    assert cfg.vq == VQConfig(dim=160, codebook_size=1024, decay=0.99, commitment_weight=0.25,
                              dead_code_threshold=0.2, cosine=False, codebook_dim=None)
    assert cfg.griffin_lim_iters == 32 and cfg.code_dim == 160 and cfg.block_tokens == 250
    # a conv tokenizer's codebook settings land on their VQConfig names
    conv = AudioTokenizerConfig.upgrade_dict({"encoder_kind": "conv", "code_dim": 16, "codebook_size": 64,
                                              "vq_cosine": True, "vq_lookup_dim": 8, "vq_decay": 0.9})
    c = config_from_dict(AudioTokenizerConfig, conv).vq
    assert (c.dim, c.codebook_size, c.cosine, c.codebook_dim, c.decay) == (16, 64, True, 8, 0.9)
    assert c.dead_code_threshold == 0.2  # the old default of the audio tokenizer, not VQConfig's
    # the current layout passes unchanged; both at once is refused
    assert AudioTokenizerConfig.upgrade_dict(new) == new
    with pytest.raises(ValueError, match="both"):
        AudioTokenizerConfig.upgrade_dict({**new, "codebook_size": 1024})


@pytest.mark.skipif(not (models_dir() / "audio" / "config.json").is_file(), reason="models/audio not built yet")
def test_old_flat_config_gives_the_shipped_tokenizer() -> None:
    """The shipped weights (without the learned vocoder, which the old layout had no field for)
    under the old config layout build the same tokenizer and the same codes."""

    from safetensors.torch import load_file

    from mmtok.core.checkpoint import config_from_dict
    from mmtok.core.module_io import load_state_dict_checked

    shipped = mmtok.load("audio")
    c = shipped.cfg
    top = {k: v for k, v in dataclasses.asdict(c).items() if k not in ("vq", "vocoder")}
    flat = {**OLD_FLAT_CONFIG, **top, "codebook_size": c.vq.codebook_size, "vq_decay": c.vq.decay,
            "commitment_weight": c.vq.commitment_weight, "dead_code_threshold": c.vq.dead_code_threshold,
            "vq_cosine": c.vq.cosine, "vq_lookup_dim": c.vq.codebook_dim}
    cfg = config_from_dict(AudioTokenizerConfig, AudioTokenizerConfig.upgrade_dict(flat))
    # the fields the flat layout never had only steer training (k-means init, restarts by rate) or the search's blocks
    later = {f: getattr(c.vq, f) for f in ("eps", "kmeans_init", "kmeans_iters", "kmeans_min_vectors",
                                           "dead_code_rate", "chunk_size", "search_budget_mb")}
    cfg = dataclasses.replace(cfg, vq=dataclasses.replace(cfg.vq, **later))
    assert cfg == dataclasses.replace(shipped.cfg, vocoder=None)
    old = AudioTokenizer(cfg)
    weights = load_file(str(models_dir() / "audio" / "model.safetensors"))
    load_state_dict_checked(old, {k: v for k, v in weights.items() if not k.startswith("vocoder.")}, where="models/audio")
    old.eval()
    wave = torch.from_numpy(speechlike(3.0, seed=11))
    assert torch.equal(old.encode(wave, SAMPLE_RATE), shipped.encode(wave, SAMPLE_RATE))
    assert old.fingerprint == shipped.fingerprint  # the vocoder is not part of what names the codes


def test_config_checks_the_codebook_against_the_encoder() -> None:
    with pytest.raises(ValueError, match=r"vq\.dim \(160\) must equal code_dim \(16\)"):
        AudioTokenizerConfig(encoder_kind="conv", code_dim=16)
    with pytest.raises(ValueError, match=r"slice.*cosine"):
        AudioTokenizerConfig(vq=VQConfig(dim=160, cosine=True))


# --------------------------------------------------------------------------- decoding: Griffin-Lim or a learned vocoder


def test_decode_picks_the_vocoder(small_tok: AudioTokenizer) -> None:
    from mmtok.audio.vocoder import Vocoder
    from mmtok.audio.vocoder_config import VocoderConfig

    codes = small_tok.encode(torch.from_numpy(speechlike(0.5, seed=3)), SAMPLE_RATE)
    assert small_tok.vocoder is None and small_tok.cfg.vocoder is None
    gl = small_tok.decode(codes, vocoder="griffin-lim")
    assert torch.equal(small_tok.decode(codes), gl) and gl.shape == (codes.numel() * 320,)
    with pytest.raises(ValueError, match=r"no learned vocoder.*--attach.*griffin-lim"):
        small_tok.decode(codes, vocoder="learned")
    with pytest.raises(ValueError, match=r"one of \('auto', 'learned', 'griffin-lim'\).*'hifigan'"):
        small_tok.decode(codes, vocoder="hifigan")
    with pytest.raises(TypeError, match="Vocoder module, got int"):
        small_tok.decode(codes, vocoder=3)  # type: ignore[arg-type]
    voc = Vocoder(VocoderConfig(dim=16, intermediate=32, blocks=1)).eval()
    wave = small_tok.decode(codes, vocoder=voc)  # a module: run on the decoded features
    assert wave.shape == gl.shape and bool(torch.isfinite(wave).all()) and not torch.equal(wave, gl)
    with pytest.raises(ValueError, match=r"another log-mel.*n_mels: 80 vs 64"):
        small_tok.decode(codes, vocoder=Vocoder(VocoderConfig(n_mels=64, dim=8, intermediate=8, blocks=1)))


def test_tokenizer_with_a_vocoder_decodes_with_it() -> None:
    from mmtok.audio.vocoder_config import VocoderConfig

    torch.manual_seed(0)
    cfg = AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=16), decoder_channels=16, decoder_blocks=1,
                               vocoder=VocoderConfig(dim=16, intermediate=32, blocks=1))
    tok = AudioTokenizer(cfg).eval()
    assert tok.vocoder is not None and any(k.startswith("vocoder.") for k in tok.state_dict())
    codes = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5])
    wave = tok.decode(codes)
    assert wave.shape == (9 * 320,) and bool(torch.isfinite(wave).all())
    assert torch.equal(wave, tok.decode(codes, vocoder="learned"))
    assert torch.equal(wave, tok.vocoder.decode(tok.decode_features(codes)))
    assert not torch.equal(wave, tok.decode(codes, vocoder="griffin-lim"))
    with pytest.raises(ValueError, match=r"another log-mel.*hop_length: 160 vs 320"):
        AudioTokenizerConfig(vocoder=VocoderConfig(hop_length=320, n_fft=1280))


def test_config_without_a_vocoder_field_loads() -> None:
    from mmtok.audio.vocoder_config import VocoderConfig
    from mmtok.core.checkpoint import config_from_dict, config_to_dict

    old = config_to_dict(AudioTokenizerConfig())
    del old["vocoder"]
    assert config_from_dict(AudioTokenizerConfig, old).vocoder is None
    new = config_to_dict(AudioTokenizerConfig(vocoder=VocoderConfig(dim=32)))
    assert config_from_dict(AudioTokenizerConfig, new).vocoder == VocoderConfig(dim=32)

