"""Code files: one medium's codes and what made them, in one ``.npz`` that numpy reads without
pickle. ``mmtok encode`` writes them, ``mmtok decode`` reads them and ``mmtok info`` describes them.

A code file holds two arrays: ``codes`` (int64; ``[h, w]`` for an image, ``[n]`` for a sound)
and ``meta``, a JSON string: ``kind`` (``"image"`` or ``"audio"``), the model's name,
``model_version`` and vocabulary ``fingerprint``, its ``codebook_size``, the ``source`` file's
name and, for a sound, ``sample_rate``, ``tokens_per_second`` and ``seconds``. Files are
written atomically: a killed write leaves any older file whole.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.png.npz"
>>> _ = save_codes(p, np.arange(6).reshape(2, 3), {"kind": "image", "fingerprint": "ab12"})
>>> codes, meta = load_codes(p)
>>> codes.tolist(), meta["kind"]
([[0, 1, 2], [3, 4, 5]], 'image')
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from mmtok.core.errors import UsageError
from mmtok.data.shards import write_atomic

__all__ = ["CODES_SUFFIX", "CODE_KINDS", "atomic_file", "load_codes", "save_codes"]

CODES_SUFFIX = ".npz"
CODE_KINDS = ("image", "audio")


def save_codes(path: Path, codes: np.ndarray, meta: dict[str, Any]) -> Path:
    """Write ``codes`` and ``meta`` to ``path`` atomically."""
    array = np.ascontiguousarray(codes, dtype=np.int64)
    return atomic_file(path, lambda f: np.savez(f, codes=array, meta=np.array(json.dumps(meta))))


def load_codes(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """``(codes, meta)`` of a code file; a :class:`UsageError` naming ``path`` if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            codes, meta = z["codes"], json.loads(str(z["meta"]))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not a code file from 'mmtok encode' ({type(e).__name__}: {e})") from e
    if not isinstance(meta, dict) or meta.get("kind") not in CODE_KINDS:
        raise UsageError(f"{path}: its meta names no kind ({' or '.join(CODE_KINDS)}): {meta!r}")
    return codes, meta


def atomic_file(path: Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """``write(file)`` into memory, then the bytes to ``path`` atomically
    (:func:`~mmtok.data.shards.write_atomic`), making its folder first."""
    buf = io.BytesIO()
    write(buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buf.getvalue())
    return path
