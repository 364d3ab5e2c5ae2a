"""What every benchmark script shares: one JSON object per measurement on standard output.

    from common import emit
    emit({"bench": "vq_encode", "seconds": 0.47})   # or emit(bench="vq_encode", seconds=0.47)

Values that JSON cannot hold as numbers (NaN, infinity) are written as null, so
every line parses with any JSON reader.

A peer measured side by side (EnCodec, GPT-2, VQGAN) that is not installed is
checked once at startup with :func:`check_peer`, which prints one row saying so;
the benchmark then runs without that side:

    if not check_peer("speed", "encodec"):   # {"bench": "speed", "peer": "encodec", "skipped": "not installed: ..."}
        skip.add("encodec")
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["PEER_INSTALL", "check_peer", "emit", "json_line", "missing_peer", "ratio"]

PEER_INSTALL = "pip install mmtok[bench]"  # what installs every peer the benchmarks compare with


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def json_line(row: Mapping[str, Any]) -> str:
    """``row`` as one line of JSON, NaN and infinity written as null (the line :func:`emit` prints).

    >>> json_line({"bench": "x", "seconds": float("nan"), "sizes": [1.5, float("inf")]})
    '{"bench": "x", "seconds": null, "sizes": [1.5, null]}'
    """
    return json.dumps(_clean(row))


def emit(row: Mapping[str, Any] | None = None, /, **fields: Any) -> None:
    """Print ``row`` (and/or keyword ``fields``) as one JSON line and flush it at once."""
    print(json_line({**(row or {}), **fields}), file=sys.stdout, flush=True)


def missing_peer(module: str) -> str | None:
    """Why the peer package ``module`` cannot be used here, or None when it imports.

    >>> missing_peer("json") is None
    True
    >>> missing_peer("no_such_peer_package")
    'not installed: pip install mmtok[bench]'
    """
    try:
        if importlib.util.find_spec(module) is None:
            return f"not installed: {PEER_INSTALL}"
        importlib.import_module(module)
    except Exception as e:  # a stub, a broken or half-installed package: its side is skipped, said why
        return f"cannot be imported ({type(e).__name__}: {e}): {PEER_INSTALL}"
    return None


def check_peer(bench: str, module: str) -> bool:
    """True when ``module`` imports; else print ``{"bench", "peer", "skipped"}`` and return False."""
    why = missing_peer(module)
    if why is not None:
        emit(bench=bench, peer=module, skipped=why)
    return why is None


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` to one decimal, or None when either side was not measured.

    >>> ratio(3.0, 2.0), ratio(None, 2.0), ratio(3.0, None)
    (1.5, None, None)
    """
    return None if a is None or b is None else round(a / b, 1)
