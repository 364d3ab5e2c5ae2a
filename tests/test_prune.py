"""Pruning a codebook to the codes the training data picks most: the quantizer, the policy, and
``mmtok prune-codebook`` for audio and image tokenizers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from image_helpers import save_smooth_picture, smooth_picture, tiny_config
from test_vocoder import tiny_corpus

import mmtok
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.module_io import save_module
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.vq.prune import dropped_share, most_used, prune_tokenizer, save_pruned
from mmtok.vq.quantizer import VectorQuantizer, VQConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("cosine,codebook_dim", [(False, None), (True, 4)])
def test_pruned_quantizer_keeps_the_codes_of_inputs_whose_code_stays(cosine: bool, codebook_dim: int | None) -> None:
    vq = VectorQuantizer(VQConfig(dim=8, codebook_size=32, cosine=cosine, codebook_dim=codebook_dim))
    vq(torch.randn(512, 8))  # k-means init and one EMA step
    vq.eval()
    x = torch.randn(400, 8)
    before = vq.encode(x)
    keep = torch.tensor([3, 7, 11, 12, 20, 31, 0, 5])  # any order: new code j is old code keep[j]
    embed = vq.embed.clone()
    old_to_new = vq.prune_(keep)
    assert vq.codebook_size == 8 and vq.cfg.codebook_size == 8 and vq.embed.shape[0] == 8
    assert vq.ema_count.shape == (8,) and vq.ema_sum.shape[0] == 8 and vq.usage_stats().total == 0
    assert torch.equal(vq.embed, embed[keep])
    assert old_to_new[keep].tolist() == list(range(8)) and int((old_to_new >= 0).sum()) == 8
    after = vq.encode(x)
    stayed = old_to_new[before] >= 0
    assert bool(stayed.any()) and bool((~stayed).any())
    assert torch.equal(after[stayed], old_to_new[before[stayed]])  # kept codes: the same code, renumbered
    assert int(after.max()) < 8
    # a dropped code's inputs go to the nearest kept code: the best the smaller codebook can do
    z = vq._to_lookup(x[~stayed])
    if cosine:
        best = (z @ vq.embed.T).argmax(1)
    else:
        best = torch.cdist(z, vq.embed).argmin(1)
    assert torch.equal(after[~stayed], best)
    assert vq.decode(after).shape == (400, 8)
    with pytest.raises(ValueError, match="outside the codebook"):
        vq.decode(torch.tensor([8]))


def test_prune_refuses_bad_keep_lists() -> None:
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=6, kmeans_init=False))
    for bad, msg in (([], "at least one"), ([0, 6], "outside the codebook"), ([-1], "outside"), ([1, 1], "distinct")):
        with pytest.raises(ValueError, match=msg):
            vq.prune_(bad)
    assert vq.codebook_size == 6  # nothing changed
    with pytest.raises(ValueError, match=r"keep must be in 1\.\.4"):
        most_used(torch.ones(4), 5)
    with pytest.raises(ValueError, match="non-negative"):
        most_used(torch.tensor([1.0, -1.0]), 1)


def test_most_used_is_deterministic_and_dropped_share_counts_the_rest() -> None:
    share = torch.tensor([0.1, 0.3, 0.1, 0.0, 0.5])
    assert most_used(share, 2).tolist() == [1, 4]
    assert most_used(share, 3).tolist() == [0, 1, 4]  # a tie goes to the lower index
    assert dropped_share(share, most_used(share, 3)) == pytest.approx(0.1)
    assert dropped_share(torch.zeros(3), torch.tensor([0])) == 0.0


def test_prune_tokenizer_leaves_the_original_alone() -> None:
    tok = ImageTokenizer(tiny_config())
    small, old_to_new = prune_tokenizer(tok, torch.arange(0, 64, 2))
    assert tok.codebook_size == 64 and tok.cfg.vq.codebook_size == 64
    assert small.codebook_size == 32 and small.cfg.vq is small.vq.cfg and old_to_new[2].item() == 1
    with pytest.raises(TypeError, match="VectorQuantizer"):
        prune_tokenizer(torch.nn.Linear(2, 2), torch.arange(1))


def test_pruning_counts_the_kept_codes_it_makes_twins(tmp_path: Path) -> None:
    """Twins are measured against the codebook's median radius, which pruning changes: codes 0 and 1, 1e-3
    apart, are two codes beside a ring of radius 1 and twins beside one of radius 100 alone. The record says
    how many kept codes encode now gives as another's twin; for the shipped models pruning changes none."""
    tok = ImageTokenizer(tiny_config())  # codebook of 64 codes in 8 dimensions
    g = torch.Generator().manual_seed(0)
    ring = torch.nn.functional.normalize(torch.randn(62, 8, generator=g), dim=1)
    near = torch.zeros(2, 8)
    near[1, 0] = 1e-3
    tok.vq.embed.copy_(torch.cat([near, ring[:31], ring[31:] * 100]))
    x = torch.zeros(1, 8)
    x[0, 0] = 2e-3  # nearest: code 1
    assert tok.vq.encode(x).tolist() == [1]
    share = torch.cat([torch.ones(2), torch.zeros(31), torch.ones(31)])  # the ring of radius 1 is never used
    rec = save_pruned(tok, share, 33, tmp_path / "small", source="t", counted_on={})
    small = mmtok.load(tmp_path / "small")
    assert rec["twins_changed"] == 1 and small.provenance["pruned"]["twins_changed"] == 1
    assert small.vq.encode(x).tolist() == [0]  # as the record warns
    for name in ("image", "audio"):
        shipped = mmtok.load(name)
        keep = torch.arange(0, shipped.codebook_size, 3)
        assert save_pruned(shipped, torch.isin(torch.arange(shipped.codebook_size), keep).double(), keep.numel(),
                           tmp_path / name, source=name, counted_on={})["twins_changed"] == 0


