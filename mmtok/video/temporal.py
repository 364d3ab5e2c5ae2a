"""Exact, lossless temporal compression of video codes ``[T, h, w]``.

- :func:`repeat_encode` / :func:`repeat_decode`: a code equal to the one at the same
  (row, column) of the previous frame becomes ``repeat_id`` (the image codebook
  size, so a video codebook has one more code). The grid keeps its shape; static
  regions become one predictable token.
- :func:`run_length_encode` / :func:`run_length_decode` go further and drop tokens:
  a run of ``r`` repeats inside a frame becomes one token ``K + r - 1``
  (``r <= max_run``).
- :func:`compression_stats` reports both figures for a clip.

>>> import torch
>>> codes = torch.tensor([[[1, 2, 3]], [[1, 2, 4]]])
>>> run_length_encode(codes, 8).tolist()
[1, 2, 3, 9, 4]
>>> torch.equal(run_length_decode(run_length_encode(codes, 8), 8, codes.shape), codes)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mmtok.core.errors import VideoError
from mmtok.core.tensors import as_tensor

__all__ = ["compression_stats", "repeat_decode", "repeat_encode", "run_length_decode", "run_length_encode"]


def repeat_encode(codes: torch.Tensor, repeat_id: int) -> torch.Tensor:
    """``[T, h, w]`` codes -> same shape, a code equal to the previous frame's at (row, col) -> ``repeat_id``.

    >>> repeat_encode(torch.tensor([[[1, 2]], [[1, 3]], [[1, 3]]]), 9)[:, 0].tolist()
    [[1, 2], [9, 3], [9, 9]]
    """
    codes = as_tensor(codes)
    if codes.dim() != 3:
        raise ValueError(f"codes must be [T, h, w], got shape {tuple(codes.shape)}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= repeat_id):
        raise ValueError(f"codes must lie in [0, {repeat_id}) to be repeat-encoded with repeat_id {repeat_id}")
    out = codes.clone()
    out[1:][codes[1:] == codes[:-1]] = repeat_id
    return out


def repeat_decode(codes: torch.Tensor, repeat_id: int) -> torch.Tensor:
    """Exact inverse of :func:`repeat_encode`: each ``repeat_id`` takes the code the previous frame had there."""
    codes = as_tensor(codes)
    if codes.dim() != 3:
        raise ValueError(f"codes must be [T, h, w], got shape {tuple(codes.shape)}")
    if codes.numel() == 0:
        return codes.clone()
    is_rep = codes == repeat_id
    if bool(is_rep[0].any()):
        raise VideoError(f"the first frame holds the repeat code {repeat_id}: there is no previous frame to repeat")
    t = torch.arange(codes.shape[0], device=codes.device).view(-1, 1, 1).expand_as(codes)  # (T, h, w)
    source = torch.cummax(torch.where(is_rep, torch.zeros_like(t), t), dim=0).values  # last literal frame
    return codes.gather(0, source)


def run_length_encode(codes: torch.Tensor, codebook_size: int, *, max_run: int = 64) -> torch.Tensor:
    """``[T, h, w]`` codes -> a 1-D token sequence: literals ``< K``, a run of ``r`` repeats -> ``K + r - 1``.

    Repeats are positions equal to the previous frame's (see :func:`repeat_encode`);
    runs follow row-major order inside one frame (never across frames) and are
    split at ``max_run``. The token alphabet has ``codebook_size + max_run`` symbols.

    >>> run_length_encode(torch.tensor([[[1, 2, 3]], [[1, 2, 4]]]), 8).tolist()
    [1, 2, 3, 9, 4]
    """
    if max_run < 1:
        raise ValueError(f"max_run must be >= 1, got {max_run}")
    rep = repeat_encode(codes, codebook_size)
    n = rep[0].numel() if rep.shape[0] else 1
    vals = rep.reshape(-1).cpu().numpy()
    m = vals == codebook_size
    idx = np.arange(vals.size)
    prev = np.concatenate([[False], m[:-1]])
    prev[idx % n == 0] = False  # runs stop at frame boundaries
    run_start = m & ~prev
    run_id = np.cumsum(run_start) - 1
    pos = idx - idx[run_start][np.maximum(run_id, 0)] if run_start.any() else idx
    chunk_start = m & (pos % max_run == 0)
    chunk_id = np.cumsum(chunk_start) - 1
    lengths = np.bincount(chunk_id[m], minlength=int(chunk_start.sum()))
    out = vals.copy()
    out[chunk_start] = codebook_size + lengths - 1
    return torch.from_numpy(out[~m | chunk_start])


def run_length_decode(tokens: torch.Tensor, codebook_size: int, shape: Sequence[int]) -> torch.Tensor:
    """Exact inverse of :func:`run_length_encode` back to codes of ``shape`` ``(T, h, w)``."""
    t = np.asarray(as_tensor(tokens).cpu(), dtype=np.int64).reshape(-1)
    if t.size and int(t.min()) < 0:
        raise ValueError("run-length tokens must be >= 0")
    is_run = t >= codebook_size
    lengths = np.where(is_run, t - codebook_size + 1, 1)
    expanded = np.repeat(np.where(is_run, codebook_size, t), lengths)
    want = int(np.prod(shape))
    if expanded.size != want:
        raise ValueError(f"run-length tokens expand to {expanded.size} codes, expected {want} for shape {tuple(shape)}")
    return repeat_decode(torch.from_numpy(expanded.reshape(tuple(shape))), codebook_size)


def compression_stats(codes: torch.Tensor, codebook_size: int, *, max_run: int = 64) -> dict[str, float]:
    """How much the temporal compression saves on ``[T, h, w]`` codes.

    ``repeat_fraction``: codes equal to the previous frame's (frames after the first);
    ``rle_tokens`` vs ``grid_tokens``: tokens with :func:`run_length_encode` vs one per code;
    ``reduction``: ``1 - rle_tokens / grid_tokens``.
    """
    codes = as_tensor(codes)
    grid = codes.numel()
    later = codes[1:].numel()
    repeats = int((codes[1:] == codes[:-1]).sum()) if later else 0
    rle = int(run_length_encode(codes, codebook_size, max_run=max_run).numel())
    return {
        "frames": int(codes.shape[0]),
        "grid_tokens": grid,
        "repeat_fraction": repeats / later if later else 0.0,
        "rle_tokens": rle,
        "reduction": 1.0 - rle / grid if grid else 0.0,
    }
