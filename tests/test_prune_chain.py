"""A pruned codebook and what stays true of it: its codes decode as the source's did, through every prune and
attach, until its decoder changes; what pruning counts and on which data; a cache cut short."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from image_helpers import save_smooth_picture, smooth_picture, tiny_config
from test_prune import _tiny_audio_tokenizer, _tiny_image_corpus
from test_vocoder import tiny_corpus, voiced

import mmtok
from mmtok.audio import vocoder_train
from mmtok.audio.attach import attach_vocoder
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder import Vocoder
from mmtok.audio.vocoder_config import VocoderConfig
from mmtok.audio.vocoder_joint import DecoderTuning
from mmtok.core.errors import CheckpointError, CorpusError
from mmtok.core.module_io import save_module
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.vq.prune import decodes_as, dropped_share, save_pruned
from mmtok.vq.quantizer import VQConfig

pytestmark = pytest.mark.usefixtures("one_thread")

VOCODER = VocoderConfig(dim=8, intermediate=16, blocks=1)


def _audio_tokenizer(folder: Path) -> tuple[Path, Path]:
    """A tiny audio tokenizer with a learned vocoder, and a vocoder checkpoint trained (so its provenance says) on
    that tokenizer's decoded log-mel: (the tokenizer's folder, the vocoder's folder)."""
    tok = AudioTokenizer(AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=32), decoder_channels=8,
                                              vocoder=VOCODER))
    tok.train()
    tok(torch.randn(4, 80, 40))  # k-means init, so the codes differ
    tok_dir = save_module(tok.eval(), folder / "tok", provenance={"steps": 3})
    voc = save_module(Vocoder(VOCODER), folder / "voc",
                      provenance={"features": "decoded", "tokenizer": {"fingerprint": tok.fingerprint}})
    return tok_dir, voc


def _by_use(n: int) -> torch.Tensor:
    """Code shares ``[n]`` falling with the index: the first codes are kept."""
    return torch.arange(n, 0, -1).double()


def test_a_vocoder_fits_every_prune_of_its_tokenizer_through_attaches(tmp_path: Path) -> None:
    tok_dir, voc = _audio_tokenizer(tmp_path)
    source = mmtok.load(tok_dir).fingerprint
    save_pruned(mmtok.load(tok_dir), _by_use(32), 24, tmp_path / "p1", source="tok", counted_on={})
    p1 = mmtok.load(tmp_path / "p1")
    assert decodes_as(p1) == [source] and p1.provenance["pruned"]["fingerprint"] == p1.fingerprint
    attach_vocoder(tmp_path / "p1", voc, tmp_path / "c1")
    c1 = mmtok.load(tmp_path / "c1")
    assert c1.fingerprint == p1.fingerprint and decodes_as(c1) == [source]  # read through the attach's record
    # the attached checkpoint's own vocoder, attached again (the level correction changed): by the command too
    attach_vocoder(tmp_path / "c1", tmp_path / "c1", tmp_path / "c2", mel_match=1)
    assert vocoder_train.main(["--attach", str(tmp_path / "c3"), "--vocoder", str(tmp_path / "c2"),
                               "--mel-match", "2"]) == 0
    assert decodes_as(mmtok.load(tmp_path / "c3")) == [source]
    # pruned again, from a pruned checkpoint and from an attached one: the whole chain is kept
    for start, name in ((tmp_path / "p1", "p2"), (tmp_path / "c2", "p2c")):
        save_pruned(mmtok.load(start), _by_use(24), 16, tmp_path / name, source=str(start), counted_on={})
        assert decodes_as(mmtok.load(tmp_path / name)) == [source, p1.fingerprint]
        attach_vocoder(tmp_path / name, voc, tmp_path / f"{name}-joined")
    assert decodes_as(mmtok.load(tok_dir)) == []


