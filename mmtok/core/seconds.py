"""``chunk_seconds``: the length of the pieces a clip or a video is cut into; one check for every tokenizer
that takes it. And ``max_seconds``, the longest file a reader decodes (:func:`check_max_seconds`).

A number of seconds > 0 (an int or a float, numpy's too, not a bool) of at most :data:`MAX_CHUNK_SECONDS`,
so that it times any frame or sample rate up to 1e6 stays finite; NaN, zero, negative numbers and
others are refused with an error that names ``chunk_seconds``.

>>> check_chunk_seconds(np.float32(0.5), error=ValueError, whole="None: one piece")
0.5
>>> check_chunk_seconds(1e305, error=ValueError, whole="None: one piece")
Traceback (most recent call last):
...
ValueError: chunk_seconds must be at most 1.8e+302 seconds (None: one piece), got 1e+305
"""

from __future__ import annotations

import math
import sys

import numpy as np

__all__ = ["MAX_CHUNK_SECONDS", "check_chunk_seconds", "check_max_seconds"]

MAX_CHUNK_SECONDS = sys.float_info.max / 1e6  # chunk_seconds times any frame or sample rate up to 1e6 stays finite


def check_chunk_seconds(value: object, *, error: type[Exception], whole: str, infinite: bool = False) -> float | None:
    """``value`` as a float (None stays None); else ``error`` naming ``chunk_seconds``, whose message says
    ``whole``: what None does (and inf, which ``infinite`` lets through: one piece, as None)."""
    if value is None:
        return None
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    try:
        seconds = float(value) if number else math.nan  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        seconds = math.inf
    if not seconds > 0:
        raise error(f"chunk_seconds must be a number of seconds > 0 ({whole}), got {value!r}")
    if infinite and isinstance(value, (float, np.floating)) and math.isinf(value):
        return math.inf
    if seconds > MAX_CHUNK_SECONDS:
        raise error(f"chunk_seconds must be at most {MAX_CHUNK_SECONDS:.1e} seconds ({whole}), got {str(value)[:40]}")
    return seconds


def check_max_seconds(value: object) -> float | None:
    """``max_seconds`` of the media readers as a float > 0 (None: no limit); anything else, a string or a bool
    too, a ``ValueError`` naming it.

    >>> check_max_seconds(np.int64(5)), check_max_seconds(None)
    (5.0, None)
    >>> check_max_seconds("5")
    Traceback (most recent call last):
    ...
    ValueError: max_seconds must be a number > 0 or None, got '5'
    """
    if value is None:
        return None
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    try:
        seconds = float(value) if number else math.nan  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float: no limit in practice
        seconds = math.inf
    if not seconds > 0:
        raise ValueError(f"max_seconds must be a number > 0 or None, got {value!r}")
    return seconds
