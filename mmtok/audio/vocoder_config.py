"""The settings of a :class:`~mmtok.audio.vocoder.Vocoder`: :class:`VocoderConfig` (its sizes and the front end
of the log-mel it reads) and :func:`receptive_field`, the context it needs. Plain data, so a tokenizer's config
(which holds one) is read without importing torch.

>>> cfg = VocoderConfig()
>>> cfg.n_fft, cfg.bins, receptive_field(cfg)
(640, 321, 29)
"""

from __future__ import annotations

from dataclasses import dataclass

from mmtok.audio.front_end import F_MAX, F_MIN, HOP_LENGTH, LOG_FLOOR, N_FFT, N_MELS, SAMPLE_RATE

__all__ = ["HEAD_N_FFT", "MAX_GAIN_DB", "VocoderConfig", "receptive_field"]

HEAD_N_FFT = 4 * HOP_LENGTH  # 640 samples = 40 ms: the head's STFT size and Hann window (Vocos uses 4 × hop)
# the largest power change one pass of mmtok.audio.mel_match makes to a mel channel, either way: on audio v7's
# validation clips a 12 dB clamp cost DNSMOS OVRL and the pitch of two steady tones; 2 dB kept every tone and
# the STOI gain and cost less OVRL (models/audio/README.md has the figures)
MAX_GAIN_DB = 2.0


@dataclass
class VocoderConfig:
    """Hyperparameters of a :class:`~mmtok.audio.vocoder.Vocoder` and the front end of the log-mel it reads."""

    sample_rate: int = SAMPLE_RATE  # Hz of the waveform it writes
    n_mels: int = N_MELS  # mel channels of the input (the tokenizer's log-mel)
    mel_n_fft: int = N_FFT  # STFT size of the input log-mel's front end (for mel_l1 and checks)
    hop_length: int = HOP_LENGTH  # samples per input frame; also the hop of the head's inverse STFT
    f_min: float = F_MIN  # Hz, lowest mel edge of the front end
    f_max: float = F_MAX  # Hz, highest mel edge of the front end
    log_floor: float = LOG_FLOOR  # power floor before the natural log in the front end
    n_fft: int = HEAD_N_FFT  # STFT size (and Hann window length) of the head's inverse STFT
    dim: int = 256  # channels of the ConvNeXt backbone
    intermediate: int = 768  # hidden width of each block's pointwise MLP (3 × dim)
    blocks: int = 8  # ConvNeXt blocks
    kernel_size: int = 7  # depthwise conv width of each block (frames), and of the embedding conv
    layer_scale: float = 0.0  # initial layer scale of each block (0: 1 / blocks, as Vocos)
    mel_match: int = 0  # passes of mmtok.audio.mel_match in decode and render (0: none): --mel-match runs train through them
    mel_match_db: float = MAX_GAIN_DB  # the most one pass changes a mel channel's power, either way (dB)

    def __post_init__(self) -> None:
        if self.n_fft % self.hop_length or self.n_fft // self.hop_length < 2 or self.n_fft % 2:
            raise ValueError(
                f"n_fft ({self.n_fft}) must be an even multiple (≥ 2×) of hop_length ({self.hop_length}) "
                "so the inverse STFT overlaps every sample"
            )
        if not 0 <= self.mel_match <= 8:
            raise ValueError(f"mel_match must be 0..8 passes, got {self.mel_match}")
        if not 0 < self.mel_match_db <= 40:
            raise ValueError(f"mel_match_db must be in (0, 40] dB, got {self.mel_match_db}")
        if self.kernel_size % 2 == 0 or min(self.dim, self.intermediate, self.blocks) < 1:
            raise ValueError(
                f"kernel_size must be odd and dim, intermediate, blocks positive; got kernel_size={self.kernel_size}, "
                f"dim={self.dim}, intermediate={self.intermediate}, blocks={self.blocks}"
            )

    @property
    def bins(self) -> int:
        """STFT bins the head predicts (``n_fft // 2 + 1``)."""
        return self.n_fft // 2 + 1


def receptive_field(cfg: VocoderConfig) -> int:
    """Frames of input context each side that one output frame's samples depend on: the convolutions'
    reach plus the inverse STFT's overlap (a sample is covered by frames up to ``n_fft / 2`` away).

    >>> receptive_field(VocoderConfig(blocks=8, kernel_size=7))
    29
    """
    return (cfg.blocks + 1) * (cfg.kernel_size // 2) + cfg.n_fft // (2 * cfg.hop_length)
