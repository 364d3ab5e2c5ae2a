"""The VQ codebook: k-means init (:mod:`mmtok.vq.kmeans_init`), EMA updates and dead-code
restarts (:mod:`mmtok.vq.ema`), rebalancing and usage statistics, over the exact chunked
nearest-code search of :mod:`mmtok.vq.search`; its settings are :class:`~mmtok.vq.config.VQConfig`.

Axis legend used in shape comments:
    N  number of vectors (all leading axes of the input flattened)
    D  input vector size (``cfg.dim``)
    d  lookup size (``cfg.codebook_dim`` or ``D``)
    K  number of codes (``cfg.codebook_size``)

>>> import torch
>>> vq = VectorQuantizer(VQConfig(dim=8, codebook_size=16))
>>> x = torch.randn(2, 5, 8)
>>> r = vq(x)                       # training step: k-means init + EMA update
>>> tuple(r.quantized.shape), tuple(r.indices.shape), r.indices.dtype
((2, 5, 8), (2, 5), torch.int64)
>>> _ = vq.eval()                    # inference: the codebook stays fixed
>>> codes = vq.encode(x)
>>> bool(torch.equal(vq(x).indices, codes)), tuple(vq.decode(codes).shape)
(True, (2, 5, 8))
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from mmtok.core.codes import integer_codes
from mmtok.core.errors import QuantizerError
from mmtok.core.metrics import code_counts, codebook_usage, codebook_usage_tensors
from mmtok.core.module_io import building_on_meta, checkpoint_sets_weights
from mmtok.core.protocol import ordinary_outputs
from mmtok.vq.config import VQConfig
from mmtok.vq.ema import ema_step, per_rank, restart_dead
from mmtok.vq.inputs import check_input, check_state_codes, check_values
from mmtok.vq.kmeans import all_reduce_, broadcast_, lloyd_step, split_busiest_, world_size
from mmtok.vq.kmeans_init import KmeansPool
from mmtok.vq.search import canonical_codes, nearest_code, overflows_float32_scores

__all__ = ["QuantizeResult", "UsageStats", "VectorQuantizer", "no_autocast"]

ENCODE_SLAB = 1 << 20  # vectors converted/projected at once by encode(): bounds its extra memory
# usage counts are added in place, and torch lets other threads run meanwhile: two threads encoding with one
# quantizer lost counts (one process-wide lock: a module holds no lock of its own, so it still copies and pickles)
COUNTS_LOCK = threading.Lock()


@dataclass
class QuantizeResult:
    """What :meth:`VectorQuantizer.forward` returns. Its fields are read by name; it also unpacks as
    ``(quantized, indices, loss)``, the order vector-quantize-pytorch returns them in.

    >>> vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8)).eval()
    >>> quantized, indices, loss = vq(torch.randn(5, 4))
    >>> tuple(quantized.shape), tuple(indices.shape), tuple(loss.shape)
    ((5, 4), (5,), ())
    """

    quantized: torch.Tensor  # [..., D] codes in place of the input, straight-through gradients
    indices: torch.Tensor  # [...] int64 code index of every vector
    loss: torch.Tensor  # scalar commitment loss (already weighted); with gradients only when the input has them
    perplexity: torch.Tensor  # scalar exp(entropy) of this batch's code distribution
    usage: torch.Tensor  # scalar fraction of codes used at least once in this batch

    def __iter__(self) -> Iterator[torch.Tensor]:
        """``quantized, indices, loss = vq(x)``: the three a training step uses (perplexity and usage by name)."""
        return iter((self.quantized, self.indices, self.loss))


@dataclass
class UsageStats:
    """Code usage over everything quantized since the last :meth:`VectorQuantizer.reset_stats`."""

    counts: torch.Tensor  # [K] int64 how often each code was chosen
    usage: float  # fraction of codes chosen at least once
    perplexity: float  # exp(entropy) of the code distribution (K = perfectly uniform)
    total: int  # number of vectors counted


# --------------------------------------------------------------------------- the module


class VectorQuantizer(nn.Module):
    """A learned codebook of ``K`` vectors with exact nearest-code search.

    Training (``module.train()``) updates the codes by exponential moving
    averages, initialises them by k-means once, and restarts dead codes from
    recent inputs; under ``torch.distributed`` every rank starts from rank 0's
    codebook and those statistics are all-reduced, so every rank holds the same
    codebook, the EMA counts on the scale of one
    rank's step (so ``dead_code_threshold`` counts vectors per step per rank:
    :mod:`mmtok.vq.ema`). A step with no vectors on any rank changes nothing.
    Inference (``encode``/``decode``) is batched, chunked and exact.

    The codebook, its EMA statistics and the lookup projections stay float32
    whatever the module is cast to (``.half()``, ``.to(torch.bfloat16)``; see
    :meth:`_apply`): inputs of any float dtype train and encode alike, ``forward``
    returns vectors in the input's dtype, ``decode`` and ``codebook`` in the dtype
    the module was last cast to.
    """

    KIND = "vq"  # checkpoint kind
    CONFIG_CLASS = VQConfig

    initted: torch.Tensor
    embed: torch.Tensor
    ema_count: torch.Tensor
    ema_sum: torch.Tensor
    seen_counts: torch.Tensor

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        self.cfg = cfg
        k, d = cfg.codebook_size, cfg.lookup_dim
        self.project_in: nn.Module = nn.Identity()
        self.project_out: nn.Module = nn.Identity()
        f32 = torch.float32  # the state's dtype, whatever torch's default is (torch.set_default_dtype)
        if cfg.codebook_dim is not None and cfg.codebook_dim != cfg.dim:
            self.project_in, self.project_out = nn.Linear(cfg.dim, d, dtype=f32), nn.Linear(d, cfg.dim, dtype=f32)
        allocate_only = building_on_meta() or checkpoint_sets_weights()  # a checkpoint's codes are to come
        embed = torch.zeros(k, d, dtype=f32) if allocate_only else torch.randn(k, d, dtype=f32)
        if cfg.cosine and not allocate_only:
            embed = F.normalize(embed, dim=1)
        self.register_buffer("embed", embed)  # (K, d) the codes
        # EMAs consistent with the codes from the start (1 vector each, their sum the code), so a code
        # nobody picks stays put: vectors per code per step (per rank under DDP), and their sum
        self.register_buffer("ema_count", torch.ones(k, dtype=f32))  # (K,)
        self.register_buffer("ema_sum", embed.clone())  # (K, d)
        self.register_buffer("initted", torch.tensor(not cfg.kmeans_init))  # k-means done?
        self.register_buffer("seen_counts", torch.zeros(k, dtype=torch.long), persistent=False)
        self.out_dtype = torch.float32  # what decode and codebook return: the dtype the module was cast to
        self._kmeans_pool = KmeansPool()  # the vectors k-means initialises the codes from (mmtok.vq.kmeans_init)
        self._ranks_agree = False  # rank 0's codebook taken on the first training step under DDP?
        self._twins: tuple[torch.Tensor, torch.Tensor] | None = None  # see _canonical
        self._initted_seen = False  # ``initted`` read as true once (see _initted)
        self.register_load_state_dict_post_hook(_after_load)

    # ---------------------------------------------------------------- properties

    @property
    def codebook(self) -> torch.Tensor:
        """``[K, D]`` the codes as vectors of the input space (after the out-projection)."""
        with torch.no_grad():
            return self.project_out(self.embed).to(self.out_dtype)

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> VectorQuantizer:
        """``nn.Module``'s device and dtype moves, except that float32 state stays float32 (on the new
        device): float16 and bfloat16 keep 11 and 8 significant bits, so an EMA step, a ``1 - decay``
        share of the gap, would round away, and the search would round its scores. The dtype asked
        for becomes ``out_dtype``, the dtype of :meth:`decode` and :attr:`codebook`."""
        def float32_kept(t: torch.Tensor) -> torch.Tensor:
            moved = fn(t)
            if t.dtype == torch.float32 and moved.is_floating_point() and moved.dtype != torch.float32:
                return t.detach().to(moved.device)
            return moved

        self.out_dtype = fn(torch.empty(0, dtype=self.out_dtype, device=self.embed.device)).dtype
        return super()._apply(float32_kept, recurse)

    # ---------------------------------------------------------------- input checks

    def _check(self, x: torch.Tensor, what: str = "input", *, finite: bool = True) -> None:
        """Refuse what is no ``[..., D]`` float tensor (:func:`~mmtok.vq.inputs.check_input`)."""
        check_input(x, self.cfg.dim, what, finite=finite)

    def _initted(self) -> bool:
        """Whether the k-means initialisation is done, read from the device only until it first says so:
        only loading a state (:meth:`_load_from_state_dict`) turns it back, so a training step on a GPU
        does not wait for this flag."""
        if not getattr(self, "_initted_seen", False):  # (a module pickled whole by an older release lacks it)
            self._initted_seen = bool(self.initted)
        return self._initted_seen

    def _load_from_state_dict(self, state: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        """``nn.Module``'s, refusing a Euclidean codebook for a cosine one first
        (:func:`~mmtok.vq.inputs.check_state_codes`); ``initted`` is read from the device again (the state may
        hold false)."""
        check_state_codes(state, prefix, cosine=self.cfg.cosine)
        self._initted_seen = False
        super()._load_from_state_dict(state, prefix, *args, **kwargs)

    @torch.no_grad()
    def _settle_loaded(self) -> None:
        """After ``load_state_dict(..., assign=True)``, which keeps the state dict's own tensors: its float state
        as float32 (a float16 state dict would otherwise round the codes and EMA steps, and the float32 lookup
        meet float16 projections), and the usage counters, which no state dict holds, on the codebook's device
        (a module built on the meta device kept them there)."""
        for module in (self, self.project_in, self.project_out):
            for store in cast("tuple[dict[str, Any], ...]", (module._parameters, module._buffers)):
                for name, t in store.items():
                    if t is not None and t.is_floating_point() and t.dtype != torch.float32:
                        store[name] = nn.Parameter(t.float(), t.requires_grad) if isinstance(t, nn.Parameter) else t.float()
        if self.seen_counts.device != self.embed.device:
            self.seen_counts = torch.zeros(self.seen_counts.shape, dtype=torch.long, device=self.embed.device)

    def _to_lookup(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., D]`` input -> ``[N, d]`` float32 vectors in the search space (float32 under autocast too)."""
        z = x.reshape(-1, self.cfg.dim).float()  # (N, D)
        with no_autocast(z.device):
            z = self.project_in(z)  # (N, d)
        if self.cfg.cosine:
            z = F.normalize(z, dim=-1)
        return z

    def _finite(self, x: torch.Tensor, z: torch.Tensor, *, training: bool = False) -> bool:
        """Refuse NaN/inf in the input ``x``, its lookup vectors ``z`` or the codebook, and with ``training`` lookup
        vectors too large for float32 statistics, reading one value on the host
        (:func:`~mmtok.vq.inputs.check_values`). True when their values are so large that the search's float32
        scores could overflow: it then runs in float64."""
        with torch.no_grad():  # a check, not part of the graph
            projected = not isinstance(self.project_in, nn.Identity)
            peak = check_values(x, z, self.embed, training=training, projected=projected)
        return overflows_float32_scores(peak, z.shape[1])

    def _search(self, z: torch.Tensor, *, exact: bool, wide: bool = False) -> torch.Tensor:
        """Nearest codes; with ``exact`` the same on any machine (near-ties settled in float64, twins as one);
        ``wide``: scores in float64. ``z`` and the codebook were checked finite (:meth:`_finite`)."""
        with no_autocast(z.device):
            idx = nearest_code(z.detach(), self.embed, cosine=self.cfg.cosine, chunk_size=self.cfg.chunk_size,
                               budget_mb=self.cfg.search_budget_mb, exact_ties=exact, check=False, wide=wide)
        return self._canonical()[idx] if exact else idx

    def _canonical(self) -> torch.Tensor:
        """``[K]``: each code, or the first of its twins (:func:`~mmtok.vq.search.canonical_codes`), for
        the codebook as it is now: worked out again whenever its contents differ from those the table
        was made for. Contents, not a version counter: neither a write through ``embed.data`` nor a
        tensor made under inference mode counts versions. (Comparing ``[K, d]`` is microseconds.)"""
        e = self.embed.detach()
        seen = self._twins
        if seen is None or seen[0].shape != e.shape or seen[0].device != e.device or not torch.equal(seen[0], e):
            self._twins = e.clone(), canonical_codes(e, cosine=self.cfg.cosine)
        return self._twins[1]

    # ---------------------------------------------------------------- public API

    def twin_table(self) -> torch.Tensor:
        """``[K]`` int64: each code's own index, or for a twin the first code on its point, the one
        :meth:`encode` gives (a copy; :func:`~mmtok.vq.search.canonical_codes`)."""
        return self._canonical().clone()

    def forward(self, x: torch.Tensor) -> QuantizeResult:
        """Quantize ``x`` (``[..., D]``); in training mode also update the codebook, refusing values too large
        for its float32 statistics before it learns from them (:mod:`mmtok.vq.inputs`)."""
        self._check(x, finite=False)
        lead = x.shape[:-1]
        z = self._to_lookup(x)  # (N, d)
        wide = self._finite(x, z, training=self.training)  # before anything learns from it
        if self.training and not self._ranks_agree and world_size() > 1:
            self._take_rank0_codebook()
        if self.training and not self._initted():
            self._maybe_kmeans_init(z.detach())
        idx = self._search(z, exact=not self.training, wide=wide)  # (N,); outside training as encode gives them
        q = F.embedding(idx, self.embed)  # (N, d)
        counts = code_counts(idx, self.cfg.codebook_size)
        if self.training:
            self._ema_update(z.detach(), idx, counts)
        if z.numel():  # also without gradients, so the figure is there to log
            loss = self.cfg.commitment_weight * F.mse_loss(z, q.detach())
        else:
            loss = z.sum() * 0.0  # 0, with gradients when the input has them, as for any batch
        q_st = z + (q - z).detach()  # straight-through estimator
        out = self.project_out(q_st).reshape(*lead, self.cfg.dim).to(x.dtype)
        with COUNTS_LOCK:
            self.seen_counts += counts
        usage, perplexity = codebook_usage_tensors(counts)  # on the device: the host waits for nothing here
        return QuantizeResult(out, idx.reshape(lead), loss, perplexity.to(z.dtype), usage.to(z.dtype))

    if TYPE_CHECKING:  # calling the module runs forward (nn.Module.__call__): give calls forward's types
        __call__ = forward

    @ordinary_outputs
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Indices (int64, shape ``x.shape[:-1]``) of the nearest codes; counted in :meth:`usage_stats`.

        The search runs under inference mode; the indices come back as an ordinary tensor that a
        caller may shift in place or feed to an embedding that trains. Of two or more codes on one
        point (twins, which dead-code restarts left before they took distinct inputs), the first
        always comes back: which twin the search itself lands on depends on rounding, so the thread
        count or the CPU would change the codes (:func:`~mmtok.vq.search.canonical_codes`).
        """
        self._check(x, finite=False)  # NaN/inf per slab, with its lookup vectors (_finite)
        flat = x.reshape(-1, self.cfg.dim)  # (N, D), a view when x is contiguous
        idx = torch.empty(flat.shape[0], dtype=torch.long, device=flat.device)
        # projections, normalisation and dtype casts happen per slab, so memory stays bounded
        for start in range(0, flat.shape[0], ENCODE_SLAB):
            stop = min(start + ENCODE_SLAB, flat.shape[0])
            z = self._to_lookup(flat[start:stop])
            wide = self._finite(flat[start:stop], z)
            idx[start:stop] = self._search(z, exact=True, wide=wide)
        counts = code_counts(idx, self.cfg.codebook_size)
        with COUNTS_LOCK:
            self.seen_counts += counts
        return idx.reshape(x.shape[:-1])

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Vectors ``[..., D]`` for integer ``indices`` ``[...]``."""
        indices = integer_codes(indices, what="VectorQuantizer.decode indices", error=QuantizerError,
                                size=self.cfg.codebook_size,
                                hint=f" (outside the codebook of size {self.cfg.codebook_size})")
        indices = indices.to(self.embed.device)
        return self.project_out(F.embedding(indices, self.embed)).to(self.out_dtype)

    def usage_stats(self) -> UsageStats:
        """Counts, usage and perplexity over everything quantized since :meth:`reset_stats`."""
        with COUNTS_LOCK:
            counts = self.seen_counts.detach().cpu().clone()
        usage, perplexity = codebook_usage(counts)
        return UsageStats(counts, usage, perplexity, int(counts.sum()))

    def reset_stats(self) -> None:
        """Forget the counts behind :meth:`usage_stats`."""
        with COUNTS_LOCK:
            self.seen_counts.zero_()

    # ---------------------------------------------------------------- training internals

    @torch.no_grad()
    def _take_rank0_codebook(self) -> None:
        """Rank 0's codes and EMA statistics on every rank, once: ranks that drew their own random codes
        (no k-means initialisation) would otherwise never agree."""
        for t in (self.embed, self.ema_sum, self.ema_count):
            broadcast_(t)
        self._ranks_agree = True

    @torch.no_grad()
    def _maybe_kmeans_init(self, z: torch.Tensor) -> None:
        """Pool a random sample of the vectors until enough came (on every rank together), then run k-means once."""
        c = self.cfg
        self._kmeans_pool.add(z, k=c.codebook_size)
        if not self._kmeans_pool.enough(max(c.codebook_size, c.kmeans_min_vectors), z.device):
            return
        # seeds are random vectors of all ranks; every rank ends with the same centers
        centers, counts = self._kmeans_pool.fit(c.codebook_size, c.kmeans_iters, cosine=c.cosine,
                                                chunk_size=c.chunk_size, budget_mb=c.search_budget_mb)
        self._kmeans_pool = KmeansPool()
        self.embed.copy_(centers)
        self.ema_sum.copy_(centers * counts[:, None])
        self.ema_count.copy_(counts)
        self.initted.fill_(True)

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor) -> None:
        """One EMA step and dead-code restarts (:mod:`mmtok.vq.ema`) from this rank's ``z`` ``[N, d]``."""
        c = self.cfg
        counts = per_rank(counts.float())  # (K,)
        # no vectors on any rank: nothing to average in, nothing to restart from (one process knows without asking)
        if (z.shape[0] == 0) if world_size() == 1 else not bool(counts.any()):
            return
        sums = torch.zeros(c.codebook_size, z.shape[1], device=z.device, dtype=torch.float32)
        sums = per_rank(sums.index_add_(0, idx, z.float()))  # (K, d)
        ema_step(self.ema_count, self.ema_sum, counts, sums, decay=c.decay, eps=c.eps, cosine=c.cosine,
                 out=self.embed)
        if c.dead_code_threshold > 0 or c.dead_code_rate > 0:
            restart_dead(self.embed, self.ema_count, self.ema_sum, z, threshold=c.dead_code_threshold,
                         rate=c.dead_code_rate, cosine=c.cosine)

    @torch.no_grad()
    def rebalance(self, x: torch.Tensor, *, iters: int = 20, min_frac: float = 0.25) -> UsageStats:
        """Refit the codebook to ``x`` (``[..., D]``) by k-means that keeps every code busy (LBG-style).

        Lloyd iterations start from the current codes; after each, codes that won
        fewer than ``min_frac`` times the mean number of vectors per code are
        moved next to the code with the largest total error (a split of that
        cluster, :func:`~mmtok.vq.kmeans.split_busiest_`), so codes leave regions ``x``
        rarely visits and refine the ones it visits most. EMA statistics are reset to the new codes (total EMA
        count kept; where it is 0, the counts of ``x`` per rank: the scale of
        :mod:`mmtok.vq.ema`; a code no vector of ``x`` takes counts as one, so it stays
        on its point) and the usage counters are cleared. No vectors (on any rank) is
        a :class:`QuantizerError`. Returns the usage
        of the final assignment of ``x``. Under ``torch.distributed`` every rank
        must call it (sums and counts are all-reduced). Inputs go through the
        lookup projection/normalisation like :meth:`forward`.
        """
        self._check(x)
        if iters < 1:
            raise QuantizerError(f"rebalance needs iters ≥ 1, got {iters}")
        if not 0.0 <= min_frac < 1.0:
            raise QuantizerError(f"rebalance min_frac must be in [0, 1), got {min_frac}")
        data = self._to_lookup(x.detach())  # (N, d)
        self._finite(x, data, training=True)  # values its float32 sums and distances hold, before anything changes
        if data.shape[0] == 0 and world_size() == 1:
            raise QuantizerError("rebalance got no vectors: nothing to refit the codebook to")
        centers = self.embed.clone().float()
        for it in range(iters):
            step = lloyd_step(data, centers, cosine=self.cfg.cosine, chunk_size=self.cfg.chunk_size,
                              budget_mb=self.cfg.search_budget_mb, distributed=True)
            centers = step.centers
            if it < iters - 1:
                split_busiest_(centers, step.counts, step.error, min_frac, seed=it, cosine=self.cfg.cosine)
        idx = nearest_code(data, centers, cosine=self.cfg.cosine, chunk_size=self.cfg.chunk_size,
                           budget_mb=self.cfg.search_budget_mb)
        counts = torch.bincount(idx, minlength=self.cfg.codebook_size).float()
        all_reduce_(counts)
        if not bool(counts.any()):  # no vectors on any rank
            raise QuantizerError("rebalance got no vectors on any rank: nothing to refit the codebook to")
        total = float(self.ema_count.sum())
        scale = total / max(float(counts.sum()), 1.0) if total > 0 else 1.0 / world_size()  # per rank
        self.embed.copy_(centers)
        # a code no vector of x took counts as one, so that it stays on its point (a count and sum of 0 would move
        # it to the origin on the next step); restarts move it if it stays unused
        self.ema_count.copy_(counts.clamp_min(1.0) * scale)
        self.ema_sum.copy_(centers * self.ema_count[:, None])
        self.initted.fill_(True)
        self.reset_stats()
        c = counts.cpu().long()
        usage, perplexity = codebook_usage(c)
        return UsageStats(c, usage, perplexity, int(c.sum()))

    @torch.no_grad()
    def prune_(self, keep: torch.Tensor | list[int]) -> torch.Tensor:
        """Keep only the codes ``keep`` (distinct indices, in their new order), in place.

        The codebook shrinks to ``K' = len(keep)`` codes: new code ``j`` is old code
        ``keep[j]``, with its vector and EMA statistics; ``cfg.codebook_size``
        becomes ``K'`` and the usage counters are cleared. The projections are
        untouched, so an input whose nearest code was kept is still nearest to it.
        Its code stays the same (renumbered) unless pruning changes which codes are
        twins, which :meth:`encode` gives as the first of them: codes within 1e-4 of
        the codebook's median radius of each other, grouped transitively
        (:func:`~mmtok.vq.search.canonical_codes`), the radius measured on the codebook
        as it is, so after pruning. Two kept codes that close become one where the
        kept codes spread wider; twins part where they spread less or where the code
        that linked them was dropped; of kept twins the first in ``keep`` comes back.
        Compare :meth:`twin_table` before and after (:func:`~mmtok.vq.prune.save_pruned`
        records the count). Returns the map ``[K]`` from old to new indices (``-1``
        for a dropped code).

        >>> vq = VectorQuantizer(VQConfig(dim=4, codebook_size=6, kmeans_init=False))
        >>> vq.prune_([4, 1]).tolist(), vq.codebook_size, tuple(vq.embed.shape)
        ([-1, 1, -1, -1, 0, -1], 2, (2, 4))
        """
        k = self.cfg.codebook_size
        idx = integer_codes(keep, what="prune_ codes to keep", error=QuantizerError, size=k,
                            hint=f" (outside the codebook of size {k})").flatten().cpu()
        if idx.unique().numel() != idx.numel():
            raise QuantizerError("prune_ needs distinct codes to keep; some are repeated")
        if idx.numel() < 2:
            raise QuantizerError("prune_ needs at least one code to keep, got none" if not idx.numel() else
                                 "prune_ needs at least 2 codes to keep (a codebook holds two or more), got 1")
        cfg = dataclasses.replace(self.cfg, codebook_size=int(idx.numel()))  # checked before anything changes
        old_to_new = torch.full((k,), -1, dtype=torch.long)
        old_to_new[idx] = torch.arange(idx.numel())
        dev = self.embed.device
        self.embed = self.embed[idx.to(dev)].clone()
        self.ema_count = self.ema_count[idx.to(dev)].clone()
        self.ema_sum = self.ema_sum[idx.to(dev)].clone()
        self.seen_counts = torch.zeros(idx.numel(), dtype=torch.long, device=dev)
        self.cfg = cfg
        return old_to_new

    def extra_repr(self) -> str:
        c = self.cfg
        return (
            f"dim={c.dim}, codebook_size={c.codebook_size}, lookup_dim={c.lookup_dim}, "
            f"cosine={c.cosine}, decay={c.decay}"
        )


def _after_load(module: VectorQuantizer, _incompatible: object) -> None:
    """``load_state_dict``'s post-hook of every :class:`VectorQuantizer` (:meth:`VectorQuantizer._settle_loaded`)."""
    module._settle_loaded()


def no_autocast(device: torch.device) -> AbstractContextManager[object]:
    """Autocast off on ``device``: the lookup and the search stay float32, so the codes do not depend on it (nor
    do a tokenizer's, whose encoders run in the model's dtype under it).
    (Nothing to switch off where it is not on: entering and leaving ``torch.autocast`` costs the host more than
    some of a training step's kernels.)"""
    if torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return nullcontext()
