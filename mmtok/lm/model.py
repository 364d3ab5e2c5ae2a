"""The small decoder-only transformer that reads interleaved token streams.

RMSNorm, rotary positions (1-D, or M-RoPE-style 3-D over time/row/column for
media tokens), grouped-query attention through ``F.scaled_dot_product_attention``
with a causal mask that also stops at document boundaries inside a packed
window, a SwiGLU MLP, optional tied embeddings and a KV cache for generation.

Axis legend used in shape comments:
    B  batch
    T  sequence length (this call)
    S  length of the cached keys/values (past + this call)
    H  query heads, G  key/value heads (H % G == 0)
    E  head size (d_model / H)
    C  d_model
    V  vocabulary size

>>> cfg = ModelConfig.preset("tiny", vocab_size=300)
>>> model = Transformer(cfg)
>>> logits = model(torch.randint(0, 300, (2, 10)))
>>> tuple(logits.shape)
(2, 10, 300)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from mmtok.core.run_folder import LM_KIND
from mmtok.lm.grammar import audio_segment_len, image_segment_len
from mmtok.lm.inputs import check_shape, checked_ids
from mmtok.lm.model_config import PRESETS, ModelConfig

if TYPE_CHECKING:
    from mmtok.stream.vocab import Vocabulary

__all__ = ["MEDIA_CONTEXT", "KVCache", "Transformer", "document_mask"]

# What every preset's context holds at the least, in tokens of the shipped tokenizers (models/image: 16×16
# codes per picture; models/audio: 50 codes per second; tests/test_frontdoor.py reads their configs to check)
PROMPT_TOKENS = 32  # a short text prompt
IMAGE_TOKENS = image_segment_len(16, 16)  # one picture: 16 rows of 16 codes, an <eol> after each row, <boi> and <eoi>
AUDIO_TOKENS = audio_segment_len(50)  # one second of sound: 50 codes, <boa> and <eoa>
MEDIA_CONTEXT = PROMPT_TOKENS + IMAGE_TOKENS + AUDIO_TOKENS + 2  # with <bos> and <eos>: 360

# every preset of mmtok.lm.model_config holds that much
assert all(p["max_seq_len"] >= MEDIA_CONTEXT for p in PRESETS.values())


class _RMSNormCPU(torch.autograd.Function):
    """RMSNorm with a hand-written backward: fewer passes over memory than the composite on the CPU."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        ms = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(x.shape[-1])  # (..., 1)
        rstd = ms.add_(eps).rsqrt_()
        xhat = x * rstd
        ctx.save_for_backward(xhat, rstd, w)
        return xhat * w

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        xhat, rstd, w = ctx.saved_tensors
        g_xhat = g * xhat
        gw = g_xhat.flatten(0, -2).sum(0)
        dot = (g_xhat @ w).unsqueeze_(-1).div_(xhat.shape[-1])  # (..., 1): mean of (g * w) * xhat
        return torch.addcmul(g * w, xhat, dot, value=-1).mul_(rstd), gw, None


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.dtype == torch.float32 and not torch.compiler.is_compiling():
            return _RMSNormCPU.apply(x, self.weight, self.eps)  # eager only: the compiler fuses the composite
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rotary_angles(cfg: ModelConfig, pos: torch.Tensor) -> torch.Tensor:
    """Unit complex rotations ``[B, T, 1, E/2]`` for positions ``pos`` ``[B, T]`` (1-D) or ``[B, T, 3]`` (3-D).

    In 3-D mode the E/2 frequencies are split in three interleaved sets
    (every third frequency), driven by time, row and column respectively.
    """
    half = cfg.head_dim // 2
    inv = cfg.rope_theta ** (-torch.arange(half, device=pos.device, dtype=torch.float32) / half)  # (E/2,)
    if cfg.rope_3d:
        if pos.dim() != 3 or pos.shape[-1] != 3:
            raise ValueError(f"rope_3d needs positions [B, T, 3], got {tuple(pos.shape)}")
        axis = torch.arange(half, device=pos.device) % 3  # which of t/row/col drives each frequency
        p = pos.float().gather(-1, axis.expand(*pos.shape[:2], half))  # (B, T, E/2)
    else:
        if pos.dim() == 3:
            pos = pos[..., 0]
        p = pos.float()[..., None]  # (B, T, 1)
    return torch.polar(torch.ones_like(p * inv), p * inv)[:, :, None]  # (B, T, 1, E/2) complex


