"""The transformer's size: :class:`ModelConfig`, its named presets and the ranges its numbers take.

Plain data, no tensors: what a plan (:mod:`mmtok.context`) prices and what
:class:`mmtok.lm.model.Transformer` is built from.

>>> cfg = ModelConfig.preset("small", vocab_size=300)
>>> cfg.d_model, cfg.head_dim, cfg.hidden_dim
(384, 64, 1024)
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass, replace

from mmtok.core.ranges import Range

__all__ = ["CONFIG_RANGES", "PRESETS", "ModelConfig"]

PRESETS: dict[str, dict[str, int]] = {
    # name: d_model, layers, heads, kv heads, context (max_seq_len; at least mmtok.lm.model.MEDIA_CONTEXT)
    "tiny": {"d_model": 128, "n_layer": 4, "n_head": 4, "n_kv_head": 2, "max_seq_len": 512},
    "small": {"d_model": 384, "n_layer": 6, "n_head": 6, "n_kv_head": 2, "max_seq_len": 1024},
    "base": {"d_model": 768, "n_layer": 12, "n_head": 12, "n_kv_head": 4, "max_seq_len": 2048},
}


# the values each number of ModelConfig takes (NaN and infinities are outside every range)
CONFIG_RANGES: dict[str, Range] = {
    "vocab_size": Range(1), "n_layer": Range(1), "n_head": Range(1), "n_kv_head": Range(1), "d_model": Range(1),
    "max_seq_len": Range(1), "rope_theta": Range(0, low_open=True), "dropout": Range(0, 1, high_open=True),
    "mlp_ratio": Range(0, low_open=True), "norm_eps": Range(0, low_open=True),
}
WHOLE = ("vocab_size", "n_layer", "n_head", "n_kv_head", "d_model", "max_seq_len")


@dataclass
class ModelConfig:
    """Hyperparameters of a :class:`~mmtok.lm.model.Transformer`."""

    vocab_size: int = 512  # V: size of the unified id space (text + special + media codes)
    n_layer: int = 4  # number of transformer blocks
    n_head: int = 4  # query heads per attention layer
    n_kv_head: int = 2  # key/value heads (grouped-query attention); must divide n_head
    d_model: int = 128  # width of the residual stream
    max_seq_len: int = 1024  # longest sequence (and KV cache) the model is built for
    rope_theta: float = 10_000.0  # base of the rotary frequencies
    rope_3d: bool = False  # rotate by (time, row, column) positions, M-RoPE style, else 1-D
    dropout: float = 0.0  # dropout on attention and residual branches while training
    tie_embeddings: bool = True  # share the input embedding with the output projection
    mlp_ratio: float = 8 / 3  # SwiGLU hidden size = mlp_ratio * d_model (rounded up to 64)
    norm_eps: float = 1e-5  # RMSNorm epsilon

    def __post_init__(self) -> None:
        for name, allowed in CONFIG_RANGES.items():  # before the arithmetic below divides by any of them
            value = getattr(self, name)
            whole = name in WHOLE
            kind = numbers.Integral if whole else numbers.Real  # numpy's integer and floating scalars too
            if isinstance(value, bool) or not isinstance(value, kind) or not allowed.holds(float(value)):
                raise ValueError(f"ModelConfig.{name} must be {'a whole number' if whole else 'a finite number'} "
                                 f"{allowed}, got {value!r}")
            setattr(self, name, operator.index(value) if whole else float(value))  # type: ignore[arg-type]
        if self.d_model % self.n_head:
            raise ValueError(f"ModelConfig: d_model {self.d_model} is not a multiple of n_head {self.n_head}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"ModelConfig: n_kv_head {self.n_kv_head} must divide n_head {self.n_head}")
        if (self.d_model // self.n_head) % 2:
            raise ValueError(
                f"ModelConfig: head size {self.d_model // self.n_head} must be even for rotary positions"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def hidden_dim(self) -> int:
        return 64 * math.ceil(self.mlp_ratio * self.d_model / 64)

    @classmethod
    def preset(cls, name: str, **overrides: object) -> ModelConfig:
        """A named size (``tiny``, ``small``, ``base``) with any field overridden, exactly.

        Each preset's own context (``max_seq_len``) holds a prompt, a whole image and a
        second of sound of the shipped tokenizers (:data:`mmtok.lm.model.MEDIA_CONTEXT`); ``mmtok train``
        builds its model with the longer of that and its training window, so sampling
        media always fits. Rotary positions have no learned table, so the longer context
        costs no parameters and no training time.

        >>> ModelConfig.preset("tiny").max_seq_len, ModelConfig.preset("tiny", max_seq_len=4096).max_seq_len
        (512, 4096)
        """
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
        fields: dict[str, object] = {**PRESETS[name], **overrides}
        return replace(cls(), **fields)  # type: ignore[arg-type]
