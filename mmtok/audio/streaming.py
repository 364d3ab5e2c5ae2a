"""Stateful, exact streaming of the audio decoders: the log-mel decoder and the learned vocoder
run frame by frame as codes arrive, each convolution keeping just the frames its kernel still
needs, so every frame is computed once, whatever the chunk sizes.

A convolution with symmetric zero padding ``r`` (what :class:`~mmtok.audio.model.MelDecoder`
and :class:`~mmtok.audio.vocoder.Vocoder` use) can give output frame ``t`` once input frame
``t + r`` is in; :class:`StreamConv` starts with ``r`` zeros of left padding and adds ``r``
zeros of right padding at the end, so its outputs are the whole convolution's. Pointwise
layers (LayerNorm, linear layers, 1x1 convolutions, activations) run on whatever frames
arrive, residual inputs wait in a :class:`Delay` until their block's output catches up, and
:class:`StreamISTFT` overlap-adds the head's frames into samples once no later frame
overlaps them. The joined output equals the whole decode within float tolerance (sums
taken over different lengths round differently).

>>> conv = torch.nn.Conv1d(2, 3, 5, padding=2)
>>> x = torch.randn(1, 2, 9)
>>> s = StreamConv(conv)
>>> parts = [s.push(x[..., :4]), s.push(x[..., 4:7]), s.push(x[..., 7:], last=True)]
>>> [p.shape[-1] for p in parts]
[2, 3, 4]
>>> bool(torch.allclose(torch.cat(parts, -1), conv(x), atol=1e-6))
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mmtok.audio.model import MelDecoder, ResBlock
from mmtok.audio.vocoder import MAX_LOG_MAG, ConvNeXtBlock, Vocoder

__all__ = ["Delay", "StreamConv", "StreamISTFT", "StreamMelDecoder", "StreamVocoder"]


class StreamConv:
    """A stride-1 ``Conv1d`` whose padding is its reach each side, fed ``(B, C, n)`` chunks."""

    def __init__(self, conv: nn.Conv1d) -> None:
        reach = conv.dilation[0] * (conv.kernel_size[0] - 1) // 2
        if conv.stride[0] != 1 or conv.padding != (reach,) or conv.padding_mode != "zeros":
            raise ValueError(f"StreamConv needs stride 1 and zero padding {reach} each side, got {conv}")
        self.conv, self.reach = conv, reach
        self.buf: torch.Tensor | None = None

    def push(self, x: torch.Tensor, *, last: bool = False) -> torch.Tensor:
        """Output frames that ``x`` (and, with ``last``, the end of the input) makes final."""
        r = self.reach
        if self.buf is None:
            self.buf = x.new_zeros(*x.shape[:-1], r)  # the left zero padding
        buf = torch.cat([self.buf, x, x.new_zeros(*x.shape[:-1], r)] if last else [self.buf, x], dim=-1)
        n = buf.shape[-1] - 2 * r
        if n <= 0:
            self.buf = buf
            return x.new_zeros(x.shape[0], self.conv.out_channels, 0)
        c = self.conv
        if c.dilation[0] > 1 and c.groups == 1:  # torch's dilated CPU kernel is slow on short inputs: unfold
            d, k = c.dilation[0], c.kernel_size[0]
            cols = torch.cat([buf[:, :, j * d : j * d + n] for j in range(k)], dim=1)  # (B, k*C, n)
            weight = c.weight.permute(0, 2, 1).reshape(c.out_channels, -1)  # (C', k*C), tap-major as cols
            out = torch.matmul(weight, cols)
            out = out + c.bias[:, None] if c.bias is not None else out
        else:
            out = F.conv1d(buf, c.weight, c.bias, dilation=c.dilation, groups=c.groups)  # (B, C', n)
        self.buf = buf[..., n:]
        return out


class Delay:
    """Frames held back until as many frames come out of the branch they are added to."""

    def __init__(self) -> None:
        self.held: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        self.held = x if self.held is None else torch.cat([self.held, x], dim=-1)

    def take(self, n: int) -> torch.Tensor:
        assert self.held is not None and self.held.shape[-1] >= n
        out, self.held = self.held[..., :n], self.held[..., n:]
        return out


class _StreamResBlock:
    """:class:`~mmtok.audio.model.ResBlock` (padded form): ``x + conv2(act(conv1(act(x))))``."""

    def __init__(self, block: ResBlock) -> None:
        if block.crop:
            raise ValueError("only the padded ResBlock streams")
        self.block, self.conv1, self.conv2, self.skip = block, StreamConv(block.conv1), StreamConv(block.conv2), Delay()

    def push(self, x: torch.Tensor, *, last: bool) -> torch.Tensor:
        self.skip.add(x)
        act = self.block.act
        h = self.conv2.push(act(self.conv1.push(act(x), last=last)), last=last)
        return self.skip.take(h.shape[-1]) + h


class StreamMelDecoder:
    """:class:`~mmtok.audio.model.MelDecoder` fed code vectors ``(B, D, n)`` -> log-mel frames ``(B, M, f)``."""

    def __init__(self, decoder: MelDecoder) -> None:
        self.decoder = decoder
        self.conv_in = StreamConv(decoder.conv_in)
        self.blocks = [_StreamResBlock(b) for b in decoder.blocks]
        self.frame_block = _StreamResBlock(decoder.frame_block)
        self.skip = Delay()

    @property
    def lag_frames(self) -> int:
        """Log-mel frames the output runs behind the frames of the tokens received."""
        tokens = self.conv_in.reach + sum(b.conv1.reach + b.conv2.reach for b in self.blocks)
        return self.decoder.frames_per_token * tokens + self.frame_block.conv1.reach + self.frame_block.conv2.reach

    def push(self, z: torch.Tensor, *, last: bool = False) -> torch.Tensor:
        """Log-mel frames (normalized, as the decoder gives them) that code vectors ``z`` make final."""
        d, fpt = self.decoder, self.decoder.frames_per_token
        h = self.conv_in.push(z, last=last)
        for block in self.blocks:
            h = block.push(h, last=last)
        h = rearrange(_pointwise(d.up, h), "b (c f) n -> b c (n f)", f=fpt)
        out = _pointwise(d.proj, self.frame_block.push(h, last=last))
        if d.skip:
            self.skip.add(rearrange(z, "b (f m) n -> b m (n f)", f=fpt))
            out = out + self.skip.take(out.shape[-1])
        return out


def _pointwise(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution that also takes zero frames (``Conv1d`` refuses an empty input)."""
    return conv(x) if x.shape[-1] else x.new_zeros(x.shape[0], conv.out_channels, 0)


