"""The processes of one ``torchrun`` run resume together: every rank finds its checkpoint in ``--out`` on its own
(only rank 0 writes there), so a folder that is not the same on every node (a local disk on each) gives ranks
that would train from different steps, then wait for one another for good. :func:`resume_on_every_rank`
compares what each rank found and stops all of them with one error when they differ, or when one of them
could not resume at all. :func:`check_launch` refuses a ``WORLD_SIZE`` in the environment that no launcher set.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.distributed as dist

from mmtok.core.errors import TrainingError, UsageError

__all__ = ["check_launch", "disagreement", "resume_on_every_rank"]

Loaded = tuple[Path, dict[str, Any]] | None  # the checkpoint a rank resumes from and its train state; None: none


def check_launch(env: dict[str, str] | None = None) -> None:
    """A :class:`UsageError` when the environment (``os.environ`` unless ``env``) makes this one of several
    processes (``WORLD_SIZE`` above 1) but lacks the ``MASTER_ADDR`` and ``MASTER_PORT`` a launcher such as
    ``torchrun`` sets: ``RANK`` and ``WORLD_SIZE`` left over in a shell (from ``mmtok tokenize``'s parts, say)
    would otherwise stop the run with torch's rendezvous error, or wait for processes that never come.

    >>> check_launch({"RANK": "0", "WORLD_SIZE": "1"})  # one process: nothing to check
    """
    env = dict(os.environ) if env is None else env
    world = env.get("WORLD_SIZE", "1").strip()
    if not world.isdigit() or int(world) <= 1 or ("MASTER_ADDR" in env and "MASTER_PORT" in env):
        return
    raise UsageError(f"WORLD_SIZE={world} and RANK={env.get('RANK', '(unset)')} in the environment make this one of "
                     f"{world} training processes, but no launcher set MASTER_ADDR and MASTER_PORT: start the run "
                     f"with torchrun --nproc-per-node {world} -m mmtok.cli train ..., or unset RANK and WORLD_SIZE "
                     "to train in one process; nothing was written")


def resume_on_every_rank(load: Callable[[], Loaded], *, folder: Path) -> Loaded:
    """``load()`` on this rank (the newest intact checkpoint in ``folder`` and its state), then the same on every
    rank of the process group, or a :class:`TrainingError` on every rank: one that names which rank found
    which checkpoint (``--out`` must be one folder shared by every node), or, when ``load`` failed on another
    rank, that rank's error (the rank that failed raises its own)."""
    failure: Exception | None = None
    try:
        loaded = load()
    except Exception as e:  # said by every rank below: none is left waiting for the others
        loaded, failure = None, e
    state = loaded[1] if loaded is not None else {}
    mine = {"host": socket.gethostname(), "checkpoint": loaded[0].name if loaded is not None else None,
            "step": int(state.get("step", 0)), "consumed": int((state.get("extra") or {}).get("consumed", 0)),
            "error": f"{type(failure).__name__}: {failure}" if failure is not None else None}
    seen: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(seen, mine)
    if failure is not None:
        raise failure
    if message := disagreement(seen, folder=folder):
        raise TrainingError(message)
    return loaded


def disagreement(seen: list[dict[str, Any]], *, folder: Path) -> str | None:
    """What is wrong with the ranks' findings ``seen`` (rank order; each ``host``, ``checkpoint``, ``step``,
    ``consumed``, ``error``), in one line; None when every rank found the same checkpoint (or none)."""
    for rank, s in enumerate(seen):
        if s["error"] is not None:
            return f"rank {rank} (host {s['host']}) could not resume from {folder}: {s['error']}"
    found: dict[tuple[Any, ...], list[int]] = {}
    for rank, s in enumerate(seen):
        found.setdefault((s["checkpoint"], s["step"], s["consumed"]), []).append(rank)
    if len(found) == 1:
        return None
    parts = []
    for (name, step, _), ranks in sorted(found.items(), key=lambda kv: kv[1][0]):
        hosts = sorted({seen[r]["host"] for r in ranks})
        where = ", ".join(hosts[:3]) + (f" and {len(hosts) - 3} more" if len(hosts) > 3 else "")
        what = f"{name} (step {step})" if name is not None else "none (a new run)"
        parts.append(f"{_ranks(ranks)} (host{'s' if len(hosts) > 1 else ''} {where}) {what}")
    return (f"the processes of this run found different checkpoints to resume from in {folder}: {', '.join(parts)}; "
            "--out must be one folder shared by every node (the same path on a shared file system): put the run "
            "there, or resume it on one node")


def _ranks(ranks: list[int]) -> str:
    """``rank 3``, ``ranks 0-3``, ``ranks 0-1, 4``: ascending ranks, consecutive ones as a range."""
    spans: list[list[int]] = []
    for r in ranks:
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)
    return f"rank{'s' if len(ranks) > 1 else ''} {text}"
