"""Where documents come from: a corpus file or folder -> numbered documents -> segments.

Two layouts are read:

* JSONL, one ``{"segments": [...]}`` document per line (blank lines are not
  documents); media paths are relative to the file's folder.
* The OBELICS layout: rows with parallel ``texts`` and ``images`` lists, at each
  position one of them set and the other null, from a ``.parquet`` file or a
  folder written by ``datasets.Dataset.save_to_disk`` (only the ``.arrow`` files its
  ``state.json`` lists: ``.map()`` and ``.filter()`` leave ``cache-*.arrow`` files
  beside them that are not rows of the dataset). An image is a path
  (relative to that file's folder, or to the ``datasets`` folder), the encoded
  bytes of a file, or a ``{"bytes", "path"}`` struct as ``datasets.Image`` stores it.

Media paths must stay inside the corpus's folder (checked on the resolved path,
so ``..`` and symlinks that lead out are caught); a document naming one outside
is skipped with the reason, unless the source says ``allow_outside``. A JSONL
file may start with a UTF-8 byte order mark, and so may any of its lines (two
files joined); one saved as UTF-16 or UTF-32 is refused, with a byte order mark or clearly without
one (:func:`~mmtok.stream.text_files.wide_text`), and so is a compressed file (``.jsonl.gz``: decompress it first),
a JSON array of documents and JSON spread over several lines. :func:`media_kinds`
pre-scans a corpus for the media it holds (which tokenizers a run needs).

A document is numbered by its line (JSONL) or row (1-based): the number shards
record as ``doc_lines`` and exports as ``doc``. The OBELICS readers need
``pyarrow`` (``pip install 'mmtok[hf]'``).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmtok.core.errors import CorpusError, DocumentError
from mmtok.core.suffixes import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from mmtok.core.warning_filters import warnings_ignored
from mmtok.data.digest import files_sha256
from mmtok.data.media_paths import URL, MediaPaths
from mmtok.data.obelics_tables import data_files, table_batches
from mmtok.image.io import PIXELS_ENV, bomb_message, pillow_limit, pixel_limit
from mmtok.stream.interleave import Interleaver, Stream
from mmtok.stream.segments import segment_shape
from mmtok.stream.text_files import WIDE_SNIFF_BYTES, wide_text
from mmtok.stream.vocab import MEDIA

__all__ = ["NO_SEGMENTS", "Source", "document_stream", "empty", "in_part", "jsonl_documents", "line_text", "media_kinds",
           "open_source", "segments", "strip_bom", "utf8_reason"]

BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark some editors write at the start of a file
NO_SEGMENTS = "no segments"  # why a document with nothing in it is skipped


def strip_bom(raw: bytes, number: int) -> bytes:
    """Line ``number``'s bytes without a leading UTF-8 byte order mark: line 1's, or one where two files that
    each start with one were joined (every line is read the same way, whatever its number).

    >>> strip_bom(BOM + b'{"segments": []}', 7)
    b'{"segments": []}'
    """
    return raw[len(BOM):] if raw.startswith(BOM) else raw


def in_part(number: int, part: tuple[int, int]) -> bool:
    """Whether document ``number`` (1-based) belongs to part ``(i, n)``: numbers ``i+1, i+1+n, i+1+2n, ...``."""
    i, n = part
    return (number - 1) % n == i


def jsonl_documents(lines: Iterable[bytes], *, start: int = 1, first: int = 1,
                    part: tuple[int, int] = (0, 1)) -> Iterator[tuple[int, bytes]]:
    """``(number, line)`` for the JSONL documents among ``lines`` (numbered from ``start``): from number ``first``
    on, only ``part``'s, blank lines left out, each without a leading byte order mark (:func:`strip_bom`).

    ``lines`` is a binary file or what iterating one gives: lines end at ``b"\\n"`` alone (``\\r`` is JSON
    whitespace and stays inside its line).

    >>> list(jsonl_documents(io.BytesIO(BOM + b'a\\n\\nb\\r\\nc'), part=(0, 2)))
    [(1, b'a\\n'), (3, b'b\\r\\n')]
    >>> list(jsonl_documents(io.BytesIO(BOM + b'\\n' + BOM + b'\\r\\nb')))
    [(3, b'b')]
    """
    for number, raw in enumerate(lines, start=start):
        if number >= first and in_part(number, part):
            body = strip_bom(raw, number)
            if body.strip():  # a line of only a byte order mark is blank too (what Notepad saves an empty file as)
                yield number, body


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
        """The files whose bytes make up the corpus, in a fixed order (a ``datasets`` folder's: those its
        ``state.json`` lists, in its order)."""
        if self.layout != "datasets":
            return [self.path]
        return data_files(self.path)

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files())

    def reading(self) -> dict[str, Any]:
        """The settings that decide which of its media are read at all, those set only (the run key's
        :data:`~mmtok.data.run_key.READING_KEY`): ``allow_outside`` when given, ``max_image_pixels`` when
        ``MMTOK_MAX_IMAGE_PIXELS`` sets the limit images are refused over."""
        said: dict[str, Any] = {"allow_outside": True} if self.allow_outside else {}
        if os.environ.get(PIXELS_ENV, "").strip():
            said["max_image_pixels"] = pixel_limit()
        return said

    def sha256(self) -> str:
        """The hex sha256 of the corpus's bytes (its :meth:`files`, in order)."""
        return files_sha256(self.files())

    def stamp(self) -> tuple[tuple[int, int, int], ...]:
        """Each of its :meth:`files`' size, modification time and inode: taken before :meth:`sha256`, a stamp
        that differs later says the corpus may have changed since it was hashed (then hash it again)."""
        return tuple((st.st_size, st.st_mtime_ns, st.st_ino) for st in (p.stat() for p in self.files()))

    def items(self, first: int = 1, part: tuple[int, int] = (0, 1)) -> Iterator[tuple[int, Any]]:
        """``(number, document)`` from number ``first`` on, only ``part``'s (:func:`in_part`): raw line bytes
        (JSONL, read by :func:`jsonl_documents`) or a row dict."""
        if self.layout == "jsonl":
            with open(self.path, "rb") as f:
                yield from jsonl_documents(f, first=first, part=part)
            return
        number = 0
        for batch in self._batches():
            for row in batch.to_pylist():
                number += 1
                if number >= first and in_part(number, part):
                    yield number, {"texts": row.get("texts"), "images": row.get("images")}

    def _batches(self) -> Iterator[Any]:
        """The table's ``texts`` and ``images`` columns in record batches; a file that cannot be read as one
        is a :class:`CorpusError` naming it."""
        try:
            import pyarrow as pa
        except ImportError:
            raise CorpusError(f"reading {self.path} needs pyarrow; pip install 'mmtok[hf]'") from None
        for p in self.files():
            try:
                yield from table_batches(p, self.layout)
            except (pa.ArrowException, OSError) as e:
                kind = "Parquet" if self.layout == "parquet" else "an Arrow stream (datasets .arrow file)"
                raise CorpusError(f"{p} cannot be read as {kind}: {' '.join(str(e).split())}") from None


