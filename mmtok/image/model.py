"""The convolutional parts of the image tokenizer: a small fast encoder, a decoder, the losses.

The encoder is deliberately light (one strided patch stem, two 2× downsamplers
and residual blocks at token resolution) so encoding is cheap on a CPU; the
decoder carries most of the weights: residual blocks at token resolution, then
pixel-shuffle upsampling with a residual block per level.

Axis legend used in shape comments:
    B  batch
    C  channels
    H, W  image height and width (pixels)
    h, w  token grid (H / downsample, W / downsample)
    L  latent size (the vectors the quantizer sees)
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["Decoder", "Encoder", "ResBlock", "pca_init", "reconstruction_losses"]


class ResBlock(nn.Module):
    """``x + conv(act(conv(act(x))))`` at constant resolution; the last conv starts at zero."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        return x + self.conv2(F.gelu(self.conv1(F.gelu(x))))


class Encoder(nn.Module):
    """``[B, 3, H, W]`` in [-1, 1] -> ``[B, L, H/f, W/f]`` with ``f = patch * 2**(len(channels)-1)``.

    Two paths summed: a linear projection of each ``f×f`` patch (PCA-initialised by
    :func:`pca_init`) and a nonlinear conv stack whose last layer starts at zero.
    """

    def __init__(self, *, patch: int, channels: tuple[int, ...], blocks: int, latent_dim: int) -> None:
        super().__init__()
        f = patch * 2 ** (len(channels) - 1)
        self.patch_proj = nn.Conv2d(3, latent_dim, f, stride=f)  # linear patch path
        self.stem = nn.Conv2d(3, channels[0], patch, stride=patch)  # non-overlapping patch embedding
        self.down = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 2, stride=2) for c_in, c_out in itertools.pairwise(channels)
        )
        self.blocks = nn.Sequential(*(ResBlock(channels[-1]) for _ in range(blocks)))
        self.out = nn.Conv2d(channels[-1], latent_dim, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        linear = self.patch_proj(x)  # (B, L, h, w)
        x = self.stem(x)  # (B, C0, H/p, W/p)
        for down in self.down:
            x = down(F.gelu(x))  # halves h and w
        x = self.blocks(x)  # (B, C, h, w)
        return linear + self.out(F.gelu(x))  # (B, L, h, w)


class Upsample(nn.Module):
    """2× (or ``factor``×) upsampling by a 1×1 conv and depth-to-space (pixel shuffle)."""

    def __init__(self, c_in: int, c_out: int, factor: int = 2, kernel: int = 1) -> None:
        super().__init__()
        self.factor = factor
        self.proj = nn.Conv2d(c_in, c_out * factor * factor, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (B, C*f*f, h, w)
        return rearrange(x, "b (c p q) h w -> b c (h p) (w q)", p=self.factor, q=self.factor)


class Decoder(nn.Module):
    """``[B, L, h, w]`` -> ``[B, 3, h*f, w*f]``, roughly in [0, 1] (not clamped).

    A linear path (each code -> its own ``f×f`` patch, PCA-initialised) plus a conv
    stack that sees neighbouring codes; the conv stack's last layer starts at zero.
    """

    def __init__(
        self, *, latent_dim: int, channels: tuple[int, ...], blocks: int, level_blocks: int, last_factor: int
    ) -> None:
        super().__init__()
        self.inp = nn.Conv2d(latent_dim, channels[0], 3, padding=1)
        self.blocks = nn.Sequential(*(ResBlock(channels[0]) for _ in range(blocks)))
        levels: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(channels):
            levels.append(Upsample(c_in, c_out, 2))
            levels.extend(ResBlock(c_out) for _ in range(level_blocks))
        self.levels = nn.Sequential(*levels)
        self.out = Upsample(channels[-1], 3, last_factor, kernel=3)
        nn.init.zeros_(self.out.proj.weight)
        nn.init.zeros_(self.out.proj.bias)
        self.patch_out = Upsample(latent_dim, 3, last_factor * 2 ** (len(channels) - 1))  # linear path
        nn.init.zeros_(self.patch_out.proj.weight)
        nn.init.constant_(self.patch_out.proj.bias, 0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        linear = self.patch_out(z)  # (B, 3, H, W)
        x = self.blocks(self.inp(z))  # (B, C0, h, w)
        x = self.levels(x)  # (B, Cn, h*2^n, w*2^n)
        return linear + self.out(F.gelu(x))  # (B, 3, H, W)


@torch.no_grad()
def pca_init(encoder: Encoder, decoder: Decoder, patches: torch.Tensor) -> float:
    """Set both linear patch paths to the top-``L`` principal components of ``patches``.

    ``patches`` is ``[N, 3*f*f]`` in [0, 1], ordered ``(c p q)`` like ``patchify``. Then
    ``encoder.patch_proj`` maps a patch to its PCA coordinates (pixel-space distances
    are kept inside the subspace, so a codebook there is k-means on patches) and
    ``decoder.patch_out`` maps coordinates back to a patch. Returns the fraction of
    patch variance the ``L`` components keep.
    """
    w = encoder.patch_proj.weight  # (L, 3, f, f)
    latent = w.shape[0]
    mean = patches.mean(0)  # (D,)
    centered = patches - mean
    cov = centered.T @ centered / max(1, patches.shape[0] - 1)  # (D, D)
    evals, evecs = torch.linalg.eigh(cov.double())
    top = evecs[:, -latent:].flip(1).float()  # (D, L), largest first
    # encoder input is x' = 2x - 1:  z = U^T (x - mean) = U^T x' / 2 + U^T (1/2 - mean)
    encoder.patch_proj.weight.copy_((top.T / 2).reshape(w.shape))
    encoder.patch_proj.bias.copy_(top.T @ (0.5 - mean))
    decoder.patch_out.proj.weight.copy_(top[:, :, None, None])  # (D, L, 1, 1)
    decoder.patch_out.proj.bias.copy_(mean)
    return float(evals[-latent:].sum() / evals.sum())


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical finite differences of ``[B, C, H, W]``."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def reconstruction_losses(
    recon: torch.Tensor, target: torch.Tensor, *, l1: float, mse: float, grad: float
) -> dict[str, torch.Tensor]:
    """L1 and MSE on pixels plus L1 on image gradients (keeps edges sharp); ``"recon"`` is the weighted sum."""
    l1_loss = F.l1_loss(recon, target)
    mse_loss = F.mse_loss(recon, target)
    rx, ry = image_gradients(recon)
    tx, ty = image_gradients(target)
    grad_loss = F.l1_loss(rx, tx) + F.l1_loss(ry, ty)
    total = l1 * l1_loss + mse * mse_loss + grad * grad_loss
    return {"l1": l1_loss, "mse": mse_loss, "grad": grad_loss, "recon": total}
