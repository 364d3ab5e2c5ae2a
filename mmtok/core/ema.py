"""An exponential moving average of a model's trained weights (Polyak averaging), for trainers.

Training steps move the weights by noisy gradients; an average of the recent weights sits nearer
the middle of where they wander, and it often reconstructs a little better than the last step's.
:class:`WeightAverage` keeps that average beside the model: ``update`` after each optimizer step,
``swapped_in`` while a checkpoint is written (the exported model holds the averages, the training
state keeps the live weights), and ``state_tensors`` / ``load_state_tensors`` so ``--resume``
continues it. Only trainable parameters are averaged: buffers (a codebook that its own EMA keeps,
normalisation statistics) and frozen parameters are the model's own.

>>> m = torch.nn.Linear(2, 1, bias=False)
>>> with torch.no_grad():
...     _ = m.weight.fill_(0.0)
>>> avg = WeightAverage(m, decay=0.5)
>>> with torch.no_grad():
...     _ = m.weight.fill_(1.0)
>>> avg.update(m)
>>> with avg.swapped_in(m):
...     m.weight.tolist()
[[0.5, 0.5]]
>>> m.weight.tolist()
[[1.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from mmtok.core.errors import CheckpointError

__all__ = ["PREFIX", "WeightAverage"]

PREFIX = "ema."  # the averages' names among a training state's extra tensors


class WeightAverage:
    """``avg ← decay · avg + (1 − decay) · weights`` after every step, for every trainable parameter."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the weight average's decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for n, p in model.named_parameters():
            if n in self.shadow:
                self.shadow[n].lerp_(p.detach(), 1.0 - self.decay)

    @contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[nn.Module]:
        """Inside the block ``model``'s averaged parameters hold their averages; after it, the live weights
        again (also when the block raises)."""
        live: dict[str, torch.Tensor] = {}
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, avg in self.shadow.items():
                live[n] = params[n].detach().clone()
                params[n].copy_(avg)
        try:
            yield model
        finally:
            with torch.no_grad():
                for n, w in live.items():
                    params[n].copy_(w)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {PREFIX + n: t.detach().cpu() for n, t in self.shadow.items()}

    def load_state_tensors(self, tensors: Mapping[str, torch.Tensor], *, where: str) -> None:
        """Restore the averages a training state holds; one saved without them, or for other
        parameters, is refused by name."""
        got = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        if not got:
            raise CheckpointError(f"{where}: this training state has no weight average (it was saved without "
                                  "--ema-decay); resume it without that option or start a new --out")
        if set(got) != set(self.shadow):
            missing, extra = sorted(set(self.shadow) - set(got)), sorted(set(got) - set(self.shadow))
            raise CheckpointError(f"{where}: the saved weight average does not fit this model "
                                  f"(missing {missing[:3]}, unexpected {extra[:3]})")
        for n, t in got.items():
            if t.shape != self.shadow[n].shape:
                raise CheckpointError(f"{where}: the saved average of {n} is {tuple(t.shape)}, "
                                      f"the model's {tuple(self.shadow[n].shape)}")
            self.shadow[n].copy_(t)