def test_a_tuned_decoder_ends_the_chain(tmp_path: Path) -> None:
    tok_dir, voc = _audio_tokenizer(tmp_path)
    save_pruned(mmtok.load(tok_dir), _by_use(32), 24, tmp_path / "p1", source="tok", counted_on={})
    attach_vocoder(tmp_path / "p1", voc, tmp_path / "c1")
    for start in ("p1", "c1"):  # a pruned checkpoint and an attached one, their decoder tuned through a vocoder
        tuning = DecoderTuning(mmtok.load(tmp_path / start), anchor=1.0)
        with torch.no_grad():
            for p in tuning.params:
                p.add_(0.05 * torch.randn_like(p))
        tuned = tuning.save(tmp_path / f"{start}-tuned", source=start, run=tmp_path, steps=1)
        assert decodes_as(mmtok.load(tuned)) == []
        with pytest.raises(CheckpointError, match="trained on the decoded log-mel of the tokenizer of fingerprint"):
            attach_vocoder(tuned, voc, tmp_path / "refused")
        assert not (tmp_path / "refused").exists()
    # a record written before pruned checkpoints named their own weights: its source, unless tuned since
    old = {"pruned": {"from_fingerprint": "a" * 16}}
    assert decodes_as(SimpleNamespace(fingerprint="b" * 16, provenance=old)) == ["a" * 16]  # type: ignore[arg-type]
    tuned_old = {**old, "decoder_tuned": {"steps": 1}}
    assert decodes_as(SimpleNamespace(fingerprint="b" * 16, provenance=tuned_old)) == []  # type: ignore[arg-type]


def test_pruned_codes_decode_as_the_source_did(tmp_path: Path) -> None:
    tok_dir, _ = _audio_tokenizer(tmp_path)
    tok = mmtok.load(tok_dir)
    wave = torch.from_numpy(voiced(1.0))
    codes = tok.encode(wave, 16000)
    used = torch.bincount(codes.flatten(), minlength=32).double()
    save_pruned(tok, used + 1e-3 * _by_use(32), 24, tmp_path / "small", source="tok", counted_on={})
    small = mmtok.load(tmp_path / "small")
    old_to_new = torch.full((32,), -1, dtype=torch.long)
    hit = (tok.vq.embed[:, None] == small.vq.embed[None]).all(-1).nonzero()
    old_to_new[hit[:, 0]] = hit[:, 1]
    assert torch.equal(small.encode(wave, 16000), old_to_new[codes])  # every code used is kept, renumbered
    kept = old_to_new.ge(0).nonzero().flatten()
    seq = kept[torch.randint(0, kept.numel(), (60,))]
    assert torch.equal(small.decode_features(old_to_new[seq]), tok.decode_features(seq))
    assert torch.equal(small.decode(old_to_new[seq]), tok.decode(seq))  # through the learned vocoder
    image = ImageTokenizer(tiny_config())
    image.train()
    image(torch.stack([smooth_picture(64, seed=s) for s in range(4)]))
    image.eval()
    picture = smooth_picture(64, seed=7)
    codes = image.encode(picture)
    share = torch.bincount(codes.flatten(), minlength=64).double()
    save_pruned(image, share, int(share.gt(0).sum()), tmp_path / "image", source="image", counted_on={})
    small_image = mmtok.load(tmp_path / "image")
    remap = torch.full((64,), -1, dtype=torch.long)
    remap[share.gt(0).nonzero().flatten()] = torch.arange(int(share.gt(0).sum()))
    assert torch.equal(small_image.encode(picture), remap[codes])
    assert torch.equal(small_image.decode(remap[codes]), image.decode(codes))


