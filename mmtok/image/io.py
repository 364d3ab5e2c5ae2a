"""Image files and arrays -> float ``[3, H, W]`` in [0, 1], and read at the size a size policy needs.

Every Pillow mode is converted, not refused: palette and grayscale to RGB, alpha
composited on white (premultiplied ``La``/``RGBa`` un-premultiplied first; a 16-bit image's transparent
colour too), 16-bit and float images scaled; an embedded colour profile converted to sRGB
(:mod:`mmtok.image.colour`); of a file of several frames (an animation, a multi-page TIFF) the first
read, with a warning; EXIF orientation applied (to files and Pillow images: a numpy array or
tensor carries no orientation tag, so pixels taken from a Pillow image with ``np.asarray`` are in
the camera's orientation; apply ``ImageOps.exif_transpose`` to the image first).
Numpy arrays ``[H, W]`` or ``[H, W, C]`` (channels last) and tensors ``[H, W]``
or ``[C, H, W]`` (channels first), with C = 1, 3 or 4, are accepted too; the other
orders are refused. Errors name the source and what is wrong.

Values go to [0, 1] by a scale the mode or dtype fixes, never the image's own range,
so a dark picture stays dark: 8-bit (modes ``L``, ``RGB``, ..., uint8) ``/ 255``;
16-bit (modes ``I;16*``, uint16) ``/ 65535``; mode ``I`` (32-bit integer, what Pillow
decodes 16-bit PGM/PPM and 32-bit TIFF to) on the same 16-bit scale, ``/ 65535``,
values outside 0..65535 refused (``Image.convert("I")`` keeps 8-bit values 0..255,
which then read dark: convert such images to ``L`` instead). Float pixels (float
arrays and tensors, mode ``F``) lie in [0, 1]; values up to ``FLOAT_TOLERANCE``
outside are clipped, others refused. The one exception is Pillow's own float scale:
a mode ``F`` image beyond [0, 1] but within [0, 255] (what ``convert("F")`` of 8-bit
data gives) is divided by 255.

Memory stays bounded whatever the file claims: a file that would decode to more than
twice Pillow's decompression-bomb limit (:func:`pixel_limit`: ``PIL.Image.MAX_IMAGE_PIXELS``,
about 89 million pixels, or the environment variable ``MMTOK_MAX_IMAGE_PIXELS`` when set) is
refused before decoding, as Pillow refuses it (a JPEG is judged at the scale it decodes at),
and :func:`load_image` reduces a Pillow image longer than ``MAX_SIDE`` on its long side to that
size (:func:`~mmtok.image.sizing.working_size`: aspect kept; JPEGs decoded at a reduced scale
through ``Image.draft``) before any float conversion. Images up to ``MAX_SIDE`` come back exactly
as decoded. :func:`load_sized`, what the tokenizer reads, goes by its size policy
(:func:`~mmtok.image.sizing.apply_size_policy`) instead: under ``"crop"`` an image too elongated
to resize whole is cut to the window the crop reads, at full resolution, so a file, a Pillow image
and an array of the same pixels give the same result; under ``"native"`` an array or tensor is
reduced too.

>>> import numpy as np
>>> load_image(np.zeros((4, 6, 3), np.uint8)).shape
torch.Size([3, 4, 6])
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError, features

from mmtok.core.errors import ImageError
from mmtok.core.paths import check_media_file
from mmtok.core.warning_filters import user_stacklevel, warnings_ignored
from mmtok.image.modes import DTYPES, from_array, from_pil, sixteen_bit_key
from mmtok.image.sizing import MAX_SIDE, apply_size_policy, crop_first, crop_window, working_size

__all__ = [
    "ImageInput",
    "bomb_message",
    "check_size",
    "describe",
    "load_image",
    "load_sized",
    "pillow_limit",
    "pixel_limit",
]

EXIF_ORIENTATION = 0x0112  # the EXIF tag Pillow's ImageOps.exif_transpose reads
PIXELS_ENV = "MMTOK_MAX_IMAGE_PIXELS"  # environment variable: the decompression-bomb limit (see pixel_limit)
ANIMATIONS = ("GIF", "PNG", "WEBP")  # Pillow formats whose extra frames are an animation (other files: pages)

ImageInput = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor


# --------------------------------------------------------------------------- loading


def describe(x: Any) -> str:
    """A short name of an image input for messages: the file, or the type, shape and dtype."""
    if isinstance(x, (str, os.PathLike)):
        return f"image file {os.fspath(x)!r}"
    if isinstance(x, Image.Image):
        name = getattr(x, "filename", "")  # set when Image.open read it from a file
        if name:
            return f"image file {os.fspath(name)!r} (a PIL image, mode {x.mode}, size {x.size})"
        return f"PIL image (mode {x.mode}, size {x.size})"
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__



def _reduced_size(img: Image.Image) -> tuple[int, int] | None:
    """The working size ``img`` is reduced to, or None when its long side is at most ``MAX_SIDE``."""
    return working_size(*img.size) if max(img.size) > MAX_SIDE else None




def pixel_limit() -> int | None:
    """The decompression-bomb limit mmtok reads images under (None: none): the environment variable
    ``MMTOK_MAX_IMAGE_PIXELS`` when it is set, else ``PIL.Image.MAX_IMAGE_PIXELS``. As Pillow, mmtok refuses
    images over twice this. Pillow's own setting is changed only while mmtok opens a picture
    (:func:`pillow_limit`)."""
    value = os.environ.get(PIXELS_ENV, "").strip()
    if not value:
        return Image.MAX_IMAGE_PIXELS
    if not value.isdigit() or int(value) < 1:
        raise ImageError(f"the environment variable {PIXELS_ENV}={value!r} is not a whole number of pixels ≥ 1")
    return int(value)


_LIMIT_LOCK = threading.Lock()
_limit_users = 0  # pillow_limit blocks open now, in any thread
_limit_saved: int | None = None  # Pillow's setting before the first of them


@contextlib.contextmanager
def pillow_limit(limit: int | None) -> Iterator[None]:
    """``PIL.Image.MAX_IMAGE_PIXELS`` set to ``limit`` (:func:`pixel_limit`) while the block opens and decodes a
    picture, then put back as it was once no block is open in any thread. Without ``MMTOK_MAX_IMAGE_PIXELS``
    it is left alone."""
    global _limit_users, _limit_saved
    if not os.environ.get(PIXELS_ENV, "").strip():
        yield
        return
    with _LIMIT_LOCK:
        if _limit_users == 0:
            _limit_saved = Image.MAX_IMAGE_PIXELS
        _limit_users += 1
        Image.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            _limit_users -= 1
            if _limit_users == 0:
                Image.MAX_IMAGE_PIXELS = _limit_saved


def bomb_message(subject: str, e: Exception | int, limit: int | None) -> str:
    """The one wording of a picture over twice the decompression-bomb limit ``limit`` (``e``: its pixel count, or
    Pillow's error naming it): ``subject`` says what and its verb (``"image file 'x.png' has"``), the count, the
    limit, where it comes from and how to raise it follow."""
    found = re.search(r"\((\d+) pixels\)", str(e)) if isinstance(e, Exception) else None
    pixels = e if isinstance(e, int) else int(found.group(1)) if found else None
    count, needed = (f"{pixels:,} pixels", f"={-(-pixels // 2)}") if pixels else ("too many pixels", " higher")
    from_env = bool(os.environ.get(PIXELS_ENV, "").strip())  # it overrides Pillow's setting
    source = PIXELS_ENV if from_env else "PIL.Image.MAX_IMAGE_PIXELS"
    pillow = "" if from_env else " (or raise PIL.Image.MAX_IMAGE_PIXELS)"
    return (f"{subject} {count}, over twice the decompression-bomb limit of {limit or 0:,} ({source}); to read it "
            f"set the environment variable {PIXELS_ENV}{needed}{pillow}")


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of ``img`` once its EXIF orientation is applied (read from the header; an image
    made by ``convert``/``resize``/``crop`` keeps both the camera's pixels and the tag)."""
    w, h = img.size
    return (h, w) if img.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8) else (w, h)


