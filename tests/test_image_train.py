"""The image tokenizer's trainer: ``mmtok train-tokenizer image`` and its crops of a corpus."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from image_helpers import save_smooth_picture, smooth_picture, tiny_config
from PIL import Image

import mmtok
from mmtok.core.errors import ImageError

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: one thread is steadier


def _train_args(tmp_path: Path, *extra: str) -> list[str]:
    """Arguments of a tiny ``train-tokenizer image`` run on three generated pictures, into ``tmp_path/run``."""
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        save_smooth_picture(data / f"{i}.png", 80, seed=i)
    (tmp_path / "cfg.json").write_text(json.dumps({k: v for k, v in asdict(tiny_config()).items() if k != "vq"}))
    return ["--data", str(data), "--out", str(tmp_path / "run"), "--batch-size", "2", "--crop", "32", "--config",
            str(tmp_path / "cfg.json"), "--base-side", "64", "--codebook-size", "64", "--latent-dim", "8",
            "--no-progress", "--init-crops", "64", *extra]


def test_train_command_writes_checkpoint_pictures_and_resumes(tmp_path: Path) -> None:
    from mmtok.image.train import main

    out = tmp_path / "run"
    cfg = tiny_config()
    common = _train_args(tmp_path, "--save-every", "2")
    assert main([*common, "--steps", "2"]) == 0
    assert (out / "model" / "model.safetensors").is_file() and (out / "reconstructions.png").is_file()
    assert main([*common, "--steps", "3", "--resume"]) == 0
    loaded = mmtok.load(out / "model")
    assert loaded.provenance["steps"] == 3 and loaded.codebook_size == 64
    from mmtok.cli import main as cli

    assert cli(["train-tokenizer", "image", *common, "--steps", "1"]) == 2  # a finished run is not redone (as mmtok train)
    assert mmtok.load(out / "model").provenance["steps"] == 3
    from mmtok.info import describe, format_info

    d = describe(out)  # mmtok info RUN
    assert d["what"] == "tokenizer run" and d["kind"] == "image" and d["step"] == 3 and d["steps"] == 3
    assert d["model"]["codebook_size"] == 64 and format_info(d).startswith(f"tokenizer run: {out}")
    assert loaded.cfg.enc_channels == cfg.enc_channels and loaded.cfg.dec_channels == cfg.dec_channels


def test_train_command_lengthens_schedule_and_rebalances_codebook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.core.schedule import warmup_cosine
    from mmtok.image.train import build_parser, lr_for, main

    args = build_parser().parse_args(["--data", "d", "--out", "o", "--steps", "20", "--lr", "1e-3", "--warmup", "4",
                                      "--lr-restart", "10"])
    assert lr_for(9, args) == warmup_cosine(9, peak=1e-3, warmup=4, total=20, floor=0.05e-3)  # before the restart: the plain schedule
    assert lr_for(10, args) == pytest.approx(0.25e-3)  # warmup again from the restart step
    assert lr_for(13, args) == pytest.approx(1e-3)  # peak after the warmup
    assert lr_for(20, args) == pytest.approx(0.05e-3)  # decays to 5 % at --steps

    out = tmp_path / "run"
    common = _train_args(tmp_path, "--save-every", "10", "--dead-code-rate", "0.2", "--rebalance-at", "2",
                         "--rebalance-crops", "64", "--rebalance-iters", "5")
    assert main([*common, "--steps", "3"]) == 0
    assert "step 2: codebook rebalanced on 64 crops (usage 100.0%)" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3
    loaded = mmtok.load(out / "model")
    assert loaded.cfg.vq.dead_code_rate == 0.2
    assert main([*common, "--steps", "4", "--resume", "--lr-restart", "3"]) == 0  # resumed past step 2: no new rebalance
    assert "rebalanced" not in capsys.readouterr().err


def test_train_command_init_from_copies_or_refits_the_quantizer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--init-from starts from a saved tokenizer: same quantizer shape -> everything copied;
    a low-dimensional cosine lookup -> encoder/decoder copied, a new whitened-PCA + k-means quantizer."""
    from mmtok.image.train import main

    common = _train_args(tmp_path, "--save-every", "1")
    assert main([*common, "--steps", "1"]) == 0
    first = mmtok.load(tmp_path / "run" / "model")
    again = [a if a != str(tmp_path / "run") else str(tmp_path / "same") for a in common]
    assert main([*again, "--steps", "1", "--init-from", str(tmp_path / "run" / "model"), "--lr", "1e-12"]) == 0
    assert "encoder, decoder and codebook from" in capsys.readouterr().err
    same = mmtok.load(tmp_path / "same" / "model")
    x = smooth_picture(64, seed=5)
    assert torch.allclose(same.encoder(x[None]), first.encoder(x[None]), atol=1e-4)  # lr ~0: weights unchanged
    knobs = [a if a != str(tmp_path / "run") else str(tmp_path / "knobs") for a in common]
    assert main([*knobs, "--steps", "1", "--init-from", str(tmp_path / "run" / "model"), "--lr", "1e-12",
                 "--dead-code-rate", "0.2"]) == 0  # only a training knob of the quantizer differs
    assert "encoder, decoder and codebook from" in capsys.readouterr().err
    knobbed = mmtok.load(tmp_path / "knobs" / "model")
    assert knobbed.cfg.vq.dead_code_rate == 0.2
    assert torch.equal(knobbed.encode(x), first.encode(x))  # the trained codebook was kept, not refitted

    cfg = json.loads((tmp_path / "cfg.json").read_text())
    (tmp_path / "cos.json").write_text(json.dumps({**cfg, "vq": {"codebook_dim": 4, "cosine": True}}))
    cos = [a if a not in (str(tmp_path / "run"), str(tmp_path / "cfg.json")) else
           str(tmp_path / ("cos" if a.endswith("run") else "cos.json")) for a in common]
    assert main([*cos, "--steps", "1", "--init-from", str(tmp_path / "run" / "model")]) == 0
    assert "new quantizer (4-d lookup) fitted by k-means" in capsys.readouterr().err
    low = mmtok.load(tmp_path / "cos" / "model")
    assert low.cfg.vq.codebook_dim == 4 and low.cfg.vq.cosine
    codes = low.encode(x)
    assert codes.shape == (4, 4) and low.decode(codes).shape == (3, 64, 64)
    (tmp_path / "wide.json").write_text(json.dumps({**cfg, "enc_channels": [8, 16, 48]}))
    swap = {str(tmp_path / "cos.json"): str(tmp_path / "wide.json"), str(tmp_path / "cos"): str(tmp_path / "wide")}
    wide = [swap.get(a, a) for a in cos]
    with pytest.raises(ImageError, match="encoder has another shape"):
        main([*wide, "--steps", "1", "--init-from", str(tmp_path / "run" / "model")])
    assert not (tmp_path / "wide").exists()  # refused before anything is written
    from mmtok.cli import main as cli

    assert cli(["train-tokenizer", "image", *wide, "--steps", "1", "--init-from", str(tmp_path / "nope")]) == 2
    assert (f"mmtok: error: --init-from {tmp_path / 'nope'}: no such folder" in capsys.readouterr().err
            and not (tmp_path / "wide").exists())


