"""Pure-Python readers for the archive formats that the corpus sources ship their media in.

Every function takes bytes and returns plain entries, so each one can be tested on a tiny
synthetic input without touching the disk or the network. Malformed input (wrong magic,
a table or record that runs past the end, a reference loop) raises ``FormatError`` (a
``ValueError``) naming what is wrong, never a half-read entry nor another exception type
(damage that the standard library reports otherwise is wrapped in ``FormatError`` too).

* ``queen_index`` / ``queen_clip`` / ``queen_dog_talk_key``: the ScummVM "compressed
  Flight of the Amazon Queen" resource file (``queen.1c``) and its dialogue (.DOG) files
  (used by ``corpus_audio.py``).
* ``zip_members``: zip archives (``.pk3`` game data, as in ufoai-music; ``corpus_audio.py``).
* ``rcc_entries``: Qt binary resource bundles (``.rcc``, versions 1-3), as in
  gcompris-qt-data (``corpus_image.py``).
* ``jpeg_streams`` / ``jpeg_scan``: JPEG images embedded in an arbitrary blob (Eet ``.edj``
  files of enlightenment-data; ``corpus_image.py``), and the damaged ones.

Tests (synthetic archives built in memory, round-tripped; malformed inputs)::

    python -m pytest -q -p no:cacheprovider tests/test_corpus_formats.py
    python benchmarks/corpus_formats.py --selftest     # the same tests
"""

from __future__ import annotations

import io
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path


class FormatError(ValueError):
    """An archive or resource file that does not follow its format."""


def _read(fmt: str, data: bytes, pos: int, what: str) -> tuple:
    """``struct.unpack_from`` that names ``what`` when the bytes are not there."""
    end = pos + struct.calcsize(fmt)
    if pos < 0 or end > len(data):
        raise FormatError(f"truncated: {what} needs bytes {pos}..{end}, data has {len(data)}")
    return struct.unpack_from(fmt, data, pos)


# --------------------------------------------------------------------------- queen.1c


@dataclass(frozen=True)
class QueenEntry:
    name: str
    bundle: int
    offset: int
    size: int


QUEEN_HEADER = 15  # "QTBL" + 6-byte version + 2 pad + compression byte + uint16 count
QUEEN_ENTRY = 21  # 12-byte name + bundle byte + uint32 offset + uint32 size (big-endian)


def queen_index(data: bytes) -> tuple[str, int, list[QueenEntry]]:
    """Read the table of a ScummVM compressed Queen resource file (``queen.1c``).

    Layout (all big-endian): ``b"QTBL"``, a 6-byte zero-padded version string (``CEM10``),
    2 padding bytes, one compression byte (0 none, 1 MP3, 2 Ogg Vorbis, 3 FLAC), a uint16
    entry count, then that many 21-byte entries: a 12-byte zero-padded DOS file name, a
    bundle number byte, a uint32 absolute offset and a uint32 size. Returns
    ``(version, compression, entries)``.
    """
    if data[:4] != b"QTBL":
        raise FormatError("not a queen resource table (no QTBL magic)")
    (count,) = _read(">H", data, 13, "queen table header")
    table_end = QUEEN_HEADER + count * QUEEN_ENTRY
    if table_end > len(data):
        raise FormatError(
            f"truncated queen table: {count} entries need {table_end} bytes, data has {len(data)}"
        )
    try:
        version = data[4:10].rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError as err:
        raise FormatError("queen table version is not ASCII") from err
    compression = data[12]
    entries = []
    for i in range(count):
        pos = QUEEN_HEADER + i * QUEEN_ENTRY
        try:
            name = data[pos : pos + 12].split(b"\0", 1)[0].decode("ascii")
        except UnicodeDecodeError as err:
            raise FormatError(f"queen entry {i}: name is not ASCII") from err
        bundle = data[pos + 12]
        offset, size = struct.unpack_from(">II", data, pos + 13)
        if offset + size > len(data):
            raise FormatError(f"entry {name} runs past the end of the file")
        entries.append(QueenEntry(name, bundle, offset, size))
    return version, compression, entries


def mp3_start(blob: bytes, limit: int = 4096) -> int:
    """Offset of the first ID3 tag or MPEG audio frame sync in ``blob`` (-1 if none).

    A frame sync is 11 set bits (``FF Ex``) with a valid layer and a bitrate index that is
    neither 0 nor 15; only the first ``limit`` bytes are searched (small headers only).
    """
    for i in range(min(len(blob) - 3, limit)):
        if blob[i : i + 3] == b"ID3":
            return i
        if blob[i] == 0xFF and blob[i + 1] & 0xE0 == 0xE0:
            layer = (blob[i + 1] >> 1) & 3
            rate = blob[i + 2] >> 4
            if layer != 0 and rate not in (0, 15):
                return i
    return -1


