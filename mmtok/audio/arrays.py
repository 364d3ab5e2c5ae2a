"""In-memory audio: numpy arrays and tensors ``[S]``, ``[C, S]`` or ``[S, C]`` -> mono float32 samples, by
one set of rules for where the channels are (:func:`to_mono_float`), integer PCM scaled to [-1, 1) and
float samples refused when they are integer PCM stored as float (:func:`check_float_peak`); and the
chunks of one recording read with one channel layout (:func:`mono_chunks`). :func:`mmtok.audio.io.load_audio`
reads an array through these, and a file's samples through :func:`check_float_peak`.

>>> to_mono_float(np.array([[16384, 0], [0, -16384]], dtype=np.int16), "audio array").tolist()
[0.25, -0.25]
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from mmtok.audio.resample import resampler
from mmtok.core.errors import AudioError
from mmtok.core.floats import fits_float32
from mmtok.core.tensors import as_tensor
from mmtok.core.warning_filters import user_stacklevel

__all__ = ["BLOCK_SAMPLES", "CANCEL_DB", "MAX_CHANNELS", "MAX_FLOAT_PEAK", "CancelledChannelsWarning", "MixedChannelsWarning",
           "check_float_peak", "energy", "finite", "mono_chunks", "resample_array", "to_mono_float", "warn_cancelled", "warn_mixed"]

BLOCK_SAMPLES = 1 << 18  # samples (frames x channels) decoded and resampled at a time
MAX_CHANNELS = 16  # 2-D audio: an axis of at most this many entries (and the shorter one) holds the channels
MAX_FLOAT_PEAK = 64.0  # float audio is about [-1, 1]; a peak past this (36 dB over full scale: no gain
# slip makes it) is integer PCM stored as float, e.g. int16_samples.astype(np.float32), and refused
ARRAY_FIX = "divide int16 values by 32768 (int32: 2**31), or pass the integer array itself, which is scaled"
PCM_SCALE = {torch.int16: 2.0**15, torch.int32: 2.0**31, torch.int8: 2.0**7, torch.uint8: 2.0**7}  # integer
# PCM -> [-1, 1) (uint8 centred on 128 first)
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)  # float samples, about [-1, 1]
SAMPLE_DTYPES = "float16, bfloat16, float32 or float64 (about [-1, 1]), or integer PCM int8, uint8, int16 or int32"
CANCEL_DB = 20.0  # a mono mix this many dB under its channels' mean level is channels cancelling (one the other
# inverted); averaging leaves uncorrelated channels ~10*log10(channels) dB under (3 dB for stereo), the same sound 0 dB
BATCH_HINT = "a batch is a list of clips: encode([a, b, ...]), e.g. encode(list(x)) for rows of x"  # said of
# arrays shaped like clips stacked into one

Layout = tuple[int, int]  # a stream's (channel axis, channels); axis -1: mono [S]


class MixedChannelsWarning(UserWarning):
    """The warning :func:`~mmtok.audio.io.load_audio` gives for an array or tensor of more than two
    channels, which it mixes into one clip (as it mixes any channel count): clips stacked into one
    ``[B, S]`` array read as channels. ``channels`` holds their count."""

    channels: int = 0


class CancelledChannelsWarning(UserWarning):
    """The warning :func:`~mmtok.audio.io.load_audio` gives when the channels of a file or array cancel once
    averaged to mono: the mix is over :data:`CANCEL_DB` dB quieter than its channels, as when one channel is
    another inverted (a wiring or export slip), so the codes are those of near silence. ``path`` names the file
    ("" for an array)."""

    path: str = ""


def warn_cancelled(mixed: float, channel_energy: float, channels: int, what: str, fix: str, path: str = "") -> None:
    """A :class:`CancelledChannelsWarning` for ``what`` if its mono mix (sum of squares ``mixed``) is over
    :data:`CANCEL_DB` dB under its ``channels`` channels' mean sum of squares ``channel_energy``; ``fix`` says
    what to do. Nothing for one channel, or channels of digital silence.

    >>> warn_cancelled(1.0, 2.0, 2, "audio array", "keep one channel")  # a silent channel: 3 dB, no warning
    """
    if channels < 2 or not channel_energy > 0 or mixed * 10 ** (CANCEL_DB / 10) >= channel_energy:
        return
    how = (f"the mix is {10 * math.log10(channel_energy / mixed):.0f} dB under them" if mixed > 0 else
           "the mix is digital silence")
    note = CancelledChannelsWarning(
        f"{what}: its {channels} channels cancel when averaged to mono ({how}, as when one channel is another "
        f"inverted), so its codes are of near silence; {fix}")
    note.path = path
    warnings.warn(note, stacklevel=user_stacklevel())


def energy(t: torch.Tensor) -> float:
    """The sum of squares of the samples ``t`` (no copy of them is made).

    >>> energy(torch.tensor([3.0, -4.0]))
    25.0
    """
    return float(torch.linalg.vector_norm(t.float())) ** 2 if t.numel() else 0.0


def _channel_axis(shape: tuple[int, ...], what: str, hint: str = "") -> int:
    """The channel axis of 2-D audio: 0 (``[C, S]``) if that axis is the short one and at most
    ``MAX_CHANNELS`` long, else 1 (``[S, C]``) if it is at most that long; else an error that ends in ``hint``."""
    if shape[0] <= MAX_CHANNELS and shape[0] <= shape[1]:
        return 0
    if shape[1] <= MAX_CHANNELS:
        return 1
    raise AudioError(f"{what}: 2-D audio {shape} has no channel axis of ≤{MAX_CHANNELS} channels{hint}")


def warn_mixed(shape: tuple[int, ...], what: str) -> None:
    """A :class:`MixedChannelsWarning` for 2-D audio of ``shape`` (checked) with more than two channels."""
    channels = shape[_channel_axis(shape, what)]
    if channels > 2:
        mixed = MixedChannelsWarning(f"{what} of shape {shape} is read as one clip of {channels} channels, mixed "
                                     f"into one; {BATCH_HINT}")
        mixed.channels = channels
        warnings.warn(mixed, stacklevel=user_stacklevel())  # at the user's line


def to_mono_float(x: np.ndarray | torch.Tensor, what: str, axis: int | None = None, *,
                  cancel_fix: str | None = None) -> torch.Tensor:
    """Samples ``[S]``, ``[C, S]`` or ``[S, C]`` -> mono float32 ``[S]``, the mean of the channels (each weighs
    the same); ``axis`` is the channel axis of 2-D input (None: :func:`_channel_axis` decides). With
    ``cancel_fix``, channels that cancel in the mix give :func:`warn_cancelled` saying it. Float samples are about [-1, 1]: a finite peak over
    :data:`MAX_FLOAT_PEAK` (integer PCM stored as float) is an :class:`AudioError`; a dtype that is neither
    float nor integer PCM (:data:`SAMPLE_DTYPES`) a ``TypeError``. Float32 mono samples come back as
    ``x``'s own memory (any other input is converted, so copied), except memory a tensor may not hold
    (read-only, other byte order, negative strides): :func:`~mmtok.core.tensors.as_tensor` copies it."""
    if isinstance(x, np.ndarray) and not (x.dtype.kind in "biuc" or x.dtype.char in "efd"):  # longdouble, object,
        # str, datetime...: no tensor holds them
        raise TypeError(f"{what}: samples must be {SAMPLE_DTYPES}, got dtype {x.dtype}")
    t = as_tensor(x) if isinstance(x, np.ndarray) else x.detach().cpu()
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{what}: expected real audio samples, got dtype {t.dtype}")
    floats = t.is_floating_point()
    if floats and t.dtype not in FLOAT_DTYPES:  # float8 and the like: no arithmetic to check them with
        raise TypeError(f"{what}: samples must be {SAMPLE_DTYPES}, got dtype {t.dtype}")
    if not floats:
        if t.dtype not in PCM_SCALE:
            raise TypeError(f"{what}: integer PCM must be int8/uint8/int16/int32, got {t.dtype}")
        t = (t.float() - 128.0 if t.dtype == torch.uint8 else t.float()) / PCM_SCALE[t.dtype]
    fits_float32(t, what=f"{what}: the audio", error=AudioError, why="(audio is about [-1, 1])")
    if floats:
        check_float_peak(t, what)
    t = t.float()
    if t.numel() == 0:
        return t.reshape(0)
    if t.dim() == 2:
        axis = _channel_axis(tuple(t.shape), what, f"; {BATCH_HINT}") if axis is None else axis
        mono = t.mean(axis)
        if cancel_fix is not None:
            warn_cancelled(energy(mono), energy(t) / t.shape[axis], t.shape[axis], what, cancel_fix)
        t = mono
    elif t.dim() != 1:
        raise AudioError(f"{what}: expected audio of shape [S], [C, S] or [S, C], got {tuple(t.shape)}; {BATCH_HINT}")
    return t.contiguous()


def check_float_peak(t: torch.Tensor, what: str, fix: str = ARRAY_FIX) -> None:
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
    elif axis < 0:  # mono [S] so far: a chunk of one channel, [1, S] or [S, 1], is mono too (as [S] after [1, S])
        fits = len(shape) == 2 and 1 in shape
        axis = shape.index(1) if fits else axis
    else:
        fits = len(shape) == 2 and axis >= 0 and shape[axis] == channels
    if not fits:
        fixed = ("mono [S]" if axis < 0 else f"[{channels}, S] (channels first)" if axis == 0
                 else f"[S, {channels}] (channels last)")
        raise AudioError(f"{what} has shape {shape}, but the chunks before it fixed the stream's layout as "
                         f"{fixed}; give every chunk the same channels on the same axis")
    return to_mono_float(chunk, what, axis if len(shape) == 2 else None)


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
            yield finite(_in_layout(c, layout, w), w)
        held = []
    if held:
        raise _layout_unknown(caller, tuple(held[0][1].shape))


def _has_samples(chunk: object, what: str) -> bool:
    """Whether ``chunk`` (a numpy array or tensor, else a ``TypeError`` naming ``what``) is not empty."""
    if not isinstance(chunk, (np.ndarray, torch.Tensor)):
        kind = f"a path ({chunk})" if isinstance(chunk, (str, os.PathLike)) else type(chunk).__name__
        raise TypeError(f"{what} is {kind}; chunks are numpy arrays or tensors of samples")
    return math.prod(chunk.shape) > 0


def finite(audio: torch.Tensor, what: str) -> torch.Tensor:
    """``audio`` unchanged; an AudioError naming ``what`` if it has NaN/inf samples."""
    held = torch.isfinite(audio)
    if not bool(held.all()):
        bad = int((~held).sum())
        first = int((~held).nonzero()[0, 0])
        raise AudioError(f"{what} has {bad} NaN/inf sample(s), the first at sample {first}; replace them "
                         "(e.g. numpy.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)) before passing it")
    return audio


def resample_array(audio: torch.Tensor, rate: int, target_rate: int) -> torch.Tensor:
    """Resample an in-memory signal with the same streamed resampler as files use."""
    if rate == target_rate:
        return audio
    stream = resampler(rate, target_rate)
    n = audio.numel()
    outs = [stream.push(audio[i : i + BLOCK_SAMPLES], last=i + BLOCK_SAMPLES >= n) for i in range(0, n, BLOCK_SAMPLES)]
    return torch.cat(outs)