def open_source(path: str | os.PathLike[str], *, allow_outside: bool = False) -> Source:
    """The :class:`Source` at ``path``, its layout told from the suffix (in any case) or the folder's contents; a
    JSONL file saved as UTF-16 or UTF-32 (:func:`~mmtok.stream.text_files.wide_text`) is a :class:`CorpusError` naming
    it and the encoding to convert from, before any work; so is one that is no JSONL (:func:`_refuse_not_lines`:
    compressed, a JSON array, JSON spread over lines), ``"-"`` (standard input is not read: a run hashes its corpus
    and reads it again to resume) and a folder that is no ``datasets`` folder (naming the ``.jsonl`` files in it)."""
    if str(path) == "-" and not Path(path).exists():
        raise CorpusError("a corpus is not read from standard input ('-'): a run hashes its corpus and reads it again "
                          "to resume, so save it to a file first and name that file")
    path = Path(path)
    if path.is_dir():
        if not (path / "state.json").is_file():
            jsonl = sorted(p.name for p in path.glob("*.jsonl"))
            more = f" and {len(jsonl) - 3} more" if len(jsonl) > 3 else ""
            held = (f"; it holds {', '.join(jsonl[:3])}{more}: tokenize each into its own --out, or join them "
                    "into one file" if jsonl else "")
            raise CorpusError(f"{path} is a folder but not a datasets folder (no state.json); "
                              f"pass a .jsonl, a .parquet or a folder from Dataset.save_to_disk{held}")
        return Source(path, "datasets", allow_outside)
    if not path.is_file():
        raise CorpusError(f"no corpus at {path}")
    _refuse_media(path)
    if path.suffix.lower() == ".parquet":
        return Source(path, "parquet", allow_outside)
    try:
        with open(path, "rb") as f:
            head = f.read(WIDE_SNIFF_BYTES)
    except OSError:  # unreadable: said where the corpus is read
        head = b""
    _refuse_not_lines(path, head)
    wide = wide_text(head)
    if wide is not None:
        raise CorpusError(f"{path} is {wide[0]} text ({wide[1]}); a JSONL corpus must be UTF-8: convert it first, "
                          f"e.g. iconv -f {wide[0]} -t utf-8")
    return Source(path, "jsonl", allow_outside)


