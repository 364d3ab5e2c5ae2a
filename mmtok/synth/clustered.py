"""Clustered vectors: the data a VQ codebook must spread over, and the one a random codebook collapses on.

>>> x = make_clustered(1000, 8, 20, seed=1)
>>> tuple(x.shape), x.dtype
((1000, 8), torch.float32)
>>> bool(torch.equal(x, make_clustered(1000, 8, 20, seed=1)))      # the seed fixes everything
True
"""

from __future__ import annotations

import torch

__all__ = ["make_clustered"]


def make_clustered(
    n: int, dim: int, n_clusters: int, *, spread: float = 0.1, scale: float = 1.0, offset: float = 2.0,
    seed: int = 0,
) -> torch.Tensor:
    """``[n, dim]`` vectors from ``n_clusters`` tight Gaussian clusters away from the origin.

    Cluster centers are ``offset + scale * N(0, 1)`` per coordinate, every vector is a
    center picked uniformly at random plus ``spread * N(0, 1)`` noise; all drawn from
    one generator seeded with ``seed``. A codebook initialised around the origin sees
    every vector nearest to the same few codes, so naive VQ collapses on this data.
    """
    if n < 0 or dim < 1 or n_clusters < 1:
        raise ValueError(f"make_clustered needs n ≥ 0, dim ≥ 1 and n_clusters ≥ 1, got {n}, {dim}, {n_clusters}")
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(n_clusters, dim, generator=g) * scale + offset  # (C, dim)
    which = torch.randint(0, n_clusters, (n,), generator=g)  # (n,)
    return centers[which] + spread * torch.randn(n, dim, generator=g)
