"""Exact nearest-code search: blocked matrix products and a fast CPU argmax.

The search behind the VQ codebook and the k-means (:mod:`mmtok.vq.kmeans`).
Memory stays at one ``[chunk, K]`` block of scores whatever the number of
vectors; the block size is given, or comes from a memory budget.
"""

from __future__ import annotations

import torch

__all__ = ["block_rows", "nearest_code"]

CPU_SEARCH_BUDGET_MB = 4.0  # one block of scores on the CPU: a few MiB, so it stays in cache (measured best of 2/4/8)
CUDA_SEARCH_BUDGET_MB = 256.0  # one block of scores on a GPU: big enough to fill the device
ARGMAX_GROUP = 32  # codes per group in the two-level argmax (see _argmax_rows)


def _argmax_rows(scores: torch.Tensor, out: torch.Tensor | None = None, rows: torch.Tensor | None = None) -> torch.Tensor:
    """``scores.argmax(1)`` for a ``[n, K]`` block, faster on the CPU.

    ``Tensor.argmax`` is a scalar loop on the CPU while ``amax`` is vectorized, so
    reduce each group of ``ARGMAX_GROUP`` consecutive codes with ``amax``, pick the
    best group with a small argmax and finish inside it. Ties resolve to the first
    index, exactly like ``argmax``.
    """
    n, k = scores.shape
    if scores.device.type != "cpu" or k % ARGMAX_GROUP or k < 4 * ARGMAX_GROUP:
        return torch.argmax(scores, 1, out=out) if out is not None else scores.argmax(1)
    groups = scores.view(n, k // ARGMAX_GROUP, ARGMAX_GROUP)  # (n, G, B)
    best_group = groups.amax(2).argmax(1)  # (n,)
    if rows is None or rows.numel() < n:
        rows = torch.arange(n, device=scores.device)
    inside = groups[rows[:n], best_group]  # (n, B)
    # best_group * B + position inside, written straight into `out`
    return torch.add(inside.argmax(1), best_group, alpha=ARGMAX_GROUP, out=out) if out is not None else (
        inside.argmax(1).add_(best_group, alpha=ARGMAX_GROUP))


def block_rows(n: int, k: int, device: torch.device, *, chunk_size: int | None = None,
               budget_mb: float | None = None) -> int:
    """Rows of ``x`` searched per block for ``n`` vectors and ``k`` codes on ``device``.

    ``chunk_size`` when given; else as many rows as one float32 ``[rows, k]`` block of
    scores fitting in ``budget_mb`` (default: cache-sized on the CPU, large on CUDA).

    >>> block_rows(100_000, 1024, torch.device("cpu"))      # 4 MiB / (4 bytes * 1024 codes)
    1024
    >>> block_rows(100, 1024, torch.device("cpu"), chunk_size=37)
    37
    """
    if chunk_size is not None:
        return max(1, min(n, chunk_size))
    budget = budget_mb or (CUDA_SEARCH_BUDGET_MB if device.type == "cuda" else CPU_SEARCH_BUDGET_MB)
    rows = int(budget * 2**20) // (4 * k)
    return max(1, min(n, max(rows, 16)))


def nearest_code(
    x: torch.Tensor,
    codebook: torch.Tensor,
    *,
    cosine: bool = False,
    chunk_size: int | None = None,
    budget_mb: float | None = None,
) -> torch.Tensor:
    """Index of the nearest code (squared Euclidean, or cosine) for every row of ``x``.

    ``x`` is ``[N, d]`` and ``codebook`` ``[K, d]`` (both float32). The search is a
    matrix product in blocks of rows, ``argmin |x|² - 2 x·c + |c|² = argmax x·c - |c|²/2``,
    so memory stays at one ``[chunk, K]`` block whatever ``N`` is: ``chunk_size`` rows,
    or as many as fit in ``budget_mb`` MiB (see :func:`block_rows`). With ``cosine`` the
    rows of ``x`` and ``codebook`` are expected l2-normalised already.

    >>> c = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    >>> nearest_code(torch.tensor([[0.9, 1.2], [4.0, 4.5], [-1.0, 0.1]]), c).tolist()
    [1, 2, 0]
    """
    n, k = x.shape[0], codebook.shape[0]
    out = torch.empty(n, dtype=torch.long, device=x.device)
    if n == 0:
        return out
    rows = block_rows(n, k, x.device, chunk_size=chunk_size, budget_mb=budget_mb)
    codes_t = codebook.t()  # (d, K)
    if cosine:
        bias = torch.zeros(k, dtype=codebook.dtype, device=codebook.device)
    else:
        bias = codebook.pow(2).sum(1).mul_(-0.5)  # (K,)
    scores = torch.empty(rows, k, dtype=codebook.dtype, device=x.device)  # (chunk, K), reused
    row_ids = torch.arange(rows, device=x.device)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        block = scores[: stop - start]
        torch.addmm(bias, x[start:stop].to(codebook.dtype), codes_t, out=block)
        _argmax_rows(block, out=out[start:stop], rows=row_ids)
    return out
