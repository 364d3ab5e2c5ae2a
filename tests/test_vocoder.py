"""The learned vocoder: shapes, chunked decoding, learning, its resumable trainer (stages 1 and 2) and
attaching it to an audio tokenizer."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

import mmtok
from mmtok.audio import vocoder_run, vocoder_settings, vocoder_train
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder import Vocoder, mel_l1, multi_resolution_stft_loss
from mmtok.audio.vocoder_config import VocoderConfig, receptive_field
from mmtok.core.checkpoint_names import checkpoint_source
from mmtok.core.module_io import load_module, save_module
from mmtok.vq.quantizer import VQConfig

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = VocoderConfig(dim=32, intermediate=64, blocks=2)
TINY_ARGS = ["--dim", "32", "--intermediate", "64", "--blocks", "2"]


def voiced(seconds: float, rate: int = 16000, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A vowel-like test signal: harmonics of a gliding f0 under a slow envelope, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 1.5 * t))) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 12) if k * f0 * 1.2 < rate / 2)
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 2.0 * t) ** 2
    return (0.2 * env * x + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def test_shapes_and_exact_length() -> None:
    torch.manual_seed(0)
    voc = Vocoder(TINY).eval()
    for frames in (1, 7, 100):
        mel = torch.randn(3, 80, frames) - 6
        assert voc(mel).shape == (3, frames * 160)
    assert voc.decode(torch.randn(80, 33)).shape == (33 * 160,)
    with pytest.raises(ValueError, match="log-mel"):
        voc(torch.randn(2, 40, 10))


def test_features_are_the_tokenizers() -> None:
    wave = torch.from_numpy(voiced(0.5))
    tok = AudioTokenizer(AudioTokenizerConfig()).eval()
    assert torch.allclose(Vocoder(TINY).log_mel(wave), tok.log_mel(wave), atol=1e-5)


def test_chunked_equals_whole() -> None:
    torch.manual_seed(0)
    voc = Vocoder(VocoderConfig(dim=32, intermediate=64, blocks=3)).eval()
    for p in voc.parameters():  # make every layer matter (layer scale starts small)
        p.data.add_(0.05 * torch.randn_like(p))
    mel = torch.randn(2, 80, 301) - 6
    whole = voc.decode(mel)
    for chunk in (7, 40, 100, 300):
        assert torch.allclose(voc.decode(mel, chunk_frames=chunk), whole, atol=1e-5, rtol=1e-4), chunk
    assert receptive_field(voc.cfg) == voc.context_frames == 4 * 3 + 2


def test_losses_are_zero_on_identity_and_positive_otherwise() -> None:
    x = torch.from_numpy(voiced(0.5))[None]
    sc, mag = multi_resolution_stft_loss(x, x)
    assert float(sc) == 0 and float(mag) == 0
    sc, mag = multi_resolution_stft_loss(0.5 * x, x)
    assert 0.45 < float(sc) < 0.55 and abs(float(mag) - math.log(2)) < 0.1
    voc = Vocoder(TINY)
    assert float(mel_l1(x, voc.log_mel(x), voc.filters)) == 0.0


def test_tiny_vocoder_overfits_one_clip() -> None:
    torch.manual_seed(0)
    voc = Vocoder(VocoderConfig(dim=64, intermediate=128, blocks=2))
    x = torch.from_numpy(voiced(0.4))[None]  # (1, 6400)
    mel = voc.log_mel(x)
    opt = torch.optim.AdamW(voc.parameters(), lr=5e-3)

    def loss() -> torch.Tensor:
        y = voc(mel[..., :40])
        sc, mag = multi_resolution_stft_loss(y, x)
        return sc + mag + mel_l1(y, mel, voc.filters)

    first = float(loss().detach())
    for _ in range(120):  # a plateau near half the first loss lasts to about step 60, so 50 steps sat on the edge
        opt.zero_grad()
        loss_value = loss()
        loss_value.backward()
        opt.step()
    last = float(loss().detach())
    assert last < first / 2, (first, last)


def tiny_corpus(root: Path) -> Path:
    """Six short files at odd rates and channel counts, in train and validation splits."""
    rows = []
    specs = [("train", 22050, 1, "speech", "a"), ("train", 44100, 2, "speech", "b"), ("train", 16000, 1, "music", "c"),
             ("train", 11127, 1, "sounds", "c"), ("validation", 16000, 1, "speech", "d"),
             ("validation", 48000, 1, "speech", "e")]
    for i, (split, rate, ch, kind, group) in enumerate(specs):
        x = voiced(1.2 + 0.3 * i, rate, f0=110 + 20 * i, seed=i)
        data = np.stack([x] * ch, 1) if ch > 1 else x
        path = f"audio/{i}.wav"
        (root / "audio").mkdir(parents=True, exist_ok=True)
        sf.write(root / path, data, rate)
        rows.append({"path": path, "source": f"src-{group}", "group": group, "split": split, "kind": kind,
                     "seconds": x.size / rate, "sample_rate": rate, "language": "en"})
    (root / "audio" / "broken.wav").write_bytes(b"RIFF not really")
    rows.append({"path": "audio/broken.wav", "source": "src-a", "group": "a", "split": "train", "kind": "speech",
                 "seconds": 1.0, "sample_rate": 16000, "language": "en"})
    rows.append({"path": "audio/held-out.wav", "source": "src-a", "group": "a", "split": "test", "kind": "speech",
                 "seconds": 1.0, "sample_rate": 16000, "language": "en"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_trainer_checkpoints_resumes_and_decodes(tmp_path: Path) -> None:
    corpus, cache, run = tiny_corpus(tmp_path / "corpus"), tmp_path / "cache", tmp_path / "run"
    common = ["--corpus", str(corpus), "--cache", str(cache), "--out", str(run), "--batch-size", "2",
              "--segment-seconds", "0.25", "--save-every", "3", "--log-every", "1", "--val-segments", "2",
              "--val-clips", "1", "--val-clip-seconds", "1", "--warmup", "2", "--no-progress", *TINY_ARGS]
    assert vocoder_train.main([*common, "--steps", "3"]) == 0
    index = json.loads((cache / "index.json").read_text())
    assert index["splits"]["train"]["files"] == 4 and index["splits"]["validation"]["files"] == 2
    assert sum(index["splits"]["train"]["skipped"].values()) == 1  # the broken file, counted
    state = json.loads((run / "train-state" / "config.json").read_text())
    assert state["train"]["step"] == 3 and state["kind"] == "vocoder"
    val = [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in val] == [3] and val[0]["mel_l1"] > 0

    assert vocoder_train.main([*common, "--steps", "3"]) == 2  # a second run may not overwrite the first
    assert vocoder_train.main([*common, "--steps", "5", "--resume"]) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]
    assert json.loads((run / "train-state" / "config.json").read_text())["train"]["step"] == 5

    voc = load_module(Vocoder, run / "model")
    wave = voc.decode(voc.log_mel(torch.from_numpy(voiced(0.5)))[:, :50])
    assert wave.shape == (8000,) and bool(torch.isfinite(wave).all())


def test_resume_continues_the_same_curve(tmp_path: Path) -> None:
    corpus, cache = tiny_corpus(tmp_path / "corpus"), tmp_path / "cache"
    common = ["--corpus", str(corpus), "--cache", str(cache), "--batch-size", "2", "--segment-seconds", "0.2",
              "--log-every", "1", "--val-segments", "1", "--val-clips", "0", "--warmup", "2", "--no-progress",
              "--steps", "4", *TINY_ARGS]
    assert vocoder_train.main([*common, "--out", str(tmp_path / "a"), "--save-every", "4"]) == 0
    assert vocoder_train.main([*common, "--out", str(tmp_path / "b"), "--save-every", "2", "--steps", "2"]) == 0
    assert vocoder_train.main([*common, "--out", str(tmp_path / "b"), "--save-every", "2", "--resume"]) == 0

    def losses(run: str) -> list[float]:
        return [json.loads(line)["loss"] for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]

    assert losses("a") == pytest.approx(losses("b"), rel=1e-4)


def test_non_finite_loss_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    corpus, cache, run = tiny_corpus(tmp_path / "corpus"), tmp_path / "cache", tmp_path / "run"
    real = vocoder_run.mel_l1
    calls = {"n": 0}

    def poisoned(*args: object, **kwargs: object) -> torch.Tensor:
        calls["n"] += 1
        out = real(*args, **kwargs)  # type: ignore[arg-type]
        return out * float("nan") if calls["n"] == 2 else out

    monkeypatch.setattr(vocoder_run, "mel_l1", poisoned)
    args = ["--corpus", str(corpus), "--cache", str(cache), "--out", str(run), "--steps", "4", "--batch-size", "1",
            "--segment-seconds", "0.2", "--save-every", "10", "--val-segments", "1", "--val-clips", "0",
            "--no-progress", *TINY_ARGS]
    assert vocoder_train.main(args) == 1  # a failure while running
    err = capsys.readouterr().err.strip().splitlines()
    assert "non-finite loss" in err[-1] and "step 2" in err[-1]
    assert not (run / "train-state").exists() and not (run / "model").exists()


# --------------------------------------------------------------------------- stage 2 and attaching


def tiny_tokenizer(folder: Path) -> Path:
    """A small slice tokenizer saved as a checkpoint folder (its codes are what stage 2 decodes)."""
    torch.manual_seed(0)
    cfg = AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=32), decoder_channels=16, decoder_blocks=1)
    tok = AudioTokenizer(cfg)
    with torch.no_grad():
        tok.vq.embed.copy_(tok.log_mel(torch.from_numpy(voiced(0.7)))[:, :64].T.reshape(32, 160))
    return save_module(tok, folder)


def stage_one(tmp_path: Path) -> tuple[list[str], Path]:
    """A tiny corpus, its cache and tokenizer, and a 2-step stage-1 run in ``tmp_path / "s1"``: the
    options every run here shares (not the sizes: a run started ``--init-from`` takes its model's), and the
    tokenizer folder."""
    corpus, cache = tiny_corpus(tmp_path / "corpus"), tmp_path / "cache"
    tok_dir = tiny_tokenizer(tmp_path / "tok")
    common = ["--corpus", str(corpus), "--cache", str(cache), "--batch-size", "2", "--segment-seconds", "0.2",
              "--save-every", "2", "--log-every", "1", "--val-segments", "2", "--val-clips", "1",
              "--val-clip-seconds", "1", "--warmup", "1", "--no-progress", "--steps", "2"]
    assert vocoder_train.main([*common, *TINY_ARGS, "--out", str(tmp_path / "s1")]) == 0
    return common, tok_dir


def test_stage_two_trains_on_decoded_features_and_attaches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common, tok_dir = stage_one(tmp_path)
    s2 = tmp_path / "s2"
    stage2 = [*common, "--out", str(s2), "--features", "decoded", "--tokenizer", str(tok_dir),
              "--init-from", str(tmp_path / "s1" / "best")]
    assert vocoder_train.main(stage2) == 0
    val = [json.loads(line) for line in (s2 / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in val] == [0, 2] and val[0]["init_from"] == str((tmp_path / "s1" / "best").resolve())
    assert val[0]["griffin_lim"]["features"] == "decoded"
    state = json.loads((s2 / "train-state" / "config.json").read_text())
    assert state["config"]["dim"] == 32 and state["provenance"]["features"] == "decoded"
    assert state["provenance"]["init_from"]["steps"] == 2 and state["provenance"]["tokenizer"]["source"] == str(tok_dir)
    adam = load_file(str(s2 / "train-state" / "optimizer.safetensors"))
    assert float(adam["optim.state.0.step"]) == 2  # fresh optimizer state: 2 steps, not 2 + 2

    # the run's features are fixed: a resume that asks for the other kind is refused, one that leaves them out
    # takes the run's
    assert vocoder_train.main([*common, "--out", str(s2), "--resume", "--steps", "3", "--features", "true"]) == 2
    assert "--features true (the run's: decoded)" in capsys.readouterr().err
    again = shutil.copytree(s2, tmp_path / "s2-again")
    assert vocoder_train.main([*common, "--out", str(again), "--resume", "--steps", "3"]) == 0
    resumed = json.loads((again / "train-state" / "config.json").read_text())["provenance"]
    assert resumed["features"] == "decoded" and resumed["tokenizer"]["source"] == str(tok_dir)

    out = tmp_path / "audio-v2"
    capsys.readouterr()
    assert vocoder_train.main(["--attach", str(out), "--tokenizer", str(tok_dir), "--vocoder", str(s2 / "best")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["attached"] == str(out) and 0 < report["megabytes"] < 40 and report["within_limit"]

    tok, joined = load_module(AudioTokenizer, tok_dir), mmtok.load(out)
    voc = mmtok.load(s2 / "best")  # kind "vocoder" loads by name too
    assert isinstance(voc, Vocoder) and isinstance(joined, AudioTokenizer) and joined.cfg.vocoder == voc.cfg
    wave = torch.from_numpy(voiced(0.6))
    codes = tok.encode(wave, 16000)
    assert torch.equal(joined.encode(wave, 16000), codes)  # the codes are the tokenizer's
    assert torch.equal(joined.decode(codes), tok.decode(codes, vocoder=voc))
    assert torch.equal(joined.decode(codes, vocoder="griffin-lim"), tok.decode(codes))
    prov = joined.provenance
    assert prov["tokenizer"]["source"] == str(tok_dir.resolve()) and prov["vocoder"]["steps"] == 2
    assert prov["vocoder"]["source"] == str((s2 / "best").resolve()) and prov["tokenizer"]["fingerprint"] == tok.fingerprint
    # the vocoder changes no code: the vocabulary fingerprint stays the tokenizer's, so shards stay valid
    assert joined.fingerprint == tok.fingerprint
    with torch.no_grad():
        joined.vq.embed[0] += 1.0
    assert joined.fingerprint != tok.fingerprint  # the codebook does change it


def test_stage_two_mixes_synthetic_clips_and_starts_from_a_shipped_style_tokenizer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common, tok_dir = stage_one(tmp_path)
    joined = tmp_path / "joined"  # a tokenizer checkpoint that carries its vocoder, as models/audio does
    assert vocoder_train.main(["--attach", str(joined), "--tokenizer", str(tok_dir),
                               "--vocoder", str(tmp_path / "s1" / "best")]) == 0
    s2 = tmp_path / "s2"
    stage2 = [*common, "--out", str(s2), "--features", "decoded", "--tokenizer", str(tok_dir),
              "--init-from", str(joined), "--synthetic", "3", "--synthetic-share", "0.5", "--seed", "4"]
    assert vocoder_train.main(stage2) == 0
    state = json.loads((s2 / "train-state" / "config.json").read_text())["provenance"]
    assert state["synthetic"] == {"clips": 3, "share": 0.5, "seed": 4} and "3 seeded synthetic clips" in state["sampling"]
    assert state["init_from"] == {"source": str(joined.resolve()), "steps": 2}  # the attached vocoder's own steps
    first, inside = mmtok.load(tmp_path / "s1" / "best"), vocoder_settings.initial_vocoder(str(joined))
    assert isinstance(first, Vocoder) and inside.cfg == first.cfg  # the attached vocoder, weight for weight
    assert all(torch.equal(a, b) for a, b in zip(inside.state_dict().values(), first.state_dict().values(), strict=True))
    assert json.loads((s2 / "validation.jsonl").read_text().splitlines()[0])["step"] == 0

    # the mixed pool: half the draws land on the three synthetic clips, each its own group
    run = vocoder_run.Run(vocoder_train.build_parser().parse_args(
        [*stage2[:-8], *TINY_ARGS, "--out", str(tmp_path / "probe"), "--synthetic", "3", "--synthetic-share", "0.5"]),
        [])
    extra = run.train_set.clips[-3:]
    assert [c.path for c in extra] == ["synthetic:0", "synthetic:1", "synthetic:2"]
    assert run.probs[-3:].sum() == pytest.approx(0.5) and run.probs.sum() == pytest.approx(1.0)
    from mmtok.audio.corpus import synthetic_clips
    assert np.array_equal(run.train_set.read(extra[1]), synthetic_clips(3, seed=0)[1])

    # a resumed run keeps the clips it started with, whatever the options now say
    assert vocoder_train.main([*stage2[:-6], "--resume", "--steps", "4"]) == 0
    again = json.loads((s2 / "train-state" / "config.json").read_text())["provenance"]
    assert again["synthetic"] == {"clips": 3, "share": 0.5, "seed": 4}

    # refused: a tokenizer without a vocoder as --init-from; a share outside (0, 1)
    capsys.readouterr()
    bad = [*common, "--features", "decoded", "--tokenizer", str(tok_dir)]
    assert vocoder_train.main([*bad, "--out", str(tmp_path / "b1"), "--init-from", str(tok_dir)]) == 2
    assert "without a learned vocoder" in capsys.readouterr().err
    assert vocoder_train.main([*bad, "--out", str(tmp_path / "b2"), "--synthetic", "2", "--synthetic-share", "1"]) == 2
    assert "--synthetic-share" in capsys.readouterr().err


def test_synthetic_clips_with_steady_tones() -> None:
    from mmtok.audio.corpus import steady_tone, synthetic_clips

    plain = synthetic_clips(6, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(plain, synthetic_clips(6, seed=3, tones=0.0), strict=True))
    every = synthetic_clips(6, seed=3, tones=1.0)
    rng = np.random.default_rng(3 + 991)
    again = [steady_tone(rng, float(rng.uniform(1.0, 4.0)), 16000) for _ in range(6)]
    assert all(np.array_equal(a, b) for a, b in zip(every, again, strict=True))
    mixed = synthetic_clips(400, seed=0, tones=0.5)
    tone_rng = np.random.default_rng(0 + 991)
    tones = [steady_tone(tone_rng, float(tone_rng.uniform(1.0, 4.0)), 16000) for _ in range(400)]
    n_tones = sum(any(len(c) == len(t) and np.array_equal(c, t) for t in tones[:300]) for c in mixed)
    assert 160 <= n_tones <= 240  # about half
    for x in every:  # one steady fundamental: the strongest bin holds its frequency for the whole clip
        spec = [np.abs(np.fft.rfft(part)).argmax() for part in np.array_split(x[160:-160], 4)]
        assert max(spec) - min(spec) <= 0.02 * max(spec) + 2
        assert 10 ** (-31 / 20) <= np.abs(x).max() <= 10 ** (-1 / 20) + 1e-6
    with pytest.raises(ValueError, match="tones"):
        synthetic_clips(2, seed=0, tones=1.5)


def test_cli_runs_the_vocoder_trainer(capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main as cli

    with pytest.raises(SystemExit) as done:
        cli(["train-tokenizer", "vocoder", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--features" in out and "--init-from" in out and "--attach" in out
    assert cli(["train-tokenizer", "vocoder", "--attach", "x"]) == 2
    assert "--vocoder" in capsys.readouterr().err


def test_the_shipped_vocoder_starts_a_run() -> None:
    """``--init-from audio``: the learned vocoder inside the shipped checkpoint, weight for weight, with
    its own provenance (stage 2 on decoded features), and it decodes another tokenizer's codes."""
    voc, shipped = vocoder_settings.initial_vocoder("audio"), mmtok.load("audio")
    assert shipped.vocoder is not None and voc.cfg == shipped.cfg.vocoder
    assert all(torch.equal(a, b) for a, b in zip(voc.state_dict().values(), shipped.vocoder.state_dict().values(),
                                                 strict=True))
    assert voc.provenance["features"] == "decoded" and voc.provenance["steps"] > 0
    assert checkpoint_source("audio") == "audio"  # a run records the shipped name, not a cwd path
    tok = AudioTokenizer(AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=8), decoder_channels=8,
                                              vocoder=voc.cfg))
    tok.vocoder.load_state_dict(voc.state_dict())  # type: ignore[union-attr]
    assert tok.decode(torch.tensor([1, 2, 3])).shape == (960,)


