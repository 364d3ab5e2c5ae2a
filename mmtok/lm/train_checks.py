"""What ``mmtok train --resume`` holds a run to (:mod:`mmtok.lm.train` asks before a checkpoint's weights are
loaded): its model shape, its shards, the settings that fix its data order (:data:`RESUME_FIXED`), its global
batch, and a ``--steps`` not below the step it reached (:mod:`mmtok.core.resume`'s rule and words).

The global batch is ``batch_size × grad_accum × processes`` windows a step. Every process reads the whole
window order and takes its own share of each step's windows, so any split of the same global batch reads the
same windows in every step and keeps the run's schedule: a run may go on with another ``--batch-size`` or
``--grad-accum`` on another number of processes. The sums then add up in another order, so its loss agrees
with the unbroken run's to float rounding, not bit for bit (and dropout draws other masks).

>>> global_batch({"train": {"batch_size": 2, "grad_accum": 1}, "batch": {"world_size": 2}}, step=4, consumed=16)
(2, 4)
>>> global_batch({"train": {"batch_size": 2, "grad_accum": 1}}, step=4, consumed=16)  # saved before world_size
(2, 4)
>>> split_note("run", {"train": {"batch_size": 2, "grad_accum": 2}, "batch": {"world_size": 1}},
...            {"train": {"batch_size": 2, "grad_accum": 1}, "batch": {"world_size": 2}}, step=4, consumed=16) is None
False
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmtok.core.errors import ResumeMismatchError
from mmtok.core.resume import setting_differences, take_run_settings

__all__ = ["RESUME_FIXED", "SHAPE_FIELDS", "check_same_model", "check_same_shards", "check_settings",
           "global_batch", "split_note"]

SHAPE_FIELDS = ("n_layer", "n_head", "n_kv_head", "d_model", "mlp_ratio", "tie_embeddings")  # the weights' shapes
# the settings that fix a run's data order and positions besides its global batch: --resume keeps them (mmtok train
# --resume takes the run's own when their flags are left out); steps, rates and saving may change to extend a run
RESUME_FIXED = ("seq_len", "seed", "rope_3d", "packing")
_OWN = "resume with the run's own (the mmtok train command takes them when their flags are left out)"


def _processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def global_batch(saved: Mapping[str, Any], *, step: int, consumed: int) -> tuple[int, int]:
    """(processes, windows a step) of the run whose checkpoint config is ``saved``, at ``step`` with ``consumed``
    windows read. A run saved before the number of processes was recorded is taken to have run on as many as
    its data position says (``consumed`` windows in ``step`` steps of ``batch_size × grad_accum`` a process),
    and on 1 where that is no whole number."""
    train = saved.get("train") or {}
    per = int(train.get("batch_size", 0)) * int(train.get("grad_accum", 0))
    batch = saved.get("batch")
    if isinstance(batch, dict) and isinstance(batch.get("world_size"), int):
        world = batch["world_size"]
    else:
        world = consumed // (per * step) if per * step > 0 and consumed > 0 and consumed % (per * step) == 0 else 1
    return world, per * world


def _keeping(windows: int, world: int, grad_accum: int, run: tuple[int, int, int]) -> str:
    """The flags that read ``windows`` a step on ``world`` processes (``--batch-size 4 on 1 process``), or the run's
    own split (``run``: batch size, grad accum, processes) where ``windows`` do not split over ``world``."""
    if windows % world:
        accum = f" --grad-accum {run[1]}" if run[1] != grad_accum else ""
        return (f"--batch-size {run[0]}{accum} on {_processes(run[2])} ({windows} windows do not split over "
                f"{_processes(world)})")
    per = windows // world
    if per % grad_accum == 0:
        accum = f" --grad-accum {grad_accum}" if grad_accum != run[1] else ""
        return f"--batch-size {per // grad_accum}{accum} on {_processes(world)}"
    return f"--batch-size {per} --grad-accum 1 on {_processes(world)}"


def check_settings(folder: Path, now: Mapping[str, Any], saved: Mapping[str, Any], *, step: int,
                   consumed: int) -> None:
    """One-line :class:`ResumeMismatchError` when ``--resume`` of the run in ``folder`` (its checkpoint config
    ``saved``, at ``step`` with ``consumed`` windows read) is asked, by the config ``now`` would save, for
    another setting of :data:`RESUME_FIXED`, another global batch, or a ``--steps`` below ``step``."""
    mine, was = now["train"], saved.get("train") or {}
    recorded = {"packing": "stream", **was}  # a run saved before --packing was recorded packed the stream
    diffs = setting_differences({k: mine[k] for k in RESUME_FIXED}, recorded, RESUME_FIXED)
    keep = _OWN
    if "batch_size" in was and "grad_accum" in was:
        run_world, windows = global_batch(saved, step=step, consumed=consumed)
        world = now["batch"]["world_size"]
        if mine["batch_size"] * mine["grad_accum"] * world != windows and world == run_world:
            diffs += setting_differences(mine, was, ("batch_size", "grad_accum"))
        elif mine["batch_size"] * mine["grad_accum"] * world != windows:
            diffs.append(f"a global batch of {mine['batch_size'] * mine['grad_accum'] * world} windows on "
                         f"{_processes(world)} (the run's: {windows} = --batch-size {was['batch_size']} × --grad-accum "
                         f"{was['grad_accum']} × {_processes(run_world)})")
            flags = _keeping(windows, world, mine["grad_accum"], (was["batch_size"], was["grad_accum"], run_world))
            keep = f"{_OWN} and {flags}" if len(diffs) > 1 else f"keep them with {flags}"
    if diffs:
        raise ResumeMismatchError(f"--resume {folder}: {'; '.join(diffs)}; these fix its data order and positions: "
                                  f"{keep}, or train into a new --out")
    take_run_settings(argparse.Namespace(steps=mine["steps"]), {"steps"}, {}, where=str(folder), reached=step,
                      fixed=())


def split_note(folder: Path | str, now: Mapping[str, Any], saved: Mapping[str, Any], *, step: int,
               consumed: int) -> str | None:
    """The line to say on stderr when a resumed run splits its global batch otherwise than its checkpoint
    ``saved`` did (other processes, ``--batch-size`` or ``--grad-accum``); None when it splits it alike."""
    run_world, windows = global_batch(saved, step=step, consumed=consumed)
    mine, was, world = now["train"], saved.get("train") or {}, now["batch"]["world_size"]
    split = (mine["batch_size"], mine["grad_accum"], world)
    if split == (was.get("batch_size"), was.get("grad_accum"), run_world):
        return None
    return (f"mmtok train: {folder} goes on with its global batch of {windows} windows split as --batch-size "
            f"{split[0]} × --grad-accum {split[1]} × {_processes(world)} (the run's: {was.get('batch_size')} × "
            f"{was.get('grad_accum')} × {_processes(run_world)}): the same windows in every step and the same "
            "schedule; the loss agrees with an unbroken run's to float rounding, not bit for bit")


def check_same_model(folder: Path, mine: Mapping[str, Any], saved: Mapping[str, Any]) -> None:
    """A one-line :class:`ResumeMismatchError` when ``--resume`` asks for another model (its config ``mine``)
    than the run's own (its checkpoint config ``saved``)."""
    diffs = [f"{k} {saved['model'][k]} (now {mine[k]})" for k in SHAPE_FIELDS
             if k in saved.get("model", {}) and saved["model"][k] != mine[k]]
    if diffs:
        preset = (saved.get("train") or {}).get("preset")
        raise ResumeMismatchError(f"{folder} was trained with --preset {preset} and another model shape: "
                                  f"{', '.join(diffs[:4])}; resume with the settings it was trained with, or train "
                                  "into a new --out")


