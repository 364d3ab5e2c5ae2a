"""Which device a command or call runs on: the CPU or a CUDA GPU, checked before any work, and what a run
records of it."""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Iterator

import torch

from mmtok.core.errors import DeviceError

__all__ = ["check_device_option", "device_record", "exact_float32", "pick_device", "tf32_matmul_possible"]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU.

    mmtok runs on the CPU and on CUDA GPUs only. Any other device is a :class:`DeviceError`: a name torch
    does not know, one of another type (``mps``, ``meta``, ``xpu``, ...), or a CUDA device on a machine
    without one or with an index past the GPUs torch finds.

    >>> pick_device("cpu")
    device(type='cpu')
    >>> pick_device("tpu")
    Traceback (most recent call last):
    mmtok.core.errors.DeviceError: device 'tpu' is not a device: give cpu, cuda or cuda:N (GPU N)
    >>> pick_device("meta")
    Traceback (most recent call last):
    mmtok.core.errors.DeviceError: device 'meta' is not one mmtok runs on: give cpu, cuda or cuda:N (GPU N)
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"device {device!r} is not a device: give cpu, cuda or cuda:N (GPU N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {str(dev)!r} is not one mmtok runs on: give cpu, cuda or cuda:N (GPU N)")
    if dev.type == "cpu":
        return dev
    if not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} asked for, but torch finds no CUDA GPU here; use --device cpu "
                          "(device='cpu' from Python)")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise DeviceError(f"device {device!r} asked for, but torch finds {count} CUDA GPU(s) here "
                          f"(cuda:0 to cuda:{count - 1}); give one of them or --device cpu "
                          "(device='cpu' from Python)")
    return dev


def device_record(device: torch.device) -> dict[str, str]:
    """What a run records of the device it trained on: ``device`` (``"cpu"``, ``"cuda:0"``: a CUDA device without
    an index is the current one), on a GPU ``device_name`` too. ``device_record(torch.device("cpu"))`` is
    ``{"device": "cpu"}``."""
    if device.type != "cuda":
        return {"device": str(device)}
    index = torch.cuda.current_device() if device.index is None else device.index
    return {"device": f"cuda:{index}", "device_name": torch.cuda.get_device_name(index)}


def check_device_option(parser: argparse.ArgumentParser, device: str | None) -> None:
    """``--device`` refused in one line (exit 2) unless it names a CPU or CUDA device (or is not given)."""
    if device is None:
        return
    try:
        kind = torch.device(device).type
    except RuntimeError:
        parser.error(f"--device {device!r} is not a device (cpu, cuda, cuda:1, ...)")
    if kind not in ("cpu", "cuda"):
        parser.error(f"--device {device!r} is not one mmtok runs on (cpu, cuda, cuda:1, ...)")


def _precision_settings() -> tuple[tuple[object, str], ...]:
    """The (object, attribute) pairs that set the float32 precision of CUDA convolutions and matrix products:
    torch's per-backend ``fp32_precision`` strings where torch has them (2.9 and later), else its older
    ``allow_tf32`` flags. The two kinds must not be mixed: once a user has set one of the newer strings,
    reading an older flag raises a RuntimeError in torch."""
    conv, matmul = getattr(torch.backends.cudnn, "conv", None), torch.backends.cuda.matmul
    if conv is not None and hasattr(conv, "fp32_precision") and hasattr(matmul, "fp32_precision"):
        return (conv, "fp32_precision"), (matmul, "fp32_precision")
    return (torch.backends.cudnn, "allow_tf32"), (matmul, "allow_tf32")


def tf32_matmul_possible() -> bool:
    """Whether CUDA float32 matrix products may run in TF32 now (read without the RuntimeError torch raises
    on its older flag when the newer settings are in use)."""
    matmul = torch.backends.cuda.matmul
    if not hasattr(matmul, "fp32_precision"):
        return bool(matmul.allow_tf32)
    chain = (matmul.fp32_precision, getattr(torch.backends.cuda, "fp32_precision", "none"),
             getattr(torch.backends, "fp32_precision", "none"))
    return next((p for p in chain if p != "none"), "ieee") == "tf32"


_EXACT_LOCK = threading.Lock()
_exact_open = 0  # exact_float32 blocks open now, in every thread
_exact_saved: tuple[object, ...] = ()  # the settings the first of them found, put back by the last


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """float32 convolutions and matrix products computed in float32 on CUDA, not in TF32, for the block.

    cuDNN convolutions default to TF32 (10 bits of mantissa) on Ampere and later GPUs, and
    ``torch.set_float32_matmul_precision("high")`` turns matrix products to TF32 too. The learned audio
    decoder magnifies such rounding: its waveform from TF32 convolutions differs from the float32 one at
    about 26 dB SNR (0.1 on a 0.46 peak), so a GPU would decode other sound than the CPU, and a streamed
    decode other sound than the whole one. Every public ``encode``/``decode`` of the shipped tokenizers runs
    under this (see :func:`mmtok.core.protocol.ordinary_outputs`). On the CPU it changes nothing.

    The settings are torch's process-wide ones (the newer ``fp32_precision`` strings where torch has them,
    never mixed with the older flags). Blocks open in several threads at once share one change: the first to
    open saves the settings, the last to close puts them back exactly (by an error too), so no block runs
    with TF32 because another thread's block ended. Another thread that trains while a block is open trains
    without TF32.

    >>> with exact_float32():
    ...     tf32_matmul_possible()
    False
    """
    global _exact_open, _exact_saved
    settings = _precision_settings()
    exact = "ieee" if settings[0][1] == "fp32_precision" else False
    with _EXACT_LOCK:
        if _exact_open == 0:
            _exact_saved = tuple(getattr(obj, name) for obj, name in settings)
            if any(value != exact for value in _exact_saved):
                for obj, name in settings:
                    setattr(obj, name, exact)
        _exact_open += 1
    try:
        yield
    finally:
        with _EXACT_LOCK:
            _exact_open -= 1
            if _exact_open == 0 and any(value != exact for value in _exact_saved):
                for (obj, name), value in zip(settings, _exact_saved, strict=True):
                    setattr(obj, name, value)
