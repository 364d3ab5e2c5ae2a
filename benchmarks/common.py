"""What every benchmark script shares: one JSON object per measurement on standard output.

    from common import emit
    emit({"bench": "vq_encode", "seconds": 0.47})   # or emit(bench="vq_encode", seconds=0.47)

Values that JSON cannot hold as numbers (NaN, infinity) are written as null, so
every line parses with any JSON reader.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["emit"]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def emit(row: Mapping[str, Any] | None = None, /, **fields: Any) -> None:
    """Print ``row`` (and/or keyword ``fields``) as one JSON line and flush it at once."""
    record = {**(row or {}), **fields}
    print(json.dumps(_clean(record)), file=sys.stdout, flush=True)