def test_decoder_only_grows_the_decoder_and_keeps_every_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--decoder-only from a tokenizer with a deeper dec_blocks: the new blocks start as the identity
    (same pictures), training moves the decoder alone, and the encoder and codebook, so the codes, stay."""
    from mmtok.image.init import grow_blocks
    from mmtok.image.train import main

    common = _train_args(tmp_path, "--save-every", "2")
    assert main([*common, "--steps", "2"]) == 0
    first = mmtok.load(tmp_path / "run" / "model")
    capsys.readouterr()
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    (tmp_path / "deep.json").write_text(json.dumps({**cfg, "dec_blocks": cfg["dec_blocks"] + 2}))
    swap = {str(tmp_path / "cfg.json"): str(tmp_path / "deep.json"), str(tmp_path / "run"): str(tmp_path / "deep")}
    deep = [swap.get(a, a) for a in common]

    grown = mmtok.ImageTokenizer(first.cfg.__class__(**{**asdict(first.cfg), "vq": first.cfg.vq,
                                                        "dec_blocks": first.cfg.dec_blocks + 2}))
    grown.encoder.load_state_dict(first.encoder.state_dict())
    grown.vq.load_state_dict(first.vq.state_dict())
    assert grow_blocks(grown.decoder, first.decoder) == 2
    codes = first.encode(smooth_picture(64, seed=9))
    assert torch.allclose(grown.decode(codes), first.decode(codes), atol=1e-6)  # identity blocks: same picture

    assert main([*deep, "--steps", "4", "--init-from", str(tmp_path / "run" / "model"), "--decoder-only",
                 "--lr", "3e-3", "--warmup", "1"]) == 0
    assert "2 new identity blocks on the code grid" in capsys.readouterr().err
    trained = mmtok.load(tmp_path / "deep" / "model")
    assert trained.cfg.dec_blocks == first.cfg.dec_blocks + 2 and trained.provenance["decoder_only"] is True
    for name, value in first.encoder.state_dict().items():
        assert torch.equal(trained.encoder.state_dict()[name], value), name
    assert torch.equal(trained.vq.codebook, first.vq.codebook)
    pics = torch.stack([smooth_picture(64, seed=s) for s in (3, 4)])
    assert torch.equal(trained.encode(pics), first.encode(pics))  # every picture keeps its codes
    assert not torch.allclose(trained.decode(codes), first.decode(codes), atol=1e-4)  # the decoder learned
    assert main([*deep, "--steps", "5", "--resume", "--decoder-only"]) == 0  # resumes frozen
    assert torch.equal(mmtok.load(tmp_path / "deep" / "model").vq.codebook, first.vq.codebook)

    with pytest.raises(SystemExit):
        main([*deep, "--steps", "1", "--decoder-only"])  # nothing to take the codes from
    assert "give --init-from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*deep, "--steps", "1", "--decoder-only", "--init-from", str(tmp_path / "deep" / "model"),
              "--rebalance-at", "1"])
    assert "keeps the codebook as it is" in capsys.readouterr().err
    (tmp_path / "levels.json").write_text(json.dumps({**cfg, "dec_level_blocks": cfg["dec_level_blocks"] + 1}))
    swap = {str(tmp_path / "deep.json"): str(tmp_path / "levels.json"), str(tmp_path / "deep"): str(tmp_path / "lv")}
    levels = [swap.get(a, a) for a in deep]
    with pytest.raises(ImageError, match="it may only grow by dec_blocks"):
        main([*levels, "--steps", "1", "--init-from", str(tmp_path / "run" / "model")])
    assert not (tmp_path / "lv").exists()


def test_freeze_codes_holds_a_low_dimensional_lookups_projections() -> None:
    """--decoder-only's freeze also covers the codebook's in-projection: with a 4-d cosine lookup
    the commitment loss would otherwise move it, and with it every code."""
    import dataclasses

    from mmtok.core.trainstate import freeze_codes

    cfg = tiny_config()
    tok = mmtok.ImageTokenizer(dataclasses.replace(cfg, vq=dataclasses.replace(cfg.vq, codebook_dim=4, cosine=True,
                                                                              kmeans_init=False)))
    tok.train()
    freeze_codes(tok)
    out = tok(torch.stack([smooth_picture(64, seed=s) for s in (1, 2)]))
    out.losses["total"].backward()
    assert not tok.encoder.training and not tok.vq.training
    assert all(p.grad is None for p in [*tok.encoder.parameters(), *tok.vq.parameters()])
    assert any(p.grad is not None for p in tok.decoder.parameters())


# --------------------------------------------------------------------------- zoomed crops of large images


def _stripes(h: int, w: int, period: int) -> torch.Tensor:
    """uint8 ``[3, h, w]`` of vertical black/white stripes ``period`` pixels wide: detail that downscaling blurs."""
    col = ((torch.arange(w) // period) % 2 * 255).to(torch.uint8)
    return col.expand(3, h, w).clone()


def test_load_corpus_keeps_large_images_up_to_max_zoom(tmp_path: Path) -> None:
    from mmtok.image.crops import load_corpus

    big, small = tmp_path / "big.png", tmp_path / "small.png"
    Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(big)
    Image.fromarray(np.zeros((80, 100, 3), np.uint8)).save(small)
    assert [tuple(c.shape) for c in load_corpus([big, small], 120)] == [(3, 120, 160), (3, 120, 150)]
    assert [tuple(c.shape) for c in load_corpus([big, small], 120, max_zoom=2)] == [(3, 240, 320), (3, 120, 150)]
    assert tuple(load_corpus([big], 120, max_zoom=10)[0].shape) == (3, 480, 640)  # never enlarged past its own size
    with pytest.raises(ValueError, match="max_zoom"):
        load_corpus([big], 120, max_zoom=0.5)


def test_random_crops_of_a_larger_copy_match_the_base_scale_unless_zoomed() -> None:
    from mmtok.image.crops import random_crops

    smooth = (smooth_picture(256, seed=3) * 255).round().to(torch.uint8)
    half = torch.nn.functional.interpolate(smooth[None].float(), size=(128, 128), mode="bicubic", antialias=True)
    half = half[0].round().clamp(0, 255).to(torch.uint8)
    kw = dict(scale=(0.5, 1.0), flip=False, base_side=128)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    at_base = random_crops([half], 12, 32, generator=g1, **kw)
    stored_big = random_crops([smooth], 12, 32, generator=g2, **kw)  # stored at 2x base: same views
    assert (at_base - stored_big).abs().mean() < 0.01
    assert torch.equal(torch.randint(0, 9, (5,), generator=g1), torch.randint(0, 9, (5,), generator=g2))
    no_base = random_crops([half], 12, 32, scale=(0.5, 1.0), flip=False, generator=torch.Generator().manual_seed(7))
    assert torch.equal(no_base, at_base)  # a corpus stored at base_side: the crops of earlier versions, bit for bit

    stripes = _stripes(256, 256, period=1)  # alternating columns, stored at 4x a 64 base side
    kw = dict(scale=(1.0, 1.0), base_side=64, generator=torch.Generator().manual_seed(0))
    plain = random_crops([stripes], 64, 32, zoom_prob=0.0, **kw).std(dim=(1, 2, 3))  # (64,) contrast per crop
    sharp = random_crops([stripes], 64, 32, zoom_prob=1.0, **kw).std(dim=(1, 2, 3))
    assert plain.max() < 0.05  # seen at the base scale, 4x smaller: the stripes average out to gray
    assert sharp.mean() > 3 * plain.mean() and sharp.max() > 0.3  # zoomed in: the detail shows


def test_train_command_zoom_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.image.train import main

    common = _train_args(tmp_path, "--save-every", "2")
    assert main([*common, "--steps", "2", "--zoom-max", "2", "--zoom-prob", "0.5"]) == 0
    assert "--zoom-max 2" in mmtok.load(tmp_path / "run" / "model").provenance["command"]
    with pytest.raises(SystemExit) as err:
        main([*common, "--steps", "2", "--zoom-max", "0.5"])
    assert err.value.code == 2 and "--zoom-max must be >= 1" in capsys.readouterr().err


def test_random_crops_rotate_turns_the_same_crops_by_quarter_turns() -> None:
    from mmtok.image.crops import random_crops

    picture = (smooth_picture(96, seed=5) * 255).round().to(torch.uint8)
    picture[:, :8] = 255  # a bright band on top: every turn of a crop looks different
    kw = dict(scale=(0.6, 1.0), base_side=96)
    plain = random_crops([picture], 40, 32, generator=torch.Generator().manual_seed(4), **kw)
    turned = random_crops([picture], 40, 32, generator=torch.Generator().manual_seed(4), rotate=True, **kw)
    turns = []
    for p, t in zip(plain, turned, strict=True):
        matches = [k for k in range(4) if torch.equal(p.rot90(k, (-2, -1)), t)]
        assert len(matches) == 1  # the same crop (position, scale, flip), turned by one quarter-turn count
        turns.append(matches[0])
    assert set(turns) == {0, 1, 2, 3}


def test_train_command_rotate_option(tmp_path: Path) -> None:
    from mmtok.image.crops import train_crops
    from mmtok.image.train import build_parser, main

    common = _train_args(tmp_path, "--save-every", "2")
    assert main([*common, "--steps", "2", "--rotate"]) == 0
    assert "--rotate" in mmtok.load(tmp_path / "run" / "model").provenance["command"]
    corpus = [(smooth_picture(64, seed=1) * 255).to(torch.uint8)]
    args = build_parser().parse_args(common[:4])
    assert args.rotate is False
    again = build_parser().parse_args([*common[:4], "--rotate"])
    a = train_crops(corpus, 8, args, generator=torch.Generator().manual_seed(0))
    b = train_crops(corpus, 8, again, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(a, b) and torch.allclose(a.sum(dim=(1, 2, 3)), b.sum(dim=(1, 2, 3)), atol=1e-3)


# --------------------------------------------------------------------------- synthetic dead-leaves pictures


def test_dead_leaves_pictures_are_seeded_and_take_palette_colours() -> None:
    from mmtok.synth.dead_leaves import dead_leaves

    a = dead_leaves(48, generator=torch.Generator().manual_seed(0))
    b = dead_leaves(48, generator=torch.Generator().manual_seed(0))
    c = dead_leaves(48, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 48, 48) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    # red and blue only: shading scales a colour and antialiasing mixes two, so green never appears
    palette = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    rb = dead_leaves(64, palette=palette, generator=torch.Generator().manual_seed(2)).float()
    assert rb[1].max() == 0
    assert (rb[0] > 200).float().mean() > 0.1 and (rb[2] > 200).float().mean() > 0.1  # both colours show
    bare = dead_leaves(32, palette=palette, leaves=0, generator=torch.Generator().manual_seed(3))
    assert bare.float().std(dim=(1, 2)).max() == 0  # no disc: one flat ground colour
    full = dead_leaves(32, palette=palette, generator=torch.Generator().manual_seed(3)).float()
    assert (full[[0, 2]].std(dim=(1, 2)) > 30).all()  # many discs of both colours


def test_training_pictures_take_corpus_colours_and_follow_the_seed() -> None:
    from mmtok.synth.dead_leaves import training_pictures

    red = torch.zeros(3, 40, 40, dtype=torch.uint8)
    red[0] = 255
    blue = torch.zeros(3, 40, 40, dtype=torch.uint8)
    blue[2] = 255
    a = training_pictures([red, blue], 2, 32, seed=5)
    assert len(a) == 2 and all(p.shape == (3, 32, 32) for p in a)
    assert all(torch.equal(x, y) for x, y in zip(a, training_pictures([red, blue], 2, 32, seed=5), strict=True))
    assert not torch.equal(a[0], training_pictures([red, blue], 1, 32, seed=6)[0])
    assert all(p[1].max() == 0 for p in a)  # only the corpus's red and blue, shaded and mixed


def test_dead_leaves_bad_arguments() -> None:
    from mmtok.synth.dead_leaves import dead_leaves

    with pytest.raises(ValueError, match="side"):
        dead_leaves(1)
    with pytest.raises(ValueError, match="r_min"):
        dead_leaves(32, r_min=20, r_max=10)
    with pytest.raises(ValueError, match="palette"):
        dead_leaves(32, palette=torch.rand(4, 4))
    with pytest.raises(ValueError, match="texture_prob"):
        dead_leaves(32, texture_prob=2.0)


def test_train_command_synthetic_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.image.train import main

    common = _train_args(tmp_path, "--save-every", "2")
    assert main([*common, "--steps", "2", "--synthetic", "2"]) == 0
    model = mmtok.load(tmp_path / "run" / "model")
    assert "--synthetic 2" in model.provenance["command"]
    assert model.provenance["data"]["synthetic_dead_leaves"] == 2
    with pytest.raises(SystemExit) as err:
        main([*common, "--steps", "2", "--synthetic", "-1"])
    assert err.value.code == 2 and "--synthetic must be at least 0" in capsys.readouterr().err


def test_train_command_refuses_a_corrupt_image_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main as cli

    args = _train_args(tmp_path, "--rotate", "--synthetic", "1")
    (tmp_path / "data" / "bad.png").write_bytes(b"not an image")
    assert cli(["train-tokenizer", "image", *args, "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "bad.png" in err and "not an image" in err
    assert not (tmp_path / "run").exists()  # nothing written


def test_train_command_reads_a_manifest_split_and_adds_an_ssim_term(tmp_path: Path) -> None:
    """``--data manifest.jsonl --split train`` trains on that split only; ``--ssim-weight`` is recorded."""
    from mmtok.image.crops import find_images
    from mmtok.image.train import main

    args = _train_args(tmp_path)
    data = tmp_path / "data"
    entries = [{"path": f"data/{i}.png", "split": split} for i, split in enumerate(["train", "validation", "train"])]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert [p.name for p in find_images(manifest)] == ["0.png", "2.png"]
    assert [p.name for p in find_images(manifest, split="validation")] == ["1.png"]
    with pytest.raises(FileNotFoundError, match="split 'test'"):
        find_images(manifest, split="test")
    args[args.index(str(data))] = str(manifest)
    assert main([*args, "--steps", "2", "--ssim-weight", "0.5"]) == 0
    prov = mmtok.load(tmp_path / "run" / "model").provenance
    assert prov["data"]["files"] == ["data/0.png", "data/2.png"] and prov["data"]["split"] == "train"
    assert prov["ssim_weight"] == 0.5


def test_a_bad_manifest_line_is_a_clear_error(tmp_path: Path) -> None:
    from mmtok.image.crops import find_images

    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"path": "a.png", "split": "train"}\n{"path": "b.png"}\n')
    with pytest.raises(ImageError, match=r'manifest.jsonl:2: needs "split" \(train, validation or test\), got null'):
        find_images(manifest)
    manifest.write_text('{"path": "a.png", "split": "train"}\n{"path": "a.png", "split": "test"}\n')
    with pytest.raises(ImageError, match=r"manifest.jsonl:2: a.png is listed in test here and in train at line 1"):
        find_images(manifest)  # a held-out photo that is trained on


def test_init_from_grows_the_encoder_and_starts_from_the_same_codes(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """--init-from with a deeper enc_blocks: the new encoder block starts as the identity, so every
    picture first gets the source's codes and pictures; then the whole model trains, encoder included."""
    from mmtok.image.init import grow_blocks
    from mmtok.image.train import main

    common = _train_args(tmp_path, "--save-every", "2")
    assert main([*common, "--steps", "2"]) == 0
    first = mmtok.load(tmp_path / "run" / "model")
    capsys.readouterr()
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    (tmp_path / "enc.json").write_text(json.dumps({**cfg, "enc_blocks": cfg["enc_blocks"] + 1}))
    swap = {str(tmp_path / "cfg.json"): str(tmp_path / "enc.json"), str(tmp_path / "run"): str(tmp_path / "enc")}
    grown_args = [swap.get(a, a) for a in common]

    grown = mmtok.ImageTokenizer(first.cfg.__class__(**{**asdict(first.cfg), "vq": first.cfg.vq,
                                                        "enc_blocks": first.cfg.enc_blocks + 1}))
    assert grow_blocks(grown.encoder, first.encoder) == 1
    assert grow_blocks(grown.decoder, first.decoder) == 0
    grown.vq.load_state_dict(first.vq.state_dict())
    pics = torch.stack([smooth_picture(64, seed=s) for s in (3, 4)])
    assert torch.equal(grown.encode(pics), first.encode(pics))  # identity block: the same codes
    with pytest.raises(ImageError, match="not by extra blocks"):
        grow_blocks(first.encoder, grown.encoder)  # shrinking is not growing: the extra block has nowhere to go

    assert main([*grown_args, "--steps", "4", "--init-from", str(tmp_path / "run" / "model"),
                 "--lr", "3e-3", "--warmup", "1"]) == 0
    assert "encoder (and 1 new identity block on the code grid), decoder and codebook" in capsys.readouterr().err
    trained = mmtok.load(tmp_path / "enc" / "model")
    assert trained.cfg.enc_blocks == first.cfg.enc_blocks + 1
    new_block = trained.encoder.blocks[-1].conv2.weight
    assert new_block.abs().sum() > 0  # the new block trained away from the identity


