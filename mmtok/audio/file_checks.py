"""What an audio file's container says about its length, read from the bytes themselves: libsndfile
quietly shortens a file cut off part-way, so :func:`mmtok.audio.io.load_audio` compares what it
decoded with what these parsers find.

- WAV (RIFF/WAVE, RF64 with its 64-bit ``ds64`` sizes, Sony Wave64), AIFF/AIFC, AU and CAF headers declare
  how many bytes of samples follow: :func:`~mmtok.audio.pcm_headers.data_chunk` gives that, the bytes actually
  present, and the frames the header promises (none for compressed samples, whose blocks hold many each);
- an Ogg file (Vorbis, Opus) declares nothing up front, but every logical stream begins with a page
  marked beginning-of-stream and ends with one marked end-of-stream: :func:`ogg_streams` walks the
  page headers once (cheap: 27 bytes and a segment table a page) and says whether every stream that
  began also ended, and how many streams follow one another (a chained Ogg, of which libsndfile
  reads only the first);
- an MP3 file declares its length only in an optional Xing/Info (or VBRI) frame, and libsndfile
  otherwise guesses it from the first frame's bitrate: :func:`mp3_frames` walks the MPEG frame
  headers (4 bytes a frame, each frame's length computed from its bitrate, rate and padding) with
  :func:`frame_chain`, the walk :mod:`mmtok.audio.adts` takes over raw AAC's frames too: the samples
  the frames hold, whether the last frame is cut off, where bytes that are no frame sit between
  frames (the stream damaged in the middle); and what a Xing/Info/VBRI frame declares (fewer frames
  than follow it: MP3 files joined end to end, of which libsndfile reads only the first);
- an MP4-family file (.m4a) is a chain of boxes, each declaring its size:
  :func:`mmtok.audio.mp4_box.mp4_cut_box` walks their headers for one that runs past the end of the file.

Only headers are read, never the samples. :func:`check_mp3` refuses an MP3 damaged in the middle or
joined to another (and :func:`mmtok.audio.mp4_box.check_mp4` an MP4 cut short) before any decoding;
:func:`check_length` then judges what a decoder gave against them: a file cut short (fewer bytes of
samples than its header declares, whatever the decoder made of them), a header never finished, a
chained Ogg, or nothing at all is an :class:`~mmtok.core.errors.AudioError`.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Protocol, Union

from mmtok.audio.pcm_headers import data_chunk
from mmtok.core.errors import AudioError

__all__ = ["MP3_FORMATS", "MP3_FRAME_SLACK", "MP3_SLACK", "Frame", "FrameChain", "FrameOf",
           "Mp3Frames", "OggStreams", "after_id3v2", "check_length", "check_mp3", "check_ogg", "damaged_message",
           "frame_chain", "is_truncated", "mp3_frames", "ogg_streams"]

MP3_SLACK = 2 * 1152  # frames an MP3 decoder may drop of what its frames hold: the encoder's delay and padding
MP3_FRAME_SLACK = 1  # MPEG frames past its Xing/Info count an MP3 may hold (encoders differ on counting the tag frame)
MP3_FORMATS = ("MP3", "MPEG")  # libsndfile's name for MP3 files (older versions: "MPEG")
OGG_BEGIN_OF_STREAM = 0x02  # the flag an Ogg page header sets on the first page of a logical stream
OGG_END_OF_STREAM = 0x04  # the flag an Ogg page header sets on the last page of a logical stream


class OggStreams(NamedTuple):
    """What the page headers of an Ogg file say about its logical streams."""

    ends_cleanly: bool  # whole pages, and every stream that began also ended
    chained: int  # streams (or groups multiplexed at once) one after another: 1 for a plain file, more for a chain


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


# --------------------------------------------------------------------------- MP3

MPEG_HEADER = 4  # bytes of an MPEG audio frame header
ID3V2_HEADER = 10  # bytes of an ID3v2 tag's header (and of its optional footer)
MP3_END_TAGS = (b"TAG", b"APETAGEX", b"LYRICS200")  # tags after the last frame: ID3v1, APE, Lyrics3
MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # version bits
# (3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5) -> sample rates (Hz) by the header's rate index
MPEG_KBPS = {  # (MPEG-1, layer) -> kbit/s by the header's bitrate index 1..14 (0, free format, is not walked)
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
VBRI_AT = 36  # byte offset of a VBRI tag in its frame (4 header bytes, 32 after them)


class Mp3Frames(NamedTuple):
    """What the MPEG frame headers of an MP3 file say about its length."""

    samples: int  # samples (per channel) the audio frames hold, encoder delay and padding included
    frames: int  # audio frames (a Xing/Info/VBRI frame, which holds no audio, is not counted)
    declared: int | None  # audio frames a Xing/Info/VBRI frame declares; None without one (or a count, or a 0 never filled in)
    cut: bool  # the last frame runs past the end of the file: the file was cut off part-way
    damaged_at: int | None = None  # byte offset of the first bytes in the stream that are no frame, with whole
    # frames after them (garbage written over the middle of the file); None for an unbroken stream


class _MpegFrame(NamedTuple):
    length: int  # bytes, header included
    samples: int  # samples per channel
    tag_at: int  # byte offset where a Layer III frame's Xing/Info tag would sit (after the side info); 0: none


def _mpeg_frame(head: bytes) -> _MpegFrame | None:
    """The frame an MPEG audio header (4 bytes) opens, or None if these bytes are not one (no sync word,
    a reserved version, layer or rate, a free-format or bad bitrate)."""
    if len(head) < MPEG_HEADER or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version, layer = (head[1] >> 3) & 3, 4 - ((head[1] >> 1) & 3)  # layer 1, 2, 3 (4: reserved)
    rate_index, kbps_index, pad = (head[2] >> 2) & 3, head[2] >> 4, (head[2] >> 1) & 1
    if version == 1 or layer == 4 or rate_index == 3 or kbps_index in (0, 15):
        return None
    mpeg1 = version == 3
    rate, bitrate = MPEG_RATES[version][rate_index], MPEG_KBPS[mpeg1, layer][kbps_index - 1] * 1000
    if layer == 1:
        return _MpegFrame((12 * bitrate // rate + pad) * 4, 384, 0)
    samples = 1152 if mpeg1 or layer == 2 else 576
    mono = head[3] >> 6 == 3
    side = (17 if mono else 32) if mpeg1 else (9 if mono else 17)  # Layer III side information, bytes
    return _MpegFrame(samples // 8 * bitrate // rate + pad, samples, 4 + side if layer == 3 else 0)


def after_id3v2(data: bytes | mmap.mmap, pos: int = 0) -> int:
    """The offset past the ID3v2 tags at ``pos`` in ``data`` (``pos`` without one): a 10-byte header whose
    last four bytes hold the size in 7-bit bytes, plus a 10-byte footer when flag 0x10 is set."""
    while data[pos : pos + 3] == b"ID3" and len(data) >= pos + ID3V2_HEADER:
        size = data[pos + 6 : pos + 10]
        pos += (ID3V2_HEADER + (size[0] << 21 | size[1] << 14 | size[2] << 7 | size[3])
                + (ID3V2_HEADER if data[pos + 5] & 0x10 else 0))
    return pos


class Frame(Protocol):
    """What a header says of its frame (MPEG audio, ADTS): bytes, header included; samples per channel."""

    @property
    def length(self) -> int: ...
    @property
    def samples(self) -> int: ...


FrameOf = Callable[[bytes], Union[Frame, None]]  # noqa: UP007 - py3.10 runtime alias; header bytes -> their frame


class FrameChain(NamedTuple):
    """What one walk over a stream of self-delimiting frames finds (:func:`frame_chain`)."""

    samples: int  # samples (per channel) the whole frames hold
    frames: int  # whole frames
    cut_at: int | None  # offset of the last frame when the end of the file cuts it (or its header) off
    declared: int | None  # bytes that cut frame declares; None when its header is cut off too
    damaged_at: int | None  # offset of the first bytes that are no frame with whole frames after them


def _frame_at(data: bytes | mmap.mmap, pos: int, frame_of: FrameOf, head: int) -> Frame | None:
    """The frame at ``pos`` (its header: ``head`` bytes, read by ``frame_of``) if one starts there and is
    followed by another frame, an end tag or the end of the file (a lone sync word in other bytes is no frame)."""
    frame = frame_of(data[pos : pos + head])
    if frame is None:
        return None
    end = pos + frame.length
    follows = data[end : end + max(head, 9)]
    ok = end >= len(data) or frame_of(follows[:head]) is not None or follows.startswith(MP3_END_TAGS)
    return frame if ok else None


def _next_frame(data: bytes | mmap.mmap, pos: int, frame_of: FrameOf, head: int) -> int | None:
    """The offset of the first frame at or after ``pos`` (see :func:`_frame_at`), or None."""
    while (pos := data.find(b"\xff", pos)) >= 0:
        if _frame_at(data, pos, frame_of, head) is not None:
            return pos
        pos += 1
    return None


def frame_chain(data: bytes | mmap.mmap, pos: int, frame_of: FrameOf, head: int) -> FrameChain:
    """The frames of ``data`` from ``pos`` (where a frame starts), each header ``head`` bytes read by
    ``frame_of``, from one walk: ID3v2 tags between frames are skipped, an ID3v1, APE or Lyrics3 tag ends
    the walk, bytes that are no frame are skipped up to the next one (``damaged_at``, the first such
    bytes, when whole frames follow them), and ``cut_at`` marks where the unbroken chain of frames (each
    where the one before ends) stops part-way through a frame, or a header, at the end of the file. A
    would-be frame found by re-syncing (bytes that happen to look like a header in a tag or other data
    after the last frame) that runs past the end is not a cut: the file's frames are all there."""
    frames = samples = 0
    chained = True  # pos is where the frame before ended (or the first frame): not found by re-syncing
    gap = damaged_at = None  # where the bytes skipped last began; the first such bytes whole frames follow
    while pos < len(data):
        frame = frame_of(data[pos : pos + head])
        if frame is None:
            if data[pos : pos + 9].startswith(MP3_END_TAGS):
                break
            if (after := after_id3v2(data, pos)) > pos:
                pos = after
                continue
            nxt = _next_frame(data, pos + 1, frame_of, head)
            if nxt is None:
                cut = chained and len(data) - pos < head and data[pos] == 0xFF  # a header cut off
                return FrameChain(samples, frames, pos if cut else None, None, damaged_at)
            pos, gap, chained = nxt, pos, False
            continue
        if pos + frame.length > len(data):  # a candidate found by re-syncing in bytes after the frames is no cut
            return FrameChain(samples, frames, pos if chained else None, frame.length if chained else None,
                              damaged_at)
        damaged_at = gap if damaged_at is None and not chained else damaged_at
        frames, samples, pos, chained = frames + 1, samples + frame.samples, pos + frame.length, True
    return FrameChain(samples, frames, None, None, damaged_at)


