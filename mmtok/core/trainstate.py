"""Resumable training state: model + optimizer + step + RNG in a checkpoint folder.

Built on :mod:`mmtok.core.checkpoint` (atomic folder writes, no pickle): the model
weights go to ``model.safetensors``, the optimizer's tensors to
``optimizer.safetensors``, and everything else (step, optimizer scalars, RNG
states of Python/NumPy, caller's extras) to ``config.json`` under ``"train"``.
``torch``'s own RNG states are tensors and travel in ``optimizer.safetensors``: the CPU's, and each CUDA
device's (``rng.cuda.N`` for GPU N), with the index of the GPU the model was on; on loading, the GPU the model
is on now continues that GPU's stream (:func:`restore_cuda_rng`).

>>> import torch, tempfile, os
>>> m = torch.nn.Linear(2, 2); opt = torch.optim.AdamW(m.parameters())
>>> m(torch.randn(3, 2)).sum().backward(); opt.step()
>>> d = save_train_state(os.path.join(tempfile.mkdtemp(), "run"), kind="demo", config={},
...                      model=m, optimizer=opt, step=1)
>>> load_train_state(d, model=m, optimizer=opt)["step"]
1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mmtok.core.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from mmtok.core.device import check_device_option
from mmtok.core.errors import CheckpointError, ResumeMismatchError
from mmtok.core.floats import all_finite
from mmtok.core.module_io import load_state_dict_checked
from mmtok.core.ranges import LEARNING_RATE, Range, out_of_range

__all__ = [
    "CUDA_RNG",
    "OPTIMIZER_NAME",
    "check_train_state",
    "check_trained_on",
    "command_lines",
    "freeze_codes",
    "json_digest",
    "load_newest_intact",
    "load_train_state",
    "model_cuda_index",
    "optimizer_state_join",
    "optimizer_state_split",
    "options_given",
    "restore_cuda_rng",
    "save_train_state",
]

OPTIMIZER_NAME = "optimizer.safetensors"


def freeze_codes(tok: nn.Module) -> None:
    """Fix a media tokenizer's ``encoder`` and ``vq`` (codebook and any lookup projections) for a run
    that trains the decoder alone (``--decoder-only``): no gradients into either, and both in eval
    mode, so no codebook updates or restarts; every input keeps its codes.

    Call again after anything that switches the whole model back to training mode.

    >>> tok = torch.nn.Module(); tok.encoder, tok.vq = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    >>> freeze_codes(tok)
    >>> tok.encoder.weight.requires_grad, tok.vq.training
    (False, False)
    """
    for part in (tok.encoder, tok.vq):
        part.requires_grad_(False)
        part.eval()


def optimizer_state_split(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state as (tensors, JSON-ready rest); :func:`optimizer_state_join` puts them back together."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = v
            else:
                scalars.setdefault(str(pid), {})[name] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_state_join(tensors: Mapping[str, torch.Tensor], rest: Mapping[str, Any]) -> dict[str, Any]:
    """The ``state_dict`` that :func:`optimizer_state_split` took apart, for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if not key.startswith("state."):
            continue
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = v
    for pid, st in rest.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(st)
    return {"state": state, "param_groups": rest["param_groups"]}


CUDA_RNG = "rng.cuda."  # + the device index: a CUDA device's random state in optimizer.safetensors


def model_cuda_index(model: nn.Module) -> int | None:
    """The index of the CUDA device ``model``'s weights are on, None when they are not on one."""
    for t in (*model.parameters(), *model.buffers()):
        if t.device.type != "cuda":
            return None
        return t.device.index if t.device.index is not None else torch.cuda.current_device()
    return None


def restore_cuda_rng(side: Mapping[str, torch.Tensor], *, saved_on: int | None, now_on: int | None) -> None:
    """Put back the CUDA random states ``side`` holds (``rng.cuda.N``), each on GPU N by its index (where this
    machine has it), then give the GPU the model is on now (``now_on``) the state of the one it was on when
    saved (``saved_on``). That is the state that drew the run's numbers: a run resumed on another GPU goes on
    with it, and so does every rank under torchrun, where rank 0 alone saves (every device it holds) and each
    rank's own GPU, seeded and drawn from as rank 0's, would have held the state rank 0's GPU held."""
    states = {int(k[len(CUDA_RNG) :]): v for k, v in side.items() if k.startswith(CUDA_RNG)}
    if not states or not torch.cuda.is_available():
        return
    count = torch.cuda.device_count()
    for index, state in sorted(states.items()):
        if index < count:
            torch.cuda.set_rng_state(state, index)
    if now_on is not None and saved_on is not None and saved_on != now_on and saved_on in states:
        torch.cuda.set_rng_state(states[saved_on], now_on)


def _rng_json() -> dict[str, Any]:
    np_state = np.random.get_state()  # noqa: NPY002 - the global state is what we save
    return {
        "python": json.loads(json.dumps(random.getstate(), default=list)),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }


