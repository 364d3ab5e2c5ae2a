"""What :meth:`~mmtok.lm.model.Transformer.forward` takes: ids of any integer dtype inside the vocabulary,
positions and document numbers of the ids' shape, each refused in words that say what to pass instead.

>>> checked_ids(torch.tensor([[3, 4]], dtype=torch.uint16), 8).dtype
torch.int64
>>> checked_ids(torch.tensor([[3, 9]]), 8)
Traceback (most recent call last):
...
ValueError: ids must lie in [0, 8) (the model's vocab_size), got ids 3..9: ids from another vocabulary?
"""

from __future__ import annotations

import torch

__all__ = ["check_shape", "checked_ids"]


def checked_ids(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``ids`` ``[B, T]`` of any integer dtype (uint16, as shards and their memmaps hold them, becomes int64),
    refused unless they lie in ``[0, vocab_size)``. The range is read on the host except in a training step
    on an accelerator, where the read would stall the step (training windows were checked against the
    vocabulary when their shards opened) and an id out of range stops the embedding's kernel instead."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"ids must be a torch.Tensor [B, T] of integer ids, got {type(ids).__name__}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"ids must be integers, got dtype {ids.dtype} (cast deliberately, e.g. ids.long())")
    if ids.dim() != 2 or not ids.numel():  # an empty one would reach a kernel that divides by its length
        raise ValueError(f"ids must be [B, T] with at least one token, got shape {tuple(ids.shape)}"
                         + ("; one sequence [T] is ids[None]" if ids.dim() == 1 and ids.numel() else ""))
    if ids.dtype not in (torch.int64, torch.int32):  # the dtypes nn.Embedding takes
        ids = ids.long()
    if not torch.compiler.is_compiling() and (ids.device.type == "cpu" or not torch.is_grad_enabled()):
        lo, hi = (int(v) for v in torch.aminmax(ids))
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"ids must lie in [0, {vocab_size}) (the model's vocab_size), got ids {lo}..{hi}: "
                             "ids from another vocabulary?")
    return ids


def check_shape(name: str, value: torch.Tensor | None, want: tuple[int, ...], *, extra: tuple[int, ...] = (),
                note: str = "") -> None:
    """A ``ValueError`` unless ``value`` (None: not given) has the shape ``want``, ``[B, ...]``, where a first
    axis of 1 (one row for every row of the batch) is also taken, and so are ``extra`` trailing axes (3-D
    positions given to a model with 1-D ones).

    >>> check_shape("pos", torch.zeros(12), (2, 12))
    Traceback (most recent call last):
    ...
    ValueError: pos must be [B, T] = [2, 12] for these ids, got [12]
    """
    if value is None:
        return
    shape = tuple(value.shape)
    for tail in (want[1:], want[1:] + extra):
        if len(shape) == len(tail) + 1 and shape[1:] == tail and shape[0] in (1, want[0]):
            return
    axes = ", ".join(("B", "T", "3")[: len(want)])
    raise ValueError(f"{name} must be [{axes}] = {list(want)}{note} for these ids, got {list(shape)}")
