"""The codebook's k-means initialisation: a random sample of the first training vectors, then k-means.

A :class:`~mmtok.vq.quantizer.VectorQuantizer` offers each training step's vectors to a
:class:`KmeansPool` until enough have come (on average over ranks), then fits its codes by
:func:`~mmtok.vq.kmeans.kmeans` over the pools of all ranks. The pool is a uniform random sample,
without replacement, of every vector offered on its rank (each vector draws a random key from a
seeded generator and the ``max(K, KMEANS_MAX_SAMPLES)`` smallest keys stay), so it holds no more
however many steps pass, and the same vectors every run. The counts come back on the scale of the
EMA statistics: vectors per step of one rank (:mod:`mmtok.vq.ema`).

Axis legend: ``N`` vectors of this rank, ``K`` codes, ``d`` lookup size.

>>> pool = KmeansPool()
>>> for step in range(3):
...     pool.add(torch.full((40_000, 2), float(step)), k=16)
>>> pool.seen, pool.steps, tuple(pool.rows.shape), sorted(set(pool.rows[:, 0].tolist()))
(120000, 3, (65536, 2), [0.0, 1.0, 2.0])
"""

from __future__ import annotations

from typing import Any

import torch

from mmtok.vq.kmeans import all_reduce_, kmeans, world_size

__all__ = ["KMEANS_MAX_SAMPLES", "KMEANS_POOL_SEED", "KMEANS_RESEED_POOL", "KmeansPool"]

KMEANS_MAX_SAMPLES = 65_536  # vectors a rank keeps for the k-means initialisation (at least K)
KMEANS_RESEED_POOL = 1 / 16  # an empty k-means cluster re-seeds on a random one of the worst-served 1/16 of vectors
KMEANS_POOL_SEED = 0  # seed of the keys that choose which vectors the pool keeps


class KmeansPool:
    """A uniform random sample of at most ``cap`` of the vectors offered on this rank, and how many came."""

    def __init__(self) -> None:
        self.rows: torch.Tensor | None = None  # (≤ cap, d) float32 the vectors kept
        self.keys = torch.empty(0, dtype=torch.float64)  # (≤ cap,) their random keys: the smallest stay
        self.seen = 0  # vectors offered on this rank
        self.steps = 0  # training steps that offered them
        self.generator = torch.Generator().manual_seed(KMEANS_POOL_SEED)

    def __getstate__(self) -> dict[str, Any]:
        """The pool with its generator as the bytes of its state: a ``torch.Generator`` itself cannot go to a
        spawn or forkserver worker (a DataLoader's), whose tensors travel through shared memory."""
        state = dict(self.__dict__)
        state["generator"] = self.generator.get_state().numpy().tobytes()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        generator = torch.Generator()
        generator.set_state(torch.frombuffer(bytearray(state["generator"]), dtype=torch.uint8))
        state["generator"] = generator
        self.__dict__.update(state)

    def add(self, z: torch.Tensor, *, k: int) -> None:
        """Offer one step's vectors ``z`` ``[N, d]`` for ``k`` codes; the pool keeps the ``cap`` with the smallest
        keys, ``cap = max(k, KMEANS_MAX_SAMPLES)``."""
        cap = max(k, KMEANS_MAX_SAMPLES)
        keys = torch.rand(z.shape[0], generator=self.generator, dtype=torch.float64)  # (N,)
        keep = keys.argsort(stable=True)[:cap]  # only a step's cap smallest keys can stay
        keys, rows = keys[keep], z.detach()[keep.to(z.device)].float()  # (≤ cap, d), a copy
        if self.rows is not None:
            keys, rows = torch.cat([self.keys, keys]), torch.cat([self.rows, rows])
            keep = keys.argsort(stable=True)[:cap]
            keys, rows = keys[keep], rows[keep.to(rows.device)]
        self.keys, self.rows = keys, rows
        self.seen += z.shape[0]
        self.steps += 1 if z.shape[0] or world_size() > 1 else 0  # a step of no vectors on one process: no step

    def enough(self, need: int, device: torch.device) -> bool:
        """Whether the ranks were offered at least ``need`` vectors each on average (every rank must ask)."""
        have = all_reduce_(torch.tensor(float(self.seen), device=device))
        return float(have) / world_size() >= need

    def fit(self, k: int, iters: int, *, cosine: bool, chunk_size: int | None, budget_mb: float | None
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """k-means over the pools of all ranks (every rank must call it): the centers ``[K, d]``, the same
        on every rank, and their counts ``[K]`` as vectors per step of one rank."""
        assert self.rows is not None, "fit before any vectors were offered"
        centers, counts = kmeans(self.rows, k, iters, cosine=cosine, chunk_size=chunk_size, budget_mb=budget_mb,
                                 distributed=True, reseed_pool=KMEANS_RESEED_POOL)
        seen = all_reduce_(torch.tensor(float(self.seen), device=counts.device))  # vectors offered on all ranks
        per_step = seen / (self.steps * world_size())  # vectors per step of one rank
        # a code no vector took (fewer distinct vectors than codes) counts as one: with a count and sum of 0, the
        # next EMA step would move it to the origin; so it stays on its point, as a fresh code does
        return centers, counts.clamp_min(1.0) * (per_step / counts.sum().clamp_min(1.0))
