"""Reading audio: files through libsndfile (wav, flac, ogg/vorbis, ogg/opus, aiff, au, mp3), and
through PyAV (:mod:`mmtok.audio.av_read`, when installed) AAC/M4A and MP3s libsndfile reads short, or
arrays (their channel rules in :mod:`mmtok.audio.arrays`), to mono float32 samples at one rate, with
clear errors for unusable input; a file cut short or damaged is refused, judged by its container's own
bytes (:mod:`mmtok.audio.file_checks`), and so is a chained Ogg (streams one after another), of which
libsndfile reads only the first. What libmpg123 (libsndfile's MP3 decoder) prints to stderr is held
back (:mod:`mmtok.core.c_stderr`): the first line it said joins the error when a read fails.

Files are decoded and resampled in blocks (:mod:`mmtok.audio.resample`), so memory follows the
*output* (``max_seconds`` at the target rate), never the input rate or the file's size.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import warnings
from contextvars import ContextVar
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, Union

import numpy as np
import soundfile as sf
import torch

from mmtok.audio.adts import check_adts
from mmtok.audio.arrays import (
    BLOCK_SAMPLES,
    check_float_peak,
    energy,
    finite,
    resample_array,
    to_mono_float,
    warn_cancelled,
    warn_mixed,
)
from mmtok.audio.av_read import INSTALL_AV, AvReader, ffmpeg_only_kind, optional_av
from mmtok.audio.file_checks import (
    MP3_FORMATS,
    MP3_SLACK,
    check_length,
    check_mp3,
    is_truncated,
    mp3_frames,
)
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.mp4_box import check_mp4
from mmtok.audio.resample import Resampler, resampler
from mmtok.core.c_stderr import first_line, held_stderr, pass_on
from mmtok.core.errors import AudioError
from mmtok.core.paths import check_media_file
from mmtok.core.seconds import check_max_seconds
from mmtok.core.warning_filters import user_stacklevel

__all__ = ["MAX_SECONDS", "SILENCE_SINK", "AudioInput", "SampleRate", "SilenceWarning", "audio_samples",
           "fit_length", "load_audio", "warn_silence"]

MAX_SECONDS = 600.0  # longest file load_audio decodes by default (keyword max_seconds)
CANCEL_FIX = ("keep one channel (e.g. ffmpeg -i FILE -af 'pan=mono|c0=c0' out.wav), or load it with soundfile and "
              "pass one channel as an array")
FILE_FIX = "write it again with int16 values divided by 32768 (int32: 2**31), or as integer PCM"

UNSTATED_FRAMES = 1 << 62  # libsndfile's frame count for a stream whose header leaves its length unstated (2**63 - 1)
NOT_MPEG = (b"RIFF", b"RIFX", b"RF64", b"riff", b"FORM", b"fLaC", b"OggS", b".snd", b"dns.", b"caff")  # the
# first bytes of the WAV, W64, AIFF, FLAC, Ogg, AU and CAF files libsndfile reads without its MP3 decoder
AudioInput = Union[str, os.PathLike, np.ndarray, torch.Tensor]  # noqa: UP007 - py3.10 runtime alias
# a rate in Hz as load_audio takes it: an int, a numpy integer or an integral float (16000.0); checked by _whole_hz
SampleRate = Union[int, float, np.integer[Any], np.floating[Any]]  # noqa: UP007 - py3.10 runtime alias


class SilenceWarning(UserWarning):
    """The warning :func:`load_audio` gives for a file of digital silence (every sample 0 once mixed to mono);
    ``path`` names the file, so that a run over many files can count them and say so once."""

    path: str = ""


# where this thread's (or task's) silence warnings go instead of the warnings machinery: set by
# mmtok.data.media_files.silence_collected, never a process-wide filter or showwarning
SILENCE_SINK: ContextVar[list[SilenceWarning] | None] = ContextVar("mmtok_silence_sink", default=None)


def warn_silence(warning: SilenceWarning) -> None:
    """Give ``warning``: into the list of the innermost ``silence_collected`` of this thread or task, or else as a
    warning at the user's line (:func:`~mmtok.core.warning_filters.user_stacklevel`)."""
    sink = SILENCE_SINK.get()
    if sink is not None:
        sink.append(warning)
    else:
        warnings.warn(warning, stacklevel=user_stacklevel())


