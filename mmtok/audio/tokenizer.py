"""Audio: a torch log-mel front end (:mod:`mmtok.audio.features`), time-slice tokens
through a learned VQ codebook, and back to log-mel and waveform: with the learned
vocoder (:class:`~mmtok.audio.vocoder.Vocoder`) when the checkpoint has one, else
Griffin-Lim. Loading and resampling live in :mod:`mmtok.audio.io`
(:func:`~mmtok.audio.io.load_audio`); everything is resampled to ``SAMPLE_RATE`` (16 kHz).

Axis legend used in shape comments:
    S  samples            B  batch           M  mel channels
    F  mel frames         n  tokens          D  code vector size

Tokens are time slices: token ``t`` stands for mel frames ``[fpt*t, fpt*(t+1))``
(frame ``i`` is centred on sample ``i*HOP_LENGTH``), read by an encoder with a fixed
receptive field. The signal is processed in fixed blocks of ``block_tokens`` tokens,
each with the same zero-padded context, so streamed, chunked, batched and whole
encodings run identical arithmetic and give identical codes.

>>> cfg = AudioTokenizerConfig(vq=VQConfig(dim=160, codebook_size=64), encoder_channels=32, decoder_channels=32)
>>> tok = AudioTokenizer(cfg).eval()
>>> wave = torch.sin(torch.arange(16000) / 7.0)        # 1 s at 16 kHz
>>> codes = tok.encode(wave, sample_rate=16000)
>>> codes.shape, codes.dtype, tok.tokens_per_second
(torch.Size([50]), torch.int64, 50)
>>> tuple(tok.decode_features(codes).shape)             # (M, F)
(80, 100)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmtok.audio.codes import check_codes, is_encoded_batch, split_batch
from mmtok.audio.decode_stream import lookahead_tokens, stream_waveform
from mmtok.audio.features import (
    F_MAX,
    F_MIN,
    HOP_LENGTH,
    LOG_FLOOR,
    N_FFT,
    N_MELS,
    log_mel,
    mel_filters,
)
from mmtok.audio.griffin_lim import griffin_lim
from mmtok.audio.io import SAMPLE_RATE, AudioInput, load_audio, mono_chunks
from mmtok.audio.model import MelDecoder, MelEncoder, SliceEncoder
from mmtok.audio.vocoder import Vocoder, VocoderConfig
from mmtok.core.errors import AudioError
from mmtok.core.protocol import module_fingerprint, ordinary_outputs
from mmtok.vq.quantizer import VectorQuantizer, VQConfig

__all__ = [
    "AudioTokenizer",
    "AudioTokenizerConfig",
    "AudioTokenizerOutput",
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
VOCODER_CHOICES = ("auto", "learned", "griffin-lim")  # decode(vocoder=...) by name (or a Vocoder module)
VOCODER_CHUNK_FRAMES = 6000  # the learned decoder runs 60 s at a time (with context), so memory stays bounded


def _check_chunk_seconds(value: object) -> None:
    """``encode``'s ``chunk_seconds``: None or a number > 0 (``inf``: one piece); else an AudioError."""
    if value is None:
        return
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not number or math.isnan(value) or value <= 0:  # type: ignore[arg-type, operator]
        raise AudioError(f"chunk_seconds must be a number of seconds > 0 (None or inf: the whole clip at once), "
                         f"got {value!r}")


# --------------------------------------------------------------------------- the tokenizer


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


@dataclass
class AudioTokenizerOutput:
    """What :meth:`AudioTokenizer.forward` returns."""

    reconstruction: torch.Tensor  # (B, M, F) decoded log-mel
    target: torch.Tensor  # (B, M, F) the log-mel frames the tokens stand for
    indices: torch.Tensor  # (B, n) int64 codes
    loss: torch.Tensor  # scalar: reconstruction loss + VQ commitment
    recon_loss: torch.Tensor  # scalar L1 on log-mel, in units of the mean per-channel std
    usage: torch.Tensor  # scalar fraction of codes used in this batch
    perplexity: torch.Tensor  # scalar exp(entropy) of this batch's codes


