"""The image trainer's patch discriminator: shapes, losses, the adaptive weight, its schedule,
and a ``--disc-weight`` run that stops and resumes with the discriminator's own state."""

from __future__ import annotations

import json

import pytest
import torch
from test_image_train import _train_args

from mmtok.core.adversary import hinge_d_loss
from mmtok.core.errors import CheckpointError
from mmtok.core.trainstate import load_train_state
from mmtok.image.discriminator import PatchDiscriminator, PatchGAN, adaptive_weight

pytestmark = pytest.mark.usefixtures("one_thread")


def test_patch_logits_cover_the_image_and_the_receptive_field_is_computed() -> None:
    d = PatchDiscriminator(channels=8, layers=2)
    assert tuple(d(torch.rand(3, 3, 128, 128)).shape) == (3, 1, 30, 30)
    assert d.receptive_field == 34  # 4, then +3*2, +3*4 (stride 1), +3*4 (the logit layer)
    assert PatchDiscriminator(channels=8, layers=3).receptive_field == 70  # pix2pix's 70x70 PatchGAN


def test_hinge_loss_is_zero_only_when_the_margins_are_met() -> None:
    assert hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -3.0)).item() == 0.0
    assert hinge_d_loss(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(1.0)
    assert hinge_d_loss(torch.full((4,), -1.0), torch.full((4,), 1.0)).item() == pytest.approx(2.0)


def test_adaptive_weight_balances_the_two_gradients_at_the_last_layer() -> None:
    w = torch.nn.Parameter(torch.ones(3))
    rec = (w * torch.tensor([1.0, 2.0, 2.0])).sum()  # gradient norm 3
    adv = (w * torch.tensor([0.0, 0.0, 0.5])).sum()  # gradient norm 0.5
    assert adaptive_weight(rec, adv, w).item() == pytest.approx(3.0 / 0.5001, rel=1e-4)
    assert adaptive_weight(rec, adv, w, cap=2.0).item() == 2.0
    assert not adaptive_weight(rec, adv, w).requires_grad


def test_schedule_discriminator_first_then_a_linear_ramp() -> None:
    gan = PatchGAN(weight=0.5, start=10, warmup=4, channels=8)
    assert [gan.generator_scale(s) for s in (0, 13, 14, 15, 17, 100)] == [0.0, 0.0, 0.125, 0.25, 0.5, 0.5]
    x = torch.rand(2, 3, 32, 32)
    assert gan.discriminator_step(x, x.flip(-1), step=9) == {}  # before --disc-start: nothing learns
    before = [p.clone() for p in gan.disc.parameters()]
    figs = gan.discriminator_step(x, x.flip(-1), step=10)
    assert set(figs) == {"d_loss", "d_real", "d_fake"}
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.disc.parameters(), strict=True))


def test_generator_term_reaches_the_generator_not_the_discriminator() -> None:
    torch.manual_seed(0)
    gan = PatchGAN(weight=1.0, start=0, warmup=0, channels=8)
    last = torch.nn.Conv2d(4, 3, 1)
    recon = torch.sigmoid(last(torch.randn(2, 4, 32, 32)))
    rec_loss = (recon - 0.5).abs().mean()
    term, figs = gan.generator_loss(recon, rec_loss, last.weight, step=0)
    assert set(figs) == {"g_adv", "adv_w"} and figs["adv_w"] > 0
    term.backward()
    assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in gan.disc.parameters())
    assert all(p.requires_grad for p in gan.disc.parameters())
    zero, none = PatchGAN(weight=1.0, start=5, warmup=0, channels=8).generator_loss(recon, rec_loss, last.weight, 0)
    assert zero.item() == 0.0 and none == {}


def test_train_with_a_discriminator_resumes_its_state(tmp_path, capsys) -> None:
    from mmtok.image.train import main

    out = tmp_path / "run"
    common = _train_args(tmp_path, "--save-every", "2", "--disc-weight", "0.1", "--disc-warmup", "1",
                         "--disc-channels", "8")
    assert main([*common, "--steps", "2"]) == 0
    gan = PatchGAN(weight=0.1, channels=8)
    st = load_train_state(out / "train-state", model=_tiny_tok(out), kind="image", restore_rng=False)
    gan.load_state_tensors(st["extra_tensors"], st["extra"].get("disc_opt"), where="state")
    assert int(gan.opt.state_dict()["state"][0]["step"]) == 2  # two discriminator steps so far
    saved = {k: v.clone() for k, v in gan.disc.state_dict().items()}
    assert main([*common, "--steps", "4", "--resume"]) == 0
    st = load_train_state(out / "train-state", model=_tiny_tok(out), kind="image", restore_rng=False)
    gan.load_state_tensors(st["extra_tensors"], st["extra"].get("disc_opt"), where="state")
    assert int(gan.opt.state_dict()["state"][0]["step"]) == 4  # resumed, not restarted
    assert any(not torch.equal(saved[k], v) for k, v in gan.disc.state_dict().items())
    import mmtok

    assert mmtok.load(out / "model").provenance["discriminator"]["receptive_field"] == 34
    assert {"d_loss", "g_adv", "adv_w"} <= set(json.loads((out / "summary.json").read_text())["running_means"])
    assert not any(k.startswith("disc") for k in mmtok.load(out / "model").state_dict())  # never shipped
    # a state saved without a discriminator cannot be resumed with one
    plain = _train_args(tmp_path / "p", "--save-every", "1") if (tmp_path / "p").mkdir() is None else []
    assert main([*plain, "--steps", "1"]) == 0
    with pytest.raises(CheckpointError, match="no discriminator to resume"):
        main([*plain, "--steps", "2", "--resume", "--disc-weight", "0.1", "--disc-channels", "8"])
    with pytest.raises(SystemExit):
        main([*common, "--steps", "2", "--disc-weight", "-1"])
    assert "--disc-weight" in capsys.readouterr().err


def _tiny_tok(out):
    import mmtok

    return mmtok.load(out / "model")
