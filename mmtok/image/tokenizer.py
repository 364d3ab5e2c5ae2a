"""Images -> discrete tokens and back: loading, size policy, patchify, ``ImageTokenizer``.

Data flow: any image Pillow reads (or an array/tensor) -> ``load_image`` ->
float32 ``[3, H, W]`` in [0, 1] -> ``preprocess`` (size policy) -> encoder ->
VQ -> int64 codes ``[h, w]`` -> decoder -> ``[3, H, W]``.

>>> import torch
>>> tok = ImageTokenizer(ImageTokenizerConfig(image_size=64)).eval()
>>> codes = tok.encode(torch.rand(3, 80, 64))
>>> tuple(codes.shape), codes.dtype, tok.downsample
((4, 4), torch.int64, 16)
>>> tuple(tok.decode(codes).shape)
(3, 64, 64)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from mmtok.core.errors import ImageError
from mmtok.core.protocol import module_fingerprint
from mmtok.image.model import Decoder, Encoder, reconstruction_losses
from mmtok.vq.quantizer import VectorQuantizer, VQConfig

__all__ = [
    "SIZE_POLICIES",
    "ImageError",
    "ImageInput",
    "ImageTokenizer",
    "ImageTokenizerConfig",
    "ImageTokenizerOutput",
    "apply_size_policy",
    "load_image",
    "patchify",
    "unpatchify",
]

SIZE_POLICIES = ("crop", "pad", "native")  # see apply_size_policy
ALPHA_BACKGROUND = 1.0  # transparent pixels are composited on white
SIXTEEN_BIT_MAX = 65535.0

DEFAULT_VQ = dict(dim=64, codebook_size=1024, kmeans_iters=20, dead_code_threshold=0.1)  # default codebook

ImageInput = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor


# --------------------------------------------------------------------------- loading


def _describe(x: Any) -> str:
    if isinstance(x, (str, os.PathLike)):
        return f"image file {os.fspath(x)!r}"
    if isinstance(x, Image.Image):
        return f"PIL image (mode {x.mode}, size {x.size})"
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """``[H, W, 4]`` float in [0, 1] -> ``[H, W, 3]``: alpha-blend onto ``ALPHA_BACKGROUND``."""
    rgb, alpha = rgba[..., :3], rgba[..., 3:4]
    return rgb * alpha + ALPHA_BACKGROUND * (1.0 - alpha)


def _scale_wide(a: np.ndarray, mode: str) -> np.ndarray:
    """Integer/float single-channel modes (``I;16``, ``I``, ``F``) -> float in [0, 1]."""
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"mode {mode} image contains NaN/inf pixels")
    lo, hi = float(a.min()), float(a.max())
    if mode.startswith("I;16"):
        return a / SIXTEEN_BIT_MAX
    if lo >= 0.0 and hi <= 1.0 and mode == "F":
        return a  # already a [0, 1] float image
    if lo >= 0.0 and hi <= 255.0 and mode == "F":
        return a / 255.0
    if lo >= 0.0 and hi <= SIXTEEN_BIT_MAX:
        return a / (255.0 if hi <= 255.0 else SIXTEEN_BIT_MAX)
    return (a - lo) / max(hi - lo, 1e-12)  # arbitrary range: stretch to [0, 1]


def _from_pil(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> float32 ``[H, W, 3]`` in [0, 1] (EXIF orientation applied)."""
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        gray = _scale_wide(np.asarray(img), mode)
        return np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode == "P" and "transparency" in img.info
    ) or (mode in ("L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        return _composite_on_white(rgba).astype(np.float32)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _from_array(a: np.ndarray) -> np.ndarray:
    """HW / HWC (C = 1, 3, 4) uint8, uint16, bool or float in [0, 1] -> float32 ``[H, W, 3]``."""
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError("expected an array [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] (channels last)")
    if a.dtype == np.uint8:
        f = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        f = a.astype(np.float32) / SIXTEEN_BIT_MAX
    elif a.dtype == np.bool_:
        f = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float32)
        if not np.isfinite(f).all():
            raise ValueError("the array contains NaN/inf values")
        if f.size and (f.min() < -1e-3 or f.max() > 1.0 + 1e-3):
            raise ValueError(
                f"float pixels must lie in [0, 1], got range [{f.min():.3g}, {f.max():.3g}] "
                "(divide 0..255 data by 255, or pass uint8)"
            )
        f = f.clip(0.0, 1.0)
    else:
        raise ValueError("supported dtypes are uint8, uint16, bool and float")
    if f.shape[2] == 4:
        f = _composite_on_white(f)
    elif f.shape[2] == 1:
        f = np.repeat(f, 3, axis=2)
    return np.ascontiguousarray(f, dtype=np.float32)


def _open_file(path: Path) -> Image.Image:
    if not path.exists():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    if path.is_dir():
        raise ImageError(f"{str(path)!r} is a folder, not an image file")
    try:
        with Image.open(path) as img:
            img.load()  # decode now: truncated/corrupt data fails here, not later
            return img.copy()
    except UnidentifiedImageError as e:
        raise ImageError(f"image file {str(path)!r} is not an image Pillow can read") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"image file {str(path)!r} is corrupt or truncated: {e}") from e