def _vbr_frames(data: bytes | mmap.mmap, pos: int, frame: _MpegFrame) -> int | None:
    """The audio frames the frame at ``pos`` declares if it is a Xing/Info or VBRI frame (it holds no
    audio), -1 for one that does not say how many; None for an audio frame."""
    tag = data[pos + frame.tag_at : pos + frame.tag_at + 12] if frame.tag_at else b""
    if tag[:4] in (b"Xing", b"Info"):
        return struct.unpack(">I", tag[8:12])[0] if tag[7] & 1 and len(tag) == 12 else -1
    vbri = data[pos + VBRI_AT : pos + VBRI_AT + 18]
    if vbri[:4] == b"VBRI" and len(vbri) == 18:
        return struct.unpack(">I", vbri[14:18])[0]
    return None


def mp3_frames(path: Path) -> Mp3Frames | None:
    """The MPEG audio frames of the MP3 file ``path`` (MPEG-1, 2 and 2.5, layers I-III), from one walk
    over their headers; None if no frame is found (or the file is empty).

    ID3v2 tags at the start are skipped; a Xing/Info or VBRI frame first is read for the count it
    declares and not counted as audio; the frames after it are walked by :func:`frame_chain`
    (``damaged_at`` is its own, ``cut`` says it found a ``cut_at``).

    >>> import tempfile
    >>> frame = b"\\xff\\xfb\\x90\\xc4" + bytes(413)  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, mono: 417 bytes
    >>> path = Path(tempfile.mkdtemp()) / "a.mp3"
    >>> _ = path.write_bytes(frame * 3 + frame[:100])
    >>> mp3_frames(path)
    Mp3Frames(samples=3456, frames=3, declared=None, cut=True, damaged_at=None)
    >>> _ = path.write_bytes(frame * 3 + bytes(500) + frame * 2)  # bytes that are no frame, then frames again
    >>> mp3_frames(path)
    Mp3Frames(samples=5760, frames=5, declared=None, cut=False, damaged_at=1251)
    """
    if path.stat().st_size == 0:
        return None
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos = _next_frame(data, after_id3v2(data), _mpeg_frame, MPEG_HEADER)
        if pos is None:
            return None
        first = _mpeg_frame(data[pos : pos + MPEG_HEADER])
        declared = _vbr_frames(data, pos, first)  # type: ignore[arg-type]
        if declared is not None:
            pos += first.length  # type: ignore[union-attr]
        chain = frame_chain(data, pos, _mpeg_frame, MPEG_HEADER)
    return Mp3Frames(chain.samples, chain.frames, None if declared is None or declared <= 0 else declared,
                     chain.cut_at is not None, chain.damaged_at)


