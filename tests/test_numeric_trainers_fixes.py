"""Numbers that trainers, sampling and the stream take: a diverging tokenizer or vocoder run stopped at the
step whose weights went non-finite (or whose encoder overflowed), with the trainer's own message and the state
it can resume from; learning rates and weight decays past what float32 AdamW steps with refused before any
work; temperatures float32 cannot hold; a batch given to Interleaver.stream/decode; PackedDataset's seq_len."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mmtok.cli import main as cli
from mmtok.core.errors import StreamError, TrainingError
from mmtok.core.ranges import FLOAT32_MAX, LR_MAX
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.packing import PackedDataset
from mmtok.lm.model import ModelConfig, Transformer
from mmtok.lm.sample import _Picker, generate
from mmtok.stream.interleave import Interleaver
from mmtok.stream.vocab import Vocabulary

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = Vocabulary(256, ranges={"image": 8, "audio": 16})


def nan_grads_at(call: int) -> Callable[..., torch.Tensor]:
    """``torch.nn.utils.clip_grad_norm_`` that first makes every gradient NaN on its ``call``-th call: the step
    after it leaves the weights NaN though its loss was finite, as a step at too high a rate does."""
    real, calls = torch.nn.utils.clip_grad_norm_, [0]

    def poisoned(params, *args, **kwargs):  # type: ignore[no-untyped-def]
        params = list(params)
        calls[0] += 1
        if calls[0] == call:
            for p in params:
                if p.grad is not None:
                    p.grad.fill_(float("nan"))
        return real(params, *args, **kwargs)

    return poisoned


def finite_state(folder: Path) -> bool:
    from safetensors.torch import load_file

    return all(bool(torch.isfinite(t).all()) for t in load_file(folder / "model.safetensors").values()
               if t.is_floating_point())


# --------------------------------------------------------------------------- 1: a diverging run


@pytest.mark.parametrize(("bad_step", "save_every"), [(1, 10), (2, 1)])
def test_image_training_stops_at_the_step_that_left_its_weights_non_finite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_step: int, save_every: int) -> None:
    from mmtok.image import train as image_train
    from tests.test_image_train import _train_args

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", nan_grads_at(bad_step))
    out = tmp_path / "run"
    newest = "none saved yet" if bad_step == 1 else str(out / "train-state")
    with pytest.raises(TrainingError) as err:  # before: the quantizer's NaN input check in the next step
        image_train.main([*_train_args(tmp_path, "--save-every", str(save_every), "--warmup", "0", "--threads", "1"),
                          "--steps", "3"])
    assert str(err.value) == (f"non-finite weights after step {bad_step}: training diverged and stopped, nothing "
                              f"saved for it (newest state: {newest}); lower --lr (0.0005 in this run)")
    assert not (out / "train-state").exists() if bad_step == 1 else finite_state(out / "train-state")


def test_a_non_finite_loss_before_any_checkpoint_says_none_was_saved(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.image import train as image_train
    from tests.test_image_train import _train_args

    monkeypatch.setattr(image_train, "ssim", lambda a, b: torch.full((a.shape[0],), float("nan")))
    with pytest.raises(TrainingError, match=r"non-finite loss \(nan\) at step 1: .*\(newest state: none saved yet\)"):
        image_train.main([*_train_args(tmp_path, "--ssim-weight", "0.1", "--threads", "1"), "--steps", "2"])
    assert not (tmp_path / "run").exists()  # before: named tmp_path/run/train-state, which no one made


def _audio_args(tmp_path: Path, *more: str) -> list[str]:
    from tests.test_audio import speechlike

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        sf.write(data / f"clip-{i}.wav", speechlike(1.0, seed=i), 16000)
    return ["--data", str(data), "--out", str(tmp_path / "run"), "--steps", "3", "--codebook-size", "16",
            "--decoder-channels", "16", "--crop-tokens", "8", "--batch-size", "2", "--warmup", "0", "--threads", "1",
            "--no-progress", *more]


def test_audio_training_stops_at_the_step_that_left_its_weights_non_finite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.audio import train as audio_train

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", nan_grads_at(1))
    with pytest.raises(TrainingError, match=r"^non-finite weights after step 1: training diverged and stopped, "
                                            r"nothing saved for it \(newest state: none saved yet\); lower --lr "
                                            r"\(100 in this run\)$"):
        audio_train.main(_audio_args(tmp_path, "--encoder", "conv", "--encoder-channels", "16", "--code-dim", "8",
                                     "--lr", "100"))
    assert not (tmp_path / "run").exists()


def test_an_encoder_overflowing_into_the_quantizer_is_the_trainers_divergence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights finite but too large overflow the encoder: the quantizer refuses its output in the next step."""
    from mmtok.audio import train as audio_train
    from mmtok.audio.tokenizer import AudioTokenizer

    latents, calls = AudioTokenizer.latents, [0]

    def overflowing(self, mel):  # type: ignore[no-untyped-def]
        calls[0] += 1
        out = latents(self, mel)
        return out * 1e38 * 1e38 if self.training and calls[0] == 2 else out

    monkeypatch.setattr(AudioTokenizer, "latents", overflowing)
    with pytest.raises(TrainingError, match=r"^training diverged at step 2: the encoder's output is not finite "
                                            r"\(VectorQuantizer input contains \d+ NaN/inf value\(s\)\); stopped, "
                                            r"nothing saved for it \(newest state: none saved yet\); lower --lr"):
        audio_train.main(_audio_args(tmp_path, "--encoder", "conv", "--encoder-channels", "16", "--code-dim", "8"))