class _StreamConvNeXt:
    def __init__(self, block: ConvNeXtBlock) -> None:
        self.block, self.dwconv, self.skip = block, StreamConv(block.dwconv), Delay()

    def push(self, x: torch.Tensor, *, last: bool) -> torch.Tensor:
        b = self.block
        self.skip.add(x)
        h = self.dwconv.push(x, last=last).transpose(1, 2)  # (B, t, C)
        h = b.pwconv2(F.gelu(b.pwconv1(b.norm(h))))
        return self.skip.take(h.shape[1]) + (b.gamma * h).transpose(1, 2)


class StreamISTFT:
    """``torch.istft(spec, n_fft, hop, window=hann, center=True, length=T * hop)`` of frames
    ``(B, K, t)`` fed in order: samples come out once no later frame overlaps them."""

    def __init__(self, n_fft: int, hop: int, window: torch.Tensor) -> None:
        self.n_fft, self.hop, self.window = n_fft, hop, window
        self.frames = 0  # frames received
        self.out = 0  # samples handed out, counted from the start of the (uncentred) overlap-add
        self.ola: torch.Tensor | None = None  # overlap-add from sample `out` on, (B, L)
        self.env: torch.Tensor | None = None  # the squared windows' overlap-add over the same span

    def push(self, spec: torch.Tensor, *, last: bool = False) -> torch.Tensor:
        """Samples that frames ``spec`` (and, with ``last``, the end of the input) make final."""
        n_fft, hop = self.n_fft, self.hop
        b, t = spec.shape[0], spec.shape[-1]
        if self.ola is None or self.env is None:  # the overlap still open after the last frame
            self.ola = spec.real.new_zeros(b, n_fft - hop)
            self.env = spec.real.new_zeros(n_fft - hop)
        ola = torch.cat([self.ola, self.ola.new_zeros(b, t * hop)], dim=1)  # from sample `out` on
        env = torch.cat([self.env, self.env.new_zeros(t * hop)])
        if t:
            span = n_fft + (t - 1) * hop  # frame i of the chunk starts at i * hop of `ola`
            frames = torch.fft.irfft(spec, n=n_fft, dim=1) * self.window[:, None]  # (B, n_fft, t)
            ola[:, :span] += F.fold(frames, (1, span), (1, n_fft), stride=(1, hop))[:, 0, 0]
            squares = (self.window**2)[None, :, None].expand(1, n_fft, t)
            env[:span] += F.fold(squares, (1, span), (1, n_fft), stride=(1, hop))[0, 0, 0]
        self.frames += t
        # samples before the next frame's start are final; at the end, the rest of the centred span
        end = self.frames * hop + (n_fft // 2 if last else 0)
        n = end - self.out
        done = ola[:, :n] / torch.where(env[:n] > 1e-11, env[:n], torch.ones_like(env[:n]))
        first, self.out = self.out, end
        self.ola, self.env = ola[:, n:], env[n:]
        return done[:, max(0, n_fft // 2 - first) :]  # center=True: the first n_fft/2 samples are padding


class StreamVocoder:
    """:class:`~mmtok.audio.vocoder.Vocoder` (without a level correction) fed log-mel ``(B, M, f)``."""

    def __init__(self, voc: Vocoder) -> None:
        if voc.cfg.mel_match:
            raise ValueError("the level correction (mel_match) looks at whole stretches of output: it does not stream")
        self.voc = voc
        self.embed = StreamConv(voc.embed)
        self.blocks = [_StreamConvNeXt(b) for b in voc.backbone]
        self.istft = StreamISTFT(voc.cfg.n_fft, voc.cfg.hop_length, voc.window)

    @property
    def lag_samples(self) -> int:
        """Samples the output runs behind the samples of the frames received."""
        frames = self.embed.reach + sum(b.dwconv.reach for b in self.blocks)
        return frames * self.voc.cfg.hop_length + self.voc.cfg.n_fft // 2

    def push(self, mel: torch.Tensor, *, last: bool = False) -> torch.Tensor:
        """Samples ``(B, s)`` that log-mel frames ``mel`` make final."""
        v = self.voc
        x = self.embed.push(mel, last=last)
        x = v.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block.push(x, last=last)
        x = v.head(v.final_norm(x.transpose(1, 2)))  # (B, t, 2K)
        log_mag, phase = x.transpose(1, 2).float().chunk(2, dim=1)
        spec = torch.polar(log_mag.clamp(max=MAX_LOG_MAG).exp(), phase)
        return self.istft.push(spec, last=last)
