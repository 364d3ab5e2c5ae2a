"""The language model over token streams: the transformer, its training loop, sampling.

:mod:`~mmtok.lm.model` (decoder-only transformer: GQA, RoPE 1-D/3-D, SDPA,
KV cache; the ids and positions it is given are checked in :mod:`~mmtok.lm.inputs`),
:mod:`~mmtok.lm.train` (training with resume and DDP; its settings in
:mod:`~mmtok.lm.train_config`; its launcher and shard files watched in :mod:`~mmtok.lm.watch`),
:mod:`~mmtok.lm.runs` (a run folder and the model in it),
:mod:`~mmtok.lm.sample` (grammar-constrained sampling; the tokenizers of a run in
:mod:`~mmtok.lm.sample_tokenizers`).

Imports: :mod:`mmtok.core`, :mod:`mmtok.stream`, :mod:`mmtok.data`,
:mod:`mmtok.pretrained`.
"""

from __future__ import annotations

from mmtok.lm.runs import load_run as load_run
from mmtok.lm.sample import generate as generate

__all__ = ['generate', 'load_run']