def _oriented(img: Image.Image) -> Image.Image:
    """``img`` with its EXIF orientation applied (``ImageOps.exif_transpose``); ``img`` itself, not a copy,
    when its tag is absent or 1."""
    return img if img.getexif().get(EXIF_ORIENTATION) in (None, 1) else ImageOps.exif_transpose(img)


def check_size(height: int, width: int, *, patch: int, where: str) -> None:
    """An :class:`ImageError` naming ``where`` and its size when it is smaller than one ``patch×patch`` patch.

    >>> check_size(10, 40, patch=16, where="image file 'a.png'")
    Traceback (most recent call last):
    ...
    mmtok.core.errors.ImageError: image file 'a.png' is 40×10 pixels, smaller than one 16×16 patch; use an image at least 16 pixels on each side
    """
    if height < patch or width < patch:
        raise ImageError(f"{where} is {width}×{height} pixels, smaller than one {patch}×{patch} patch; "
                         f"use an image at least {patch} pixels on each side")


Window = Callable[[int, int], "tuple[int, int, int, int] | None"]  # (height, width) -> the box to read, or None


def _open_lazy(path: Path) -> Image.Image:
    """``Image.open(path)``, for :func:`_open_file` to judge by the pixels it decodes (a JPEG may decode reduced):
    Pillow's warning on the header's size is silenced, and a JPEG over twice its limit opened all the same."""
    try:
        with warnings_ignored(Image.DecompressionBombWarning):
            return Image.open(path)
    except Image.DecompressionBombError:
        Image.preinit()  # the common plugins, JPEG's among them (an open that fails early may not have loaded them)
        factory, accept = Image.OPEN["JPEG"]  # Pillow's own JPEG reader, without the check on the header
        with path.open("rb") as f:
            if not accept(f.read(16)):
                raise
        return factory(os.fspath(path))  # type: ignore[arg-type]


