"""The one exception family mmtok raises at its public boundaries: one subclass per area.

Every error subclasses :class:`MmtokError` *and* the builtin a caller would
expect (``ValueError`` for bad values), so ``except ValueError`` keeps working.
An argument of the wrong Python type (a dict where a path goes) is a plain
``TypeError``, as anywhere in Python.
"""

from __future__ import annotations

import os
import sys
import traceback

__all__ = [
    "AudioError",
    "CheckpointError",
    "ContextTooShortError",
    "CorpusError",
    "DemoError",
    "DeviceError",
    "DocumentError",
    "DocumentFailedError",
    "EngineError",
    "ImageError",
    "MissingFileError",
    "MmtokError",
    "OutputError",
    "QuantizerError",
    "QuantizerOverflowError",
    "ResumeMismatchError",
    "RunRefusedError",
    "StreamError",
    "TrainingError",
    "UsageError",
    "VideoError",
    "VocabularyError",
    "debugging",
    "exit_status",
    "report_error",
]


class MmtokError(Exception):
    """Base class of every error mmtok raises on purpose."""


class MissingFileError(MmtokError, FileNotFoundError):
    """A media path (image, audio) that does not exist; also a ``FileNotFoundError``."""


class CheckpointError(MmtokError, ValueError):
    """A checkpoint folder is missing, damaged, of the wrong kind or of an incompatible version."""


class VocabularyError(MmtokError, ValueError):
    """A vocabulary layout that is invalid, or that differs from the one data or a model was made with."""


class StreamError(MmtokError, ValueError):
    """A token stream that does not follow the layout; ``position`` is the offending token's index."""

    def __init__(self, message: str, *, position: int | None = None, expected: str | None = None) -> None:
        super().__init__(message)
        self.position = position  # index of the offending token in the stream (None: the whole stream)
        self.expected = expected  # what the layout allows there, in words


class CorpusError(MmtokError, ValueError):
    """A corpus line or an output folder that tokenizing cannot use; the message names the file and line."""


class DocumentFailedError(CorpusError, RuntimeError):
    """Tokenizing a document raised what is no reason to skip it (a tokenizer's own bug, say): the run stops and
    the message names the line. A failure while running: the ``mmtok`` command exits 1."""


class DocumentError(MmtokError, ValueError):
    """A document segment that cannot be tokenized (unreadable media, ...); the message names the segment."""


class ImageError(MmtokError, ValueError):
    """An image that cannot be read, converted or tokenized; the message names the source."""


class AudioError(MmtokError, ValueError):
    """Audio that cannot be used: unreadable, truncated, empty, or with NaN/inf samples."""


class VideoError(MmtokError, ValueError):
    """A video file that cannot be read or sampled; the message names the file."""


class TrainingError(MmtokError, ValueError):
    """A training run that cannot start or continue (bad settings, a run folder in the way, a non-finite loss)."""


class DemoError(MmtokError, ValueError):
    """The demo cannot run on the media it was given (the folder is missing or lacks images or sounds)."""


class QuantizerError(MmtokError, ValueError):
    """Vectors, indices or settings a :class:`~mmtok.vq.quantizer.VectorQuantizer` cannot use (wrong size,
    NaN/inf or out-of-range values, a ``VQConfig`` field out of range; one of the wrong type is a ``TypeError``)."""


class QuantizerOverflowError(QuantizerError):
    """Finite values a :class:`~mmtok.vq.quantizer.VectorQuantizer` cannot take because they are too large: past
    float32's reach, or, to train on, past what its float32 statistics hold (:mod:`mmtok.vq.inputs`). A trainer
    whose encoder gives them has diverged (:func:`mmtok.core.divergence.diverging_forward`)."""


class UsageError(MmtokError, ValueError):
    """A command line that cannot work (a bad flag value, a missing option): the ``mmtok`` command exits 2."""


class RunRefusedError(TrainingError, UsageError):
    """A training run refused before it starts for what it was given: a setting no run can use, or an ``--out``
    that is a file, holds another run (without ``--resume`` or ``--overwrite``) or holds files that are no run's.
    The run cannot start (a :class:`TrainingError`) because of what the command line says, so the ``mmtok``
    command exits 2 as for any refused flag or folder."""


class ResumeMismatchError(RunRefusedError):
    """``--resume`` given another model shape, other shards or other data-order settings than the run's own:
    the run cannot continue because of what the command line says (a :class:`RunRefusedError`: exit 2)."""


class DeviceError(MmtokError, RuntimeError):
    """A device that was asked for and is not there (``--device cuda`` on a machine without a GPU)."""


class OutputError(MmtokError, OSError):
    """An output that could not be written (a full disk, a read-only folder, standard output gone to a full
    device); the message names the output, not a temporary file, and ``errno`` and ``strerror`` are the cause's.
    A failure while running: the ``mmtok`` command exits 1."""

    def __str__(self) -> str:  # the message, not OSError's "[Errno N] ..." made from errno and strerror
        return str(self.args[0]) if self.args else super().__str__()


class EngineError(MmtokError, RuntimeError):
    """A worker engine (Ray) that failed while running, for a reason other than the input: the message says what
    was raised and where its traceback was logged."""


class ContextTooShortError(MmtokError, ValueError):
    """What sampling is asked for cannot fit the model's context (``max_seq_len``).

    Raised before any model work, with a one-line message that names the setting
    that fixes it: a smaller ``--image-grid`` or ``--audio-tokens`` (``image_grid=``,
    ``audio_tokens=``), a shorter prompt, or a model trained with a longer context
    (``mmtok train --seq-len``).
    """


def exit_status(e: BaseException) -> int:
    """The ``mmtok`` command's exit status for ``e``: 2 when what the command was given is refused (bad usage: a
    flag, a file or folder it names; a :class:`RunRefusedError` too, such as an ``--out`` that holds another
    run), 1 for a failure while running (a training run that cannot go on; a missing device; an output that cannot
    be written, :class:`OutputError`; a tokenizer that fails on a document, :class:`DocumentFailedError`; an error that is
    not mmtok's).

    >>> exit_status(RunRefusedError("--out run is a file, not a folder")), exit_status(TrainingError("nan loss"))
    (2, 1)
    """
    if isinstance(e, UsageError):
        return 2
    if not isinstance(e, MmtokError) or isinstance(e, (TrainingError, DeviceError, EngineError, OutputError,
                                                        DocumentFailedError)):
        return 1
    return 2


def debugging() -> bool:
    """Whether ``MMTOK_DEBUG`` asks for tracebacks (set, and not ``0``)."""
    return os.environ.get("MMTOK_DEBUG", "") not in ("", "0")


def report_error(e: BaseException, *, debug: bool | None = None) -> int:
    """Say ``e`` on stderr as the ``mmtok`` command does and return its exit status (:func:`exit_status`): one
    line, ``mmtok: error: ...``; an error that is not mmtok's names its type and how to see the traceback;
    with ``debug`` (default: :func:`debugging`) the traceback comes first."""
    debug = debugging() if debug is None else debug
    if debug:
        traceback.print_exception(e)
    text = " ".join(str(e).split()) or type(e).__name__
    hint = "" if isinstance(e, MmtokError) or debug else f" ({type(e).__name__}; rerun with --debug for the traceback)"
    print(f"mmtok: error: {text}{hint}", file=sys.stderr)
    return exit_status(e)
