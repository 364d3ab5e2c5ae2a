"""Reading audio: files through libsndfile (wav, flac, ogg/vorbis, mp3) or arrays,
to mono float32 samples at one rate, with clear errors for unusable input."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from mmtok.core.errors import AudioError

__all__ = ["SAMPLE_RATE", "AudioInput", "load_audio"]

SAMPLE_RATE = 16_000  # Hz; the rate load_audio resamples to by default (the audio tokenizer's rate)

AudioInput = Union[str, os.PathLike, np.ndarray, torch.Tensor]  # noqa: UP007 - py3.10 runtime alias


# --------------------------------------------------------------------------- loading


def _wav_truncated(path: Path) -> bool:
    """True when a RIFF/WAVE header promises more data bytes than the file holds."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        size = os.fstat(f.fileno()).st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return True  # no data chunk before the end
            cid, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                return f.tell() + length > size and length != 0xFFFFFFFF
            f.seek(length + (length & 1), os.SEEK_CUR)


def _read_file(path: Path) -> tuple[np.ndarray, int]:
    if not path.is_file():
        raise FileNotFoundError(f"no audio file at {path}")
    try:
        info = sf.info(str(path))
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (S, channels)
    except (sf.LibsndfileError, RuntimeError, sf.SoundFileError) as e:
        raise AudioError(f"cannot read audio file {path}: {e} (corrupt, truncated or not audio)") from e
    # libsndfile quietly shortens truncated files: compare with what the header promised
    slack = 2 * 1152 if info.format == "MPEG" else 0  # MP3 frame counts are approximate
    if data.shape[0] + slack < info.frames or (info.format == "WAV" and _wav_truncated(path)):
        raise AudioError(
            f"audio file {path} is truncated: its header promises {info.frames} frames, "
            f"{data.shape[0]} could be read"
        )
    return data, int(rate)


def _to_mono_float(x: np.ndarray | torch.Tensor, what: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x.detach().cpu()
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{what}: expected real audio samples, got dtype {t.dtype}")
    if not t.is_floating_point():
        scale = {torch.int16: 2.0**15, torch.int32: 2.0**31, torch.int8: 2.0**7, torch.uint8: 2.0**7}
        if t.dtype not in scale:
            raise TypeError(f"{what}: integer PCM must be int8/uint8/int16/int32, got {t.dtype}")
        t = (t.float() - 128.0 if t.dtype == torch.uint8 else t.float()) / scale[t.dtype]
    t = t.float()
    if t.numel() == 0:
        return t.reshape(0)
    if t.dim() == 2:  # channels first if that axis is the short one, else channels last
        if t.shape[0] <= 16 and t.shape[0] <= t.shape[1]:
            t = t.mean(0)
        elif t.shape[1] <= 16:
            t = t.mean(1)
        else:
            raise ValueError(f"{what}: 2-D audio {tuple(t.shape)} has no channel axis of ≤16 channels")
    elif t.dim() != 1:
        raise ValueError(f"{what}: expected audio of shape [S], [C, S] or [S, C], got {tuple(t.shape)}")
    return t.contiguous()


def load_audio(
    x: AudioInput, sample_rate: int | None = None, *, target_rate: int = SAMPLE_RATE
) -> torch.Tensor:
    """Mono float32 samples ``[S]`` at ``target_rate`` from a file or an array.

    ``x`` is a path (wav, flac, ogg/vorbis, mp3: anything libsndfile reads) or a
    numpy array / tensor ``[S]``, ``[C, S]`` or ``[S, C]`` recorded at ``sample_rate``.
    Channels are averaged, integer PCM is scaled to [-1, 1), and the rate is
    changed with a band-limited windowed-sinc resampler.

    >>> load_audio(np.zeros((2, 441), dtype=np.int16), 44100).shape
    torch.Size([160])
    """
    if isinstance(x, (str, os.PathLike)):
        what = f"audio file {x}"
        data, rate = _read_file(Path(x))
        if sample_rate is not None and sample_rate != rate:
            raise ValueError(f"{what} is recorded at {rate} Hz; do not pass sample_rate={sample_rate}")
        audio = _to_mono_float(data, what)
    elif isinstance(x, (np.ndarray, torch.Tensor)):
        what = "audio array"
        if sample_rate is None:
            raise ValueError("an audio array needs its sample_rate, e.g. load_audio(wave, 44100)")
        rate = int(sample_rate)
        audio = _to_mono_float(x, what)
    else:
        raise TypeError(f"load_audio takes a path, numpy array or tensor, got {type(x).__name__}")
    if rate <= 0:
        raise ValueError(f"{what}: sample rate must be positive, got {rate}")
    if audio.numel() == 0:
        raise AudioError(f"{what} is empty (zero samples)")
    if not bool(torch.isfinite(audio).all()):
        bad = int((~torch.isfinite(audio)).sum())
        raise AudioError(f"{what} has {bad} NaN/inf sample(s)")
    if rate != target_rate:
        audio = AF.resample(audio, rate, target_rate)
    return audio