def test_spare_places_go_to_codes_encode_can_give_before_twins(tmp_path: Path) -> None:
    tok = ImageTokenizer(tiny_config())  # 64 codes
    with torch.no_grad():
        tok.vq.embed.copy_(torch.randn(64, 8))
        tok.vq.embed[1] = tok.vq.embed[0]  # exact twins: encode gives 0, never 1
        tok.vq.embed[3] = tok.vq.embed[2]
    share = torch.zeros(64, dtype=torch.float64)
    share[10:20] = 1.0  # ten codes used; four places to spare
    save_pruned(tok, share, 14, tmp_path / "small", source="t", counted_on={})
    small = mmtok.load(tmp_path / "small")
    assert torch.equal(small.vq.twin_table(), torch.arange(14))  # no code it can never give
    assert torch.equal(small.vq.embed[:4], tok.vq.embed[[0, 2, 4, 5]])


def test_dropped_share_counted_is_the_share_of_the_counted_tokens(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio.prune import code_shares, main
    from mmtok.audio.vocoder_data import AudioCache, build_cache

    tok = ImageTokenizer(tiny_config())
    share = torch.tensor([0.4, 0.3, 0.2, 0.1] + [0.0] * 60, dtype=torch.float64)  # weighted: codes 0, 1 kept
    counts = torch.tensor([10.0, 10.0, 70.0, 10.0] + [0.0] * 60, dtype=torch.float64)
    rec = save_pruned(tok, share, 2, tmp_path / "small", source="t", counted_on={}, counts=counts)
    assert rec["dropped_share_counted"] == pytest.approx(0.8) and rec["dropped_share_weighted"] == pytest.approx(0.3)
    build_cache(tiny_corpus(tmp_path / "corpus"), tmp_path / "cache", progress=False)
    model = _tiny_audio_tokenizer(tmp_path / "tok")
    weighted, counted, info = code_shares(mmtok.load(model), AudioCache(tmp_path / "cache", "train"), progress=False)
    assert int(counted.sum()) == info["tokens"] and float(counted.sum()) > 0
    assert main(["--model", str(model), "--cache", str(tmp_path / "cache"), "--keep", "6",
                 "--out", str(tmp_path / "pruned"), "--no-progress"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    kept = torch.sort(-weighted, stable=True).indices[:6]
    assert line["dropped_share_counted"] == pytest.approx(dropped_share(counted, kept), abs=1e-6)
    assert line["dropped_share_weighted"] == pytest.approx(dropped_share(weighted, kept), abs=1e-6)


def test_a_cache_cut_short_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio.prune import main
    from mmtok.audio.vocoder_data import AudioCache, build_cache

    cache = tmp_path / "cache"
    build_cache(tiny_corpus(tmp_path / "corpus"), cache, progress=False)
    data = cache / "train.int16"
    need = max(c.offset + c.length for c in AudioCache(cache, "train").clips)
    for size in (2 * need - 2, 2 * need + 1, 0):
        with open(data, "r+b") as f:
            f.truncate(size)
        with pytest.raises(CorpusError, match=rf"{data} holds {size} bytes.*need {need} samples.*build it again"):
            AudioCache(cache, "train")
    model = save_module(AudioTokenizer(AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=8),
                                                            decoder_channels=8)), tmp_path / "tok")
    assert main(["--model", str(model), "--cache", str(cache), "--keep", "3", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{data} holds 0 bytes" in err and not (tmp_path / "o").exists()
    data.unlink()
    with pytest.raises(CorpusError, match=f"{data} is missing"):
        AudioCache(cache, "train")
    assert AudioCache(cache, "validation").samples.size > 0


def test_prune_codebook_image_refuses_the_test_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.image.prune import main

    model, data = _tiny_image_corpus(tmp_path)
    save_smooth_picture(data / "t.png", 96, seed=5)
    with open(tmp_path / "manifest.jsonl", "a") as f:
        f.write(json.dumps({"path": "photos/t.png", "split": "test"}) + "\n")
    with pytest.raises(SystemExit) as e:
        main(["--model", str(model), "--data", str(tmp_path / "manifest.jsonl"), "--split", "test", "--keep", "20",
              "--out", str(tmp_path / "o"), "--crops", "8", "--no-progress"])
    assert e.value.code == 2 and "invalid choice: 'test'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
