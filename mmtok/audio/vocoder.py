"""A learned waveform decoder: the tokenizer's log-mel -> 16 kHz waveform (Vocos-style).

A Conv1d embedding, a stack of ConvNeXt blocks at frame rate (100 frames/s) and a
linear head that predicts the log-magnitude and phase of a short-time Fourier
transform (``n_fft = 4·hop = 640``, Hann window), turned into samples by an inverse
STFT. Nothing runs at sample rate but the inverse FFT, which is why it decodes far
faster than real time on one CPU core.

Time alignment: mel frame ``i`` of the tokenizer is centred on sample ``i·hop``
(``center=True``), and so is STFT frame ``i`` of the head: the inverse STFT drops
``n_fft // 2`` samples at the start and keeps exactly ``T·hop`` samples, so ``T``
frames give ``T·hop`` samples, the span those frames stand for. (A waveform of
``S = T·hop`` samples has ``T + 1`` log-mel frames; the vocoder reads the first ``T``.)

Its settings are :class:`~mmtok.audio.vocoder_config.VocoderConfig`. It is conditioned on features only, so any model that produces the tokenizer's
log-mel (the VQ tokenizer, k-means or dMel baselines) shares it.

Losses (:func:`multi_resolution_stft_loss`, :func:`mel_l1`) live at the end of
this file: spectral convergence plus log-magnitude L1 at three STFT resolutions,
and L1 on the tokenizer's own log-mel.

Axis legend used in shape comments:
    B  batch       M  mel channels      T  frames (100 per second)
    C  channels    K  STFT bins         S  samples (T · hop)

>>> voc = Vocoder(VocoderConfig(dim=32, intermediate=64, blocks=2)).eval()
>>> mel = torch.randn(2, 80, 50) - 5                   # 0.5 s of log-mel
>>> tuple(voc.decode(mel).shape)                        # (B, T * hop)
(2, 8000)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmtok.audio.features import log_mel, mel_filters
from mmtok.audio.front_end import HOP_LENGTH, LOG_FLOOR, N_FFT
from mmtok.audio.mel_match import match_log_mel, reach_frames
from mmtok.audio.vocoder_config import VocoderConfig, receptive_field
from mmtok.audio.windows import context_windows
from mmtok.core.device import exact_float32
from mmtok.core.module_io import building_on_meta

__all__ = [
    "STFT_RESOLUTIONS",
    "Vocoder",
    "mel_l1",
    "multi_resolution_stft_loss",
]

MAX_LOG_MAG = math.log(100.0)  # the head's log-magnitude is clamped here (as Vocos) so exp() cannot overflow
# multi-resolution STFT loss at 16 kHz: (n_fft, hop, window) with 15, 37.5 and 75 ms windows
STFT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))
MAG_FLOOR = 1e-5  # magnitude floor before the log in the STFT losses (about the level of int16 rounding noise)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv over time, LayerNorm, pointwise MLP (GELU), layer scale, residual."""

    def __init__(self, dim: int, intermediate: int, kernel_size: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate)
        self.pwconv2 = nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)."""
        h = self.dwconv(x).transpose(1, 2)  # (B, T, C)
        h = self.pwconv2(F.gelu(self.pwconv1(self.norm(h))))  # (B, T, C)
        return x + (self.gamma * h).transpose(1, 2)


class Vocoder(nn.Module):
    """Log-mel ``[B, M, T]`` -> waveform ``[B, T·hop]`` (see the module docstring)."""

    KIND = "vocoder"
    CONFIG_CLASS = VocoderConfig

    window: torch.Tensor
    filters: torch.Tensor

    def __init__(self, cfg: VocoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        scale = cfg.layer_scale or 1.0 / cfg.blocks
        self.embed = nn.Conv1d(cfg.n_mels, cfg.dim, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.backbone = nn.ModuleList(
            ConvNeXtBlock(cfg.dim, cfg.intermediate, cfg.kernel_size, scale) for _ in range(cfg.blocks)
        )
        self.final_norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, 2 * cfg.bins)  # log-magnitude and phase of each bin
        meta = building_on_meta()  # shapes only: no numbers to compute (none of these are saved)
        if not meta:
            self.apply(self._init)
        self.register_buffer("window", torch.empty(cfg.n_fft) if meta else torch.hann_window(cfg.n_fft),
                             persistent=False)  # (n_fft,)
        fb = (torch.empty(cfg.n_mels, cfg.mel_n_fft // 2 + 1) if meta
              else mel_filters(cfg.sample_rate, cfg.mel_n_fft, cfg.n_mels, cfg.f_min, cfg.f_max))
        self.register_buffer("filters", fb, persistent=False)  # (M, mel_n_fft//2+1), for log_mel / mel_l1

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def context_frames(self) -> int:
        """Frames of context each side a chunk needs to decode exactly like the whole (the network's
        receptive field and the reach of the mel-match passes)."""
        c = self.cfg
        return receptive_field(c) + reach_frames(c.mel_match, n_fft=c.mel_n_fft, hop_length=c.hop_length)

    def render(self, mel: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, T·hop]`` from log-mel ``[B, M, T]`` as :meth:`decode` gives it: the network
        (:meth:`forward`), then ``cfg.mel_match`` passes of :func:`~mmtok.audio.mel_match.match_log_mel`
        toward ``mel``. With autograd, so a run with ``mel_match`` trains through the correction."""
        c = self.cfg
        return match_log_mel(self(mel), mel, self.filters, iterations=c.mel_match, n_fft=c.mel_n_fft,
                             hop_length=c.hop_length, floor=c.log_floor, max_gain_db=c.mel_match_db)

    def spectrum(self, mel: torch.Tensor) -> torch.Tensor:
        """Complex STFT ``[B, K, T]`` the head predicts from log-mel ``[B, M, T]``."""
        x = self.embed(mel)  # (B, C, T)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)  # (B, C, T)
        for block in self.backbone:
            x = block(x)
        x = self.head(self.final_norm(x.transpose(1, 2)))  # (B, T, 2K)
        log_mag, phase = x.transpose(1, 2).float().chunk(2, dim=1)  # (B, K, T) each
        mag = log_mag.clamp(max=MAX_LOG_MAG).exp()
        return torch.polar(mag, phase)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, T·hop]`` from log-mel ``[B, M, T]`` (with autograd: for training).

        B batch, M mel channels, T frames; output sample ``i·hop`` is the centre of frame ``i``.
        """
        if mel.dim() != 3 or mel.shape[1] != self.cfg.n_mels or mel.shape[-1] < 1:
            raise ValueError(
                f"Vocoder wants log-mel [B, {self.cfg.n_mels}, T] with T ≥ 1, got shape {tuple(mel.shape)}"
            )
        spec = self.spectrum(mel)  # (B, K, T)
        c = self.cfg
        return torch.istft(
            spec, c.n_fft, c.hop_length, c.n_fft, window=self.window, center=True,
            length=mel.shape[-1] * c.hop_length,
        )  # (B, T·hop)

    @torch.inference_mode()
    def decode(self, mel: torch.Tensor, *, chunk_frames: int | None = None) -> torch.Tensor:
        """Waveform from log-mel ``[M, T]`` -> ``[T·hop]`` or ``[B, M, T]`` -> ``[B, T·hop]``.

        ``chunk_frames`` decodes at most ``chunk_frames`` frames at a time with :attr:`context_frames`
        of real context each side, so memory stays bounded for long inputs; the windows share the
        frames out evenly (61 s in windows of 60 s: two of 30.5 s, not 60 s and 1 s), none under half
        of ``chunk_frames``, so no window is short enough to round differently, and the result equals
        the whole decode within float rounding (bit for bit for the shipped model on this project's
        CPUs). With ``cfg.mel_match`` the output's level is then brought to ``mel``'s
        (:mod:`mmtok.audio.mel_match`).
        """
        mel = torch.as_tensor(mel)
        if not mel.is_floating_point():
            raise TypeError(f"Vocoder.decode wants float log-mel, got {mel.dtype}")
        if not bool(torch.isfinite(mel).all()):
            raise ValueError("Vocoder.decode got NaN or inf in the log-mel")
        single = mel.dim() == 2
        x = (mel[None] if single else mel).to(self.window.device, self.embed.weight.dtype)  # (B, M, T)
        if chunk_frames is not None and chunk_frames < 1:
            raise ValueError(f"chunk_frames must be positive, got {chunk_frames}")
        with exact_float32():  # TF32 convolutions would give other sound on a GPU than on the CPU
            out = self._render_windows(x, chunk_frames)
        return out[0] if single else out

    def _render_windows(self, x: torch.Tensor, chunk_frames: int | None) -> torch.Tensor:
        """Waveform ``[B, T·hop]`` of log-mel ``[B, M, T]``, whole or in windows of ``chunk_frames``."""
        t = x.shape[-1]
        if chunk_frames is None or t <= chunk_frames:
            out = self.render(x)
        else:
            hop, ctx = self.cfg.hop_length, self.context_frames
            pieces = []
            for a, b, lo, hi in context_windows(t, chunk_frames, ctx, even=True):
                wave = self.render(x[..., lo:hi])  # (B, (hi-lo)·hop)
                pieces.append(wave[:, (a - lo) * hop : (b - lo) * hop])
            out = torch.cat(pieces, dim=-1)  # (B, T·hop)
        return out

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """The tokenizer's log-mel ``[..., M, S//hop + 1]`` of samples ``[..., S]``
        (:func:`mmtok.audio.features.log_mel`)."""
        return log_mel(audio, self.filters, n_fft=self.cfg.mel_n_fft, hop_length=self.cfg.hop_length,
                       floor=self.cfg.log_floor)


# --------------------------------------------------------------------------- losses


def _magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """|STFT| ``[B, n_fft//2+1, frames]`` of ``x [B, S]`` (Hann window of ``win`` samples, centred)."""
    window = torch.hann_window(win, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop, win, window=window, center=True, return_complex=True)
    return (spec.real.square() + spec.imag.square()).clamp_min(MAG_FLOOR**2).sqrt()


def multi_resolution_stft_loss(
    pred: torch.Tensor, target: torch.Tensor,
    resolutions: Sequence[tuple[int, int, int]] = STFT_RESOLUTIONS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spectral convergence, log-magnitude L1)`` of waveforms ``[B, S]``, each averaged over
    ``resolutions`` (``(n_fft, hop, window)``). Spectral convergence is
    ``‖|Y| − |Ŷ|‖_F / ‖|Y|‖_F`` over the batch; the log-magnitude term is ``mean |log|Y| − log|Ŷ||``.

    >>> x = torch.randn(2, 4000)
    >>> [float(v) for v in multi_resolution_stft_loss(x, x)]
    [0.0, 0.0]
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have one shape")
    sc, mag = pred.new_zeros(()), pred.new_zeros(())
    for n_fft, hop, win in resolutions:
        p, t = _magnitude(pred, n_fft, hop, win), _magnitude(target, n_fft, hop, win)  # (B, K, F)
        sc = sc + (t - p).norm() / t.norm()  # over the whole batch: a silent clip cannot blow it up
        mag = mag + (t.log() - p.log()).abs().mean()
    n = len(resolutions)
    return sc / n, mag / n


def mel_l1(pred: torch.Tensor, target_mel: torch.Tensor, filters: torch.Tensor, *, n_fft: int = N_FFT,
           hop_length: int = HOP_LENGTH, floor: float = LOG_FLOOR) -> torch.Tensor:
    """Mean ``|log-mel(pred) − target_mel|`` in nats: ``pred [B, S]`` waveform, ``target_mel [B, M, F]``
    the tokenizer's log-mel of the reference (``F = S // hop + 1``)."""
    mel = log_mel(pred, filters, n_fft=n_fft, hop_length=hop_length, floor=floor)  # (B, M, F)
    if mel.shape != target_mel.shape:
        raise ValueError(f"log-mel of pred {tuple(mel.shape)} does not match target {tuple(target_mel.shape)}")
    return (mel - target_mel).abs().mean()
