"""Audio tokenizer training: clip- and speaker-balanced codebook fitting, and the
`mmtok train-tokenizer audio` command (validation split, --init-from, grown blocks, --decoder-only)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

import mmtok
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.errors import AudioError, UsageError
from mmtok.vq.kmeans import lloyd
from tests.test_audio import speechlike, tone

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: one thread is steadier


# --------------------------------------------------------------------------- codebook fitting


def test_clip_balanced_kmeans_retires_codes_of_single_clips() -> None:
    """Lloyd spends codes on content of one clip each; balancing moves them to shared content,
    so more codes are hit on new clips."""
    from mmtok.audio.codebook import balance_codes, clip_support

    g = torch.Generator().manual_seed(0)
    shared = torch.randn(6, 8, generator=g) * 4  # 6 sounds every clip has (broad clusters)

    def corpus(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows, clips = [], []
        for c in range(n):
            rows.append(shared[torch.randint(0, 6, (60,), generator=g)] + torch.randn(60, 8, generator=g))
            # a tight cluster only this clip has (a steady synthetic tone, say)
            rows.append((torch.randn(8, generator=g) * 3).expand(15, 8) + torch.randn(15, 8, generator=g) * 0.05)
            clips += [c] * 75
        return torch.cat(rows), torch.tensor(clips)

    x, clip = corpus(40)
    new, _ = corpus(10)
    k = 24
    plain, _ = lloyd(x, x[torch.randperm(x.shape[0], generator=g)[:k]].clone(), 20)
    bal, counts = balance_codes(x, clip, plain.clone(), rounds=10, min_groups=5, iters=3, generator=g)
    weak_plain = int((clip_support(nearest(x, plain), clip, k) < 5).sum())
    weak_bal = int((clip_support(nearest(x, bal), clip, k) < 5).sum())
    assert weak_plain >= 3 and weak_bal == 0
    assert nearest(new, bal).unique().numel() > nearest(new, plain).unique().numel()
    assert counts.sum() == x.shape[0] and torch.equal(counts, torch.bincount(nearest(x, bal), minlength=k).float())


def test_pair_weights_and_weighted_lloyd() -> None:
    """Every (group, code) pair weighs 1: a code's center is the mean over groups of each group's mean."""
    from mmtok.audio.codebook import pair_weights, weighted_lloyd

    idx = torch.tensor([0, 0, 0, 1, 0])
    grp = torch.tensor([0, 0, 0, 0, 1])
    assert torch.allclose(pair_weights(idx, grp, 2), torch.tensor([1 / 3, 1 / 3, 1 / 3, 1.0, 1.0]))
    # group 0 has 9 rows at 0.0, group 1 one row at 1.0: plain mean 0.1, group-weighted 0.5
    rows = torch.tensor([[0.0]] * 9 + [[1.0], [10.0]])
    grp = torch.tensor([0] * 9 + [1, 1])
    c = weighted_lloyd(rows, grp, torch.tensor([[0.3], [9.0]]), 1)
    assert torch.allclose(c, torch.tensor([[0.5], [10.0]]))
    assert torch.equal(weighted_lloyd(rows, grp, c, 2), c)  # a fixed point


def test_group_balancing_retires_speaker_specific_codes() -> None:
    """Many clips of one speaker make a cluster clip-balancing keeps (it has many clips) but
    group-balancing retires (it has one speaker); a new speaker then hits more of the codes."""
    from mmtok.audio.codebook import balance_codes, clip_support

    g = torch.Generator().manual_seed(1)
    shared = torch.randn(6, 8, generator=g) * 4
    own = torch.randn(12, 8, generator=g) * 4  # what each of 12 speakers alone says

    def clip(speaker: int) -> torch.Tensor:
        common = shared[torch.randint(0, 6, (40,), generator=g)] + torch.randn(40, 8, generator=g)
        return torch.cat([common, own[speaker] + torch.randn(20, 8, generator=g) * 0.3])

    rows, clips, speakers = [], [], []
    for c in range(96):  # 8 clips per speaker
        rows.append(clip(c % 12))
        clips += [c] * 60
        speakers += [c % 12] * 60
    x, clips, speakers = torch.cat(rows), torch.tensor(clips), torch.tensor(speakers)
    k = 24
    plain, _ = lloyd(x, x[torch.randperm(x.shape[0], generator=g)[:k]].clone(), 20)
    by_clip, _ = balance_codes(x, clips, plain.clone(), rounds=10, min_groups=4, iters=3, generator=g)
    by_speaker, _ = balance_codes(x, speakers, plain.clone(), rounds=10, min_groups=4, iters=3, generator=g)
    assert int((clip_support(nearest(x, by_speaker), speakers, k) < 4).sum()) == 0
    assert int((clip_support(nearest(x, by_clip), speakers, k) < 4).sum()) >= 6
    new = torch.cat([shared[torch.randint(0, 6, (300,), generator=g)] + torch.randn(300, 8, generator=g),
                     torch.randn(8, generator=g) * 4 + torch.randn(100, 8, generator=g) * 0.3])  # a new speaker
    assert nearest(new, by_speaker).unique().numel() > nearest(new, by_clip).unique().numel()


def test_speaker_groups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from mmtok.audio.codebook import speaker_groups

    (tmp_path / "train").mkdir()
    names = ["espeak-00000.wav", "espeak-00001.wav", "espeak-00002.wav", "synthetic-00003.wav"]
    files = [tmp_path / "train" / n for n in names]
    assert speaker_groups(files, "auto")[0] == [0, 1, 2, 3]  # no manifest: every file on its own
    man = {"train": [{"file": names[0], "voice": "en+m3"}, {"file": names[1], "voice": "de"},
                     {"file": names[2], "voice": "en+m3"}, {"file": names[3], "source": "synthetic"}]}
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    groups, note = speaker_groups(files, "auto")
    assert groups == [0, 1, 0, 2] and "3 groups over 4 files" in note
    assert speaker_groups(files, "file")[0] == [0, 1, 2, 3]
    (tmp_path / "g.json").write_text(json.dumps({names[1]: "x", names[3]: "x"}))
    assert speaker_groups(files, str(tmp_path / "g.json"))[0] == [0, 1, 2, 1]
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(AudioError, match=r"bad\.json.*JSON object"):
        speaker_groups(files, str(tmp_path / "bad.json"))
    with pytest.raises(AudioError, match=r"missing\.json.*not a readable JSON"):
        speaker_groups(files, str(tmp_path / "missing.json"))

    # from the command line: a clear error before any audio is read or anything is written
    from mmtok.cli import main as cli

    for f in files:
        sf.write(f, tone(0.2, SAMPLE_RATE), SAMPLE_RATE)
    out = tmp_path / "run"
    assert cli(["train-tokenizer", "audio", "--data", str(tmp_path), "--out", str(out), "--steps", "1",
                "--kmeans-groups", str(tmp_path / "missing.json"), "--no-progress"]) == 2
    assert "mmtok: error: --kmeans-groups" in capsys.readouterr().err and not out.exists()


def nearest(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x, c).argmin(1)


def test_train_cli_balanced_codebook_and_validation_split(tmp_path: Path) -> None:
    from mmtok.audio.train import build_parser, main
    from mmtok.audio.train_data import split_validation

    assert build_parser().parse_args(["--data", "d", "--out", "o"]).kmeans_balance > 0  # on by default
    data = tmp_path / "data" / "train"
    data.mkdir(parents=True)
    for i in range(8):
        sf.write(data / f"espeak-{i:05d}.wav", speechlike(1.5, seed=20 + i), SAMPLE_RATE)
    sf.write(data / "pygame-00099.wav", tone(1.0, SAMPLE_RATE), SAMPLE_RATE)
    files = sorted(data.glob("*.wav"))
    train, val = split_validation(files, 0.25, seed=0)
    assert len(val) == 2 and not set(train) & set(val) and all("pygame" not in f.name for f in val)
    assert split_validation(files, 0.25, seed=0) == (train, val) and split_validation(files, 0.0)[1] == []
    out = tmp_path / "run"
    assert main(["--data", str(tmp_path / "data"), "--out", str(out), "--steps", "2", "--codebook-size", "16",
                 "--decoder-channels", "16", "--crop-tokens", "8", "--batch-size", "2", "--kmeans-iters", "3",
                 "--kmeans-balance", "2", "--kmeans-min-groups", "2", "--val-fraction", "0.25", "--threads", "1",
                 "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_files"] == 7 and sorted(summary["validation_files"]) == sorted(f.name for f in val)
    assert summary["codebook_groups"] == "file: 7 groups over 7 files"  # no manifest: every file is its own group
    v = summary["validation"]
    assert v["clips"] == 2 and 0 < v["usage"] <= 1 and v["rel_l1"] > 0 and v["rel_l1_codes_only"] > 0
    assert isinstance(mmtok.load(out / "model"), AudioTokenizer)


def _tiny_conv_run(tmp_path: Path, *, clips: int, seed: int) -> list[str]:
    """Write ``clips`` speech-like clips to ``tmp_path/data``, train a tiny conv tokenizer on them for
    two steps into ``tmp_path/first``, and return the shared training arguments."""
    from mmtok.audio.train import main

    data = tmp_path / "data"
    data.mkdir()
    for i in range(clips):
        sf.write(data / f"clip-{i}.wav", speechlike(1.5, seed=seed + i), SAMPLE_RATE)
    common = ["--data", str(data), "--crop-tokens", "8", "--batch-size", "2", "--threads", "1", "--no-progress",
              "--save-every", "1"]
    assert main([*common, "--out", str(tmp_path / "first"), "--steps", "2", "--encoder", "conv", "--codebook-size",
                 "24", "--encoder-channels", "16", "--decoder-channels", "16"]) == 0
    return common


def test_train_cli_init_from_a_trained_tokenizer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--init-from starts from another tokenizer's weights (its K and sizes, no vocoder) with a
    fresh schedule; architecture arguments beside it are refused before anything is written."""
    from mmtok.audio.train import main
    from mmtok.audio.vocoder_config import VocoderConfig

    common = _tiny_conv_run(tmp_path, clips=4, seed=40)
    first = tmp_path / "first"
    src = mmtok.load(first / "model")
    # the source may carry a vocoder: it is neither trained nor kept
    with_voc = AudioTokenizer(dataclasses.replace(src.cfg, vocoder=VocoderConfig(dim=8, intermediate=16, blocks=1)))
    with_voc.load_state_dict(src.state_dict(), strict=False)
    mmtok.save(with_voc, tmp_path / "src")

    out = tmp_path / "second"
    assert main([*common, "--out", str(out), "--steps", "1", "--lr", "1e-9", "--warmup", "1", "--init-from",
                 str(tmp_path / "src"), "--dead-code-rate", "0.1"]) == 0
    got = mmtok.load(out / "model")
    assert got.codebook_size == 24 and got.cfg.encoder_channels == 16 and got.vocoder is None
    assert got.cfg.vq.dead_code_rate == 0.1  # a training knob, taken from the command line
    assert torch.equal(got.feature_mean, src.feature_mean)  # normalization is the source's, not refitted
    # one step at a vanishing rate: the encoder is the source's (a fresh one would differ entirely)
    for name, w in src.encoder.state_dict().items():
        assert torch.allclose(got.encoder.state_dict()[name], w, atol=1e-6), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["init_from"] == str(tmp_path / "src") and summary["steps"] == 1

    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*common, "--out", str(tmp_path / "third"), "--init-from", str(tmp_path / "src"), "--codebook-size", "32"])
    assert "leave out --codebook-size" in capsys.readouterr().err and not (tmp_path / "third").exists()
    with pytest.raises(UsageError, match="nowhere: no such folder"):
        main([*common, "--out", str(tmp_path / "fourth"), "--init-from", str(tmp_path / "nowhere")])
    assert not (tmp_path / "fourth").exists()