def load_image(x: ImageInput) -> torch.Tensor:
    """Any image -> float32 ``[3, H, W]`` in [0, 1].

    ``x`` is a file path, a ``PIL.Image`` (every mode: 1, L, LA, P, RGBA, CMYK,
    I;16, I, F, ...; transparency is composited on white; EXIF orientation is
    applied), a numpy array ``[H, W(, C)]`` (uint8, uint16, bool, or float in
    [0, 1]) or a tensor ``[C, H, W]`` with C in 1, 3, 4 (uint8, or float in [0, 1]).

    >>> tuple(load_image(np.zeros((5, 7, 4), np.uint8)).shape)
    (3, 5, 7)
    """
    where = _describe(x)
    try:
        if isinstance(x, (str, os.PathLike)):
            arr = _from_pil(_open_file(Path(x)))
        elif isinstance(x, Image.Image):
            arr = _from_pil(x)
        elif isinstance(x, np.ndarray):
            arr = _from_array(x)
        elif isinstance(x, torch.Tensor):
            return _from_tensor(x)
        else:
            raise TypeError(
                f"load_image takes a path, PIL.Image, numpy array or torch.Tensor, got {type(x).__name__}"
            )
    except (ImageError, FileNotFoundError, TypeError):
        raise
    except ValueError as e:
        raise ImageError(f"cannot use {where}: {e}") from e
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{where} is empty (0 pixels)")
    return torch.from_numpy(rearrange(arr, "h w c -> c h w").copy())


def _from_tensor(t: torch.Tensor) -> torch.Tensor:
    where = _describe(t)
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3 or t.shape[0] not in (1, 3, 4):
        raise ImageError(f"cannot use {where}: expected a tensor [3, H, W] (or [1, H, W], [4, H, W], [H, W])")
    if t.dtype == torch.uint8:
        f = t.float() / 255.0
    elif t.is_floating_point():
        f = t.detach().float()
        if not bool(torch.isfinite(f).all()):
            raise ImageError(f"cannot use {where}: it contains NaN/inf values")
        if f.numel() and (float(f.min()) < -1e-3 or float(f.max()) > 1.0 + 1e-3):
            raise ImageError(
                f"cannot use {where}: float pixels must lie in [0, 1], got range "
                f"[{float(f.min()):.3g}, {float(f.max()):.3g}] (divide 0..255 data by 255)"
            )
        f = f.clamp(0.0, 1.0)
    else:
        raise ImageError(f"cannot use {where}: supported dtypes are uint8 and float")
    if f.shape[0] == 4:
        f = f[:3] * f[3:] + ALPHA_BACKGROUND * (1.0 - f[3:])
    elif f.shape[0] == 1:
        f = f.expand(3, -1, -1)
    if f.shape[1] == 0 or f.shape[2] == 0:
        raise ImageError(f"{where} is empty (0 pixels)")
    return f.contiguous()


