"""A run whose numbers stop being finite, in each trainer: at its first step the data or the weights it started
from are blamed, not the learning rate; a discriminator that diverges (its weights, or its output in the
generator's loss) is named with --disc-lr and never saved; optimizer moments that overflow while the weights
stay finite are never saved either; and a train state holding a NaN is not resumed from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

from mmtok.core.divergence import Start, Trained, check_state_finite, loss_not_finite
from mmtok.core.errors import CheckpointError, TrainingError
from mmtok.core.trainstate import load_train_state, save_train_state

pytestmark = pytest.mark.usefixtures("one_thread")


def non_finite(folder: Path) -> list[str]:
    """The names of the tensors of a train state (weights and side file) that hold a NaN or inf."""
    tensors = {**load_file(folder / "model.safetensors"), **load_file(folder / "optimizer.safetensors")}
    return [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def calls_after(call: int, real: Callable[..., Any], then: Callable[[Any], Any]) -> Callable[..., Any]:
    """``real``, whose result goes through ``then`` from its ``call``-th call on."""
    calls = [0]

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        out = real(*args, **kwargs)
        return then(out) if calls[0] >= call else out

    return wrapped


# --------------------------------------------------------------------------- 1: the first step


def _audio_source(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """An audio tokenizer checkpoint whose encoder (conv) or decoder (slice) weights are finite but so large that
    its output overflows float32, and a folder of three clips."""
    from mmtok.audio.config import AudioTokenizerConfig
    from mmtok.audio.tokenizer import AudioTokenizer
    from mmtok.core.module_io import save_module
    from mmtok.vq.config import VQConfig
    from tests.test_audio import speechlike

    dim = 8 if kind == "conv" else 160
    tok = AudioTokenizer(AudioTokenizerConfig(encoder_kind=kind, code_dim=dim, encoder_channels=16,
                                              decoder_channels=16, vq=VQConfig(dim=dim, codebook_size=16)))
    with torch.no_grad():
        for p in (tok.encoder if kind == "conv" else tok.decoder).parameters():
            p.mul_(1e30)
    save_module(tok, tmp_path / "source")
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        sf.write(data / f"clip-{i}.wav", speechlike(1.0, seed=i), 16000)
    return tmp_path / "source", data


@pytest.mark.parametrize("kind", ["slice", "conv"])
def test_non_finite_numbers_at_the_first_step_blame_the_weights_started_from_not_the_rate(
        tmp_path: Path, kind: str) -> None:
    from mmtok.audio import train as audio_train

    source, data = _audio_source(tmp_path, kind)
    with pytest.raises(TrainingError) as err:
        audio_train.main(["--data", str(data), "--out", str(tmp_path / "run"), "--init-from", str(source),
                          "--steps", "3", "--crop-tokens", "8", "--batch-size", "2", "--warmup", "0",
                          "--threads", "1", "--no-progress"])
    said = str(err.value)  # before: "... lower --lr or check the data" / "training diverged at step 1 ... lower --lr"
    what = "non-finite loss (nan) at step 1: " if kind == "slice" else "the encoder's output is not finite at step 1 "
    assert said.startswith(what) and "lower --lr" not in said and "diverged" not in said
    assert (f"the first step since the run (re)started, on a finite batch: the weights of --init-from {source} are "
            "at fault, not the learning rate") in said
    assert said.endswith("(newest state: none saved yet); start from another checkpoint, or afresh")


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmtok.data.corpus import tokenize_corpus
    from tests.test_data import SPEC, make_corpus

    folder = tmp_path_factory.mktemp("divergence-corpus")
    tokenize_corpus(make_corpus(folder, n_docs=12), folder / "shards", tokenizers=SPEC, shard_tokens=400)
    return folder / "shards"


def _lm_config(shards: Path, run: Path, **kw: Any) -> Any:
    from mmtok.lm.train import TrainConfig

    return TrainConfig(**{"data": str(shards), "out": str(run), "seq_len": 32, "batch_size": 2, "steps": 2,
                          "warmup": 1, "save_every": 1, "threads": 1, **kw})


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_non_finite_loss_at_the_first_step_of_a_resumed_run_names_the_checkpoint_resumed_from(
        shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.lm import train as lm_train

    run = tmp_path / "run"
    lm_train.train(_lm_config(shards, run), progress=False)
    monkeypatch.setattr(lm_train.Transformer, "forward",
                        calls_after(1, lm_train.Transformer.forward, lambda out: out * float("nan")))
    with pytest.raises(TrainingError) as err:
        lm_train.train(_lm_config(shards, run, steps=4), resume=True, progress=False)
    assert str(err.value) == (  # before: "...; lower --lr or check the data", as at any later step
        "non-finite loss (nan) at step 3: the first step since the run (re)started, on a finite batch: the weights "
        "resumed from ckpt-0000002 (step 2) are at fault, not the learning rate (nothing has stepped yet); training "
        "stopped, no checkpoint written for it (newest: ckpt-0000002); resume from an earlier state, or start afresh "
        "with a lower --lr")


def test_nan_in_a_later_batch_blames_the_data_not_the_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.image import train as image_train
    from tests.test_image_train import _train_args

    def poisoned(out: torch.Tensor) -> torch.Tensor:
        out[0, 0, 0, :3] = float("nan")
        return out

    monkeypatch.setattr(image_train, "train_crops", calls_after(2, image_train.train_crops, poisoned))
    with pytest.raises(TrainingError) as err:
        image_train.main([*_train_args(tmp_path, "--threads", "1", "--warmup", "0"), "--steps", "3"])
    said = str(err.value)  # before: "training diverged at step 2: the encoder's output is not finite ...; lower --lr"
    assert said.startswith("the encoder's output is not finite at step 2 (VectorQuantizer input contains ")
    assert ": its batch holds 3 NaN/inf value(s): the data is at fault, not the learning rate; " in said
    assert said.endswith("; check the data")


def test_without_a_batch_to_look_at_the_first_step_blames_the_data_or_the_starting_weights() -> None:
    err = loss_not_finite(float("inf"), step=1, flag="--lr", lr=0.1, state_dir="/no/run", start=Start.of(0))
    assert str(err) == ("non-finite loss (inf) at step 1: the first step since the run (re)started, the data or the "
                        "freshly initialised weights are at fault, not the learning rate (nothing has stepped yet); "
                        "training stopped, nothing saved for it (newest state: none saved yet); check the data's "
                        "range and the loss weights")
    later = loss_not_finite(float("inf"), step=2, flag="--lr", lr=0.1, state_dir="/no/run", start=Start.of(0))
    assert str(later).endswith("; lower --lr (0.1 in this run) or check the data")


# --------------------------------------------------------------------------- 2: the discriminators


@pytest.mark.parametrize(("disc_warmup", "said"), [
    ("50", "non-finite loss (nan) of the discriminator at step 2: it diverged; training stopped"),  # before: exit 0
    ("0", "non-finite loss (nan) at step 2: the discriminator's output is nan; training stopped"),  # before: --lr
])
def test_an_image_discriminator_that_diverges_is_named_and_never_saved(
        tmp_path: Path, disc_warmup: str, said: str) -> None:
    from mmtok.image import train as image_train
    from tests.test_image_train import _train_args

    out = tmp_path / "run"
    with pytest.raises(TrainingError) as err:
        image_train.main([*_train_args(tmp_path, "--save-every", "2", "--disc-weight", "0.1", "--disc-lr", "1e30",
                                       "--disc-warmup", disc_warmup, "--warmup", "0", "--threads", "1"),
                          "--steps", "4"])
    assert str(err.value).startswith(said)
    assert str(err.value).endswith("(newest state: none saved yet); lower --disc-lr (1e+30 in this run)")
    assert not (out / "train-state").exists()  # before: a train state whose discriminator is all NaN


def test_a_discriminator_left_non_finite_by_the_step_before_a_checkpoint_is_not_saved(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.image import train as image_train
    from mmtok.image.discriminator import PatchGAN
    from tests.test_image_train import _train_args

    real = PatchGAN.discriminator_step

    def stepped(self: PatchGAN, *args: Any) -> dict[str, float]:
        figures = real(self, *args)
        if args[-1] == 1:  # its second step (0-based 1): a finite loss, then weights gone NaN, as too high a rate leaves
            with torch.no_grad():
                next(self.disc.parameters()).fill_(float("nan"))
        return figures

    monkeypatch.setattr(PatchGAN, "discriminator_step", stepped)
    with pytest.raises(TrainingError) as err:
        image_train.main([*_train_args(tmp_path, "--save-every", "2", "--disc-weight", "0.1", "--disc-warmup", "50",
                                       "--threads", "1"), "--steps", "4"])
    assert str(err.value) == ("non-finite weights of the discriminator after step 2: training diverged and stopped, "
                              "nothing saved for it (newest state: none saved yet); lower --disc-lr (0.0001 in this "
                              "run)")
    assert not (tmp_path / "run" / "train-state").exists()  # before: saved, its discriminator NaN


def test_vocoder_discriminators_that_diverge_are_blamed_not_the_vocoders_rate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.audio import vocoder_train
    from mmtok.audio.vocoder_data import build_cache
    from tests.test_vocoder_cli import run_args, write_corpus

    build_cache(write_corpus(tmp_path / "corpus", ("train", "train", "validation")), tmp_path / "cache",
                progress=False)
    out = tmp_path / "run"
    assert vocoder_train.main(run_args(tmp_path / "cache", out, "--steps", "3", "--save-every", "3", "--disc-weight",
                                       "1", "--disc-warmup", "0", "--disc-lr", "1e30")) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()][-1]
    assert err == ("mmtok: error: non-finite loss (nan) at step 3: the weights of the discriminators are not finite "
                   "(it diverged at a step of its own); training stopped, nothing saved for it (newest state: none "
                   "saved yet); lower --disc-lr (1e+30 in this run)")  # before: "...; try a lower --lr"
    assert not (out / "train-state").exists()


# --------------------------------------------------------------------------- 3: what else a train state holds


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_optimizer_moments_that_overflow_are_never_checkpointed(
        shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.lm import train as lm_train

    real, calls = torch.optim.AdamW.step, [0]

    def spiked(self: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:  # a loss spike's gradients, finite and unclipped: exp_avg_sq overflows, the weights do not
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.mul_(1e30)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", spiked)
    run = tmp_path / "run"
    with pytest.raises(TrainingError) as err:
        lm_train.train(_lm_config(shards, run, grad_clip=0.0), progress=False)
    assert str(err.value) == ("non-finite optimizer state (exp_avg_sq) of the transformer after step 1: training "
                              "diverged and stopped, no checkpoint written for it (newest: none); lower --lr (0.003 in "
                              "this run) or clip the gradients (--grad-clip, off in this run)")
    assert not list(run.glob("ckpt-*"))  # before: ckpt-0000001 and ckpt-0000002, every exp_avg_sq inf


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_resume_passes_over_a_checkpoint_holding_nan(
        shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.lm import train as lm_train

    run = tmp_path / "run"
    lm_train.train(_lm_config(shards, run), progress=False)
    side = load_file(run / "ckpt-0000002" / "optimizer.safetensors")
    key = next(k for k in side if k.endswith("exp_avg"))
    side[key][0] = float("nan")  # as a run that diverged saved it
    save_file(side, run / "ckpt-0000002" / "optimizer.safetensors")
    lm_train.train(_lm_config(shards, run, steps=3), resume=True, progress=False)
    said = capsys.readouterr().err
    assert f"mmtok train: checkpoint {run / 'ckpt-0000002'} is damaged (checkpoint {run / 'ckpt-0000002'}: NaN/inf " \
           f"values in optimizer.safetensors: {key}: the run diverged before it was saved" in said
    assert "resuming from " + str(run / "ckpt-0000001") in said  # before: resumed from the NaN one
    assert not non_finite(run / "ckpt-0000003")


def test_a_train_state_holding_nan_is_refused_before_anything_is_filled(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    avg = {"weight": torch.full((2, 2), float("inf"))}
    state = save_train_state(tmp_path / "state", kind="demo", config={}, model=model, optimizer=None, step=3,
                             extra_tensors={f"ema.{k}": v for k, v in avg.items()})
    fresh = torch.nn.Linear(2, 2)
    before = fresh.weight.detach().clone()
    with pytest.raises(CheckpointError, match=r"NaN/inf values in optimizer\.safetensors: extra\.ema\.weight: "):
        load_train_state(state, model=fresh)
    assert torch.equal(fresh.weight, before)


def test_the_check_before_a_save_names_each_part_and_what_of_it_is_not_finite() -> None:
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    average = {"weight": model.weight.detach().clone()}
    parts = [Trained("the tokenizer", "--lr", 0.1, module=model, optimizer=opt),
             Trained("the weight average", "--lr", 0.1, tensors=average)]
    check_state_finite(parts, step=1, state_dir="/no/run")
    average["weight"][0, 0] = float("nan")
    with pytest.raises(TrainingError, match=r"^non-finite weights of the weight average after step 1: "):
        check_state_finite(parts, step=1, state_dir="/no/run")
    average["weight"][0, 0] = 0.0
    opt.state[model.bias]["exp_avg"][0] = float("inf")
    with pytest.raises(TrainingError, match=r"^non-finite optimizer state \(exp_avg\) of the tokenizer after step 1: "
                                            r".*; lower --lr \(0\.1 in this run\)$"):
        check_state_finite(parts, step=1, state_dir="/no/run")
