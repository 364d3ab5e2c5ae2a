"""Integer codes from whatever a user hands over: one check for every tokenizer and the interleaver.

A tensor (any device), a numpy array or a nested list becomes int64. Floats, complex numbers
and booleans are refused instead of truncated (a float code is almost always a mistake: an
image or a waveform passed where codes belong), ragged lists are refused instead of becoming
object arrays, and with ``size`` every value must lie in ``0..size - 1``. torch's unsigned
dtypes (which have no ``min``/``max``) are checked through numpy, and unsigned 64-bit values
above the int64 range (which would wrap negative in the cast) are refused, with or without ``size``. An
array in read-only memory (``np.load(path, mmap_mode="r")``) is read through a copy (:func:`~mmtok.core.tensors.as_tensor`).

>>> integer_codes([[1, 2], [3, 4]], what="codes", error=ValueError, size=5).tolist()
[[1, 2], [3, 4]]
>>> integer_codes([1.0, 2.0], what="codes", error=ValueError)
Traceback (most recent call last):
...
ValueError: codes must be integers, got dtype float64 (cast deliberately, e.g. .long(), if the values are whole numbers)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmtok.core.tensors import as_tensor

__all__ = ["integer_codes"]

_UNSIGNED = (torch.uint16, torch.uint32, torch.uint64)  # torch has no min or max for these
_INT64_MAX = 2**63 - 1  # a uint64 value above this would wrap negative in the cast to int64


def integer_codes(
    x: Any,
    *,
    what: str,
    error: type[Exception],
    size: int | None = None,
    dtype_error: type[Exception] | None = None,
    hint: str = "",
) -> torch.Tensor:
    """``x`` as an int64 tensor (a tensor stays on its device; the rest lands on the CPU).

    ``what`` names the codes in messages; ``error`` is raised for a ragged sequence and for a
    value outside ``0..size - 1`` (``hint`` is appended to that message), ``dtype_error``
    (default ``error``) for codes that are not integers.
    """
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise _dtype_problem(what, x.dtype, dtype_error or error)
        values: np.ndarray | torch.Tensor = x.detach().cpu().numpy() if x.dtype in _UNSIGNED else x.detach()
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as e:  # nested lists of different lengths
            raise error(f"{what} must be a rectangular array of integers, got a ragged sequence ({e})") from None
        if arr.dtype == object:
            raise error(f"{what} must be a rectangular array of integers, got a ragged or mixed sequence")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise _dtype_problem(what, arr.dtype, dtype_error or error)
        values = arr
    count = values.size if isinstance(values, np.ndarray) else values.numel()
    if size is not None and count:
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi >= size:
            bad = lo if lo < 0 else hi
            raise error(f"{what} must be in 0..{size - 1}, got index {bad} (values {lo}..{hi}){hint}")
    if isinstance(values, np.ndarray) and values.dtype == np.uint64 and count and int(values.max()) > _INT64_MAX:
        raise error(f"{what} must fit in int64 (at most {_INT64_MAX}), got {int(values.max())}{hint}")
    if isinstance(x, torch.Tensor):
        if x.dtype in _UNSIGNED:
            return torch.from_numpy(values.astype(np.int64)).to(x.device)  # type: ignore[union-attr]
        return x.detach().to(torch.long)
    # read-only memory (a memory-mapped .npy): a copy; its shape kept (ascontiguousarray makes a 0-d array 1-d)
    return as_tensor(np.ascontiguousarray(values, dtype=np.int64).reshape(np.shape(values)))


def _dtype_problem(what: str, dtype: Any, error: type[Exception]) -> Exception:
    return error(f"{what} must be integers, got dtype {str(dtype).removeprefix('torch.')} (cast deliberately, e.g. "
                 ".long(), if the values are whole numbers)")
