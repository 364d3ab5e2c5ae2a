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

if TYPE_CHECKING:
    from mmtok.lm.runs import load_run as load_run
    from mmtok.lm.sample import generate as generate

# where each public name lives: imported on first use (PEP 562), so reading a submodule that needs no torch
# (``mmtok context`` reads configs and sizes) does not import the torch-heavy ones
_HOMES = {
    "load_run": "mmtok.lm.runs",
    "generate": "mmtok.lm.sample",
}


def __getattr__(name: str) -> object:
    """A public name imported from its module on first use, and kept."""
    import importlib

    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = ['generate', 'load_run']
