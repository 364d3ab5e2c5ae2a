"""The codebook layer: vector quantization.

:class:`VectorQuantizer` (its settings, :class:`VQConfig`, in :mod:`~mmtok.vq.config`; EMA updates
and dead-code restarts in :mod:`~mmtok.vq.ema`, k-means init from a random sample of the first
training vectors in :mod:`~mmtok.vq.kmeans_init`, DDP sync), its exact chunked nearest-code
search (:mod:`~mmtok.vq.search`) and the one k-means (:mod:`~mmtok.vq.kmeans`) that the quantizer
and the media trainers share, :mod:`~mmtok.vq.inputs` (what the quantizer accepts: finite values, and to
train on, values its float32 statistics hold), and :mod:`~mmtok.vq.prune`, which keeps only the codes a
tokenizer's training data picks most.

Imports: :mod:`mmtok.core` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmtok.core.lazy import lazy_members

if TYPE_CHECKING:
    from mmtok.vq.config import VQConfig as VQConfig
    from mmtok.vq.quantizer import QuantizeResult as QuantizeResult
    from mmtok.vq.quantizer import UsageStats as UsageStats
    from mmtok.vq.quantizer import VectorQuantizer as VectorQuantizer
    from mmtok.vq.search import nearest_code as nearest_code

# where each public name lives: imported on first use (PEP 562), so reading a submodule that needs no torch
# (``mmtok context`` reads configs and sizes) does not import the torch-heavy ones
_HOMES = {
    "VQConfig": "mmtok.vq.config",
    "QuantizeResult": "mmtok.vq.quantizer",
    "UsageStats": "mmtok.vq.quantizer",
    "VectorQuantizer": "mmtok.vq.quantizer",
    "nearest_code": "mmtok.vq.search",
}


__getattr__, __dir__ = lazy_members(__name__, _HOMES, globals())


__all__ = ['QuantizeResult', 'UsageStats', 'VQConfig', 'VectorQuantizer', 'nearest_code']
