"""Arrays to tensors: one conversion for every place a numpy array becomes a tensor.

``torch.as_tensor`` refuses a numpy array with negative strides (``x[::-1]``) or in the other byte
order (``">f4"``), and over read-only memory (``np.load(..., mmap_mode="r")``, ``np.frombuffer`` of
bytes) it gives a tensor that must never be written, with a warning. :func:`as_tensor` copies such
an array into native, writable memory first and shares any other, as ``torch.as_tensor`` does.

>>> as_tensor(np.arange(3)[::-1]).tolist(), as_tensor(np.arange(3, dtype=">i4")).tolist()
([2, 1, 0], [0, 1, 2])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["as_tensor"]


def as_tensor(x: Any) -> torch.Tensor:
    """``torch.as_tensor(x)``, for any numpy array: one in the other byte order, with a negative stride or
    over read-only memory is read through a native, writable copy (the tensor never holds memory it may
    not write); a tensor is returned as it is."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray) and (not x.dtype.isnative or not x.flags.writeable or min(x.strides, default=0) < 0):
        x = np.array(x, dtype=x.dtype.newbyteorder("="), order="C")
    return torch.as_tensor(x)
