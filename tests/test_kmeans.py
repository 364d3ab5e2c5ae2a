"""The one k-means (mmtok.vq.kmeans): known answers, weights, empty clusters, cosine, chunking, ranks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmtok.synth.clustered import make_clustered
from mmtok.vq.kmeans import kmeans, lloyd, lloyd_step, sample_rows


def blobs(means: list[list[float]], n: int, spread: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` rows around each of ``means`` (in order), and the blob of every row."""
    g = torch.Generator().manual_seed(seed)
    m = torch.tensor(means)
    label = torch.arange(len(means)).repeat_interleave(n)
    return m[label] + spread * torch.randn(len(label), m.shape[1], generator=g), label


def test_known_answer_on_well_separated_clusters() -> None:
    means = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]
    x, label = blobs(means, 200, 0.3)
    centers, counts = kmeans(x, 3, 10, generator=torch.Generator().manual_seed(1))
    order = centers[:, 0].add(2 * centers[:, 1]).argsort()  # sort as in `means`
    centers, counts = centers[order], counts[order]
    assert counts.tolist() == [200.0, 200.0, 200.0]
    truth = torch.stack([x[label == i].mean(0) for i in range(3)])
    torch.testing.assert_close(centers, truth)  # each center is its blob's mean: a fixed point of Lloyd


def test_step_returns_assignment_counts_errors_and_means() -> None:
    rows = torch.tensor([[0.0], [2.0], [9.0], [11.0], [30.0]])
    s = lloyd_step(rows, torch.tensor([[1.0], [10.0], [100.0]]))
    assert s.idx.tolist() == [0, 0, 1, 1, 1]
    assert s.counts.tolist() == [2.0, 3.0, 0.0] and torch.equal(s.mass, s.counts)
    assert s.row_error.tolist() == [1.0, 1.0, 1.0, 1.0, 400.0]
    assert s.error.tolist() == [2.0, 402.0, 0.0]
    assert s.centers.flatten().tolist() == pytest.approx([1.0, 50 / 3, 100.0])  # a code with no rows stays
    assert s.weights is None


def test_weights_pull_a_center() -> None:
    rows = torch.tensor([[0.0], [1.0], [10.0]])
    start = torch.tensor([[0.5], [10.0]])
    plain = lloyd_step(rows, start)
    assert plain.centers.flatten().tolist() == [0.5, 10.0]
    heavy = lloyd_step(rows, start, weights=torch.tensor([1.0, 9.0, 1.0]))
    assert heavy.centers.flatten().tolist() == pytest.approx([0.9, 10.0])  # (0*1 + 1*9) / 10
    assert heavy.mass.tolist() == [10.0, 1.0] and heavy.counts.tolist() == [2.0, 1.0]
    assert heavy.error.tolist() == pytest.approx([0.25 + 9 * 0.25, 0.0])
    # weights computed from the assignment: every row of code 0 weighs 1/(rows of code 0)
    seen: list[list[int]] = []

    def per_code(idx: torch.Tensor) -> torch.Tensor:
        seen.append(idx.tolist())
        return 1.0 / torch.bincount(idx).float()[idx]

    s = lloyd_step(rows, start, weights=per_code)
    assert seen == [[0, 0, 1]] and s.weights is not None and s.weights.tolist() == [0.5, 0.5, 1.0]
    assert s.mass.tolist() == [1.0, 1.0]
    # through lloyd as well: the weighted mean is a fixed point
    centers, counts = lloyd(rows, start, 3, weights=torch.tensor([1.0, 9.0, 1.0]))
    torch.testing.assert_close(centers, torch.tensor([[0.9], [10.0]]))
    assert counts.tolist() == [2.0, 1.0]


def test_empty_cluster_moves_onto_the_worst_served_rows() -> None:
    # two rows at 10 and 11 are served by the center at 0; the code at 100 wins nothing
    rows = torch.cat([torch.zeros(20, 1), torch.tensor([[10.0], [11.0]])])
    one_step, _ = lloyd(rows, torch.tensor([[0.0], [100.0]]), 1)
    assert one_step[1].item() == 11.0  # the row with the largest error
    centers, counts = lloyd(rows, torch.tensor([[0.0], [100.0]]), 4)
    assert centers.flatten().tolist() == [0.0, 10.5] and counts.tolist() == [20.0, 2.0]
    # several empty codes take distinct rows, worst first
    three, _ = lloyd(rows, torch.tensor([[0.0], [100.0], [200.0]]), 1)
    assert three[1:].flatten().tolist() == [11.0, 10.0]
    assert three[0].item() == pytest.approx(21 / 22)


