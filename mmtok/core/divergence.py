"""Stopping a training run whose numbers are no longer finite, with a message that says what is at fault.

Each trainer asks three things, none of them more than once a step:

* after its optimizer step, :func:`check_weights_finite`: one reduction over the weights it stepped;
* a tokenizer that decodes log powers, after its forward pass and before it saves, :func:`check_decodable`: one
  reduction over what it decoded, which must stay within float32's reach (a loss can be finite while the model
  decodes to NaN audio);
* before it writes a train state, :func:`check_state_finite`: every tensor that state holds of each
  :class:`Trained` part (a discriminator, the optimizers' moments, a weight average), so no checkpoint
  holds a NaN or inf, and the message names the part and the option whose rate stepped it;
* when a step's loss is not finite, :func:`loss_not_finite`, which looks (only then) for the likely cause:
  a part whose weights diverged at a step of its own, a figure that is not finite (a discriminator's
  output, an adaptive loss weight), NaN/inf in the batch (the data, whatever the step), or, at the first
  step since the run started or resumed (:class:`Start`), the weights it started from, not the learning
  rate, which has moved nothing yet. A tokenizer's encoder overflowing into its quantizer is read the
  same way (:func:`diverging_forward`).

Every message names the step and the newest state the run can go on from (:func:`newest_state`).

>>> start = Start.of(0)
>>> print(loss_not_finite(float("nan"), step=1, flag="--lr", lr=1e-3, state_dir="/no/run", start=start,
...                       batch=[torch.tensor([1.0, float("inf")])]))
non-finite loss (nan) at step 1: its batch holds 1 NaN/inf value(s): the data is at fault, not the learning rate; training stopped, nothing saved for it (newest state: none saved yet); check the data
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mmtok.core.checkpoint import CONFIG_NAME
from mmtok.core.errors import QuantizerError, QuantizerOverflowError, TrainingError
from mmtok.core.floats import all_finite, weights_finite

__all__ = [
    "EXP_LIMIT",
    "LOG_POWER_LIMIT",
    "Start",
    "Trained",
    "check_decodable",
    "check_state_finite",
    "check_weights_finite",
    "diverging_forward",
    "loss_not_finite",
    "newest_state",
]

EXP_LIMIT = math.log(torch.finfo(torch.float32).max)  # ≈ 88.72: exp() of more is inf in float32
# ≈ 44.36: a log power past which the power's square is inf in float32. Audio in [-1, 1] stays under about 10
# (full-scale square waves reach about 8 in the log-mel), so a decoder past this has diverged
LOG_POWER_LIMIT = EXP_LIMIT / 2
Kept = Callable[[], str]  # what a stopped run has on disk, asked only when it stops


def newest_state(state_dir: str | os.PathLike[str]) -> str:
    """The train state a run stopped by a non-finite loss or weights can go on from, as its message names it:
    ``state_dir`` when it holds one, else ``none saved yet`` (a run stopped before its first checkpoint)."""
    return str(state_dir) if (Path(state_dir) / CONFIG_NAME).is_file() else "none saved yet"


def _on_disk(state_dir: str | os.PathLike[str] | None, kept: Kept | None) -> str:
    return kept() if kept else f"nothing saved for it (newest state: {newest_state(state_dir or '')})"


@dataclass(frozen=True)
class Trained:
    """A part of a run whose tensors its train state holds, as the checks name it."""

    name: str  # as a message says it: "the discriminator"
    flag: str  # the option whose learning rate steps it: "--disc-lr"
    lr: float  # that rate in this run
    module: nn.Module | None = None  # its weights and buffers
    optimizer: torch.optim.Optimizer | None = None  # its optimizer, whose moments the state holds too
    tensors: Mapping[str, torch.Tensor] | None = None  # weights the state holds beside the module's (an average)
    hint: str = ""  # more to do than lowering the rate: " or clip the gradients (...)"

    @property
    def fix(self) -> str:
        return f"lower {self.flag} ({self.lr:g} in this run){self.hint}"

    def not_finite(self) -> str | None:
        """What of it holds a NaN or inf (``"weights"``, ``"optimizer state (exp_avg_sq)"``); None: nothing."""
        if self.module is not None and not weights_finite(self.module):
            return "weights"
        if any(not all_finite(t) for t in (self.tensors or {}).values()):
            return "weights"
        for state in (self.optimizer.state.values() if self.optimizer is not None else ()):
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and not all_finite(value):
                    return f"optimizer state ({key})"
        return None


@dataclass(frozen=True)
class Start:
    """The weights a run started or resumed from at ``step``, as a non-finite loss at its first step names them.

    >>> Start.of(120, resumed="run/train-state").weights
    'the weights resumed from run/train-state (step 120)'
    """

    step: int  # the step they are at: the run's first step is step + 1
    weights: str  # "the weights of --init-from X"
    fix: str  # what to do when they give a non-finite loss

    @classmethod
    def of(cls, step: int, *, resumed: str | os.PathLike[str] | None = None, init_from: str | None = None,
           flag: str = "--lr") -> Start:
        """The start of a run ``resumed`` from a train state, or begun from ``--init-from``, or from scratch."""
        if resumed is not None:
            return cls(step, f"the weights resumed from {resumed} (step {step})",
                       f"resume from an earlier state, or start afresh with a lower {flag}")
        if init_from is not None:
            return cls(step, f"the weights of --init-from {init_from}", "start from another checkpoint, or afresh")
        return cls(step, "the freshly initialised weights", "check the data's range and the loss weights")


def check_weights_finite(module: nn.Module, *, step: int, lr: float, flag: str = "--lr",
                         state_dir: str | os.PathLike[str] | None = None, kept: Kept | None = None) -> None:
    """Raise :class:`TrainingError` when optimizer step ``step`` left a weight of ``module`` NaN or inf: the run
    diverged (its loss was still finite), and is stopped before that step is saved or the next one fails where it
    cannot say why (a quantizer's NaN input). ``flag`` is the option whose learning rate, ``lr``, stepped it;
    ``kept()``, asked only then, says what the run has on disk (default: the train state in ``state_dir``,
    :func:`newest_state`)."""
    if not weights_finite(module):
        raise TrainingError(f"non-finite weights after step {step}: training diverged and stopped, "
                            f"{_on_disk(state_dir, kept)}; lower {flag} ({lr:g} in this run)")


def check_decodable(features: torch.Tensor, *, step: int, lr: float, what: str = "log-mel", flag: str = "--lr",
                    limit: float = LOG_POWER_LIMIT, after: bool = False, state_dir: str | os.PathLike[str] | None = None,
                    kept: Kept | None = None) -> None:
    """Raise :class:`TrainingError` when step ``step``'s decoded ``features`` (log powers: a log-mel) reach
    ``limit`` in size: powers whose square overflows float32, tens of orders of magnitude past any audio in
    [-1, 1], from a model that would decode to NaN/inf or noise, although every weight and the loss are still
    finite (a loss of 1e16 on a log-mel at ``--lr 1``). One reduction, asked
    after each forward pass (before the optimizer steps on it) and on a probe of the weights ``after`` step
    ``step`` before they are saved, so no checkpoint holds such weights."""
    peak = float(features.detach().abs().amax()) if features.numel() else 0.0
    if not peak < limit:  # NaN too
        raise TrainingError(f"decoded {what} reached ±{peak:.3g} {'after' if after else 'at'} step {step}, past "
                            f"±{limit:.1f}, where a power's square leaves float32's range (audio in [-1, 1] stays "
                            f"within about -12 to 10): training diverged and stopped, {_on_disk(state_dir, kept)}; "
                            f"lower {flag} ({lr:g} in this run)")


def check_state_finite(parts: Sequence[Trained], *, step: int, state_dir: str | os.PathLike[str] | None = None,
                       kept: Kept | None = None) -> None:
    """Raise :class:`TrainingError` naming the first of ``parts`` whose weights, saved beside tensors or optimizer
    moments hold a NaN or inf after step ``step``, before the train state of that step is written: a part the
    per-step check does not look at (a discriminator, which steps after it) or optimizer moments that overflowed
    while the weights stayed finite (a parameter that would never move again)."""
    for part in parts:
        if what := part.not_finite():
            raise TrainingError(f"non-finite {what} of {part.name} after step {step}: training diverged and "
                                f"stopped, {_on_disk(state_dir, kept)}; {part.fix}")


def _cause(step: int, *, parts: Sequence[Trained], figures: Mapping[str, tuple[float, Trained]],
           batch: Sequence[torch.Tensor], start: Start | None) -> tuple[str, str] | None:
    """``(": what is at fault", "what to do")`` for a step whose loss or encoder output is not finite, looked for
    in this order; None when none of them is (then the rate, which has stepped the weights, is the suspect)."""
    for part in parts:
        if part.not_finite() == "weights":
            return f": the weights of {part.name} are not finite (it diverged at a step of its own)", part.fix
    for name, (value, part) in figures.items():
        if not math.isfinite(value):
            return f": {name} is {value}", part.fix
    held = sum(int((~torch.isfinite(t)).sum()) for t in batch if not all_finite(t))
    if held:
        return (f": its batch holds {held} NaN/inf value(s): the data is at fault, not the learning rate",
                "check the data")
    if start is None or step != start.step + 1:
        return None
    who = f"on a finite batch: {start.weights} are" if batch else f"the data or {start.weights} are"
    return (f": the first step since the run (re)started, {who} at fault, not the learning rate (nothing has "
            "stepped yet)", start.fix)


def loss_not_finite(loss: float, *, step: int, flag: str, lr: float, state_dir: str | os.PathLike[str] | None = None,
                    kept: Kept | None = None, parts: Sequence[Trained] = (),
                    figures: Mapping[str, tuple[float, Trained]] | None = None, batch: Sequence[torch.Tensor] = (),
                    start: Start | None = None) -> TrainingError:
    """The :class:`TrainingError` of step ``step``, whose loss is not finite, for the trainer to raise before the
    optimizer steps on it. It names the likely cause, looked for only now: one of ``parts`` whose weights are not
    finite (a discriminator that diverged at its own step); a figure of this step that is not finite, of
    ``figures`` (name -> its value and the part whose rate is then at fault: a discriminator's output, an adaptive
    loss weight); NaN/inf in ``batch`` (the step's inputs); at the first step after ``start``, the
    weights the run started from; else the learning rate ``lr`` of ``flag``, or the data. What the run has on
    disk: ``kept()`` or the train state in ``state_dir``."""
    cause, fix = _cause(step, parts=parts, figures=figures or {}, batch=batch, start=start) or (
        "", f"lower {flag} ({lr:g} in this run) or check the data")
    return TrainingError(f"non-finite loss ({loss}) at step {step}{cause}; training stopped, "
                         f"{_on_disk(state_dir, kept)}; {fix}")


@contextlib.contextmanager
def diverging_forward(*, step: int, state_dir: str | os.PathLike[str], lr: float, flag: str = "--lr",
                      trains_encoder: bool = True, start: Start | None = None,
                      batch: torch.Tensor | None = None) -> Iterator[None]:
    """The forward pass of a tokenizer trainer's step ``step``, where a :class:`QuantizerError` means the run
    diverged when it ``trains_encoder``: the weights, finite but grown too large, overflowed the encoder, and the
    quantizer refuses its NaN/inf output, or output too large for its float32 statistics. It is raised as :class:`TrainingError` that says so, naming the step and
    ``flag``, with the quantizer's words (an encoder that is not trained passes the quantizer's error on). At the
    first step after ``start`` no rate has moved the weights yet: the message blames NaN/inf in ``batch``, or
    the weights the run started from, instead."""
    try:
        yield
    except QuantizerError as e:
        if not trains_encoder:
            raise
        found = _cause(step, parts=(), figures={}, batch=() if batch is None else (batch,), start=start)
        # the quantizer refuses NaN/inf, and finite values too large for its float32 statistics (mmtok.vq.inputs)
        state = "too large to quantize" if isinstance(e, QuantizerOverflowError) else "not finite"
        said, fix = (f"training diverged at step {step}: the encoder's output is {state} ({e})",
                     f"lower {flag} ({lr:g} in this run)") if found is None else (
            f"the encoder's output is {state} at step {step} ({e}){found[0]}", found[1])
        raise TrainingError(f"{said}; stopped, nothing saved for it (newest state: {newest_state(state_dir)}); {fix}"
                            ) from e
