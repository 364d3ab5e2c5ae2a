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
each with the same zero-padded context (:mod:`mmtok.audio.encode_blocks`), so streamed,
chunked, batched and whole encodings run identical arithmetic and give identical codes.

>>> from mmtok.vq.config import VQConfig
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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmtok.audio.arrays import mono_chunks
from mmtok.audio.codes import PAD_CODE, check_codes, is_encoded_batch, split_batch
from mmtok.audio.config import (
    VOCODER_CHUNK_FRAMES,
    AudioTokenizerConfig,
    check_chunk_seconds,
    front_end_mismatch,
)
from mmtok.audio.decode_stream import lookahead_tokens, stream_waveform
from mmtok.audio.encode_blocks import encode_clips, ordinary_blocks, stream_codes
from mmtok.audio.features import log_mel, mel_filters
from mmtok.audio.griffin_lim import griffin_lim
from mmtok.audio.io import AudioInput, SampleRate, audio_samples, fit_length
from mmtok.audio.model import MelDecoder, MelEncoder, SliceEncoder
from mmtok.audio.vocoder import Vocoder
from mmtok.audio.windows import context_windows
from mmtok.core.command_line import VOCODER_CHOICES
from mmtok.core.errors import AudioError
from mmtok.core.module_io import building_on_meta
from mmtok.core.protocol import module_fingerprint, ordinary_outputs
from mmtok.vq.quantizer import VectorQuantizer, no_autocast

__all__ = ["AudioTokenizer", "AudioTokenizerOutput"]

