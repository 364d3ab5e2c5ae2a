"""The size rules of images, plain numbers: the size policies and the working size of a very large image.

:mod:`~mmtok.image.sizing` applies them to tensors; a plan (:mod:`mmtok.context`) counts a frame's tokens
with them, no tensors needed.

>>> working_size(7680, 4320)
(4096, 2304)
"""

from __future__ import annotations

__all__ = ["MAX_SIDE", "SIZE_POLICIES", "working_size"]

SIZE_POLICIES = ("crop", "pad", "native")  # see apply_size_policy
MAX_SIDE = 4096  # working size: longer images are reduced to this many pixels on the long side


def working_size(width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` of an image at its working size: as it is up to ``MAX_SIDE`` on the long side,
    else scaled so the long side is ``MAX_SIDE`` (aspect kept, each side at least 1).

    >>> working_size(7680, 4320), working_size(640, 480)
    ((4096, 2304), (640, 480))
    """
    if max(width, height) <= MAX_SIDE:
        return width, height
    s = MAX_SIDE / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))
