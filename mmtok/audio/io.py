"""Reading audio: files through libsndfile (wav, flac, ogg/vorbis, mp3) or arrays,
to mono float32 samples at one rate, with clear errors for unusable input.

Files are decoded and resampled in blocks, so memory follows the *output*
(``max_seconds`` at the target rate), never the input rate or the file's size:

- rates whose ratio to the target reduces to ``p/q`` with ``p, q <= EXACT_RATIO_MAX``
  (8000, 11025, 22050, 24000, 32000, 44100, 48000, 96000, 384000 -> 16000, ...)
  keep the windowed-sinc resampler of ``torchaudio.functional.resample``
  (Hann window, 6 zero crossings, rolloff 0.99), streamed: the samples are the
  ones it gives for the whole signal, so codes made before stay the same;
- any other ratio (48001 -> 16000 reduces to 48001/16000, whose sinc kernel
  would take gigabytes) goes through soxr's bounded polyphase resampler (HQ).
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol, Union

import numpy as np
import soundfile as sf
import soxr
import torch
import torch.nn.functional as F

from mmtok.core.errors import AudioError
from mmtok.core.floats import fits_float32
from mmtok.core.paths import check_media_file

__all__ = ["MAX_CHANNELS", "MAX_SECONDS", "SAMPLE_RATE", "AudioInput", "is_truncated", "load_audio", "mono_chunks"]

SAMPLE_RATE = 16_000  # Hz; the rate load_audio resamples to by default (the audio tokenizer's rate)
MAX_SECONDS = 600.0  # longest file load_audio decodes by default (keyword max_seconds)
BLOCK_SAMPLES = 1 << 18  # samples (frames x channels) decoded and resampled at a time
MAX_CHANNELS = 16  # 2-D audio: an axis of at most this many entries (and the shorter one) holds the channels
EXACT_RATIO_MAX = 1000  # reduced ratios p/q with p, q up to this keep the exact sinc resampler
SINC_ZEROS = 6  # zero crossings on each side of the sinc kernel (torchaudio's lowpass_filter_width)
SINC_ROLLOFF = 0.99  # cutoff as a fraction of the lower Nyquist rate (torchaudio's rolloff)
MP3_SLACK = 2 * 1152  # frames: libsndfile's MP3 frame counts are approximate (two MPEG frames)

AudioInput = Union[str, os.PathLike, np.ndarray, torch.Tensor]  # noqa: UP007 - py3.10 runtime alias


# --------------------------------------------------------------------------- resampling


def _sinc_kernel(orig: int, new: int) -> tuple[torch.Tensor, int]:
    """The windowed-sinc kernel ``[new, 1, 2 * width + orig]`` and ``width`` for reduced rates ``orig -> new``.

    The same float32 numbers as ``torchaudio.functional.resample`` (sinc_interp_hann) computes.
    """
    base = min(orig, new) * SINC_ROLLOFF
    width = math.ceil(SINC_ZEROS * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float32)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float32)[:, None, None] / new + idx  # (new, 1, K)
    t *= base
    t = t.clamp_(-SINC_ZEROS, SINC_ZEROS)
    window = torch.cos(t * math.pi / SINC_ZEROS / 2) ** 2
    t *= math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernel *= window * (base / orig)
    return kernel, width


class _Stream(Protocol):
    def push(self, x: torch.Tensor, *, last: bool) -> torch.Tensor: ...


class _SincStream:
    """``torchaudio.functional.resample`` fed block by block: one strided conv per block.

    Output frame ``j`` (``new`` samples) reads input ``[j*orig - width, j*orig + orig + width)``
    of the zero-padded signal, so a block needs only ``2 * width`` samples of overlap.
    """

    def __init__(self, orig: int, new: int) -> None:
        self.orig, self.new = orig, new
        self.kernel, self.width = _sinc_kernel(orig, new)
        self.buf = torch.zeros(self.width)  # the left zero padding, then samples not yet consumed
        self.seen = 0  # input samples pushed
        self.made = 0  # output samples returned

    def push(self, x: torch.Tensor, *, last: bool) -> torch.Tensor:
        self.seen += x.numel()
        parts = [self.buf, x] + ([torch.zeros(self.width + self.orig)] if last else [])
        buf = torch.cat(parts)
        span = 2 * self.width + self.orig  # input samples under one output frame
        frames = (buf.numel() - span) // self.orig + 1 if buf.numel() >= span else 0
        y = torch.zeros(0)
        if frames:
            used = buf[: (frames - 1) * self.orig + span]
            y = F.conv1d(used[None, None], self.kernel, stride=self.orig)  # (1, new, frames)
            y = y.transpose(1, 2).reshape(-1)
        self.buf = buf[frames * self.orig :]
        if last:  # the length torchaudio keeps: ceil(new * S / orig)
            y = y[: max(0, -(-self.new * self.seen // self.orig) - self.made)]
        self.made += y.numel()
        return y


class _SoxrStream:
    """soxr's streaming polyphase resampler (quality HQ): bounded memory for any ratio."""

    def __init__(self, orig: int, new: int) -> None:
        self.rs = soxr.ResampleStream(orig, new, 1, dtype="float32", quality="HQ")

    def push(self, x: torch.Tensor, *, last: bool) -> torch.Tensor:
        return torch.from_numpy(self.rs.resample_chunk(x.numpy(), last=last).copy())


