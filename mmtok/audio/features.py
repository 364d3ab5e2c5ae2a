"""The log-mel front end that the tokenizer reads and the vocoder inverts.

Its signal constants live in :mod:`~mmtok.audio.front_end`; one function per step: :func:`mel_filters` (the Slaney
filterbank), :func:`mel_power` (a batched, librosa-identical mel power spectrogram)
and :func:`log_mel` (its natural log above a floor). Both
:class:`~mmtok.audio.tokenizer.AudioTokenizer` and :class:`~mmtok.audio.vocoder.Vocoder`
compute their features here, so a decoder trained on these numbers reads exactly what
the tokenizer writes.

Axis legend used in shape comments:
    S  samples      M  mel channels      F  frames (1 + S // hop with ``center=True``)

>>> wave = torch.zeros(2, 1600)                        # two 0.1 s clips of silence
>>> mel = log_mel(wave, mel_filters())
>>> tuple(mel.shape), round(float(mel.max()), 2)        # (B, M, F); silence sits at log(LOG_FLOOR)
((2, 80, 11), -11.51)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from mmtok.audio.front_end import F_MAX, F_MIN, HOP_LENGTH, LOG_FLOOR, N_FFT, N_MELS, SAMPLE_RATE

__all__ = [
    "front_stft",
    "log_mel",
    "mel_centres",
    "mel_filters",
    "mel_power",
]


def mel_filters(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
    f_min: float = F_MIN, f_max: float = F_MAX,
) -> torch.Tensor:
    """``[n_mels, n_fft//2 + 1]`` Slaney mel filterbank, identical to ``librosa.filters.mel``."""
    fb = AF.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, norm="slaney", mel_scale="slaney")
    return fb.t().contiguous()


def mel_centres(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
    f_min: float = F_MIN, f_max: float = F_MAX,
) -> torch.Tensor:
    """``[n_mels]`` float64 centre of each mel channel in Hz: the centroid of its filter.

    >>> c = mel_centres()
    >>> bool((c[1:] > c[:-1]).all()), 30 < float(c[0]) < 40, 7000 < float(c[-1]) < 8000
    (True, True, True)
    """
    fb = mel_filters(sample_rate, n_fft, n_mels, f_min, f_max).double()  # (M, n_fft//2 + 1)
    freqs = torch.linspace(0, sample_rate / 2, fb.shape[1], dtype=torch.float64)
    return (fb @ freqs) / fb.sum(1).clamp_min(1e-12)


def front_stft(audio: torch.Tensor, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
               center: bool = True) -> torch.Tensor:
    """Complex STFT ``[B, n_fft//2 + 1, F]`` of ``audio [B, S]`` as the front end frames it: a
    periodic Hann window, and with ``center=True`` ``n_fft // 2`` zeros each side, so frame ``i``
    is centred on sample ``i*hop_length`` (``torch.istft(..., center=True)`` inverts it)."""
    if center:
        audio = F.pad(audio, (n_fft // 2, n_fft // 2))
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    return torch.stft(audio, n_fft, hop_length, window=window, center=False, return_complex=True)


def mel_power(
    audio: torch.Tensor, filters: torch.Tensor, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
    center: bool = True,
) -> torch.Tensor:
    """Mel power spectrogram ``[..., M, F]`` of ``audio [..., S]`` (batched over leading axes).

    With ``center=True`` it equals ``librosa.feature.melspectrogram(y, sr, n_fft=n_fft,
    hop_length=hop_length, pad_mode="constant", power=2)``: frame ``i`` is centred on
    sample ``i*hop_length`` and the signal is zero-padded by ``n_fft//2`` each side.
    """
    lead = audio.shape[:-1]
    spec = front_stft(audio.reshape(-1, audio.shape[-1]), n_fft=n_fft, hop_length=hop_length, center=center)
    power = spec.real.square() + spec.imag.square()  # (B, n_fft//2+1, F)
    mel = torch.matmul(filters.to(power), power)  # (B, M, F)
    return mel.reshape(*lead, *mel.shape[-2:])


def log_mel(
    audio: torch.Tensor, filters: torch.Tensor, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
    floor: float = LOG_FLOOR, center: bool = True,
) -> torch.Tensor:
    """Natural log of :func:`mel_power` floored at ``floor``: ``[..., M, F]`` of ``audio [..., S]``.

    The features the tokenizer quantizes (``AudioTokenizer.log_mel``) and the vocoder reads.
    """
    return mel_power(audio, filters, n_fft=n_fft, hop_length=hop_length, center=center).clamp_min(floor).log()
