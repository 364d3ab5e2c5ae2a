"""The learning-rate schedule every trainer uses: linear warmup, then cosine decay to a floor.

>>> warmup_cosine(0, peak=1.0, warmup=10, total=110, floor=0.1)
0.1
>>> warmup_cosine(9, peak=1.0, warmup=10, total=110, floor=0.1)
1.0
>>> round(warmup_cosine(60, peak=1.0, warmup=10, total=110, floor=0.1), 3)
0.55
>>> warmup_cosine(500, peak=1.0, warmup=10, total=110, floor=0.1)
0.1
"""

from __future__ import annotations

import math

__all__ = ["warmup_cosine"]


def warmup_cosine(step: int, *, peak: float, warmup: int, total: int, floor: float = 0.0) -> float:
    """The rate at 0-based ``step``: ``peak·(step+1)/warmup`` during warmup, then a half cosine
    from ``peak`` down to ``floor`` at ``total`` steps, and ``floor`` after."""
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * frac))
