"""The learning-rate schedule every trainer uses: linear warmup, then cosine decay to a floor.

The first step runs at ``peak/warmup``, the last warmup step at ``peak``, and the last step of the run (0-based
``total - 1``) at the floor:

>>> warmup_cosine(0, peak=1.0, warmup=10, total=110, floor=0.1)
0.1
>>> warmup_cosine(9, peak=1.0, warmup=10, total=110, floor=0.1)
1.0
>>> round(warmup_cosine(59, peak=1.0, warmup=10, total=110, floor=0.1), 3)
0.55
>>> warmup_cosine(109, peak=1.0, warmup=10, total=110, floor=0.1), warmup_cosine(500, peak=1.0, warmup=10, total=110, floor=0.1)
(0.1, 0.1)
"""

from __future__ import annotations

import math

__all__ = ["warmup_cosine", "warmup_note"]


def warmup_cosine(step: int, *, peak: float, warmup: int, total: int, floor: float = 0.0) -> float:
    """The rate at 0-based ``step``: ``peak·(step+1)/warmup`` during warmup (``peak`` at its last step), then a
    half cosine down from ``peak`` that reaches ``floor`` at the run's last step, ``total - 1``, and ``floor``
    after; with no warmup the first step runs at ``peak``. A ``warmup`` of ``total`` or more never decays.

    >>> [round(warmup_cosine(s, peak=1.0, warmup=0, total=3), 3) for s in range(3)], warmup_cosine(0, peak=1.0, warmup=0, total=1)
    ([1.0, 0.5, 0.0], 1.0)
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    if warmup == 0:  # no warmup: the first step at the peak
        frac = min(1.0, step / max(1, total - 1))
    else:  # the peak was the last warmup step's
        frac = min(1.0, (step + 1 - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * frac))


def warmup_note(warmup: int, total: int, *, who: str) -> str | None:
    """The line a trainer prints when ``--warmup`` is not below ``--steps``: the rate then climbs for the whole run
    and never decays (None when it is below).

    >>> warmup_note(50, 30, who="mmtok train")
    'mmtok train: --warmup 50 is not below --steps 30: the learning rate climbs for the whole run, its last step at 60% of --lr, and never decays to its floor; give a --warmup below --steps'
    >>> warmup_note(20, 30, who="mmtok train") is None
    True
    """
    if warmup < total:
        return None
    return (f"{who}: --warmup {warmup} is not below --steps {total}: the learning rate climbs for the whole run, "
            f"its last step at {min(total, warmup) / max(1, warmup):.0%} of --lr, and never decays to its floor; "
            "give a --warmup below --steps")
