"""The bottom layer: what every other part of mmtok shares.

The error family (:mod:`~mmtok.core.errors`), checkpoint folders
(:mod:`~mmtok.core.checkpoint`, replaced and read whole by :mod:`~mmtok.core.checkpoint_folder`), small
files written whole (:mod:`~mmtok.core.files`) and the modules saved in them (:mod:`~mmtok.core.module_io`),
measurements that more than one part reports
(:mod:`~mmtok.core.metrics`: PSNR, SSIM, codebook usage and perplexity, peak
memory), the learning-rate schedule and resumable training state
(:mod:`~mmtok.core.trainstate`, a run that diverged stopped by :mod:`~mmtok.core.divergence`; the run folder
held by one process at a time: :mod:`~mmtok.core.run_lock`;
what marks a trainer's run in its ``--out``:
:mod:`~mmtok.core.run_folder`) with the one ``--resume`` rule (:mod:`~mmtok.core.resume`) and option
ranges (:mod:`~mmtok.core.ranges`), the ``chunk_seconds`` a clip is cut by (:mod:`~mmtok.core.seconds`),
numpy arrays of any strides, byte order or memory made tensors (:mod:`~mmtok.core.tensors`), a trainer's
``--data`` corpus manifest and its splits (:mod:`~mmtok.core.corpus_manifest`), matplotlib drawing to files, optional or required
(:mod:`~mmtok.core.plotting`), warnings silenced for one block, safe from threads
(:mod:`~mmtok.core.warning_filters`), and the HTML report (:mod:`~mmtok.core.report`).

Imports: nothing else of mmtok.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmtok.core.errors import CheckpointError as CheckpointError
from mmtok.core.errors import MmtokError as MmtokError

if TYPE_CHECKING:
    from mmtok.core.checkpoint import Checkpoint as Checkpoint
    from mmtok.core.checkpoint import load_checkpoint as load_checkpoint
    from mmtok.core.checkpoint import save_checkpoint as save_checkpoint

_CHECKPOINT_NAMES = ("Checkpoint", "load_checkpoint", "save_checkpoint")  # imported on first use: they need torch


def __getattr__(name: str) -> object:
    """A checkpoint name imported on first use (PEP 562), so the error family is there without torch."""
    if name in _CHECKPOINT_NAMES:
        from mmtok.core import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ['Checkpoint', 'CheckpointError', 'MmtokError', 'load_checkpoint', 'save_checkpoint']