def _rng_restore(rng: Mapping[str, Any]) -> None:
    py = rng["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = rng["numpy"]
    np.random.set_state((npst[0], np.asarray(npst[1], dtype=np.uint32), *npst[2:]))  # noqa: NPY002


def save_train_state(
    folder: str | os.PathLike[str],
    *,
    kind: str,
    config: Any,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    extra: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    extra_tensors: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Atomically write everything needed to continue training at ``step``.

    The folder is also an ordinary checkpoint of ``kind``: ``mmtok.load`` reads it.
    """
    opt_tensors: dict[str, torch.Tensor] = {}
    opt_rest: dict[str, Any] | None = None
    if optimizer is not None:
        opt_tensors, opt_rest = optimizer_state_split(optimizer)
    side: dict[str, torch.Tensor] = {f"optim.{k}": v for k, v in opt_tensors.items()}
    side["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            side[f"{CUDA_RNG}{i}"] = st
    for k, v in (extra_tensors or {}).items():
        side[f"extra.{k}"] = v
    # safetensors wants a file path: write into a temporary file, hand bytes to the atomic writer
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / OPTIMIZER_NAME
        save_file({k: v.detach().cpu().contiguous() for k, v in side.items()}, str(path))
        blob = path.read_bytes()
    train = {"step": int(step), "optimizer": opt_rest, "rng": _rng_json(), "rng_cuda_device": model_cuda_index(model),
             "extra": dict(extra or {})}
    return save_checkpoint(
        folder,
        kind=kind,
        config=config,
        tensors=model.state_dict(),
        provenance=provenance,
        extra_files={OPTIMIZER_NAME: blob},
        extra_meta={"train": train},
    )


def _check_finite(path: Path, weights: Mapping[str, torch.Tensor], side: Mapping[str, torch.Tensor]) -> None:
    """A :class:`CheckpointError` naming the tensors of a train state that hold a NaN or inf (a run that diverged
    before the state was saved, or damaged files): no run goes on from them."""
    bad = [*(f"{WEIGHTS_NAME}: {k}" for k, t in weights.items() if not all_finite(t)),
           *(f"{OPTIMIZER_NAME}: {k}" for k, t in side.items() if not all_finite(t))]
    if bad:
        raise CheckpointError(f"checkpoint {path}: NaN/inf values in {', '.join(bad[:3])}"
                              f"{f' (+{len(bad) - 3} more)' if len(bad) > 3 else ''}: the run diverged before it was "
                              "saved, or the files are damaged; resume from an earlier state, or start afresh")


def _read_state(folder: str | os.PathLike[str], kind: str | None
                ) -> tuple[Checkpoint, dict[str, Any], dict[str, torch.Tensor]]:
    """The train state in ``folder`` read whole, as :func:`load_train_state` needs it: ``(checkpoint, its "train"
    record, the tensors of optimizer.safetensors)``; a :class:`CheckpointError` naming the file and what is wrong
    (a config or weights cut short, no training record or step, no or a damaged optimizer file, a NaN or inf)."""
    ck = load_checkpoint(folder, kind=kind)
    train = ck.meta.get("train")
    if not isinstance(train, dict):
        raise CheckpointError(f"checkpoint {ck.path} holds weights only, no training state to resume")
    if type(train.get("step")) is not int:
        raise CheckpointError(f"checkpoint {ck.path}: {CONFIG_NAME} records no step to resume at (its \"train\" "
                              "record has no whole number \"step\"); the file is damaged or hand-edited")
    side_path = ck.path / OPTIMIZER_NAME
    if not side_path.is_file():
        raise CheckpointError(f"checkpoint {ck.path} has no {OPTIMIZER_NAME} to resume from")
    try:
        side = load_file(str(side_path))
    except Exception as e:  # safetensors raises its own error type, or OSError/ValueError
        raise CheckpointError(f"checkpoint {ck.path}: {OPTIMIZER_NAME} is unreadable ({e})") from e
    _check_finite(ck.path, ck.tensors, side)
    return ck, train, side


def check_train_state(folder: str | os.PathLike[str], *, kind: str | None = None) -> int:
    """The step of the train state in ``folder`` once it is whole as ``--resume`` reads it (:func:`load_train_state`:
    its config, weights and optimizer file read in full, every tensor finite); a :class:`CheckpointError` naming the
    file and what is wrong otherwise. Nothing is built and no random state is touched: it says whether a resume
    can start from it. A folder a save killed between its two renames left as its backup is read there.

    >>> import torch, tempfile, os
    >>> m = torch.nn.Linear(2, 2)
    >>> check_train_state(save_train_state(os.path.join(tempfile.mkdtemp(), "s"), kind="demo", config={}, model=m,
    ...                                    optimizer=None, step=3))
    3
    """
    return int(_read_state(folder, kind)[1]["step"])


def load_train_state(
    folder: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    kind: str | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Fill ``model`` (and ``optimizer``) from ``folder``; restore RNG states.

    Returns ``{"step", "extra", "extra_tensors", "config", "provenance"}``. A state holding a NaN or inf (weights,
    optimizer moments, extra tensors) is refused, before anything is filled.
    """
    ck, train, side = _read_state(folder, kind)
    load_state_dict_checked(model, ck.tensors, where=ck.path)
    if optimizer is not None:
        if train.get("optimizer") is None:
            raise CheckpointError(f"checkpoint {ck.path} was saved without optimizer state")
        opt_tensors = {k[len("optim.") :]: v for k, v in side.items() if k.startswith("optim.")}
        try:
            optimizer.load_state_dict(optimizer_state_join(opt_tensors, train["optimizer"]))
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint {ck.path}: optimizer state does not fit ({e})") from e
    if restore_rng:
        torch.set_rng_state(side["rng.torch"])
        restore_cuda_rng(side, saved_on=train.get("rng_cuda_device"), now_on=model_cuda_index(model))
        _rng_restore(train["rng"])
    extra_tensors = {k[len("extra.") :]: v for k, v in side.items() if k.startswith("extra.")}
    return {
        "step": int(train["step"]),
        "extra": train.get("extra", {}),
        "extra_tensors": extra_tensors,
        "config": ck.config,
        "provenance": ck.meta.get("provenance", {}),
    }


def load_newest_intact(
    folders: Sequence[os.PathLike[str] | str], load: Callable[[Path], Any], *, who: str | None = "mmtok",
    passed_over: list[tuple[Path, CheckpointError]] | None = None,
) -> tuple[Path, Any] | None:
    """``load`` the newest of ``folders`` (oldest first) that loads: ``(folder, state)``, None if there are none.

    A damaged checkpoint (``load`` raises :class:`CheckpointError`) is passed over with a line on
    stderr (prefixed ``who``; None: silent) naming it and the one used instead, and added to ``passed_over``
    (newest first) when that list is given; when every one is damaged the newest one's error is raised.
    """
    failures: list[tuple[Path, CheckpointError]] = passed_over if passed_over is not None else []
    for folder in reversed([Path(f) for f in folders]):
        try:
            state = load(folder)
        except CheckpointError as e:
            failures.append((folder, e))
            continue
        for bad, err in failures if who is not None else []:
            print(f"{who}: checkpoint {bad} is damaged ({err}); resuming from {folder} instead", file=sys.stderr)
        return folder, state
    if failures:
        raise failures[0][1]
    return None


def command_lines(command: str, was: dict[str, Any]) -> dict[str, Any]:
    """The provenance's command lines: ``command`` the one that started the run (what readers of
    ``provenance["command"]`` expect), ``resumed_with`` each later one, oldest first (``was``: the
    resumed run's provenance; {} for a new run).

    >>> command_lines("mmtok b", {"command": "mmtok a"})
    {'command': 'mmtok a', 'resumed_with': ['mmtok b']}
    """
    if not was:
        return {"command": command}
    return {"command": was.get("command") or command, "resumed_with": [*was.get("resumed_with", []), command]}


def json_digest(value: Any) -> str:
    """16 hex digits of the sha256 of ``value`` as JSON: how a run records what it trains on (file names and
    sizes, clip lengths), so that ``--resume`` can tell other data from the same data moved.

    >>> json_digest([["a.png", 10]]) == json_digest([("a.png", 10)]), len(json_digest([]))
    (True, 16)
    """
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


def check_trained_on(state_dir: Path, key: str, digest: str, refusal: str) -> None:
    """``--resume``: a :class:`~mmtok.core.errors.ResumeMismatchError` saying ``refusal`` when the train state in
    ``state_dir`` recorded under ``key`` another :func:`json_digest` of its data than ``digest``; a run with
    none recorded (or no train state) is not checked."""
    config = state_dir / "config.json"
    if not config.is_file():
        return
    extra = (json.loads(config.read_text()).get("train") or {}).get("extra") or {}
    if extra.get(key) not in (None, digest):
        raise ResumeMismatchError(refusal)


def options_given(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The ``dest`` of every option the command line ``argv`` names, as ``parser`` would read it (``--lr=0.1``
    and ``--lr 0.1`` alike): a resumed run takes its own settings for the others.

    >>> p = argparse.ArgumentParser(); _ = p.add_argument("--lr", type=float); _ = p.add_argument("--rotate", action="store_true")
    >>> sorted(options_given(p, ["--lr=0.1", "--rotate"]))
    ['lr', 'rotate']
    """
    probe = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            kw: dict[str, Any] = {"dest": action.dest, "default": argparse.SUPPRESS}
            kw.update({"action": "store_true"} if action.nargs == 0 else {"nargs": action.nargs})
            probe.add_argument(*action.option_strings, **kw)
    known, _ = probe.parse_known_args(list(argv))
    return set(vars(known))


SHARED_RANGES = {"steps": Range(1), "batch_size": Range(1), "save_every": Range(1), "warmup": Range(0),
                 "lr": LEARNING_RATE}


def check_run_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The options every tokenizer trainer shares, refused in one line (exit 2) before any work when out of
    range (:data:`SHARED_RANGES`: ``--steps``, ``--batch-size``, ``--save-every`` at least 1, ``--warmup`` at
    least 0, ``--lr`` a finite number above 0 that AdamW can step with in float32), and ``--device`` a device name."""
    refused = out_of_range(parser, args, SHARED_RANGES)
    if refused:
        parser.error(refused)
    check_device_option(parser, args.device)
