"""The settings of an image tokenizer: :class:`ImageTokenizerConfig` (saved beside its weights) and the default
codebook :data:`DEFAULT_VQ`. Plain dataclasses, so a config is read and checked without building the model.

>>> cfg = ImageTokenizerConfig(image_size=64)
>>> cfg.downsample, cfg.image_size // cfg.downsample   # pixels per token side, tokens per image side
(16, 4)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mmtok.image.sizes import SIZE_POLICIES
from mmtok.vq.config import VQConfig

__all__ = ["DEFAULT_VQ", "ImageTokenizerConfig"]

DEFAULT_VQ = dict(dim=64, codebook_size=1024, kmeans_iters=20, dead_code_threshold=0.1)  # default codebook


@dataclass
class ImageTokenizerConfig:
    """Hyperparameters of an :class:`~mmtok.image.tokenizer.ImageTokenizer` (saved beside its weights)."""

    image_size: int = 256  # side of the square the "crop"/"pad" policies produce
    size_policy: str = "crop"  # "crop" (shorter side -> image_size, center crop), "pad" or "native"
    patch: int = 4  # side of the encoder's first (non-overlapping) patch embedding
    enc_channels: tuple[int, ...] = (64, 128, 256)  # encoder widths; each step after the first halves h, w
    enc_blocks: int = 1  # encoder residual blocks at token resolution
    latent_dim: int = 64  # size of the vectors the codebook holds
    dec_channels: tuple[int, ...] = (256, 128, 64)  # decoder widths; each step after the first doubles h, w
    dec_blocks: int = 2  # decoder residual blocks at token resolution
    dec_level_blocks: int = 1  # decoder residual blocks after each 2× upsampling
    vq: VQConfig = field(default_factory=lambda: VQConfig(**DEFAULT_VQ))  # the codebook
    l1_weight: float = 1.0  # training loss: L1 on pixels
    mse_weight: float = 1.0  # training loss: squared error on pixels (what PSNR measures)
    grad_weight: float = 0.5  # training loss: L1 on horizontal/vertical image gradients (sharp edges)

    def __post_init__(self) -> None:
        if self.size_policy not in SIZE_POLICIES:
            raise ValueError(f"size_policy must be one of {SIZE_POLICIES}, got {self.size_policy!r}")
        if self.vq.dim != self.latent_dim:
            raise ValueError(f"vq.dim ({self.vq.dim}) must equal latent_dim ({self.latent_dim})")
        sizes = {"image_size": self.image_size, "patch": self.patch, "latent_dim": self.latent_dim,
                 **{f"enc_channels[{i}]": c for i, c in enumerate(self.enc_channels)},
                 **{f"dec_channels[{i}]": c for i, c in enumerate(self.dec_channels)}}
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number ≥ 1, got {value!r}")
        if not self.enc_channels or not self.dec_channels:
            raise ValueError("enc_channels and dec_channels need at least one width each")
        for name in ("enc_channels", "dec_channels"):  # each extra width halves (doubles) the grid once more
            levels = len(getattr(self, name))
            if 2 ** (levels - 1) > self.image_size:
                raise ValueError(f"{name} has {levels} widths: {levels - 1} 2× stages would shrink a "
                                 f"{self.image_size}-pixel image below one pixel")
        up = 2 ** (len(self.dec_channels) - 1)
        if self.downsample % up:
            raise ValueError(
                f"decoder upsamples by {up} but the encoder downsamples by {self.downsample}; "
                "give dec_channels at most log2(downsample) + 1 entries"
            )
        if self.image_size % self.downsample:
            raise ValueError(f"image_size {self.image_size} must be a multiple of downsample {self.downsample}")

    @property
    def downsample(self) -> int:
        """Pixels per token side: ``patch * 2**(len(enc_channels) - 1)``."""
        return self.patch * 2 ** (len(self.enc_channels) - 1)
