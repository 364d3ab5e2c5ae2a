"""Smaller codebooks from trained ones: keep the codes the training data picks most.

A codebook trained with restarts ends with codes that the training data visits
rarely and held-out data almost never: they cost ids in the vocabulary and
lower the usage a language model sees, and they add little to reconstruction.
:func:`most_used` ranks codes by how often the training data picks them and
:func:`prune_tokenizer` writes the tokenizer with only the top ``K'`` codes
kept (each kept code keeps its vector, so anything encoded to a kept code
stays the same unless pruning changes which kept codes are twins, which
:meth:`~mmtok.vq.quantizer.VectorQuantizer.prune_` explains and
:func:`save_pruned` counts; an input whose code was dropped moves to its
next-nearest kept code). Which codes to keep is decided on training data
only; how many is a choice made on a validation split.

>>> import torch
>>> share = torch.tensor([0.5, 0.0, 0.3, 0.2])
>>> most_used(share, 3).tolist()
[0, 2, 3]
>>> round(dropped_share(share, most_used(share, 2)), 3)
0.2
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmtok.core.errors import MmtokError
from mmtok.core.module_io import load_module, save_module
from mmtok.vq.quantizer import VectorQuantizer

__all__ = ["add_prune_arguments", "dropped_share", "most_used", "prune_tokenizer", "run_prune_command", "save_pruned",
           "twins_changed"]


def most_used(share: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices of the ``keep`` codes with the largest ``share`` (counts or weights ``[K]``), ascending.

    Ties go to the lower index, so the choice is deterministic.
    """
    share = torch.as_tensor(share, dtype=torch.float64).flatten()
    k = share.numel()
    if not 1 <= keep <= k:
        raise ValueError(f"keep must be in 1..{k} (the codebook size), got {keep}")
    if not bool(torch.isfinite(share).all()) or bool((share < 0).any()):
        raise ValueError("code shares must be finite and non-negative")
    # stable sort on descending share: equal shares stay in index order
    order = torch.sort(-share, stable=True).indices[:keep]
    return order.sort().values


def dropped_share(share: torch.Tensor, keep: torch.Tensor) -> float:
    """Fraction of the total ``share`` that falls on codes not in ``keep``."""
    share = torch.as_tensor(share, dtype=torch.float64).flatten()
    total = float(share.sum())
    if total <= 0:
        return 0.0
    return 1.0 - float(share[torch.as_tensor(keep, dtype=torch.long)].sum()) / total


def twins_changed(before: VectorQuantizer, after: VectorQuantizer, old_to_new: torch.Tensor) -> int:
    """How many kept codes whose twin group's first code was kept :meth:`~VectorQuantizer.encode` now
    gives as another code than that one (renumbered): ``after`` is ``before`` pruned with map ``old_to_new``."""
    first = old_to_new[before.twin_table().cpu()]  # (K,) new index of each old code's first twin, -1: dropped
    kept = (old_to_new >= 0) & (first >= 0)
    return int((after.twin_table().cpu()[old_to_new[kept]] != first[kept]).sum())