def _under_one_sample(what: str, held: int, rate: int, target_rate: int) -> str:
    """Why audio (``what``: the file, or the array) of ``held`` samples at ``rate`` Hz gives none at ``target_rate``."""
    return f"{what} holds {held} sample{'s' if held != 1 else ''} at {rate} Hz: under one sample at {target_rate} Hz"


# --------------------------------------------------------------------------- files


class _ReadFailed(AudioError):
    """libsndfile failed while reading a file it had opened (what :func:`_read_file` may retry through PyAV)."""

    reason: str = ""  # what libsndfile said, and the decoder's first line


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
            snd = sf.SoundFile(_sf_name(path))
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
    if isinstance(snd, sf.SoundFile):
        snd = _from_the_start(path, snd)
    if snd.samplerate <= 0 or snd.channels <= 0:
        snd.close()
        raise AudioError(f"audio file {path} declares {snd.samplerate} Hz and {snd.channels} channel(s)")
    return snd


def _sf_name(path: Path) -> str | bytes:
    """``path`` as libsndfile is given it: its text, or its bytes where the name is no valid UTF-8 (soundfile encodes
    a ``str`` strictly, so a name such as ``b'bad\\xff.wav'`` would be refused as if the file were corrupt)."""
    name = str(path)
    try:
        name.encode()
    except UnicodeEncodeError:
        return os.fsencode(path)
    return name


def _from_the_start(path: Path, snd: sf.SoundFile) -> sf.SoundFile | AvReader:
    """``snd`` ready to read from its first sample, or FFmpeg's reader where libsndfile cannot read the file whole.

    - Ogg Opus: libsndfile (1.2) opens it positioned past the stream's pre-skip without applying it, so the first
      read starts that many samples late (312 for FFmpeg's files): a seek to 0 puts it where it belongs.
    - A stream whose header does not state its length (a FLAC written to a pipe: STREAMINFO total 0, "unknown")
      gets a length of 2**63 - 1 from libsndfile, and its reads fail at the end: PyAV decodes it, or the error
      says to install it.
    """
    if snd.format == "OGG" and snd.subtype == "OPUS" and snd.seekable():
        snd.seek(0)
        return snd
    if snd.frames < UNSTATED_FRAMES:
        return snd
    fmt = snd.format
    snd.close()
    av = optional_av()
    if av is None:
        raise AudioError(f"cannot read audio file {path}: its {fmt} header does not state its length, which "
                         f"libsndfile cannot read to the end; {INSTALL_AV} to read it through FFmpeg")
    return AvReader(av, path, fmt)


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


class _Decoded(NamedTuple):
    """What :func:`_decode` gave: the output blocks, and what was seen of the file on the way."""

    out: list[torch.Tensor]  # resampled mono blocks (none kept once a NaN/inf sample was met)
    read: int  # frames read
    bad: int  # NaN/inf samples of the mono mix
    first_bad: int  # the frame of the first of them (-1: none)
    mixed: float  # sum of squares of the mono mix (at the file's rate)
    channel_energy: float  # mean over the channels of each one's sum of squares
    channels: int


