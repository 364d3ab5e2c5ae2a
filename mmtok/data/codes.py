"""Code files: one medium's codes and what made them, in one ``.npz`` that numpy reads without
pickle. ``mmtok encode`` writes them, ``mmtok decode`` reads them and ``mmtok info`` describes them.

A code file holds ``codes`` (int64; ``[h, w]`` for an image, ``[n]`` for a sound, ``[T, h, w]``
for a video), a video's soundtrack as ``audio_codes`` ``[n]`` when it has one, and ``meta``, a
JSON string: ``kind`` (``"image"``, ``"audio"`` or ``"video"``), the model's name,
``model_version`` and vocabulary ``fingerprint``, its ``codebook_size``, the ``source`` file's
name; for a sound ``sample_rate``, ``tokens_per_second`` and ``seconds``; for a video ``fps``
and, with sound, ``audio`` (the soundtrack's model, fingerprint, rates and length); and the file's
``format_version`` (:data:`CODES_VERSION`; a file without one is read as this version's, one a newer
mmtok wrote is refused, saying to upgrade). Files are
written atomically: a killed write leaves any older file whole. Reading one checks what decoding
relies on: a video's ``fps`` is a number above 0, and its soundtrack holds as many codes as its
recorded length at its rate (``seconds`` is written rounded to the millisecond). The sound may be
longer or shorter than the frames: a file's audio and video streams end where each says.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.png.npz"
>>> _ = save_codes(p, np.arange(6).reshape(2, 3), {"kind": "image", "fingerprint": "ab12"})
>>> f = load_codes(p)
>>> f.codes.tolist(), f.meta["kind"], f.audio_codes
([[0, 1, 2], [3, 4, 5]], 'image', None)
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from mmtok.core.errors import MissingFileError, UsageError
from mmtok.core.files import write_atomic
from mmtok.core.format_version import NewerFileError, is_newer, newer_message

__all__ = ["CODES_SUFFIX", "CODES_VERSION", "CODE_KINDS", "CodeFile", "atomic_file", "load_codes", "save_codes"]

CODES_SUFFIX = ".npz"
CODES_VERSION = 1  # the newest format of a code file this mmtok writes and reads (its meta's "format_version")
MEMBERS = ("codes", "meta")  # the arrays every code file holds
CODE_KINDS = ("image", "audio", "video")
CODE_DIMS = {"image": 2, "audio": 1, "video": 3}  # axes of each kind's codes: [h, w], [n], [t, h, w]
SECONDS_ROUNDING = 5e-4  # how far a recorded length in seconds may be from its codes' (encode rounds to the ms)


class CodeFile(NamedTuple):
    """A code file's contents: the codes, what made them, and a video's soundtrack codes (or None)."""

    codes: np.ndarray
    meta: dict[str, Any]
    audio_codes: np.ndarray | None = None


def save_codes(path: str | os.PathLike[str], codes: np.ndarray, meta: dict[str, Any],
               audio_codes: np.ndarray | None = None) -> Path:
    """Write ``codes``, ``meta`` (with this format's ``format_version``) and, for a video with sound,
    ``audio_codes`` to ``path`` atomically."""
    meta = {**meta, "format_version": CODES_VERSION}
    arrays = {"codes": np.ascontiguousarray(codes, dtype=np.int64), "meta": np.array(json.dumps(meta))}
    if audio_codes is not None:
        arrays["audio_codes"] = np.ascontiguousarray(audio_codes, dtype=np.int64)
    return atomic_file(Path(path), lambda f: np.savez(f, **arrays))


def load_codes(path: str | os.PathLike[str], *, check_video: bool = True) -> CodeFile:
    """A code file's :class:`CodeFile`; a :class:`UsageError` naming ``path`` if it is not one or is damaged, or if it is a video's
    whose ``fps`` or soundtrack decoding cannot rely on (``check_video=False`` leaves that out: whether a file is a
    code file at all, as ``mmtok encode`` asks before it replaces one); a :class:`MissingFileError` (a
    ``FileNotFoundError`` too) if there is nothing there."""
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
        if not magic and Path(path).is_file():  # what a write or copy that never finished leaves
            raise UsageError(f"{path}: empty (0 bytes), not a code file: a write or copy that never finished; encode "
                             f"the original again (mmtok encode FILE --out DIR replaces DIR/FILE{CODES_SUFFIX})")
        if magic != b"PK":  # np.load would take any other bytes for a pickle, and say so
            raise ValueError("not an .npz archive")
        with np.load(path, allow_pickle=False) as z:
            if missing := [name for name in MEMBERS if name not in z.files]:
                raise UsageError(_lacking(path, missing, z.files))
            codes, meta = z["codes"], json.loads(str(z["meta"]))
            audio_codes = z["audio_codes"] if "audio_codes" in z.files else None
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no such file") from None
    except UsageError:
        raise
    except (zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise UsageError(f"{path}: damaged: {e or type(e).__name__}; {_encode_again(path)}") from e
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not a code file from 'mmtok encode' ({type(e).__name__}: {e})") from e
    if isinstance(meta, dict) and is_newer(version := meta.get("format_version"), CODES_VERSION):
        raise NewerFileError(newer_message(path, version, CODES_VERSION, " (it is left as it is)"))
    if not isinstance(meta, dict) or meta.get("kind") not in CODE_KINDS:
        raise UsageError(f"{path}: its meta names no kind ({', '.join(CODE_KINDS)}): {meta!r}")
    dims = CODE_DIMS[meta["kind"]]
    for name, arr, want in (("codes", codes, dims), ("audio_codes", audio_codes, 1)):
        if arr is None:
            continue
        if not np.issubdtype(arr.dtype, np.integer):
            raise UsageError(f"{path}: its {name} are {arr.dtype}, not integers")
        if arr.ndim != want:
            raise UsageError(f"{path}: its {name} have shape {arr.shape}, where {meta['kind'] if name == 'codes' else 'audio'} "
                             f"codes have {want} dimension(s)")
    if check_video and meta["kind"] == "video":
        _check_video(path, meta, audio_codes)
    return CodeFile(codes, meta, audio_codes)


def _encode_again(path: str | os.PathLike[str]) -> str:
    """What to do about a damaged code file: make it again from the file it was encoded from."""
    path = Path(path)
    source = path.name.removesuffix(CODES_SUFFIX) if path.name.endswith(CODES_SUFFIX) else "FILE"
    return f"delete it and encode the original again (mmtok encode {source} --out {path.parent})"


def _lacking(path: str | os.PathLike[str], missing: list[str], found: list[str]) -> str:
    """Why an .npz without the arrays ``missing`` (it holds ``found``) is refused: damage, when its entries look like
    a code file's names with bytes changed, else another program's archive."""
    held = ", ".join(repr(name) for name in found) or "nothing"
    if len(found) >= len(MEMBERS) or not found:  # as many entries as a code file: their names were changed
        return (f"{path}: damaged: its archive holds {held}, not the {' and '.join(MEMBERS)} of a code file (its "
                f"bytes were changed or cut); {_encode_again(path)}")
    return f"{path}: not a code file from 'mmtok encode': it holds {held}, not {' and '.join(MEMBERS)}"


def _above_zero(value: Any) -> bool:
    """Whether ``value`` is a finite number above 0 (a bool is no number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _check_video(path: Path, meta: dict[str, Any], audio_codes: np.ndarray | None) -> None:
    """A :class:`UsageError` naming ``path`` when a video code file's ``fps`` is not a number above 0, or its
    soundtrack's codes are not as many as its recorded ``seconds`` at its ``tokens_per_second``."""
    if not _above_zero(meta.get("fps")):
        raise UsageError(f"{path}: its meta gives fps {meta.get('fps')!r}, not a number of frames per second above 0; "
                         "encode the video again")
    if audio_codes is None:
        return
    sound = meta.get("audio")
    rate, seconds = (sound.get("tokens_per_second"), sound.get("seconds")) if isinstance(sound, dict) else (None, None)
    if not _above_zero(rate) or not (_above_zero(seconds) or seconds == 0):
        raise UsageError(f"{path}: it holds soundtrack codes, but its meta gives no tokens_per_second and seconds of "
                         "them (its 'audio' entry); encode the video again")
    if abs(audio_codes.size - seconds * rate) > SECONDS_ROUNDING * rate + 1e-6:
        raise UsageError(f"{path}: its soundtrack holds {audio_codes.size} codes ({audio_codes.size / rate:g} s at "
                         f"{rate:g} tokens per second), but its meta says {seconds:g} s; encode the video again")


def atomic_file(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> Path:
    """``write(file)`` into memory, then the bytes to ``path`` atomically
    (:func:`~mmtok.core.files.write_atomic`), making its folder first."""
    buf, path = io.BytesIO(), Path(path)
    write(buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buf.getvalue())
    return path
