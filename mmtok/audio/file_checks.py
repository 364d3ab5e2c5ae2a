"""What an audio file's container says about its length, read from the bytes themselves: libsndfile
quietly shortens a file cut off part-way, so :func:`mmtok.audio.io.load_audio` compares what it
decoded with what these parsers find.

- WAV (RIFF/WAVE), AIFF/AIFC and AU headers declare how many bytes of samples follow:
  :func:`data_chunk` gives that, the bytes actually present, and the frames the header promises;
- an Ogg file (Vorbis, Opus) declares nothing up front, but every logical stream begins with a page
  marked beginning-of-stream and ends with one marked end-of-stream: :func:`ogg_streams` walks the
  page headers once (cheap: 27 bytes and a segment table a page) and says whether every stream that
  began also ended, and how many streams follow one another (a chained Ogg, of which libsndfile
  reads only the first).

Only headers are read, never the samples.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

__all__ = ["DataChunk", "OggStreams", "data_chunk", "ogg_streams"]

UNKNOWN_SIZE = 0xFFFFFFFF  # the data size a streamed WAV or AU file declares ("not known yet")
AU_SAMPLE_BYTES = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}  # AU encoding -> bytes a sample (u-law,
# 8/16/24/32-bit PCM, float, double, A-law); other encodings (ADPCM) are left to libsndfile
OGG_BEGIN_OF_STREAM = 0x02  # the flag an Ogg page header sets on the first page of a logical stream
OGG_END_OF_STREAM = 0x04  # the flag an Ogg page header sets on the last page of a logical stream


class DataChunk(NamedTuple):
    """The sample data a header declares against what the file holds."""

    declared: int  # bytes of samples the header declares
    present: int  # bytes from the start of the samples to the end of the file
    frames: int  # frames the header promises


class OggStreams(NamedTuple):
    """What the page headers of an Ogg file say about its logical streams."""

    ends_cleanly: bool  # whole pages, and every stream that began also ended
    chained: int  # streams (or groups multiplexed at once) one after another: 1 for a plain file, more for a chain


def data_chunk(path: Path) -> DataChunk | None:
    """The sample data of a WAV, AIFF/AIFC or AU file (told apart by their magic bytes); None for
    other files and for headers that cannot say (a streamed file's "unknown" size, no format chunk).

    >>> import numpy as np, soundfile as sf, tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.aiff"
    >>> sf.write(path, np.zeros((100, 2), np.float32), 8000, subtype="PCM_16")
    >>> data_chunk(path)
    DataChunk(declared=400, present=400, frames=100)
    """
    with open(path, "rb") as f:
        head = f.read(24)
        size = os.fstat(f.fileno()).st_size
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return _wav(f, size)
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return _aiff(f, size)
        if head[:4] in (b".snd", b"dns."):  # big-endian AU, or its little-endian variant
            return _au(head, size)
    return None


def _chunks(f: BinaryIO, size: int, order: str) -> Iterator[tuple[bytes, int, int]]:
    """``(id, declared size, offset of its payload)`` of each chunk from byte 12 of a RIFF (``order`` ``"<"``)
    or IFF (``">"``) file, whose chunks are padded to even sizes; stops where no whole chunk header is left."""
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        cid, length = struct.unpack(order + "4sI", f.read(8))
        yield cid, length, pos + 8
        pos += 8 + length + (length & 1)


def _wav(f: BinaryIO, size: int) -> DataChunk | None:
    """RIFF chunks: the ``fmt `` chunk's block align, then the ``data`` chunk (none: libsndfile decides)."""
    align = 0
    for cid, length, at in _chunks(f, size, "<"):
        if cid == b"fmt ":
            fmt = f.read(min(length, 16))
            align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else 0
        elif cid == b"data":
            if not align or length == UNKNOWN_SIZE:  # no usable fmt, or a streamed file
                return None
            present = max(0, size - at)
            if length == 0 and _is_chunk(f.read(8), present):
                present = 0  # an empty data chunk, then other chunks: no samples follow
            return DataChunk(length, present, length // align)
    return None


def _is_chunk(head: bytes, left: int) -> bool:
    """Whether ``head`` (8 bytes with ``left`` bytes from its start to the end of the file) opens a
    RIFF chunk: a printable four-letter id and a size that fits."""
    return (len(head) == 8 and all(32 <= c < 127 for c in head[:4])
            and 8 + struct.unpack("<I", head[4:])[0] <= left)


def _aiff(f: BinaryIO, size: int) -> DataChunk | None:
    """IFF chunks: ``COMM`` holds the frame count, ``SSND`` the samples after its own 8 bytes (offset and
    block size)."""
    frames = ssnd = None
    for cid, length, at in _chunks(f, size, ">"):
        if cid == b"COMM":
            comm = f.read(6)  # channels (u16), frames (u32)
            frames = struct.unpack(">I", comm[2:6])[0] if len(comm) == 6 else None
        elif cid == b"SSND":
            ssnd = (max(0, length - 8), max(0, size - at - 8))
    if frames is None or ssnd is None:
        return None
    return DataChunk(ssnd[0], ssnd[1], frames)


def _au(head: bytes, size: int) -> DataChunk | None:
    """The 24-byte AU header: magic, data offset, data size, encoding, rate, channels."""
    if len(head) < 24:
        return None
    offset, length, encoding, _, channels = struct.unpack(">5I" if head[:4] == b".snd" else "<5I", head[4:24])
    width = AU_SAMPLE_BYTES.get(encoding, 0) * channels
    if length == UNKNOWN_SIZE or not width:
        return None
    return DataChunk(length, max(0, size - offset), length // width)


def ogg_streams(path: Path) -> OggStreams:
    """The logical streams of the Ogg file ``path``, from one walk over its page headers.

    ``ends_cleanly``: the file is whole pages in which every stream that began also ended (its last
    page carries the end-of-stream flag); bytes that are not a page, after every stream ended, are
    ignored. A file cut off part-way fails: in a page, or on a page boundary (no end mark).
    ``chained``: how many streams begin while no other is open: 1 for one stream or several
    multiplexed at once (audio with a skeleton or metadata stream: all begin before any ends), more
    for a chain (each begins after every earlier one ended).

    >>> import numpy as np, soundfile as sf, tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.ogg"
    >>> sf.write(path, np.zeros(8000, np.float32), 8000, format="OGG", subtype="VORBIS")
    >>> ogg_streams(path)
    OggStreams(ends_cleanly=True, chained=1)
    >>> _ = path.write_bytes(path.read_bytes() * 2)  # the same stream twice, one after the other
    >>> ogg_streams(path)
    OggStreams(ends_cleanly=True, chained=2)
    """
    size = path.stat().st_size
    open_streams: set[int] = set()  # serial numbers of streams that began and have not ended
    pos, pages, chained = 0, 0, 0
    with open(path, "rb") as f:
        while pos < size:
            f.seek(pos)
            head = f.read(27)  # capture pattern, version, flags, granule, serial, sequence, CRC, segments
            if head[:4] != b"OggS":
                return OggStreams(pages > 0 and not open_streams, chained)
            table = f.read(head[26]) if len(head) == 27 else b""
            if len(head) < 27 or len(table) < head[26]:
                return OggStreams(False, chained)
            serial = struct.unpack("<I", head[14:18])[0]
            if head[5] & OGG_BEGIN_OF_STREAM and not open_streams:
                chained += 1  # the first stream, or one after every earlier stream ended
            if head[5] & OGG_END_OF_STREAM:
                open_streams.discard(serial)
            else:
                open_streams.add(serial)
            pos, pages = pos + 27 + len(table) + sum(table), pages + 1
    return OggStreams(pos == size and pages > 0 and not open_streams, chained)