# a compressed file's first bytes -> its format and the command that undoes it
COMPRESSED = {b"\x1f\x8b": ("gzip", "gunzip -k"), b"BZh": ("bzip2", "bunzip2 -k"),
              b"\xfd7zXZ\x00": ("xz", "unxz -k"), b"\x28\xb5\x2f\xfd": ("zstd", "zstd -d"),
              b"PK\x03\x04": ("zip", "unzip")}


def _refuse_not_lines(path: Path, head: bytes) -> None:
    """A :class:`CorpusError` when a file read as JSONL is no JSONL (every line would be skipped): a compressed
    file (``.jsonl.gz``), a JSON array of documents, or one JSON value spread over many lines.

    >>> _refuse_not_lines(Path("d.json"), b'[{"segments": ["a"]}]')
    Traceback (most recent call last):
    ...
    mmtok.core.errors.CorpusError: d.json holds a JSON array ('[' at its start); mmtok reads JSONL, one {"segments": [...]} document per line: convert it first, e.g. jq -c '.[]' d.json > d.jsonl
    """
    for magic, (kind, undo) in COMPRESSED.items():
        if head.startswith(magic):
            raise CorpusError(f"{path} is {kind}-compressed; mmtok reads a JSONL corpus as plain UTF-8 text: "
                              f"decompress it first, e.g. {undo} {path.name}")
    first = next((line.strip() for line in strip_bom(head, 1).split(b"\n") if line.strip()), b"")
    if first.startswith(b"["):
        raise CorpusError(f"{path} holds a JSON array ('[' at its start); mmtok reads JSONL, one "
                          '{"segments": [...]} document per line: convert it first, e.g. '
                          f"jq -c '.[]' {path.name} > {_lines_name(path)}")
    if first == b"{":
        raise CorpusError(f"{path} holds JSON spread over several lines ('{{' alone on its first line); mmtok reads "
                          'JSONL, one {"segments": [...]} document per line: write each on one line, e.g. '
                          f"jq -c . {path.name} > {_lines_name(path)}")


def _lines_name(path: Path) -> str:
    """A name for ``path`` converted to JSONL, never its own (a shell redirect would empty it before it is read).

    >>> _lines_name(Path("a/d.json")), _lines_name(Path("d.jsonl"))
    ('d.jsonl', 'd.lines.jsonl')
    """
    name = path.with_suffix(".jsonl").name
    return name if name != path.name else f"{path.stem}.lines.jsonl"


def _refuse_media(path: Path) -> None:
    """A :class:`CorpusError` when ``path`` is a picture, a sound or a video by its extension: a medium given
    where the corpus that names it belongs (it would be read as JSONL, every line skipped)."""
    suffix = path.suffix.lower()
    for what, key, suffixes in (("an image", "image", IMAGE_SUFFIXES), ("a sound", "audio", AUDIO_SUFFIXES),
                                ("a video", "video", VIDEO_SUFFIXES)):
        if suffix in suffixes:
            raise CorpusError(f"{path} is {what} (by its extension), not a corpus: name it in a JSONL corpus, one "
                              f'document per line such as {{"segments": [{{"{key}": "{path.name}"}}]}}, and '
                              "tokenize that file")


# --------------------------------------------------------------------------- the pre-scan

# the lines the pre-scan parses: those naming a media key, and any with a JSON escape (a key may be spelt \u0069mage)
_MEDIA_MARKS = (*(f'"{key}"'.encode() for key in MEDIA), b"\\u")