def _frames_message(where: str, img: Image.Image) -> str:
    """The warning for a file of several frames (an animation, a multi-page TIFF, an MPO): the first is read."""
    every = "[f.convert('RGB') for f in PIL.ImageSequence.Iterator(img)]"
    if img.format in ANIMATIONS:
        return (f"{where} is an animation of {img.n_frames} frames: only the first is read (for every frame, "
                f"pass {every} to mmtok.VideoTokenizer.encode)")
    return f"{where} has {img.n_frames} frames: only the first is read (for every one, pass {every} to encode)"


def _open_file(path: Path, *, window: Window | None = None, patch: int = 0) -> Image.Image:
    """Decode ``path`` (first frame; an animation warns) and apply its EXIF orientation; errors name the file.

    ``patch``: an image smaller than one ``patch×patch`` patch is refused before decoding. A JPEG
    longer than ``MAX_SIDE`` without a ``window`` box is decoded at the smallest of 1/2, 1/4, 1/8 scale
    still at least the working size (``Image.draft``); one with a box is decoded whole, unless that is over
    twice :func:`pixel_limit` pixels (then reduced as without a box). An image that decodes to more than
    twice :func:`pixel_limit` pixels is refused before decoding.
    """
    check_media_file(what="image file", error=ImageError, path=path)
    where = f"image file {str(path)!r}"
    if path.stat().st_size == 0:
        raise ImageError(f"{where} is empty (0 bytes)")
    limit = pixel_limit()
    try:
        with pillow_limit(limit), _open_lazy(path) as img:
            key = sixteen_bit_key(img)  # judged before decoding (reading a PNG's EXIF decodes it), by sample depth
            w, h = _oriented_size(img)
            check_size(h, w, patch=patch, where=where)
            whole = window is not None and window(h, w) is not None  # its window read at full resolution
            if whole and limit is not None and w * h > 2 * limit:
                whole = False  # unless that is over the limit: then the window of a reduced decode
            if img.format == "JPEG" and max(w, h) > MAX_SIDE and not whole:
                img.draft(img.mode, working_size(*img.size))  # decode at 1/2, 1/4 or 1/8 scale
            if limit is not None and img.size[0] * img.size[1] > 2 * limit:
                raise ImageError(bomb_message(f"{where} has", img.size[0] * img.size[1], limit))
            if getattr(img, "is_animated", getattr(img, "n_frames", 1) > 1):
                warnings.warn(_frames_message(where, img), stacklevel=user_stacklevel())
            img.load()  # decode now: truncated/corrupt data fails here, not later
            if key is not None:
                img.info["transparency"] = key
            return _oriented(img)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(bomb_message(f"{where} has", e, limit)) from e
    except UnidentifiedImageError as e:
        hint = ("; this Pillow cannot decode AVIF (pip install -U pillow)"
                if path.suffix.lower() in (".avif", ".avifs") and not features.check("avif") else "")
        raise ImageError(f"{where} is not an image Pillow can read{hint}") from e
    except Exception as e:  # Pillow's format plugins raise many types on malformed data
        raise ImageError(f"{where} is corrupt or truncated: {type(e).__name__}: {e}") from e