def _tiny_audio_tokenizer(path: Path) -> Path:
    tok = AudioTokenizer(AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=32), decoder_channels=8))
    tok.train()
    tok(torch.randn(4, 80, 40))  # k-means init on some features, so the codes differ
    return save_module(tok.eval(), path, provenance={"steps": 7, "model_version": "audio t1", "chosen_on": "val 0.7"})


def test_prune_codebook_audio_counts_the_training_split_and_writes_a_smaller_tokenizer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmtok.audio.vocoder_data import build_cache
    from mmtok.cli import main as cli_main

    corpus, cache = tiny_corpus(tmp_path / "corpus"), tmp_path / "cache"
    build_cache(corpus, cache, progress=False)
    model = _tiny_audio_tokenizer(tmp_path / "tok")
    out = tmp_path / "small"
    argv = ["prune-codebook", "audio", "--model", str(model), "--cache", str(cache), "--keep", "12", "--out", str(out),
            "--synthetic", "4", "--synthetic-share", "0.25", "--synthetic-tones", "0.5", "--no-progress"]
    assert cli_main(argv) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["codebook_size_before"] == 32 and line["codebook_size"] == 12 and line["tokens_counted"] > 0
    small = mmtok.load(out)
    assert isinstance(small, AudioTokenizer) and small.codebook_size == 12
    rec = small.provenance["pruned"]
    assert small.provenance["steps"] == 7  # the tokenizer's own provenance is kept
    assert small.provenance["model_version"] == "audio t1, pruned to 12 codes"  # but it is another model now
    assert "chosen_on" not in small.provenance and rec["from_chosen_on"] == "val 0.7"
    assert rec["from_model_version"] == "audio t1"
    assert rec["counted_on"]["split"] == "train" and rec["counted_on"]["clips"] == 4
    assert rec["counted_on"]["synthetic_clips"] == 4 and rec["from_fingerprint"] == mmtok.load(model).fingerprint
    assert small.fingerprint != mmtok.load(model).fingerprint
    wave = torch.from_numpy(np.sin(np.linspace(0, 800, 16000)).astype(np.float32) * 0.3)
    codes = small.encode(wave, 16000)
    assert int(codes.max()) < 12 and small.decode(codes, vocoder="griffin-lim").numel() > 0
    assert 0 <= rec["unused_counted"] <= 32 and 0.0 <= rec["dropped_share_counted"] < 1.0

    with pytest.raises(SystemExit) as e:  # the same --out again: refused, the written one is kept
        cli_main(argv)
    assert e.value.code == 2 and "already exists" in capsys.readouterr().err and mmtok.load(out).codebook_size == 12