def _decode(path: Path, snd: sf.SoundFile | AvReader, stream: Resampler, max_seconds: float | None,
            said: BinaryIO | None = None) -> _Decoded:
    """Decode ``snd`` block by block, its channels averaged, into ``stream`` (see :class:`_Decoded`).
    With ``said``, what C code prints while a block is read is held there."""
    block = max(1, BLOCK_SAMPLES // snd.channels)
    limit = math.inf if max_seconds is None else max_seconds * snd.samplerate + MP3_SLACK
    out: list[torch.Tensor] = []
    read = bad = 0
    first_bad = -1
    mixed = channel_energy = 0.0
    while True:
        try:
            with held_stderr(said) if said is not None else contextlib.nullcontext():
                data = snd.read(block, dtype="float32", always_2d=True)  # (frames, channels)
        except AudioError:
            raise
        except (sf.LibsndfileError, sf.SoundFileError, RuntimeError, ValueError) as e:
            detail = _decoder_said(said) if said is not None else ""
            failed = _ReadFailed(f"cannot read audio file {path}: {e} (corrupt or truncated{detail})")
            failed.reason = f"{e}{detail}"
            raise failed from e
        read += data.shape[0]
        if read > limit:
            raise AudioError(_too_long(path, read / snd.samplerate, max_seconds or 0.0))
        samples = torch.from_numpy(data)
        check_float_peak(samples, f"audio file {path}", FILE_FIX)  # a float file (integer PCM decodes to [-1, 1))
        mono = samples.mean(1)  # (frames,)
        held = torch.isfinite(mono)
        if not bool(held.all()):
            first_bad = read - data.shape[0] + int((~held).nonzero()[0, 0]) if first_bad < 0 else first_bad
            bad += int((~held).sum())
        if not bad:
            out.append(stream.push(mono, last=data.shape[0] < block))
            if snd.channels > 1:
                mixed += energy(mono)
                channel_energy += energy(samples) / snd.channels
        if data.shape[0] < block:
            return _Decoded(out, read, bad, first_bad, mixed, channel_energy, snd.channels)


def _read_file(path: Path, target_rate: int, max_seconds: float | None) -> tuple[torch.Tensor, int]:
    """Mono samples of ``path`` at ``target_rate`` (decoded and resampled in blocks) and its own rate.

    libsndfile decodes the file; PyAV what libsndfile cannot open (AAC/M4A, judged by FFmpeg alone),
    an MP3 whose frames hold more than libsndfile gave (without a Xing/Info header it stops at its
    guess of the length) or whose whole frames it fails on part-way (bytes after them), and a stream
    whose header leaves its length unstated (:func:`_from_the_start`), with an :class:`AudioError` that
    says to install it when it is missing. An
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
        try:
            got = _decode(path, snd, resampler(rate, target_rate), max_seconds,
                          said if said is not None and fmt in MP3_FORMATS else None)
            failed = None
        except _ReadFailed as e:  # an MP3 whose frames are whole: FFmpeg decodes what libmpg123 stumbles on
            if mp3 is None or mp3.cut:
                raise
            failed = e
    if failed is not None:
        got = _mp3_through_av(path, target_rate, max_seconds, why=(
            f"libsndfile fails part-way through this MP3 ({failed.reason}), although its MPEG frames are whole; "
            f"{INSTALL_AV} to decode it through FFmpeg"), cause=failed)
    elif guess is not None and not guess.cut and is_truncated(fmt, got.read, promised):
        got = _mp3_through_av(path, target_rate, max_seconds, why=(
            f"libsndfile stops early on this MP3 (it read {got.read} of the {promised} samples its MPEG frames hold: "
            f"without a Xing/Info header it guesses the length); {INSTALL_AV} to decode it whole through FFmpeg"))
    check_length(path, fmt, got.read, promised, mp3)
    if got.bad:
        raise AudioError(f"audio file {path} has {got.bad} NaN/inf sample(s), the first at {got.first_bad / rate:.3f} s "
                         f"(frame {got.first_bad}); write it again without them (e.g. numpy.nan_to_num before "
                         "saving)")
    audio = torch.cat(got.out) if got.out else torch.zeros(0)
    if audio.numel() == 0:
        raise AudioError(_under_one_sample(f"audio file {path}", got.read, rate, target_rate))
    warn_cancelled(got.mixed, got.channel_energy, got.channels, f"audio file {path}", CANCEL_FIX, str(path))
    if not bool(audio.any()):  # kept (a pause is a sound too), but said: a wrong export often looks like this
        silent = SilenceWarning(f"audio file {path} is digital silence once mixed to mono (every sample 0): its "
                                "codes will be one code repeated")
        silent.path = str(path)
        warn_silence(silent)
    return audio, rate


def _mp3_through_av(path: Path, target_rate: int, max_seconds: float | None, *, why: str,
                    cause: Exception | None = None) -> _Decoded:
    """:func:`_decode` of the MP3 ``path`` through PyAV, where libsndfile read it short or failed part-way;
    without PyAV an :class:`AudioError` saying ``why`` it is needed, never a shortened clip."""
    av = optional_av()
    if av is None:
        raise AudioError(f"audio file {path}: {why}") from cause
    with AvReader(av, path) as snd:
        return _decode(path, snd, resampler(snd.samplerate, target_rate), max_seconds)


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
    sample_rate: SampleRate | None = None,
    *,
    target_rate: int = SAMPLE_RATE,
    max_seconds: float | None = MAX_SECONDS,
) -> torch.Tensor:
    """Mono float32 samples ``[S]`` at ``target_rate`` from a file or an array.

    ``x`` is a path (wav, flac, ogg/vorbis, mp3: anything libsndfile reads; AAC/M4A through
    PyAV) or a numpy array / tensor ``[S]``, ``[C, S]`` or ``[S, C]`` recorded at ``sample_rate`` (a
    positive whole number of Hz: an int, a numpy integer or an integral float such as 16000.0).
    Channels are averaged, each weighing the same (the LFE of a 5.1 file too; a silent channel of a stereo file
    halves the level, -6 dB; channels that cancel, one the other inverted, give a
    :class:`~mmtok.audio.arrays.CancelledChannelsWarning`; an array of more than two gives a
    :class:`~mmtok.audio.arrays.MixedChannelsWarning`: clips
    stacked ``[B, S]`` read as channels, and a batch is a list), integer PCM is scaled to [-1, 1),
    float samples peaking over :data:`~mmtok.audio.arrays.MAX_FLOAT_PEAK` (integer PCM stored as float, in an array or a
    float WAV/AIFF/AU file) are refused, and the rate is
    changed with a band-limited resampler (see the module docstring). Files are
    decoded in blocks; one longer than ``max_seconds`` (default ``MAX_SECONDS``,
    10 minutes; None: no limit) is refused with an :class:`AudioError` before
    it fills memory. A file cut short, whose header was never finished, that is empty
    or too short to give one sample at ``target_rate`` (an array too) is an :class:`AudioError` that
    says so; a path that does not exist raises :class:`MissingFileError` (a
    ``FileNotFoundError``); a file of digital silence gives a :class:`SilenceWarning`. The samples
    are a tensor of their own: never the memory of the array or tensor given (float32 mono at
    ``target_rate`` is copied), so writing to them leaves ``x`` as it was.

    >>> load_audio(np.zeros((2, 441), dtype=np.int16), 44100).shape
    torch.Size([160])
    """
    audio = _samples(x, sample_rate, target_rate, max_seconds)
    return audio.clone() if _shares_memory(audio, x) else audio


def _shares_memory(audio: torch.Tensor, x: object) -> bool:
    """Whether the samples ``audio`` (on the CPU) may lie in the memory of the array or tensor ``x``."""
    if isinstance(x, np.ndarray):
        return bool(np.may_share_memory(audio.numpy(), x))
    if isinstance(x, torch.Tensor) and x.device == audio.device and x.layout == torch.strided:
        return x.untyped_storage().data_ptr() == audio.untyped_storage().data_ptr()
    return False


def audio_samples(
    x: AudioInput,
    sample_rate: SampleRate | None = None,
    *,
    target_rate: int = SAMPLE_RATE,
    max_seconds: float | None = MAX_SECONDS,
) -> torch.Tensor:
    """:func:`load_audio` without its copy, for callers that only read the samples (the tokenizer's encode):
    float32 mono samples at ``target_rate`` given as an array or tensor come back as that memory itself
    (read-only memory, such as a memory-mapped ``.npy``, is read through a copy)."""
    return _samples(x, sample_rate, target_rate, max_seconds)


def _samples(x: AudioInput, sample_rate: SampleRate | None, target_rate: int, max_seconds: float | None) -> torch.Tensor:
    """:func:`audio_samples` (its callers' warnings point one frame above it, at their own callers)."""
    target_rate = _whole_hz(target_rate, "target_rate", floats=False)
    hz = None if sample_rate is None else _whole_hz(sample_rate, "sample_rate", floats=True)
    max_seconds = check_max_seconds(max_seconds)
    if isinstance(x, (str, os.PathLike)):
        audio, rate = _read_file(Path(x), target_rate, max_seconds)
        if hz is not None and hz != rate:
            raise AudioError(f"audio file {x} is recorded at {rate} Hz; do not pass sample_rate={hz}")
        return audio
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise TypeError(f"load_audio takes a path, numpy array or tensor, got {type(x).__name__}")
    what = "audio array"
    if hz is None:
        raise AudioError("an audio array needs its sample_rate, e.g. load_audio(wave, 44100)")
    rate = hz
    audio = to_mono_float(x, what, cancel_fix="pass one channel, e.g. x[0] for [C, S] or x[:, 0] for [S, C]")
    if audio.numel() == 0:
        raise AudioError(f"{what} is empty (zero samples)")
    if x.ndim == 2:
        warn_mixed(tuple(x.shape), what)
    out = resample_array(finite(audio, what), rate, target_rate)
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
