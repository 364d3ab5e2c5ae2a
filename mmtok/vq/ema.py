"""The codebook's EMA statistics: one update step and dead-code restarts.

A :class:`~mmtok.vq.quantizer.VectorQuantizer` keeps, per code, an exponential moving average
of the number of vectors it won per training step (``ema_count [K]``) and of their sum
(``ema_sum [K, d]``); each code is their ratio, the count Laplace-smoothed by ``eps``
(van den Oord et al. 2017, appendix A.1). A fresh codebook starts consistent with its codes:
count 1 and sum equal to the code (as vector-quantize-pytorch does), so a code no vector picks
stays where it is.

Scale: vectors per step of one rank. Under ``torch.distributed`` a step's counts and sums are
all-reduced (summed over ranks) and divided by the world size (:func:`per_rank`); k-means
initialisation and rebalancing set the statistics on that scale too. So ``dead_code_threshold``
counts vectors per step per rank, the same figure on one process as on many ranks with the
same batch each.

Axis legend: ``N`` vectors of this rank, ``K`` codes, ``d`` lookup size.

>>> count, total = torch.ones(2), torch.tensor([[0.0], [10.0]])
>>> codes = ema_step(count, total, torch.tensor([3.0, 0.0]), torch.tensor([[6.0], [0.0]]), decay=0.5, eps=1e-5)
>>> count.tolist(), [round(c, 3) for c in codes.flatten().tolist()]
([2.0, 0.5], [1.5, 10.0])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmtok.vq.kmeans import all_reduce_, sample_rows, world_size
from mmtok.vq.search import new_points_mask

__all__ = ["ema_step", "first_true", "per_rank", "restart_dead"]


def per_rank(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over all ranks and divided by their number, in place (nothing on one process)."""
    all_reduce_(t)
    world = world_size()
    if world > 1:
        t /= world
    return t


@torch.no_grad()
def ema_step(ema_count: torch.Tensor, ema_sum: torch.Tensor, counts: torch.Tensor, sums: torch.Tensor, *,
             decay: float, eps: float, cosine: bool = False, out: torch.Tensor | None = None) -> torch.Tensor:
    """Fold one step's ``counts`` ``[K]`` and ``sums`` ``[K, d]`` into the EMA buffers (in place) and
    return the new codes ``[K, d]``: each sum over its Laplace-smoothed count (unit rows with ``cosine``),
    written into ``out`` when given (the codebook itself: no copy)."""
    k = ema_count.shape[0]
    # both buffers in one pass each (one kernel for the pair on a GPU); the same arithmetic as one by one
    torch._foreach_mul_([ema_count, ema_sum], decay)
    torch._foreach_add_([ema_count, ema_sum], [counts, sums], alpha=1 - decay)
    n = ema_count.sum()
    smoothed = (ema_count + eps) / (n + k * eps) * n  # (K,)
    if not cosine:
        return torch.div(ema_sum, smoothed[:, None], out=out) if out is not None else ema_sum / smoothed[:, None]
    embed = ema_sum / smoothed[:, None]
    return F.normalize(embed, dim=1, out=out) if out is not None else F.normalize(embed, dim=1)


@torch.no_grad()
def restart_dead(embed: torch.Tensor, ema_count: torch.Tensor, ema_sum: torch.Tensor, z: torch.Tensor, *,
                 threshold: float, rate: float, cosine: bool = False) -> None:
    """Move codes that (almost) nobody picks onto random recent inputs ``z`` ``[N, d]`` of all ranks, in place.

    A code is dead below ``threshold`` vectors per step (per rank), or below ``rate`` times the mean
    EMA count (the rate every code would have if all were used equally), whichever is higher.

    Each restart takes an input that is no twin of a code or of another restart
    (:func:`~mmtok.vq.search.new_points_mask`), so a batch full of one vector (digital silence)
    restarts at most one code there, not a cluster of twins; with ``cosine`` it is no zero input either
    (padding: it has no direction, and a code there would not be a unit vector); when fewer such inputs come
    than codes are dead, the rest wait for a later step. Restarted codes count as freshly used.
    """
    limit: torch.Tensor | float = float(threshold)
    restart_count = limit
    if rate > 0:
        mean = ema_count.mean()
        limit = (mean * rate).clamp_min_(threshold)
        # relative restarts start at the expected rate, so they survive long enough to win inputs
        restart_count = torch.maximum(limit, mean)
    dead = ema_count < limit  # identical on every rank
    n_dead = int(dead.sum())  # the one value read on the host here: how many inputs to draw
    if n_dead == 0:
        return
    # inputs that would make no twin only: a batch that repeats one vector (digital silence) would
    # otherwise restart many codes onto one point, or onto the code already there. Twice as many
    # inputs as dead codes are drawn, so a third of a batch repeating one vector still leaves enough.
    # (2 n_dead, d), the same on every rank; a rank without inputs offers none
    drawn = sample_rows(z, 2 * n_dead, distributed=True)
    fresh = new_points_mask(drawn, embed, cosine=cosine)  # (2 n_dead,)
    if cosine:  # a zero input has no direction (it normalises to 0): no code of a cosine codebook
        fresh &= drawn.ne(0).any(1)
    # the j-th fresh input goes to the j-th dead code; dead codes beyond the fresh inputs wait for the
    # next step's. Worked out on the device, so the step reads nothing more on the host.
    moved = first_true(dead, n_dead)  # (n_dead,) the dead codes, ascending
    row = first_true(fresh, n_dead)  # (n_dead,) the fresh inputs in order, -1 past the last
    taken = row >= 0
    new = drawn.index_select(0, row.clamp_min(0))  # (n_dead, d)
    # moved holds distinct codes, so a copy by index writes each once (index_select/index_copy_: the same
    # values as t[i] and t[i] = v, with less work on the host per call)
    embed.index_copy_(0, moved, torch.where(taken[:, None], new, embed.index_select(0, moved)))
    ema_count.index_copy_(0, moved, torch.where(taken, restart_count, ema_count.index_select(0, moved)))
    ema_sum.index_copy_(0, moved, torch.where(taken[:, None], new * restart_count, ema_sum.index_select(0, moved)))


def first_true(mask: torch.Tensor, size: int) -> torch.Tensor:
    """``[size]`` int64: the positions of the first ``size`` true values of ``mask`` ``[n]`` in order, ``-1`` past
    the last one; as ``mask.nonzero()`` cut or padded to ``size``, but with no value read on the host.

    >>> first_true(torch.tensor([False, True, True, False, True]), 2).tolist()
    [1, 2]
    >>> first_true(torch.tensor([True, False]), 3).tolist()
    [0, -1, -1]
    """
    if hasattr(torch, "nonzero_static"):  # one kernel where the device has it (the CPU and CUDA do)
        try:
            return torch.nonzero_static(mask, size=size, fill_value=-1).squeeze(1)
        except NotImplementedError:  # a device without it: the same from a running count
            pass
    rank = mask.long().cumsum(0) - 1  # (n,) each true value's place among them
    slot = torch.where(mask & (rank < size), rank, size)  # the others go to a spare slot, dropped
    out = torch.full((size + 1,), -1, dtype=torch.long, device=mask.device)
    out.scatter_(0, slot, torch.arange(mask.shape[0], device=mask.device))
    return out[:size]