def apply_rotary(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs of ``x`` ``[B, T, h, E]`` by ``rot`` ``[B, T, 1, E/2]`` (complex)."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))  # (B, T, h, E/2)
    return torch.view_as_real(pairs * rot).flatten(3).to(x.dtype)  # (B, T, h, E)


def _pairs(x: torch.Tensor) -> torch.Tensor:
    """View ``[..., E]`` (last stride 1) as complex ``[..., E/2]``: no copy, writes go through."""
    return torch.view_as_complex(x.unflatten(-1, (-1, 2)))


_FLASH_CPU = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
_FLASH_CPU_BACKWARD = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)


class _RotaryFlashCPU(torch.autograd.Function):
    """Rotary + flash attention on the CPU straight from the fused projection ``[B, T, H+2G, E]``.

    Same math as :func:`apply_rotary` followed by ``F.scaled_dot_product_attention``
    (causal, or an additive float mask), but the backward writes the query, key and
    value gradients (keys and queries rotated back) into one ``[B, T, H+2G, E]``
    buffer instead of autograd zero-filling and summing one buffer per slice.
    """

    @staticmethod
    def forward(ctx, qkv, rot, n_head, mask):  # type: ignore[no-untyped-def,override]
        b, t, n, e = qkv.shape
        h, g = n_head, (n - n_head) // 2
        qk = torch.view_as_real(_pairs(qkv[:, :, : h + g]) * rot).flatten(3)  # (B, T, H+G, E)
        q = qk[:, :, :h].transpose(1, 2)  # (B, H, T, E)
        k = qk[:, :, h:].transpose(1, 2)  # (B, G, T, E)
        v = qkv[:, :, h + g :].transpose(1, 2)  # (B, G, T, E)
        out, lse = _FLASH_CPU(q, k, v, 0.0, mask is None, attn_mask=mask)  # (B, H, T, E), (B, H, T)
        ctx.save_for_backward(q, k, v, out, lse, rot, mask)
        return out.transpose(1, 2).reshape(b, t, h * e)  # (B, T, C)

    @staticmethod
    def backward(ctx, gy):  # type: ignore[no-untyped-def,override]
        q, k, v, out, lse, rot, mask = ctx.saved_tensors
        b, h, t, e = q.shape
        g = k.shape[1]
        gq, gk, gv = _FLASH_CPU_BACKWARD(
            gy.view(b, t, h, e).transpose(1, 2), q, k, v, out, lse, 0.0, mask is None, attn_mask=mask
        )
        grad = gy.new_empty(b, t, h + 2 * g, e)  # (B, T, H+2G, E)
        back = rot.conj().resolve_conj()
        torch.mul(_pairs(gq.transpose(1, 2)), back, out=_pairs(grad[:, :, :h]))
        torch.mul(_pairs(gk.transpose(1, 2)), back, out=_pairs(grad[:, :, h : h + g]))
        grad[:, :, h + g :].copy_(gv.transpose(1, 2))
        return grad, None, None, None


class _SwiGLU(torch.autograd.Function):
    """``silu(gate) * up`` from ``[..., 2 * hidden]``; the backward fills one gradient buffer (no concat)."""

    @staticmethod
    def forward(ctx, gate_up):  # type: ignore[no-untyped-def,override]
        gate, up = gate_up.chunk(2, dim=-1)
        act = F.silu(gate)
        ctx.save_for_backward(gate_up, act)
        return act * up

    @staticmethod
    def backward(ctx, g):  # type: ignore[no-untyped-def,override]
        gate_up, act = ctx.saved_tensors
        gate, up = gate_up.chunk(2, dim=-1)
        grad = torch.empty_like(gate_up)
        d_gate, d_up = grad.chunk(2, dim=-1)
        torch.mul(g, act, out=d_up)
        torch.ops.aten.silu_backward(g * up, gate, grad_input=d_gate)
        return grad


