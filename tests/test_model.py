"""The transformer: causality, document masks, KV cache, 3-D rotary positions, learning."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mmtok.lm.model import KVCache, ModelConfig, Transformer


def tiny(**kw: object) -> Transformer:
    torch.manual_seed(0)
    return Transformer(replace(ModelConfig.preset("tiny", vocab_size=97, **kw), max_seq_len=64)).eval()


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
    from mmtok.lm.model import RMSNorm

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


def _reference_attention(qkv: torch.Tensor, rot: torch.Tensor, h: int, mask: torch.Tensor | None) -> torch.Tensor:
    """The unfused math: rotate queries and keys, then ``F.scaled_dot_product_attention``."""
    from mmtok.lm.model import apply_rotary

    b, t, n, e = qkv.shape
    g = (n - h) // 2
    q = apply_rotary(qkv[:, :, :h], rot).transpose(1, 2)
    k = apply_rotary(qkv[:, :, h : h + g], rot).transpose(1, 2)
    v = qkv[:, :, h + g :].transpose(1, 2)
    y = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=mask is None, enable_gqa=g != h
    )
    return y.transpose(1, 2).reshape(b, t, h * e)


@pytest.mark.parametrize("n_kv_head", [4, 2])
@pytest.mark.parametrize("masked", [False, True])
def test_cpu_rotary_flash_matches_unfused_math(n_kv_head: int, masked: bool) -> None:
    from mmtok.lm.model import _additive, _RotaryFlashCPU, document_mask, rotary_angles

    cfg = ModelConfig.preset("tiny", vocab_size=97, max_seq_len=64, n_kv_head=n_kv_head)
    b, t, h, e = 2, 24, cfg.n_head, cfg.head_dim
    torch.manual_seed(0)
    qkv = torch.randn(b, t, h + 2 * n_kv_head, e, requires_grad=True)
    rot = rotary_angles(cfg, torch.randint(0, 30, (b, t)))
    doc = torch.tensor([[0] * 10 + [1] * 14, [0] * 3 + [1] * 21])
    mask = document_mask(doc) if masked else None
    g = torch.randn(b, t, h * e)
    ours = _RotaryFlashCPU.apply(qkv, rot, h, None if mask is None else _additive(mask, torch.float32))
    ref = _reference_attention(qkv, rot, h, mask)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)
    (g_ours,) = torch.autograd.grad(ours, qkv, g)
    (g_ref,) = torch.autograd.grad(ref, qkv, g)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-5, rtol=1e-4)


def test_swiglu_matches_unfused_math() -> None:
    from mmtok.lm.model import _SwiGLU

    torch.manual_seed(0)
    gate_up = torch.randn(3, 7, 2 * 64, requires_grad=True)
    g = torch.randn(3, 7, 64)
    gate, up = gate_up.chunk(2, dim=-1)
    ref = torch.nn.functional.silu(gate) * up
    ours = _SwiGLU.apply(gate_up)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, gate_up, g)[0], torch.autograd.grad(ref, gate_up, g)[0])


def test_training_path_matches_generic_path_with_dropout_off() -> None:
    """The CPU fast path (train mode, no cache) and the generic SDPA path (a KV cache) agree, masks included."""
    m = tiny(n_kv_head=2).train()
    ids = torch.randint(0, 97, (2, 30))
    doc = torch.tensor([[0] * 12 + [1] * 18, [0] * 30])
    for d in (None, doc):
        fast = m(ids, doc=d)
        cache = KVCache.empty(m.cfg, 2, ids.device, torch.float32)
        torch.testing.assert_close(m(ids, doc=d, cache=cache), fast, atol=1e-5, rtol=1e-4)


def test_compiled_model_matches_eager_loss_and_gradients() -> None:
    """Under ``torch.compile`` the CPU's hand-written autograd paths step aside for the composite math
    (which the compiler fuses); loss and gradients stay those of eager mode, document masks included.
    ``aot_eager`` traces exactly what inductor would get, without needing a C++ compiler."""
    ids = torch.randint(0, 97, (2, 31))
    doc = torch.tensor([[0] * 12 + [1] * 19, [0] * 31])
    for d in (None, doc):
        grads = []
        for compiled in (False, True):
            m = tiny(n_kv_head=2).train()
            net = torch.compile(m, backend="aot_eager", fullgraph=True) if compiled else m
            logits = net(ids[:, :-1], doc=None if d is None else d[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
            loss.backward()
            grads.append((loss.detach(), [p.grad for p in m.parameters()]))
        (l0, g0), (l1, g1) = grads
        torch.testing.assert_close(l1, l0, atol=1e-5, rtol=1e-5)
        for a, b in zip(g0, g1, strict=True):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    torch._dynamo.reset()


def test_one_document_per_row_is_plain_causal() -> None:
    m = tiny()
    ids = torch.randint(0, 97, (2, 30))
    same = torch.tensor([[3] * 30, [0] * 30])
    torch.testing.assert_close(m(ids, doc=same), m(ids))
    cache = KVCache.empty(m.cfg, 2, ids.device, torch.float32)
    parts = [m(ids[:, :10], doc=same[:, :10], cache=cache), m(ids[:, 10:20], doc=same[:, :20], cache=cache)]
    torch.testing.assert_close(torch.cat(parts, 1), m(ids)[:, :20], atol=1e-5, rtol=1e-4)


def test_old_unfused_checkpoint_keys_are_refused_by_name() -> None:
    from mmtok.core.errors import CheckpointError
    from mmtok.core.module_io import load_state_dict_checked

    m = tiny()
    old = {k: v for k, v in m.state_dict().items() if "attn.qkv" not in k}
    for i in range(m.cfg.n_layer):
        for name in ("q", "k", "v"):
            old[f"blocks.{i}.attn.{name}.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing tensors \['blocks.0.attn.qkv.weight'.*unexpected tensors"):
        load_state_dict_checked(m, old, where="old.ckpt")


def test_math_backend_request_is_honoured_on_cpu(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Under ``sdpa_kernel(MATH)`` the fused flash path must not run (the growth benchmark relies on it)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import mmtok.lm.model as m

    torch.manual_seed(0)
    model = m.Transformer(m.ModelConfig.preset("tiny", vocab_size=64, max_seq_len=32))
    ids = torch.randint(0, 64, (2, 32))
    fused = model(ids)

    def refuse(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the fused flash path ran under sdpa_kernel(MATH)")

    monkeypatch.setattr(m._RotaryFlashCPU, "apply", refuse)
    with sdpa_kernel([SDPBackend.MATH]):
        math = model(ids)
    torch.testing.assert_close(math, fused, rtol=1e-4, atol=1e-4)