# --------------------------------------------------------------------------- size policy, patches


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bicubic resize of ``[B, 3, H, W]``, clamped to [0, 1]."""
    if (x.shape[-2], x.shape[-1]) == (height, width):
        return x
    y = F.interpolate(x, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return y.clamp_(0.0, 1.0)


def _pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad ``[B, 3, H, W]`` at the bottom and right by repeating the edge pixels."""
    ph, pw = height - x.shape[-2], width - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def apply_size_policy(x: torch.Tensor, *, policy: str, image_size: int, multiple: int) -> torch.Tensor:
    """Bring ``[B, 3, H, W]`` to the size the encoder sees.

    - ``"crop"``: resize the shorter side to ``image_size``, center-crop to a square.
    - ``"pad"``: resize the longer side to ``image_size``, pad (edge pixels,
      bottom/right) to ``image_size × image_size``.
    - ``"native"``: keep the size, pad (bottom/right) to a multiple of ``multiple``.

    >>> tuple(apply_size_policy(torch.rand(1, 3, 40, 90), policy="native", image_size=64, multiple=16).shape)
    (1, 3, 48, 96)
    """
    h, w = x.shape[-2:]
    if policy == "crop":
        s = image_size / min(h, w)
        nh, nw = max(image_size, round(h * s)), max(image_size, round(w * s))
        x = _resize(x, nh, nw)
        top, left = (nh - image_size) // 2, (nw - image_size) // 2
        return x[..., top : top + image_size, left : left + image_size]
    if policy == "pad":
        s = image_size / max(h, w)
        nh, nw = min(image_size, max(1, round(h * s))), min(image_size, max(1, round(w * s)))
        return _pad_to(_resize(x, nh, nw), image_size, image_size)
    if policy == "native":
        return _pad_to(x, -(-h // multiple) * multiple, -(-w // multiple) * multiple)
    raise ValueError(f"unknown size policy {policy!r}; expected one of {SIZE_POLICIES}")


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, h*w, C*patch*patch]`` non-overlapping patches, row-major.

    >>> tuple(patchify(torch.rand(2, 3, 32, 48), 16).shape)
    (2, 6, 768)
    """
    return rearrange(x, "b c (h p) (w q) -> b (h w) (c p q)", p=patch, q=patch)


def unpatchify(patches: torch.Tensor, patch: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``[B, h*w, C*patch*patch]`` -> ``[B, C, h*patch, w*patch]``."""
    return rearrange(patches, "b (h w) (c p q) -> b c (h p) (w q)", h=h, w=w, p=patch, q=patch)


# --------------------------------------------------------------------------- the tokenizer


@dataclass
class ImageTokenizerConfig:
    """Hyperparameters of an :class:`ImageTokenizer` (saved beside its weights)."""

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


@dataclass
class ImageTokenizerOutput:
    """What :meth:`ImageTokenizer.forward` returns."""

    reconstruction: torch.Tensor  # [B, 3, H, W] decoder output (not clamped, for the loss)
    indices: torch.Tensor  # [B, h, w] int64 codes
    losses: dict[str, torch.Tensor]  # "l1", "mse", "grad", "recon", "commit" and "total" (what to minimise)
    usage: torch.Tensor  # scalar fraction of codes used in this batch
    perplexity: torch.Tensor  # scalar exp(entropy) of this batch's codes


class ImageTokenizer(nn.Module):
    """Images <-> ``[h, w]`` grids of int64 codes (``h = H / downsample``).

    ``encode`` takes one image (path, PIL, array, ``[3, H, W]``) -> ``[h, w]`` or a
    batch (``[B, 3, H, W]`` or a list) -> ``[B, h, w]``; ``decode`` inverts it to
    float images in [0, 1]. ``preprocess`` is exactly what ``encode`` sees.
    """

    KIND = "image"  # checkpoint kind
    CONFIG_CLASS = ImageTokenizerConfig

    def __init__(self, cfg: ImageTokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(
            patch=cfg.patch, channels=tuple(cfg.enc_channels), blocks=cfg.enc_blocks, latent_dim=cfg.latent_dim
        )
        self.vq = VectorQuantizer(cfg.vq)
        last = cfg.downsample // 2 ** (len(cfg.dec_channels) - 1)
        self.decoder = Decoder(
            latent_dim=cfg.latent_dim,
            channels=tuple(cfg.dec_channels),
            blocks=cfg.dec_blocks,
            level_blocks=cfg.dec_level_blocks,
            last_factor=last,
        )

    @property
    def codebook_size(self) -> int:
        return self.cfg.vq.codebook_size

    @property
    def downsample(self) -> int:
        return self.cfg.downsample

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    @property
    def grid(self) -> tuple[int, int]:
        """``(rows, columns)`` of codes of an image at the default size (``image_size`` square)."""
        side = self.cfg.image_size // self.cfg.downsample
        return side, side

    @property
    def fingerprint(self) -> str:
        """Names this tokenizer's codes: a hash of its class, config and weights."""
        return module_fingerprint(self)

    @property
    def device(self) -> torch.device:
        return self.vq.embed.device

    # ---------------------------------------------------------------- preprocessing

    def _check_size(self, x: torch.Tensor, where: str) -> None:
        h, w = x.shape[-2:]
        f = self.downsample
        if h < f or w < f:
            raise ImageError(
                f"{where} is {w}×{h} pixels, smaller than one {f}×{f} patch; "
                f"use an image at least {f} pixels on each side"
            )

    def _preprocess_batch(self, x: torch.Tensor, where: str) -> torch.Tensor:
        self._check_size(x, where)
        c = self.cfg
        return apply_size_policy(x, policy=c.size_policy, image_size=c.image_size, multiple=self.downsample)

    def preprocess(self, x: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """The exact tensor ``encode`` sees: ``[3, H, W]`` for one image, ``[B, 3, H, W]`` for a batch."""
        batch, single = self._as_batch(x)
        return batch[0] if single else batch

    def _as_batch(self, x: Any) -> tuple[torch.Tensor, bool]:
        """Any accepted input -> (``[B, 3, H, W]`` preprocessed float on CPU, was it one image)."""
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            if x.shape[0] == 0:
                raise ImageError("got an empty batch [0, C, H, W]")
            imgs = torch.stack([_from_tensor(t) for t in x.detach().cpu()])  # checks dtype, range, NaN
            return self._preprocess_batch(imgs, _describe(x)), False
        if isinstance(x, (list, tuple)):
            if not x:
                raise ImageError("got an empty list of images")
            outs = [self._preprocess_batch(load_image(i)[None], _describe(i)) for i in x]
            sizes = {tuple(o.shape[-2:]) for o in outs}
            if len(sizes) > 1:
                raise ImageError(
                    f"images in one batch preprocess to different sizes {sorted(sizes)} under size_policy "
                    f"{self.cfg.size_policy!r}; encode them one at a time or use 'crop' or 'pad'"
                )
            return torch.cat(outs), False
        return self._preprocess_batch(load_image(x)[None], _describe(x)), True

    # ---------------------------------------------------------------- the model

    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [0, 1] -> ``[B, h, w, L]``."""
        z = self.encoder(x * 2.0 - 1.0)  # (B, L, h, w)
        return rearrange(z, "b l h w -> b h w l")

    def _decode_latents(self, q: torch.Tensor) -> torch.Tensor:
        """``[B, h, w, L]`` -> ``[B, 3, H, W]`` (not clamped)."""
        return self.decoder(rearrange(q, "b h w l -> b l h w"))

    def forward(self, x: torch.Tensor) -> ImageTokenizerOutput:
        """Training pass over a preprocessed batch ``[B, 3, H, W]`` in [0, 1] (``H, W`` multiples of downsample).

        Axes: B batch, H W pixels, h w token grid, L latent size.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ImageError(f"forward takes a batch [B, 3, H, W], got shape {tuple(x.shape)}")
        f = self.downsample
        if x.shape[-2] % f or x.shape[-1] % f:
            raise ImageError(f"forward needs H and W divisible by {f}, got {tuple(x.shape[-2:])}; use preprocess")
        z = self._latents(x)  # (B, h, w, L)
        q = self.vq(z)
        recon = self._decode_latents(q.quantized)  # (B, 3, H, W)
        c = self.cfg
        losses = reconstruction_losses(recon, x, l1=c.l1_weight, mse=c.mse_weight, grad=c.grad_weight)
        losses["commit"] = q.loss
        losses["total"] = losses["recon"] + q.loss
        return ImageTokenizerOutput(recon, q.indices, losses, q.usage, q.perplexity)

    @torch.inference_mode()
    def encode(self, x: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """One image -> int64 codes ``[h, w]``; a batch (``[B, 3, H, W]`` or a list) -> ``[B, h, w]``."""
        batch, single = self._as_batch(x)
        codes = self.vq.encode(self._latents(batch.to(self.device)))  # (B, h, w)
        return codes[0] if single else codes

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor | np.ndarray | Sequence[Any]) -> torch.Tensor:
        """Codes ``[h, w]`` -> image ``[3, H, W]``; ``[B, h, w]`` -> ``[B, 3, H, W]``; float in [0, 1]."""
        codes = torch.as_tensor(codes)
        if codes.dim() not in (2, 3):
            raise ImageError(f"decode takes codes [h, w] or [B, h, w], got shape {tuple(codes.shape)}")
        single = codes.dim() == 2
        batch = codes[None] if single else codes
        try:
            q = self.vq.decode(batch.to(self.device))  # (B, h, w, L)
        except ValueError as e:
            raise ImageError(f"cannot decode these codes: {e}") from e
        img = self._decode_latents(q).clamp_(0.0, 1.0)  # (B, 3, H, W)
        return img[0] if single else img