def test_train_cli_init_from_grows_encoder_and_decoder_by_identity_blocks(tmp_path: Path) -> None:
    """--encoder-blocks / --decoder-blocks beside --init-from add residual blocks that start as the
    identity: before any step the grown tokenizer gives the source's codes and log-mel exactly
    (the encoder's wider context included); shrinking is refused before anything is written."""
    from mmtok.audio.train import build_parser, main
    from mmtok.audio.train_init import GROWABLE, init_source, load_grown

    common = _tiny_conv_run(tmp_path, clips=3, seed=60)
    src = mmtok.load(tmp_path / "first" / "model")
    args = build_parser().parse_args(["--data", str(tmp_path / "data"), "--out", "x", "--init-from", str(tmp_path / "first" / "model"),
                                      "--encoder-blocks", "4", "--decoder-blocks", "6"])
    cfg, weights, note = init_source(args)
    assert (cfg.encoder_token_blocks, cfg.decoder_blocks) == (4, 6) and "encoder_token_blocks 3 -> 4" in note
    grown = AudioTokenizer(cfg)
    assert load_grown(grown, weights) == ["decoder.blocks.4", "decoder.blocks.5", "encoder.token_blocks.3"]
    assert grown.context_frames == src.context_frames + 4  # one more block: ±fpt*2 frames of context
    wave = torch.from_numpy(speechlike(2.0, seed=7)).float()
    codes = src.encode(wave, SAMPLE_RATE)
    assert torch.equal(grown.encode(wave, SAMPLE_RATE), codes)
    assert torch.allclose(grown.decode_features(codes), src.decode_features(codes), atol=1e-5)
    assert set(GROWABLE) == {"encoder_blocks", "decoder_blocks"}

    out = tmp_path / "grown"
    assert main([*common, "--out", str(out), "--steps", "2", "--lr", "1e-2", "--warmup", "1", "--init-from",
                 str(tmp_path / "first" / "model"), "--encoder-blocks", "4"]) == 0
    got = mmtok.load(out / "model")
    assert got.cfg.encoder_token_blocks == 4 and float(got.encoder.token_blocks[3].conv2.weight.detach().abs().sum()) > 0
    with pytest.raises(mmtok.TrainingError, match="may only grow"):
        main([*common, "--out", str(tmp_path / "shrunk"), "--init-from", str(out / "model"), "--encoder-blocks", "2"])
    assert not (tmp_path / "shrunk").exists()


