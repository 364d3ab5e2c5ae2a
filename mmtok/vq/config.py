"""The settings of a VQ codebook: :class:`VQConfig`, each number checked against the values it takes
(:data:`CONFIG_RANGES`) when the config is made, so a :class:`~mmtok.vq.quantizer.VectorQuantizer`
is only ever built from settings it can use.

>>> cfg = VQConfig(dim=8, codebook_size=16, codebook_dim=4)
>>> cfg.lookup_dim, cfg.same_codebook(VQConfig(dim=8, codebook_size=16, codebook_dim=4, decay=0.9))
(4, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmtok.core.errors import QuantizerError
from mmtok.core.ranges import ABOVE_0, Range

__all__ = ["VQConfig"]

# the values each number of VQConfig takes (finite: NaN and infinities are refused), and its notes
CONFIG_RANGES: dict[str, Range] = {
    "dim": Range(1), "codebook_size": Range(2), "decay": Range(0, 1, low_open=True, high_open=True),
    "eps": ABOVE_0, "commitment_weight": Range(0), "dead_code_threshold": Range(0),
    "dead_code_rate": Range(0, 1, high_open=True), "search_budget_mb": ABOVE_0, "kmeans_iters": Range(1),
    "kmeans_min_vectors": Range(0), "codebook_dim": Range(1), "chunk_size": Range(1),
}
OPTIONAL = ("codebook_dim", "chunk_size", "search_budget_mb")  # None: the default behaviour
FLAGS = ("kmeans_init", "cosine")  # the fields that are True or False
WHOLE = ("dim", "codebook_size", "kmeans_iters", "kmeans_min_vectors", "codebook_dim", "chunk_size")
CONFIG_NOTES = {"eps": " (the default is 1e-5)", "dead_code_threshold": " (0: no restarts)"}


@dataclass
class VQConfig:
    """Hyperparameters of a :class:`~mmtok.vq.quantizer.VectorQuantizer`."""

    dim: int = 256  # size of the vectors that come in (last axis of the input)
    codebook_size: int = 1024  # K: number of codes
    decay: float = 0.99  # EMA decay of code counts and sums (0 < decay < 1; higher = slower)
    eps: float = 1e-5  # Laplace smoothing of EMA counts, so a code never divides by zero (> 0)
    commitment_weight: float = 0.25  # weight of ||x - sg(q)||² in the returned loss
    kmeans_init: bool = True  # initialise codes by k-means on a random sample of the first training vectors
    kmeans_iters: int = 10  # Lloyd iterations of that initialisation (≥ 1)
    kmeans_min_vectors: int = 0  # collect at least this many training vectors (and ≥ K) before k-means
    dead_code_threshold: float = 1.0  # restart codes whose EMA count (vectors per step and rank) falls below this; 0 = never
    dead_code_rate: float = 0.0  # also restart codes below this fraction of the mean EMA count (expected rate); 0 = off
    codebook_dim: int | None = None  # if set, search in this smaller space through learned in/out projections
    cosine: bool = False  # l2-normalise inputs and codes: nearest by cosine similarity
    chunk_size: int | None = None  # vectors per search block; None = chosen from search_budget_mb
    search_budget_mb: float | None = None  # memory for one block of scores; None = cache-sized on CPU, large on CUDA

    def __post_init__(self) -> None:
        self._check_types()
        for name, allowed in CONFIG_RANGES.items():  # NaN and infinities lie outside every range
            value = getattr(self, name)
            if not (value is None and name in OPTIONAL) and not allowed.holds(value):
                hint = CONFIG_NOTES.get(name, "")
                kind = "a whole number" if name in WHOLE else "a finite number"
                raise QuantizerError(f"VQConfig.{name} must be {kind} {allowed}{' or None' if name in OPTIONAL else ''}"
                                     f"{hint}, got {value!r}")

    def _check_types(self) -> None:
        """Each field of the type it takes; numpy's numbers and bools are held as Python's (what a checkpoint's
        JSON saves)."""
        for name in CONFIG_RANGES:
            value = getattr(self, name)
            if value is None and name in OPTIONAL:
                continue
            kinds = (int, np.integer) if name in WHOLE else (int, float, np.integer, np.floating)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
                raise TypeError(f"VQConfig.{name} must be a {'whole number' if name in WHOLE else 'number'}, "
                                f"got {value!r} ({type(value).__name__})")
            setattr(self, name, int(value) if name in WHOLE else value if isinstance(value, int) else float(value))
        for name in FLAGS:
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):  # "false" would be true
                raise TypeError(f"VQConfig.{name} must be True or False, got {value!r} ({type(value).__name__})")
            setattr(self, name, bool(value))

    @property
    def lookup_dim(self) -> int:
        """d: the size of the space the codes live in."""
        return self.codebook_dim or self.dim

    def same_codebook(self, other: VQConfig) -> bool:
        """Whether ``other``'s codebook (and projections) can be loaded into a quantizer with this config.

        True when the fields that give the state its shapes and meaning agree (input size,
        K, lookup size, cosine or not); the training knobs (EMA decay, commitment weight,
        dead-code restarts, k-means initialisation, search blocks) may differ.
        """
        return (self.dim, self.codebook_size, self.codebook_dim, self.cosine) == (
            other.dim, other.codebook_size, other.codebook_dim, other.cosine)

