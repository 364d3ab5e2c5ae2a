"""A VQ training step that reads few values on the host, with the codes and restarts it had before.

On a GPU every value the host reads (``bool(t)``, ``int(t)``, ``.item()``, ``nonzero``, a boolean
mask, ``bincount``) waits for the device to finish all the work queued before it. The training
step reads two: whether the input, its lookup vectors and the codes are finite and in range (their
largest magnitude), and how many codes are dead. The dead-code restarts are worked out on the device
(:func:`~mmtok.vq.search.new_points_mask`'s dense path, :func:`~mmtok.vq.ema.first_true`), and
must choose the inputs the sorting path chooses.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

from mmtok.core.metrics import code_counts, codebook_usage, codebook_usage_tensors
from mmtok.vq.ema import first_true
from mmtok.vq.quantizer import VectorQuantizer, VQConfig
from mmtok.vq.search import _as_points, _new_points_dense, _new_points_sorted, new_points_mask

HOST_READS = {"__bool__", "__int__", "__float__", "__index__", "item", "tolist", "nonzero", "unique", "bincount",
              "masked_select", "cpu", "numpy", "repeat_interleave"}


class HostReads(TorchFunctionMode):
    """Counts the torch calls that read a tensor's value on the host (and boolean-mask indexing)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: collections.Counter[str] = collections.Counter()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in HOST_READS:
            self.seen[name] += 1
        if name in ("__getitem__", "__setitem__") and len(args) > 1:
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index):
                self.seen["boolean mask"] += 1
        return func(*args, **(kwargs or {}))


def _clustered_batches(steps: int, *, repeat_share: float = 0.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(512, 16, generator=g) * 3
    out = []
    for _ in range(steps):
        b = centres[torch.randint(0, 512, (2048,), generator=g)] + 0.1 * torch.randn(2048, 16, generator=g)
        b[: int(repeat_share * b.shape[0])] = centres[0]  # a third of the batch one vector: restarts must not twin
        out.append(b)
    return out


@pytest.mark.parametrize("cosine", [False, True])
def test_a_training_step_reads_two_values_on_the_host_and_bincount_only_on_the_cpu(cosine: bool) -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=16, codebook_size=256, dead_code_threshold=4.0, cosine=cosine)).train()
    batches = _clustered_batches(12, repeat_share=0.3)
    for b in batches[:4]:  # k-means initialisation first
        vq(b)
    restarts = 0
    for b in batches[4:]:
        before = vq.embed.clone()
        with HostReads() as reads:
            vq(b)
        restarts += int((vq.embed != before).any(1).sum() > 0)
        # bincount is the CPU's count (code_counts): on a GPU an index-add, read nowhere
        assert reads.seen == {"__float__": 1, "__int__": 1, "bincount": 1}, reads.seen
    assert restarts  # the restart path ran under the counter


def test_a_step_without_restarts_reads_one_and_the_init_flag_only_once() -> None:
    vq = VectorQuantizer(VQConfig(dim=16, codebook_size=64, dead_code_threshold=0.0, kmeans_init=False)).train()
    with HostReads() as reads:
        vq(torch.randn(512, 16))
    assert reads.seen == {"__float__": 1, "__bool__": 1, "bincount": 1}, reads.seen  # the first reads `initted` too
    with HostReads() as reads:
        vq(torch.randn(512, 16))
    assert reads.seen == {"__float__": 1, "bincount": 1}, reads.seen