def media_kinds(source: Source) -> tuple[set[str], int]:
    """The media keys the corpus's documents use (every line, not one part's) and how many documents it has.

    A video segment brings ``"audio"`` too when it asks for its soundtrack or,
    without ``"soundtrack"``, when its file has an audio stream. Lines that are
    not valid documents are left for the run to skip.
    """
    kinds: set[str] = set()
    docs = 0
    where = MediaPaths(source.base, source.allow_outside)
    for _, doc in source.items():
        docs += 1
        if isinstance(doc, dict):
            images = doc.get("images")
            if isinstance(images, list) and any(image is not None for image in images):
                kinds.add("image")
        elif any(mark in doc for mark in _MEDIA_MARKS):  # parse only the lines that may name media
            kinds |= _line_kinds(doc, where, probe="audio" not in kinds)
    return kinds, docs


def _line_kinds(raw: bytes, where: MediaPaths, probe: bool) -> set[str]:
    """The media keys of one JSONL line that a run asks a tokenizer for: its segments' up to the first of an
    invalid shape (:func:`~mmtok.stream.segments.segment_shape`), where the run skips the document.

    >>> where = MediaPaths(Path("."), False)
    >>> _line_kinds(b'{"segments": ["a", {"text": "b", "image": "x.png"}, {"audio": "y.wav"}]}', where, False)
    set()
    """
    try:
        segs = json.loads(raw).get("segments")
    except (ValueError, AttributeError, RecursionError):  # RecursionError: JSON nested too deep
        return set()
    kinds: set[str] = set()
    for k, seg in enumerate(segs if isinstance(segs, list) else []):
        try:
            key, value, opts = segment_shape(seg, k)
        except ValueError:  # the run skips the document here, and looks at no segment after it
            break
        if key == "text":
            continue
        kinds.add(key)
        if key == "video" and opts.get("soundtrack") is not False and (
                opts.get("soundtrack") is True or (probe and _has_sound(where, value))):
            kinds.add("audio")
            probe = False
    return kinds


def _has_sound(where: MediaPaths, value: str) -> bool:
    """Whether the video file ``value`` names has an audio stream (reads its header only).

    False when the run would skip the document for its path (outside the corpus
    folder without ``allow_outside``, missing, not a regular file: a FIFO would
    block) or the file cannot be opened: only files the run reads are opened.
    """
    try:
        path = where.media(value, "video file")
    except ValueError:
        return False
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


def line_text(raw: bytes, number: int) -> str:
    """JSONL line ``number``'s text: its bytes without a byte order mark, decoded; ValueError says why they are
    not UTF-8.

    >>> line_text(BOM + b'{"segments": []}\\n', 1)
    '{"segments": []}\\n'
    """
    raw = strip_bom(raw, number)
    reason = utf8_reason(raw)
    if reason:
        raise ValueError(reason)
    return raw.decode("utf-8")


def document_stream(doc: Any, il: Interleaver, base: Path, line: int, *, allow_outside: bool = False) -> Stream | str:
    """Document ``line``'s stream, or why it is skipped: what is wrong with it (a ValueError, TypeError or
    :class:`~mmtok.core.errors.DocumentError` from reading or encoding it), or :data:`NO_SEGMENTS` when it holds
    nothing (no segments, only empty texts, an OBELICS row of nulls). A
    :class:`~mmtok.core.errors.CorpusError` is a mistake in the call, not in the document: it is raised, and so
    is any other exception (a tokenizer's ``KeyError``: no reason to skip the document;
    :func:`~mmtok.data.corpus.tokenize_document` names its line).

    >>> from mmtok.stream.interleave import Interleaver
    >>> il = Interleaver(None)
    >>> document_stream(b'{"segments": ["hi"]}', il, Path("."), 1).ids.tolist()
    [257, 104, 105, 258]
    >>> document_stream(b'{"segments": [""]}', il, Path("."), 2), document_stream(b'{"segments": 1}', il, Path("."), 3)
    ('no segments', 'expected an object with a "segments" list')
    """
    try:
        segs = segments(doc, base, il, line, allow_outside=allow_outside)
        if empty(segs):
            return NO_SEGMENTS
        return il.encode(segs)
    except CorpusError:
        raise
    except (ValueError, TypeError, DocumentError) as e:
        return str(e)


def empty(segs: list[Any]) -> bool:
    """Whether a document's :func:`segments` hold nothing (none, or only empty texts): skipped as
    :data:`NO_SEGMENTS`."""
    return all(isinstance(seg, dict) and seg == {"text": ""} for seg in segs)


