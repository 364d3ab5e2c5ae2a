"""Exact nearest-code search: blocked matrix products and a fast CPU argmax.

The search behind the VQ codebook and the k-means (:mod:`mmtok.vq.kmeans`).
Memory stays at one ``[chunk, K]`` block of scores whatever the number of
vectors; the block size is given, or comes from a memory budget.
"""

from __future__ import annotations

import math

import torch

from mmtok.core.device import tf32_matmul_possible
from mmtok.core.errors import QuantizerError
from mmtok.core.floats import all_finite

__all__ = ["TWIN_TOLERANCE", "block_rows", "canonical_codes", "nearest_code", "new_points", "new_points_mask",
           "overflows_float32_scores", "score_margin"]

CPU_SEARCH_BUDGET_MB = 4.0  # one block of scores on the CPU: a few MiB, so it stays in cache (measured best of 2/4/8)
CUDA_SEARCH_BUDGET_MB = 256.0  # one block of scores on a GPU: big enough to fill the device
ARGMAX_GROUP = 32  # codes per group in the two-level argmax (see _argmax_rows)
TWIN_TOLERANCE = 1e-4  # twins: codes closer than this fraction of the codebook's median radius
DENSE_NEW_POINTS = 1 << 22  # float64 distances new_points_mask holds at once to stay off the host (32 MiB)
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
CPU_DENSE_ROWS = 256  # on the CPU, where nothing waits on a device, the dense path only while it is faster (measured)


