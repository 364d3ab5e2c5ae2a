"""Checks on the audio codes a caller hands to ``AudioTokenizer.decode``: one clip ``[n]``,
a rectangular batch ``[B, n]``, or the padded batch a batched ``encode`` returns with its
lengths. Every check names what was wrong; values are checked as given, so no unsigned
or oversized index can wrap around on its way to int64.

>>> check_codes([3, 1, 2], codebook_size=4)
tensor([3, 1, 2])
>>> [row.tolist() for row in split_batch([[3, 1, -1], [0, 2, 2]], [2, 3], codebook_size=4)]
[[3, 1], [0, 2, 2]]
>>> is_encoded_batch((torch.zeros(2, 5, dtype=torch.long), torch.tensor([5, 3])))
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from mmtok.core.codes import integer_codes
from mmtok.core.errors import AudioError

__all__ = ["PAD_CODE", "check_codes", "is_encoded_batch", "split_batch"]

PAD_CODE = -1  # the value a batched encode fills the tail of shorter clips with (AudioTokenizer.PAD_CODE)
PAD_HINT = " (cut PAD_CODE padding off with the lengths first)"  # said when that value is out of range


def check_codes(codes: Any, codebook_size: int) -> torch.Tensor:
    """Codes ``[n]`` or ``[B, n]`` of any integer dtype (numpy's and torch's unsigned ones too)
    -> int64 on the device they came on (numpy and lists: the CPU), every value in
    ``0..codebook_size - 1``; an out-of-range :data:`PAD_CODE` says to cut the padding off.

    >>> check_codes([3, 7, 9], codebook_size=8)
    Traceback (most recent call last):
    ...
    mmtok.core.errors.AudioError: codes must be in 0..7, got index 9 (values 3..9)
    """
    if not isinstance(codes, torch.Tensor):
        try:
            codes = np.asarray(codes)
        except ValueError as e:  # nested lists of different lengths
            raise AudioError("codes must be a rectangular [n] or [B, n] array, got a ragged sequence (rows of different "
                             "lengths?): decode clips of different lengths one by one ([decode(c) for c in rows]) or "
                             "padded to [B, n_max] with lengths=[...] (as a batched encode returns them)") from e
    shape = tuple(codes.shape)
    if math.prod(shape) == 0:
        raise AudioError(f"codes are empty (shape {shape}); decoding needs at least one code")
    if len(shape) not in (1, 2):
        raise AudioError(f"codes must be [n] or [B, n], got shape {shape}")
    hint = PAD_HINT if _lowest_is_pad(codes) else ""
    return integer_codes(codes, what="codes", error=AudioError, dtype_error=TypeError, size=codebook_size, hint=hint)


def _lowest_is_pad(codes: np.ndarray | torch.Tensor) -> bool:
    """Whether the lowest of the signed integer ``codes`` (not empty) is :data:`PAD_CODE`: the value an
    out-of-range error names when one is negative (other dtypes are judged by :func:`integer_codes`)."""
    if isinstance(codes, torch.Tensor):
        signed = codes.dtype in (torch.int8, torch.int16, torch.int32, torch.int64)
    else:
        signed = np.issubdtype(codes.dtype, np.signedinteger)
    return bool(signed) and int(codes.min()) == PAD_CODE


def split_batch(codes: Any, lengths: Any, codebook_size: int) -> list[torch.Tensor]:
    """The rows ``codes[i, :lengths[i]]`` of a padded batch ``[B, n]``, each checked by
    :func:`check_codes`; the padding after each row's length is never read."""
    if not isinstance(codes, torch.Tensor):
        try:
            codes = torch.as_tensor(np.asarray(codes))
        except (ValueError, TypeError) as e:
            raise AudioError(f"batched codes must be a rectangular [B, n] array ({e})") from e
    if codes.dim() != 2:
        raise AudioError(f"codes with lengths must be a batch [B, n], got shape {tuple(codes.shape)}")
    try:
        sizes = np.asarray(lengths.detach().cpu() if isinstance(lengths, torch.Tensor) else lengths)
    except (ValueError, TypeError) as e:
        raise AudioError(f"lengths must be {codes.shape[0]} integers, one per row ({e})") from e
    if sizes.shape != (codes.shape[0],) or not np.issubdtype(sizes.dtype, np.integer):
        raise AudioError(
            f"lengths must be {codes.shape[0]} integers, one per row of codes {tuple(codes.shape)}, "
            f"got {sizes.dtype} of shape {sizes.shape}"
        )
    for i, k in enumerate(sizes):
        if not 1 <= k <= codes.shape[1]:
            raise AudioError(f"lengths[{i}] is {int(k)}; each length must be in 1..{codes.shape[1]} (the codes' width)")
    return [check_codes(codes[i, : int(k)], codebook_size) for i, k in enumerate(sizes)]


def is_encoded_batch(x: Any) -> bool:
    """Whether ``x`` is the ``(codes [B, n], lengths [B])`` pair a batched ``encode`` returns, as it
    returns it or as a list, its lengths a list of ints too (neither is ever codes ``[n]`` or ``[B, n]``).

    >>> is_encoded_batch([np.zeros((2, 5), dtype=np.int64), [5, 3]])
    True
    """
    if not (isinstance(x, (tuple, list)) and len(x) == 2):
        return False
    codes, lengths = x
    if not (isinstance(codes, (torch.Tensor, np.ndarray)) and codes.ndim == 2):
        return False
    if isinstance(lengths, (torch.Tensor, np.ndarray)):
        return lengths.ndim == 1
    return isinstance(lengths, (list, tuple)) and all(isinstance(k, (int, np.integer)) for k in lengths)
