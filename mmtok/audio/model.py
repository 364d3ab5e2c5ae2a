"""The networks behind :class:`mmtok.audio.tokenizer.AudioTokenizer`: a mel-frame encoder with a
fixed receptive field and a token-to-mel decoder.

Axis legend used in shape comments:
    B  batch
    M  mel channels (``n_mels``)
    F  mel frames
    n  tokens (``F = frames_per_token * n``)
    C  channels of a hidden layer
    D  code vector size (``code_dim``)

The encoder uses only unpadded ("valid") convolutions, so token ``t`` depends on
exactly the frames ``[fpt*t - context, fpt*(t+1) + context)`` and nothing else:
that is what makes chunked and whole encoding give the same codes.

>>> enc = MelEncoder(n_mels=80, channels=32, code_dim=8, frames_per_token=2, token_blocks=2)
>>> enc.context_frames
10
>>> tuple(enc(torch.randn(1, 80, 2 * 10 + 2 * 10)).shape)   # (B, D, n)
(1, 8, 10)
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

__all__ = ["MelDecoder", "MelEncoder", "ResBlock", "SliceEncoder"]

FRAME_STAGE_CONTEXT = 2  # frames each side consumed before the downsampling (the input conv)


class ResBlock(nn.Module):
    """``x + conv(act(conv(act(x))))`` over time; ``valid=True`` crops instead of padding."""

    def __init__(self, channels: int, *, kernel: int = 3, dilation: int = 1, valid: bool = True) -> None:
        super().__init__()
        pad = 0 if valid else dilation * (kernel - 1) // 2
        self.crop = 0 if not valid else dilation * (kernel - 1) // 2 + (kernel - 1) // 2
        self.conv1 = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=pad)
        self.conv2 = nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2 if not valid else 0)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, T) -> (B, C, T - 2*crop)."""
        h = self.conv2(self.act(self.conv1(self.act(x))))
        if self.crop:
            x = x[:, :, self.crop : x.shape[-1] - self.crop]
        return x + h


class MelEncoder(nn.Module):
    """Normalized log-mel frames (with context) -> one code-space vector per token."""

    def __init__(
        self, *, n_mels: int, channels: int, code_dim: int, frames_per_token: int, token_blocks: int
    ) -> None:
        super().__init__()
        if FRAME_STAGE_CONTEXT % frames_per_token:
            raise ValueError(f"frames_per_token must divide {FRAME_STAGE_CONTEXT}, got {frames_per_token}")
        self.frames_per_token = frames_per_token
        self.conv_in = nn.Conv1d(n_mels, channels, 5)  # crops 2 frames each side
        self.down = nn.Conv1d(channels, channels, frames_per_token, stride=frames_per_token)
        self.token_blocks = nn.Sequential(*[ResBlock(channels) for _ in range(token_blocks)])
        self.proj = nn.Conv1d(channels, code_dim, 1)
        self.context_frames = FRAME_STAGE_CONTEXT + frames_per_token * 2 * token_blocks

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel`` (B, M, fpt*n + 2*context) -> (B, D, n)."""
        h = torch.nn.functional.silu(self.conv_in(mel))  # (B, C, fpt*(n + 2*ctx_tokens))
        h = self.down(h)  # (B, C, n + 2*ctx_tokens)
        return self.proj(self.token_blocks(h))  # (B, D, n)


class SliceEncoder(nn.Module):
    """Each token's own ``fpt`` log-mel frames as one vector: no context, nothing learned.

    With a k-means codebook this is the classic spectral-slice tokenizer; all the
    learning then sits in the decoder, which reads neighbouring codes.
    """

    def __init__(self, *, frames_per_token: int) -> None:
        super().__init__()
        self.frames_per_token = frames_per_token
        self.context_frames = 0

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel`` (B, M, fpt*n) -> (B, fpt*M, n)."""
        return rearrange(mel, "b m (n f) -> b (f m) n", f=self.frames_per_token)


class MelDecoder(nn.Module):
    """Code vectors (one per token) -> normalized log-mel frames; sees neighbouring tokens."""

    def __init__(
        self, *, n_mels: int, channels: int, code_dim: int, frames_per_token: int, blocks: int,
        skip: bool = False,
    ) -> None:
        super().__init__()
        self.frames_per_token = frames_per_token
        self.skip = skip  # codes are mel slices: predict a correction to them (starts at zero)
        if skip and code_dim != frames_per_token * n_mels:
            raise ValueError(f"a skip decoder needs code_dim = frames_per_token * n_mels, got {code_dim}")
        frame_ch = max(channels // 2, 32)
        self.conv_in = nn.Conv1d(code_dim, channels, 3, padding=1)
        dilations = [(1, 2, 4)[i % 3] for i in range(blocks)]
        self.blocks = nn.Sequential(*[ResBlock(channels, dilation=d, valid=False) for d in dilations])
        self.up = nn.Conv1d(channels, frame_ch * frames_per_token, 1)
        self.frame_block = ResBlock(frame_ch, valid=False)
        self.proj = nn.Conv1d(frame_ch, n_mels, 1)
        if skip:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    @property
    def context_tokens(self) -> int:
        """Tokens each side that one output frame depends on: the token-rate convolutions' reach, plus
        the frame-rate block's, rounded up to whole tokens (1x1 convolutions reach nothing).

        >>> MelDecoder(n_mels=8, channels=8, code_dim=4, frames_per_token=2, blocks=4).context_tokens
        14
        """
        def reach(conv: nn.Conv1d) -> int:
            return conv.dilation[0] * (conv.kernel_size[0] - 1) // 2

        tokens = reach(self.conv_in) + sum(reach(b.conv1) + reach(b.conv2) for b in self.blocks)
        frames = reach(self.frame_block.conv1) + reach(self.frame_block.conv2)
        return tokens + -(-frames // self.frames_per_token)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` (B, D, n) -> (B, M, fpt*n)."""
        h = self.blocks(self.conv_in(z))  # (B, C, n)
        h = rearrange(self.up(h), "b (c f) n -> b c (n f)", f=self.frames_per_token)  # (B, C', F)
        out = self.proj(self.frame_block(h))  # (B, M, F)
        if self.skip:
            out = out + rearrange(z, "b (f m) n -> b m (n f)", f=self.frames_per_token)
        return out