def _grouped(scores: torch.Tensor, rows: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The two-level argmax's parts for a ``[n, K]`` block on the CPU: group maxima ``[n, G]``, the
    best group ``[n]`` and its ``ARGMAX_GROUP`` scores ``[n, B]``; None where it does not apply."""
    n, k = scores.shape
    if scores.device.type != "cpu" or k % ARGMAX_GROUP or k < 4 * ARGMAX_GROUP:
        return None
    groups = scores.view(n, k // ARGMAX_GROUP, ARGMAX_GROUP)  # (n, G, B)
    gmax = groups.amax(2)  # (n, G)
    best_group = gmax.argmax(1)  # (n,)
    if rows is None or rows.numel() < n:
        rows = torch.arange(n, device=scores.device)
    return gmax, best_group, groups[rows[:n], best_group]


def _argmax_rows(scores: torch.Tensor, out: torch.Tensor | None = None, rows: torch.Tensor | None = None) -> torch.Tensor:
    """``scores.argmax(1)`` for a ``[n, K]`` block, faster on the CPU.

    ``Tensor.argmax`` is a scalar loop on the CPU while ``amax`` is vectorized, so
    reduce each group of ``ARGMAX_GROUP`` consecutive codes with ``amax``, pick the
    best group with a small argmax and finish inside it. Ties resolve to the first
    index, exactly like ``argmax``.
    """
    parts = _grouped(scores, rows)
    if parts is None:
        return torch.argmax(scores, 1, out=out) if out is not None else scores.argmax(1)
    _, best_group, inside = parts
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
    exact_ties: bool = False,
    check: bool = True,
    wide: bool | None = None,
) -> torch.Tensor:
    """Index of the nearest code (squared Euclidean, or cosine) for every row of ``x``.

    ``x`` is ``[N, d]`` and ``codebook`` ``[K, d]`` (both float32). The search is a
    matrix product in blocks of rows, ``argmin |x|² - 2 x·c + |c|² = argmax x·c - |c|²/2``,
    so memory stays at one ``[chunk, K]`` block whatever ``N`` is: ``chunk_size`` rows,
    or as many as fit in ``budget_mb`` MiB (see :func:`block_rows`). With ``cosine`` the
    rows of ``x`` and ``codebook`` are expected l2-normalised already; either may require gradients (the
    indices carry none). Other shapes, an empty codebook and NaN/inf values are refused
    (:class:`~mmtok.core.errors.QuantizerError`).

    Float32 scores cannot tell apart codes whose scores differ by less than their rounding
    (codes a few 1e-4 apart, seen from a vector next to them), so the winner among them would
    depend on the summation order: on the thread count or the CPU. With ``exact_ties`` each row
    whose runner-up lies within that rounding (:func:`score_margin`) is settled in float64 over
    those candidates, an exact tie going to the smallest index: the same answer on any machine.
    (With ``cosine`` a zero row, which has no direction, ties with every code: code 0.)
    ``check=False`` leaves out the NaN/inf check (a value read on the host), for a caller that made it.

    Scores of vectors so large that ``d·|x|·|c|`` or ``d·|c|²`` nears float32's maximum (about 3.4e38) would
    overflow to inf, and the first of the overflowing codes would win whatever is nearest: such a search runs
    in float64 (``wide``; by default worked out with the NaN/inf check, and left off with ``check=False``).

    >>> c = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    >>> nearest_code(torch.tensor([[0.9, 1.2], [4.0, 4.5], [-1.0, 0.1]]), c).tolist()
    [1, 2, 0]
    """
    peak = _check_search(x, codebook, finite=check)
    x, codebook = x.detach(), codebook.detach()  # indices have no gradient: inputs that carry one search as they are
    if wide is None:
        wide = peak is not None and overflows_float32_scores(peak, codebook.shape[1])
    n, k = x.shape[0], codebook.shape[0]
    out = torch.empty(n, dtype=torch.long, device=x.device)
    if n == 0:
        return out
    if wide:  # float64 scores in blocks of the same bytes
        codebook = codebook.double()
        budget_mb = (budget_mb or (CUDA_SEARCH_BUDGET_MB if x.device.type == "cuda" else CPU_SEARCH_BUDGET_MB)) / 2
    rows = block_rows(n, k, x.device, chunk_size=chunk_size, budget_mb=budget_mb)
    codes_t = codebook.t()  # (d, K)
    if cosine:
        bias = torch.zeros(k, dtype=codebook.dtype, device=codebook.device)
    else:
        bias = codebook.pow(2).sum(1).mul_(-0.5)  # (K,)
    scores = torch.empty(rows, k, dtype=codebook.dtype, device=x.device)  # (chunk, K), reused
    # row numbers for the CPU's two-level argmax and the flagged pass; a GPU's plain argmax needs none
    row_ids = torch.arange(rows, device=x.device) if exact_ties or x.device.type == "cpu" else None
    margin = score_margin(x, codebook, cosine=cosine, wide=wide) if exact_ties else None  # (N,), once for all blocks
    suspect = torch.zeros(n, dtype=torch.bool, device=x.device) if exact_ties else None  # (N,) rows to settle
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        block = scores[: stop - start]
        torch.addmm(bias, x[start:stop].to(codebook.dtype), codes_t, out=block)
        if margin is not None and suspect is not None and row_ids is not None:
            suspect[start:stop] = _argmax_flagged(block, out[start:stop], row_ids, margin[start:stop])
        else:
            _argmax_rows(block, out=out[start:stop], rows=row_ids)
    if margin is not None and suspect is not None:
        # one value read on the host for all blocks: which rows to settle
        _settle_rows(suspect.nonzero().flatten(), x, codebook, bias, scores, margin, out, cosine=cosine)
    return out


def overflows_float32_scores(peak: float, dim: int) -> bool:
    """Whether float32 search scores ``x·c - |c|²/2`` of ``dim``-d vectors with values up to ``peak`` may overflow
    (``4·dim·peak²`` past float32's maximum: the bound of :func:`mmtok.vq.inputs.statistics_limit`)."""
    return 4 * dim * peak * peak > FLOAT32_MAX


def _check_search(x: torch.Tensor, codebook: torch.Tensor, *, finite: bool = True) -> float | None:
    """Refuse what :func:`nearest_code` cannot search: not ``[N, d]`` against ``[K ≥ 1, d]``, or NaN/inf; with
    ``finite``, the largest magnitude in either (one value read on the host), else None."""
    if not isinstance(x, torch.Tensor) or not isinstance(codebook, torch.Tensor):
        raise TypeError(f"nearest_code needs tensors, got x {type(x).__name__} and codebook {type(codebook).__name__}")
    if x.dim() != 2 or codebook.dim() != 2 or x.shape[1] != codebook.shape[1] or codebook.shape[0] == 0:
        raise QuantizerError(f"nearest_code needs x [N, d] and codebook [K, d] with K ≥ 1, got x {tuple(x.shape)} "
                             f"and codebook {tuple(codebook.shape)}")
    if not finite:
        return None
    # one value read on the host for both: the largest magnitude (NaN or inf when one is there); each alone only
    # when that is not finite
    if x.is_floating_point() and codebook.is_floating_point():
        ends = [end for t in (x, codebook) if t.numel() for end in torch.aminmax(t.detach())]
        peak = float(torch.linalg.vector_norm(torch.stack(ends).double(), float("inf")))
        if math.isfinite(peak):
            return peak
    for name, t in (("x", x), ("codebook", codebook)):
        if not all_finite(t):
            bad = (~torch.isfinite(t)).any(1).nonzero().flatten()
            raise QuantizerError(f"nearest_code {name} has NaN/inf values in {bad.numel()} row(s), "
                                 f"the first row {int(bad[0])}")
    return None


def score_margin(x: torch.Tensor, codebook: torch.Tensor, *, cosine: bool = False, wide: bool = False
                 ) -> torch.Tensor:
    """``[N]``: how far the float32 score ``x·c - |c|²/2`` (``x·c`` with ``cosine``) of a row of ``x`` can
    be off, with room to spare: ``2 d`` float32 epsilons of the largest terms it sums (TF32's epsilon
    where CUDA matrix products may use it); with ``wide``, of the float64 score (float64 epsilons)."""
    kind = torch.float64 if wide else torch.float32
    c_max = codebook.detach().to(kind).norm(dim=1).max()  # 0-d, on the device: not read on the host
    eps = torch.finfo(kind).eps
    if not wide and x.device.type == "cuda" and tf32_matmul_possible():  # TF32 products keep 10 bits
        eps = 2.0**-10
    scale = 2 * codebook.shape[1] * eps
    if cosine:  # unit rows: |x| = 1
        return (scale * c_max).expand(x.shape[0]).clone()
    return (x.detach().to(kind).norm(dim=1) * c_max + c_max * c_max / 2) * scale


def _argmax_flagged(block: torch.Tensor, out: torch.Tensor, rows: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """``_argmax_rows`` of ``block`` ``[n, K]`` into ``out``, and ``[n]`` bool: the rows whose runner-up score lies
    within their rounding (``margin``, :func:`score_margin`) of the best, to be settled (:func:`_settle_rows`).
    On the CPU the group maxima of the two-level argmax find those rows; elsewhere the best score is masked
    in ``block`` (scratch: it is overwritten) and the runner-up is the maximum of the rest, one pass."""
    parts = _grouped(block, rows)
    if parts is not None:
        gmax, best_group, inside = parts
        pos = inside.argmax(1)
        thresh = inside.gather(1, pos[:, None]) - margin[:, None]  # (n, 1)
        torch.add(pos, best_group, alpha=ARGMAX_GROUP, out=out)
        return ((gmax >= thresh).sum(1) > 1) | ((inside >= thresh).sum(1) > 1)
    torch.argmax(block, 1, out=out)
    best = block.gather(1, out[:, None]).squeeze(1)  # (n,)
    runner_up = block.scatter_(1, out[:, None], float("-inf")).amax(1)  # (n,) -inf with one code
    return runner_up >= best - margin


def _settle_rows(r: torch.Tensor, x: torch.Tensor, codebook: torch.Tensor, bias: torch.Tensor,
                 scores: torch.Tensor, margin: torch.Tensor, out: torch.Tensor, *, cosine: bool) -> None:
    """Rows ``r`` of ``out`` settled in float64 (:func:`_settle`) among the codes whose float32 score lies within
    the row's ``margin`` of its best: the scores worked out again, in pieces of half the ``scores`` buffer (so
    float64 ``[piece, K]`` distances take no more memory than it). Another product's rounding may change which
    far codes are candidates, never the answer: the truly nearest code is one whichever product rounded."""
    piece = max(1, scores.shape[0] // 2)
    codes_t = codebook.t()
    for start in range(0, r.numel(), piece):
        some = r[start:start + piece]
        block = torch.addmm(bias, x[some].to(codebook.dtype), codes_t, out=scores[: some.numel()])
        candidate = block >= block.amax(1, keepdim=True) - margin[some][:, None]
        out[some] = _settle(x[some], codebook, candidate, cosine=cosine)


def _settle(x: torch.Tensor, codebook: torch.Tensor, candidate: torch.Tensor, *, cosine: bool) -> torch.Tensor:
    """For each row of ``x`` ``[s, d]`` the candidate code (``candidate`` ``[s, K]``) at the smallest squared
    distance ``sum((c - x)²)`` in float64, an exact tie to the smallest index. One matrix product over the
    codes that are a candidate of some row ranks them; only those within its rounding of a row's best are
    measured directly. With ``cosine`` a zero row ties with every code (it has no direction)."""
    cols = candidate.any(0).nonzero().flatten()  # (m,) ascending
    c, z, cand = codebook[cols].double(), x.double(), candidate[:, cols]  # (m, d), (s, d), (s, m)
    z_sq, c_sq = z.pow(2).sum(1, keepdim=True), c.pow(2).sum(1)  # (s, 1), (m,)
    dist = torch.addmm(z_sq + c_sq, z, c.t(), alpha=-2).masked_fill_(~cand, float("inf"))  # (s, m)
    # the product's rounding: d + 2 roundings of terms up to (|x| + |c|)², taken twice over to be safe
    slack = 4 * (z.shape[1] + 2) * 2.0**-52 * (z_sq.sqrt() + c_sq.max().sqrt()) ** 2  # (s, 1)
    near = dist <= dist.amin(1, keepdim=True) + slack  # (s, m)
    if cosine:  # a zero row: its first candidate only
        zero = (z_sq[:, 0] == 0).nonzero().flatten()
        near[zero] = False
        near[zero, cand[zero].int().argmax(1)] = True
    rr, cc = near.nonzero(as_tuple=True)  # (P,), (P,): row by row, codes ascending
    step = max(1, cand.numel() // (2 * z.shape[1]))  # pairs measured at once: [step, d] within the block's memory
    exact = torch.cat([(c[cc[i:i + step]] - z[rr[i:i + step]]).pow(2).sum(1) for i in range(0, rr.numel(), step)])
    # a row so far out (|x| past 2**50 times the codes' radius) that c - x rounds to -x for every code: ranked by
    # |c|² - 2 x·c instead, the same order (|x|² apart), which keeps what tells the codes apart
    far = z_sq[:, 0].sqrt() * 2.0**-50 > c_sq.max().sqrt()  # (s,)
    if bool(far.any()):
        cross = torch.cat([(c[cc[i:i + step]] * z[rr[i:i + step]]).sum(1) for i in range(0, rr.numel(), step)])
        exact = torch.where(far[rr], c_sq[cc] - 2 * cross, exact)
    best = torch.full((z.shape[0],), float("inf"), dtype=torch.float64, device=z.device)
    best.scatter_reduce_(0, rr, exact, "amin")
    win = exact == best[rr]
    first = torch.full((z.shape[0],), cols.numel(), dtype=torch.long, device=z.device)
    return cols[first.scatter_reduce_(0, rr[win], cc[win], "amin")]


def _close_pairs(cb: torch.Tensor, tol: float) -> torch.Tensor:
    """``[P, 2]`` pairs ``i < j`` of rows of ``cb`` (float64 ``[K, d]``) within ``tol`` of each other.

    Two rows within ``tol`` project onto any unit direction within ``tol`` too, so after sorting the
    projections on one (fixed, random) direction every such pair sits within a run of projections
    ``tol`` wide: only those candidates are measured. ``O(K log K)`` plus the candidates."""
    direction = torch.randn(cb.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    proj = cb @ (direction / direction.norm()).to(cb.device)
    order = proj.argsort()
    p = proj[order]
    found = []
    for offset in range(1, cb.shape[0]):
        near = (p[offset:] - p[:-offset] <= tol).nonzero().flatten()
        if near.numel() == 0:
            break
        a, b = order[near], order[near + offset]
        found.append(torch.stack([torch.minimum(a, b), torch.maximum(a, b)], 1))
    if not found:
        return torch.empty(0, 2, dtype=torch.long, device=cb.device)
    pairs = torch.cat(found)
    return pairs[(cb[pairs[:, 0]] - cb[pairs[:, 1]]).pow(2).sum(1).sqrt() <= tol]


def _as_points(v: torch.Tensor, cosine: bool) -> torch.Tensor:
    """Rows as float64 points where twins are measured (on the unit sphere with ``cosine``)."""
    return torch.nn.functional.normalize(v.double(), dim=-1) if cosine else v.double()


def _first_occurrence(points: torch.Tensor) -> torch.Tensor:
    """``[n]`` bool: the rows of ``points`` ``[n, d]`` that no earlier row equals, found by sorting.

    >>> _first_occurrence(torch.tensor([[1.0, 2.0], [0.0, 0.0], [1.0, 2.0]])).tolist()
    [True, True, False]
    """
    _, inverse = torch.unique(points, dim=0, return_inverse=True)
    order = torch.arange(points.shape[0], device=points.device)
    first = torch.full((int(inverse.max()) + 1,), points.shape[0], dtype=torch.long, device=points.device)
    return first.scatter_reduce_(0, inverse, order, reduce="amin")[inverse] == order


def _twin_distance(points: torch.Tensor, tolerance: float, distinct: torch.Tensor | None = None) -> torch.Tensor:
    """How close two points are to count as twins (0-d): ``tolerance`` times the median radius of ``points``
    (float64 ``[n, d]``): the median distance of its distinct points from their coordinate-wise median (lower
    medians, as ``torch.median``). ``distinct`` marks one row of each distinct point (``[n]`` bool; by default
    :func:`_first_occurrence`); given, nothing is read on the host.

    A median, not a mean: one code thrown far off (by a wild training batch, say) would stretch a root
    mean square radius until ordinary neighbours counted as twins and encoded as one code. Distinct
    points, so that many copies of one point (silence) do not shrink it to nothing.

    >>> pts = torch.randn(1000, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> before = _twin_distance(pts, 1e-4)
    >>> pts[0] = 1e12
    >>> bool(abs(_twin_distance(pts, 1e-4) / before - 1) < 0.01)
    True
    """
    distinct = _first_occurrence(points) if distinct is None else distinct
    nan = float("nan")
    centre = torch.where(distinct[:, None], points, nan).nanmedian(0).values  # (d,)
    return tolerance * torch.where(distinct, (points - centre).pow(2).sum(1).sqrt(), nan).nanmedian()


def canonical_codes(codebook: torch.Tensor, *, cosine: bool = False, tolerance: float = TWIN_TOLERANCE
                    ) -> torch.Tensor:
    """``[K]`` int64: each code's index, or for a code with twins the smallest index among them.

    Twins are codes whose vectors lie within ``tolerance`` times the codebook's median radius (the
    median distance of the codes from their coordinate-wise median, which a few far-off codes
    cannot stretch) of each other: dead-code restarts can
    leave several codes on one point, such as silence. A
    vector that falls on twins is equally near to each of them, so which one the search picks
    depends on rounding: on the thread count or the CPU. Mapping the search's answer through
    this table gives one code whatever the arithmetic. Twins are grouped transitively.

    >>> cb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1e-9], [0.0, 1.0], [1.0, 0.0]])
    >>> canonical_codes(cb).tolist()
    [0, 1, 1, 3, 1]
    """
    k = codebook.shape[0]
    if k < 2:
        return torch.arange(k, device=codebook.device)
    cb = _as_points(codebook, cosine)
    # exact copies first, each to its smallest index (thousands of codes on one point would make every pair of
    # them a candidate pair), then the near ones among the distinct points
    _, inverse = torch.unique(cb, dim=0, return_inverse=True)
    order = torch.arange(k, device=cb.device)
    rep = torch.full((int(inverse.max()) + 1,), k, dtype=torch.long, device=cb.device)
    rep = rep.scatter_reduce_(0, inverse, order, reduce="amin")  # [U]: the smallest index on each point
    canon = rep[inverse]
    pairs = rep[_close_pairs(cb[rep], _twin_distance(cb, tolerance))].tolist()
    if not pairs:
        return canon
    twins = sorted({c for pair in pairs for c in pair})
    at = {c: n for n, c in enumerate(twins)}
    parent = list(range(len(twins)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        a, b = root(at[i]), root(at[j])
        if a != b:
            parent[max(a, b)] = min(a, b)  # twins are listed in index order, so the root is the smallest
    final = torch.arange(k, device=cb.device)
    for i, code in enumerate(twins):
        final[code] = twins[root(i)]
    return final[canon]


def new_points(rows: torch.Tensor, codebook: torch.Tensor, *, cosine: bool = False,
               tolerance: float = TWIN_TOLERANCE) -> torch.Tensor:
    """The rows of ``rows`` (``[n, d]``) that no code and no earlier row kept is a twin of, in order
    (float32): where restarted codes may go without landing on a point the codebook already has.
    Which rows, :func:`new_points_mask` decides.

    >>> cb = torch.tensor([[0.0, 0.0], [1.0, 1.0], [300.0, 0.0]])
    >>> new_points(torch.tensor([[1.0, 1.0], [2.0, 0.0], [2.0, 1e-9], [0.0, 2.0]]), cb).tolist()
    [[2.0, 0.0], [0.0, 2.0]]
    """
    return rows[new_points_mask(rows, codebook, cosine=cosine, tolerance=tolerance)].float()


def new_points_mask(rows: torch.Tensor, codebook: torch.Tensor, *, cosine: bool = False,
                    tolerance: float = TWIN_TOLERANCE) -> torch.Tensor:
    """``[n]`` bool: the rows of ``rows`` (``[n, d]``) that are no twin of a code, no repeat of an earlier
    row, and no twin of an earlier row that is itself no repeat.

    Twins as :func:`canonical_codes` counts them, but on the scale of ``rows``: within ``tolerance``
    times their median radius. (The codebook's own radius is no measure while training: codes left far
    from the data, a good share of them at first, would stretch it.)

    Where its float64 distance tables stay small (``n (n + K)`` up to ``DENSE_NEW_POINTS`` values, as
    for the few dead codes of a training step) they are computed whole and nothing is read back to the
    host: a training step on a GPU does not wait here. Larger calls sort instead, in ``O(n log n)`` memory,
    and so do calls of more than ``CPU_DENSE_ROWS`` rows on the CPU, where sorting is then faster (both
    paths choose the same rows).

    >>> cb = torch.tensor([[0.0, 0.0], [1.0, 1.0], [300.0, 0.0]])
    >>> new_points_mask(torch.tensor([[1.0, 1.0], [2.0, 0.0], [2.0, 1e-9], [0.0, 2.0], [2.0, 0.0]]), cb).tolist()
    [False, True, False, True, False]
    """
    if not rows.shape[0]:
        return torch.zeros(0, dtype=torch.bool, device=rows.device)
    cb, pts = _as_points(codebook, cosine), _as_points(rows, cosine)
    n = pts.shape[0]
    if n * (n + cb.shape[0]) <= DENSE_NEW_POINTS and (pts.device.type != "cpu" or n <= CPU_DENSE_ROWS):
        return _new_points_dense(pts, cb, tolerance)
    return _new_points_sorted(pts, cb, tolerance)


def _new_points_dense(pts: torch.Tensor, cb: torch.Tensor, tolerance: float) -> torch.Tensor:
    """:func:`new_points_mask` from whole float64 distance tables, with no value read on the host."""
    n = pts.shape[0]
    # [i, j]: how far row i is from an earlier row j, measured coordinate by coordinate (exactly 0 between
    # equal rows only); infinite where row j does not come before row i
    apart = torch.cdist(pts, pts, compute_mode="donot_use_mm_for_euclid_dist")
    apart.masked_fill_(torch.ones(n, n, dtype=torch.bool, device=pts.device).triu_(), float("inf"))
    first = (apart != 0).all(1)  # (n,) no earlier row is equal
    tol = _twin_distance(pts, tolerance, first)  # 0-d, finite: float32 rows cannot overflow it
    # the nearest code's squared distance, from one float64 product (its rounding is ~1e-16 of the squared
    # norms, far inside the tolerance's 1e-8 of the squared radius)
    to_code = torch.addmm(pts.pow(2).sum(1, keepdim=True) + cb.pow(2).sum(1), pts, cb.t(), alpha=-2).amin(1)
    # a twin of an earlier row kept; a repeat is one too (of its first copy, at distance 0), so ``first`` is
    # implied here
    twin_of_earlier = ((apart <= tol) & first[None, :]).any(1)
    return (to_code > tol * tol) & ~twin_of_earlier


def _new_points_sorted(pts: torch.Tensor, cb: torch.Tensor, tolerance: float) -> torch.Tensor:
    """:func:`new_points_mask` for many rows: exact repeats by sorting, near pairs by :func:`_close_pairs`."""
    first = _first_occurrence(pts)  # exact repeats first (a run of them would make every pair a candidate)
    tol = _twin_distance(pts, tolerance, first)
    near = nearest_code(pts.float(), cb.float(), exact_ties=True)  # the truly nearest code
    keep = ((pts - cb[near]).pow(2).sum(1).sqrt() > tol) & first
    once = first.nonzero().flatten()
    pairs = _close_pairs(pts[once], tol)
    keep[once[pairs[:, 1]]] = False  # of two rows that are twins, the later goes
    return keep
