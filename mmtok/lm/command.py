"""``mmtok train``: its options (one per :class:`~mmtok.lm.train_config.TrainConfig` field, each number checked as it
is parsed against :data:`~mmtok.lm.train_config.SETTING_RANGES`, naming the flag) and the command, which on ``--resume``
takes the run's own settings for the flags left out."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from mmtok.core.command_line import HelpFormatter
from mmtok.core.device import check_device_option
from mmtok.core.ranges import count_arg, out_of_range, seed_arg
from mmtok.core.trainstate import options_given

__all__ = ["main", "train_parser"]

_TRAIN_HELP = {
    "preset": "model size", "packing": "how documents fill the windows: 'stream' cuts them at fixed offsets of the "
    "documents read back to back, 'documents' fills each with whole documents and pads the rest (loss weight 0; "
    "only documents longer than T + 1 tokens are cut)", "seq_len": "tokens per training window (T); documents longer than T are cut across "
    "windows, said before the first step with a T long enough for 95%% of them (a 16×16 image alone is 274 tokens); "
    "windows that hold several documents attend through a B×T×T mask, memory quadratic in T: a step "
    "that would not fit in the memory available is refused", "batch_size": "windows per micro-batch per process", "grad_accum": "micro-batches per optimizer step", "steps": "optimizer steps in total",
    "lr": "peak learning rate", "min_lr": "learning rate at the end of the cosine", "warmup": "linear warmup steps",
    "weight_decay": "AdamW weight decay (matrices only)", "grad_clip": "max global gradient norm (0: off)",
    "rope_3d": "3-D rotary (time, row, column) positions for media tokens, else 1-D", "dropout": "model dropout",
    "seed": "seeds data order, init and dropout, in [0, 2**32) (left out, --resume takes the run's own, which may "
    "be any in [0, 2**63))", "save_every": "steps between checkpoints",
    "keep_last": "checkpoints kept", "compile": "torch.compile the model",
    "device": "cpu or cuda (default: cuda when available)", "threads": "CPU threads for torch (default: torch's)",
}
_AT_LEAST_1 = ("seq_len", "batch_size", "grad_accum", "steps", "save_every", "keep_last", "threads")


def train_parser() -> argparse.ArgumentParser:
    """The options of ``mmtok train``: one per :class:`~mmtok.lm.train_config.TrainConfig` field, each with its default."""
    from dataclasses import asdict

    from mmtok.data.packing import PACKINGS
    from mmtok.lm.model import PRESETS
    from mmtok.lm.train_config import TrainConfig

    ap = argparse.ArgumentParser(allow_abbrev=False, prog="mmtok train", description="Train the transformer on token shards; "
                                 "ends by printing the run folder, its newest checkpoint and the final loss.",
                                 formatter_class=HelpFormatter)
    ap.add_argument("--data", metavar="SHARDS", help="shard folder from 'mmtok tokenize' (with --resume: the run's "
                    "own when left out)")
    ap.add_argument("--out", required=True, metavar="RUN", help="run folder: checkpoints, log.jsonl, loss.png (with matplotlib)")
    again = ap.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from the newest intact checkpoint in --out, "
                       "with the run's own settings for every flag left out (--steps N extends it)")
    again.add_argument("--overwrite", action="store_true", help="start over in an --out that holds a run")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    for name, default in asdict(TrainConfig()).items():
        if name in ("data", "out"):
            continue
        flag, text = "--" + name.replace("_", "-"), _TRAIN_HELP[name]
        if isinstance(default, bool):
            ap.add_argument(flag, action="store_true", default=default, help=text)
        elif name in ("preset", "packing"):
            ap.add_argument(flag, default=default, choices=list(PRESETS if name == "preset" else PACKINGS), help=text)
        else:
            kind = count_arg if name in _AT_LEAST_1 else seed_arg if name == "seed" else (
                type(default) if default is not None else str)
            ap.add_argument(flag, type=kind, default=default, help=text)
    return ap


def main(argv: Sequence[str]) -> int:
    """``mmtok train ARGS``: train (or resume) a run; prints the run folder, its newest checkpoint and the final loss."""
    import torch.distributed as dist

    from mmtok.lm.runs import last_log_row, latest_checkpoint
    from mmtok.lm.train import train
    from mmtok.lm.train_config import SETTING_RANGES, TrainConfig

    argv = list(argv)
    parser = train_parser()
    args = parser.parse_args(argv)
    refused = out_of_range(parser, args, SETTING_RANGES)  # --lr nan, --warmup -5, --dropout 1, ...: exit 2
    if refused:
        parser.error(refused)
    opts = vars(args)
    check_device_option(parser, opts["device"])
    resume, overwrite, progress = opts.pop("resume"), opts.pop("overwrite"), not opts.pop("no_progress")
    if resume:
        _take_run_settings(opts, argv)
    if opts["data"] is None:
        parser.error("the following arguments are required: --data" if not resume else
                     f"--data: no checkpoint in {opts['out']} records the run's shard folder; give --data SHARDS")
    try:
        folder = train(TrainConfig(**opts), resume=resume, overwrite=overwrite, progress=progress)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        loss = last_log_row(folder).get("loss", float("nan"))
        print(f"run {folder}: newest checkpoint {latest_checkpoint(folder)}, final loss {loss:.4f}")
    return 0


def _take_run_settings(opts: dict[str, Any], argv: list[str]) -> None:
    """``mmtok train --resume``: every setting whose flag is not on the command line is the run's own
    (from its newest readable checkpoint), not the default; the flags given win. The machine's own
    settings (``--device``, ``--threads``, ``--compile``) are not carried over; ``--data`` is, when it is left out
    (said on stderr)."""
    from mmtok.lm.runs import run_settings

    saved, given = run_settings(opts["out"]) or {}, options_given(train_parser(), argv)
    for name in opts:
        if name in saved and name not in ("data", "out", "device", "threads", "compile") and name not in given:
            opts[name] = saved[name]
    if opts["data"] is None and isinstance(saved.get("data"), str) and saved["data"]:
        opts["data"] = saved["data"]  # as the run recorded it: relative to the folder it was started from
        if not os.path.isabs(opts["data"]) and not os.path.exists(opts["data"]):
            from mmtok.core.errors import UsageError

            raise UsageError(f"--resume: the run's own --data {opts['data']} is a path relative to the folder the run "
                             f"was started from, and {os.getcwd()} has no {opts['data']}: run the command from that "
                             "folder, or give --data SHARDS")
        print(f"mmtok train: --data {opts['data']} (the run's own)", file=sys.stderr)