# --------------------------------------------------------------------------- the tokenizer trained from a cache


def test_audio_tokenizer_trains_from_a_cache(tmp_path: Path) -> None:
    from mmtok.audio import train as audio_train
    from mmtok.audio import train_data
    from mmtok.audio.vocoder_data import AudioCache, build_cache, sampling_weights

    corpus, cache, out = tiny_corpus(tmp_path / "corpus"), tmp_path / "cache", tmp_path / "run"
    build_cache(corpus, cache, progress=False)
    assert train_data.is_cache(cache) and not train_data.is_cache(corpus)
    args = ["--data", str(cache), "--out", str(out), "--steps", "2", "--codebook-size", "16", "--decoder-channels", "16",
            "--crop-tokens", "8", "--batch-size", "2", "--kmeans-iters", "3", "--kmeans-balance", "2",
            "--kmeans-min-groups", "2", "--val-clips", "1", "--threads", "1", "--no-progress"]
    assert audio_train.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_files"] == 4  # the cache's train split; the broken file was skipped when it was built
    assert summary["codebook_groups"].endswith("3 groups over 4 clips")  # source/group: a, b, c (c holds two files)
    val_paths = {c.path for c in AudioCache(cache, "validation").clips}
    assert len(summary["validation_files"]) == 1 and set(summary["validation_files"]) <= val_paths
    assert summary["validation"]["clips"] == 1 and summary["validation"]["rel_l1"] > 0
    assert isinstance(mmtok.load(out / "model"), AudioTokenizer)

    # crops follow the sampler's weights (source ∝ √hours, ...), not the clip lengths
    clips = AudioCache(cache, "train").clips
    w = torch.from_numpy(sampling_weights(clips)).float()
    feats = [torch.full((80, 40), float(i)) for i in range(len(clips))]
    only = torch.zeros(len(clips))
    only[2] = 1.0
    crops = train_data.random_feature_crops(feats, 6, 4, fpt=2, ctx=2, floor=-11.0,
                                             generator=torch.Generator().manual_seed(0), weights=only)
    assert bool((crops == 2.0).all())
    assert w.sum().item() == pytest.approx(1.0) and len(w) == len(clips)

    # --synthetic mixes seeded synthetic clips into the cache's crops, at their share of the weight
    ns = audio_train.build_parser().parse_args([*args, "--synthetic", "3", "--synthetic-share", "0.25", "--seed", "0"])
    waves, _, _, groups, note, weights = train_data.cache_material(ns)
    assert len(waves) == 4 + 3 and groups[-3:] == [3, 4, 5] and note.endswith("3 synthetic clips (25% of the crops), each its own group")
    assert weights[-3:].sum().item() / weights.sum().item() == pytest.approx(0.25)
    again = train_data.synthetic_clips(3, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(waves[-3:], again, strict=True))
    assert all(16000 <= a.numel() <= 64000 and a.abs().max() <= 1 for a in again)
    assert audio_train.main([*args, "--out", str(tmp_path / "synth"), "--synthetic", "3"]) == 0
    assert "synthetic clips" in json.loads((tmp_path / "synth" / "summary.json").read_text())["codebook_groups"]
    with pytest.raises(SystemExit):
        audio_train.main([*args, "--synthetic", "2", "--synthetic-share", "1.5"])
    with pytest.raises(SystemExit):
        audio_train.main(["--data", str(corpus), "--out", str(tmp_path / "x"), "--synthetic", "2"])

    # --mse-weight adds the squared error: same seed and batches, other weights after two steps
    assert audio_train.main([*args[:3], str(tmp_path / "mse"), *args[4:], "--encoder", "conv", "--mse-weight", "2"]) == 0
    assert audio_train.main([*args[:3], str(tmp_path / "l1"), *args[4:], "--encoder", "conv"]) == 0
    a_, b_ = mmtok.load(tmp_path / "mse" / "model"), mmtok.load(tmp_path / "l1" / "model")
    assert any(not torch.equal(x, y) for x, y in zip(a_.state_dict().values(), b_.state_dict().values(), strict=True))
    assert audio_train.main([*args[:3], str(tmp_path / "l1b"), *args[4:], "--encoder", "conv"]) == 0
    again = mmtok.load(tmp_path / "l1b" / "model")  # a second run without it is weight for weight the first
    assert all(torch.equal(x, y) for x, y in zip(again.state_dict().values(), b_.state_dict().values(), strict=True))
    assert "--mse-weight 2" in json.loads((tmp_path / "mse" / "summary.json").read_text())["command"]
    # --compressed-weight adds the L1 of compressed magnitudes: again other weights from the same batches
    assert audio_train.main([*args[:3], str(tmp_path / "cmp"), *args[4:], "--encoder", "conv",
                             "--compressed-weight", "1"]) == 0
    c_ = mmtok.load(tmp_path / "cmp" / "model")
    assert any(not torch.equal(x, y) for x, y in zip(c_.state_dict().values(), b_.state_dict().values(), strict=True))
    with pytest.raises(SystemExit):
        audio_train.main([*args[:3], str(tmp_path / "neg"), *args[4:], "--compressed-weight", "-1"])
    assert not (tmp_path / "neg").exists()
    # --envelope-weight adds the band-envelope correlation term: other weights again, and it is in the command
    assert audio_train.main([*args[:3], str(tmp_path / "env"), *args[4:], "--encoder", "conv",
                             "--envelope-weight", "1"]) == 0
    e_ = mmtok.load(tmp_path / "env" / "model")
    assert any(not torch.equal(x, y) for x, y in zip(e_.state_dict().values(), b_.state_dict().values(), strict=True))
    assert "--envelope-weight 1" in json.loads((tmp_path / "env" / "summary.json").read_text())["command"]
    with pytest.raises(SystemExit):
        audio_train.main([*args[:3], str(tmp_path / "neg"), *args[4:], "--envelope-weight", "-0.5"])
    assert not (tmp_path / "neg").exists()

    # --band-weight weighs one band's mel channels more in the L1 and squared error: other weights again;
    # a band over every channel weighs all alike, so it trains (to rounding) as the plain L1 does
    assert audio_train.main([*args[:3], str(tmp_path / "band"), *args[4:], "--encoder", "conv",
                             "--band-weight", "0-500:4"]) == 0
    w_ = mmtok.load(tmp_path / "band" / "model")
    assert any(not torch.equal(x, y) for x, y in zip(w_.state_dict().values(), b_.state_dict().values(), strict=True))
    assert "--band-weight 0-500:4" in json.loads((tmp_path / "band" / "summary.json").read_text())["command"]
    assert audio_train.main([*args[:3], str(tmp_path / "flat"), *args[4:], "--encoder", "conv",
                             "--band-weight", "0-8000:4"]) == 0
    f_ = mmtok.load(tmp_path / "flat" / "model")
    assert all(torch.allclose(x.float(), y.float(), atol=1e-4) for x, y in zip(f_.state_dict().values(),
                                                                               b_.state_dict().values(), strict=True))
    for bad in ("500-0:2", "0-500", "0-500:0"):
        with pytest.raises(SystemExit):
            audio_train.main([*args[:3], str(tmp_path / "neg"), *args[4:], "--band-weight", bad])
    assert not (tmp_path / "neg").exists()

    # --dead-code-rate: the learned codebook also restarts codes used below that fraction of the mean
    assert audio_train.main([*args[:3], str(tmp_path / "rate"), *args[4:], "--encoder", "conv",
                             "--dead-code-rate", "0.5"]) == 0
    rated = mmtok.load(tmp_path / "rate" / "model")
    assert rated.cfg.vq.dead_code_rate == 0.5 and b_.cfg.vq.dead_code_rate == 0.0
    with pytest.raises(SystemExit):
        audio_train.main([*args[:3], str(tmp_path / "bad"), *args[4:], "--encoder", "conv", "--dead-code-rate", "1"])
    assert not (tmp_path / "bad").exists()


def test_a_stereo_file_read_through_pyav_is_averaged_as_soundfile_averages_it(tmp_path: Path) -> None:
    """A cache's file that libsndfile cannot read (AAC) goes through PyAV: its channels are averaged as
    soundfile's are, not mixed by FFmpeg, whose mono mix weighs each of two channels 0.707 (+3 dB)."""
    av = pytest.importorskip("av")
    from mmtok.audio.vocoder_data import decode_file

    sr = 16000
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr)).astype(np.float32)
    path = tmp_path / "stereo.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=sr)
        s.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.stack([x, x]), format="fltp", layout="stereo")
        frame.sample_rate = sr
        for packet in [*s.encode(frame), *s.encode(None)]:
            c.mux(packet)
    y, rate = decode_file(path)
    assert rate == sr
    rms = float(np.sqrt(np.mean(y[4000:-4000].astype(np.float64) ** 2)))
    assert abs(rms - 0.5 / np.sqrt(2)) < 0.02, rms  # 0.354 as one channel; FFmpeg's mono mix gave 0.5