def _check_open(img: Image.Image, where: str) -> None:
    """An :class:`ImageError` naming ``where`` when ``img`` was closed before its pixels were decoded (Pillow
    decodes lazily: ``with Image.open(p) as im: images.append(im)`` keeps an image it can no longer read)."""
    if isinstance(img, ImageFile.ImageFile) and img.fp is None and img.tile:  # tiles left to decode
        raise ImageError(f"{where} was closed before its pixels were loaded; call im.load() (or keep "
                         "im.copy()) inside the 'with Image.open(...) as im' block, or pass the path instead")


def _read_pil(x: str | os.PathLike | Image.Image, where: str, *, window: Window | None,
              patch: int) -> tuple[np.ndarray, tuple[int, int], tuple[int, int, int, int] | None]:
    """A file or Pillow image -> (float32 ``[3, h, w]``, its size ``(H, W)`` as decoded, the ``window`` box
    it was cut to or None): cut to the box at full resolution, else reduced to the working size. The
    ``patch`` check runs on the size before any decoding (a JPEG may then be decoded smaller)."""
    try:
        if isinstance(x, Image.Image):
            _check_open(x, where)
            key = sixteen_bit_key(x)
            w, h = _oriented_size(x)
            check_size(h, w, patch=patch, where=where)
            img = _oriented(x)
            if key is not None:  # on a copy: the caller's image is left as it is
                img = img.copy() if img is x else img
                img.info["transparency"] = key
        else:
            img = _open_file(Path(x), window=window, patch=patch)
        w, h = img.size
        box = window(h, w) if window is not None else None
        return from_pil(img, box=box, size=None if box else _reduced_size(img), where=where), (h, w), box
    except OSError as e:  # a PIL image decodes lazily: a truncated or corrupt file fails here
        if not isinstance(x, Image.Image):
            raise
        raise ImageError(f"{where} is corrupt or truncated: {type(e).__name__}: {e}") from e


def _read(x: ImageInput, *, window: Window | None = None,
          patch: int = 0) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int, int, int] | None]:
    """Any image -> (float32 ``[3, h, w]`` in [0, 1], its size ``(H, W)`` as decoded, the box it was cut
    to or None). A file or Pillow image is cut to its ``window(H, W)`` box when there is one, else
    reduced past ``MAX_SIDE``; ``patch``: an image smaller than one ``patch×patch`` patch is refused."""
    where = describe(x)
    box = None
    try:
        if isinstance(x, (str, os.PathLike, Image.Image)):
            arr, size, box = _read_pil(x, where, window=window, patch=patch)
        elif isinstance(x, (np.ndarray, torch.Tensor)):
            arr = from_array(x) if isinstance(x, np.ndarray) else _from_tensor(x)
            size = arr.shape[1:]
        else:
            hint = ("; a file's bytes: PIL.Image.open(io.BytesIO(x)); a path as bytes: os.fsdecode(x)"
                    if isinstance(x, (bytes, bytearray, memoryview)) else
                    "; an open file: PIL.Image.open(x)" if hasattr(x, "read") else "")
            raise TypeError(f"an image is a path, PIL.Image, numpy array or torch.Tensor, got {type(x).__name__}{hint}")
    except (ImageError, FileNotFoundError, TypeError):
        raise
    except ValueError as e:
        raise ImageError(f"cannot use {where}: {e}") from e
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ImageError(f"{where} is empty (0 pixels)")
    if isinstance(x, (np.ndarray, torch.Tensor)):  # files and Pillow images were measured before decoding
        check_size(*size, patch=patch, where=where)
    return torch.from_numpy(arr), (int(size[0]), int(size[1])), box


