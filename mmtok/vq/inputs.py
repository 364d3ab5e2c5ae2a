"""What a :class:`~mmtok.vq.quantizer.VectorQuantizer` accepts: ``[..., D]`` floating-point input with finite
values, and, to train on, values small enough for the codebook's float32 statistics; and, for a cosine
quantizer, a state dict whose codes are unit vectors (:func:`check_state_codes`).

A training step squares its lookup vectors (the search's ``x·c - |c|²/2``, the codes it moves there) and sums
them per code (the EMA sums): values beyond :func:`statistics_limit` (about 5.8e17 in 256 dimensions) overflow
float32 there, and a codebook that learned from them is lost. Such a step is refused before it changes anything.
The check costs no more than the NaN/inf check it shares: one ``aminmax`` per tensor and one value read on the
host for the input, its lookup vectors and the codebook together.

>>> import torch
>>> from mmtok.vq.quantizer import VectorQuantizer, VQConfig
>>> vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8, kmeans_init=False))
>>> vq(torch.full((3, 4), 1e37))
Traceback (most recent call last):
...
mmtok.core.errors.QuantizerOverflowError: VectorQuantizer input has values up to 1e+37, too large for the codebook's float32 statistics (...): normalise the features first (...); the codebook is unchanged
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from mmtok.core.errors import QuantizerError, QuantizerOverflowError
from mmtok.core.floats import all_finite, fits_float32
from mmtok.vq.search import nearest_code

__all__ = ["check_input", "check_state_codes", "check_values", "statistics_limit"]

FLOAT32_MAX = float(torch.finfo(torch.float32).max)
UNIT_TOLERANCE = 1e-2  # a cosine codebook's rows: norm 1 within this (bfloat16 keeps 8 bits), or 0 (no codes yet)


def statistics_limit(dim: int) -> float:
    """The largest magnitude a training step takes in ``dim``-d lookup vectors: four times the squared norm of
    a vector of such values still fits float32 (the search adds ``x·c`` and ``|c|²/2``; a code's EMA sum adds
    up to as many vectors as the step holds, far fewer than the headroom this leaves).

    >>> f"{statistics_limit(256):.2g}"
    '5.8e+17'
    """
    return math.sqrt(FLOAT32_MAX / (4 * dim))


def check_input(x: torch.Tensor, dim: int, what: str = "input", *, finite: bool = True) -> None:
    """Refuse what is no ``[..., dim]`` float tensor; with ``finite`` also NaN/inf values (a value read on the
    host: ``forward`` and ``encode`` leave it to :func:`check_values`, which reads one value for all)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"VectorQuantizer {what} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise QuantizerError(f"VectorQuantizer {what} must be floating point (float32/bf16/float16), got {x.dtype}")
    if x.dim() == 0 or x.shape[-1] != dim:
        raise QuantizerError(f"VectorQuantizer {what} has shape {tuple(x.shape)}: expected [..., {dim}] "
                             f"(last axis = VQConfig.dim = {dim})")
    if finite and not all_finite(x):
        bad = int((~torch.isfinite(x)).sum())
        raise QuantizerError(f"VectorQuantizer {what} contains {bad} NaN/inf value(s)")
    fits_float32(x, what=f"VectorQuantizer {what}", error=QuantizerOverflowError, why="(the codebook is float32)")


def _peak(t: torch.Tensor) -> torch.Tensor:
    """0-d float64 on ``t``'s device: its largest magnitude (NaN when it holds one, inf when it holds one);
    one ``aminmax``, no copy of ``t``."""
    lo, hi = torch.aminmax(t.detach())
    return torch.maximum(hi, -lo).double()


def _reach(*ts: torch.Tensor) -> torch.Tensor:
    """0-d float64 on their device: the largest magnitude in any of ``ts`` (NaN when one holds NaN, inf when one
    holds inf); one ``aminmax`` per tensor and two small kernels for all (the launches of a GPU step), no copy."""
    ends = torch.stack([end for t in ts for end in torch.aminmax(t.detach())])  # (2 * len(ts),) mins and maxes
    return torch.linalg.vector_norm(ends, float("inf"), dtype=torch.float64)


