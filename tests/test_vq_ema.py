"""The codebook's EMA statistics: a consistent start, empty steps, and modules cast to half precision."""

from __future__ import annotations

import pytest
import torch

from mmtok.synth.clustered import make_clustered
from mmtok.vq.quantizer import VectorQuantizer, VQConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_fresh_codebook_starts_with_ema_statistics_that_match_its_codes() -> None:
    vq = VectorQuantizer(VQConfig(dim=3, codebook_size=8, kmeans_init=False))
    assert torch.equal(vq.ema_count, torch.ones(8)) and torch.equal(vq.ema_sum, vq.embed)


def test_a_code_no_vector_picks_stays_put_on_the_first_step() -> None:
    """By hand (van den Oord et al. A.1, counts starting at 1): decay 0.5, three vectors on code 0, none on
    code 1. Counts 0.5*1 + 0.5*[3, 0] = [2, 0.5], sums 0.5*[0, 10] + 0.5*[6, 0] = [3, 5]: codes [1.5, 10]."""
    vq = VectorQuantizer(VQConfig(dim=1, codebook_size=2, decay=0.5, kmeans_init=False, dead_code_threshold=0.0))
    vq.embed.copy_(torch.tensor([[0.0], [10.0]]))
    vq.ema_sum.copy_(vq.embed)
    vq.train()(torch.tensor([[1.0], [2.0], [3.0]]))
    torch.testing.assert_close(vq.ema_count, torch.tensor([2.0, 0.5]))
    torch.testing.assert_close(vq.ema_sum, torch.tensor([[3.0], [5.0]]))
    torch.testing.assert_close(vq.embed, torch.tensor([[1.5], [10.0]]), rtol=1e-4, atol=1e-4)


def test_random_codes_stay_near_the_data_without_kmeans_init() -> None:
    torch.manual_seed(0)
    data = make_clustered(4000, 16, 64, seed=1)
    vq = VectorQuantizer(VQConfig(dim=16, codebook_size=64, kmeans_init=False, dead_code_threshold=0.0)).train()
    start = float(torch.cat([vq.embed, data]).norm(dim=1).max())
    for step in range(5):
        vq(data[step * 800 : (step + 1) * 800])
        assert float(vq.embed.norm(dim=1).max()) <= start, step  # a mean of codes and data: never farther out


def test_kmeans_init_leaves_statistics_consistent_with_the_codes() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=16, dead_code_threshold=0.0)).train()
    vq(torch.randn(512, 4))  # k-means, then one EMA step
    n = vq.ema_count.sum()
    smoothed = (vq.ema_count + vq.cfg.eps) / (n + 16 * vq.cfg.eps) * n
    torch.testing.assert_close(vq.embed, vq.ema_sum / smoothed[:, None])
    torch.testing.assert_close(n, torch.tensor(512.0))  # vectors per step


@pytest.mark.parametrize("cosine", [False, True])
def test_an_empty_batch_leaves_the_codebook_and_its_statistics_alone(cosine: bool) -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=8, codebook_size=16, cosine=cosine, dead_code_rate=0.5)).train()
    vq(torch.randn(256, 8))
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    for _ in range(5):
        r = vq(torch.empty(0, 8))
        assert r.indices.shape == (0,) and r.quantized.shape == (0, 8)
    for key, value in vq.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("codebook_dim", [None, 4])
def test_a_module_cast_to_half_precision_trains_on_a_float32_codebook(dtype: torch.dtype,
                                                                      codebook_dim: int | None) -> None:
    cfg = VQConfig(dim=8, codebook_size=16, codebook_dim=codebook_dim, dead_code_threshold=2.0)
    data = torch.randn(5, 64, 8).to(dtype)

    def trained(vq: VectorQuantizer, dt: torch.dtype) -> VectorQuantizer:
        torch.manual_seed(1)  # k-means seeds and restarts draw the same
        for batch in data:  # restarts on every step: dead codes take new inputs
            x = batch.to(dt).requires_grad_()
            r = vq.train()(x)
            assert r.quantized.dtype == dt
            (r.quantized.float().sum() + r.loss).backward()
            assert x.grad is not None and x.grad.dtype == dt
        return vq.eval()

    torch.manual_seed(0)
    vq = VectorQuantizer(cfg).to(dtype)
    assert all(t.dtype == torch.float32 for t in (vq.embed, vq.ema_count, vq.ema_sum, *vq.parameters()))
    trained(vq, dtype)
    torch.manual_seed(0)
    ref = trained(VectorQuantizer(cfg), torch.float32)
    assert vq.embed.dtype == torch.float32 and bool(torch.isfinite(vq.embed).all())
    torch.testing.assert_close(vq.embed, ref.embed)  # the same training as in float32, on the same inputs
    codes = vq.encode(data[0])
    assert torch.equal(codes, ref.encode(data[0].float()))
    assert vq.decode(codes).dtype == dtype and vq.codebook.dtype == dtype  # what a half model downstream takes
    assert vq.float().decode(codes).dtype == torch.float32
    state = vq.half().state_dict()
    assert state["embed"].dtype == torch.float32 and torch.equal(state["embed"], ref.embed)
