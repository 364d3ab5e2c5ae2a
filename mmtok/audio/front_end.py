"""The signal constants of the log-mel front end: the rate audio is read at and the STFT and mel
settings that :mod:`~mmtok.audio.features` computes with, the tokenizer's settings default to and
the vocoder inverts. Plain numbers, so a config is read without importing torch.

>>> N_FFT / SAMPLE_RATE * 1000, SAMPLE_RATE // HOP_LENGTH   # window in ms, mel frames per second
(64.0, 100)
"""

from __future__ import annotations

__all__ = ["F_MAX", "F_MIN", "HOP_LENGTH", "LOG_FLOOR", "N_FFT", "N_MELS", "SAMPLE_RATE"]

SAMPLE_RATE = 16_000  # Hz; the rate load_audio resamples to by default (the audio tokenizer's rate)
N_FFT = 1024  # STFT window (Hann, periodic) and FFT size: 64 ms
HOP_LENGTH = 160  # samples between mel frames: 10 ms
N_MELS = 80  # mel channels (Slaney scale and area normalisation, as librosa's default)
F_MIN = 0.0  # Hz, lowest mel edge
F_MAX = 8_000.0  # Hz, highest mel edge (Nyquist at 16 kHz)
LOG_FLOOR = 1e-5  # power floor before the natural log: silence maps to log(1e-5) ≈ -11.5
assert F_MAX <= SAMPLE_RATE / 2 and N_FFT % 2 == 0