def _awkward_rows(seed: int, n: int, d: int, cb: torch.Tensor) -> torch.Tensor:
    """Rows with exact repeats, near twins of each other and of codes, codes themselves, and plain ones."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randn(n, d, generator=g)
    rows[1::7] = rows[0]  # exact repeats of one row
    rows[2::9] = cb[torch.randint(0, cb.shape[0], (len(range(2, n, 9)),), generator=g)]  # on codes
    near = torch.arange(3, n, 11)
    rows[near] = rows[near - 1] + 1e-7 * torch.randn(near.numel(), d, generator=g)  # twins of the row before
    close = torch.arange(4, n, 13)
    rows[close] = cb[close % cb.shape[0]] + 1e-6 * torch.randn(close.numel(), d, generator=g)  # twins of codes
    return rows


@pytest.mark.parametrize("cosine", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_the_dense_new_points_choose_the_rows_the_sorting_path_chooses(seed: int, cosine: bool) -> None:
    g = torch.Generator().manual_seed(100 + seed)
    cb = torch.randn(300, 8, generator=g)
    rows = _awkward_rows(seed, 120, 8, cb)
    pts, codes = _as_points(rows, cosine), _as_points(cb, cosine)
    dense, sorted_ = _new_points_dense(pts, codes, 1e-4), _new_points_sorted(pts, codes, 1e-4)
    assert torch.equal(dense, sorted_)
    assert 0 < int(dense.sum()) < rows.shape[0]  # some kept, some refused: the comparison means something


def test_new_points_mask_takes_the_sorting_path_for_large_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    import mmtok.vq.search as search

    cb = torch.randn(50, 4)
    rows = _awkward_rows(0, 60, 4, cb)
    dense = new_points_mask(rows, cb)
    monkeypatch.setattr(search, "DENSE_NEW_POINTS", 10)
    assert torch.equal(new_points_mask(rows, cb), dense)
    assert new_points_mask(rows[:0], cb).shape == (0,)


@pytest.mark.parametrize("static", [True, False])
def test_first_true_is_nonzero_cut_or_padded(static: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not static:  # a device without nonzero_static: the running count
        def missing(*args: Any, **kwargs: Any) -> torch.Tensor:
            raise NotImplementedError("nonzero_static: no kernel for this device")

        monkeypatch.setattr(torch, "nonzero_static", missing)
    g = torch.Generator().manual_seed(3)
    for n, size in [(0, 2), (1, 1), (17, 3), (40, 40), (40, 60)]:
        mask = torch.rand(n, generator=g) < 0.4
        want = mask.nonzero().flatten()[:size].tolist()
        assert first_true(mask, size).tolist() == want + [-1] * (size - len(want))


def test_code_counts_match_bincount_off_the_cpu_path() -> None:
    idx = torch.randint(0, 37, (1000,), generator=torch.Generator().manual_seed(1))
    meta_free = torch.zeros(37, dtype=torch.long).index_add_(0, idx, torch.ones_like(idx))
    assert torch.equal(code_counts(idx, 37), meta_free)
    assert torch.equal(code_counts(idx[:0], 5), torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("counts", [[3, 1, 0, 0], [0, 0, 0], [5], [1] * 64, [100, 1, 1, 0, 7]])
def test_usage_figures_match_the_definition(counts: list[int]) -> None:
    """Usage and perplexity against the definition worked out in plain Python (exp of the entropy over the
    codes used; 0 with nothing counted), as tensors on the device and as floats."""
    import math

    total = sum(counts)
    want_ppl = math.exp(-sum(c / total * math.log(c / total) for c in counts if c)) if total else 0.0
    want_usage = sum(c > 0 for c in counts) / len(counts)
    u, p = codebook_usage_tensors(torch.tensor(counts))
    assert float(u) == want_usage and float(p) == pytest.approx(want_ppl, rel=1e-12, abs=0.0)
    assert codebook_usage(torch.tensor(counts)) == (float(u), float(p))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_a_training_step_waits_for_the_device_at_most_twice() -> None:
    import warnings

    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=16, codebook_size=256, dead_code_threshold=4.0)).cuda().train()
    batches = [b.cuda() for b in _clustered_batches(12, repeat_share=0.3)]
    for b in batches[:4]:
        vq(b)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for b in batches[4:]:
                vq(b)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    # the VQ code's own waits: torch/cuda/__init__.py warns once for the switch itself
    waits = [f"{w.filename}:{w.lineno}" for w in caught
             if "synchroniz" in str(w.message) and "/mmtok/" in w.filename.replace("\\", "/")]
    assert len(waits) <= 2 * len(batches[4:]), collections.Counter(waits)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_an_exact_encode_waits_as_often_with_many_blocks_as_with_one() -> None:
    import warnings

    g = torch.Generator().manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=16, codebook_size=1000, kmeans_init=False)).cuda().eval()
    x = (vq.embed[torch.randint(0, 1000, (20_000,), generator=g).cuda()] + 1e-6 * torch.randn(20_000, 16).cuda())
    counts = {}
    for chunk in (None, 500):  # one block; 40 blocks
        vq.cfg.chunk_size = chunk
        vq.encode(x)
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                vq.encode(x)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts[chunk] = [f"{w.filename}:{w.lineno}" for w in caught
                         if "synchroniz" in str(w.message) and "/mmtok/" in w.filename.replace("\\", "/")]
    assert len(counts[500]) == len(counts[None]) <= 12, {k: collections.Counter(v) for k, v in counts.items()}


def test_a_loaded_state_without_kmeans_initialises_again_on_the_next_step() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8)).train()
    blank = VectorQuantizer(VQConfig(dim=4, codebook_size=8)).state_dict()  # initted false: k-means to come
    vq(torch.randn(64, 4))
    assert bool(vq.initted)
    vq.load_state_dict(blank)
    vq(torch.randn(64, 4) + 10)  # the flag is read again: k-means on these vectors, not EMA steps on random codes
    assert bool(vq.initted)
    assert float(vq.embed.mean()) > 8


@pytest.mark.parametrize("training", [True, False])
def test_one_finiteness_read_still_names_what_is_not_finite(training: bool) -> None:
    """The one read that covers the input, its lookup vectors and the codebook; when it is not finite, the
    message says which of them holds the NaN/inf."""
    from mmtok.core.errors import QuantizerError

    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8, kmeans_init=False)).train(training)
    call = vq if training else vq.encode
    bad = torch.ones(5, 4)
    bad[1, 2] = float("nan")
    with pytest.raises(QuantizerError, match=r"^VectorQuantizer input contains 1 NaN/inf value\(s\)$"):
        call(bad)
    vq.eval().encode(torch.full((3, 4), 3e38))  # finite, but its float32 sum would not be: the float64 one holds it
    vq.train(training)
    vq.embed[3, 0] = float("inf")
    with pytest.raises(QuantizerError, match=r"^nearest_code codebook has NaN/inf values in 1 row\(s\), the first row 3$"):
        call(torch.ones(2, 4))
    projected = VectorQuantizer(VQConfig(dim=4, codebook_size=8, codebook_dim=2, kmeans_init=False)).train(training)
    with torch.no_grad():
        projected.project_in.weight.fill_(3e38)  # finite input, lookup vectors that overflow
    with pytest.raises(QuantizerError, match=r"^VectorQuantizer lookup vectors hold NaN/inf values from finite"):
        (projected if training else projected.encode)(torch.full((2, 4), 10.0))
