"""Raw AAC (.aac): a stream of ADTS frames, each opened by a 7-byte header (9 with a CRC) that holds the
frame's length, and nothing that declares the stream's length. FFmpeg decodes what it finds and says
nothing of a file cut off part-way, or of bytes written over its middle (it re-syncs past them), so
:func:`adts_frames` walks the frame headers (with :func:`~mmtok.audio.file_checks.frame_chain`, the
walk MP3 files take) and :func:`check_adts` refuses such a file before it is decoded.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import NamedTuple

from mmtok.audio.file_checks import FrameChain, after_id3v2, damaged_message, frame_chain
from mmtok.core.errors import AudioError

__all__ = ["ADTS_HEADER", "adts_frames", "check_adts"]

ADTS_HEADER = 7  # bytes of an ADTS header without its CRC (all that is read: the length is in them)
ADTS_RATES = 13  # sampling-frequency indexes in use (96 kHz .. 7.35 kHz); 13-15 are reserved
AAC_FRAME_SAMPLES = 1024  # samples (per channel) in one raw data block


class _AdtsFrame(NamedTuple):
    length: int  # bytes, header included
    samples: int  # samples per channel


def _adts_frame(head: bytes) -> _AdtsFrame | None:
    """The frame an ADTS header (its first 7 bytes) opens, or None if these bytes are not one: no sync
    word (12 bits set, then the MPEG version bit and a layer of 0), a reserved rate, or a length no
    longer than the header itself. The length is 13 bits, bits 30..42 of the header."""
    if len(head) < ADTS_HEADER or head[0] != 0xFF or head[1] & 0xF6 != 0xF0:
        return None
    header = ADTS_HEADER if head[1] & 1 else ADTS_HEADER + 2  # protection absent: no CRC
    length = (head[3] & 0x03) << 11 | head[4] << 3 | head[5] >> 5
    if (head[2] >> 2) & 0x0F >= ADTS_RATES or length <= header:
        return None
    return _AdtsFrame(length, AAC_FRAME_SAMPLES * ((head[6] & 0x03) + 1))


def adts_frames(path: Path) -> FrameChain | None:
    """The ADTS frames of ``path``, from one walk over their headers; None unless the file (after any
    ID3v2 tags) starts with an ADTS header. ``cut_at``: the unbroken chain of frames stops part-way
    through a frame (or its header) at the end of the file; ``damaged_at``: bytes that are no frame
    sit where one should start, with whole frames after them. Bytes after the last whole frame that
    are no frame (an ID3v1 or APE tag, junk) end the walk; see
    :func:`~mmtok.audio.file_checks.frame_chain`.

    >>> import tempfile
    >>> frame = bytes([0xFF, 0xF1, 0x60, 0x40, 0x0C, 0x9F, 0xFC]) + bytes(93)  # 16 kHz, mono: 100 bytes
    >>> path = Path(tempfile.mkdtemp()) / "a.aac"
    >>> _ = path.write_bytes(frame * 3 + frame[:40])
    >>> adts_frames(path)
    FrameChain(samples=3072, frames=3, cut_at=300, declared=100, damaged_at=None)
    >>> _ = path.write_bytes(frame * 3 + bytes(50) + frame * 2)  # bytes that are no frame, then frames again
    >>> adts_frames(path)
    FrameChain(samples=5120, frames=5, cut_at=None, declared=None, damaged_at=300)
    """
    if path.stat().st_size == 0:
        return None
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos = after_id3v2(data)
        if _adts_frame(data[pos : pos + ADTS_HEADER]) is None:
            return None
        return frame_chain(data, pos, _adts_frame, ADTS_HEADER)


def check_adts(path: Path) -> None:
    """An :class:`AudioError` if ``path`` is raw AAC cut off part-way (its last ADTS frame runs past the
    end of the file) or damaged in the middle (see :func:`adts_frames`); nothing for other files."""
    adts = adts_frames(path)
    if adts is None:
        return
    if adts.damaged_at is not None:
        raise AudioError(damaged_message(path, adts.damaged_at, "ADTS"))
    if adts.cut_at is not None:
        present = path.stat().st_size - adts.cut_at
        if adts.declared is None:
            raise AudioError(f"audio file {path} is truncated: its last ADTS frame's header is cut off, the file "
                             f"ends {present} bytes into it")
        raise AudioError(f"audio file {path} is truncated: its last ADTS frame declares {adts.declared} bytes, "
                         f"the file ends {present} bytes into it")
