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
only; how many is a choice made on a validation split. A pruned tokenizer's
codes decode exactly as the kept codes did, so its record names the
tokenizers it decodes as (:func:`decodes_as`), for as long as its weights stay
the ones the record names.

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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmtok.core.errors import MmtokError, UsageError, report_error
from mmtok.core.module_io import load_module, save_module
from mmtok.core.ranges import MAX_THREADS, threads_arg
from mmtok.core.run_folder import run_model
from mmtok.vq.quantizer import VectorQuantizer

__all__ = ["add_prune_arguments", "decodes_as", "dropped_share", "most_used", "prune_tokenizer", "run_prune_command",
           "save_pruned", "twins_changed"]


def most_used(share: torch.Tensor, keep: int, *, last: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of the ``keep`` codes with the largest ``share`` (counts or weights ``[K]``), ascending.

    Of codes with equal share those marked in ``last`` (bool ``[K]``: codes encode never gives, such as
    twins) come after the others, then ties go to the lower index, so the choice is deterministic.

    >>> most_used(torch.tensor([0.5, 0.0, 0.0, 0.0]), 2, last=torch.tensor([False, True, False, False])).tolist()
    [0, 2]
    """
    share = torch.as_tensor(share, dtype=torch.float64).flatten()
    k = share.numel()
    if not 1 <= keep <= k:
        raise ValueError(f"keep must be in 1..{k} (the codebook size), got {keep}")
    if not bool(torch.isfinite(share).all()) or bool((share < 0).any()):
        raise ValueError("code shares must be finite and non-negative")
    order = torch.arange(k)
    if last is not None:  # marked codes after the others, each group in index order
        last = torch.as_tensor(last, dtype=torch.bool).flatten()
        if last.numel() != k:
            raise ValueError(f"last marks {last.numel()} codes, and there are {k} code shares")
        order = torch.sort(last.long(), stable=True).indices
    # stable sort on descending share: equal shares stay in that order
    order = order[torch.sort(-share[order], stable=True).indices][:keep]
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


def decodes_as(tokenizer: nn.Module) -> list[str]:
    """The fingerprints of the tokenizers whose codes ``tokenizer``'s codes decode exactly as, oldest first:
    those its codebook was pruned from, through every prune (each keeps the kept codes' vectors and the decoder).

    Read from the ``pruned`` record of its provenance, or of the tokenizer its checkpoint was built from (an
    attached vocoder's checkpoint records it under ``tokenizer``, with its fingerprint and provenance), and
    trusted only while ``tokenizer`` has the weights the record was written for (the record's ``fingerprint``):
    a decoder tuned since, or any other change, ends the chain. A record written before pruned checkpoints
    named their own fingerprint gives its source, unless the decoder was tuned since. [] when never pruned.
    """
    fingerprint = getattr(tokenizer, "fingerprint", None)
    prov = getattr(tokenizer, "provenance", None)
    while isinstance(prov, Mapping) and fingerprint is not None:
        record = prov.get("pruned")
        if isinstance(record, Mapping):
            if "fingerprint" in record:
                return list(record.get("decodes_as") or []) if record["fingerprint"] == fingerprint else []
            source = record.get("from_fingerprint")
            return [source] if source and "decoder_tuned" not in prov else []
        built_from = prov.get("tokenizer")
        if not isinstance(built_from, Mapping) or built_from.get("fingerprint") != fingerprint:
            return []
        prov = built_from.get("provenance")
    return []


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
                counted_on: dict[str, Any], command: str | None = None,
                counts: torch.Tensor | None = None) -> dict[str, Any]:
    """Prune ``tokenizer`` to its ``keep`` most used codes by ``share`` and save it at ``out``.

    ``counts`` are the counted tokens of each code ``[K]`` where ``share`` weighs them otherwise (None: ``share``
    is proportional to them). Spare places (``keep`` above the codes used) go to unused codes that encode can
    give before its twins. The provenance is the tokenizer's own with a ``pruned`` record added: the source
    checkpoint and its fingerprint, the pruned one's ``fingerprint`` and the tokenizers its codes decode as
    (``decodes_as``: the source's, :func:`decodes_as`, then the source), the sizes before and after, the share of
    the counted tokens that fell on dropped codes (``dropped_share_counted``; with ``counts``, also the share
    the ranking weighed, ``dropped_share_weighted``), the kept codes that encode gives as another twin than
    before (``twins_changed``: their inputs change code; 0 but for codes a few 1e-4 of the codebook's radius
    apart), and what was counted. Its ``model_version`` says it was pruned, and the source's ``chosen_on``
    figures move into the record. Returns that record.
    """
    share = torch.as_tensor(share, dtype=torch.float64).flatten()
    before = int(tokenizer.cfg.vq.codebook_size)  # type: ignore[union-attr]
    if share.numel() != before:
        raise ValueError(f"got {share.numel()} code shares for a codebook of {before} codes")
    if counts is not None:
        counts = torch.as_tensor(counts, dtype=torch.float64).flatten()
        if counts.numel() != before:
            raise ValueError(f"got {counts.numel()} token counts for a codebook of {before} codes")
    vq = getattr(tokenizer, "vq", None)
    twins = vq.twin_table().cpu() != torch.arange(before) if isinstance(vq, VectorQuantizer) else None
    kept = most_used(share, keep, last=twins)
    small, old_to_new = prune_tokenizer(tokenizer, kept)
    source_fingerprint = getattr(tokenizer, "fingerprint", None)
    record: dict[str, Any] = {
        "from": source,
        "from_fingerprint": source_fingerprint,
        "fingerprint": getattr(small, "fingerprint", None),
        "decodes_as": [*decodes_as(tokenizer), source_fingerprint] if source_fingerprint else [],
        "codebook_size_before": before,
        "codebook_size": keep,
        "dropped_share_counted": round(dropped_share(share if counts is None else counts, kept), 6),
        **({} if counts is None else {"dropped_share_weighted": round(dropped_share(share, kept), 6)}),
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
    parser.add_argument("--model", required=True, help="the tokenizer: a shipped name, a checkpoint folder, or the "
                        "folder of a training run, whose model (RUN/model) is read")
    parser.add_argument("--keep", required=True, type=int, help="codes to keep (the new codebook size K')")
    parser.add_argument("--out", required=True, type=Path, help="folder for the pruned checkpoint (must not exist)")
    parser.add_argument("--threads", type=threads_arg, default=None,
                        help=f"torch CPU threads, 1 to {MAX_THREADS} (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_prune_command(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str] | None,
                      cls: type, modality: str,
                      count: Callable[[Any], tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]], *,
                      debug: bool | None = None) -> int:
    """The body of ``mmtok prune-codebook MODALITY``: refuse an existing ``--out`` and a ``--keep``
    outside 2..K (exit 2), load ``--model`` as ``cls`` (a training run's folder: its model), ``count(tok)`` -> (code shares, token counts or
    None, what was counted), then :func:`save_pruned` and one JSON line on stdout. A bad model or data
    exits 2 with a one-line message (:func:`~mmtok.core.errors.report_error`; with ``debug``, ``mmtok
    --debug``, its traceback first) and writes nothing."""
    if args.out.exists():
        parser.error(f"--out {args.out} already exists; choose a new folder")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        args.model = run_model(args.model, flag="--model")  # a run folder: its model, RUN/model
        tok = load_module(cls, args.model)
        if not 2 <= args.keep <= tok.codebook_size:  # a codebook holds at least two codes
            parser.error(f"--keep must be in 2..{tok.codebook_size} (the codebook size of {args.model}), "
                         f"got {args.keep}")
        share, counts, info = count(tok)
        command = f"mmtok prune-codebook {modality} " + shlex.join(list(argv) if argv is not None else sys.argv[1:])
        record = save_pruned(tok, share, args.keep, args.out, source=str(args.model), counted_on=info,
                             command=command, counts=counts)
    except (MmtokError, FileNotFoundError) as e:  # what it was given is refused: exit 2, as every command
        refused = UsageError(f"prune-codebook {modality}: {e}")
        refused.__cause__ = e  # the traceback under debug is the one of what was refused
        return report_error(refused, debug=debug)
    print(json.dumps({"pruned": str(args.out), **{k: v for k, v in record.items() if k != "counted_on"},
                      "tokens_counted": info["tokens"]}))
    return 0
