"""The settings of an :class:`~mmtok.audio.tokenizer.AudioTokenizer`: its front end (rate, STFT,
mel channels), token rate, encoder and decoder sizes, codebook and vocoder, checked when built,
and older checkpoints' layouts brought up to date.

>>> cfg = AudioTokenizerConfig()
>>> cfg.samples_per_token, TOKENS_PER_SECOND
(320, 50)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmtok.audio.front_end import F_MAX, F_MIN, HOP_LENGTH, LOG_FLOOR, N_FFT, N_MELS, SAMPLE_RATE
from mmtok.audio.vocoder_config import VocoderConfig
from mmtok.core import seconds
from mmtok.core.errors import AudioError
from mmtok.vq.config import VQConfig

__all__ = [
    "BLOCK_TOKENS",
    "DEFAULT_VQ",
    "SAMPLES_PER_TOKEN",
    "TOKENS_PER_SECOND",
    "VOCODER_CHUNK_FRAMES",
    "AudioTokenizerConfig",
    "check_chunk_seconds",
    "front_end_mismatch",
]

FRAMES_PER_TOKEN = 2  # mel frames per token
BLOCK_TOKENS = 250  # tokens encoded per fixed block (5 s): the unit of identical arithmetic
DEFAULT_VQ = dict(dim=160, codebook_size=1024, decay=0.99, commitment_weight=0.25, dead_code_threshold=0.2)
# the codebook fields that older checkpoints kept flat in the tokenizer's config -> their VQConfig names
FLAT_VQ_KEYS = {"codebook_size": "codebook_size", "vq_decay": "decay", "commitment_weight": "commitment_weight",
                "dead_code_threshold": "dead_code_threshold", "vq_cosine": "cosine", "vq_lookup_dim": "codebook_dim"}


def exact_div(x: int, y: int) -> int:
    assert x % y == 0, f"{x} is not a multiple of {y}"
    return x // y


SAMPLES_PER_TOKEN = HOP_LENGTH * FRAMES_PER_TOKEN  # 320 samples = 20 ms
TOKENS_PER_SECOND = exact_div(SAMPLE_RATE, SAMPLES_PER_TOKEN)  # 50
assert TOKENS_PER_SECOND <= 50
VOCODER_CHUNK_FRAMES = 6000  # the log-mel decoder and the vocoders (learned, Griffin-Lim) run 60 s at a time
# (with context), so memory stays bounded


def check_chunk_seconds(value: object) -> float | None:
    """``encode``'s ``chunk_seconds`` as a float: None, or a number > 0 up to
    :data:`~mmtok.core.seconds.MAX_CHUNK_SECONDS` or ``inf`` (one piece); else an AudioError
    (:func:`mmtok.core.seconds.check_chunk_seconds`)."""
    return seconds.check_chunk_seconds(value, error=AudioError, whole="None or inf: the whole clip at once", infinite=True)


@dataclass
class AudioTokenizerConfig:
    """Hyperparameters and front-end settings of an :class:`AudioTokenizer`."""

    sample_rate: int = SAMPLE_RATE  # Hz of the samples the tokenizer works on
    n_fft: int = N_FFT  # STFT size and Hann window length
    hop_length: int = HOP_LENGTH  # samples between mel frames
    n_mels: int = N_MELS  # mel channels
    f_min: float = F_MIN  # Hz, lowest mel edge
    f_max: float = F_MAX  # Hz, highest mel edge
    log_floor: float = LOG_FLOOR  # power floor before the log
    frames_per_token: int = FRAMES_PER_TOKEN  # mel frames per token (1 or 2)
    encoder_kind: str = "slice"  # "slice": a token's own frames, k-means codes; "conv": learned conv encoder
    code_dim: int = 160  # size of a code vector ("slice": must be frames_per_token * n_mels)
    encoder_channels: int = 128  # width of the encoder convolutions
    encoder_token_blocks: int = 3  # residual blocks at token rate (each adds ±fpt*2 frames of context)
    decoder_channels: int = 256  # width of the decoder convolutions
    decoder_blocks: int = 4  # residual blocks of the decoder (dilations 1, 2, 4, 1, ...)
    block_tokens: int = BLOCK_TOKENS  # tokens per fixed encoding block
    vq: VQConfig = field(default_factory=lambda: VQConfig(**DEFAULT_VQ))  # the codebook (vq.dim = code_dim)
    griffin_lim_iters: int = 32  # iterations of Griffin-Lim when decode() uses it
    vocoder: VocoderConfig | None = None  # the learned waveform decoder (weights under vocoder.*); None: Griffin-Lim only

    def __post_init__(self) -> None:
        if self.sample_rate % (self.hop_length * self.frames_per_token):
            raise ValueError(
                f"sample_rate {self.sample_rate} must be a multiple of hop_length*frames_per_token "
                f"= {self.hop_length * self.frames_per_token} so tokens per second is whole"
            )
        if self.encoder_kind not in ("slice", "conv"):
            raise ValueError(f"encoder_kind must be 'slice' or 'conv', got {self.encoder_kind!r}")
        if self.encoder_kind == "slice" and self.code_dim != self.frames_per_token * self.n_mels:
            raise ValueError(
                f"encoder_kind='slice' needs code_dim = frames_per_token * n_mels = "
                f"{self.frames_per_token * self.n_mels}, got {self.code_dim}"
            )
        if self.f_max > self.sample_rate / 2 or self.n_fft % 2 or self.block_tokens < 1:
            raise ValueError(f"invalid front end: f_max={self.f_max}, n_fft={self.n_fft}, block_tokens={self.block_tokens}")
        if self.vq.dim != self.code_dim:
            raise ValueError(f"vq.dim ({self.vq.dim}) must equal code_dim ({self.code_dim})")
        if self.encoder_kind == "slice" and (self.vq.cosine or self.vq.codebook_dim is not None):
            raise ValueError("encoder_kind='slice' codes are log-mel slices: it needs vq.cosine=False and "
                             f"vq.codebook_dim=None, got cosine={self.vq.cosine}, codebook_dim={self.vq.codebook_dim}")
        if self.vocoder is not None and front_end_mismatch(self, self.vocoder):
            raise ValueError(f"the vocoder reads another log-mel than this tokenizer writes: "
                             f"{front_end_mismatch(self, self.vocoder)}")

    @property
    def samples_per_token(self) -> int:
        return self.hop_length * self.frames_per_token

    @property
    def tokens_per_second(self) -> int:
        """Codes per second of sound (50 for the shipped tokenizer)."""
        return self.sample_rate // self.samples_per_token

    @staticmethod
    def upgrade_dict(data: Mapping[str, Any]) -> dict[str, Any]:
        """A saved config dict in the current layout: older checkpoints kept the codebook's
        fields flat (``codebook_size``, ``vq_decay``, ``commitment_weight``,
        ``dead_code_threshold``, ``vq_cosine``, ``vq_lookup_dim``); they move into ``vq``
        (with ``vq.dim = code_dim`` and the other codebook fields at their defaults).
        A dict already in the current layout comes back unchanged.

        >>> new = AudioTokenizerConfig.upgrade_dict({"code_dim": 160, "codebook_size": 512, "vq_decay": 0.9})
        >>> new["vq"]["codebook_size"], new["vq"]["decay"], new["vq"]["dim"], "codebook_size" in new
        (512, 0.9, 160, False)
        """
        flat = {k: v for k, v in data.items() if k in FLAT_VQ_KEYS}
        if not flat:
            return dict(data)
        if "vq" in data:
            raise ValueError(f"config has both a nested vq and the old flat codebook fields {sorted(flat)}")
        out = {k: v for k, v in data.items() if k not in FLAT_VQ_KEYS}
        vq = {**DEFAULT_VQ, "dim": data.get("code_dim", DEFAULT_VQ["dim"])}
        vq.update({FLAT_VQ_KEYS[k]: v for k, v in flat.items()})
        out["vq"] = vq
        return out


def front_end_mismatch(cfg: AudioTokenizerConfig, voc: VocoderConfig) -> list[str]:
    """The log-mel settings in which vocoder config ``voc`` differs from tokenizer config ``cfg``
    (``"name: tokenizer vs vocoder"``); empty when the vocoder reads what the tokenizer writes.

    >>> front_end_mismatch(AudioTokenizerConfig(), VocoderConfig(n_mels=64))
    ['n_mels: 80 vs 64']
    """
    pairs = {"sample_rate": (cfg.sample_rate, voc.sample_rate), "n_mels": (cfg.n_mels, voc.n_mels),
             "n_fft": (cfg.n_fft, voc.mel_n_fft), "hop_length": (cfg.hop_length, voc.hop_length),
             "f_min": (cfg.f_min, voc.f_min), "f_max": (cfg.f_max, voc.f_max),
             "log_floor": (cfg.log_floor, voc.log_floor)}
    return [f"{k}: {a} vs {b}" for k, (a, b) in pairs.items() if a != b]
