"""Whether an MP4-family file (.m4a, .mp4, .mov) was cut off part-way, read from its box headers alone: the
file is a chain of top-level boxes, each declaring its size, and :func:`mp4_cut_box` walks their headers for
one that runs past the end of the file. :func:`check_mp4` refuses such a file before any decoding
(:func:`mmtok.audio.io.load_audio`, and :mod:`mmtok.video.read` for videos); see
:mod:`mmtok.audio.file_checks` for the other containers.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import NamedTuple

from mmtok.core.errors import AudioError

__all__ = ["MP4_TOP_BOXES", "Mp4Box", "check_mp4", "mp4_cut_box"]

MP4_BOX_HEADER = 8  # bytes of an MP4 box's header: its size (u32, big-endian, header included) and type
MP4_LARGE_SIZE = 1  # the size a box header gives when a 64-bit size follows its type
MP4_TOP_BOXES = (b"ftyp", b"moov", b"mdat", b"moof", b"mfra", b"free", b"skip", b"wide", b"udta", b"meta", b"uuid",
                 b"sidx", b"styp", b"pdin", b"prft", b"emsg")  # box types at the top of an MP4/QuickTime file


class Mp4Box(NamedTuple):
    """A top-level box of an MP4-family file that runs past the end of the file."""

    kind: str  # its four-letter type, e.g. "mdat" (the samples) or "moov" (the index)
    declared: int  # bytes it declares, its header included
    present: int  # bytes from its start to the end of the file


def mp4_cut_box(path: Path) -> Mp4Box | None:
    """The top-level box of the MP4-family file ``path`` (.m4a, .mp4, .mov: an ``ftyp`` box first) that
    runs past the end of the file, from one walk over the box headers (a 32-bit size and a type, a
    64-bit size after them when the first says 1); None when every box is whole, and for other
    files. Bytes after the last box that are no box header (not a type in :data:`MP4_TOP_BOXES`)
    end the walk.

    >>> import tempfile
    >>> def box(kind, body): return struct.pack(">I", 8 + len(body)) + kind + body
    >>> whole = box(b"ftyp", b"M4A " + bytes(4)) + box(b"mdat", bytes(1000)) + box(b"moov", bytes(100))
    >>> path = Path(tempfile.mkdtemp()) / "a.m4a"
    >>> _ = path.write_bytes(whole[:500])
    >>> mp4_cut_box(path)
    Mp4Box(kind='mdat', declared=1008, present=484)
    """
    size, pos = path.stat().st_size, 0
    with open(path, "rb") as f:
        while pos + MP4_BOX_HEADER <= size:
            f.seek(pos)
            head = f.read(MP4_BOX_HEADER + 8)
            length, kind = struct.unpack(">I4s", head[:MP4_BOX_HEADER])
            if (pos == 0 and kind != b"ftyp") or kind not in MP4_TOP_BOXES:  # not MP4; bytes after the boxes
                return None
            if length == MP4_LARGE_SIZE and len(head) == MP4_BOX_HEADER + 8:
                length = struct.unpack(">Q", head[MP4_BOX_HEADER:])[0]
            if length < MP4_BOX_HEADER:  # 0: the box runs to the end of the file
                return None
            if pos + length > size:
                return Mp4Box(kind.decode("ascii"), length, size - pos)
            pos += length
    return None


def check_mp4(path: Path) -> None:
    """An :class:`AudioError` if a top-level box of the MP4-family file ``path`` runs past its end: the
    file was cut off part-way (FFmpeg cannot open it when its index, ``moov``, comes last, and
    quietly decodes what is left when it comes first)."""
    box = mp4_cut_box(path)
    if box is not None:
        raise AudioError(f"audio file {path} is truncated: its MP4 '{box.kind}' box declares {box.declared} "
                         f"bytes, the file ends {box.present} bytes into it")
