"""The classical way back from log-mel to a waveform, with nothing learned: non-negative least
squares from mel power back to a linear power spectrogram, then Griffin-Lim's phase
reconstruction. ``AudioTokenizer.decode(codes, vocoder="griffin-lim")`` uses it, and it is the
fallback of a tokenizer without a learned vocoder.

>>> from mmtok.audio.features import log_mel, mel_filters
>>> fb = mel_filters(16000, 1024, 80, 0.0, 8000.0)
>>> wave = torch.sin(torch.arange(16000) / 5.0)
>>> mel = log_mel(wave[None], fb, n_fft=1024, hop_length=160)[0]          # (M, F)
>>> tuple(griffin_lim(mel, fb, n_fft=1024, hop_length=160, n_iter=8).shape)  # (F - 1) * hop
(16000,)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

__all__ = ["griffin_lim"]

NNLS_ITERS = 16  # multiplicative updates from mel power back to linear power


def griffin_lim(logmel: torch.Tensor, filters: torch.Tensor, *, n_fft: int, hop_length: int,
                n_iter: int) -> torch.Tensor:
    """Waveform ``[(F - 1) * hop_length]`` from natural-log mel power ``[M, F]``, whose mel
    ``filters`` are ``[M, n_fft // 2 + 1]``: NNLS back to a linear power spectrogram, then
    torchaudio's Griffin-Lim (``n_iter`` iterations, momentum 0.99, a deterministic start)."""
    mel = logmel.exp()  # (M, F)
    frames = mel.shape[-1]
    fb = filters.to(mel.device)  # (M, K)
    num = fb.t() @ mel  # (K, F), also the initial guess
    lin = num.clone()
    for _ in range(NNLS_ITERS):  # multiplicative NNLS updates (Lee-Seung): lin stays >= 0
        lin = lin * num / (fb.t() @ (fb @ lin) + 1e-10)
    # Griffin-Lim's STFT reflects n_fft/2 samples at each end, so it needs a longer signal than
    # that: a clip of a few frames gets silent frames after it, cut off again below
    lin = F.pad(lin, (0, max(0, n_fft // (2 * hop_length) + 2 - frames)))
    window = torch.hann_window(n_fft, device=mel.device)
    wave = AF.griffinlim(
        lin.sqrt()[None], window, n_fft, hop_length, n_fft, power=1.0,
        n_iter=n_iter, momentum=0.99, length=None, rand_init=False,
    )[0]
    return wave[: max(0, frames - 1) * hop_length]
