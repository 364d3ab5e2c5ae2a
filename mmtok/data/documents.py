"""Where documents come from: a corpus file or folder -> numbered documents -> segments.

Two layouts are read:

* JSONL, one ``{"segments": [...]}`` document per line (blank lines are not
  documents); media paths are relative to the file's folder.
* The OBELICS layout: rows with parallel ``texts`` and ``images`` lists, at each
  position one of them set and the other null, from a ``.parquet`` file or a
  folder written by ``datasets.Dataset.save_to_disk``. An image is a path
  (relative to that file's folder, or to the ``datasets`` folder), the encoded
  bytes of a file, or a ``{"bytes", "path"}`` struct as ``datasets.Image`` stores it.

Media paths must stay inside the corpus's folder (checked on the resolved path,
so ``..`` and symlinks that lead out are caught); a document naming one outside
is skipped with the reason, unless the source says ``allow_outside``. A JSONL
file may start with a UTF-8 byte order mark. :func:`media_kinds` pre-scans a
corpus for the media it holds (which tokenizers a run needs).

A document is numbered by its line (JSONL) or row (1-based): the number shards
record as ``doc_lines`` and exports as ``doc``. The OBELICS readers need
``pyarrow`` (``pip install 'mmtok[hf]'``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmtok.core.errors import CorpusError
from mmtok.stream.interleave import VIDEO_OPTIONS, Interleaver

__all__ = ["MEDIA_KEYS", "Source", "media_kinds", "open_source", "segments", "strip_bom", "utf8_reason"]

MEDIA_KEYS = ("image", "audio", "video")
ROW_BATCH = 256  # rows read from a table at a time
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark some editors write at the start of a file


def strip_bom(raw: bytes, number: int) -> bytes:
    """Line ``number``'s bytes without a leading UTF-8 byte order mark (only line 1 can have one)."""
    return raw[len(BOM):] if number == 1 and raw.startswith(BOM) else raw