def document_mask(doc: torch.Tensor, past: int = 0) -> torch.Tensor:
    """Boolean attention mask ``[B, 1, T, past+T]``: causal and within the same document.

    ``doc`` ``[B, past+T]`` numbers the document each position belongs to.
    """
    t = doc.shape[1] - past
    q_doc = doc[:, past:, None]  # (B, T, 1)
    k_doc = doc[:, None, :]  # (B, 1, S)
    q_idx = torch.arange(past, past + t, device=doc.device)[:, None]  # (T, 1)
    k_idx = torch.arange(past + t, device=doc.device)[None, :]  # (1, S)
    return ((q_doc == k_doc) & (k_idx <= q_idx))[:, None]  # (B, 1, T, S)


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask (True = attend) as the additive ``0 / -inf`` float mask the CPU flash kernel takes."""
    if mask.dtype != torch.bool:
        return mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


@dataclass
class KVCache:
    """Keys and values of every layer for generation: ``[B, G, max_len, E]`` each."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int = 0  # positions filled so far

    @classmethod
    def empty(cls, cfg: ModelConfig, batch: int, device: torch.device, dtype: torch.dtype) -> KVCache:
        shape = (batch, cfg.n_kv_head, cfg.max_seq_len, cfg.head_dim)
        return cls(
            [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)],
            [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)],
        )


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        e = cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, (cfg.n_head + 2 * cfg.n_kv_head) * e, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rope: torch.Tensor,
        mask: torch.Tensor | None,
        cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        cfg = self.cfg
        b, t, _ = x.shape
        h, g, e = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        qkv = self.qkv(x).view(b, t, h + 2 * g, e)  # (B, T, H+2G, E)
        dropout = cfg.dropout if self.training else 0.0
        # the fused CPU path is SDPA's flash kernel: only where SDPA itself may pick it (sdpa_kernel(MATH)
        # turns the flag off, and then the math backend must really run)
        # (not under torch.compile: the compiler fuses the composite path itself)
        fast_cpu = (not torch.compiler.is_compiling() and qkv.device.type == "cpu" and qkv.dtype == torch.float32
                    and _FLASH_CPU is not None and torch.backends.cuda.flash_sdp_enabled())
        if cache is None and not dropout and fast_cpu:
            if mask is not None and mask.dtype != qkv.dtype:
                mask = _additive(mask, qkv.dtype)
            return self.proj(_RotaryFlashCPU.apply(qkv, rope, h, mask))
        qk = apply_rotary(qkv[:, :, : h + g], rope)  # (B, T, H+G, E): queries and keys rotated at once
        q = qk[:, :, :h].transpose(1, 2)  # (B, H, T, E)
        k = qk[:, :, h:].transpose(1, 2)  # (B, G, T, E)
        v = qkv[:, :, h + g :].transpose(1, 2)  # (B, G, T, E)
        if cache is not None:
            start = cache.length
            cache.keys[layer][:, :, start : start + t] = k
            cache.values[layer][:, :, start : start + t] = v
            k = cache.keys[layer][:, :, : start + t]  # (B, G, S, E)
            v = cache.values[layer][:, :, : start + t]
        if mask is None:
            # plain causal attention (fast kernels); a single query step sees the whole cache
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=t > 1, dropout_p=dropout, enable_gqa=g != h
            )
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, enable_gqa=g != h)
        y = y.transpose(1, 2).reshape(b, t, h * e)  # (B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    """SwiGLU: ``down(silu(gate(x)) * up(x))``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.hidden_dim, bias=False)
        self.down = nn.Linear(cfg.hidden_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_up = self.gate_up(x)  # (B, T, 2 hidden)
        if torch.compiler.is_compiling():  # the compiler fuses the composite itself
            gate, up = gate_up.chunk(2, dim=-1)
            return self.down(F.silu(gate) * up)
        return self.down(_SwiGLU.apply(gate_up))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1 = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, rope, mask, cache, layer):  # type: ignore[no-untyped-def]
        x = x + self.drop(self.attn(self.norm1(x), rope, mask, cache, layer))
        return x + self.drop(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
    """Decoder-only transformer over the unified id space."""

    KIND = LM_KIND  # checkpoint kind

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vocab: Vocabulary | None = None  # the id layout it was trained on, when known (a run's: load_run)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2 style: scale residual projections by depth
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def num_params(self, *, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.embed.weight.numel()
        return n

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (forward + backward): ``6 N + 6 L T C``, PaLM's (appendix B) ``12 L T C`` of
        attention halved by the causal mask, as the context planner prices it."""
        c = self.cfg
        return 6.0 * self.num_params(non_embedding=False) + 6.0 * c.n_layer * seq_len * c.d_model

    def forward(
        self,
        ids: torch.Tensor,
        *,
        pos: torch.Tensor | None = None,
        doc: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, T, V]`` for ids ``[B, T]`` of any integer dtype (shards' uint16 too), each in
        ``[0, vocab_size)`` (:func:`~mmtok.lm.inputs.checked_ids`).

        ``pos``: positions ``[B, T]`` (or ``[B, T, 3]`` with ``rope_3d``); default
        ``0..T-1`` (continuing after the cache). ``doc``: document number per
        position ``[B, T]`` (``[B, S]`` with a cache): attention never crosses
        documents. ``cache``: a :class:`KVCache` filled in place and advanced.
        """
        ids = checked_ids(ids, self.cfg.vocab_size)
        b, t = ids.shape
        past = cache.length if cache is not None else 0
        if past + t > self.cfg.max_seq_len:
            raise ValueError(
                f"sequence of {past + t} tokens exceeds max_seq_len {self.cfg.max_seq_len}"
            )
        check_shape("pos", pos, (b, t, 3) if self.cfg.rope_3d else (b, t), extra=() if self.cfg.rope_3d else (3,))
        check_shape("doc", doc, (b, past + t), note=f" (T counting the {past} cached positions too)" if past else "")
        if cache is not None and cache.keys and cache.keys[0].shape[0] != b:
            raise ValueError(f"the KVCache holds {cache.keys[0].shape[0]} rows but ids has {b}: make the cache with "
                             "KVCache.empty(cfg, batch=B, ...) for ids [B, T]")
        if pos is None:
            pos = torch.arange(past, past + t, device=ids.device).expand(b, t)
            if self.cfg.rope_3d:
                pos = pos[..., None].expand(b, t, 3)
        rope = rotary_angles(self.cfg, pos)
        if doc is not None and not torch.compiler.is_compiling() and bool((doc == doc[:, :1]).all()):
            doc = None  # one document per row: plain causal attention (the fast SDPA kernels); a data-
            # dependent branch, so not under torch.compile, where the mask is kept (same result)
        if doc is not None:
            mask = document_mask(doc, past)
        elif past and t > 1:  # a chunk after cached tokens: causal with an offset
            mask = document_mask(torch.zeros(b, past + t, dtype=torch.long, device=ids.device), past)
        else:
            mask = None
        if mask is not None and cache is None and ids.device.type == "cpu":  # convert once, not per layer
            dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else self.embed.weight.dtype
            mask = _additive(mask, dtype)
        x = self.drop(self.embed(ids))  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, rope, mask, cache, i)
        if cache is not None:
            cache.length += t
        return self.head(self.norm(x))  # (B, T, V)

    if TYPE_CHECKING:  # calling the module runs forward (nn.Module.__call__): give calls forward's types
        __call__ = forward

