"""What every adversarial trainer here shares: hinge losses, the warm-up schedule and resumable state.

A discriminator never ships. It trains beside a generator (the image tokenizer's decoder,
the audio vocoder), and it travels with its optimizer in the trainer's resumable state
(:meth:`Adversary.state_tensors` / :meth:`Adversary.load_state_tensors`), so a killed
adversarial run resumes where it was.

The schedule: the discriminator learns from step ``start``; for ``warmup`` steps after
that the generator does not feel it (the discriminator first learns to tell the current
outputs from the real thing), and then the generator's adversarial term ramps up linearly
over as many steps again to ``weight``.

A discriminator that diverges is the trainer's to stop: :meth:`Adversary.checked_step` refuses a
non-finite discriminator loss, and :meth:`Adversary.part` is what the checks before each save and
after a non-finite generator loss look at (:mod:`mmtok.core.divergence`).

>>> a = Adversary(torch.nn.Linear(2, 1), weight=0.5, start=10, warmup=4)
>>> [a.generator_scale(s) for s in (0, 13, 14, 15, 17, 100)]
[0.0, 0.0, 0.125, 0.25, 0.5, 0.5]
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmtok.core.divergence import Trained, newest_state
from mmtok.core.errors import CheckpointError, TrainingError
from mmtok.core.trainstate import optimizer_state_join, optimizer_state_split

__all__ = ["Adversary", "add_adversary_options", "hinge_d_loss", "hinge_g_loss"]


def add_adversary_options(p: argparse.ArgumentParser, *, weight_help: str, plural: bool, warmup: int,
                          lr: float, channels: int) -> None:
    """The options every adversarial trainer takes: ``--disc-weight``, ``--disc-start``,
    ``--disc-warmup``, ``--disc-lr`` and ``--disc-channels`` (defaults are the trainer's own;
    a :class:`~mmtok.core.command_line.HelpFormatter` shows them)."""
    noun = "discriminators" if plural else "discriminator"
    whose = f"the {noun}'" if plural else f"the {noun}'s"
    p.add_argument("--disc-weight", type=float, default=0.0, help=weight_help)
    p.add_argument("--disc-start", type=int, default=0, metavar="STEP",
                   help=f"step from which the {noun} {'learn' if plural else 'learns'}")
    p.add_argument("--disc-warmup", type=int, default=warmup, metavar="N",
                   help=f"{noun}-only steps after --disc-start, then the adversarial term ramps up over N steps")
    p.add_argument("--disc-lr", type=float, default=lr, help=f"{whose} AdamW learning rate")
    p.add_argument("--disc-channels", type=int, default=channels,
                   help=f"width of {whose} first {'layers' if plural else 'layer'}")


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's hinge loss: ``mean(relu(1 - real)) + mean(relu(1 + fake))``, halved."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's hinge loss: ``mean(relu(1 - fake))`` (zero once the discriminator calls it real)."""
    return F.relu(1.0 - fake_logits).mean()


class Adversary:
    """A discriminator, its AdamW optimizer (betas 0.5, 0.9 unless given) and its schedule."""

    def __init__(self, disc: nn.Module, *, weight: float, start: int = 0, warmup: int = 200, lr: float = 1e-4,
                 betas: tuple[float, float] = (0.5, 0.9)) -> None:
        if weight < 0 or start < 0 or warmup < 0 or lr <= 0:
            raise ValueError(f"need weight, start, warmup >= 0 and lr > 0; got {weight}, {start}, {warmup}, {lr}")
        self.weight, self.start, self.warmup, self.lr = float(weight), int(start), int(warmup), float(lr)
        self.disc = disc
        self.opt = torch.optim.AdamW(self.disc.parameters(), lr=lr, betas=betas, weight_decay=0.0)

    def generator_scale(self, step: int) -> float:
        """How much of ``weight`` the generator's adversarial term gets at ``step`` (0 until the warmup ends)."""
        t = step - self.start - self.warmup
        if t < 0:
            return 0.0
        return self.weight * min(1.0, (t + 1) / max(self.warmup, 1))

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor, step: int) -> dict[str, float]:
        """One optimizer step of the discriminator on ``real`` against ``fake``: each trainer's own."""
        raise NotImplementedError

    def part(self, name: str = "the discriminator") -> Trained:
        """The discriminator and its optimizer as the divergence checks name them (its rate: ``--disc-lr``)."""
        return Trained(name, "--disc-lr", self.lr, module=self.disc, optimizer=self.opt)

    def checked_step(self, real: torch.Tensor, fake: torch.Tensor, step: int, *, name: str = "the discriminator",
                     state_dir: str | os.PathLike[str]) -> dict[str, float]:
        """The subclass's ``discriminator_step`` (its figures), then a :class:`~mmtok.core.errors.TrainingError`
        when the loss it stepped on was not finite: the discriminator diverged (its own rate, not the generator's,
        is at fault), and the run stops before a train state holds it. Its loss is a figure the step reads
        anyway: nothing more is computed each step."""
        figures = self.discriminator_step(real, fake, step)
        loss = figures.get("d_loss", 0.0)
        if not math.isfinite(loss):
            raise TrainingError(f"non-finite loss ({loss}) of {name} at step {step + 1}: it diverged; training "
                                f"stopped, nothing saved for it (newest state: {newest_state(state_dir)}); lower "
                                f"--disc-lr ({self.lr:g} in this run)")
        return figures

    def frozen(self) -> _Frozen:
        """``with adversary.frozen(): ...`` - the discriminator's weights get no gradient inside."""
        return _Frozen(self.disc)

    # ---------------------------------------------------------------- resumable state

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors, JSON-ready rest)`` of the discriminator and its optimizer, for the trainer's state."""
        tensors = {f"disc.{k}": v.detach().cpu() for k, v in self.disc.state_dict().items()}
        opt_tensors, rest = optimizer_state_split(self.opt)
        tensors.update({f"disc_opt.{k}": v.cpu() for k, v in opt_tensors.items()})
        return tensors, rest

    def load_state_tensors(self, tensors: Mapping[str, torch.Tensor], rest: Mapping[str, Any] | None,
                           *, where: str) -> None:
        """Restore what :meth:`state_tensors` gave; a state saved without a discriminator is refused by name."""
        weights = {k[len("disc."):]: v for k, v in tensors.items() if k.startswith("disc.")}
        if not weights or rest is None:
            raise CheckpointError(f"{where}: this training state has no discriminator to resume (it was saved "
                                  "without --disc-weight); resume without it or start a new --out")
        try:
            self.disc.load_state_dict(weights)
            opt = {k[len("disc_opt."):]: v for k, v in tensors.items() if k.startswith("disc_opt.")}
            self.opt.load_state_dict(optimizer_state_join(opt, rest))
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{where}: the saved discriminator does not fit this one ({e})") from e


class _Frozen:
    """Context manager: ``requires_grad`` off for a module's parameters, restored on exit."""

    def __init__(self, module: nn.Module) -> None:
        self.params = [p for p in module.parameters() if p.requires_grad]

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p in self.params:
            p.requires_grad_(True)