def test_init_from_without_config_takes_the_source_shape_and_codebook(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """--init-from without --config builds the source's shape and codebook (not the defaults), so
    --decoder-only keeps every code; a --codebook-size that would refit the codebook is refused there."""
    from mmtok.image.train import main

    common = _train_args(tmp_path, "--save-every", "2")
    assert main([*common, "--steps", "2"]) == 0
    first = mmtok.load(tmp_path / "run" / "model")
    drop = {"--config", "--codebook-size", "--latent-dim"}  # flags whose value goes with them
    bare = [a for i, a in enumerate(common) if a not in drop and (i == 0 or common[i - 1] not in drop)]
    bare[bare.index(str(tmp_path / "run"))] = str(tmp_path / "dec")
    capsys.readouterr()
    src = str(tmp_path / "run" / "model")
    assert main([*bare, "--steps", "2", "--init-from", src, "--decoder-only", "--lr", "3e-3", "--warmup", "1"]) == 0
    assert "encoder, decoder and codebook from" in capsys.readouterr().err
    dec = mmtok.load(tmp_path / "dec" / "model")
    assert dec.cfg == first.cfg and torch.equal(dec.vq.codebook, first.vq.codebook)
    pics = torch.stack([smooth_picture(64, seed=s) for s in (5, 6)])
    assert torch.equal(dec.encode(pics), first.encode(pics))
    # resumed, it rebuilds the same shape from its own state
    assert main([*bare, "--steps", "4", "--init-from", src, "--decoder-only", "--resume"]) == 0
    assert mmtok.load(tmp_path / "dec" / "model").cfg == first.cfg

    bare[bare.index(str(tmp_path / "dec"))] = str(tmp_path / "refit")
    with pytest.raises(ImageError, match="--decoder-only keeps the codes"):
        main([*bare, "--steps", "2", "--init-from", src, "--decoder-only", "--codebook-size", "32"])
    assert not (tmp_path / "refit").exists()


def test_a_partial_config_changes_only_its_fields_of_the_init_from_model(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """--config {"dec_blocks": N} with --init-from grows the decoder and keeps everything else of the source,
    its codebook included, so --decoder-only keeps every code (before, the defaults filled the other fields)."""
    from mmtok.image.train import main

    common = _train_args(tmp_path, "--save-every", "2")
    assert main([*common, "--steps", "2"]) == 0
    first = mmtok.load(tmp_path / "run" / "model")
    (tmp_path / "grow.json").write_text(json.dumps({"dec_blocks": first.cfg.dec_blocks + 1}))
    drop = {"--config", "--codebook-size", "--latent-dim"}
    bare = [a for i, a in enumerate(common) if a not in drop and (i == 0 or common[i - 1] not in drop)]
    bare[bare.index(str(tmp_path / "run"))] = str(tmp_path / "grown")
    capsys.readouterr()
    assert main([*bare, "--steps", "2", "--init-from", str(tmp_path / "run" / "model"), "--decoder-only",
                 "--config", str(tmp_path / "grow.json"), "--lr", "3e-3", "--warmup", "1"]) == 0
    grown = mmtok.load(tmp_path / "grown" / "model")
    assert grown.cfg == dataclasses.replace(first.cfg, dec_blocks=first.cfg.dec_blocks + 1)
    assert torch.equal(grown.vq.codebook, first.vq.codebook)
    pics = torch.stack([smooth_picture(64, seed=s) for s in (5, 6)])
    assert torch.equal(grown.encode(pics), first.encode(pics))


def test_weight_average_is_exported_and_resumes_on_the_same_curve(tmp_path: Path) -> None:
    """--ema-decay: OUT/model holds the average, the train state the live weights; 2 + 2 resumed steps give
    the 4-step run's average exactly, --ema-decay left out taking the run's; another one is refused."""
    from safetensors.torch import load_file

    from mmtok.core.ema import PREFIX
    from mmtok.core.errors import ResumeMismatchError
    from mmtok.image.train import main

    # the first 2 steps in warmup: the same rates whatever --steps the cosine ends at
    plain = _train_args(tmp_path, "--save-every", "2", "--seed", "3", "--lr", "3e-3", "--warmup", "2")
    common = [*plain, "--ema-decay", "0.5"]
    out = tmp_path / "run"
    assert main([*common, "--steps", "4"]) == 0
    model = load_file(str(out / "model" / "model.safetensors"))
    live = load_file(str(out / "train-state" / "model.safetensors"))
    side = load_file(str(out / "train-state" / "optimizer.safetensors"))
    averaged = {k[len("extra." + PREFIX):]: v for k, v in side.items() if k.startswith("extra." + PREFIX)}
    assert averaged and all(torch.equal(model[k], v) for k, v in averaged.items())
    assert any(not torch.equal(model[k], live[k]) for k in averaged)  # the export is not the last step's weights
    assert all(torch.equal(model[k], live[k]) for k in model if k not in averaged)  # buffers (the codebook) are live
    assert json.loads((out / "model" / "config.json").read_text())["provenance"]["ema_decay"] == 0.5

    again = tmp_path / "again"
    args2 = [a if a != str(out) else str(again) for a in common]
    plain2 = [a if a != str(out) else str(again) for a in plain]
    assert main([*args2, "--steps", "2"]) == 0
    assert main([*plain2, "--steps", "4", "--resume"]) == 0  # --ema-decay left out: the run's (as --lr)
    resumed = load_file(str(again / "model" / "model.safetensors"))
    assert all(torch.allclose(resumed[k], model[k], atol=1e-6) for k in model)
    assert json.loads((again / "model" / "config.json").read_text())["provenance"]["ema_decay"] == 0.5
    for other in ("0.7", "0"):  # another one given is refused by its flag and values
        with pytest.raises(ResumeMismatchError, match=rf": --ema-decay {other} \(the run's: 0\.5\); a resumed run keeps"):
            main([*plain2, "--steps", "5", "--resume", "--ema-decay", other])
    with pytest.raises(SystemExit):
        main([*plain2, "--steps", "1", "--ema-decay", "1.0"])
