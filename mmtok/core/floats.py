"""Floats that are about to become float32: one check for every place that narrows them.

A float64 value beyond float32's range turns into inf on ``.float()``, and would then be
reported as a "NaN/inf" that the caller never passed. The check runs only on float64
input with finite values (float32 and narrower cannot exceed the range). :func:`weights_finite`
is the trainers' check that an optimizer step left a model's weights finite.

>>> import torch
>>> fits_float32(torch.tensor([1.0, -2.0], dtype=torch.float64), what="x", error=ValueError, why="")
>>> fits_float32(torch.tensor([1e300], dtype=torch.float64), what="x", error=ValueError, why="(it is searched in float32)")
Traceback (most recent call last):
...
ValueError: x has values up to 1e+300, beyond float32's range (it is searched in float32)
"""

from __future__ import annotations

import torch

__all__ = ["all_finite", "fits_float32", "weights_finite"]


def all_finite(x: torch.Tensor) -> bool:
    """Whether every value of ``x`` is finite: one reduction first (a NaN or inf poisons the sum), the
    element-wise check only when the sum is not finite (huge finite values can overflow it on their own).

    >>> all_finite(torch.tensor([1.0, 3e38, 3e38])), all_finite(torch.tensor([1.0, float("nan")]))
    (True, False)
    """
    if not x.numel() or not x.is_floating_point() or bool(torch.isfinite(x.sum())):
        return True
    return bool(torch.isfinite(x).all())


def weights_finite(module: torch.nn.Module) -> bool:
    """Whether every floating parameter and buffer of ``module`` is finite, cheaply enough to ask after each
    optimizer step: one sum per tensor and their total in float64 (a NaN or inf poisons it), the element-wise
    check only when that total is not finite (huge finite weights can overflow a tensor's sum on their own).

    >>> net = torch.nn.Linear(2, 2)
    >>> weights_finite(net)
    True
    >>> _ = net.bias.data.fill_(float("inf"))
    >>> weights_finite(net)
    False
    """
    tensors = [t.detach() for t in (*module.parameters(), *module.buffers()) if t.is_floating_point() and t.numel()]
    if not tensors or bool(torch.isfinite(torch.stack([t.sum().double() for t in tensors]).sum())):
        return True
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def fits_float32(x: torch.Tensor, *, what: str, error: type[Exception], why: str) -> None:
    """Raise ``error`` naming ``what`` and its largest magnitude when float64 ``x`` holds a finite value
    float32 cannot hold; ``why`` ends the message (why it matters here)."""
    if x.dtype != torch.float64 or not x.numel():
        return
    finite = x.detach()[torch.isfinite(x.detach())]
    peak = float(finite.abs().max()) if finite.numel() else 0.0
    if peak > torch.finfo(torch.float32).max:
        raise error(f"{what} has values up to {peak:.3g}, beyond float32's range {why}".rstrip())