def prune_tokenizer(tokenizer: nn.Module, keep: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """A copy of ``tokenizer`` (any module with ``.vq`` and ``.cfg.vq``) keeping only codes ``keep``.

    Returns the copy and the map from old to new code indices (``-1``: dropped).
    The original is not changed.
    """
    vq = getattr(tokenizer, "vq", None)
    cfg = getattr(tokenizer, "cfg", None)
    if not isinstance(vq, VectorQuantizer) or not hasattr(cfg, "vq"):
        raise TypeError(f"prune_tokenizer needs a tokenizer with a VectorQuantizer .vq and .cfg.vq, "
                        f"got {type(tokenizer).__name__}")
    out: Any = copy.deepcopy(tokenizer)
    old_to_new = out.vq.prune_(keep)
    out.cfg = copy.deepcopy(out.cfg)
    out.cfg.vq = out.vq.cfg
    return out, old_to_new


def save_pruned(tokenizer: nn.Module, share: torch.Tensor, keep: int, out: Any, *, source: str,
                counted_on: dict[str, Any], command: str | None = None) -> dict[str, Any]:
    """Prune ``tokenizer`` to its ``keep`` most used codes by ``share`` and save it at ``out``.

    The provenance is the tokenizer's own with a ``pruned`` record added: the
    source checkpoint, the sizes before and after, the share of the counted
    tokens that fell on dropped codes, the kept codes that encode gives as
    another twin than before (``twins_changed``: their inputs change code; 0
    but for codes a few 1e-4 of the codebook's radius apart), and what was
    counted. Its ``model_version`` says it was pruned, and the source's
    ``chosen_on`` figures move into the record. Returns that record.
    """
    share = torch.as_tensor(share, dtype=torch.float64).flatten()
    before = int(tokenizer.cfg.vq.codebook_size)  # type: ignore[union-attr]
    if share.numel() != before:
        raise ValueError(f"got {share.numel()} code shares for a codebook of {before} codes")
    kept = most_used(share, keep)
    small, old_to_new = prune_tokenizer(tokenizer, kept)
    record: dict[str, Any] = {
        "from": source,
        "from_fingerprint": getattr(tokenizer, "fingerprint", None),
        "codebook_size_before": before,
        "codebook_size": keep,
        "dropped_share_counted": round(dropped_share(share, kept), 6),
        "unused_counted": int((share == 0).sum()),
        "twins_changed": twins_changed(tokenizer.vq, small.vq, old_to_new),  # type: ignore[arg-type]
        "counted_on": counted_on,
    }
    if command:
        record["command"] = command
    prov = dict(getattr(tokenizer, "provenance", None) or {})
    if prov.get("model_version"):  # another model now: its messages must not name it as the one it came from
        record["from_model_version"] = prov["model_version"]
        prov["model_version"] = f"{prov['model_version']}, pruned to {keep} codes"
    if "chosen_on" in prov:  # the figures it was chosen on were the unpruned model's
        record["from_chosen_on"] = prov.pop("chosen_on")
    prov["pruned"] = record
    save_module(small, out, provenance=prov)
    return record


def add_prune_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every ``mmtok prune-codebook MODALITY`` takes: ``--model``, ``--keep``, ``--out``,
    ``--threads`` and ``--no-progress``."""
    parser.add_argument("--model", required=True, help="the tokenizer: a shipped name or a checkpoint folder")
    parser.add_argument("--keep", required=True, type=int, help="codes to keep (the new codebook size K')")
    parser.add_argument("--out", required=True, type=Path, help="folder for the pruned checkpoint (must not exist)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_prune_command(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str] | None,
                      cls: type, modality: str,
                      count: Callable[[Any], tuple[torch.Tensor, dict[str, Any]]]) -> int:
    """The body of ``mmtok prune-codebook MODALITY``: refuse an existing ``--out`` and a ``--keep``
    outside 1..K (exit 2), load ``--model`` as ``cls``, ``count(tok)`` -> (code shares, what was
    counted), then :func:`save_pruned` and one JSON line on stdout. A bad model or data exits 1
    with a message and writes nothing."""
    if args.out.exists():
        parser.error(f"--out {args.out} already exists; choose a new folder")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        tok = load_module(cls, args.model)
        if not 2 <= args.keep <= tok.codebook_size:  # a codebook holds at least two codes
            parser.error(f"--keep must be in 2..{tok.codebook_size} (the codebook size of {args.model}), "
                         f"got {args.keep}")
        share, info = count(tok)
        command = f"mmtok prune-codebook {modality} " + shlex.join(list(argv) if argv is not None else sys.argv[1:])
        record = save_pruned(tok, share, args.keep, args.out, source=str(args.model), counted_on=info,
                             command=command)
    except (MmtokError, FileNotFoundError) as e:  # what it was given is refused: exit 2, as every command
        print(f"mmtok: error: prune-codebook {modality}: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(json.dumps({"pruned": str(args.out), **{k: v for k, v in record.items() if k != "counted_on"},
                      "tokens_counted": info["tokens"]}))
    return 0