def check_values(x: torch.Tensor, z: torch.Tensor, embed: torch.Tensor, *, training: bool,
                 projected: bool = False) -> float:
    """Refuse NaN/inf in the input ``x``, its lookup vectors ``z`` ``[N, d]`` (``projected``: by a learned
    projection, not just ``x`` as float32) or the codebook ``embed``, and, when ``training``, lookup vectors beyond
    :func:`statistics_limit`, reading one value on the host for all: the largest magnitude in any of them. The
    checks that name which come only when that value calls for them. Returns that value (0 for empty input):
    beyond :func:`statistics_limit` float32 search scores may overflow, and the search runs in float64."""
    if not x.numel():
        return 0.0
    same = z.dtype == x.dtype and z.data_ptr() == x.data_ptr() and z.numel() == x.numel() and x.is_contiguous()
    # a projection, a normalisation or a cast makes the input other values than z (else z is x, reshaped)
    peak = float(_reach(embed, z) if same else _reach(embed, z, x))  # the one value read here
    limit = statistics_limit(z.shape[1])
    if math.isfinite(peak) and (not training or peak <= limit):
        return peak
    if not math.isfinite(peak):
        check_input(x, x.shape[-1])  # the input's NaN/inf, by count
        nearest_code(z[:0], embed)  # the codebook's, by row
        if not all_finite(z):
            raise QuantizerError(f"VectorQuantizer lookup vectors hold NaN/inf values from finite input (the "
                                 f"projection into the codebook's {z.shape[1]}-d space overflowed)")
    if training:
        top = float(_peak(z))
        if top > limit:
            what = "lookup vectors (the input after its projection) have" if projected else "input has"
            raise QuantizerOverflowError(
                f"VectorQuantizer {what} values up to {top:.3g}, too large for the codebook's float32 statistics "
                f"(beyond {limit:.2g} the squared distances and EMA sums of {z.shape[1]}-d vectors overflow): "
                "normalise the features first (LayerNorm, or divide by their scale); the codebook is unchanged")
    return peak


def check_state_codes(state: Mapping[str, Any], prefix: str, *, cosine: bool) -> None:
    """Refuse, before anything is copied, the codes ``state[prefix + "embed"]`` ``[K, d]`` for a ``cosine``
    quantizer when they are no unit vectors: codes of a Euclidean quantizer, which a cosine search would rank
    by length as well as by angle (its scores are ``x·c``), so that :meth:`encode` gave no nearest code by
    cosine and :meth:`decode` vectors of any length. Rows of norm 0 (a codebook whose codes are still to
    come) pass; shapes are left to ``load_state_dict``.

    >>> check_state_codes({"vq.embed": torch.tensor([[3.0, 4.0]])}, "vq.", cosine=True)
    Traceback (most recent call last):
    ...
    mmtok.core.errors.QuantizerError: VectorQuantizer state 'vq.embed' holds codes of norm 5 to 5 where a cosine ...
    """
    embed = state.get(prefix + "embed")
    if not cosine or not isinstance(embed, torch.Tensor) or embed.dim() != 2 or embed.is_meta or not embed.numel():
        return
    norms = torch.linalg.vector_norm(embed.detach().float(), dim=1)  # (K,)
    off = ((norms - 1).abs() > UNIT_TOLERANCE) & (norms != 0)
    if bool(off.any()):  # (NaN codes are the search's to refuse, as in any codebook)
        lo, hi = float(norms.min()), float(norms.max())
        raise QuantizerError(
            f"VectorQuantizer state '{prefix}embed' holds codes of norm {lo:.3g} to {hi:.3g} where a cosine "
            f"quantizer (VQConfig.cosine=True) holds unit vectors ({int(off.sum())} of {norms.numel()} codes "
            "are not): it comes from a quantizer with cosine=False; build this one with VQConfig(cosine=False), "
            "or normalise the codes first (torch.nn.functional.normalize(state['embed'], dim=1)); "
            "nothing was loaded")
