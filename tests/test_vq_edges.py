"""The VQ codebook at its edges: rebalancing on nothing or on fewer points than codes, empty steps before the
k-means initialisation, settings given as numpy numbers or as strings where a bool goes, inputs far beyond the
codebook's scale, and one code given as a 0-d array or a plain int."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import mmtok
from mmtok.core.errors import QuantizerError


def _trained(threshold: float = 1.0) -> mmtok.VectorQuantizer:
    torch.manual_seed(0)
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=16, dead_code_threshold=threshold))
    for _ in range(3):
        vq(torch.randn(256, 8))
    return vq


def test_rebalance_on_no_vectors_is_refused_and_changes_nothing() -> None:
    vq = _trained()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    with pytest.raises(QuantizerError, match="rebalance got no vectors"):
        vq.rebalance(torch.randn(0, 8))
    assert all(torch.equal(v, before[k]) for k, v in vq.state_dict().items())


def test_codes_no_vector_takes_stay_where_they_are() -> None:
    vq = _trained(threshold=0.0)  # no restarts: only the EMA moves codes
    vq.rebalance(torch.randn(5, 8, generator=torch.Generator().manual_seed(1)))  # 5 points for 16 codes
    kept = vq.embed.clone()
    vq(torch.randn(256, 8))
    unused = vq.usage_stats().counts == 0
    assert int((vq.embed.norm(dim=1) == 0).sum()) == 0  # none fell to the origin
    assert torch.allclose(vq.embed[unused], kept[unused], rtol=1e-4, atol=1e-6)
    # and the k-means initialisation on one point repeated: every code stays finite and off the origin
    one = mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8, dead_code_threshold=0.0))
    one(torch.ones(64, 4))
    one(torch.ones(64, 4))
    assert bool(torch.isfinite(one.embed).all()) and int((one.embed.norm(dim=1) == 0).sum()) == 0


def test_empty_steps_before_the_kmeans_initialisation_change_nothing() -> None:
    def run(empty: int) -> mmtok.VectorQuantizer:
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(1)
        vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=64))
        vq(torch.randn(40, 8, generator=g))
        for _ in range(empty):
            vq(torch.randn(0, 8))
        vq(torch.randn(40, 8, generator=g))
        return vq

    a, b = run(0), run(3)
    assert torch.equal(a.embed, b.embed) and torch.equal(a.ema_count, b.ema_count)


def test_numpy_settings_are_saved_as_numbers(tmp_path: Path) -> None:
    cfg = mmtok.VQConfig(dim=np.int64(8), codebook_size=np.int32(16), decay=np.float32(0.9), cosine=np.bool_(False))
    assert (type(cfg.dim), type(cfg.decay), type(cfg.cosine)) == (int, float, bool)
    vq = mmtok.VectorQuantizer(cfg)
    again = mmtok.load(mmtok.save(vq, tmp_path / "vq"))
    assert again.cfg == cfg


@pytest.mark.parametrize("field", ["cosine", "kmeans_init"])
def test_a_flag_takes_true_or_false_only(field: str) -> None:
    with pytest.raises(TypeError, match=f"VQConfig.{field} must be True or False, got 'false'"):
        mmtok.VQConfig(dim=8, codebook_size=16, **{field: "false"})


@pytest.mark.parametrize("scale", [1e20, 1e12, 1.0, 1e-6])
def test_exact_codes_at_any_scale_of_the_input(scale: float) -> None:
    torch.manual_seed(0)
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=8, codebook_size=64, kmeans_init=False)).eval()
    e = vq.embed.double()
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(2)) * scale
    best = (x.double() @ e.t() - 0.5 * e.pow(2).sum(1)).argmax(1)
    assert torch.equal(vq.encode(x), best)


def test_one_code_keeps_its_shape() -> None:
    vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=4, codebook_size=8)).eval()
    code = vq.encode(torch.randn(4))
    assert code.shape == ()
    for given in (code, code.numpy(), code.item(), np.int64(code.item())):
        assert vq.decode(given).shape == (4,)
