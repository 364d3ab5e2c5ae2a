"""The codebook's search, k-means initialisation, pruning, DDP agreement and autocast: edge cases.

Zero rows under cosine tie with every code and are settled at once (code 0); the k-means
initialisation fits a random sample of everything offered, on the EMA's scale of one rank's
step; pruning checks its codes before it changes anything; ranks agree without k-means and
with a rank that has no vectors; autocast does not change the codes; the public search refuses
what it cannot search.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmtok.core.errors import QuantizerError
from mmtok.vq import kmeans_init
from mmtok.vq.quantizer import VectorQuantizer, VQConfig
from mmtok.vq.search import nearest_code

# --------------------------------------------------------------------------- search


class _CountingTorch:
    """``torch`` as :mod:`mmtok.vq.search` sees it, counting the rows its float64 settling measures one by one
    (the pairs of a row and a candidate code it concatenates)."""

    def __init__(self) -> None:
        self.measured = 0

    def __getattr__(self, name: str) -> object:
        return getattr(torch, name)

    def cat(self, tensors: list[torch.Tensor], *args: object, **kwargs: object) -> torch.Tensor:
        out = torch.cat(tensors, *args, **kwargs)
        if out.dim() == 1 and out.dtype == torch.float64:
            self.measured += out.numel()
        return out


def test_zero_rows_under_cosine_take_the_first_code_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.vq import search

    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=64, codebook_size=1024, cosine=True, kmeans_init=False)).eval()
    x = torch.randn(8000, 64)
    x[4000:] = 0  # zero padding: every score ties
    counting = _CountingTorch()
    monkeypatch.setattr(search, "torch", counting)
    codes = vq.encode(x)
    monkeypatch.undo()
    # one pair measured per zero row (its first code), not 4,000 × 1,024 pairs in a [rows × K, d] float64 tensor
    assert 4000 <= counting.measured < 8000, counting.measured
    assert codes[4000:].unique().tolist() == [0]  # the first of equals, as the float32 search gives it
    want = torch.cdist(x[:4000].double(), vq.embed.double()).argmin(1)
    assert torch.equal(codes[:4000], want)


def test_settling_measures_the_closest_candidates_directly() -> None:
    """Distances 9e-16 apart next to |x|² = 1e6: the expanded |x|² + |c|² - 2 x·c rounds them to a tie."""
    u = 2.0**-14  # float32's spacing at 1000
    v = u + 2.0**-37  # the next float32 after u: a distance 2 u 2^-37 (9e-16) longer
    x = torch.tensor([[1000.0, 0.0], [0.0, 1000.0], [0.0, 0.0]])
    cb = torch.tensor([[1000.0, v], [1000.0 + u, 0.0], [0.0, 1000.0 + u], [v, 1000.0]])
    assert nearest_code(x, cb, exact_ties=True).tolist()[:2] == [1, 2]
    unit = torch.nn.functional.normalize(torch.randn(300, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    assert nearest_code(torch.zeros(5, 8), unit, cosine=True, exact_ties=True).tolist() == [0] * 5


@pytest.mark.parametrize(("x", "codebook", "message"), [
    (torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), torch.eye(2), "x has NaN/inf values in 1 row"),
    (torch.ones(3, 2), torch.tensor([[0.0, float("inf")]]), "codebook has NaN/inf"),
    (torch.ones(3, 5), torch.ones(4, 6), r"x \(3, 5\) and codebook \(4, 6\)"),
    (torch.ones(5), torch.ones(4, 5), r"x \(5,\)"),
    (torch.ones(3, 2), torch.ones(0, 2), "K ≥ 1"),
])
def test_the_public_search_refuses_what_it_cannot_search(x: torch.Tensor, codebook: torch.Tensor,
                                                         message: str) -> None:
    with pytest.raises(QuantizerError, match=message) as err:
        nearest_code(x, codebook)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- k-means initialisation


@pytest.mark.parametrize("steps", [1, 2])
def test_kmeans_init_fits_a_random_sample_of_everything_offered(steps: int) -> None:
    """131,072 vectors, the second half elsewhere: offered in one step or two, both halves get codes."""
    torch.manual_seed(0)
    halves = [torch.randn(65_536, 2) * 0.5 + torch.tensor([10.0 * i, 0.0]) for i in range(2)]
    batches = [torch.cat(halves)] if steps == 1 else halves
    vq = VectorQuantizer(VQConfig(dim=2, codebook_size=16, kmeans_min_vectors=131_072, kmeans_iters=5,
                                  dead_code_threshold=0.0))
    for b in batches:
        vq(b)
    assert bool(vq.initted)
    near_second = int((vq.embed[:, 0] > 5).sum())
    assert 4 <= near_second <= 12
    assert vq.ema_count.sum().item() == pytest.approx(131_072 / steps, rel=1e-5)  # vectors per step


def test_kmeans_init_pool_is_bounded_and_the_same_every_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kmeans_init, "KMEANS_MAX_SAMPLES", 100)
    cfg = VQConfig(dim=4, codebook_size=32, kmeans_min_vectors=1000, dead_code_threshold=0.0)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        vq = VectorQuantizer(cfg)
        for _ in range(4):
            vq(torch.randn(200, 4))
            assert vq._kmeans_pool.rows is None or vq._kmeans_pool.rows.shape[0] <= 100
        vq(torch.randn(200, 4))
        assert bool(vq.initted)
        runs.append(vq.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert runs[0]["ema_count"].sum().item() == pytest.approx(200, rel=1e-5)  # per step, not per 100-row sample


def test_more_codes_than_the_sample_cap_get_distinct_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kmeans_init, "KMEANS_MAX_SAMPLES", 100)
    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=150, kmeans_iters=2, dead_code_threshold=0.0))
    vq(torch.randn(120, 4))
    vq(torch.randn(120, 4))
    assert bool(vq.initted)
    assert torch.unique(vq.embed, dim=0).shape[0] == 150


def test_counts_after_kmeans_init_are_vectors_per_step() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=8, codebook_size=64, dead_code_threshold=0.0))
    for _ in range(4):  # 4 steps of 16 vectors reach K = 64
        vq(torch.randn(16, 8))
    assert bool(vq.initted)
    assert vq.ema_count.sum().item() == pytest.approx(16.0, rel=1e-5)


# --------------------------------------------------------------------------- pruning


@pytest.mark.parametrize(("keep", "message"), [
    ([1.7, 3.2], "must be integers"),
    (torch.tensor([True, False, True, False, False, False]), "must be integers"),
    ([3], "at least 2 codes"),
    ([0, 6], "outside the codebook"),
])
def test_prune_refuses_bad_codes_before_it_changes_anything(keep: object, message: str) -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=6, kmeans_init=False))
    before = copy.deepcopy(vq.state_dict())
    with pytest.raises(QuantizerError, match=message):
        vq.prune_(keep)  # type: ignore[arg-type]
    assert vq.cfg.codebook_size == 6
    assert all(torch.equal(before[k], v) for k, v in vq.state_dict().items())
    assert vq.seen_counts.shape == (6,)


# --------------------------------------------------------------------------- autocast


def test_autocast_does_not_change_the_codes_with_a_lookup_projection() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=16, codebook_size=256, codebook_dim=8))
    for _ in range(3):
        vq(torch.randn(1024, 16))
    x = torch.randn(4096, 16)
    twin = copy.deepcopy(vq)
    torch.manual_seed(1)  # the same dead-code restarts
    plain = vq(x)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = twin(x)  # a training step
    assert torch.equal(plain.indices, auto.indices)
    assert torch.equal(vq.embed, twin.embed)
    vq.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(vq.encode(x), twin.eval().encode(x))
    assert torch.equal(vq.encode(x), twin.encode(x))


# --------------------------------------------------------------------------- torch.distributed


def _ranks(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(rank)  # each rank draws its own random codes
    out = {}
    # k-means when rank 1 has no vectors yet
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=16, dead_code_threshold=1.0))
    vq(torch.randn(64 if rank == 0 else 0, 4))
    vq(torch.randn(32, 4) + rank)
    out["empty_rank"] = vq.state_dict()
    # no k-means: rank 0's random codes on every rank from the first step
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=16, kmeans_init=False, dead_code_threshold=0.0))
    for _ in range(3):
        vq(torch.randn(32, 4) + rank)
    out["random_init"] = vq.state_dict()
    # k-means over 3 steps of 8 vectors a rank: counts per step of one rank
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=20, dead_code_threshold=0.0))
    for _ in range(3):
        vq(torch.randn(8, 4) * (1 + rank))
    out["pooled"] = vq.state_dict()
    torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_ranks_agree_with_an_empty_rank_and_without_kmeans(tmp_path: Path) -> None:
    mp.spawn(_ranks, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for case in ("empty_rank", "random_init", "pooled"):
        assert all(torch.equal(r0[case][k], r1[case][k]) for k in r0[case]), case
        assert bool(r0[case]["initted"])
    assert torch.unique(r0["empty_rank"]["embed"], dim=0).shape[0] == 16
    assert r0["pooled"]["ema_count"].sum().item() == pytest.approx(8.0, rel=1e-5)