def segments(doc: Any, base: Path, il: Interleaver, line: int, *, allow_outside: bool = False) -> list[Any]:
    """The segments of one document (raw JSONL bytes, its text, or an OBELICS row); ValueError says what is wrong.

    Media without a tokenizer for it is a mistake in the call, not in the document:
    that raises :class:`~mmtok.core.errors.CorpusError`. A media path that leads
    outside ``base`` is a ValueError unless ``allow_outside``.
    """
    where = MediaPaths(base, allow_outside)
    if isinstance(doc, dict):
        return _row_segments(doc, where, il, line)
    if isinstance(doc, bytes):
        doc = line_text(doc, line)
    try:
        parsed = json.loads(doc)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise ValueError("invalid JSON (nested too deeply to parse)") from None
    segs = parsed.get("segments") if isinstance(parsed, dict) else None
    if not isinstance(segs, list):
        raise ValueError('expected an object with a "segments" list')
    return [_segment(seg, k, where, il, line) for k, seg in enumerate(segs)]


def _segment(seg: Any, k: int, where: MediaPaths, il: Interleaver, line: int) -> Any:
    key, value, opts = segment_shape(seg, k)
    if key == "text":
        return {"text": value}
    _need(il, key, k, line)
    path = where.media(value, f"segment {k}: {key} file")
    return {key: str(path), **opts}


def _need(il: Interleaver, key: str, k: int, line: int) -> None:
    if getattr(il, key) is None:
        raise CorpusError(f"line {line}: segment {k} is an {key} but no {key} tokenizer "
                          f"was given; pass --{key} MODEL (TokenizerSpec({key}=...))")


def _row_segments(row: dict[str, Any], where: MediaPaths, il: Interleaver, line: int) -> list[Any]:
    """An OBELICS row: at each position a text or an image (the other null); both null adds nothing (an empty
    text, which keeps the interleaver's segment numbers equal to the row's positions in its reasons). A null
    list is a null at every position of the other (``images`` null: a text-only row, as pandas writes a table
    without images: a column of nulls)."""
    texts, images = row.get("texts"), row.get("images")
    if texts is None and isinstance(images, list):
        texts = [None] * len(images)
    if images is None and isinstance(texts, list):
        images = [None] * len(texts)
    if texts is None and images is None:
        return []
    if not isinstance(texts, list) or not isinstance(images, list):
        raise ValueError("expected parallel lists texts and images of one length "
                         f"(got {type(texts).__name__} and {type(images).__name__})")
    if len(texts) != len(images):
        raise ValueError("expected parallel lists texts and images of one length "
                         f"(got {len(texts)} texts and {len(images)} images)")
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
        else:
            out.append({"text": ""})
    return out if any(seg != {"text": ""} for seg in out) else []


def _row_image(image: Any, k: int, where: MediaPaths) -> Any:
    """A PIL image (from bytes) or a path, from an OBELICS image cell."""
    if isinstance(image, dict):  # datasets.Image's struct
        image = image.get("bytes") or image.get("path")
        if image is None or image == b"":
            raise ValueError(f"position {k}: the image struct has neither bytes nor a path; give one, or make the "
                             "cell null for no image")
    if isinstance(image, (bytes, bytearray)):
        from PIL import Image, UnidentifiedImageError

        limit = pixel_limit()  # MMTOK_MAX_IMAGE_PIXELS, as for files
        try:
            with pillow_limit(limit):  # between the limit and twice it: read, as files
                with warnings_ignored(Image.DecompressionBombWarning):
                    pic = Image.open(io.BytesIO(image))
                pic.load()
        except Image.DecompressionBombError as e:
            raise ValueError(bomb_message(f"position {k}: the image bytes have", e, limit)) from None
        except UnidentifiedImageError:  # its message names the BytesIO object's address: not in a reason
            raise ValueError(f"position {k}: the image bytes are not an image Pillow can read") from None
        except OSError as e:
            raise ValueError(f"position {k}: the image bytes are not a readable image ({e})") from None
        return pic
    if isinstance(image, str):
        if URL.match(image):  # OBELICS as published holds the images' URLs
            raise ValueError(f"position {k}: the image {image[:80]!r} is a URL, and mmtok downloads nothing: fetch the "
                             "images first and put their paths (or bytes) in the images column")
        return {"image": str(where.media(image, f"position {k}: image file"))}
    raise ValueError(f"position {k}: an image is a path, bytes or null, got {type(image).__name__}")