class _Identity:
    def push(self, x: torch.Tensor, *, last: bool) -> torch.Tensor:
        return x


def _resampler(rate: int, target_rate: int) -> _Stream:
    """The streaming resampler for ``rate -> target_rate`` (see the module docstring for the rule)."""
    if rate == target_rate:
        return _Identity()
    g = math.gcd(rate, target_rate)
    if max(rate // g, target_rate // g) <= EXACT_RATIO_MAX:
        return _SincStream(rate // g, target_rate // g)
    return _SoxrStream(rate, target_rate)


# --------------------------------------------------------------------------- files


def _wav_frames(path: Path) -> tuple[int, int] | None:
    """(frames the RIFF/WAVE header promises, frames the file holds), or None for other files."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = os.fstat(f.fileno()).st_size
        align = 0
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None  # no data chunk: libsndfile decides
            cid, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(min(length, 16))
                align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else 0
                f.seek(length - len(fmt) + (length & 1), os.SEEK_CUR)
            elif cid == b"data":
                if not align or length == 0xFFFFFFFF:  # no usable fmt, or a streamed file
                    return None
                return length // align, max(0, size - f.tell()) // align
            else:
                f.seek(length + (length & 1), os.SEEK_CUR)


def _open_sound(path: Path, max_seconds: float | None) -> sf.SoundFile:
    try:
        snd = sf.SoundFile(str(path))
    except (sf.LibsndfileError, sf.SoundFileError, RuntimeError, ValueError, TypeError) as e:
        raise AudioError(f"cannot read audio file {path}: {e} (corrupt, truncated or not audio)") from e
    if snd.samplerate <= 0 or snd.channels <= 0:
        snd.close()
        raise AudioError(f"audio file {path} declares {snd.samplerate} Hz and {snd.channels} channel(s)")
    if max_seconds is not None and snd.frames > max_seconds * snd.samplerate + MP3_SLACK:
        snd.close()
        raise AudioError(_too_long(path, snd.frames / snd.samplerate, max_seconds))
    return snd


def _too_long(path: Path, seconds: float, max_seconds: float) -> str:
    return (f"audio file {path} is {seconds:.1f} s long, over max_seconds={max_seconds:g}; on the command line, cut "
            f"it into parts of at most {max_seconds:g} s (e.g. ffmpeg -i FILE -f segment -segment_time {max_seconds:g} "
            "part%03d.wav); from Python, pass load_audio(..., max_seconds=...) a larger value or None")


def _decode(path: Path, snd: sf.SoundFile, stream: _Stream, max_seconds: float | None) -> tuple[list, int, int]:
    """Decode ``snd`` block by block into ``stream``: (output blocks, frames read, NaN/inf count)."""
    block = max(1, BLOCK_SAMPLES // snd.channels)
    limit = math.inf if max_seconds is None else max_seconds * snd.samplerate + MP3_SLACK
    out: list[torch.Tensor] = []
    read = bad = 0
    while True:
        try:
            data = snd.read(block, dtype="float32", always_2d=True)  # (frames, channels)
        except (sf.LibsndfileError, sf.SoundFileError, RuntimeError, ValueError) as e:
            raise AudioError(f"cannot read audio file {path}: {e} (corrupt or truncated)") from e
        read += data.shape[0]
        if read > limit:
            raise AudioError(_too_long(path, read / snd.samplerate, max_seconds or 0.0))
        last = data.shape[0] < block
        mono = torch.from_numpy(data).mean(1)  # (frames,)
        finite = torch.isfinite(mono)
        if not bool(finite.all()):
            bad += int((~finite).sum())
        if not bad:
            out.append(stream.push(mono, last=last))
        if last:
            return out, read, bad


def _ogg_ends_cleanly(path: Path) -> bool:
    """Whether ``path`` is a sequence of whole Ogg pages whose last one marks the end of the stream.

    libsndfile reports zero frames both for an Ogg file that holds no samples and for one cut off
    in its first audio page; only the first ends this way.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        pos, last_flags = 0, None
        while pos < size:
            f.seek(pos)
            head = f.read(27)  # capture pattern, version, flags, granule, serial, sequence, CRC, segments
            if len(head) < 27 or head[:4] != b"OggS":
                return False
            table = f.read(head[26])
            if len(table) < head[26]:
                return False
            pos += 27 + len(table) + sum(table)
            last_flags = head[5]
    return pos == size and last_flags is not None and bool(last_flags & 0x04)  # 0x04: end of stream


def is_truncated(fmt: str, read: int, promised: int) -> bool:
    """Whether ``read`` decoded frames fall short of the ``promised`` ones of a file whose libsndfile
    format is ``fmt``. MP3 headers (libsndfile says "MP3", older versions "MPEG") count the encoder's
    padding too, so up to :data:`MP3_SLACK` missing frames are expected there.

    >>> is_truncated("MP3", 36288, 36459), is_truncated("MP3", 30000, 36459), is_truncated("WAV", 99, 100)
    (False, True, True)
    """
    return read + (MP3_SLACK if fmt in ("MP3", "MPEG") else 0) < promised


def _read_file(path: Path, target_rate: int, max_seconds: float | None) -> tuple[torch.Tensor, int]:
    """Mono samples of ``path`` at ``target_rate`` (decoded and resampled in blocks) and its own rate."""
    check_media_file(what="audio file", error=AudioError, path=path)
    snd = _open_sound(path, max_seconds)
    with snd:
        rate, promised, fmt = snd.samplerate, snd.frames, snd.format
        out, read, bad = _decode(path, snd, _resampler(rate, target_rate), max_seconds)
    wav = _wav_frames(path) if fmt == "WAV" else None
    if wav is not None and wav[0] > wav[1]:
        promised = wav[0]
    # libsndfile quietly shortens truncated files: compare with what the header promised
    if is_truncated(fmt, read, promised):
        raise AudioError(
            f"audio file {path} is truncated: its header promises {promised} frames, {read} could be read"
        )
    if read == 0 and fmt == "OGG" and not _ogg_ends_cleanly(path):
        raise AudioError(f"audio file {path} could not be decoded: no samples came out of it (truncated or corrupt)")
    if read == 0:
        raise AudioError(f"audio file {path} is empty (zero samples)")
    if bad:
        raise AudioError(f"audio file {path} has {bad} NaN/inf sample(s)")
    return torch.cat(out) if out else torch.zeros(0), rate


# --------------------------------------------------------------------------- arrays


def _channel_axis(shape: tuple[int, ...], what: str) -> int:
    """The channel axis of 2-D audio: 0 (``[C, S]``) if that axis is the short one and at most
    ``MAX_CHANNELS`` long, else 1 (``[S, C]``) if it is at most that long."""
    if shape[0] <= MAX_CHANNELS and shape[0] <= shape[1]:
        return 0
    if shape[1] <= MAX_CHANNELS:
        return 1
    raise AudioError(f"{what}: 2-D audio {shape} has no channel axis of ≤{MAX_CHANNELS} channels")


def _to_mono_float(x: np.ndarray | torch.Tensor, what: str, axis: int | None = None) -> torch.Tensor:
    """Samples ``[S]``, ``[C, S]`` or ``[S, C]`` -> mono float32 ``[S]``; ``axis`` is the channel axis of
    2-D input (None: :func:`_channel_axis` decides)."""
    if isinstance(x, np.ndarray) and not x.dtype.isnative:  # big-endian data: the same values, native order
        x = x.astype(x.dtype.newbyteorder("="))
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x.detach().cpu()
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{what}: expected real audio samples, got dtype {t.dtype}")
    if not t.is_floating_point():
        scale = {torch.int16: 2.0**15, torch.int32: 2.0**31, torch.int8: 2.0**7, torch.uint8: 2.0**7}
        if t.dtype not in scale:
            raise TypeError(f"{what}: integer PCM must be int8/uint8/int16/int32, got {t.dtype}")
        t = (t.float() - 128.0 if t.dtype == torch.uint8 else t.float()) / scale[t.dtype]
    fits_float32(t, what=f"{what}: the audio", error=AudioError, why="(audio is about [-1, 1])")
    t = t.float()
    if t.numel() == 0:
        return t.reshape(0)
    if t.dim() == 2:
        t = t.mean(_channel_axis(tuple(t.shape), what) if axis is None else axis)
    elif t.dim() != 1:
        raise AudioError(f"{what}: expected audio of shape [S], [C, S] or [S, C], got {tuple(t.shape)}")
    return t.contiguous()


def _settled_layout(shape: tuple[int, ...], what: str) -> tuple[int, int] | None:
    """``(channel axis, channels)`` that a chunk of this shape fixes for its whole stream (axis -1: mono
    ``[S]``), or None while it cannot tell: ``[a, b]`` with both sides short enough to be channels."""
    if len(shape) == 1:
        return -1, 1
    if len(shape) != 2:
        raise AudioError(f"{what}: expected audio of shape [S], [C, S] or [S, C], got {shape}")
    if max(shape) > MAX_CHANNELS:
        axis = _channel_axis(shape, what)
        return axis, shape[axis]
    return None


def _in_layout(chunk: np.ndarray | torch.Tensor, layout: tuple[int, int], what: str) -> torch.Tensor:
    """Mono samples of one chunk read with its stream's ``layout``; a chunk of another layout is an error."""
    axis, channels = layout
    shape = tuple(chunk.shape)
    if len(shape) == 1:
        fits = axis < 0 or channels == 1
    else:
        fits = len(shape) == 2 and axis >= 0 and shape[axis] == channels
    if not fits:
        fixed = ("mono [S]" if axis < 0 else f"[{channels}, S] (channels first)" if axis == 0
                 else f"[S, {channels}] (channels last)")
        raise AudioError(f"{what} has shape {shape}, but the chunks before it fixed the stream's layout as "
                         f"{fixed}; give every chunk the same channels on the same axis")
    return _to_mono_float(chunk, what, axis if len(shape) == 2 else None)


def mono_chunks(chunks: Iterable[np.ndarray | torch.Tensor], *,
                caller: str = "encode_stream") -> Iterator[torch.Tensor]:
    """Mono float32 samples of consecutive chunks of one recording, all read with one channel layout.

    The first chunk whose shape settles it (``[S]``, or ``[a, b]`` with one side over ``MAX_CHANNELS``)
    fixes the layout for every chunk, those before it included, so a short tail such as ``[2, 1]`` of a
    ``[2, S]`` recording is one stereo sample, not two mono ones; a stream of only short chunks takes
    the layout its first chunk would have alone. Empty chunks are skipped; errors name ``caller`` and
    the chunk. One array or tensor given as ``chunks`` is a ``TypeError`` here, before any chunk is read
    (iterating it would take its rows, or its samples, for chunks).

    >>> [c.numel() for c in mono_chunks([np.zeros((2, 777)), np.zeros((2, 1))])]
    [777, 1]
    """
    if isinstance(chunks, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{caller} takes an iterable of chunks (a list or generator of arrays), not one "
                        f"{type(chunks).__name__} of shape {tuple(chunks.shape)}; for one array use "
                        "encode(x, sample_rate, chunk_seconds=...)")
    return _mono_chunks(chunks, caller)


def _mono_chunks(chunks: Iterable[np.ndarray | torch.Tensor], caller: str) -> Iterator[torch.Tensor]:
    """:func:`mono_chunks` once its argument is checked."""
    layout: tuple[int, int] | None = None
    held: list[tuple[str, np.ndarray | torch.Tensor]] = []  # chunks that came before the layout was known
    for i, chunk in enumerate(chunks):
        what = f"{caller} chunk {i}"
        if not isinstance(chunk, (np.ndarray, torch.Tensor)):
            kind = f"a path ({chunk})" if isinstance(chunk, (str, os.PathLike)) else type(chunk).__name__
            raise TypeError(f"{what} is {kind}; chunks are numpy arrays or tensors of samples")
        if chunk.size == 0 if isinstance(chunk, np.ndarray) else chunk.numel() == 0:
            continue
        if layout is None:
            layout = _settled_layout(tuple(chunk.shape), what)
            if layout is None:
                held.append((what, chunk))
                continue
        for w, c in held:
            yield _finite(_in_layout(c, layout, w), w)
        held = []
        yield _finite(_in_layout(chunk, layout, what), what)
    if held:
        first = tuple(held[0][1].shape)
        axis = _channel_axis(first, held[0][0])
        for w, c in held:
            yield _finite(_in_layout(c, (axis, first[axis]), w), w)


def _finite(audio: torch.Tensor, what: str) -> torch.Tensor:
    """``audio`` unchanged; an AudioError naming ``what`` if it has NaN/inf samples."""
    if not bool(torch.isfinite(audio).all()):
        bad = int((~torch.isfinite(audio)).sum())
        raise AudioError(f"{what} has {bad} NaN/inf sample(s)")
    return audio


def _resample_array(audio: torch.Tensor, rate: int, target_rate: int) -> torch.Tensor:
    """Resample an in-memory signal with the same streamed resampler as files use."""
    stream = _resampler(rate, target_rate)
    if isinstance(stream, _Identity):
        return audio
    n = audio.numel()
    outs = [stream.push(audio[i : i + BLOCK_SAMPLES], last=i + BLOCK_SAMPLES >= n) for i in range(0, n, BLOCK_SAMPLES)]
    return torch.cat(outs)


# --------------------------------------------------------------------------- the entry point


def _whole_hz(value: object, name: str, *, floats: bool) -> int:
    """``value`` as a positive whole number of Hz (numpy integers too; with ``floats``, an integral
    float such as 16000.0 as well); anything else, bool included, is an :class:`AudioError`."""
    whole = isinstance(value, (int, np.integer)) or (
        floats and isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer())
    if isinstance(value, (bool, np.bool_)) or not whole or value <= 0:  # type: ignore[operator]
        kind = "whole number" if floats else "integer"
        raise AudioError(f"{name} must be a positive {kind} of Hz, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def load_audio(
    x: AudioInput,
    sample_rate: int | None = None,
    *,
    target_rate: int = SAMPLE_RATE,
    max_seconds: float | None = MAX_SECONDS,
) -> torch.Tensor:
    """Mono float32 samples ``[S]`` at ``target_rate`` from a file or an array.

    ``x`` is a path (wav, flac, ogg/vorbis, mp3: anything libsndfile reads) or a
    numpy array / tensor ``[S]``, ``[C, S]`` or ``[S, C]`` recorded at ``sample_rate`` (a positive
    whole number of Hz: an int, a numpy integer or an integral float such as 16000.0).
    Channels are averaged, integer PCM is scaled to [-1, 1), and the rate is
    changed with a band-limited resampler (see the module docstring). Files are
    decoded in blocks; one longer than ``max_seconds`` (default ``MAX_SECONDS``,
    10 minutes; None: no limit) is refused with an :class:`AudioError` before
    it fills memory. A path that does not exist raises :class:`MissingFileError`
    (a ``FileNotFoundError``).

    >>> load_audio(np.zeros((2, 441), dtype=np.int16), 44100).shape
    torch.Size([160])
    """
    target_rate = _whole_hz(target_rate, "target_rate", floats=False)
    if sample_rate is not None:
        sample_rate = _whole_hz(sample_rate, "sample_rate", floats=True)
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0 or None, got {max_seconds!r}")
    if isinstance(x, (str, os.PathLike)):
        audio, rate = _read_file(Path(x), target_rate, max_seconds)
        if sample_rate is not None and sample_rate != rate:
            raise AudioError(f"audio file {x} is recorded at {rate} Hz; do not pass sample_rate={sample_rate}")
        return audio
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise TypeError(f"load_audio takes a path, numpy array or tensor, got {type(x).__name__}")
    what = "audio array"
    if sample_rate is None:
        raise AudioError("an audio array needs its sample_rate, e.g. load_audio(wave, 44100)")
    rate = sample_rate
    audio = _to_mono_float(x, what)
    if audio.numel() == 0:
        raise AudioError(f"{what} is empty (zero samples)")
    return _resample_array(_finite(audio, what), rate, target_rate)