def queen_clip(data: bytes, entry: QueenEntry) -> bytes:
    """The MP3 stream of one ``.SB`` voice entry (any small header before the sync is cut)."""
    blob = data[entry.offset : entry.offset + entry.size]
    start = mp3_start(blob)
    if start < 0:
        raise FormatError(f"{entry.name}: no MP3 frame sync")
    return blob[start:]


def queen_dog_talk_key(dog: bytes) -> int:
    """The talk key of a Queen dialogue (``.DOG``) file.

    A DOG file may sit inside a 20-byte AMOS bank header (``AmBk``, bank number, flags,
    length, ``"Datas   "``); the dialogue header then reads int16 level count, int16 unique
    key, int16 talk key (big-endian). Voice clips of that dialogue are named
    ``KK HHHH J|P n.SB``: KK is the talk key, J marks Joe's lines and P the other person's.
    """
    base = 20 if dog[:4] == b"AmBk" else 0
    return _read(">h", dog, base + 4, "DOG dialogue header")[0]


# --------------------------------------------------------------------------- zip / pk3


def zip_members(data: bytes, suffixes: tuple[str, ...] = ()) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of every file in a zip archive (``.pk3`` is a plain zip).

    Directories are dropped; with ``suffixes`` only names ending in one of them (case
    insensitive) are returned. Any damage (bad central directory or member headers, an
    unsupported compression method, an encrypted member, a CRC mismatch) is a ``FormatError``.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return [
                (info.filename, zf.read(info))
                for info in zf.infolist()
                if not info.is_dir() and (not suffixes or info.filename.lower().endswith(suffixes))
            ]
    # zipfile reports damage as BadZipFile, but also as NotImplementedError (compression method),
    # RuntimeError (encrypted member), ValueError/OSError (bad offsets) and zlib.error/EOFError
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError,
            OSError) as err:  # fmt: skip
        raise FormatError(f"not a readable zip archive: {err}") from err


# --------------------------------------------------------------------------- Qt .rcc

RCC_COMPRESSED, RCC_DIRECTORY, RCC_ZSTD = 0x01, 0x02, 0x04


@dataclass(frozen=True)
class RccEntry:
    path: str
    payload: bytes | None  # None when it could not be decoded (see ``skipped``)
    skipped: str = ""


def _rcc_name(data: bytes, names: int, off: int) -> str:
    (length,) = _read(">H", data, names + off, "rcc name")
    start = names + off + 6  # 2-byte length, 4-byte hash
    if start + 2 * length > len(data):
        raise FormatError(f"truncated: rcc name at byte {names + off} runs past the end")
    try:
        return data[start : start + 2 * length].decode("utf-16-be")
    except UnicodeDecodeError as err:
        raise FormatError(f"rcc name at byte {names + off} is not UTF-16BE ({err.reason})") from err


def _rcc_payload(data: bytes, pos: int, flags: int, path: str) -> tuple[bytes | None, str]:
    (size,) = _read(">I", data, pos, f"rcc data record of {path}")
    if pos + 4 + size > len(data):
        raise FormatError(f"truncated: rcc data of {path} ({size} bytes) runs past the end")
    raw = data[pos + 4 : pos + 4 + size]
    if flags & RCC_COMPRESSED:
        (expect,) = _read(">I", raw, 0, f"uncompressed size of {path}")
        try:
            out = zlib.decompress(raw[4:])
        except zlib.error as err:
            raise FormatError(f"rcc entry {path}: corrupt zlib data ({err})") from err
        if len(out) != expect:
            raise FormatError(f"rcc entry {path}: {len(out)} bytes, header says {expect}")
        return out, ""
    if flags & RCC_ZSTD:
        try:
            import zstandard
        except ImportError:
            return None, "zstd-compressed entry and zstandard is not installed"
        try:
            return zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 28), ""
        except zstandard.ZstdError as err:
            raise FormatError(f"rcc entry {path}: corrupt zstd data ({err})") from err
    return raw, ""


