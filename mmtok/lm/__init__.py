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

from typing import TYPE_CHECKING

from mmtok.core.lazy import lazy_members

if TYPE_CHECKING:
    from mmtok.lm.runs import load_run as load_run
    from mmtok.lm.sample import generate as generate

# where each public name lives: imported on first use (PEP 562), so reading a submodule that needs no torch
# (``mmtok context`` reads configs and sizes) does not import the torch-heavy ones
_HOMES = {
    "load_run": "mmtok.lm.runs",
    "generate": "mmtok.lm.sample",
}


__getattr__, __dir__ = lazy_members(__name__, _HOMES, globals())


__all__ = ['generate', 'load_run']