def test_train_cli_decoder_only_keeps_every_code(tmp_path: Path) -> None:
    """--decoder-only trains the log-mel decoder alone (a grown one here): the encoder, the
    codebook and its projections come out bit for bit the source's, so every clip keeps its
    codes, while the decoder moved; a resume must repeat the flag (and only that: the run's state
    holds its source and shape), and a fresh run needs a source."""
    from mmtok.audio.train import main

    common = _tiny_conv_run(tmp_path, clips=3, seed=80)
    first = tmp_path / "first" / "model"
    src = mmtok.load(first)
    out = tmp_path / "dec"
    args = [*common, "--out", str(out), "--steps", "3", "--lr", "1e-2", "--warmup", "1", "--init-from", str(first),
            "--decoder-only", "--decoder-blocks", "6"]
    assert main(args) == 0
    got = mmtok.load(out / "model")
    for part in ("encoder", "vq"):
        for name, w in getattr(src, part).state_dict().items():  # weights, codebook and its EMA statistics
            assert torch.equal(getattr(got, part).state_dict()[name], w), f"{part}.{name}"
    wave = torch.from_numpy(speechlike(2.0, seed=9)).float()
    codes = src.encode(wave, SAMPLE_RATE)
    assert torch.equal(got.encode(wave, SAMPLE_RATE), codes)
    assert got.cfg.decoder_blocks == 6 and float(got.decoder.blocks[5].conv2.weight.detach().abs().sum()) > 0
    assert not torch.allclose(got.decode_features(codes), src.decode_features(codes), atol=1e-4)
    assert json.loads((out / "summary.json").read_text())["decoder_only"] is True

    # a resume rebuilds the tokenizer from the run's own state: no need to repeat --init-from, the growth or
    # --decoder-only (a left-out one is the run's)
    assert main([*common, "--out", str(out), "--steps", "4", "--resume"]) == 0
    again = mmtok.load(out / "model")
    assert again.cfg.decoder_blocks == 6 and torch.equal(again.encode(wave, SAMPLE_RATE), codes)
    assert json.loads((out / "summary.json").read_text())["init_from"].startswith(f"{first}; decoder_blocks 4 -> 6")
    with pytest.raises(SystemExit):
        main([*common, "--out", str(tmp_path / "none"), "--decoder-only"])
    assert not (tmp_path / "none").exists()
    with pytest.raises(SystemExit):  # --resume of a folder with no run in it has no codes to train on either
        main([*common, "--out", str(tmp_path / "none"), "--decoder-only", "--resume"])
    assert not (tmp_path / "none").exists()


