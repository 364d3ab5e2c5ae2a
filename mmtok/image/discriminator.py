"""A small patch discriminator for training the image tokenizer adversarially (trainer-only).

The PatchGAN layout of pix2pix and taming-transformers' VQGAN: strided 4×4 convolutions
that end in one logit per overlapping image patch (34×34 pixels seen by each with the
default ``layers=2``; pix2pix's 70×70 with ``layers=3``), hinge losses, and the generator's adversarial term scaled
*adaptively*: by the ratio of the reconstruction loss's gradient to the adversarial
loss's gradient at the decoder's last layer, so neither swamps the other whatever
their raw sizes. GroupNorm instead of BatchNorm: the trainer's batches are small.

The discriminator never ships: the tokenizer checkpoint is unchanged, and the
discriminator with its optimizer travels in the trainer's resumable state
(:class:`mmtok.core.adversary.Adversary`, which the audio vocoder's trainer shares).

>>> d = PatchDiscriminator(channels=16, layers=2)
>>> tuple(d(torch.rand(2, 3, 64, 64)).shape)   # (B, 1, h, w): one logit per patch
(2, 1, 14, 14)
>>> d.receptive_field, PatchDiscriminator(layers=3).receptive_field   # pixels one logit sees
(34, 70)
"""

from __future__ import annotations

import torch
from torch import nn

from mmtok.core.adversary import Adversary, hinge_d_loss

__all__ = ["PatchDiscriminator", "PatchGAN", "adaptive_weight"]


class PatchDiscriminator(nn.Module):
    """Image ``[B, 3, H, W]`` in [0, 1] -> patch logits ``[B, 1, h, w]``.

    ``layers`` strided 4×4 convolutions (width doubling from ``channels``, capped at 8×),
    one stride-1 4×4 convolution and a 4×4 convolution to one channel.
    """

    def __init__(self, *, channels: int = 32, layers: int = 2) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        c = channels
        for i in range(1, layers + 1):
            c_out = channels * min(2**i, 8)
            stride = 2 if i < layers else 1
            mods += [nn.Conv2d(c, c_out, 4, stride=stride, padding=1), nn.GroupNorm(min(32, c_out // 4), c_out),
                     nn.LeakyReLU(0.2)]
            c = c_out
        mods.append(nn.Conv2d(c, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*mods)
        # receptive field of one output logit, in pixels (for the docs and the model card)
        rf, jump = 1, 1
        for m in self.net:
            if isinstance(m, nn.Conv2d):
                rf += (m.kernel_size[0] - 1) * jump
                jump *= m.stride[0]
        self.receptive_field = rf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2.0 - 1.0)  # (B, 1, h, w)


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    *, cap: float = 1e4) -> torch.Tensor:
    """``|∇ rec_loss| / (|∇ g_loss| + 1e-4)`` at ``last_layer`` (a weight both losses reach), detached, in ``[0, cap]``."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0.0, cap).detach()


class PatchGAN(Adversary):
    """The discriminator, its optimizer and its schedule, as the image trainer uses them.

    ``weight``: scale of the generator's adversarial term (times :func:`adaptive_weight`);
    ``start``: the step from which the discriminator learns; ``warmup``: steps after
    ``start`` before the generator feels it (the discriminator first learns to tell
    the current reconstructions from photographs), then the term ramps up linearly
    over as many steps again (:class:`mmtok.core.adversary.Adversary`).
    """

    def __init__(self, *, weight: float, start: int = 0, warmup: int = 200, lr: float = 1e-4, channels: int = 32,
                 layers: int = 2, device: torch.device | str = "cpu") -> None:
        super().__init__(PatchDiscriminator(channels=channels, layers=layers).to(device), weight=weight, start=start,
                         warmup=warmup, lr=lr)

    def generator_loss(self, recon: torch.Tensor, rec_loss: torch.Tensor, last_layer: torch.Tensor,
                       step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The term to add to the generator's loss at ``step`` (zero before the warmup ends) and its figures."""
        scale = self.generator_scale(step)
        if scale == 0.0:
            return rec_loss.new_zeros(()), {}
        with self.frozen():
            g_loss = -self.disc(recon).mean()
        lam = adaptive_weight(rec_loss, g_loss, last_layer) * scale
        return lam * g_loss, {"g_adv": float(g_loss.detach()), "adv_w": float(lam)}

    def discriminator_step(self, real: torch.Tensor, recon: torch.Tensor, step: int) -> dict[str, float]:
        """One optimizer step of the discriminator on ``real`` against ``recon`` (detached); nothing before ``start``."""
        if step < self.start:
            return {}
        real_logits = self.disc(real)
        fake_logits = self.disc(recon.detach())
        loss = hinge_d_loss(real_logits, fake_logits)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"d_loss": float(loss.detach()), "d_real": float(real_logits.detach().mean()),
                "d_fake": float(fake_logits.detach().mean())}
