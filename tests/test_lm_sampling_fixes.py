"""Sampling, MFU peak, 3-D packing and ``mmtok train`` options: the vocabulary a model was trained on,
a vanishing temperature, an empty prompt, BPE text that stays valid UTF-8, whole GPU model names, grid
leads found without scanning documents back, seeds and devices refused in one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmtok.core.errors import UsageError, VocabularyError
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.lm.sample import generate
from mmtok.stream.interleave import Interleaver
from mmtok.stream.vocab import Vocabulary

VOCAB = Vocabulary(256, ranges={"image": 8, "audio": 16})


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(replace(ModelConfig.preset("tiny", vocab_size=VOCAB.size), max_seq_len=128)).eval()


def test_generate_refuses_an_interleaver_of_another_size(model: Transformer) -> None:
    il = Interleaver(Vocabulary(256, ranges={"image": 64, "audio": 32}))
    with pytest.raises(UsageError, match="has 384 ids but the model's has 312") as e:
        generate(model, il, "hi", force="image", image_grid=(2, 2), seed=0)
    assert "\n" not in str(e.value)


def test_generate_refuses_another_layout_of_the_same_size_when_the_model_knows_its_vocab(model: Transformer) -> None:
    assert model.vocab is None  # a model built here knows only its size
    swapped = Interleaver(Vocabulary(256, ranges={"image": 16, "audio": 8}))
    model.vocab = VOCAB  # what load_run gives a run's model
    try:
        with pytest.raises(VocabularyError, match="image range size: 8 vs 16"):
            generate(model, swapped, "hi", force="image", image_grid=(2, 2), seed=0)
        il = Interleaver(VOCAB)
        (ids,) = generate(model, il, "hi", force="image", image_grid=(2, 2), seed=0)
        assert il.decode(_closed(ids, il))[-1]["image_codes"].shape == (2, 2)
    finally:
        model.vocab = None


def test_a_vanishing_temperature_is_greedy(model: Transformer) -> None:
    il = Interleaver(VOCAB)
    greedy = generate(model, il, "hi", max_new_tokens=10, temperature=0)
    for t in (1e-39, 1e-45):
        assert torch.equal(generate(model, il, "hi", max_new_tokens=10, temperature=t, seed=0)[0], greedy[0])


def test_an_empty_prompt_without_bos_is_refused_in_one_line(model: Transformer) -> None:
    with pytest.raises(UsageError, match="the prompt is empty") as e:
        generate(model, Interleaver(VOCAB, bos=False), "", max_new_tokens=5, seed=0)
    assert "\n" not in str(e.value)
    assert len(generate(model, Interleaver(VOCAB, bos=False), "a", max_new_tokens=3, seed=0)[0]) >= 2


def _closed(ids: torch.Tensor, il: Interleaver) -> torch.Tensor:
    """A sample cut short by its budget, ended with ``<eos>`` as the document it is."""
    return ids if int(ids[-1]) == il.EOS else torch.cat([ids, torch.tensor([il.EOS])])


def test_free_running_bpe_samples_are_valid_utf8() -> None:
    from mmtok.lm.grammar import Grammar, utf8_transitions
    from mmtok.stream.text import train_bpe

    bpe = train_bpe(["héllo wörld café naïve 日本語 テキスト 🎉"] * 50, vocab_size=300)
    vocab = Vocabulary(bpe.vocab_size, ranges={"image": 16})
    il = Interleaver(vocab, text=bpe)
    torch.manual_seed(0)
    m = Transformer(replace(ModelConfig.preset("tiny", vocab_size=vocab.size), max_seq_len=128)).eval()
    outs = generate(m, il, "hello", max_new_tokens=40, num_samples=20, seed=0, image_grid=(2, 2), temperature=1.5)
    assert len(outs) == 20
    for ids in outs:
        il.decode(_closed(ids, il))  # strict: raises on text that is not UTF-8
    # an id whose bytes are invalid UTF-8 wherever it stands is never allowed
    after = utf8_transitions(bpe, bpe.vocab_size)
    dead = [i for i in range(bpe.vocab_size) if bpe.ids_to_bytes(np.array([i])) == b"\xff"]
    assert dead and (after[dead] == after.shape[1]).all()
    g = Grammar(il, image_grid=(2, 2))
    assert not any(bool(g.text[st][dead[0]]) for st in range(after.shape[1]))


def test_byte_grammar_allows_what_starts_a_character() -> None:
    from mmtok.lm.grammar import _UTF8_LEAD, Grammar

    il = Interleaver(VOCAB)
    g = Grammar(il, image_grid=(2, 2))
    state = g.start(1)
    text = set(torch.nonzero(g.allowed(state)[:256]).flatten().tolist())
    assert text == set(range(0x80)) | set(_UTF8_LEAD)
    g.advance(state, 0xF0)  # a 4-byte character: its next byte in [0x90, 0xBF], then two in [0x80, 0xBF]
    assert torch.nonzero(g.allowed(state)).flatten().tolist() == list(range(0x90, 0xC0))
    assert not g.allowed(g.start(1), 3)[0xF0] and g.allowed(g.start(1), 4)[0xF0]  # it takes 4 tokens to close


def test_segment_cost_has_one_implementation() -> None:
    from mmtok.lm.grammar import Grammar, audio_segment_len, image_segment_len
    from mmtok.lm.model import AUDIO_TOKENS, IMAGE_TOKENS
    from mmtok.lm.sample import segment_cost

    g = Grammar(Interleaver(VOCAB), image_grid=(3, 5), audio_tokens=(7, 9))
    assert g.image_cost == image_segment_len(3, 5) == segment_cost("image", (3, 5), (7, 9)) == 3 * 6 + 2
    assert g.audio_cost == audio_segment_len(7) == segment_cost("audio", (3, 5), (7, 9)) == 9
    assert (IMAGE_TOKENS, AUDIO_TOKENS) == (image_segment_len(16, 16), audio_segment_len(50))


@pytest.mark.parametrize(("name", "tflops"), [
    ("NVIDIA L40S", 362.0), ("NVIDIA L40", 181.0), ("NVIDIA L4", 121.0), ("NVIDIA RTX A1000", None),
    ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0),
    ("NVIDIA A10G", None), ("NVIDIA A10", 125.0), ("Some Future GPU", None),
])
def test_mfu_peak_matches_whole_model_names(monkeypatch: pytest.MonkeyPatch, name: str, tflops: float | None) -> None:
    from mmtok.lm.peak import peak_flops

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    peak, note = peak_flops(torch.device("cuda"))
    assert peak == (None if tflops is None else tflops * 1e12)
    assert name in note


def _old_grid_lead(ds, a: int, chunk: int = 64) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The full scan back to the document's start (small chunks: many of them per document)."""
    doc_start = int(ds._doc_starts[np.searchsorted(ds._doc_starts, a, side="right") - 1])
    hi = a
    while hi > doc_start and ds._grid_ids.size:
        lo = max(doc_start, hi - chunk)
        part = ds._slice(lo, hi)
        marks = np.flatnonzero(np.isin(part, ds._grid_ids))
        if marks.size:
            last = lo + int(marks[-1])
            return ds._slice(last, a) if int(part[marks[-1]]) in ds._openers else np.zeros(0, np.int64)
        hi = lo
    return np.zeros(0, np.int64)


