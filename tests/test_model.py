"""The transformer: causality, document masks, KV cache, 3-D rotary positions, learning."""

from __future__ import annotations

import pytest
import torch

from mmtok.model import KVCache, ModelConfig, Transformer


def tiny(**kw: object) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig.preset("tiny", vocab_size=97, max_seq_len=64, **kw)).eval()


def test_shapes_and_presets() -> None:
    m = tiny()
    assert m(torch.randint(0, 97, (3, 20))).shape == (3, 20, 97)
    for name in ("tiny", "small", "base"):
        cfg = ModelConfig.preset(name, vocab_size=1000)
        assert cfg.d_model % cfg.n_head == 0 and cfg.n_head % cfg.n_kv_head == 0
    assert ModelConfig.preset("small").d_model > ModelConfig.preset("tiny").d_model
    with pytest.raises(ValueError, match="unknown model preset"):
        ModelConfig.preset("huge")
    with pytest.raises(ValueError, match="n_kv_head 3 must divide n_head 4"):
        ModelConfig(n_head=4, n_kv_head=3)


def test_causal() -> None:
    m = tiny()
    ids = torch.randint(0, 97, (2, 30))
    changed = ids.clone()
    changed[:, 20:] = (changed[:, 20:] + 1) % 97
    torch.testing.assert_close(m(ids)[:, :20], m(changed)[:, :20])
    assert not torch.allclose(m(ids)[:, 20:], m(changed)[:, 20:])


def test_document_mask_isolates_packed_documents() -> None:
    m = tiny()
    a, b = torch.randint(0, 97, (1, 12)), torch.randint(0, 97, (1, 18))
    packed = torch.cat([a, b], 1)
    doc = torch.tensor([[0] * 12 + [1] * 18])
    pos = torch.cat([torch.arange(12), torch.arange(18)])[None]
    out = m(packed, pos=pos, doc=doc)
    torch.testing.assert_close(out[:, :12], m(a), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out[:, 12:], m(b), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("rope_3d", [False, True])
def test_kv_cache_matches_full_forward(rope_3d: bool) -> None:
    m = tiny(rope_3d=rope_3d)
    ids = torch.randint(0, 97, (2, 25))
    full = m(ids)
    cache = KVCache.empty(m.cfg, 2, ids.device, torch.float32)
    parts = [m(ids[:, :10], cache=cache), m(ids[:, 10:17], cache=cache)]
    parts += [m(ids[:, i : i + 1], cache=cache) for i in range(17, 25)]
    assert cache.length == 25
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-4)


def test_rope_3d_uses_all_three_axes() -> None:
    m = tiny(rope_3d=True)
    ids = torch.randint(0, 97, (1, 16))
    base = torch.stack([torch.arange(16) // 8, torch.arange(16) // 4, torch.arange(16) % 4], -1).long()[None]
    ref = m(ids, pos=base)
    for axis in range(3):
        moved = base.clone()
        moved[..., axis] = moved[..., axis].flip(-1)
        assert not torch.allclose(m(ids, pos=moved), ref)
    with pytest.raises(ValueError, match=r"\[B, T, 3\]"):
        m(ids, pos=torch.arange(16)[None])


def test_too_long_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds max_seq_len 64"):
        tiny()(torch.zeros(1, 65, dtype=torch.long))


def test_learns_a_pattern() -> None:
    torch.manual_seed(0)
    m = Transformer(ModelConfig.preset("tiny", vocab_size=16, max_seq_len=32)).train()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    seq = (torch.arange(33) * 3 % 16)[None].repeat(8, 1)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(m(seq[:, :-1]).flatten(0, 1), seq[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1
    assert m.flops_per_token(32) > 6 * m.num_params()


def test_cpu_rmsnorm_matches_reference() -> None:
    from mmtok.model import RMSNorm

    norm = RMSNorm(16, 1e-5)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(3, 5, 16, requires_grad=True)
    g = torch.randn(3, 5, 16)
    ours = torch.autograd.grad(norm(x), (x, norm.weight), g)
    y = torch.nn.functional.rms_norm(x, (16,), norm.weight, 1e-5)
    ref = torch.autograd.grad(y, (x, norm.weight), g)
    torch.testing.assert_close(norm(x), y)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