def test_vocoder_training_stops_at_the_step_that_left_its_weights_non_finite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio import vocoder_train
    from mmtok.audio.vocoder_data import build_cache
    from tests.test_vocoder_cli import run_args, write_corpus

    build_cache(write_corpus(tmp_path / "corpus", ("train", "train", "validation")), tmp_path / "cache",
                progress=False)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", nan_grads_at(1))
    out = tmp_path / "run"
    assert vocoder_train.main(run_args(tmp_path / "cache", out, "--steps", "3")) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()][-1]
    assert err == ("mmtok: error: non-finite weights after step 1: training diverged and stopped, nothing saved for "
                   "it (newest state: none saved yet); lower --lr (0.0005 in this run)")  # before: a NaN loss, step 2
    assert not (out / "train-state").exists() and not (out / "model").exists()


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_data import SPEC, make_corpus

    folder = tmp_path_factory.mktemp("numeric-corpus")
    tokenize_corpus(make_corpus(folder, n_docs=12), folder / "shards", tokenizers=SPEC, shard_tokens=400)
    return folder / "shards"


def test_mmtok_train_writes_no_checkpoint_of_weights_its_last_step_left_non_finite(
        shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.lm.train import TrainConfig, train

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", nan_grads_at(2))
    run = tmp_path / "run"
    cfg = TrainConfig(data=str(shards), out=str(run), seq_len=32, batch_size=2, steps=2, warmup=1, save_every=1,
                      threads=1)
    with pytest.raises(TrainingError, match=r"^non-finite weights after step 2: training diverged and stopped, no "
                                            r"checkpoint written for it \(newest: ckpt-0000001\); lower --lr"):
        train(cfg, progress=False)  # before: ckpt-0000002 written, every weight NaN, and the run "finished"
    assert [p.name for p in run.glob("ckpt-*")] == ["ckpt-0000001"] and finite_state(run / "ckpt-0000001")


# --------------------------------------------------------------------------- 2: rates float32 AdamW cannot take


@pytest.mark.parametrize("argv", [
    ["train-tokenizer", "image", "--lr", "1e39"],
    ["train-tokenizer", "image", "--lr", "1e38"],  # float32 holds it, not AdamW's first step of it
    ["train-tokenizer", "image", "--disc-lr", "1e39"],
    ["train-tokenizer", "audio", "--lr", "1e39"],
    ["train-tokenizer", "vocoder", "--lr", "1e39"],
    ["train-tokenizer", "vocoder", "--decoder-lr", "1e39"],
    ["train-tokenizer", "vocoder", "--weight-decay", "1e39"],
    ["train", "--lr", "1e39"],
    ["train", "--min-lr", "1e39"],
    ["train", "--weight-decay", "1e39"],
])
def test_rates_past_float32_are_refused_before_any_work(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--cache", str(tmp_path / "cache")] if argv[1:2] == ["vocoder"] else ["--data", str(tmp_path / "none")]
    out = tmp_path / "out"
    try:
        code = cli([*argv[:-2], *data, "--out", str(out), *argv[-2:]])
    except SystemExit as e:  # a trainer's parser.error
        code = e.code
    assert code == 2  # before: refused for the data it then read, or a run that went NaN
    err = capsys.readouterr().err.strip()
    flag = argv[-2]
    assert len(err.splitlines()) == 1 and f"{flag} must be >= 0, at most " in err.replace("> 0", ">= 0")
    assert f"float32 number) (got {float(argv[-1]):g})" in err or f"float32's range) (got {float(argv[-1]):g})" in err
    if flag == "--min-lr":  # the rate the run ends at, not its first step
        assert "the rate the schedule ends at" in err and "first step" not in err
    assert not out.exists()


@pytest.mark.parametrize("betas", [(0.9, 0.99), (0.9, 0.95), (0.8, 0.99), (0.5, 0.9)])  # every trainer's
def test_the_largest_learning_rate_is_one_float32_adamw_steps_with(betas: tuple[float, float]) -> None:
    def step(lr: float) -> None:
        net = torch.nn.Linear(2, 2)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, betas=betas, weight_decay=1e-4)
        net(torch.ones(1, 2)).sum().backward()
        opt.step()

    step(LR_MAX)  # steps (to weights that diverge, which the trainers stop at)
    with pytest.raises(RuntimeError, match="overflow"):
        step(FLOAT32_MAX)


# --------------------------------------------------------------------------- 3: temperatures float32 cannot hold


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(replace(ModelConfig.preset("tiny", vocab_size=VOCAB.size), max_seq_len=64)).eval()


def test_a_temperature_float32_rounds_to_0_is_greedy_and_one_it_rounds_to_inf_runs(model: Transformer) -> None:
    il = Interleaver(VOCAB)
    (greedy,) = generate(model, il, "hi", max_new_tokens=8, temperature=0)
    (tiny,) = generate(model, il, "hi", max_new_tokens=8, temperature=1e-300, seed=0)  # before: NaN probabilities
    assert torch.equal(tiny, greedy)
    (huge_top1,) = generate(model, il, "hi", max_new_tokens=8, temperature=1e300, top_k=1, seed=0)
    assert torch.equal(huge_top1, greedy)  # the order of the logits kept: top-k as at any temperature
    (huge,) = generate(model, il, "hi", max_new_tokens=8, temperature=1e300, seed=0)
    assert len(il.decode(huge, partial=True)) >= 1


def test_a_huge_temperature_draws_every_allowed_token_alike() -> None:
    pick = _Picker(1e300, None, None, torch.Generator().manual_seed(0))
    logits = torch.tensor([[0.0, 5.0, float("-inf"), 30.0]]).expand(3000, -1)
    counts = torch.bincount(pick(logits), minlength=4)
    assert counts[2] == 0 and all(900 < int(c) < 1100 for c in counts[[0, 1, 3]])


# --------------------------------------------------------------------------- 4: one document's ids are 1-D


def test_stream_and_decode_refuse_a_batch_of_ids_and_take_a_batch_of_one_as_its_row() -> None:
    il = Interleaver(Vocabulary(256, ranges={"image": 16}))
    ids = il.encode(["hi", {"image_codes": [[1, 2], [3, 4]]}]).ids
    batch = torch.stack([ids, ids])
    for call, who in [(lambda: il.stream(batch), "stream"),
                      (lambda: il.decode(batch), "decode"),
                      (lambda: il.decode(batch, partial=True), "decode")]:  # before: the rows joined into one document
        with pytest.raises(StreamError, match=rf"^Interleaver\.{who} takes one document's ids, 1-D \[L\], got shape "
                                              r"\(2, 12\): give the rows of a batch one at a time"):
            call()
    one_row = il.stream(ids[None])  # [1, L], as generate gives it; before: IndexError in stream_modality
    assert torch.equal(one_row.ids, ids) and torch.equal(one_row.pos, il.stream(ids).pos)
    row_doc, doc = il.decode(ids[None]), il.decode(ids)
    assert row_doc[0] == doc[0] == {"text": "hi"} and torch.equal(row_doc[1]["image_codes"], doc[1]["image_codes"])
    text = il.encode(["hi"]).ids
    row = il.stream(text[None])  # before: a Stream of ids [1, L] and positions [L]
    assert row.ids.shape == row.pos.shape == text.shape
    one = Interleaver(Vocabulary(256), bos=False, eos=False).stream(torch.tensor(104))
    assert one.ids.shape == one.pos.shape == (1,) and one.pos_thw.shape == (1, 3)


# --------------------------------------------------------------------------- 5: PackedDataset's seq_len


@pytest.mark.parametrize(("seq_len", "error"), [(2.5, TypeError), (float("nan"), TypeError), (True, TypeError),
                                                 (8.0, TypeError), ("8", TypeError), (0, ValueError)])
def test_packed_dataset_takes_a_whole_number_seq_len(tmp_path: Path, seq_len: object, error: type) -> None:
    (tmp_path / "docs.jsonl").write_text('{"segments": ["hi"]}\n{"segments": ["yo!"]}\n')
    tokenize_corpus(tmp_path / "docs.jsonl", tmp_path / "shards")
    said = f"PackedDataset seq_len (tokens per window) must be a whole number >= 1, got {seq_len!r}"
    with pytest.raises(error, match=f"^{re.escape(said)}"):  # before: 2.5 an AxisError, nan a TypeError of numpy's
        PackedDataset(tmp_path / "shards", seq_len=seq_len)  # type: ignore[arg-type]
    ds = PackedDataset(tmp_path / "shards", seq_len=np.int64(4), shuffle=False)
    assert isinstance(ds.seq_len, int) and ds[0]["ids"].shape == (4,)