Codes = torch.Tensor | np.ndarray | list[Any]  # codes [n] or [B, n] (any integer dtype; a list of ints or rows)
EncodedBatch = tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]  # (codes [B, n_max], lengths [B])
Lengths = torch.Tensor | np.ndarray | Sequence[int]  # lengths [B] of a padded batch of codes
BATCH_WINDOWS = 8  # a batched decode runs at most 8 windows of VOCODER_CHUNK_FRAMES at once (8 min: about 0.5 GB)


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
    PAD_CODE = PAD_CODE  # fills the tail of shorter clips in a batched encode (mmtok.audio.codes.PAD_CODE)

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
        fb = (torch.empty(cfg.n_mels, cfg.n_fft // 2 + 1) if building_on_meta()  # shapes only, not saved
              else mel_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max))
        self.register_buffer("filters", fb, persistent=False)  # (M, n_fft//2+1)
        self.vocoder = Vocoder(cfg.vocoder) if cfg.vocoder is not None else None  # learned log-mel -> waveform

    # ------------------------------------------------------------ attributes

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def tokens_per_second(self) -> int:
        return self.cfg.tokens_per_second

    @property
    def samples_per_token(self) -> int:
        """Samples at :attr:`sample_rate` that one code covers (320: 20 ms at 16 kHz)."""
        return self.cfg.samples_per_token

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
    def features(self, x: AudioInput, sample_rate: SampleRate | None = None) -> torch.Tensor:
        """Log-mel ``[M, F]`` (``F = 1 + S // hop_length``) of a file or array."""
        return self.log_mel(audio_samples(x, sample_rate, target_rate=self.sample_rate))

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
        return self.encoder(self._normalize(features).to(self.feature_std.dtype)).transpose(1, 2)  # the model's dtype

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

    if TYPE_CHECKING:  # calling the module runs forward (nn.Module.__call__): give calls forward's types
        __call__ = forward

    # ------------------------------------------------------------ encoding

    def encode_iter(self, chunks: Iterable[np.ndarray | torch.Tensor], sample_rate: int | None = None, *,
                    channels_first: bool | None = None) -> Iterator[torch.Tensor]:
        """:meth:`encode_stream` handing out codes as they are final: one block of ``block_tokens``
        codes (5 s for the shipped model) as soon as its samples and the encoder's context have
        arrived, and the rest after the last chunk. Joined, they equal ``encode_stream``'s codes.
        ``channels_first`` is as there."""
        if sample_rate is not None and sample_rate != self.sample_rate:
            raise ValueError(f"encode_iter needs chunks at {self.sample_rate} Hz, got sample_rate={sample_rate}; "
                             "resample the recording first (load_audio)")
        mono = mono_chunks(chunks, caller="encode_iter", channels_first=channels_first)
        return self._autocast_off_each(ordinary_blocks(stream_codes(self, mono, "encode_iter")))

    def _autocast_off_each(self, blocks: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        """``blocks`` with autocast off while each is computed (as in :meth:`encode`), and as the caller has it
        between them."""
        while True:
            with no_autocast(self.device):
                block = next(blocks, None)
            if block is None:
                return
            yield block

    @ordinary_outputs
    def encode_stream(self, chunks: Iterable[np.ndarray | torch.Tensor], sample_rate: int | None = None, *,
                      channels_first: bool | None = None) -> torch.Tensor:
        """Codes ``[n]`` of a recording given as consecutive chunks of samples.

        Chunks must already be at ``tok.sample_rate`` (resampling chunk by chunk would
        change the signal); the codes equal ``encode`` of the whole recording exactly.
        Multi-channel chunks share one layout: ``channels_first=True`` for chunks ``[C, S]``,
        ``False`` for ``[S, C]``; None (the default) takes it from the first chunk whose shape
        settles it (see :func:`~mmtok.audio.arrays.mono_chunks`), so a short tail such as ``[2, 1]``
        after ``[2, 4000]`` chunks is one stereo sample. Chunks all too short to tell (both sides
        at most 16, e.g. every chunk ``[2, 2]``) are refused with an error that asks for
        ``channels_first``; mono chunks ``[S]`` never need it.
        """
        if sample_rate is not None and sample_rate != self.sample_rate:
            raise ValueError(
                f"encode_stream needs chunks at {self.sample_rate} Hz, got sample_rate={sample_rate}; "
                "resample the recording first (load_audio) or use encode(x, chunk_seconds=...)"
            )
        return torch.cat(list(self._autocast_off_each(stream_codes(self, mono_chunks(chunks, channels_first=channels_first)))))

    @overload
    def encode(self, x: AudioInput, sample_rate: SampleRate | None = None, *,
               chunk_seconds: float | None = None) -> torch.Tensor: ...

    @overload
    def encode(self, x: list[Any] | tuple[Any, ...], sample_rate: SampleRate | None = None, *,  # a batch of clips
               chunk_seconds: float | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...

    @ordinary_outputs
    def encode(
        self, x: AudioInput | Sequence[AudioInput], sample_rate: SampleRate | None = None, *,
        chunk_seconds: float | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """int64 codes ``[n]`` of one clip (a path or an array at ``sample_rate``, a whole number of Hz as
        :func:`~mmtok.audio.io.load_audio` takes it: an int, a numpy integer or an integral float).

        A clip's samples are ``[S]``, or ``[C, S]`` / ``[S, C]`` with up to 16 channels,
        averaged to mono: a 2-D array or tensor is one multi-channel clip, not a batch
        (``encode(torch.stack([a, b]))`` encodes the mix ``(a + b) / 2``; an array of more
        than two channels also gives a :class:`~mmtok.audio.arrays.MixedChannelsWarning`). A batch is a
        list of clips: it gives ``(codes [B, n_max], lengths [B])``, shorter clips padded
        with ``PAD_CODE``; an error in one clip names it (``clip 1 of the batch: ...``). ``chunk_seconds``
        (a number > 0, at most :data:`~mmtok.core.seconds.MAX_CHUNK_SECONDS`) feeds the clip through
        :meth:`encode_stream` in pieces of that length: the codes are the same; None or
        ``inf`` encodes it in one piece.

        Float samples are about [-1, 1]: a peak over :data:`~mmtok.audio.arrays.MAX_FLOAT_PEAK`
        (64: integer PCM stored as float) is an :class:`AudioError`. A DC offset changes the codes (the mel
        front end starts at 0 Hz): subtract the mean of a recording that carries one. The encoder runs in the
        model's dtype inside an autocast region too, so the codes do not depend on one.
        """
        seconds = check_chunk_seconds(chunk_seconds)
        if isinstance(x, (list, tuple)):  # a batch: clip by clip
            return encode_clips(lambda clip: self.encode(clip, sample_rate, chunk_seconds=seconds), x, sample_rate)
        audio = audio_samples(x, sample_rate, target_rate=self.sample_rate)  # only read: no copy of the caller's array
        whole = seconds is None or seconds * self.sample_rate >= audio.numel()
        pieces = [audio] if seconds is None or whole else audio.split(max(1, round(seconds * self.sample_rate)))
        with no_autocast(self.device):  # the codes of the model's dtype, in an autocast region too
            return torch.cat(list(stream_codes(self, pieces)))

    # ------------------------------------------------------------ decoding

    def _check_codes(self, codes: Any) -> torch.Tensor:
        """Codes ``[n]`` or ``[B, n]`` of any integer dtype -> int64 on the device (:func:`check_codes`);
        a column ``[n, 1]`` (n > 1) is refused: read as a batch it would be ``n`` clips of one code each."""
        codes = check_codes(codes, self.codebook_size)
        if codes.dim() == 2 and codes.shape[0] > 1 and codes.shape[1] == 1:
            b, ms = codes.shape[0], 1000 // self.tokens_per_second
            raise AudioError(f"codes of shape {tuple(codes.shape)} read as a batch [B, n] are {b} clips of one code "
                             f"({ms} ms) each: for one clip of {b} codes pass codes.reshape(-1); for a batch of "
                             f"one-code clips pass lengths=[1] * {b}")
        return codes.to(self.device)

    def _rows_per_call(self, n: int) -> int:
        """Rows of a batch of codes ``[B, n]`` decoded at once: ``BATCH_WINDOWS`` windows of ``VOCODER_CHUNK_FRAMES``
        frames of them at most (a long row runs in windows), so a big batch's memory stays bounded as a long clip's."""
        tokens = max(1, VOCODER_CHUNK_FRAMES // self.cfg.frames_per_token)  # one window's
        return max(1, BATCH_WINDOWS * tokens // min(n, tokens))

    @overload
    def decode_features(self, codes: EncodedBatch, *, lengths: None = None) -> list[torch.Tensor]: ...

    @overload
    def decode_features(self, codes: Codes, *, lengths: Lengths) -> list[torch.Tensor]: ...

    @overload
    def decode_features(self, codes: Codes, *, lengths: None = None) -> torch.Tensor: ...

    @ordinary_outputs
    def decode_features(self, codes: Any, *, lengths: Any = None) -> torch.Tensor | list[torch.Tensor]:
        """Log-mel ``[M, fpt*n]`` (or ``[B, M, fpt*n]``) from codes ``[n]`` (or ``[B, n]``). What a batched
        :meth:`encode` returns, ``(codes [B, n_max], lengths [B])``, or ``codes`` with ``lengths=``, gives a list
        of ``B`` log-mels ``[M, fpt*lengths[i]]``, each from its own codes only, as :meth:`decode` reads them.

        Codes of more than ``VOCODER_CHUNK_FRAMES`` frames (60 s) are decoded in windows of at most that
        length, each with the decoder's :attr:`~mmtok.audio.model.MelDecoder.context_tokens` of real
        context each side, so memory stays bounded; the windows share the codes out evenly (61 s: two of
        30.5 s), none under half the length, so each code is decoded once and no window is short enough to
        round differently, and the log-mel equals that of one piece within float rounding (bit for bit where
        the convolutions round alike at both lengths, as they do for the shipped model on this project's CPUs).
        A batch runs as many rows at once as fill ``BATCH_WINDOWS`` such windows. Autocast is off inside, as in
        :meth:`encode`."""
        if lengths is None and is_encoded_batch(codes):
            codes, lengths = codes
        if lengths is not None:
            return [self.decode_features(row) for row in split_batch(codes, lengths, self.codebook_size)]
        codes = self._check_codes(codes)
        flat = codes.reshape(-1, codes.shape[-1])  # (B, n)
        with no_autocast(self.device):  # the model's dtype, in an autocast region too
            mel = torch.cat([self._decode_rows(rows) for rows in flat.split(self._rows_per_call(flat.shape[-1]))])
        return mel.reshape(*codes.shape[:-1], *mel.shape[-2:])

    def _decode_rows(self, flat: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, M, fpt*n)`` of checked codes ``(B, n)``, a long clip in windows."""
        n, fpt = flat.shape[-1], self.cfg.frames_per_token
        step = max(1, VOCODER_CHUNK_FRAMES // fpt)  # tokens per window
        if n <= step:
            mel = self._decode_latent(self.vq.decode(flat))  # (B, M, F)
        else:
            ctx, pieces = self.decoder.context_tokens, []
            for a, b, lo, hi in context_windows(n, step, ctx, even=True):
                window = self._decode_latent(self.vq.decode(flat[:, lo:hi]))  # (B, M, fpt*(hi - lo))
                pieces.append(window[..., (a - lo) * fpt : (b - lo) * fpt])
            mel = torch.cat(pieces, dim=-1)  # (B, M, F)
        return mel

    @ordinary_outputs
    def mel_to_wave(self, logmel: torch.Tensor, *, n_iter: int | None = None) -> torch.Tensor:
        """Waveform ``[(F - 1) * hop_length]`` from log-mel ``[M, F]`` by Griffin-Lim
        (:func:`~mmtok.audio.griffin_lim.griffin_lim`). A clip longer than ``VOCODER_CHUNK_FRAMES``
        (60 s) is windowed as the learned vocoder is, so memory stays bounded: 60 s at a time with
        real context each side, the same samples as inverting it whole."""
        c = self.cfg
        # float32 whatever the model's dtype, and with autocast off (a caller's bfloat16 autocast would turn its
        # products bfloat16): torchaudio's Griffin-Lim takes no bfloat16
        with no_autocast(self.device):
            return griffin_lim(logmel.to(self.device, torch.float32), self.filters.float(), n_fft=c.n_fft,
                               hop_length=c.hop_length, n_iter=n_iter or c.griffin_lim_iters,
                               chunk_frames=VOCODER_CHUNK_FRAMES)

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
            raise AudioError(
                "decode(vocoder='learned'): this tokenizer has no learned vocoder; attach one (mmtok train-tokenizer "
                "vocoder --tokenizer MODEL --vocoder CKPT --attach OUT writes MODEL with the vocoder CKPT to OUT: "
                "load OUT), pass a Vocoder module (vocoder=mmtok.load('RUN/best')) or use vocoder='griffin-lim'"
            )
        return None if vocoder == "griffin-lim" else self.vocoder

    @overload
    def decode(self, codes: EncodedBatch, *, vocoder: str | nn.Module = "auto",
               lengths: None = None) -> list[torch.Tensor]: ...

    @overload
    def decode(self, codes: Codes, *, vocoder: str | nn.Module = "auto",
               lengths: Lengths) -> list[torch.Tensor]: ...

    @overload
    def decode(self, codes: Codes, *, vocoder: str | nn.Module = "auto",
               lengths: None = None) -> torch.Tensor: ...

    @ordinary_outputs
    def decode(
        self, codes: Any, *, vocoder: str | nn.Module = "auto", lengths: Any = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Waveform ``[n * samples_per_token]`` at ``tok.sample_rate`` from codes ``[n]``.

        A batch ``[B, n]`` gives ``[B, n * samples_per_token]``, each row as its own
        decode would give it (within float tolerance), as many at once as fill 8 min, so memory
        stays bounded (a column ``[n, 1]`` is refused). What a batched :meth:`encode`
        returns, ``(codes [B, n_max], lengths [B])``, or ``codes`` with ``lengths=``,
        gives a list of ``B`` waveforms, clip ``i`` of ``lengths[i] * samples_per_token``
        samples, decoded from its own codes only (the ``PAD_CODE`` tail is never read), so
        ``tok.decode(tok.encode([a, b]))`` is the round trip of a batch.

        ``vocoder``: ``"auto"`` (the learned decoder when this tokenizer has one, else
        Griffin-Lim), ``"learned"`` (an error without one), ``"griffin-lim"``, or a
        :class:`~mmtok.audio.vocoder.Vocoder` module run on :meth:`decode_features`.

        Level and range (the shipped model, measured on validation speech): decoded speech
        comes back a few dB quieter than its input (12 clips: mean -2.9 dB, -0.2 to -4.9 dB;
        39 more: median -3.6 dB), most of it in the codes (the decoded log-mel sits about
        2.3 dB under the true one); and its samples may exceed [-1, 1] for loud, clipped input
        (peaks of 1.3 to 1.7 from speech clipped 6 dB over full scale): clip or normalise
        before writing 16-bit PCM. A DC offset in the input changes its codes (the mel front
        end starts at 0 Hz: 0.05 of DC changed about half of them): remove it before
        encoding (e.g. subtract the mean) for recordings that carry one.
        Autocast is off inside, as in :meth:`encode`; a tokenizer cast to ``float16`` or ``bfloat16``
        (``tok.half()``) decodes in that dtype, audibly apart from float32 (``bfloat16`` changes some codes).
        """
        if lengths is None and is_encoded_batch(codes):
            codes, lengths = codes
        voc = self._pick_vocoder(vocoder)
        with no_autocast(self.device):  # the model's dtype, in an autocast region too
            if lengths is not None:
                return [self._decode_clip(row.to(self.device), voc)
                        for row in split_batch(codes, lengths, self.codebook_size)]
            codes = self._check_codes(codes)
            if codes.dim() == 1:
                return self._decode_clip(codes, voc)
            if voc is None:  # Griffin-Lim runs one clip at a time
                return torch.stack([self._decode_clip(row, None) for row in codes])
            n = codes.shape[-1]
            return torch.cat([self._render(self.decode_features(rows), voc, n)
                              for rows in codes.split(self._rows_per_call(n))])

    def decode_stream(self, chunks: Iterable[Any], *, vocoder: str | nn.Module = "auto") -> Iterator[torch.Tensor]:
        """Waveform pieces from a clip's codes given as consecutive chunks ``[k]`` (:mod:`mmtok.audio.decode_stream`).

        One piece per chunk, of the samples no later code can change (empty until
        :attr:`decode_lookahead` tokens have arrived past them), and the rest after the last
        chunk; joined, they equal :meth:`decode` of all the codes within float32 rounding (sums over
        other lengths round differently: on the shipped model and ``examples/data/speech_en.wav``, at
        most about 2.5e-4 (2.3e-4 measured on one thread and on two), 0.05 % of the peak, the
        difference 78 dB under the signal, for chunks of 1 to 50 codes alike). Needs a learned
        vocoder (``"auto"``, ``"learned"`` or a Vocoder module).
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
            return fit_length(wave, codes.numel() * self.cfg.samples_per_token)
        return self._render(mel, voc, codes.numel())

    def _render(self, mel: torch.Tensor, voc: Vocoder, n_codes: int) -> torch.Tensor:
        """The learned vocoder's waveform(s) from log-mel ``[M, F]`` or ``[B, M, F]``: ``fpt * n``
        frames give exactly ``n * samples_per_token`` samples."""
        wave = voc.decode(mel.to(voc.window.device), chunk_frames=VOCODER_CHUNK_FRAMES).to(self.device, torch.float32)
        return fit_length(wave, n_codes * self.cfg.samples_per_token)
