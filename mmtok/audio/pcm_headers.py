"""What a PCM container's header declares about its samples, read from the bytes themselves: the size of
its sample data against the bytes that follow, and the frames that makes (:func:`data_chunk`). WAV (RIFF, RF64
with its 64-bit ``ds64`` sizes, Sony Wave64), AIFF/AIFC, AU and Apple CAF are told apart by their magic bytes;
:func:`mmtok.audio.file_checks.check_length` refuses a file whose samples stop before what its header declares,
which libsndfile reads short without a word. Only headers are read, never the samples.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

__all__ = ["DataChunk", "data_chunk"]

UNKNOWN_SIZE = 0xFFFFFFFF  # the data size a streamed WAV or AU file declares ("not known yet")
AU_SAMPLE_BYTES = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}  # AU encoding -> bytes a sample (u-law,
# 8/16/24/32-bit PCM, float, double, A-law); other encodings (ADPCM) are left to libsndfile
W64_GUID_TAIL = bytes.fromhex("f3acd3118cd100c04f8edb8a")  # the last 12 bytes of a Sony Wave64 chunk GUID
W64_RIFF = b"riff" + bytes.fromhex("2e91cf11a5d628db04c10000")  # the GUID a Wave64 file begins with
W64_HEADER = 24  # bytes of a Wave64 chunk header: a GUID, then a 64-bit size that counts the header too
CAF_HEADER = 12  # bytes of a CAF chunk header: a four-letter type, then a 64-bit size of what follows


class DataChunk(NamedTuple):
    """The sample data a header declares against what the file holds."""

    declared: int  # bytes of samples the header declares
    present: int  # bytes from the start of the samples to the end of the file
    frames: int  # frames the header promises; 0 where it does not say (compressed WAV: blocks of many samples)


def data_chunk(path: Path) -> DataChunk | None:
    """The sample data of a WAV (RIFF, RF64, Wave64), AIFF/AIFC, AU or CAF file (told apart by their magic
    bytes); None for other files and for headers that cannot say (a streamed file's "unknown" size, no
    format chunk).

    >>> import numpy as np, soundfile as sf, tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.aiff"
    >>> sf.write(path, np.zeros((100, 2), np.float32), 8000, subtype="PCM_16")
    >>> data_chunk(path)
    DataChunk(declared=400, present=400, frames=100)
    """
    with open(path, "rb") as f:
        head = f.read(40)
        size = os.fstat(f.fileno()).st_size
        if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
            return _wav(f, size, _chunks(f, size, "<"))
        if head[:16] == W64_RIFF and head[24:40] == b"wave" + W64_GUID_TAIL:
            return _wav(f, size, _w64_chunks(f, size))
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return _aiff(f, size)
        if head[:4] in (b".snd", b"dns."):  # big-endian AU, or its little-endian variant
            return _au(head[:24], size)
        if head[:4] == b"caff":
            return _caf(f, size)
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


def _w64_chunks(f: BinaryIO, size: int) -> Iterator[tuple[bytes, int, int]]:
    """``(id, size of its payload, offset of its payload)`` of each chunk from byte 40 of a Wave64 file: the
    four-letter id that opens its GUID (``b""`` for a GUID of another family), chunks padded to 8 bytes."""
    pos = 40
    while pos + W64_HEADER <= size:
        f.seek(pos)
        guid, length = struct.unpack("<16sQ", f.read(W64_HEADER))
        yield guid[:4] if guid[4:] == W64_GUID_TAIL else b"", max(0, length - W64_HEADER), pos + W64_HEADER
        pos += max(W64_HEADER, (length + 7) & ~7)


def _wav(f: BinaryIO, size: int, chunks: Iterator[tuple[bytes, int, int]]) -> DataChunk | None:
    """WAV ``chunks``: RF64's ``ds64`` (the 64-bit data size its ``data`` chunk leaves at 0xFFFFFFFF), the
    ``fmt `` chunk's block align, then the ``data`` chunk (none: libsndfile decides)."""
    align, compressed = 0, False
    big = None  # the data size a ds64 chunk gives
    for cid, length, at in chunks:
        if cid == b"ds64":
            sizes = f.read(16)  # the RIFF size, then the data size: 64-bit each
            big = struct.unpack("<Q", sizes[8:])[0] if len(sizes) == 16 else None
        elif cid == b"fmt ":
            fmt = f.read(min(length, 16))  # format tag, channels, rate, bytes a second, block align, bits
            align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else 0
            if len(fmt) == 16:  # a block of many samples (ADPCM, GSM) is not channels x bits
                compressed = struct.unpack("<H", fmt[2:4])[0] * struct.unpack("<H", fmt[14:16])[0] != 8 * align
        elif cid == b"data":
            length = big if length == UNKNOWN_SIZE and big is not None else length
            if not align or length == UNKNOWN_SIZE:  # no usable fmt, or a streamed file
                return None
            present = max(0, size - at)
            if length == 0 and _is_chunk(f.read(8), present):
                present = 0  # an empty data chunk, then other chunks: no samples follow
            return DataChunk(length, present, 0 if compressed else length // align)
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


def _caf(f: BinaryIO, size: int) -> DataChunk | None:
    """Apple CAF chunks from byte 8 (a four-letter type and a 64-bit big-endian size, unpadded): ``desc`` holds
    the bytes and frames of a packet (0 bytes: compressed, packets of many sizes), ``data`` an edit count (4
    bytes), then the samples; a ``data`` size of -1 runs to the end of the file (a recording not closed)."""
    packet = None  # (bytes, frames) of a packet
    pos = 8
    while pos + CAF_HEADER <= size:
        f.seek(pos)
        cid, length = struct.unpack(">4sq", f.read(CAF_HEADER))
        at = pos + CAF_HEADER
        if cid == b"desc":
            desc = f.read(24)  # sample rate (f64), format id, format flags, bytes a packet, frames a packet
            packet = struct.unpack(">II", desc[16:24]) if len(desc) == 24 else None
        elif cid == b"data":
            if packet is None or length < 0:
                return None
            declared, present = max(0, length - 4), max(0, size - at - 4)
            frames = declared // packet[0] * packet[1] if packet[0] else 0
            return DataChunk(declared, present, frames)
        if length < 0:
            return None
        pos = at + length
    return None