@dataclass(frozen=True)
class Source:
    """A corpus on disk: a JSONL file, an OBELICS ``.parquet`` file or a ``datasets`` folder."""

    path: Path
    layout: str  # "jsonl" | "parquet" | "datasets"
    allow_outside: bool = False  # may media paths lead outside the corpus's folder?

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def base(self) -> Path:
        """The folder relative media paths resolve against."""
        return self.path.resolve() if self.layout == "datasets" else self.path.resolve().parent

    def files(self) -> list[Path]:
        """The files whose bytes make up the corpus, in a fixed order."""
        if self.layout != "datasets":
            return [self.path]
        return sorted(p for p in self.path.rglob("*") if p.is_file() and p.suffix == ".arrow")

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files())

    def sha256(self) -> str:
        h = hashlib.sha256()
        for p in self.files():
            with open(p, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    h.update(block)
        return h.hexdigest()

    def items(self, first: int = 1) -> Iterator[tuple[int, Any]]:
        """``(number, document)`` from number ``first`` on: raw line bytes (JSONL) or a row dict."""
        if self.layout == "jsonl":
            with open(self.path, "rb") as f:
                for number, raw in enumerate(f, start=1):
                    if number >= first and raw.strip():
                        yield number, strip_bom(raw, number)
            return
        number = 0
        for batch in self._batches():
            rows = batch.to_pylist()
            for row in rows:
                number += 1
                if number >= first:
                    yield number, {"texts": row.get("texts"), "images": row.get("images")}

    def _batches(self) -> Iterator[Any]:
        try:
            import pyarrow.parquet as pq
            from pyarrow import ipc
        except ImportError:
            raise CorpusError(f"reading {self.path} needs pyarrow; pip install 'mmtok[hf]'") from None
        columns = ["texts", "images"]
        if self.layout == "parquet":
            yield from pq.ParquetFile(self.path).iter_batches(batch_size=ROW_BATCH, columns=columns)
            return
        for p in self.files():
            with open(p, "rb") as f:
                reader = ipc.open_stream(f)
                for batch in reader:
                    yield batch.select(columns)


def open_source(path: str | os.PathLike[str], *, allow_outside: bool = False) -> Source:
    """The :class:`Source` at ``path``, its layout told from the suffix or the folder's contents."""
    path = Path(path)
    if path.is_dir():
        if not (path / "dataset_info.json").is_file() and not (path / "state.json").is_file():
            raise CorpusError(f"{path} is a folder but not a datasets folder (no state.json); "
                              "pass a .jsonl, a .parquet or a folder from Dataset.save_to_disk")
        return Source(path, "datasets", allow_outside)
    if not path.is_file():
        raise CorpusError(f"no corpus at {path}")
    if path.suffix.lower() == ".parquet":
        return Source(path, "parquet", allow_outside)
    return Source(path, "jsonl", allow_outside)


# --------------------------------------------------------------------------- the pre-scan

_MEDIA_MARKS = tuple(f'"{key}"'.encode() for key in MEDIA_KEYS)


def media_kinds(source: Source) -> tuple[set[str], int]:
    """The media keys the corpus's documents use (every line, not one part's) and how many documents it has.

    A video segment brings ``"audio"`` too when it asks for its soundtrack or,
    without ``"soundtrack"``, when its file has an audio stream. Lines that are
    not valid documents are left for the run to skip.
    """
    kinds: set[str] = set()
    docs = 0
    for _, doc in source.items():
        docs += 1
        if isinstance(doc, dict):
            if any(image is not None for image in doc.get("images") or []):
                kinds.add("image")
        elif any(mark in doc for mark in _MEDIA_MARKS):  # parse only the lines that may name media
            kinds |= _line_kinds(doc, source.base, probe="audio" not in kinds)
    return kinds, docs


def _line_kinds(raw: bytes, base: Path, probe: bool) -> set[str]:
    try:
        segs = json.loads(raw).get("segments")
    except (ValueError, AttributeError):
        return set()
    kinds: set[str] = set()
    for seg in segs if isinstance(segs, list) else []:
        for key in MEDIA_KEYS:
            if isinstance(seg, dict) and isinstance(seg.get(key), str):
                kinds.add(key)
                if key == "video" and seg.get("soundtrack") is not False and (
                        seg.get("soundtrack") is True or (probe and _has_sound(base / seg[key]))):
                    kinds.add("audio")
                    probe = False
    return kinds


def _has_sound(path: Path) -> bool:
    """Whether a video file has an audio stream (reads its header only; False when it cannot be opened)."""
    try:
        import av

        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except Exception:  # missing PyAV, a missing or unreadable file: the run reports those
        return False


# --------------------------------------------------------------------------- one document


def utf8_reason(raw: bytes) -> str:
    """Why ``raw`` is not UTF-8 (``""`` when it is)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"line is not valid UTF-8 ({e.reason} at byte {e.start})"
    return ""


def segments(doc: Any, base: Path, il: Interleaver, line: int, *, allow_outside: bool = False) -> list[Any]:
    """The segments of one document (raw JSONL bytes, its text, or an OBELICS row); ValueError says what is wrong.

    Media without a tokenizer for it is a mistake in the call, not in the document:
    that raises :class:`~mmtok.core.errors.CorpusError`. A media path that leads
    outside ``base`` is a ValueError unless ``allow_outside``.
    """
    where = _Where(base, allow_outside)
    if isinstance(doc, dict):
        return _row_segments(doc, where, il, line)
    if isinstance(doc, bytes):
        doc = strip_bom(doc, line)
        reason = utf8_reason(doc)
        if reason:
            raise ValueError(reason)
        doc = doc.decode("utf-8")
    try:
        parsed = json.loads(doc)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON ({e.msg} at column {e.colno})") from None
    segs = parsed.get("segments") if isinstance(parsed, dict) else None
    if not isinstance(segs, list):
        raise ValueError('expected an object with a "segments" list')
    return [_segment(seg, k, where, il, line) for k, seg in enumerate(segs)]


@dataclass(frozen=True)
class _Where:
    """Where media paths resolve (``base``) and whether they may lead outside it."""

    base: Path
    allow_outside: bool

    def media(self, value: str, what: str) -> Path:
        """The file ``value`` names; ValueError when it is missing or (unless allowed) outside ``base``."""
        path = self.base / value
        if not self.allow_outside:
            resolved, root = path.resolve(), self.base.resolve()
            if resolved != root and root not in resolved.parents:
                raise ValueError(f"{what} {value!r} is outside the corpus folder {root} "
                                 "(pass --allow-outside, allow_outside=True, to read it)")
        if not path.is_file():
            raise ValueError(f"{what} {value!r} does not exist")
        return path


def _segment(seg: Any, k: int, where: _Where, il: Interleaver, line: int) -> Any:
    if isinstance(seg, str):
        return {"text": seg}
    keys = [key for key in ("text", *MEDIA_KEYS) if isinstance(seg, dict) and key in seg]
    opts = {key: val for key, val in seg.items() if key not in keys} if len(keys) == 1 else {}
    if len(keys) != 1 or (opts and keys != ["video"]) or set(opts) - set(VIDEO_OPTIONS):
        raise ValueError(f'segment {k} must be {{"text": ...}}, {{"image"|"audio": path}} or '
                         f'{{"video": path}} with optional {" and ".join(VIDEO_OPTIONS)}')
    key, value = keys[0], seg[keys[0]]
    if not isinstance(value, str):
        raise ValueError(f"segment {k}: {key} must be a string, got {type(value).__name__}")
    if key == "text":
        return {"text": value}
    _need(il, key, k, line)
    path = where.media(value, f"segment {k}: {key} file")
    return {key: str(path), **opts}


def _need(il: Interleaver, key: str, k: int, line: int) -> None:
    if getattr(il, key) is None:
        raise CorpusError(f"line {line}: segment {k} is an {key} but no {key} tokenizer "
                          f"was given; pass --{key} MODEL (TokenizerSpec({key}=...))")


def _row_segments(row: dict[str, Any], where: _Where, il: Interleaver, line: int) -> list[Any]:
    """An OBELICS row: at each position a text or an image (the other null); both null is skipped."""
    texts, images = row.get("texts"), row.get("images")
    if not isinstance(texts, list) or not isinstance(images, list) or len(texts) != len(images):
        raise ValueError("expected parallel lists texts and images of one length "
                         f"(got {type(texts).__name__} and {type(images).__name__})")
    out: list[Any] = []
    for k, (text, image) in enumerate(zip(texts, images, strict=True)):
        if text is not None and image is not None:
            raise ValueError(f"position {k} has both a text and an image; one of them must be null")
        if text is not None:
            if not isinstance(text, str):
                raise ValueError(f"position {k}: text must be a string, got {type(text).__name__}")
            out.append({"text": text})
        elif image is not None:
            _need(il, "image", k, line)
            out.append(_row_image(image, k, where))
    return out


def _row_image(image: Any, k: int, where: _Where) -> Any:
    """A PIL image (from bytes) or a path, from an OBELICS image cell."""
    if isinstance(image, dict):  # datasets.Image's struct
        image = image.get("bytes") or image.get("path")
    if isinstance(image, (bytes, bytearray)):
        from PIL import Image, UnidentifiedImageError

        try:
            pic = Image.open(io.BytesIO(image))
            pic.load()
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"position {k}: the image bytes are not a readable image ({e})") from None
        return pic
    if isinstance(image, str):
        return {"image": str(where.media(image, f"position {k}: image file"))}
    raise ValueError(f"position {k}: an image is a path, bytes or null, got {type(image).__name__}")
