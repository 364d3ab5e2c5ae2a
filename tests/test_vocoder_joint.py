"""Stage 2 with the tokenizer's log-mel decoder trained through the vocoder (``--train-decoder``)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmtok.audio import vocoder_run, vocoder_train
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder_eval import decoded_features
from mmtok.audio.vocoder_joint import PREFIX, DecoderTuning
from mmtok.core.module_io import load_module
from mmtok.vq.quantizer import VQConfig
from tests.test_vocoder import stage_one, voiced

pytestmark = pytest.mark.usefixtures("one_thread")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_joint_run_tunes_the_decoder_keeps_the_codes_and_attaches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common, tok_dir = stage_one(tmp_path)
    s2 = tmp_path / "s2"
    args = [*common, "--out", str(s2), "--features", "decoded", "--tokenizer", str(tok_dir),
            "--init-from", str(tmp_path / "s1" / "best"), "--train-decoder", "--decoder-anchor", "0.5",
            "--decoder-lr", "1e-3", "--attach", str(tmp_path / "one")]
    assert vocoder_train.main(args) == 0
    printed = capsys.readouterr().out
    log = _rows(s2 / "log.jsonl")
    assert all(r["anchor"] > 0 and r["decoder_grad_norm"] > 0 for r in log)
    state = json.loads((s2 / "train-state" / "config.json").read_text())
    assert state["provenance"]["train_decoder"] == {"anchor": 0.5, "decoder_lr": 1e-3}
    side = load_file(str(s2 / "train-state" / "optimizer.safetensors"))
    assert any(k.startswith("extra." + PREFIX) for k in side)

    before, tuned = load_module(AudioTokenizer, tok_dir), load_module(AudioTokenizer, s2 / "tokenizer")
    assert (s2 / "best-tokenizer" / "config.json").is_file()
    assert tuned.provenance["decoder_tuned"]["steps"] == 2
    old, new = before.state_dict(), tuned.state_dict()
    changed = {k for k in old if not torch.equal(old[k], new[k])}
    assert changed and all(k.startswith("decoder.") for k in changed)  # encoder, codebook and statistics kept
    wave = torch.from_numpy(voiced(0.6))
    codes = before.encode(wave, 16000)
    assert torch.equal(tuned.encode(wave, 16000), codes)  # the codes do not change
    assert not torch.equal(tuned.decode_features(codes), before.decode_features(codes))

    capsys.readouterr()
    out = tmp_path / "joined"
    assert vocoder_train.main(["--attach", str(out), "--tokenizer", str(s2 / "best-tokenizer"),
                               "--vocoder", str(s2 / "best")]) == 0
    joined = load_module(AudioTokenizer, out)
    best = load_module(AudioTokenizer, s2 / "best-tokenizer")
    assert torch.equal(joined.decode_features(codes), best.decode_features(codes))
    # --attach in the training command: best/ goes with the decoder it was trained on, not --tokenizer's
    assert json.loads(printed.strip().splitlines()[-1])["tokenizer"] == str(s2 / "best-tokenizer")
    assert torch.equal(load_module(AudioTokenizer, tmp_path / "one").decode_features(codes), best.decode_features(codes))


def test_joint_run_resumes_on_the_same_curve_and_keeps_its_mode(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common, tok_dir = stage_one(tmp_path)
    stage2 = ["--features", "decoded", "--tokenizer", str(tok_dir), "--init-from", str(tmp_path / "s1" / "best"),
              "--val-clips", "0"]
    joint = [*stage2, "--train-decoder", "--decoder-lr", "1e-3", "--disc-weight", "1.0", "--disc-warmup", "1",
             "--disc-channels", "4", "--disc-seconds", "0.1"]
    warm = ["--warmup", "2"]  # the 2 steps before the stop in warmup: the same rates whatever --steps the cosine ends at
    assert vocoder_train.main([*common, *joint, *warm, "--out", str(tmp_path / "a"), "--steps", "4", "--save-every", "4"]) == 0
    assert vocoder_train.main([*common, *joint, *warm, "--out", str(tmp_path / "b"), "--steps", "2"]) == 0
    # resumed without the options: the run's own decoder tuning and discriminators go on
    assert vocoder_train.main([*common, *stage2, *warm, "--out", str(tmp_path / "b"), "--steps", "4", "--resume"]) == 0
    a, b = _rows(tmp_path / "a" / "log.jsonl"), _rows(tmp_path / "b" / "log.jsonl")
    assert {"anchor", "decoder_grad_norm", "d_loss"} <= set(b[-1])
    for key in ("loss", "anchor", "d_loss"):
        assert [r[key] for r in a] == pytest.approx([r[key] for r in b], rel=1e-4), key
    tuned_a = load_module(AudioTokenizer, tmp_path / "a" / "tokenizer").state_dict()
    tuned_b = load_module(AudioTokenizer, tmp_path / "b" / "tokenizer").state_dict()
    assert all(torch.allclose(tuned_a[k], tuned_b[k], atol=1e-6) for k in tuned_a)

    capsys.readouterr()
    assert vocoder_train.main([*common, *stage2, "--out", str(tmp_path / "plain")]) == 0
    assert vocoder_train.main([*common, *stage2, "--train-decoder", "--out", str(tmp_path / "plain"),
                               "--steps", "3", "--resume"]) == 2
    assert "--train-decoder (the run's: no --train-decoder)" in capsys.readouterr().err
    assert vocoder_train.main([*common, "--out", str(tmp_path / "c"), "--train-decoder"]) == 2
    assert "needs --features decoded" in capsys.readouterr().err


def test_attach_pairs_best_with_best_tokenizer_and_refuses_the_tuned_tokenizer_of_another_step(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    common, tok_dir = stage_one(tmp_path)
    real, worse = vocoder_run.evaluate, itertools.count()

    def later_is_worse(*args: object, **kwargs: object) -> dict:
        row = real(*args, **kwargs)  # type: ignore[arg-type]
        return {**row, "mel_l1": row["mel_l1"] + next(worse)}

    monkeypatch.setattr(vocoder_run, "evaluate", later_is_worse)  # best/ stays at step 2
    run = tmp_path / "s2"
    assert vocoder_train.main([*common, "--out", str(run), "--features", "decoded", "--tokenizer", str(tok_dir),
                               "--init-from", str(tmp_path / "s1" / "best"), "--train-decoder", "--decoder-lr", "1e-3",
                               "--steps", "4"]) == 0
    best = json.loads((run / "best" / "config.json").read_text())["provenance"]
    assert best["steps"] == 2 and load_module(AudioTokenizer, run / "tokenizer").provenance["decoder_tuned"]["steps"] == 4
    capsys.readouterr()
    # best/ (step 2) with the decoder tuned to step 4: refused, naming the pair that goes together
    assert vocoder_train.main(["--attach", str(tmp_path / "mixed"), "--tokenizer", str(run / "tokenizer"),
                               "--vocoder", str(run / "best")]) == 2
    err = capsys.readouterr().err
    assert "--tokenizer" in err and "best-tokenizer" in err and not (tmp_path / "mixed").exists()
    for vocoder, tokenizer in (("best", "best-tokenizer"), ("model", "tokenizer")):  # --tokenizer left out
        out = tmp_path / f"joined-{vocoder}"
        assert vocoder_train.main(["--attach", str(out), "--vocoder", str(run / vocoder)]) == 0
        prov = json.loads((out / "config.json").read_text())["provenance"]
        assert prov["tokenizer"]["source"] == str((run / tokenizer).resolve())
        assert prov["tokenizer"]["fingerprint"] == load_module(AudioTokenizer, run / tokenizer).fingerprint
    assert best["tuned_tokenizer"]["fingerprint"] == load_module(AudioTokenizer, run / "best-tokenizer").fingerprint


def test_anchor_is_the_tokenizers_log_mel_l1() -> None:
    tok = AudioTokenizer(AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=8), decoder_channels=8))
    tuning = DecoderTuning(tok, anchor=1.0)
    mel = torch.randn(1, 80, 12)
    assert float(tuning.anchor_loss(mel, torch.cat([mel, mel[..., :1]], -1))) == 0.0  # the extra true frame is ignored
    shifted = float(tuning.anchor_loss(mel + 0.5, mel))
    assert shifted == pytest.approx(0.5 / float(tok.feature_std.mean()), rel=1e-5)
    assert [p.requires_grad for p in tok.encoder.parameters()] == [False] * len(list(tok.encoder.parameters()))
    with pytest.raises(ValueError, match="decoder-anchor"):
        DecoderTuning(tok, anchor=-1.0)


def test_tuned_features_are_what_inference_reads_with_gradients_to_the_decoder_only() -> None:
    torch.manual_seed(0)
    tok = AudioTokenizer(AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=8), decoder_channels=8))
    tuning = DecoderTuning(tok, anchor=1.0)
    audio = torch.randn(2, 3200) * 0.1
    plain = decoded_features(tok, audio)
    tuned = tuning.features(audio)
    assert not plain.requires_grad and tuned.requires_grad
    assert torch.equal(tuned.detach(), plain)  # the same values: the codes and their decoding are inference's
    expect = torch.stack([tok.decode_features(tok.encode(row, 16000)) for row in audio])[..., : 3200 // 160]
    assert torch.equal(plain, expect)
    tuned.sum().backward()
    assert all(p.grad is not None for p in tok.decoder.parameters())
    assert all(p.grad is None for p in tok.encoder.parameters()) and tok.vq.embed.grad is None