# --------------------------------------------------------------------------- judging a decode


def is_truncated(fmt: str, read: int, promised: int) -> bool:
    """Whether ``read`` decoded frames fall short of the ``promised`` ones of a file whose libsndfile
    format is ``fmt``. For MP3 (libsndfile says "MP3", older versions "MPEG") ``promised`` may count
    the encoder's delay and padding (what its frames hold, :func:`mp3_frames`), which a decoder
    may drop: up to :data:`MP3_SLACK` missing frames are expected there.

    >>> is_truncated("MP3", 36288, 36459), is_truncated("MP3", 30000, 36459), is_truncated("WAV", 99, 100)
    (False, True, True)
    """
    return read + (MP3_SLACK if fmt in MP3_FORMATS else 0) < promised


def check_mp3(path: Path, mp3: Mp3Frames | None) -> None:
    """An :class:`AudioError` if the MP3 file ``path`` (its frame walk: ``mp3``) is damaged in the
    middle: bytes that are no MPEG frame where one should start, then whole frames again; or if it
    holds more frames than its Xing/Info header declares (past :data:`MP3_FRAME_SLACK`): MP3 files
    joined end to end, of which libsndfile reads what the first header declares. Judged before
    decoding, as decoders differ on such files: libsndfile fails, skips the bytes or stops at the
    declared count, FFmpeg fails; and a file damaged so, not cut short, holds fewer frames than its
    Xing/Info header says."""
    if mp3 is not None and mp3.damaged_at is not None:
        raise AudioError(damaged_message(path, mp3.damaged_at, "MPEG"))
    if mp3 is not None and mp3.declared is not None and mp3.frames > mp3.declared + MP3_FRAME_SLACK:
        raise AudioError(f"audio file {path} holds {mp3.frames} MPEG frames, its Xing/Info header declares "
                         f"{mp3.declared} (MP3 files joined end to end?); re-encode it or join with ffmpeg -f concat")