def _shards(folder: Path, docs: list[list[object]], shard_tokens: int) -> Path:
    from mmtok.data.corpus import tokenize_corpus
    from mmtok.data.tokenizer_spec import TokenizerSpec

    (folder / "docs.jsonl").write_text("".join(json.dumps({"segments": d}) + "\n" for d in docs))
    spec = TokenizerSpec(image="tests.test_interleave:PaletteImages")
    return tokenize_corpus(folder / "docs.jsonl", folder / "shards", tokenizers=spec, shard_tokens=shard_tokens)


def test_grid_lead_is_the_full_scans(tmp_path: Path) -> None:
    from mmtok.data.packing import PackedDataset

    rng = np.random.default_rng(0)
    (tmp_path / "media").mkdir()
    for k in range(6):
        h, w = (int(x) * 16 for x in rng.integers(1, 7, 2))
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"media/{k}.png")
    docs = [[str(rng.choice(list("abc ")) * int(rng.integers(1, 300))) if rng.random() < 0.5
             else {"image": f"media/{int(rng.integers(6))}.png"} for _ in range(int(rng.integers(1, 8)))]
            for _ in range(40)]
    _shards(tmp_path, docs, shard_tokens=700)
    ds = PackedDataset(tmp_path / "shards", 37, positions_3d=True, shuffle=False)
    assert len(ds.shards.tokens) > 3
    points = np.unique(np.concatenate([rng.integers(0, ds.num_tokens, 1500), np.arange(0, ds.num_tokens, 37)]))
    inside = 0
    for a in points.tolist():
        new, old = ds._grid_lead(a), _old_grid_lead(ds, a)
        assert np.array_equal(new, old), a
        inside += new.size > 0
    assert inside > 100  # many windows start inside a picture


def test_a_window_deep_in_a_long_document_reads_only_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.data.packing import PackedDataset

    (tmp_path / "media").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "media/a.png")
    _shards(tmp_path, [["a picture", {"image": "media/a.png"}], ["ab " * 40_000]], shard_tokens=1 << 20)
    from mmtok.data.shard_ids import ShardFile

    ds = PackedDataset(tmp_path / "shards", 64, positions_3d=True, shuffle=False)
    for s in range(len(ds.shards.tokens)):
        ds._grid_marks(s)  # each shard's grid marks: found once, by one read of the whole shard, and kept
    reads: list[int] = []
    read = ShardFile.read
    monkeypatch.setattr(ShardFile, "read", lambda self, a, b: reads.append(b - a) or read(self, a, b))
    w = ds.window(ds.num_windows - 2)
    assert 0 < sum(reads) <= 2 * 65  # the window and its one target past it, not its document back to the start
    assert w["pos"][:, 0].tolist() == w["pos"][:, 1].tolist()  # text: time = row = column


@pytest.mark.parametrize(("flag", "said"), [
    (["--device", "gpu"], "--device 'gpu' is not a device"),
    (["--seed", "-1"], "--seed: must be a whole number in [0, 4294967295], got -1"),
    (["--seed", str(2**32)], f"got {2**32}"),
])
def test_train_command_refuses_bad_device_and_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   flag: list[str], said: str) -> None:
    from mmtok.lm.command import main

    with pytest.raises(SystemExit) as e:
        main(["--data", str(tmp_path / "shards"), "--out", str(tmp_path / "run"), *flag])
    assert e.value.code == 2 and said in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