def rcc_entries(data: bytes) -> list[RccEntry]:
    """All files of a Qt binary resource bundle (``.rcc``), with their full paths.

    Header (big-endian uint32s): ``b"qres"``, version (1-3), tree offset, data offset,
    names offset, and in version 3 a flags word. The tree is an array of entries, 14 bytes
    in v1 and 22 in v2+: uint32 name offset, uint16 flags (0x01 zlib, 0x02 directory, 0x04
    zstd), then for a directory uint32 child count and uint32 index of the first child, for
    a file uint16 country, uint16 language and uint32 data offset; v2+ adds a uint64
    modification time. Entry 0 is the root directory. A name is a uint16 length, a uint32
    hash and UTF-16BE characters; a data record is a uint32 size and the payload, which for
    zlib entries starts with a uint32 uncompressed size.
    """
    if data[:4] != b"qres":
        raise FormatError("not a Qt resource bundle (no qres magic)")
    version, tree, dat, names = _read(">IIII", data, 4, "rcc header")
    if version not in (1, 2, 3):
        raise FormatError(f"unsupported rcc version {version}")
    size = 14 if version == 1 else 22
    out: list[RccEntry] = []
    stack, seen = [(0, "")], set()
    while stack:
        index, prefix = stack.pop()
        if index in seen:
            raise FormatError(f"rcc tree entry {index} is reached twice (a loop in the tree)")
        seen.add(index)
        pos = tree + index * size
        name_off, flags = _read(">IH", data, pos, f"rcc tree entry {index}")
        name = "" if index == 0 else _rcc_name(data, names, name_off)
        path = f"{prefix}/{name}" if prefix else name
        if flags & RCC_DIRECTORY:
            count, first = _read(">II", data, pos + 6, f"rcc directory {path or '/'}")
            if tree + (first + count) * size > len(data):  # a corrupt count would allocate GBs
                raise FormatError(
                    f"truncated: rcc directory {path or '/'} has {count} entries from entry {first}, "
                    f"past the end of the data ({len(data)} bytes)"
                )
            stack.extend((first + k, path) for k in reversed(range(count)))
            continue
        (data_off,) = _read(">I", data, pos + 10, f"rcc file entry {path}")
        payload, why = _rcc_payload(data, dat + data_off, flags, path)
        out.append(RccEntry(path, payload, why))
    return out


# --------------------------------------------------------------------------- JPEG in a blob

_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length field


def jpeg_end(data: bytes, start: int) -> int:
    """End offset (just past EOI) of the JPEG stream that starts at ``start``, or -1.

    Walks the marker segments (each ``FF xx`` plus a big-endian length) so that EXIF
    thumbnails inside APP segments are skipped; after each SOS the entropy-coded data is
    scanned to the next marker that is neither a stuffed ``FF 00`` nor a restart marker,
    which handles progressive files with several scans. A stream cut short gives -1.
    """
    pos, n = start + 2, len(data)
    while pos + 2 <= n:
        if data[pos] != 0xFF:
            return -1
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return pos + 2
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > n:
            return -1
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
        if marker != 0xDA:
            continue
        while True:  # entropy-coded segment
            pos = data.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= n:
                return -1
            nxt = data[pos + 1]
            if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                pos += 1 if nxt == 0xFF else 2
                continue
            break
    return -1


# markers that can follow SOI in a real stream (APPn, DQT, DHT, DRI, SOFn, COM): a ``FF D8 FF``
# followed by anything else is taken for stray bytes, not for a damaged stream
_AFTER_SOI = {*range(0xC0, 0xD0), 0xDB, 0xDD, *range(0xE0, 0xF0), 0xFE}


def jpeg_scan(data: bytes) -> tuple[list[tuple[int, bytes]], list[tuple[int, int]]]:
    """Complete and damaged JPEG streams in a blob: ``(streams, damaged)``.

    ``streams`` is what ``jpeg_streams`` returns. ``damaged`` has ``(offset, span)`` for each
    stream start (``FF D8 FF`` and a marker that can follow SOI) that is not inside a complete
    stream and does not lead to one (cut short or corrupt); ``span`` is the number of bytes
    from it to the next stream start or the end of the blob, an upper bound of its size.
    """
    streams, broken, pos = [], [], 0
    while True:
        start = data.find(b"\xff\xd8\xff", pos)
        if start < 0:
            break
        end = jpeg_end(data, start)
        if end < 0:
            if start + 3 < len(data) and data[start + 3] in _AFTER_SOI:
                broken.append(start)
            pos = start + 3
            continue
        streams.append((start, data[start:end]))
        pos = end
    starts = sorted([*broken, *(off for off, _ in streams), len(data)])
    damaged = [(off, starts[starts.index(off) + 1] - off) for off in broken]
    return streams, damaged


def jpeg_streams(data: bytes) -> list[tuple[int, bytes]]:
    """``(offset, stream)`` for each complete JPEG (``FF D8 FF`` ... EOI) found in a blob.

    Streams nested inside an earlier stream (thumbnails) are not reported separately;
    incomplete streams are not reported at all (``jpeg_scan`` lists them).
    """
    return jpeg_scan(data)[0]


if __name__ == "__main__":
    if "--selftest" in sys.argv[1:]:
        import pytest

        tests = Path(__file__).resolve().parents[1] / "tests" / "test_corpus_formats.py"
        sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", str(tests)]))
    print(__doc__)
