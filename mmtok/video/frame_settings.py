"""What frames are read as: the rate they are sampled at and the size they are brought to (``fps`` and ``size``,
checked where they are given), and the width and height that size gives a frame.

>>> frame_size((90, 160)), target_size(640, 360, ShrinkTo(256)), target_size(192, 144, ShrinkTo(256))
((90, 160), (455, 256), (192, 144))
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction  # noqa: F401 - named in a doctest

import numpy as np

__all__ = ["ShrinkTo", "frame_size", "target_size", "video_fps"]


class ShrinkTo(int):
    """A ``size`` (shorter side) that frames are only shrunk to: shorter ones keep their size."""


def target_size(width: int, height: int, size: int | tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) the frames are converted to: ``size`` is the shorter side, or ``(H, W)``."""
    if size is None or (isinstance(size, ShrinkTo) and min(width, height) <= size):
        return width, height
    if isinstance(size, int):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        s = size / min(width, height)
        return max(1, round(width * s)), max(1, round(height * s))
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"size (H, W) must be positive, got {size}")
    return w, h


def video_fps(value: object) -> float:
    """``fps`` as a float: a finite number > 0 of frames per second, of any real type (a ``Fraction`` such as
    PyAV's ``stream.average_rate``, numpy's numbers), not a bool; anything else a ``ValueError`` naming it.

    >>> video_fps(Fraction(30000, 1001)), video_fps(np.int64(2))
    (29.97002997002997, 2.0)
    """
    number = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    try:
        fps = float(value) if number else math.nan  # type: ignore[arg-type]
    except OverflowError:
        fps = math.inf
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number of frames per second, got {value!r}")
    return fps


def frame_size(value: object) -> int | tuple[int, int] | None:
    """``size`` of the frames: None (as decoded), a shorter side in pixels (an integer >= 1, numpy's too) or
    ``(H, W)``; anything else a ``ValueError`` naming it, so a wrong value is refused where it is given.

    >>> frame_size(np.int64(128)), frame_size([90, 160]), frame_size(None)
    (128, (90, 160), None)
    """
    def whole(v: object) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) and int(v) >= 1  # type: ignore[call-overload]

    if value is None or isinstance(value, ShrinkTo):
        return value
    if whole(value):
        return int(value)  # type: ignore[call-overload]
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(whole(v) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"size must be None, the shorter side in pixels (an integer >= 1) or (H, W), got {value!r}")