def check_same_shards(folder: Path, data: str, now: Mapping[str, Any], saved: Mapping[str, Any]) -> str | None:
    """A one-line :class:`ResumeMismatchError` when ``--resume`` is given other shards (``data``, described by
    the config ``now`` would save) than the run trained on (its place in the window order means nothing in
    another stream), of its vocabulary or of another (said before the checkpoint's weights, shaped for its own,
    are loaded). Runs saved before the digest was recorded are checked by their vocabulary alone: the line to
    say on stderr then comes back (None when the shards' digest was checked)."""
    was = saved.get("shards") if isinstance(saved.get("shards"), dict) else {}
    shards, fingerprint, mine = now["shards"], saved.get("fingerprint"), now["fingerprint"]
    other_vocab = fingerprint is not None and fingerprint != mine
    trained_on = (saved.get("train") or {}).get("data", "?")
    if not other_vocab and was.get("digest") is None:
        return (f"mmtok train: {folder} was saved before shard digests were recorded, so the contents of {data} "
                f"could not be checked against the shards it trained on ({trained_on}), only their vocabulary")
    if not other_vocab and was.get("digest") == shards["digest"]:
        return None
    vocab, vocab_now = (f", vocabulary {fingerprint}", f", vocabulary {mine}") if other_vocab else ("", "")
    raise ResumeMismatchError(f"{folder} was trained on other shards ({trained_on}: {was.get('tokens', '?')} tokens, "
                              f"digest {was.get('digest', '?')}{vocab}) than {data} ({shards['tokens']} tokens, "
                              f"digest {shards['digest']}{vocab_now}); --resume continues a run on its own shards; "
                              "train into a new --out for these")