def test_attenuated_crops_are_the_log_mel_of_quieter_audio() -> None:
    """Level augmentation on cached log-mel equals the log-mel of the audio made that much quieter,
    floor included; off, it returns the crops untouched and draws nothing."""
    import math

    from mmtok.audio.features import log_mel, mel_filters
    from mmtok.audio.front_end import LOG_FLOOR
    from mmtok.audio.train_data import attenuate_crops

    fb = mel_filters()
    wave = torch.from_numpy(speechlike(1.0, seed=4)).float()
    quiet = wave * 10 ** (-37.0 / 20)  # deep enough that many bins sink under the floor
    mel = torch.stack([log_mel(wave, fb), log_mel(quiet, fb)])
    floor = math.log(LOG_FLOOR)
    assert bool((mel[1] <= floor + 1e-6).any()) and bool((mel[1] > floor + 1).any())

    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    assert attenuate_crops(mel, gain_db=0.0, prob=1.0, floor=floor, generator=g) is mel
    assert attenuate_crops(mel, gain_db=30.0, prob=0.0, floor=floor, generator=g) is mel
    assert torch.equal(g.get_state(), state)

    # the draw: U(0, 40) dB for every crop (prob 1); rebuild each crop's audio at that level and compare
    out = attenuate_crops(mel[:1].expand(6, -1, -1), gain_db=40.0, prob=1.0, floor=floor,
                          generator=torch.Generator().manual_seed(5))
    db = torch.rand(6, generator=torch.Generator().manual_seed(5)) * 40.0
    for i in range(6):
        want = log_mel(wave * 10 ** (-float(db[i]) / 20), fb)
        assert torch.allclose(out[i], want, atol=2e-3), (i, float((out[i] - want).abs().max()))
    assert len({round(float(d), 3) for d in db}) == 6  # six different levels

    # prob 0.5: some crops untouched, the others quieter
    half = attenuate_crops(mel[:1].expand(64, -1, -1), gain_db=20.0, prob=0.5, floor=floor,
                           generator=torch.Generator().manual_seed(6))
    same = torch.tensor([torch.equal(h, mel[0]) for h in half])
    assert 10 < int(same.sum()) < 54 and bool((half[~same] <= mel[0] + 1e-6).all())


def test_train_cli_gain_db_is_checked_and_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio.train import build_parser, main

    assert build_parser().parse_args(["--data", "d", "--out", "o"]).gain_db == 0.0  # off by default
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path), "--out", str(tmp_path / "x"), "--gain-db", "-3"])
    assert "--gain-db must be >= 0" in capsys.readouterr().err and not (tmp_path / "x").exists()
    common = _tiny_conv_run(tmp_path, clips=4, seed=11)
    out = tmp_path / "lvl"
    assert main([*common, "--out", str(out), "--steps", "2", "--init-from", str(tmp_path / "first" / "model"),
                 "--gain-db", "20", "--gain-prob", "0.5"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "--gain-db 20" in summary["command"]