class AudioTokenizer(nn.Module):
    """Waveform -> log-mel -> encoder -> VQ codes -> decoder -> log-mel -> waveform.

    Two encoders: ``"slice"`` (default) quantizes each token's own log-mel frames with
    a k-means codebook and leaves the learning to a decoder that reads about ±14 tokens of
    code context and predicts a correction to the code's slice; ``"conv"`` learns a
    convolutional encoder with a fixed receptive field and an EMA codebook (VQ-VAE).
    """

    KIND = "audio"
    CONFIG_CLASS = AudioTokenizerConfig
    PAD_CODE = -1  # fills the tail of shorter clips in a batched encode

    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    filters: torch.Tensor

    def __init__(self, cfg: AudioTokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder: MelEncoder | SliceEncoder
        if cfg.encoder_kind == "slice":
            self.encoder = SliceEncoder(frames_per_token=cfg.frames_per_token)
        else:
            self.encoder = MelEncoder(
                n_mels=cfg.n_mels, channels=cfg.encoder_channels, code_dim=cfg.code_dim,
                frames_per_token=cfg.frames_per_token, token_blocks=cfg.encoder_token_blocks,
            )
        self.vq = VectorQuantizer(cfg.vq)
        self.decoder = MelDecoder(
            n_mels=cfg.n_mels, channels=cfg.decoder_channels, code_dim=cfg.code_dim,
            frames_per_token=cfg.frames_per_token, blocks=cfg.decoder_blocks,
            skip=cfg.encoder_kind == "slice",
        )
        self.context_frames = self.encoder.context_frames  # frames of context each side of a token
        self.register_buffer("feature_mean", torch.zeros(cfg.n_mels, 1))  # (M, 1) set from training data
        self.register_buffer("feature_std", torch.ones(cfg.n_mels, 1))  # (M, 1)
        fb = mel_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
        self.register_buffer("filters", fb, persistent=False)  # (M, n_fft//2+1)
        self.vocoder = Vocoder(cfg.vocoder) if cfg.vocoder is not None else None  # learned log-mel -> waveform

    # ------------------------------------------------------------ attributes

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def tokens_per_second(self) -> int:
        return self.cfg.sample_rate // self.cfg.samples_per_token

    @property
    def fingerprint(self) -> str:
        """Names this tokenizer's codes: a hash of its class, config and weights, without the learned
        vocoder (it turns decoded log-mel into sound and changes no code, so attaching a better one
        keeps shards and runs made with this tokenizer valid)."""
        return module_fingerprint(self, cfg=dataclasses.replace(self.cfg, vocoder=None), skip_prefix="vocoder.")

    @property
    def codebook_size(self) -> int:
        return self.cfg.vq.codebook_size

    @property
    def device(self) -> torch.device:
        return self.feature_mean.device

    # ------------------------------------------------------------ features

    def log_mel(self, audio: torch.Tensor, *, center: bool = True) -> torch.Tensor:
        """Log-mel ``[..., M, F]`` of samples ``[..., S]`` already at ``sample_rate`` (batched)."""
        c = self.cfg
        return log_mel(audio.to(self.device), self.filters, n_fft=c.n_fft, hop_length=c.hop_length,
                       floor=c.log_floor, center=center)

    @ordinary_outputs
    def features(self, x: AudioInput, sample_rate: int | None = None) -> torch.Tensor:
        """Log-mel ``[M, F]`` (``F = 1 + S // hop_length``) of a file or array."""
        return self.log_mel(load_audio(x, sample_rate, target_rate=self.sample_rate))

    def context_features(self, audio: torch.Tensor) -> torch.Tensor:
        """The encoder's whole input for samples ``[S]``: log-mel ``[M, fpt*n + 2*context]``,
        frames ``-context .. fpt*n + context - 1`` with zeros outside the signal."""
        c, ctx = self.cfg, self.context_frames
        n = max(1, math.ceil(audio.shape[-1] / c.samples_per_token))
        left = ctx * c.hop_length + c.n_fft // 2
        total = (c.frames_per_token * n + 2 * ctx - 1) * c.hop_length + c.n_fft
        padded = F.pad(audio, (left, total - left - audio.shape[-1]))
        return self.log_mel(padded, center=False)

    def _normalize(self, logmel: torch.Tensor) -> torch.Tensor:
        return (logmel - self.feature_mean) / self.feature_std

    def latents(self, features: torch.Tensor) -> torch.Tensor:
        """The vectors the codebook quantizes, ``[B, n, D]``, of log-mel with context
        ``[B, M, fpt*n + 2*context]`` (what :meth:`context_features` gives, batched).

        The "slice" encoder gives each token's raw log-mel frames (what its k-means
        codebook is fitted on); the conv encoder reads normalized log-mel."""
        if self.cfg.encoder_kind == "slice":
            return self.encoder(features).transpose(1, 2)
        return self.encoder(self._normalize(features)).transpose(1, 2)

    def _decode_latent(self, zq: torch.Tensor) -> torch.Tensor:
        """Code vectors (B, n, D) -> log-mel (B, M, fpt*n)."""
        return self.denormalize(self.decoder(self.decoder_input(zq)))

    def decoder_input(self, zq: torch.Tensor) -> torch.Tensor:
        """Code vectors ``(B, n, D)`` -> the log-mel decoder's input ``(B, D, n)``, token by token."""
        z = zq.transpose(1, 2)  # (B, D, n)
        if self.cfg.encoder_kind == "slice":  # slices of log-mel: normalize them per mel channel
            fpt = self.cfg.frames_per_token
            z = (z - self.feature_mean.repeat(fpt, 1)) / self.feature_std.repeat(fpt, 1)
        return z

    def denormalize(self, out: torch.Tensor) -> torch.Tensor:
        """The log-mel decoder's output ``(B, M, F)`` -> log-mel, frame by frame."""
        return out * self.feature_std + self.feature_mean

    # ------------------------------------------------------------ training

    def forward(self, mel: torch.Tensor) -> AudioTokenizerOutput:
        """``mel`` (B, M, fpt*n + 2*context) log-mel with context -> reconstruction of the middle."""
        ctx = self.context_frames
        target = mel[:, :, ctx : mel.shape[-1] - ctx]  # (B, M, F)
        q = self.vq(self.latents(mel))  # (B, n, D)
        recon = self._decode_latent(q.quantized)  # (B, M, F)
        recon_loss = (recon - target).abs().mean() / self.feature_std.mean()  # L1 in units of a typical std
        return AudioTokenizerOutput(
            recon, target, q.indices, recon_loss + q.loss, recon_loss, q.usage, q.perplexity
        )

    # ------------------------------------------------------------ encoding

    def _block_codes(self, window: torch.Tensor, keep: int) -> torch.Tensor:
        """Samples of one block with context ``[L]`` -> codes of its first ``keep`` tokens."""
        mel = self.log_mel(window[None], center=False)  # (1, M, fpt*T + 2*ctx)
        return self.vq.encode(self.latents(mel)[0, :keep])  # (keep,); only real tokens are counted

    def _stream(self, chunks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Codes block by block from chunks of samples; the same arithmetic whatever the chunking."""
        c, ctx = self.cfg, self.context_frames
        step = c.block_tokens * c.samples_per_token  # samples between block starts
        window = (c.frames_per_token * c.block_tokens + 2 * ctx - 1) * c.hop_length + c.n_fft
        buf = torch.zeros(ctx * c.hop_length + c.n_fft // 2, device=self.device)  # left zero context
        total = emitted = 0
        for chunk in chunks:
            buf = torch.cat([buf, chunk.to(self.device, torch.float32)])
            total += chunk.numel()
            while buf.numel() >= window:
                yield self._block_codes(buf[:window], c.block_tokens)
                buf, emitted = buf[step:], emitted + c.block_tokens
        if total == 0:
            raise AudioError("encode_stream got no samples (all chunks were empty)")
        n = math.ceil(total / c.samples_per_token)
        while emitted < n:
            buf = F.pad(buf, (0, max(0, window - buf.numel())))
            yield self._block_codes(buf[:window], min(c.block_tokens, n - emitted))
            buf, emitted = buf[step:], emitted + c.block_tokens

    @ordinary_outputs
    def encode_stream(self, chunks: Iterable[AudioInput], sample_rate: int | None = None) -> torch.Tensor:
        """Codes ``[n]`` of a recording given as consecutive chunks of samples.

        Chunks must already be at ``tok.sample_rate`` (resampling chunk by chunk would
        change the signal); the codes equal ``encode`` of the whole recording exactly.
        Multi-channel chunks share one layout, fixed by the first chunk whose shape settles
        it (``[C, S]`` or ``[S, C]``, see :func:`~mmtok.audio.io.mono_chunks`): a short
        tail such as ``[2, 1]`` is one stereo sample.
        """
        if sample_rate is not None and sample_rate != self.sample_rate:
            raise ValueError(
                f"encode_stream needs chunks at {self.sample_rate} Hz, got sample_rate={sample_rate}; "
                "resample the recording first (load_audio) or use encode(x, chunk_seconds=...)"
            )
        return torch.cat(list(self._stream(mono_chunks(chunks))))

    @ordinary_outputs
    def encode(
        self, x: AudioInput | Sequence[AudioInput], sample_rate: int | None = None, *,
        chunk_seconds: float | None = None,
    ) -> Any:
        """int64 codes ``[n]`` of one clip (a path or an array at ``sample_rate``).

        A clip's samples are ``[S]``, or ``[C, S]`` / ``[S, C]`` with up to 16 channels,
        averaged to mono: a 2-D array or tensor is one multi-channel clip, not a batch
        (``encode(torch.stack([a, b]))`` encodes the mix ``(a + b) / 2``). A batch is a
        list of clips: it gives ``(codes [B, n_max], lengths [B])``, shorter clips padded
        with ``PAD_CODE``. ``chunk_seconds`` (a number > 0) feeds the clip through
        :meth:`encode_stream` in pieces of that length: the codes are the same; None or
        ``inf`` encodes it in one piece.
        """
        _check_chunk_seconds(chunk_seconds)
        if isinstance(x, (list, tuple)):
            rows = [self.encode(clip, sample_rate, chunk_seconds=chunk_seconds) for clip in x]
            if not rows:
                raise ValueError("encode got an empty list of clips")
            lengths = torch.tensor([r.numel() for r in rows])
            out = torch.full((len(rows), int(lengths.max())), self.PAD_CODE, dtype=torch.long, device=rows[0].device)
            for i, r in enumerate(rows):
                out[i, : r.numel()] = r
            return out, lengths
        audio = load_audio(x, sample_rate, target_rate=self.sample_rate)
        if chunk_seconds is None or math.isinf(chunk_seconds):
            return torch.cat(list(self._stream([audio])))
        size = max(1, min(audio.numel(), round(chunk_seconds * self.sample_rate)))
        return torch.cat(list(self._stream(audio.split(size))))

    # ------------------------------------------------------------ decoding

    def _check_codes(self, codes: Any) -> torch.Tensor:
        """Codes ``[n]`` or ``[B, n]`` of any integer dtype -> int64 on the device (:func:`check_codes`)."""
        return check_codes(codes, self.codebook_size).to(self.device)

    @ordinary_outputs
    def decode_features(self, codes: Any) -> torch.Tensor:
        """Log-mel ``[M, fpt*n]`` (or ``[B, M, fpt*n]``) from codes ``[n]`` (or ``[B, n]``)."""
        codes = self._check_codes(codes)
        mel = self._decode_latent(self.vq.decode(codes.reshape(-1, codes.shape[-1])))  # (B, M, F)
        return mel.reshape(*codes.shape[:-1], *mel.shape[-2:])

    @ordinary_outputs
    def mel_to_wave(self, logmel: torch.Tensor, *, n_iter: int | None = None) -> torch.Tensor:
        """Waveform ``[(F - 1) * hop_length]`` from log-mel ``[M, F]`` by Griffin-Lim
        (:func:`~mmtok.audio.griffin_lim.griffin_lim`)."""
        c = self.cfg
        return griffin_lim(logmel.to(self.device), self.filters, n_fft=c.n_fft, hop_length=c.hop_length,
                           n_iter=n_iter or c.griffin_lim_iters)

    def _pick_vocoder(self, vocoder: str | nn.Module) -> Vocoder | None:
        """The learned decoder ``decode`` should use for ``vocoder``, or None for Griffin-Lim."""
        if isinstance(vocoder, Vocoder):
            wrong = front_end_mismatch(self.cfg, vocoder.cfg)
            if wrong:
                raise ValueError(f"decode(vocoder=...) got a Vocoder for another log-mel than this tokenizer's: {wrong}")
            return vocoder
        if not isinstance(vocoder, str):
            raise TypeError(f"vocoder must be one of {VOCODER_CHOICES} or a Vocoder module, got {type(vocoder).__name__}")
        if vocoder not in VOCODER_CHOICES:
            raise ValueError(f"vocoder must be one of {VOCODER_CHOICES} or a Vocoder module, got {vocoder!r}")
        if vocoder == "learned" and self.vocoder is None:
            raise ValueError(
                "decode(vocoder='learned'): this tokenizer has no learned vocoder; load a checkpoint that has one "
                "(python -m mmtok.audio.vocoder_train --attach OUT writes one), pass a Vocoder module "
                "(vocoder=mmtok.load('RUN/best')) or use vocoder='griffin-lim'"
            )
        return None if vocoder == "griffin-lim" else self.vocoder

    @ordinary_outputs
    def decode(
        self, codes: Any, *, vocoder: str | nn.Module = "auto", lengths: Any = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Waveform ``[n * samples_per_token]`` at ``tok.sample_rate`` from codes ``[n]``.

        A batch ``[B, n]`` gives ``[B, n * samples_per_token]``, each row as its own
        decode would give it (within float tolerance). What a batched :meth:`encode`
        returns, ``(codes [B, n_max], lengths [B])``, or ``codes`` with ``lengths=``,
        gives a list of ``B`` waveforms, clip ``i`` of ``lengths[i] * samples_per_token``
        samples, decoded from its own codes only (the ``PAD_CODE`` tail is never read), so
        ``tok.decode(tok.encode([a, b]))`` is the round trip of a batch.

        ``vocoder``: ``"auto"`` (the learned decoder when this tokenizer has one, else
        Griffin-Lim), ``"learned"`` (an error without one), ``"griffin-lim"``, or a
        :class:`~mmtok.audio.vocoder.Vocoder` module run on :meth:`decode_features`.
        """
        if lengths is None and is_encoded_batch(codes):
            codes, lengths = codes
        voc = self._pick_vocoder(vocoder)
        if lengths is not None:
            return [self._decode_clip(row.to(self.device), voc)
                    for row in split_batch(codes, lengths, self.codebook_size)]
        codes = self._check_codes(codes)
        if codes.dim() == 1:
            return self._decode_clip(codes, voc)
        if voc is None:  # Griffin-Lim runs one clip at a time
            return torch.stack([self._decode_clip(row, None) for row in codes])
        return self._render(self.decode_features(codes), voc, codes.shape[-1])

    def decode_stream(self, chunks: Iterable[Any], *, vocoder: str | nn.Module = "auto") -> Iterator[torch.Tensor]:
        """Waveform pieces from a clip's codes given as consecutive chunks ``[k]`` (:mod:`mmtok.audio.decode_stream`).

        One piece per chunk, of the samples no later code can change (empty until
        :attr:`decode_lookahead` tokens have arrived past them), and the rest after the last
        chunk; joined, they equal :meth:`decode` of all the codes within float tolerance.
        Needs a learned vocoder (``"auto"``, ``"learned"`` or a Vocoder module).
        """
        voc = self._pick_vocoder(vocoder)
        if voc is None:
            why = "this tokenizer has none" if vocoder == "auto" else "Griffin-Lim works on whole clips"
            raise ValueError(f"decode_stream needs a learned vocoder, and {why}: decode(codes, vocoder='griffin-lim')")
        return stream_waveform(self, chunks, voc, chunk_frames=VOCODER_CHUNK_FRAMES)

    @property
    def decode_lookahead(self) -> int | None:
        """Tokens :meth:`decode_stream` waits for past a token before its samples are out, with this
        tokenizer's own vocoder (None without one): the decoders' context, ``/ tokens_per_second`` s."""
        return None if self.vocoder is None else lookahead_tokens(self, self.vocoder)

    def _decode_clip(self, codes: torch.Tensor, voc: Vocoder | None) -> torch.Tensor:
        """Waveform ``[n * samples_per_token]`` of checked codes ``[n]``."""
        mel = self.decode_features(codes)  # (M, fpt*n)
        if voc is None:
            wave = self.mel_to_wave(mel)
            n = codes.numel() * self.cfg.samples_per_token
            return F.pad(wave, (0, max(0, n - wave.numel())))[:n]
        return self._render(mel, voc, codes.numel())

    def _render(self, mel: torch.Tensor, voc: Vocoder, n_codes: int) -> torch.Tensor:
        """The learned vocoder's waveform(s) from log-mel ``[M, F]`` or ``[B, M, F]``: ``fpt * n``
        frames give exactly ``n * samples_per_token`` samples."""
        wave = voc.decode(mel.to(voc.window.device), chunk_frames=VOCODER_CHUNK_FRAMES).to(self.device)
        n = n_codes * self.cfg.samples_per_token
        return F.pad(wave, (0, max(0, n - wave.shape[-1])))[..., :n]
