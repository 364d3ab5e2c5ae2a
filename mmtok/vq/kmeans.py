"""The one k-means: Lloyd's algorithm over exact chunked nearest-code search.

:func:`lloyd_step` is one iteration: assign every row to its nearest center
(:func:`mmtok.vq.search.nearest_code`), accumulate (optionally weighted) sums,
counts and squared errors per code, and return the new centers. :func:`lloyd`
iterates it from given centers and re-seeds an empty cluster on a row badly
served by the updated centers; :func:`kmeans` draws the seeds from the data first.

Under ``torch.distributed`` with ``distributed=True`` every rank passes its own
rows and the sums, counts and errors are all-reduced, and seeds and re-seeds
are drawn from all ranks' rows, so every rank ends with the same centers.

Axis legend: ``N`` rows (this rank's), ``K`` codes, ``d`` vector size.

>>> import torch
>>> rows = torch.tensor([[0.0], [0.2], [9.8], [10.0]])
>>> centers, counts = lloyd(rows, torch.tensor([[1.0], [5.0]]), iters=3)
>>> centers.flatten().tolist(), counts.tolist()
([0.10000000149011612, 9.899999618530273], [2.0, 2.0])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

import torch
import torch.distributed as dist
import torch.nn.functional as F

from mmtok.vq.search import nearest_code

__all__ = ["LloydStep", "Weights", "all_reduce_", "broadcast_", "kmeans", "lloyd", "lloyd_step", "sample_rows",
           "split_busiest_", "world_size"]

# per-row weights [N], or a function of the current assignment idx [N] that gives them
Weights = Union[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], None]  # noqa: UP007 - runtime alias


# --------------------------------------------------------------------------- torch.distributed


def world_size() -> int:
    """Ranks in the default process group (1 without one)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def all_reduce_(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all ranks in place (nothing without a process group); returns ``t``."""
    if world_size() > 1:
        dist.all_reduce(t)
    return t


def broadcast_(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's ``t`` on every rank, in place (nothing without a process group); returns ``t``."""
    if world_size() > 1:
        dist.broadcast(t, src=0)
    return t


def sample_rows(data: torch.Tensor, n: int, *, generator: torch.Generator | None = None,
                distributed: bool = False) -> torch.Tensor:
    """``n`` random rows ``[n, d]`` of ``data`` (float32); with ``distributed``, drawn from every rank in turn.

    Each rank draws ``n`` of its own rows (without replacement when it has enough).
    When ``distributed`` the draws are gathered and interleaved (rank 0's first,
    rank 1's first, ..., rank 0's second, ...) and the first ``n`` kept, so seeds
    and restarts come from all ranks' data alike and are the same on every rank;
    a rank without rows offers marked padding, dropped after the gather.
    ``generator`` (on the CPU or ``data``'s device) makes the local draw reproducible.
    """
    world = world_size() if distributed else 1
    if data.shape[0] == 0 and world == 1:
        raise ValueError(f"sample_rows needs rows to draw {n} from, got none")
    if world == 1:  # nothing to gather, so no padding column to mark
        return data.index_select(0, _pick(data.shape[0], n, generator, data.device).to(data.device)).float()
    mine = _draw(data, n, generator)  # (n, d + 1): the rows, then 1 for a real row, 0 for padding
    parts = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(parts, mine)
    mine = torch.stack(parts, 1).reshape(n * world, -1)  # (n world, d + 1), interleaved by rank
    mine = mine[mine[:, -1] > 0]
    if mine.shape[0] == 0:
        raise ValueError(f"sample_rows needs rows to draw {n} from, got none on any of {world} ranks")
    return mine[:n, :-1].contiguous()


def _draw(data: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` random rows of ``data`` with a last column of ones ``[n, d + 1]`` (float32); zeros where it has none."""
    if data.shape[0] == 0:
        return torch.zeros(n, data.shape[1] + 1, device=data.device)
    rows = data[_pick(data.shape[0], n, generator, data.device).to(data.device)].float()  # (n, d)
    return torch.cat([rows, rows.new_ones(n, 1)], 1)


def _pick(rows: int, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``n`` random row numbers below ``rows`` (> 0), distinct when there are enough, drawn on ``generator``'s
    device, or on ``device`` (the data's) without one."""
    where = generator.device if generator is not None else device
    if rows >= n:
        return torch.randperm(rows, generator=generator, device=where)[:n]
    return torch.randint(0, rows, (n,), generator=generator, device=where)


def _worst_rows(rows: torch.Tensor, row_error: torch.Tensor, n: int, distributed: bool) -> torch.Tensor:
    """The ``n`` rows (``[n, d]``) with the largest ``row_error``, over all ranks when ``distributed``.

    Each rank offers its ``n`` worst rows with their errors; the ``n`` worst of all
    offers are kept, in the same order on every rank. Fewer rows than ``n`` repeat.
    """
    m = min(n, rows.shape[0])
    top = row_error.topk(m)
    cand, err = rows[top.indices].float(), top.values.double()  # (m, d), (m,): float64 keeps errors past float32
    if m < n:  # pad the offer: padding never beats a real row
        cand = torch.cat([cand, cand.new_zeros(n - m, rows.shape[1])])
        err = torch.cat([err, err.new_full((n - m,), -float("inf"))])
    if distributed and world_size() > 1:
        cands = [torch.empty_like(cand) for _ in range(world_size())]
        errs = [torch.empty_like(err) for _ in range(world_size())]
        dist.all_gather(cands, cand.contiguous())
        dist.all_gather(errs, err.contiguous())
        cand, err = torch.cat(cands), torch.cat(errs)
    order = err.topk(n).indices
    real = order[torch.isfinite(err[order])]  # rows that exist: padding sorts last
    if real.numel() == 0:
        return cand[order]  # no rows anywhere: nothing better to offer
    return cand[real.repeat((n + real.numel() - 1) // real.numel())[:n]]


# --------------------------------------------------------------------------- one Lloyd step


@dataclass
class LloydStep:
    """What :func:`lloyd_step` returns; per-code figures are summed over ranks when distributed."""

    idx: torch.Tensor  # [N] int64 nearest center of each of this rank's rows
    row_error: torch.Tensor  # [N] weight × squared distance of each row to that center
    counts: torch.Tensor  # [K] float rows assigned to each code
    mass: torch.Tensor  # [K] total weight of those rows (equal to counts without weights)
    error: torch.Tensor  # [K] total row_error of each code's rows (its distortion)
    centers: torch.Tensor  # [K, d] weighted mean of each code's rows; a code with no rows keeps its center
    weights: torch.Tensor | None  # [N] the row weights used (None: all 1)


@torch.no_grad()
def lloyd_step(
    rows: torch.Tensor,
    centers: torch.Tensor,
    *,
    weights: Weights = None,
    cosine: bool = False,
    chunk_size: int | None = None,
    budget_mb: float | None = None,
    distributed: bool = False,
) -> LloydStep:
    """One Lloyd iteration of ``rows`` ``[N, d]`` against ``centers`` ``[K, d]`` (float32).

    ``weights``: per-row weights ``[N]``, or a function of the assignment ``idx`` that
    returns them (weights that depend on which code a row went to). With ``cosine``
    rows and centers are unit vectors and the new centers are normalised again.
    ``chunk_size``/``budget_mb`` bound the search's memory (:func:`nearest_code`).

    >>> s = lloyd_step(torch.tensor([[0.0], [1.0], [4.0]]), torch.tensor([[0.0], [5.0]]),
    ...                weights=torch.tensor([1.0, 3.0, 1.0]))
    >>> s.idx.tolist(), s.counts.tolist(), s.mass.tolist(), s.centers.flatten().tolist()
    ([0, 0, 1], [2.0, 1.0], [4.0, 1.0], [0.75, 4.0])
    """
    k = centers.shape[0]
    idx = nearest_code(rows, centers, cosine=cosine, chunk_size=chunk_size, budget_mb=budget_mb)
    w = weights(idx) if callable(weights) else weights
    w = None if w is None else w.to(rows)
    counts = torch.bincount(idx, minlength=k).float()
    mass = counts.clone() if w is None else torch.zeros(k, dtype=rows.dtype, device=rows.device).index_add_(0, idx, w)
    row_error, sums, error = _accumulate(rows, centers, idx, w, rows.dtype)
    if not bool(torch.isfinite(sums).all() & torch.isfinite(error).all()):
        # rows so large (near float32's maximum) that their sums or squared errors overflow float32: float64
        # sums and errors, the centers (means of float32 rows) float32 again
        row_error, sums, error = _accumulate(rows, centers, idx, w, torch.float64)
    if distributed:
        for t in (sums, counts, mass, error):
            all_reduce_(t)
    has = mass > 0
    new = torch.where(has[:, None], (sums / torch.where(has, mass, 1.0).to(sums)[:, None]).to(centers), centers)
    if cosine:
        new = F.normalize(new, dim=1)
    return LloydStep(idx, row_error, counts, mass, error, new, w)


def _accumulate(rows: torch.Tensor, centers: torch.Tensor, idx: torch.Tensor, w: torch.Tensor | None,
                kind: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's (weighted) squared error ``[N]``, the (weighted) sum of each code's rows ``[K, d]`` and its
    total error ``[K]``, in ``kind`` (float64 where float32 would overflow)."""
    r, c = rows.to(kind), centers.to(kind)
    row_error = (r - c[idx]).pow(2).sum(1)  # (N,)
    if w is not None:
        row_error = row_error * w.to(kind)
        r = r * w.to(kind)[:, None]
    sums = torch.zeros_like(c).index_add_(0, idx, r)
    error = torch.zeros(c.shape[0], dtype=kind, device=c.device).index_add_(0, idx, row_error)
    return row_error, sums, error


# --------------------------------------------------------------------------- iterated


@torch.no_grad()
def lloyd(
    rows: torch.Tensor,
    centers: torch.Tensor,
    iters: int,
    *,
    weights: Weights = None,
    cosine: bool = False,
    chunk_size: int | None = None,
    budget_mb: float | None = None,
    distributed: bool = False,
    reseed_pool: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``iters`` :func:`lloyd_step` iterations from ``centers`` ``[K, d]``.

    A code left without rows moves onto a row badly served by the updated centers
    (largest weighted squared error): with ``reseed_pool`` 0, exactly the worst rows,
    one distinct row per empty code, the worst first (over all ranks when
    ``distributed``); with ``reseed_pool`` > 0, rows drawn at random (``generator``)
    among each rank's worst ``max(n_empty, reseed_pool * N)`` rows, from every rank
    in turn when ``distributed`` (several empty codes then spread over several badly
    served regions instead of the few farthest outliers). Returns the centers and
    the code counts ``[K]`` of the last assignment (summed over ranks when ``distributed``).
    """
    if not 0.0 <= reseed_pool <= 1.0:
        raise ValueError(f"lloyd needs 0 ≤ reseed_pool ≤ 1, got {reseed_pool}")
    centers = centers.float().clone()
    counts = torch.zeros(centers.shape[0], device=centers.device)
    for _ in range(iters):
        step = lloyd_step(rows, centers, weights=weights, cosine=cosine, chunk_size=chunk_size,
                          budget_mb=budget_mb, distributed=distributed)
        counts, centers = step.counts, step.centers
        empty = step.mass <= 0
        n_empty = int(empty.sum())
        if n_empty:
            centers[empty] = _reseeds(rows, centers, step, n_empty, reseed_pool, distributed, generator)
            if cosine:
                centers = F.normalize(centers, dim=1)
    return centers, counts


def _reseeds(rows: torch.Tensor, centers: torch.Tensor, step: LloydStep, n: int, pool: float, distributed: bool,
             generator: torch.Generator | None) -> torch.Tensor:
    """``n`` rows ``[n, d]`` for the empty codes to move onto (see :func:`lloyd`)."""
    err = (rows - centers[step.idx]).pow(2).sum(1)  # served by the centers as they are now
    if step.weights is not None:
        err = err * step.weights
    if pool <= 0:
        return _worst_rows(rows, err, n, distributed)
    far = rows[err.topk(min(rows.shape[0], max(n, int(pool * rows.shape[0])))).indices]
    return sample_rows(far, n, generator=generator, distributed=distributed)


@torch.no_grad()
def kmeans(
    rows: torch.Tensor,
    k: int,
    iters: int,
    *,
    weights: Weights = None,
    cosine: bool = False,
    chunk_size: int | None = None,
    budget_mb: float | None = None,
    distributed: bool = False,
    reseed_pool: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means of ``rows`` ``[N, d]``: ``k`` seeds drawn at random from the rows (of all
    ranks when ``distributed``: :func:`sample_rows`), then :func:`lloyd` (``generator`` draws
    the seeds and the re-seeds).

    >>> g = torch.Generator().manual_seed(0)
    >>> rows = torch.cat([torch.randn(50, 2, generator=g) * 0.1 + c for c in (0.0, 10.0)])
    >>> centers, counts = kmeans(rows, 2, 5, generator=g)
    >>> sorted(round(float(c)) for c in centers[:, 0]), sorted(counts.tolist())
    ([0, 10], [50.0, 50.0])
    """
    seeds = sample_rows(rows, k, generator=generator, distributed=distributed)
    if cosine:
        seeds = F.normalize(seeds, dim=1)
    return lloyd(rows, seeds, iters, weights=weights, cosine=cosine, chunk_size=chunk_size,
                 budget_mb=budget_mb, distributed=distributed, reseed_pool=reseed_pool, generator=generator)


def split_busiest_(centers: torch.Tensor, counts: torch.Tensor, err: torch.Tensor, min_frac: float, *,
                   seed: int, cosine: bool = False) -> None:
    """LBG split of ``centers`` ``[K, d]``, in place: every code that won fewer than ``min_frac`` times the mean
    of ``counts`` ``[K]`` moves next to one of the codes with the largest total error ``err`` ``[K]``, and the two
    halves move apart by a seeded jitter of a tenth of that cluster's spread (unit rows again with ``cosine``)."""
    k, d = centers.shape
    low = counts < min_frac * counts.mean()
    n_low = int(low.sum())
    if not n_low:
        return
    worst = err.masked_fill(low, -1.0).topk(min(n_low, k - n_low)).indices  # (m,)
    src = worst.repeat((n_low + worst.numel() - 1) // worst.numel())[:n_low]
    spread = (err[src] / counts[src].clamp_min(1) / d).sqrt()[:, None]  # per-dim cluster std
    g = torch.Generator(device="cpu").manual_seed(seed)
    jitter = 0.1 * spread * torch.randn(n_low, d, generator=g, dtype=centers.dtype).to(centers.device)
    centers[low] = centers[src] + jitter
    centers[src] = centers[src] - jitter
    if cosine:
        centers.copy_(F.normalize(centers, dim=1))
