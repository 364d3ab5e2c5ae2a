"""The settings of one ``mmtok train`` run: :class:`TrainConfig` (saved in every checkpoint), the
values each of its numbers takes (:data:`SETTING_RANGES`; a resumed run's own: :data:`RECORDED_RANGES`),
the check that refuses settings no run can use (:func:`check_config`) and the learning rate a run's
schedule gives at a step (:func:`lr_at`). :mod:`mmtok.lm.train` runs them; ``mmtok train``
(:mod:`mmtok.lm.command`) checks its flags by them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from mmtok.core.errors import RunRefusedError
from mmtok.core.ranges import FLOAT32_AT_LEAST_0, LEARNING_RATE, SEED, THREADS, Range
from mmtok.core.schedule import warmup_cosine
from mmtok.data.packing import PACKINGS
from mmtok.lm.model import PRESETS

__all__ = ["RECORDED_RANGES", "SCHEDULE_FIELDS", "SETTING_RANGES", "TrainConfig", "check_config", "lr_at"]


@dataclass
class TrainConfig:
    """Settings of one training run (saved in every checkpoint)."""

    data: str = ""  # folder of token shards (mmtok tokenize --out)
    out: str = "run"  # run folder: checkpoints, log.jsonl, loss.png
    preset: str = "tiny"  # model size: tiny, small, base
    seq_len: int = 256  # tokens per training window (a window of several documents: a seq_len² mask each); longer
    # documents are cut across windows (mmtok.lm.windows warns): a 16×16 image alone is 274 tokens
    packing: str = "stream"  # windows at fixed offsets of the documents read back to back ("stream"), or filled
    # with whole documents and padded ("documents"; only documents longer than seq_len + 1 tokens are cut)
    batch_size: int = 8  # windows per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimizer step
    steps: int = 1000  # optimizer steps in total
    lr: float = 3e-3  # peak learning rate
    min_lr: float = 3e-4  # learning rate at the end of the cosine
    warmup: int = 50  # linear warmup steps
    weight_decay: float = 0.1  # AdamW weight decay (matrices only)
    grad_clip: float = 1.0  # max global gradient norm (0 = off)
    rope_3d: bool = False  # 3-D rotary (time, row, column) positions for media tokens, else 1-D
    dropout: float = 0.0  # model dropout
    seed: int = 0  # seeds data order, init and dropout
    save_every: int = 100  # steps between checkpoints
    keep_last: int = 2  # checkpoints kept
    compile: bool = False  # torch.compile the model
    device: str | None = None  # cpu / cuda (default: cuda when available)
    threads: int | None = None  # CPU threads for torch (default: torch's choice)

    def __post_init__(self) -> None:
        """Folders given as paths (``pathlib.Path``, any ``os.PathLike``) held as the text every checkpoint saves."""
        for name in ("data", "out"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                setattr(self, name, os.fspath(value))
            elif not isinstance(getattr(self, name), str):
                raise RunRefusedError(f"{name} must be a folder (a str or a path), got {type(value).__name__}")


SCHEDULE_FIELDS = ("steps", "lr", "min_lr", "warmup")  # the fields of a run the learning rate at a step depends on


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warmup to ``lr``, then cosine to ``min_lr`` at ``steps``."""
    return warmup_cosine(step, peak=cfg.lr, warmup=cfg.warmup, total=cfg.steps, floor=cfg.min_lr)


SETTING_RANGES: dict[str, Range] = {  # what each numeric TrainConfig field takes (mmtok train checks its flags by it)
    **dict.fromkeys(("seq_len", "batch_size", "grad_accum", "steps", "save_every", "keep_last"), Range(1)),
    "threads": THREADS,
    **dict.fromkeys(("warmup", "grad_clip"), Range(0)),
    "lr": replace(LEARNING_RATE, low_open=False),  # 0 too: a schedule may end there
    "min_lr": replace(LEARNING_RATE, low_open=False, why="the rate the schedule ends at is an AdamW step's, which "
                      "must stay a float32 number"),
    "weight_decay": FLOAT32_AT_LEAST_0,
    "dropout": Range(0, 1, high_open=True),  # a probability
    "seed": SEED,
}
RECORDED_RANGES = {**SETTING_RANGES, "seed": Range(0, 2**63 - 1)}  # a resumed run's own: any int64 seed >= 0 goes


def check_config(cfg: TrainConfig, *, recorded: dict[str, Any] | None = None) -> None:
    """Raise :class:`RunRefusedError` for settings no run can use: a field outside its range in
    :data:`SETTING_RANGES` (a float where a whole number goes, NaN or an infinity among them), an unknown preset
    or packing, a ``min_lr`` above ``lr``.
    A field at its ``recorded`` value (the resumed run's :func:`~mmtok.lm.runs.run_settings`) need only lie in
    :data:`RECORDED_RANGES`: a run goes on with the settings it was started with.

    >>> check_config(TrainConfig(dropout=1.5))
    Traceback (most recent call last):
    mmtok.core.errors.RunRefusedError: dropout must be in [0, 1) (a finite number), got 1.5
    """
    if cfg.preset not in PRESETS:
        raise RunRefusedError(f"unknown preset {cfg.preset!r}; choose one of {', '.join(PRESETS)}")
    if cfg.packing not in PACKINGS:
        raise RunRefusedError(f"packing must be 'stream' (windows at fixed offsets) or 'documents' (whole documents "
                              f"in each window), got {cfg.packing!r}")
    defaults, recorded = TrainConfig(), recorded or {}
    for name, allowed in SETTING_RANGES.items():
        value, default = getattr(cfg, name), getattr(defaults, name)
        allowed = RECORDED_RANGES[name] if name in recorded and recorded[name] == value else allowed
        if value is None and default is None:  # left to torch (threads)
            continue
        whole = not isinstance(default, float)
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not allowed.holds(value):
            why = allowed.beyond(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            raise RunRefusedError(f"{name} must be {allowed.phrase(whole=whole)} "
                                  f"({'a whole number' if whole else 'a finite number'}){why}, got {value!r}")
    _check_schedule(cfg, recorded)


def _check_schedule(cfg: TrainConfig, recorded: dict[str, Any]) -> None:
    """Refuse a ``min_lr`` above ``lr`` (a lowered ``--lr`` under the default ``--min-lr`` 3e-4 among them): the
    cosine would climb from the peak to its "floor" instead of falling. A resumed run's own pair goes on as it was.

    >>> _check_schedule(TrainConfig(lr=1e-4), {})
    Traceback (most recent call last):
    mmtok.core.errors.RunRefusedError: min_lr (--min-lr) 0.0003 is above lr (--lr) 0.0001: the learning rate would climb after the warmup instead of falling to its floor; give --min-lr at most --lr (e.g. --min-lr 1e-05), or a higher --lr
    """
    if cfg.min_lr <= cfg.lr or (recorded.get("lr") == cfg.lr and recorded.get("min_lr") == cfg.min_lr):
        return
    raise RunRefusedError(f"min_lr (--min-lr) {cfg.min_lr:g} is above lr (--lr) {cfg.lr:g}: the learning rate would "
                          "climb after the warmup instead of falling to its floor; give --min-lr at most --lr "
                          f"(e.g. --min-lr {cfg.lr / 10:g}), or a higher --lr")
