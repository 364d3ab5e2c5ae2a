"""The VQ core: exact search, training behaviour, bad input, determinism."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mmtok
from mmtok.synth.clustered import make_clustered
from mmtok.vq.search import _argmax_rows, nearest_code


def brute_force(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x.double(), codes.double()).argmin(1)


def clustered(n: int, n_clusters: int, dim: int, *, spread: float = 0.05, seed: int = 0) -> torch.Tensor:
    """Tight Gaussian clusters far from the origin: the data random codebooks collapse on."""
    return make_clustered(n, dim, n_clusters, spread=spread, scale=0.5, offset=3.0, seed=seed)


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize("k", [16, 1024, 4096])
@pytest.mark.parametrize("chunk", [None, 1, 37, 100_000])
def test_search_matches_brute_force(k: int, chunk: int | None) -> None:
    x = torch.randn(3000, 24)
    codes = torch.randn(k, 24)
    ours = nearest_code(x, codes, chunk_size=chunk)
    ref = brute_force(x, codes)
    agree = (ours == ref).float().mean().item()
    assert agree >= 0.999
    # any disagreement is a float tie: both codes are (almost) equally near
    bad = ours != ref
    if bad.any():
        d_ours = (x[bad] - codes[ours[bad]]).pow(2).sum(1)
        d_ref = (x[bad] - codes[ref[bad]]).pow(2).sum(1)
        torch.testing.assert_close(d_ours, d_ref, rtol=1e-5, atol=1e-5)


def test_search_cosine_matches_brute_force() -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=16, codebook_size=512, cosine=True, kmeans_init=False))
    x = torch.randn(4000, 16)
    ours = vq.encode(x)
    sims = torch.nn.functional.normalize(x, dim=1) @ vq.embed.t()
    assert (ours == sims.argmax(1)).float().mean() >= 0.999
    assert torch.allclose(vq.embed.norm(dim=1), torch.ones(512))


def test_two_level_argmax_equals_argmax_including_ties() -> None:
    s = torch.randn(300, 1024)
    s[5, 40] = s[5, 900] = 99.0  # ties across groups: the first one wins
    s[6, 64] = s[6, 65] = 99.0  # tie inside a group
    s[7] = 1.0  # all equal
    assert torch.equal(_argmax_rows(s), s.argmax(1))
    assert _argmax_rows(s)[5] == 40 and _argmax_rows(s)[6] == 64 and _argmax_rows(s)[7] == 0


def test_known_answer() -> None:
    codes = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    x = torch.tensor([[0.9, 1.2], [4.0, 4.5], [-1.0, 0.1], [3.1, 3.2]])
    assert nearest_code(x, codes).tolist() == [1, 2, 0, 2]


@settings(max_examples=40, deadline=None)
@given(k=st.integers(2, 300), d=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_every_code_is_its_own_nearest(k: int, d: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=d, codebook_size=k, kmeans_init=False))
    vq.embed.copy_(torch.randn(k, d, generator=g) * 10)
    idx = torch.randperm(k, generator=g)
    x = vq.decode(idx)
    found = vq.encode(x)
    # the code found is the input itself, or one at float-rounding distance of it (a tie)
    dist = (vq.decode(found) - x).pow(2).sum(1)
    assert bool((dist <= 1e-5 * (1 + x.pow(2).sum(1))).all())
    separated = torch.cdist(x, x).add_(torch.eye(k) * 1e9).amin(1) > 1e-2 * (1 + x.norm(dim=1))
    assert torch.equal(found[separated], idx[separated])


def test_shapes_dtypes_and_lookup_projection() -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=32, codebook_size=64, codebook_dim=8))
    x = torch.randn(2, 3, 5, 32, requires_grad=True)
    r = vq(x)
    assert r.quantized.shape == x.shape and r.indices.shape == (2, 3, 5)
    assert r.indices.dtype == torch.int64
    assert vq.codebook.shape == (64, 32)
    (r.quantized.sum() + r.loss).backward()  # gradients flow to the input and both projections
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert vq.project_in.weight.grad is not None and vq.project_out.weight.grad is not None
    vq.eval()
    assert torch.equal(vq.encode(x.detach()), vq(x.detach()).indices)


def test_encode_gives_ordinary_indices_a_model_can_train_on() -> None:
    """``encode`` searches under inference mode but hands back an ordinary tensor: shifting it in
    place (into a unified id space) and embedding it in a model that trains both work."""
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=16, kmeans_init=False)).eval()
    idx = vq.encode(torch.randn(4, 5, 8))
    assert not idx.is_inference()
    idx += 3  # an offset into a larger vocabulary
    emb = torch.nn.Embedding(19, 4)
    emb(idx).sum().backward()
    assert emb.weight.grad is not None and float(emb.weight.grad.abs().sum()) > 0
    with torch.inference_mode():  # inside inference mode the caller gets what it asked for
        assert vq.encode(torch.randn(2, 8)).is_inference()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_other_float_dtypes(dtype: torch.dtype) -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=16, codebook_size=128, kmeans_init=False)).eval()
    x = torch.randn(500, 16).to(dtype)
    idx = vq.encode(x)
    assert torch.equal(idx, nearest_code(x.float(), vq.embed))
    assert vq(x).quantized.dtype == dtype


def test_empty_input_gives_empty_indices() -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=32))
    assert vq.encode(torch.empty(0, 8)).shape == (0,)
    assert vq.encode(torch.empty(3, 0, 8)).shape == (3, 0)
    r = vq(torch.empty(0, 8))  # training mode, nothing to learn from
    assert r.indices.shape == (0,) and r.quantized.shape == (0, 8)
    assert float(r.usage) == 0.0
    assert vq.decode(torch.empty(0, dtype=torch.long)).shape == (0, 8)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.randn(4, 7), r"\[\.\.\., 8\]"),
        (torch.randint(0, 5, (4, 8)), "floating point"),
        (torch.tensor(1.0), r"\[\.\.\., 8\]"),
        (torch.full((4, 8), float("nan")), "NaN/inf"),
        (torch.tensor([[float("inf")] * 8]), "NaN/inf"),
    ],
)
def test_bad_input_is_a_clear_value_error(x: torch.Tensor, message: str) -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=32))
    with pytest.raises(mmtok.QuantizerError, match=message):  # an MmtokError and a ValueError
        vq.encode(x)
    with pytest.raises(ValueError, match=message):
        vq(x)


def test_float64_beyond_float32_is_refused_before_it_reaches_the_codebook() -> None:
    torch.manual_seed(0)
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=32))
    vq(torch.randn(256, 8))
    with pytest.raises(ValueError, match="beyond float32"):
        vq(torch.full((4, 8), 1e300, dtype=torch.float64))
    assert bool(torch.isfinite(vq.embed).all())  # nothing written
    # large, representable in float32, and small enough for its statistics (mmtok.vq.inputs.statistics_limit)
    assert vq(torch.full((4, 8), 1e15, dtype=torch.float64)).indices.shape == (4,)


def test_loss_is_reported_without_gradients_too() -> None:
    torch.manual_seed(0)
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=32))
    x = torch.randn(512, 8)
    r = vq(x)
    assert not r.loss.requires_grad
    expected = 0.25 * float((vq.decode(r.indices) - x).pow(2).mean())
    assert float(r.loss) == pytest.approx(expected, rel=1e-4)
    with_grad = vq.eval()(x.clone().requires_grad_())
    assert with_grad.loss.requires_grad and float(with_grad.loss.detach()) == pytest.approx(float(vq(x).loss))


def test_one_far_code_does_not_merge_the_others() -> None:
    torch.manual_seed(0)
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=16, codebook_size=256, kmeans_init=False)).eval()
    x = torch.randn(2000, 16)
    nearest = torch.cdist(x, vq.embed).argmin(1)
    with torch.no_grad():
        vq.embed[0] = 1e9  # a code thrown far off, e.g. by one wild training batch
    assert torch.equal(vq.twin_table(), torch.arange(256))
    assert torch.equal(vq.encode(x), torch.where(nearest == 0, torch.cdist(x, vq.embed).argmin(1), nearest))


def test_not_a_tensor_is_a_type_error() -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=32))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        vq.encode([[0.0] * 8])  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [32, 1000, -1])
def test_decode_out_of_range_names_index_and_size(bad: int) -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=32))
    with pytest.raises(ValueError, match=rf"index {bad}.*size 32"):
        vq.decode(torch.tensor([0, bad, 3]))


def test_decode_refuses_float_indices() -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=32))
    with pytest.raises(ValueError, match="integer"):
        vq.decode(torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize(
    "kwargs",
    [dict(dim=0), dict(codebook_size=1), dict(decay=1.0), dict(codebook_dim=0), dict(chunk_size=0),
     dict(dead_code_rate=1.0), dict(dead_code_rate=-0.1), dict(decay=0.0), dict(decay=float("nan")),
     dict(eps=0.0), dict(eps=-1e-5), dict(eps=float("nan")), dict(eps=float("inf")), dict(commitment_weight=-1.0),
     dict(dead_code_threshold=-1.0), dict(dead_code_threshold=float("inf")), dict(kmeans_iters=0),
     dict(kmeans_min_vectors=-1), dict(search_budget_mb=0.0), dict(search_budget_mb=-5.0)],
)
def test_bad_config(kwargs: dict) -> None:
    field = next(iter(kwargs))  # one line naming the field, what it takes and the value given
    with pytest.raises(ValueError, match=rf"^VQConfig\.{field} must be a (whole|finite) number .*, got "):
        mmtok.VQConfig(**{"dim": 8, "codebook_size": 16, **kwargs})


@pytest.mark.parametrize("kwargs", [dict(dim=8.0), dict(codebook_size="16"), dict(dim=True), dict(codebook_dim=4.5),
                                    dict(decay="0.9"), dict(chunk_size=[4]), dict(search_budget_mb="4")])
def test_config_of_the_wrong_type_names_the_field(kwargs: dict) -> None:
    field = next(iter(kwargs))
    with pytest.raises(TypeError, match=rf"VQConfig\.{field} must be"):
        mmtok.VQConfig(**{"dim": 8, "codebook_size": 16, **kwargs})


def test_same_codebook_ignores_training_knobs_only() -> None:
    base = mmtok.VQConfig(dim=8, codebook_size=16, codebook_dim=4)
    knobs = mmtok.VQConfig(dim=8, codebook_size=16, codebook_dim=4, decay=0.9, dead_code_rate=0.2,
                           dead_code_threshold=0.0, commitment_weight=1.0, chunk_size=7)
    assert base.same_codebook(knobs) and knobs.same_codebook(base)
    mmtok.VectorQuantizer(knobs).load_state_dict(mmtok.VectorQuantizer(base).state_dict())  # the states fit
    for other in (dict(dim=6), dict(codebook_size=32), dict(codebook_dim=None), dict(cosine=True)):
        assert not base.same_codebook(mmtok.VQConfig(**{"dim": 8, "codebook_size": 16, "codebook_dim": 4, **other}))


# --------------------------------------------------------------------------- training behaviour


def train(vq: mmtok.VectorQuantizer, data: torch.Tensor, steps: int, batch: int) -> None:
    vq.train()
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        vq(data[torch.randint(0, data.shape[0], (batch,), generator=g)])


def test_anti_collapse_on_clustered_data() -> None:
    data = clustered(40_000, 1024, 16)
    k = 256
    plain = mmtok.VectorQuantizer(
        mmtok.VQConfig(dim=16, codebook_size=k, kmeans_init=False, dead_code_threshold=0.0)
    )
    ours = mmtok.VectorQuantizer(mmtok.VQConfig(dim=16, codebook_size=k))
    train(plain, data, 60, 2048)
    train(ours, data, 60, 2048)
    held_out = clustered(20_000, 1024, 16, seed=0)[-10_000:]
    for vq in (plain, ours):
        vq.eval()
        vq.reset_stats()
        vq.encode(held_out)
    plain_usage = plain.usage_stats().usage
    ours_usage = ours.usage_stats().usage
    assert plain_usage < 0.2, plain_usage  # the collapse this guards against is real
    assert ours_usage >= 0.95, ours_usage
    # and the learned codebook quantizes far better
    mse = lambda vq: float((vq.decode(vq.encode(held_out)) - held_out).pow(2).mean())  # noqa: E731
    assert mse(ours) < 0.5 * mse(plain)


def test_dead_codes_are_restarted() -> None:
    vq = mmtok.VectorQuantizer(
        mmtok.VQConfig(dim=4, codebook_size=64, kmeans_init=False, dead_code_threshold=1.0)
    )
    vq.embed.copy_(torch.randn(64, 4) + 100.0)  # every code far from the data
    data = torch.randn(5000, 4)
    train(vq, data, 30, 512)
    vq.eval()
    vq.reset_stats()
    vq.encode(data)
    assert vq.usage_stats().usage > 0.9


def test_dead_code_rate_restarts_codes_used_below_a_fraction_of_the_expected_rate() -> None:
    # half the codes sit on data that stops coming; the absolute threshold (tiny) never fires,
    # the relative one moves them onto the data that still comes
    data_a, data_b = torch.randn(4000, 4) * 0.5 + 10.0, torch.randn(4000, 4) * 0.5 - 10.0
    results = {}
    for rate in (0.0, 0.5):
        torch.manual_seed(0)
        vq = mmtok.VectorQuantizer(
            mmtok.VQConfig(dim=4, codebook_size=64, decay=0.8, dead_code_threshold=1e-6, dead_code_rate=rate)
        )
        vq.train()(torch.cat([data_a, data_b]))  # k-means init over both: codes on both blobs
        train(vq, data_b, 40, 512)
        vq.eval()
        vq.reset_stats()
        vq.encode(data_b)
        results[rate] = vq.usage_stats().usage
    assert results[0.0] < 0.7, results  # codes stranded on the vanished blob stay unused
    assert results[0.5] > 0.95, results


def test_restarts_on_repeated_inputs_leave_no_twins() -> None:
    # 40 % of every batch is one vector (digital silence): restarts drawn from the batch used to land
    # several codes on it, twins that no input tells apart and that stay unused after training
    torch.manual_seed(0)
    k = 64
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=k, decay=0.9, dead_code_rate=0.3,
                                              dead_code_threshold=0.0))
    data = clustered(20_000, 40, 8, spread=0.3)
    g = torch.Generator().manual_seed(0)
    vq.train()
    for _ in range(60):
        batch = data[torch.randint(0, data.shape[0], (512,), generator=g)]
        batch[:204] = 0.0
        vq(batch)
    vq.eval()
    assert torch.equal(vq.twin_table(), torch.arange(k))  # every code on its own point
    assert torch.unique(vq.embed, dim=0).shape[0] == k
    vq.reset_stats()
    vq.encode(torch.cat([data, torch.zeros(2000, 8)]))
    assert vq.usage_stats().usage > 0.95


def test_new_points_are_no_twins_of_a_code_or_of_each_other() -> None:
    from mmtok.vq.search import new_points

    existing = torch.tensor([[0.0, 0.0], [1.0, 1.0], [400.0, 0.0]])  # a code far off does not widen "twin"
    rows = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 1e-5], [1.0, 1.0 + 1e-5], [0.0, 2.0], [2.0, 1e-3]])
    # the rows' median radius is 1.0: twins are closer than 1e-4
    assert torch.equal(new_points(rows, existing), rows[[1, 4, 5]])
    assert new_points(rows[:0], existing).shape == (0, 2)
    zeros = torch.tensor([[-0.0, 0.0], [0.0, -0.0], [3.0, 3.0]])
    assert torch.equal(new_points(zeros, existing), zeros[2:])  # -0.0 is 0.0
    unit = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=1)
    assert new_points(torch.tensor([[2.0, 0.0], [0.0, -3.0]]), unit, cosine=True).tolist() == [[0.0, -3.0]]


def test_rebalance_keeps_every_code_busy_and_lowers_distortion() -> None:
    torch.manual_seed(0)
    k = 128
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=k, kmeans_init=False))
    vq.embed.copy_(torch.randn(k, 8) * 3.0)  # spread far wider than the data below
    vq.ema_count.fill_(2.0)
    data = clustered(20_000, 40, 8, spread=0.3)
    mse = lambda: float((vq.decode(vq.encode(data)) - data).pow(2).mean())  # noqa: E731
    vq.eval()
    before = mse()
    stats = vq.rebalance(data, iters=15, min_frac=0.25)
    assert vq.usage_stats().total == 0  # counters cleared
    assert stats.total == data.shape[0] and stats.usage == 1.0
    assert int(stats.counts.min()) > 0
    assert mse() < 0.5 * before
    torch.testing.assert_close(vq.ema_count.sum(), torch.tensor(2.0 * k))  # total EMA count kept
    torch.testing.assert_close(vq.ema_sum, vq.embed * vq.ema_count[:, None])
    vq.reset_stats()
    vq.encode(data)
    assert vq.usage_stats().usage == 1.0
    with pytest.raises(ValueError, match="iters"):
        vq.rebalance(data, iters=0)
    with pytest.raises(ValueError, match="min_frac"):
        vq.rebalance(data, min_frac=1.0)


def test_kmeans_waits_for_enough_vectors() -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=128))
    vq(torch.randn(50, 4))
    assert not bool(vq.initted)
    vq(torch.randn(100, 4))
    assert bool(vq.initted)


def test_ema_moves_codes_toward_assigned_means() -> None:
    vq = mmtok.VectorQuantizer(
        mmtok.VQConfig(dim=2, codebook_size=2, kmeans_init=False, dead_code_threshold=0.0, decay=0.5)
    )
    vq.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    vq.ema_sum.copy_(vq.embed)
    vq.ema_count.fill_(1.0)
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0], [9.0, 9.0]])
    vq(x)
    # counts: 0.5*1 + 0.5*[2, 1] = [1.5, 1.0]; sums: 0.5*c + 0.5*[[2,2],[9,9]] = [[1,1],[9.5,9.5]]
    torch.testing.assert_close(vq.ema_count, torch.tensor([1.5, 1.0]))
    torch.testing.assert_close(vq.embed, torch.tensor([[2 / 3, 2 / 3], [9.5, 9.5]]), rtol=1e-3, atol=1e-3)


def test_usage_stats_known_answer() -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=2, codebook_size=4, kmeans_init=False)).eval()
    vq.embed.copy_(torch.tensor([[0.0, 0.0], [0.0, 10.0], [10.0, 0.0], [10.0, 10.0]]))
    vq.encode(vq.embed.clone())  # each code once
    s = vq.usage_stats()
    assert s.counts.tolist() == [1, 1, 1, 1] and s.total == 4
    assert s.usage == 1.0 and abs(s.perplexity - 4.0) < 1e-5
    vq.encode(torch.tensor([[0.1, 0.1], [0.2, 0.0]]))
    assert vq.usage_stats().counts.tolist() == [3, 1, 1, 1]
    vq.reset_stats()
    assert vq.usage_stats().total == 0


def test_deterministic_under_fixed_seed() -> None:
    data = clustered(8000, 64, 8)

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(123)
        vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=32, dead_code_threshold=2.0))
        train(vq, data, 10, 500)
        return vq.embed.clone(), vq.eval().encode(data)

    (e1, i1), (e2, i2) = run(), run()
    assert torch.equal(e1, e2) and torch.equal(i1, i2)


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=32, codebook_size=1024, kmeans_init=False)).eval()
    x = torch.randn(20_000, 32)
    cpu = vq.encode(x)
    gpu = vq.cuda().encode(x.cuda()).cpu()
    assert (cpu == gpu).float().mean() >= 0.999
    assert (vq.encode(x.cuda().bfloat16()).cpu() == vq.cpu().encode(x.bfloat16())).float().mean() >= 0.999


def test_encode_in_slabs_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=64, codebook_dim=4, cosine=True)).eval()
    x = torch.randn(3, 1000, 8)
    whole = vq.encode(x)
    monkeypatch.setattr(mmtok.vq.quantizer, "ENCODE_SLAB", 77)
    assert torch.equal(vq.encode(x), whole)
    assert torch.equal(vq(x).indices, whole)