def damaged_message(path: Path, at: int, kind: str) -> str:
    """Why ``path``, a stream of ``kind`` frames (``"MPEG"``, ``"ADTS"``) damaged at byte ``at``, is refused."""
    return (f"audio file {path}: the audio stream is corrupt, damaged at byte {at}: no {kind} frame starts there, "
            "yet whole frames follow (damaged in the middle, not cut short)")


def check_length(path: Path, fmt: str, read: int, promised: int, mp3: Mp3Frames | None) -> None:
    """An :class:`AudioError` if the ``read`` frames decoded from ``path`` are fewer than it holds
    (libsndfile's count, ``promised``, is itself shortened for a file cut off part-way: the
    container's own bytes, read above, say more; for an MP3 without a Xing/Info header, ``promised``
    is what its frames hold, and ``mp3`` says whether its last frame is cut or a Xing/Info header
    declares more frames than it holds), or if there are none; a file with fewer bytes of samples than
    its header declares is cut short whatever was decoded (a decoder counts compressed blocks, not
    frames); also if ``path`` is a chained Ogg, of which libsndfile decodes only the first stream."""
    data = data_chunk(path)
    if data is not None and data.present < data.declared:
        promised = max(promised, data.frames)
    if mp3 is not None and mp3.cut:
        raise AudioError(f"audio file {path} is truncated: its last MPEG frame runs past the end of the file, "
                         f"{read} samples could be read")
    if mp3 is not None and mp3.declared is not None and mp3.frames < mp3.declared:
        raise AudioError(f"audio file {path} is truncated: its Xing/Info header declares {mp3.declared} MPEG "
                         f"frames, the file holds {mp3.frames}")
    if is_truncated(fmt, read, promised):
        held = f"its MPEG frames hold {promised} samples" if mp3 is not None else f"its header promises {promised} frames"
        raise AudioError(f"audio file {path} is truncated: {held}, {read} could be read")
    if data is not None and data.present < data.declared:
        raise AudioError(f"audio file {path} is truncated: its header declares {data.declared} bytes of samples, "
                         f"{data.present} follow; {read} frames could be read")
    if fmt == "OGG":
        check_ogg(path, read)
    if read == 0 and data is not None and data.declared == 0 and data.present > 0:
        raise AudioError(f"audio file {path}: its header declares 0 data bytes but {data.present} follow: the "
                         "header was never finished (a recording cut off before it was closed); repair it "
                         "(e.g. sox --ignore-length in.wav out.wav)")
    if read == 0:
        raise AudioError(f"audio file {path} is empty (zero samples)")


def check_ogg(path: Path, read: int) -> None:
    """An :class:`AudioError` if the Ogg file ``path`` (``read`` frames decoded) is cut short or chained."""
    ogg = ogg_streams(path)
    if not ogg.ends_cleanly:
        if read == 0:
            raise AudioError(f"audio file {path} could not be decoded: no samples came out of it "
                             "(truncated or corrupt)")
        raise AudioError(f"audio file {path} is truncated: its Ogg pages stop before the end-of-stream page, "
                         f"{read} frames could be read")
    if ogg.chained > 1:
        raise AudioError(f"audio file {path} holds {ogg.chained} Ogg streams one after another (a chained Ogg); "
                         "only the first could be read: split it (e.g. ffmpeg/oggz) or join it into one stream")
