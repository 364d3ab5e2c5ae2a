"""Synthetic data and toy tasks, apart from the library proper.

Dead-leaves pictures for the image trainer (:mod:`~mmtok.synth.dead_leaves`),
clustered vectors for VQ tests and benchmarks (:mod:`~mmtok.synth.clustered`),
and the toy captioned pictures and tones the demo and the learning tests train
on (:mod:`~mmtok.synth.toy`). Nothing in the data flow depends on them except the
trainers' options that ask for them.

Imports: :mod:`mmtok.core` only.
"""

from __future__ import annotations

__all__: list[str] = []
