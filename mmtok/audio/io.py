"""Reading audio: files through libsndfile (wav, flac, ogg/vorbis, ogg/opus, aiff, au, mp3), and
through PyAV (:mod:`mmtok.audio.av_read`, when installed) AAC/M4A and MP3s libsndfile reads short, or
arrays, to mono float32 samples at one rate, with clear errors for unusable input; a file cut
short or damaged is refused, judged by its container's own bytes (:mod:`mmtok.audio.file_checks`),
and so is a chained Ogg (streams one after another), of which libsndfile reads only the first.
What libmpg123 (libsndfile's MP3 decoder) prints to stderr is held back (:mod:`mmtok.core.c_stderr`):
the first line it said joins the error when a read fails.

Files are decoded and resampled in blocks (:mod:`mmtok.audio.resample`), so memory follows the
*output* (``max_seconds`` at the target rate), never the input rate or the file's size.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import soundfile as sf
import torch

from mmtok.audio.adts import check_adts
from mmtok.audio.av_read import INSTALL_AV, AvReader, ffmpeg_only_kind, optional_av
from mmtok.audio.file_checks import (
    MP3_FORMATS,
    MP3_SLACK,
    check_length,
    check_mp3,
    is_truncated,
    mp3_frames,
)
from mmtok.audio.mp4_box import check_mp4
from mmtok.audio.resample import Resampler, resampler
from mmtok.core.c_stderr import first_line, held_stderr, pass_on
from mmtok.core.errors import AudioError
from mmtok.core.floats import fits_float32
from mmtok.core.paths import check_media_file

__all__ = ["MAX_CHANNELS", "MAX_FLOAT_PEAK", "MAX_SECONDS", "SAMPLE_RATE", "AudioInput", "MixedChannelsWarning",
           "SilenceWarning", "fit_length", "load_audio", "mono_chunks"]

SAMPLE_RATE = 16_000  # Hz; the rate load_audio resamples to by default (the audio tokenizer's rate)
MAX_SECONDS = 600.0  # longest file load_audio decodes by default (keyword max_seconds)
BLOCK_SAMPLES = 1 << 18  # samples (frames x channels) decoded and resampled at a time
MAX_CHANNELS = 16  # 2-D audio: an axis of at most this many entries (and the shorter one) holds the channels
MAX_FLOAT_PEAK = 64.0  # float audio is about [-1, 1]; a peak past this (36 dB over full scale: no gain
# slip makes it) is integer PCM stored as float, e.g. int16_samples.astype(np.float32), and refused
ARRAY_FIX = "divide int16 values by 32768 (int32: 2**31), or pass the integer array itself, which is scaled"
FILE_FIX = "write it again with int16 values divided by 32768 (int32: 2**31), or as integer PCM"
BATCH_HINT = "a batch is a list of clips: encode([a, b, ...]), e.g. encode(list(x)) for rows of x"  # said of
# arrays shaped like clips stacked into one

Layout = tuple[int, int]  # a stream's (channel axis, channels); axis -1: mono [S]
NOT_MPEG = (b"RIFF", b"RIFX", b"RF64", b"riff", b"FORM", b"fLaC", b"OggS", b".snd", b"dns.", b"caff")  # the
# first bytes of the WAV, W64, AIFF, FLAC, Ogg, AU and CAF files libsndfile reads without its MP3 decoder
AudioInput = Union[str, os.PathLike, np.ndarray, torch.Tensor]  # noqa: UP007 - py3.10 runtime alias


class SilenceWarning(UserWarning):
    """The warning :func:`load_audio` gives for a file of digital silence (every sample 0 once mixed to mono);
    ``path`` names the file, so that a run over many files can count them and say so once."""

    path: str = ""


class MixedChannelsWarning(UserWarning):
    """The warning :func:`load_audio` gives for an array or tensor of more than two channels, which it mixes
    into one clip (as it mixes any channel count): clips stacked into one ``[B, S]`` array read as channels.
    ``channels`` holds their count."""

    channels: int = 0


def _under_one_sample(what: str, held: int, rate: int, target_rate: int) -> str:
    """Why audio (``what``: the file, or the array) of ``held`` samples at ``rate`` Hz gives none at ``target_rate``."""
    return f"{what} holds {held} sample{'s' if held != 1 else ''} at {rate} Hz: under one sample at {target_rate} Hz"


# --------------------------------------------------------------------------- files


def _may_be_mp3(path: Path) -> bool:
    """Whether libsndfile may open ``path`` with its MP3 decoder (libmpg123), which prints to stderr:
    the file does not begin as a WAV, W64, AIFF, FLAC, Ogg, AU or CAF file does."""
    with open(path, "rb") as f:
        return not f.read(4).startswith(NOT_MPEG)


def _open_sound(path: Path, said: BinaryIO | None) -> sf.SoundFile | AvReader:
    """``path`` opened by libsndfile, or by PyAV when it is AAC/M4A, which libsndfile cannot read (an MP4
    or raw AAC cut short, and raw AAC damaged in the middle, are refused first). With ``said`` (a file
    that may be an MP3), what libsndfile's decoders print meanwhile is held there: kept for an MP3,
    whose reads are held too, named in the error if the file cannot be opened, and passed on for any
    other file."""
    try:
        with held_stderr(said) if said is not None else contextlib.nullcontext():
            snd = sf.SoundFile(str(path))
    except (sf.LibsndfileError, sf.SoundFileError, RuntimeError, ValueError, TypeError) as e:
        kind = ffmpeg_only_kind(path)
        if kind is None:
            detail = _decoder_said(said) if said is not None else ""
            raise AudioError(f"cannot read audio file {path}: {_libsndfile_said(e, path)} (corrupt, truncated or "
                             f"not audio{detail})") from e
        if said is not None:
            pass_on(said)
        check_mp4(path)
        check_adts(path)
        av = optional_av()
        if av is None:
            raise AudioError(f"cannot read audio file {path}: it is {kind}, which libsndfile does not decode; "
                             f"{INSTALL_AV} to read it through FFmpeg") from e
        snd = AvReader(av, path, kind)
    if said is not None and snd.format not in MP3_FORMATS:
        pass_on(said)
    if snd.samplerate <= 0 or snd.channels <= 0:
        snd.close()
        raise AudioError(f"audio file {path} declares {snd.samplerate} Hz and {snd.channels} channel(s)")
    return snd


def _libsndfile_said(e: Exception, path: Path) -> str:
    """What libsndfile said when it could not open ``path``, less its "File does not exist or is not a regular
    file" for a file that is there (what it says of an MP3 whose decoder finds no frames in it)."""
    said = str(e)
    if "does not exist or is not a regular file" in said and path.is_file():
        return f"libsndfile cannot decode {path.name}"
    return said