def test_prune_codebook_audio_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio.prune import main

    model = _tiny_audio_tokenizer(tmp_path / "tok")
    with pytest.raises(SystemExit) as e:
        main(["--model", str(model), "--cache", str(tmp_path), "--keep", "33", "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "--keep must be in 2..32" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # one code is no codebook
        main(["--model", str(model), "--cache", str(tmp_path), "--keep", "1", "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "--keep must be in 2..32" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--model", str(model), "--cache", str(tmp_path), "--keep", "3", "--out", str(model)])
    assert e.value.code == 2 and "already exists" in capsys.readouterr().err
    assert main(["--model", str(model), "--cache", str(tmp_path / "nocache"), "--keep", "3",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmtok: error: prune-codebook audio: ") and f"cache {tmp_path / 'nocache'}: no such folder" in err
    assert not (tmp_path / "o").exists()


def _tiny_image_corpus(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny image tokenizer and a folder of 3 photos listed in ``manifest.jsonl`` beside it (2 train, 1
    validation): (the tokenizer's folder, the photos' folder)."""
    data = tmp_path / "photos"
    data.mkdir()
    rows = []
    for i in range(3):
        save_smooth_picture(data / f"{i}.png", 96, seed=i)
        rows.append({"path": f"photos/{i}.png", "split": "train" if i < 2 else "validation"})
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = ImageTokenizer(tiny_config())
    tok.train()
    tok(torch.stack([smooth_picture(64, seed=s) for s in range(4)]))  # k-means init
    return save_module(tok.eval(), tmp_path / "tok", provenance={"steps": 3}), data


def test_prune_codebook_image_counts_training_crops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.image.prune import main

    model, data = _tiny_image_corpus(tmp_path)
    out = tmp_path / "small"
    assert main(["--model", str(model), "--data", str(tmp_path / "manifest.jsonl"), "--keep", "20", "--out", str(out),
                 "--crops", "40", "--no-progress"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["codebook_size"] == 20 and line["tokens_counted"] == 40 * 16
    small = mmtok.load(out)
    assert isinstance(small, ImageTokenizer) and small.codebook_size == 20
    counted = small.provenance["pruned"]["counted_on"]
    assert counted["split"] == "train" and counted["photos"] == 2 and counted["crops"] == 40
    codes = small.encode(smooth_picture(64, seed=9))
    assert codes.shape == (4, 4) and int(codes.max()) < 20
    assert small.decode(codes).shape == (3, 64, 64)
    # the same command with the same seed picks the same codes
    assert main(["--model", str(model), "--data", str(tmp_path / "manifest.jsonl"), "--keep", "20",
                 "--out", str(tmp_path / "again"), "--crops", "40", "--no-progress"]) == 0
    assert torch.equal(mmtok.load(tmp_path / "again").vq.embed, small.vq.embed)
    with pytest.raises(SystemExit):
        main(["--model", str(model), "--data", str(data), "--keep", "20", "--out", str(tmp_path / "x"),
              "--scale-min", "0"])


def test_prune_codebook_image_records_a_split_only_where_one_was_applied(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.image.prune import main

    model, data = _tiny_image_corpus(tmp_path)
    for split in ("validation", "train"):  # a folder has no splits: every --split is refused, before any work
        with pytest.raises(SystemExit) as e:
            main(["--model", str(model), "--data", str(data), "--split", split, "--keep", "20",
                  "--out", str(tmp_path / "x"), "--crops", "8", "--no-progress"])
        last = capsys.readouterr().err.strip().splitlines()[-1]  # the error, after argparse's usage
        assert e.value.code == 2 and f"error: --split {split} chooses photos from a manifest.jsonl" in last
        assert not (tmp_path / "x").exists()
    all_of = ["--model", str(model), "--data", str(data), "--keep", "20", "--out", str(tmp_path / "all"),
              "--crops", "8", "--no-progress"]
    with pytest.raises(SystemExit) as e:  # the manifest beside the folder holds one of its photos out
        main(all_of)
    assert e.value.code == 2 and "validation or test files of the corpus manifest" in capsys.readouterr().err
    (tmp_path / "manifest.jsonl").rename(tmp_path / "manifest.kept")
    assert main(all_of) == 0
    (tmp_path / "manifest.kept").rename(tmp_path / "manifest.jsonl")
    counted = mmtok.load(tmp_path / "all").provenance["pruned"]["counted_on"]
    assert "split" not in counted and counted["photos"] == 3  # every image of the folder
    assert main(["--model", str(model), "--data", str(tmp_path / "manifest.jsonl"), "--split", "validation",
                 "--keep", "20", "--out", str(tmp_path / "val"), "--crops", "8", "--no-progress"]) == 0
    counted = mmtok.load(tmp_path / "val").provenance["pruned"]["counted_on"]
    assert counted["split"] == "validation" and counted["photos"] == 1


@pytest.mark.parametrize("clips", ["0", "-1"])
def test_prune_codebook_audio_refuses_max_clips_below_one(clips: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio.prune import code_shares, main

    model = _tiny_audio_tokenizer(tmp_path / "tok")
    with pytest.raises(SystemExit) as e:
        main(["--model", str(model), "--cache", str(tmp_path), "--keep", "3", "--out", str(tmp_path / "o"),
              "--max-clips", clips])
    assert e.value.code == 2 and f"--max-clips must be at least 1 (got {clips})" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="max_clips must be at least 1"):
        code_shares(mmtok.load(model), None, max_clips=int(clips))  # type: ignore[arg-type]


def test_prune_codebook_audio_refuses_the_test_split_and_another_rate_and_says_what_builds_a_cache(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio.prune import main
    from mmtok.audio.vocoder_data import build_cache

    model, out = _tiny_audio_tokenizer(tmp_path / "tok"), tmp_path / "o"
    with pytest.raises(SystemExit) as e:  # a cache holds no test split: the choice is not offered
        main(["--model", str(model), "--cache", str(tmp_path), "--keep", "3", "--out", str(out), "--split", "test"])
    assert e.value.code == 2 and "invalid choice: 'test'" in capsys.readouterr().err
    assert main(["--model", str(model), "--cache", str(tmp_path / "nocache"), "--keep", "3", "--out", str(out)]) == 2
    said = capsys.readouterr().err  # the command the README gives, and no "not complete" for a missing folder
    assert f"cache {tmp_path / 'nocache'}: no such folder; build it with mmtok train-tokenizer vocoder --corpus CORPUS " \
           f"--cache {tmp_path / 'nocache'}" in said
    build_cache(tiny_corpus(tmp_path / "corpus"), tmp_path / "cache", progress=False)
    tok24 = save_module(AudioTokenizer(AudioTokenizerConfig(sample_rate=24000, vq=VQConfig(dim=160, codebook_size=8),
                                                            decoder_channels=8)), tmp_path / "tok24")
    assert main(["--model", str(tok24), "--cache", str(tmp_path / "cache"), "--keep", "3", "--out", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"--model {tok24} works at 24000 Hz" in err and "16000 Hz" in err and not out.exists()
