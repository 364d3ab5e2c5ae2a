"""Images -> discrete tokens and back: ``ImageTokenizer`` (encoder, VQ codebook, decoder).

Data flow: any image Pillow reads (or an array/tensor) -> ``load_sized``
(``load_image`` and the size policy, reading only what the policy needs) ->
float32 ``[3, H, W]`` in [0, 1], what ``preprocess`` gives -> encoder -> VQ ->
int64 codes ``[h, w]`` -> decoder -> ``[3, H, W]``.

>>> import torch
>>> tok = ImageTokenizer(ImageTokenizerConfig(image_size=64)).eval()
>>> codes = tok.encode(torch.rand(3, 80, 64))
>>> tuple(codes.shape), codes.dtype, tok.downsample
((4, 4), torch.int64, 16)
>>> tuple(tok.decode(codes).shape)
(3, 64, 64)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from einops import rearrange
from torch import nn

from mmtok.core.errors import ImageError, MmtokError
from mmtok.core.protocol import module_fingerprint, ordinary_outputs
from mmtok.core.tensors import as_tensor
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.io import ImageInput, check_size, describe, load_image, load_sized
from mmtok.image.model import Decoder, Encoder, reconstruction_losses
from mmtok.image.sizing import apply_size_policy
from mmtok.vq.quantizer import VectorQuantizer, no_autocast

__all__ = ["ImageTokenizer", "ImageTokenizerOutput"]

CHUNK = 32  # images of a list or batch preprocessed and encoded, or decoded, at a time: memory stays bounded

BATCH_FORMS = "a batch is a torch [B, 3, H, W] tensor, a numpy [B, H, W, 3] array or a list of images"
CHANNELS = (1, 3, 4)  # the channel counts an image array or tensor may have (gray, RGB, RGBA)


def _check_batch_layout(x: torch.Tensor | np.ndarray) -> None:
    """An :class:`ImageError` naming ``x`` unless it is a batch of images as :func:`load_image` reads one:
    a tensor ``[B, C, H, W]`` (channels first), a numpy array ``[B, H, W, C]`` (channels last)."""
    tensor = isinstance(x, torch.Tensor)
    axis, other = (1, -1) if tensor else (-1, 1)
    if x.shape[0] == 0:
        raise ImageError(f"got an empty batch: {describe(x)}")
    if x.shape[axis] in CHANNELS:
        return
    if tensor:
        why = "a batch tensor holds its channels first, [B, C, H, W] with C in 1, 3, 4"
        fix = "; for channels last pass x.permute(0, 3, 1, 2)" if x.shape[other] in CHANNELS else ""
    else:
        why = "a numpy batch holds its channels last, [B, H, W, C] with C in 1, 3, 4, as one numpy image does"
        fix = "; for channels first pass torch.from_numpy(x)" if x.shape[other] in CHANNELS else ""
    raise ImageError(f"cannot use {describe(x)}: {why}{fix}; {BATCH_FORMS}")


def _batch_image(img: torch.Tensor | np.ndarray, index: int, where: str) -> torch.Tensor:
    """:func:`load_image` of image ``index`` of the batch ``where``, which an error names."""
    try:
        return load_image(img)
    except ImageError as e:
        raise ImageError(f"image {index} of the batch {where}: {e}") from e


def _join_grids(codes: Sequence[torch.Tensor | np.ndarray], device: torch.device) -> torch.Tensor:
    """A list of code grids ``[h, w]`` -> a batch ``[B, h, w]`` on ``device``; a list of batches ``[b, h, w]`` ->
    them joined in order. An :class:`ImageError` when the grids differ in shape or the items in rank."""
    ranks = sorted({c.ndim for c in codes})
    shapes = sorted({tuple(c.shape[-2:]) for c in codes})
    if len(ranks) > 1 or ranks[0] not in (2, 3):
        raise ImageError(f"decode takes a list of code grids [h, w] or of batches [b, h, w], got items of "
                         f"shapes {sorted({tuple(c.shape) for c in codes})}; decode them one at a time")
    if len(shapes) > 1:
        raise ImageError(f"decode takes a list of code grids of one shape (a batch), got grid shapes {shapes}; "
                         "decode grids of different shapes one at a time")
    tensors = [as_tensor(c).to(device) for c in codes]
    return torch.stack(tensors) if ranks[0] == 2 else torch.cat(tensors)  # (B, h, w)


def _shape_hint(shape: tuple[int, ...], grid: tuple[int, int]) -> str:
    """How to mend codes of a ``shape`` that :meth:`ImageTokenizer.decode` refuses: a flat row of codes
    (``grid``: the tokenizer's grid at its default size) or a ``[B, 1, h, w]`` batch."""
    h, w = grid
    if len(shape) == 1 and shape[0] == h * w:
        return (f"; codes flattened row by row from a {h}×{w} grid (this tokenizer's at its default size) "
                f"come back with codes.reshape({h}, {w})")
    if len(shape) == 1 and shape[0]:
        return "; a flat row of codes carries no grid shape: pass codes.reshape(rows, columns)"
    if len(shape) == 4 and shape[1] == 1:
        return "; for a batch [B, 1, h, w] pass codes.squeeze(1)"
    return ""


# --------------------------------------------------------------------------- the tokenizer


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
    batch (``[B, 3, H, W]``, numpy ``[B, H, W, 3]`` or a list) -> ``[B, h, w]``; ``decode`` inverts it to
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

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the encoder's weights, which ``encode`` casts images to (float32 unless cast)."""
        return next(self.encoder.parameters()).dtype

    # ---------------------------------------------------------------- preprocessing

    def _preprocess_batch(self, x: torch.Tensor, where: str) -> torch.Tensor:
        check_size(*x.shape[-2:], patch=self.downsample, where=where)
        c = self.cfg
        return apply_size_policy(x, policy=c.size_policy, image_size=c.image_size, multiple=self.downsample)

    def _preprocess_one(self, x: ImageInput) -> torch.Tensor:
        """One image of any kind -> ``[1, 3, H, W]``, read as the size policy needs (see ``load_sized``)."""
        c = self.cfg
        return load_sized(x, policy=c.size_policy, image_size=c.image_size, multiple=self.downsample)

    def preprocess(self, x: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """The exact tensor ``encode`` sees: ``[3, H, W]`` for one image, ``[B, 3, H, W]`` for a batch."""
        chunks, single = self._chunks(x)
        batch = torch.cat(list(chunks))
        return batch[0] if single else batch

    def _chunks(self, x: Any) -> tuple[Iterator[torch.Tensor], bool]:
        """Any accepted input -> (its preprocessed ``[b, 3, H, W]`` float on CPU, ``CHUNK`` images at a time,
        was it one image)."""
        if isinstance(x, (torch.Tensor, np.ndarray)) and x.ndim == 4:
            _check_batch_layout(x)
            return self._tensor_chunks(x), False
        if isinstance(x, (list, tuple)):
            if not x:
                raise ImageError("got an empty list of images")
            return self._list_chunks(x), False
        return iter([self._preprocess_one(x)]), True

    def _tensor_chunks(self, x: torch.Tensor | np.ndarray) -> Iterator[torch.Tensor]:
        """A tensor ``[B, C, H, W]`` or numpy array ``[B, H, W, C]`` -> preprocessed ``[b, 3, H', W']``,
        ``CHUNK`` images at a time; an image that cannot be used is named by its index in the batch."""
        where = describe(x)
        for i in range(0, x.shape[0], CHUNK):
            part = x[i : i + CHUNK]
            part = part.detach().cpu() if isinstance(part, torch.Tensor) else part
            imgs = torch.stack([_batch_image(img, i + j, where) for j, img in enumerate(part)])  # checks dtype, range, NaN
            yield self._preprocess_batch(imgs, where)

    def _list_chunks(self, x: Sequence[ImageInput]) -> Iterator[torch.Tensor]:
        """A list of images -> preprocessed ``[b, 3, H', W']``, ``CHUNK`` at a time, all of one size; an image
        that cannot be used is named by its index in the list."""
        sizes: set[tuple[int, ...]] = set()
        for i in range(0, len(x), CHUNK):
            outs = [self._list_image(item, i + j) for j, item in enumerate(x[i : i + CHUNK])]
            sizes |= {tuple(o.shape[-2:]) for o in outs}
            if len(sizes) > 1:
                raise ImageError(
                    f"images in one batch preprocess to different sizes {sorted(sizes)} under size_policy "
                    f"{self.cfg.size_policy!r}; encode them one at a time or use 'crop' or 'pad'"
                )
            yield torch.cat(outs)

    def _list_image(self, item: ImageInput, index: int) -> torch.Tensor:
        """:meth:`_preprocess_one` of image ``index`` of a list, which an error names."""
        try:
            return self._preprocess_one(item)
        except (MmtokError, TypeError) as e:  # a missing file, a bad array...: the same class, the image named
            raise type(e)(f"image {index} of the batch: {e}") from e

    # ---------------------------------------------------------------- the model

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output before quantization: ``[B, 3, H, W]`` in [0, 1] -> ``[B, h, w, L]``."""
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
        z = self.latents(x)  # (B, h, w, L)
        q = self.vq(z)
        recon = self._decode_latents(q.quantized)  # (B, 3, H, W)
        c = self.cfg
        losses = reconstruction_losses(recon, x, l1=c.l1_weight, mse=c.mse_weight, grad=c.grad_weight)
        losses["commit"] = q.loss
        losses["total"] = losses["recon"] + q.loss
        return ImageTokenizerOutput(recon, q.indices, losses, q.usage, q.perplexity)

    if TYPE_CHECKING:  # calling the module runs forward (nn.Module.__call__): give calls forward's types
        __call__ = forward

    @ordinary_outputs
    def encode(self, x: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """One image -> int64 codes ``[h, w]``; a batch (a tensor ``[B, 3, H, W]``, a numpy array ``[B, H, W, 3]``
        or a list) -> ``[B, h, w]``, read and encoded ``CHUNK`` images at a time. The images are cast to the
        model's device and :attr:`dtype` (a model cast by ``.double()`` or ``.to(torch.bfloat16)`` encodes in
        that dtype), in an autocast region too: the codes do not depend on one."""
        chunks, single = self._chunks(x)
        with no_autocast(self.device):
            codes = torch.cat([self.vq.encode(self.latents(b.to(self.device, self.dtype))) for b in chunks])  # (B, h, w)
        return codes[0] if single else codes

    @ordinary_outputs
    def decode(self, codes: torch.Tensor | np.ndarray | Sequence[Any]) -> torch.Tensor:
        """Codes ``[h, w]`` -> image ``[3, H, W]``; ``[B, h, w]`` -> ``[B, 3, H, W]``; float32 in [0, 1]
        whatever dtype the model was cast to. A list of grids ``[h, w]`` of one shape is a batch, and so is
        a list of batches ``[b, h, w]`` of one grid shape (joined in order). A batch is decoded ``CHUNK``
        grids at a time, so memory beyond the returned images stays bounded.

        Decoding is lossy, so encoding the decoded image again gives mostly, not exactly, the same codes
        (the shipped ``image`` tokenizer: about 6 % of them change on photographs, fewer on a second pass).
        """
        if isinstance(codes, (list, tuple)) and codes and all(isinstance(c, (torch.Tensor, np.ndarray)) for c in codes):
            codes = _join_grids(codes, self.device)  # (B, h, w)
        if codes is None or isinstance(codes, (str, bytes, dict)):  # torch would name no argument of ours
            raise ImageError(f"decode takes codes [h, w] or [B, h, w] (a tensor, an array or nested lists of "
                             f"integers), got {type(codes).__name__}")
        try:
            codes = as_tensor(codes)  # numpy codes of any byte order and strides, in read-only memory too
        except (ValueError, TypeError, RuntimeError) as e:  # nested lists of different lengths, or not numbers
            raise ImageError(f"decode takes a rectangular grid of integer codes, got a ragged or mixed "
                             f"sequence ({e})") from e
        if codes.dim() not in (2, 3):
            raise ImageError(f"decode takes codes [h, w] or [B, h, w], got shape {tuple(codes.shape)}"
                             f"{_shape_hint(tuple(codes.shape), self.grid)}")
        if codes.shape[-1] < 1 or codes.shape[-2] < 1:
            raise ImageError(f"decode needs a grid of at least 1×1 codes, got {tuple(codes.shape[-2:])}")
        single = codes.dim() == 2
        batch = codes[None] if single else codes
        try:
            q = self.vq.decode(batch.to(self.device))  # (B, h, w, L): every code checked before any decoding
        except ValueError as e:
            raise ImageError(f"cannot decode these codes: {e}") from e
        f = self.downsample
        img = torch.empty(q.shape[0], 3, q.shape[1] * f, q.shape[2] * f, device=self.device, dtype=torch.float32)
        for i in range(0, q.shape[0], CHUNK):  # the decoder's activations for CHUNK grids at a time
            img[i : i + CHUNK] = self._decode_latents(q[i : i + CHUNK]).float().clamp_(0.0, 1.0)
        return img[0] if single else img
