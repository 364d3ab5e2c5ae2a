"""The VQ codebook as a vector-quantize-pytorch user scripts it: a cosine quantizer refuses the state dict of a
Euclidean one (whose codes are no unit vectors), and a cosine codebook never restarts a dead code on a zero
input (padding), which has no direction."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmtok import VectorQuantizer, VQConfig
from mmtok.core.errors import QuantizerError
from mmtok.vq.ema import restart_dead
from mmtok.vq.inputs import check_state_codes


def test_a_cosine_quantizer_refuses_a_euclidean_state_dict_and_keeps_its_codes() -> None:
    torch.manual_seed(0)
    euclid = VectorQuantizer(VQConfig(dim=4, codebook_size=8, kmeans_init=False))
    with torch.no_grad():
        euclid.embed.mul_(torch.linspace(0.1, 5.0, 8)[:, None])  # codes of many lengths, as trained ones are
    cos = VectorQuantizer(VQConfig(dim=4, codebook_size=8, kmeans_init=False, cosine=True))
    before = cos.embed.clone()
    with pytest.raises(QuantizerError, match=r"'embed' holds codes of norm .* cosine=False"):
        cos.load_state_dict(euclid.state_dict())
    assert torch.equal(cos.embed, before)  # nothing was loaded


def test_a_cosine_state_dict_loads_also_as_float16_and_inside_a_model() -> None:
    torch.manual_seed(0)
    cfg = VQConfig(dim=8, codebook_size=16, codebook_dim=4, cosine=True, kmeans_init=False)
    src = VectorQuantizer(cfg)
    src(torch.randn(64, 8))  # a training step: EMA codes, normalised
    half = {k: v.half() if v.is_floating_point() else v for k, v in src.state_dict().items()}
    dst = VectorQuantizer(cfg)
    dst.load_state_dict(half)
    assert torch.allclose(dst.embed, src.embed, atol=1e-3)
    outer, other = torch.nn.Sequential(VectorQuantizer(cfg)), torch.nn.Sequential(src)
    outer.load_state_dict(other.state_dict())  # the key is "0.embed": the prefix is honoured
    x = torch.randn(100, 8)
    assert torch.equal(outer[0].eval().encode(x), src.eval().encode(x))
    with pytest.raises(QuantizerError, match=r"'0\.embed'"):
        outer.load_state_dict({**other.state_dict(), "0.embed": src.embed * 3})


def test_zero_codes_of_a_codebook_still_to_come_pass_the_check() -> None:
    check_state_codes({"embed": torch.zeros(4, 3)}, "", cosine=True)  # allocated, not yet initialised
    check_state_codes({"embed": torch.randn(4, 3) * 5}, "", cosine=False)  # Euclidean: any length


def test_a_cosine_restart_never_takes_a_zero_input() -> None:
    torch.manual_seed(0)
    embed = F.normalize(torch.randn(6, 3), dim=1)
    count = torch.tensor([5.0, 0.0, 0.0, 0.0, 0.0, 5.0])
    total = embed * count[:, None]
    z = torch.cat([torch.zeros(40, 3), F.normalize(torch.randn(3, 3), dim=1)])  # mostly padding, normalised
    for _ in range(5):
        restart_dead(embed, count, total, z, threshold=1.0, rate=0.0, cosine=True)
        assert torch.allclose(embed.norm(dim=1), torch.ones(6)), embed.norm(dim=1)


def test_a_cosine_quantizer_trained_on_padded_batches_keeps_unit_codes() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8, kmeans_init=False, cosine=True))
    for _ in range(3):
        vq(torch.cat([torch.zeros(30, 4), torch.randn(2, 4)]))
    assert torch.allclose(vq.embed.norm(dim=1), torch.ones(8))
    vq.eval()
    x = torch.randn(500, 4)
    assert vq.decode(vq.encode(x)).norm(dim=1).min() > 0.99  # every input gets a unit code back


@pytest.mark.parametrize("codebook_dim", [None, 4])
def test_the_loss_of_an_empty_batch_backpropagates_like_any_other(codebook_dim: int | None) -> None:
    vq = VectorQuantizer(VQConfig(dim=8, codebook_size=16, kmeans_init=False, codebook_dim=codebook_dim))
    x = torch.randn(2, 0, 8, requires_grad=True)  # a batch of no vectors (every frame masked out)
    r = vq(x)
    assert r.loss.item() == 0.0 and r.loss.requires_grad
    r.loss.backward()  # a training step that calls backward on the commitment loss alone
    assert x.grad is not None and x.grad.shape == x.shape
    with torch.no_grad():
        assert not vq(x).loss.requires_grad  # without gradients, as for any batch