def test_reseed_pool_draws_among_the_badly_served_rows() -> None:
    # 100 rows at 0, then rows at 1..20 all served by the center at 0; three codes far away win nothing
    rows = torch.cat([torch.zeros(100, 1), torch.arange(1.0, 21.0)[:, None]])
    start = torch.tensor([[0.0], [500.0], [600.0], [700.0]])
    exact, _ = lloyd(rows, start, 1)
    assert exact[1:].flatten().tolist() == [20.0, 19.0, 18.0]
    picks = set()
    for seed in range(20):
        c, _ = lloyd(rows, start, 1, reseed_pool=0.1, generator=torch.Generator().manual_seed(seed))
        again, _ = lloyd(rows, start, 1, reseed_pool=0.1, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(c, again)  # the generator fixes the draw
        new = c[1:].flatten().tolist()
        assert len(set(new)) == 3 and all(v >= 9.0 for v in new)  # among the 12 worst rows: 9..20
        picks.update(new)
    assert len(picks) > 3  # not always the same three
    with pytest.raises(ValueError, match="reseed_pool"):
        lloyd(rows, start, 1, reseed_pool=2.0)


def test_cosine_centers_are_unit_directions() -> None:
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), dim=1)
    x = torch.nn.functional.normalize(dirs.repeat_interleave(100, 0) + 0.05 * torch.randn(300, 3, generator=g), dim=1)
    start = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2, 0.0], [0.1, 1.0, 0.1], [0.0, 0.3, 1.0]]), dim=1)
    centers, counts = lloyd(x, start, 5, cosine=True)
    torch.testing.assert_close(centers.norm(dim=1), torch.ones(3))
    assert counts.tolist() == [100.0, 100.0, 100.0]
    assert bool((centers * dirs).sum(1).gt(0.99).all())
    # the cosine center is the normalised mean direction, not the plain mean
    s = lloyd_step(x, centers, cosine=True)
    torch.testing.assert_close(s.centers[0], torch.nn.functional.normalize(x[:100].mean(0), dim=0))


def test_chunked_assignment_equals_unchunked() -> None:
    x = make_clustered(3000, 8, 50, spread=0.3, seed=2)
    start = x[:64].clone()
    whole = lloyd_step(x, start, chunk_size=100_000)
    for kwargs in ({"chunk_size": 1}, {"chunk_size": 37}, {"budget_mb": 0.001}):
        part = lloyd_step(x, start, **kwargs)
        assert torch.equal(part.idx, whole.idx), kwargs
        assert torch.equal(part.centers, whole.centers) and torch.equal(part.error, whole.error)
    a, ca = lloyd(x, start, 5, chunk_size=37)
    b, cb = lloyd(x, start, 5)
    assert torch.equal(a, b) and torch.equal(ca, cb)


def test_seeds_are_rows_and_reproducible() -> None:
    x = torch.arange(40.0).reshape(20, 2)
    s1 = sample_rows(x, 5, generator=torch.Generator().manual_seed(3))
    s2 = sample_rows(x, 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(s1, s2) and s1.unique(dim=0).shape[0] == 5  # distinct rows when there are enough
    assert all(any(torch.equal(r, y) for y in x) for r in s1)
    assert sample_rows(x[:3], 7).shape == (7, 2)  # fewer rows than asked: drawn with replacement


# --------------------------------------------------------------------------- two ranks (gloo, CPU)


def rank_rows(rank: int) -> torch.Tensor:
    """Each rank sees other data; rank 1 alone holds the far-out rows near 40."""
    g = torch.Generator().manual_seed(10 + rank)
    x = make_clustered(600, 4, 6, spread=0.2, seed=rank)
    if rank == 1:
        x = torch.cat([x, 40.0 + 0.1 * torch.randn(5, 4, generator=g)])
    return x


def kmeans_rank(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(rank)  # different local randomness: the result must not depend on it
    x = rank_rows(rank)
    seeded, seeded_counts = kmeans(x, 8, 6, distributed=True)
    start = torch.cat([rank_rows(0)[:7], torch.full((1, 4), -500.0)])  # the last code wins nothing at first
    fixed, fixed_counts = lloyd(x, start, 6, distributed=True)
    far = torch.cat([start[:5], torch.full((3, 4), -500.0)])  # three empty codes, re-seeded from a random pool
    pooled, _ = lloyd(x, far, 4, distributed=True, reseed_pool=0.1)
    torch.save({"seeded": seeded, "seeded_counts": seeded_counts, "fixed": fixed, "fixed_counts": fixed_counts,
                "pooled": pooled}, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_hold_identical_centers_equal_to_one_process(tmp_path: Path) -> None:
    mp.spawn(kmeans_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    both = torch.cat([rank_rows(0), rank_rows(1)])
    assert r0["seeded_counts"].sum() == both.shape[0] and r0["fixed_counts"].sum() == both.shape[0]
    # the same Lloyd on all rows in one process gives the same centers (up to float summation order)
    start = torch.cat([rank_rows(0)[:7], torch.full((1, 4), -500.0)])
    solo, solo_counts = lloyd(both, start, 6)
    torch.testing.assert_close(r0["fixed"], solo, rtol=1e-5, atol=1e-5)
    assert torch.equal(r0["fixed_counts"], solo_counts)
    # the empty code was re-seeded on the worst-served rows, which only rank 1 held
    assert bool(((r0["fixed"] - 40.0).abs() < 1.0).all(1).any())
    assert bool((r0["pooled"] > -100.0).all())  # every empty code took a row