def _too_long(path: Path, seconds: float, max_seconds: float) -> str:
    return (f"audio file {path} is {seconds:.1f} s long, over max_seconds={max_seconds:g}; on the command line, cut "
            f"it into parts of at most {max_seconds:g} s (e.g. ffmpeg -i FILE -f segment -segment_time {max_seconds:g} "
            "part%03d.wav); from Python, pass load_audio(..., max_seconds=...) a larger value or None")


def _decoder_said(said: BinaryIO) -> str:
    """The first line a C decoder printed into ``said``, for the end of an error message ("" if none)."""
    line = first_line(said)
    return f"; the decoder says: {line}" if line else ""


def _decode(path: Path, snd: sf.SoundFile | AvReader, stream: Resampler, max_seconds: float | None,
            said: BinaryIO | None = None) -> tuple[list, int, int]:
    """Decode ``snd`` block by block, its channels averaged, into ``stream``: (output blocks, frames read,
    NaN/inf count). With ``said``, what C code prints while a block is read is held there."""
    block = max(1, BLOCK_SAMPLES // snd.channels)
    limit = math.inf if max_seconds is None else max_seconds * snd.samplerate + MP3_SLACK
    out: list[torch.Tensor] = []
    read = bad = 0
    while True:
        try:
            with held_stderr(said) if said is not None else contextlib.nullcontext():
                data = snd.read(block, dtype="float32", always_2d=True)  # (frames, channels)
        except AudioError:
            raise
        except (sf.LibsndfileError, sf.SoundFileError, RuntimeError, ValueError) as e:
            detail = _decoder_said(said) if said is not None else ""
            raise AudioError(f"cannot read audio file {path}: {e} (corrupt or truncated{detail})") from e
        read += data.shape[0]
        if read > limit:
            raise AudioError(_too_long(path, read / snd.samplerate, max_seconds or 0.0))
        last = data.shape[0] < block
        samples = torch.from_numpy(data)
        _check_float_peak(samples, f"audio file {path}", FILE_FIX)  # a float file (integer PCM decodes to [-1, 1))
        mono = samples.mean(1)  # (frames,)
        finite = torch.isfinite(mono)
        if not bool(finite.all()):
            bad += int((~finite).sum())
        if not bad:
            out.append(stream.push(mono, last=last))
        if last:
            return out, read, bad


def _read_file(path: Path, target_rate: int, max_seconds: float | None) -> tuple[torch.Tensor, int]:
    """Mono samples of ``path`` at ``target_rate`` (decoded and resampled in blocks) and its own rate.

    libsndfile decodes the file; PyAV what libsndfile cannot open (AAC/M4A, judged by FFmpeg alone),
    and an MP3 whose frames hold more than libsndfile gave (without a Xing/Info header it stops at its
    guess of the length), with an :class:`AudioError` that says to install it when it is missing. An
    MP3 damaged in the middle is refused before decoding; what libmpg123 prints reading an MP3 is held
    back (a WAV, FLAC or Ogg file holds nothing). An empty file, and one too short to give a sample at
    ``target_rate``, are refused too; a file of digital silence (every sample 0) is read with a SilenceWarning."""
    check_media_file(what="audio file", error=AudioError, path=path)
    if path.stat().st_size == 0:
        raise AudioError(f"audio file {path} is empty (0 bytes)")
    held = tempfile.TemporaryFile() if _may_be_mp3(path) else contextlib.nullcontext()
    with held as said, _open_sound(path, said) as snd:
        rate, fmt = snd.samplerate, snd.format
        mp3 = mp3_frames(path) if fmt in MP3_FORMATS else None
        check_mp3(path, mp3)
        guess = mp3 if mp3 is not None and mp3.declared is None else None  # no Xing/Info: libsndfile guesses
        promised = guess.samples if guess is not None else snd.frames
        if max_seconds is not None and promised > max_seconds * rate + MP3_SLACK:
            raise AudioError(_too_long(path, promised / rate, max_seconds))
        out, read, bad = _decode(path, snd, resampler(rate, target_rate), max_seconds,
                                 said if said is not None and fmt in MP3_FORMATS else None)
    if guess is not None and not guess.cut and is_truncated(fmt, read, promised):
        out, read, bad = _mp3_through_av(path, read, promised, target_rate, max_seconds)
    check_length(path, fmt, read, promised, mp3)
    if bad:
        raise AudioError(f"audio file {path} has {bad} NaN/inf sample(s)")
    audio = torch.cat(out) if out else torch.zeros(0)
    if audio.numel() == 0:
        raise AudioError(_under_one_sample(f"audio file {path}", read, rate, target_rate))
    if not bool(audio.any()):  # kept (a pause is a sound too), but said: a wrong export often looks like this
        silent = SilenceWarning(f"audio file {path} is digital silence once mixed to mono (every sample 0): its "
                                "codes will be one code repeated")
        silent.path = str(path)
        warnings.warn(silent, stacklevel=3)
    return audio, rate


def _mp3_through_av(path: Path, read: int, held: int, target_rate: int,
                    max_seconds: float | None) -> tuple[list, int, int]:
    """:func:`_decode` of the MP3 ``path`` through PyAV, of which libsndfile gave ``read`` of the
    ``held`` samples its frames hold; without PyAV an :class:`AudioError`, never a shortened clip."""
    av = optional_av()
    if av is None:
        raise AudioError(f"audio file {path}: libsndfile stops early on this MP3 (it read {read} of the {held} "
                         f"samples its MPEG frames hold: without a Xing/Info header it guesses the length); "
                         f"{INSTALL_AV} to decode it whole through FFmpeg")
    with AvReader(av, path) as snd:
        return _decode(path, snd, resampler(snd.samplerate, target_rate), max_seconds)


# --------------------------------------------------------------------------- arrays


def _channel_axis(shape: tuple[int, ...], what: str, hint: str = "") -> int:
    """The channel axis of 2-D audio: 0 (``[C, S]``) if that axis is the short one and at most
    ``MAX_CHANNELS`` long, else 1 (``[S, C]``) if it is at most that long; else an error that ends in ``hint``."""
    if shape[0] <= MAX_CHANNELS and shape[0] <= shape[1]:
        return 0
    if shape[1] <= MAX_CHANNELS:
        return 1
    raise AudioError(f"{what}: 2-D audio {shape} has no channel axis of ≤{MAX_CHANNELS} channels{hint}")


def _warn_mixed(shape: tuple[int, ...], what: str) -> None:
    """A :class:`MixedChannelsWarning` for 2-D audio of ``shape`` (checked) with more than two channels."""
    channels = shape[_channel_axis(shape, what)]
    if channels > 2:
        mixed = MixedChannelsWarning(f"{what} of shape {shape} is read as one clip of {channels} channels, mixed "
                                     f"into one; {BATCH_HINT}")
        mixed.channels = channels
        warnings.warn(mixed, stacklevel=3)


def _to_mono_float(x: np.ndarray | torch.Tensor, what: str, axis: int | None = None) -> torch.Tensor:
    """Samples ``[S]``, ``[C, S]`` or ``[S, C]`` -> mono float32 ``[S]``; ``axis`` is the channel axis of
    2-D input (None: :func:`_channel_axis` decides). Float samples are about [-1, 1]: a finite peak over
    :data:`MAX_FLOAT_PEAK` (integer PCM stored as float) is an :class:`AudioError`."""
    if isinstance(x, np.ndarray) and not x.dtype.isnative:  # big-endian data: the same values, native order
        x = x.astype(x.dtype.newbyteorder("="))
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x.detach().cpu()
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{what}: expected real audio samples, got dtype {t.dtype}")
    floats = t.is_floating_point()
    if not floats:
        scale = {torch.int16: 2.0**15, torch.int32: 2.0**31, torch.int8: 2.0**7, torch.uint8: 2.0**7}
        if t.dtype not in scale:
            raise TypeError(f"{what}: integer PCM must be int8/uint8/int16/int32, got {t.dtype}")
        t = (t.float() - 128.0 if t.dtype == torch.uint8 else t.float()) / scale[t.dtype]
    fits_float32(t, what=f"{what}: the audio", error=AudioError, why="(audio is about [-1, 1])")
    if floats:
        _check_float_peak(t, what)
    t = t.float()
    if t.numel() == 0:
        return t.reshape(0)
    if t.dim() == 2:
        t = t.mean(_channel_axis(tuple(t.shape), what, f"; {BATCH_HINT}") if axis is None else axis)
    elif t.dim() != 1:
        raise AudioError(f"{what}: expected audio of shape [S], [C, S] or [S, C], got {tuple(t.shape)}; {BATCH_HINT}")
    return t.contiguous()


def _check_float_peak(t: torch.Tensor, what: str, fix: str = ARRAY_FIX) -> None:
    """An :class:`AudioError` naming ``what`` (and saying ``fix``) if the float samples ``t`` reach a
    finite peak over :data:`MAX_FLOAT_PEAK`: integer PCM turned to float without scaling, which would
    be read as sound thousands of times too loud (NaN/inf are left to the finite check)."""
    if t.numel() == 0:
        return
    peak = float(t.abs().max())
    if math.isfinite(peak) and peak > MAX_FLOAT_PEAK:
        raise AudioError(f"{what}: float samples reach {peak:g}, far outside [-1, 1] (the limit is {MAX_FLOAT_PEAK:g}): "
                         f"integer PCM stored as float? {fix}")


def _settled_layout(shape: tuple[int, ...], what: str, channels_first: bool | None) -> Layout | None:
    """The layout a chunk of this shape fixes for its whole stream (axis -1: mono ``[S]``), or None while
    it cannot tell: ``[a, b]`` with both sides short enough to be channels, and no ``channels_first``."""
    if len(shape) == 1:
        return -1, 1
    if len(shape) != 2:
        raise AudioError(f"{what}: expected audio of shape [S], [C, S] or [S, C], got {shape}")
    if channels_first is not None:
        axis = 0 if channels_first else 1
        if shape[axis] > MAX_CHANNELS:
            raise AudioError(f"{what} has shape {shape}: with channels_first={channels_first} that is "
                             f"{shape[axis]} channels, over {MAX_CHANNELS}; check which axis the chunks put channels on")
        return axis, shape[axis]
    if max(shape) > MAX_CHANNELS:
        axis = _channel_axis(shape, what)
        return axis, shape[axis]
    return None


def _narrow(fits: set[Layout] | None, shape: tuple[int, ...], what: str) -> set[Layout]:
    """The layouts that the chunks before (``fits``; None: there were none) and one more short chunk
    ``[a, b]`` all fit: ``[C, S]`` with ``a`` channels, or ``[S, C]`` with ``b``."""
    both = {(0, shape[0]), (1, shape[1])}
    fits = both if fits is None else fits & both
    if not fits:
        raise AudioError(f"{what} has shape {shape}, which fits no layout the chunks before it fit; "
                         "give every chunk the same channels on the same axis")
    return fits


def _one_layout(fits: set[Layout]) -> Layout | None:
    """The layout to read chunks that fit every layout in ``fits`` with; None while two of them read
    the chunks differently (``[1, 1]`` chunks fit ``[C, S]`` and ``[S, C]`` alike: one sample either way)."""
    return min(fits) if len(fits) == 1 or all(channels == 1 for _, channels in fits) else None


def _layout_unknown(caller: str, shape: tuple[int, ...]) -> AudioError:
    return AudioError(f"{caller}: its chunks, such as {shape}, are too short to tell channels from samples (both "
                      f"sides ≤{MAX_CHANNELS}: [C, S] or [S, C]); pass channels_first=True for chunks [C, S] or "
                      "channels_first=False for chunks [S, C]")


def _in_layout(chunk: np.ndarray | torch.Tensor, layout: Layout, what: str) -> torch.Tensor:
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


def mono_chunks(chunks: Iterable[np.ndarray | torch.Tensor], *, caller: str = "encode_stream",
                channels_first: bool | None = None) -> Iterator[torch.Tensor]:
    """Mono float32 samples of consecutive chunks of one recording, all read with one channel layout.

    ``channels_first`` (True: chunks ``[C, S]``, False: ``[S, C]``) gives the layout; None finds it
    from the chunks: the first whose shape settles it (``[S]``, or ``[a, b]`` with one side over
    ``MAX_CHANNELS``) fixes it for every chunk, those before it included, so a short tail such as
    ``[2, 1]`` after ``[2, 4000]`` chunks is one stereo sample, not two mono ones. Short chunks
    (``[a, b]``, both sides up to ``MAX_CHANNELS``) wait for one that settles it, or for shapes that
    only one layout fits (``[2, 3]`` then ``[2, 5]``: two channels first); a stream whose short
    chunks two layouts fit (every chunk ``[2, 2]``, or ``[2, 1]``) is an :class:`AudioError` that
    asks for ``channels_first``, at its end or once the chunks held reach ``BLOCK_SAMPLES`` samples.
    Empty chunks are skipped; errors name ``caller`` and the chunk. One array or tensor given as
    ``chunks`` is a ``TypeError`` here, before any chunk is read (iterating it would take its rows,
    or its samples, for chunks).

    >>> [c.numel() for c in mono_chunks([np.zeros((2, 777)), np.zeros((2, 1))])]
    [777, 1]
    >>> [c.numel() for c in mono_chunks([np.zeros((2, 2)), np.zeros((2, 1))], channels_first=True)]
    [2, 1]
    """
    if isinstance(chunks, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{caller} takes an iterable of chunks (a list or generator of arrays), not one "
                        f"{type(chunks).__name__} of shape {tuple(chunks.shape)}; for one array use "
                        "encode(x, sample_rate, chunk_seconds=...)")
    if channels_first is not None and not isinstance(channels_first, (bool, np.bool_)):
        raise TypeError(f"{caller}: channels_first must be True ([C, S] chunks), False ([S, C]) or None "
                        f"(found from the chunks), got {channels_first!r}")
    return _mono_chunks(chunks, caller, None if channels_first is None else bool(channels_first))


def _mono_chunks(chunks: Iterable[np.ndarray | torch.Tensor], caller: str,
                 channels_first: bool | None) -> Iterator[torch.Tensor]:
    """:func:`mono_chunks` once its arguments are checked."""
    layout: Layout | None = None
    fits: set[Layout] | None = None  # while no chunk settles the layout: those every chunk so far fits
    held: list[tuple[str, np.ndarray | torch.Tensor]] = []  # chunks not read yet, for want of a layout
    waiting = 0  # samples in held
    for i, chunk in enumerate(chunks):
        what = f"{caller} chunk {i}"
        if not _has_samples(chunk, what):
            continue
        held.append((what, chunk))
        shape = tuple(chunk.shape)
        if layout is None:
            layout = _settled_layout(shape, what, channels_first)
        if layout is None:
            fits = _narrow(fits, shape, what)
            layout = _one_layout(fits)
            waiting += math.prod(shape)
            if layout is None:
                if waiting > BLOCK_SAMPLES:
                    raise _layout_unknown(caller, shape)
                continue
        for w, c in held:
            yield _finite(_in_layout(c, layout, w), w)
        held = []
    if held:
        raise _layout_unknown(caller, tuple(held[0][1].shape))


def _has_samples(chunk: object, what: str) -> bool:
    """Whether ``chunk`` (a numpy array or tensor, else a ``TypeError`` naming ``what``) is not empty."""
    if not isinstance(chunk, (np.ndarray, torch.Tensor)):
        kind = f"a path ({chunk})" if isinstance(chunk, (str, os.PathLike)) else type(chunk).__name__
        raise TypeError(f"{what} is {kind}; chunks are numpy arrays or tensors of samples")
    return math.prod(chunk.shape) > 0


def _finite(audio: torch.Tensor, what: str) -> torch.Tensor:
    """``audio`` unchanged; an AudioError naming ``what`` if it has NaN/inf samples."""
    if not bool(torch.isfinite(audio).all()):
        bad = int((~torch.isfinite(audio)).sum())
        raise AudioError(f"{what} has {bad} NaN/inf sample(s)")
    return audio


def _resample_array(audio: torch.Tensor, rate: int, target_rate: int) -> torch.Tensor:
    """Resample an in-memory signal with the same streamed resampler as files use."""
    if rate == target_rate:
        return audio
    stream = resampler(rate, target_rate)
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

    ``x`` is a path (wav, flac, ogg/vorbis, mp3: anything libsndfile reads; AAC/M4A through
    PyAV) or a numpy array / tensor ``[S]``, ``[C, S]`` or ``[S, C]`` recorded at ``sample_rate`` (a
    positive whole number of Hz: an int, a numpy integer or an integral float such as 16000.0).
    Channels are averaged (an array of more than two gives a :class:`MixedChannelsWarning`: clips
    stacked ``[B, S]`` read as channels, and a batch is a list), integer PCM is scaled to [-1, 1),
    float samples peaking over :data:`MAX_FLOAT_PEAK` (integer PCM stored as float, in an array or a
    float WAV/AIFF/AU file) are refused, and the rate is
    changed with a band-limited resampler (see the module docstring). Files are
    decoded in blocks; one longer than ``max_seconds`` (default ``MAX_SECONDS``,
    10 minutes; None: no limit) is refused with an :class:`AudioError` before
    it fills memory. A file cut short, whose header was never finished, that is empty
    or too short to give one sample at ``target_rate`` (an array too) is an :class:`AudioError` that
    says so; a path that does not exist raises :class:`MissingFileError` (a
    ``FileNotFoundError``); a file of digital silence gives a :class:`SilenceWarning`.

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
    if x.ndim == 2:
        _warn_mixed(tuple(x.shape), what)
    out = _resample_array(_finite(audio, what), rate, target_rate)
    if out.numel() == 0:
        raise AudioError(_under_one_sample(f"{what} of shape {tuple(x.shape)}", audio.numel(), rate, target_rate))
    return out


def fit_length(deg: torch.Tensor, length: int) -> torch.Tensor:
    """Samples ``[..., S]`` cut, or padded with zeros, at their end to ``length`` samples: a decoded
    waveform (whole tokens: up to one token longer than what was encoded) lined up with the original.

    >>> fit_length(torch.ones(5), 3).tolist(), fit_length(torch.ones(2), 3).tolist()
    ([1.0, 1.0, 1.0], [1.0, 1.0, 0.0])
    """
    return torch.nn.functional.pad(deg, (0, max(0, length - deg.shape[-1])))[..., :length]