def load_image(x: ImageInput, *, patch: int = 0) -> torch.Tensor:
    """Any image -> float32 ``[3, H, W]`` in [0, 1].

    ``x`` is a file path (of an animated GIF, WebP or PNG only the first frame is read, with a
    warning), a ``PIL.Image`` (every mode: 1, L, LA, P, RGBA, CMYK, I;16, I, F, ...; transparency
    is composited on white; EXIF orientation is applied), a numpy array ``[H, W(, C)]`` or a tensor
    ``[C, H, W]`` with C in 1, 3, 4, both uint8, uint16, bool, or float in [0, 1] (they carry no
    orientation tag: see the module docstring). With ``patch``, an image smaller than one
    ``patch×patch`` patch is an :class:`ImageError` naming it and its size as decoded.

    >>> tuple(load_image(np.zeros((5, 7, 4), np.uint8)).shape)
    (3, 5, 7)
    """
    return _read(x, patch=patch)[0]


def load_sized(x: ImageInput, *, policy: str, image_size: int, multiple: int) -> torch.Tensor:
    """One image -> ``[1, 3, H', W']``: ``apply_size_policy(load_image(x)[None], ...)`` for an array or
    tensor, and the same for a file or Pillow image of the same pixels, read as the policy needs.

    Under ``"crop"`` an image with a :func:`~mmtok.image.sizing.crop_window` is cut to that window as
    decoded, at full resolution (a 300×8200 picture: its middle, not a 150×4096 reduction enlarged
    again); any other image longer than ``MAX_SIDE`` is reduced to the working size first, like
    :func:`load_image` (for ``"crop"`` that keeps its short side at least ``image_size``; under
    ``"native"`` an array or tensor is reduced too, by :func:`~mmtok.image.sizing.apply_size_policy`:
    the same size as a file). An image smaller than one ``multiple×multiple`` patch is an
    :class:`ImageError` naming it and its size as decoded.

    >>> tuple(load_sized(np.zeros((20, 9000), np.uint8), policy="crop", image_size=64, multiple=16).shape)
    (1, 3, 64, 64)
    """
    window = (lambda h, w: crop_window(h, w, image_size)) if policy == "crop" else None
    img, (h, w), box = _read(x, window=window, patch=multiple)
    if box is not None:
        return crop_first(img[None], h, w, image_size)
    return apply_size_policy(img[None], policy=policy, image_size=image_size, multiple=multiple)


def _from_tensor(t: torch.Tensor) -> np.ndarray:
    """A tensor ``[H, W]`` / ``[C, H, W]`` (C = 1, 3, 4), any device -> :func:`_from_array` of it channels last."""
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3 or t.shape[0] not in (1, 3, 4):
        hint = "; for channels last pass x.permute(2, 0, 1)" if t.dim() == 3 and t.shape[-1] in (1, 3, 4) else ""
        raise ValueError(f"expected a tensor [3, H, W] (or [1, H, W], [4, H, W], [H, W]){hint}")
    t = t.detach().cpu()
    t = t.float() if t.is_floating_point() else t  # numpy has no bfloat16
    try:
        a = rearrange(t, "c h w -> h w c").numpy()
    except (TypeError, RuntimeError) as e:  # complex32, quantized, ...: no numpy equivalent
        raise ValueError(f"supported dtypes are {DTYPES}") from e
    return from_array(a)

