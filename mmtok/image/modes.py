"""Pillow images and numpy arrays of every mode and dtype -> float32 ``[3, H, W]`` in [0, 1].

The scale is fixed by the mode or dtype, never by the image's own range (see :mod:`mmtok.image.io`
for the rules): 8-bit ``/ 255``, 16-bit and mode ``I`` ``/ 65535``, float as it is (mode ``F`` on
Pillow's 0..255 scale ``/ 255``). Transparency (an alpha channel, or a transparent colour
``info["transparency"]``) is composited on white. An RGB image Pillow decodes from 16-bit samples
(a 48-bit PNG) keeps only each sample's high byte, but its transparent colour at 16 bits:
:func:`sixteen_bit_key` gives that colour on the 8-bit scale, so pixels whose high bytes match it
(colours within 1/256 of it) are transparent, as in the file.

>>> import numpy as np
>>> from_array(np.full((2, 3), 255, np.uint8)).shape
(3, 2, 3)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from mmtok.image.colour import to_srgb

__all__ = ["DTYPES", "from_array", "from_pil", "has_alpha", "shrink", "sixteen_bit_key"]

ALPHA_BACKGROUND = 1.0  # transparent pixels are composited on white
SIXTEEN_BIT_MAX = 65535.0
EIGHT_BIT_MAX = 255.0
FLOAT_TOLERANCE = 1e-3  # float pixels this far outside [0, 1] (of their scale) are clipped, farther refused
REDUCING_GAP = 3.0  # Image.resize reduces by an integer box filter first, to within 3x of the target
DTYPES = "uint8, uint16, bool and float"  # the pixel dtypes arrays and tensors may have
SIXTEEN_BIT_RAWMODES = ("RGB;16B", "RGB;16L", "RGB;16N")  # 16-bit samples Pillow decodes to 8-bit RGB


def sixteen_bit_key(img: Image.Image) -> tuple[int, int, int] | None:
    """The transparent colour of an RGB image decoded from 16-bit samples, on the 8-bit scale its pixels
    are on (each value's high byte); None for any other image. Judged from the pixels still to be decoded
    (``img.tile``), or, once decoded, from a colour no 8-bit pixel can have (a value over 255).

    >>> im = Image.new("RGB", (1, 1))
    >>> im.info["transparency"] = (65535, 0, 4660)
    >>> sixteen_bit_key(im)
    (255, 0, 18)
    """
    key = img.info.get("transparency")
    if img.mode != "RGB" or not isinstance(key, tuple) or len(key) != 3:
        return None
    tiles = getattr(img, "tile", None) or []
    if any(len(t) > 3 and t[3] in SIXTEEN_BIT_RAWMODES for t in tiles) or max(key) > EIGHT_BIT_MAX:
        return (int(key[0]) >> 8, int(key[1]) >> 8, int(key[2]) >> 8)
    return None


def channels_first(a: np.ndarray, divisor: float = 1.0) -> np.ndarray:
    """``[H, W]`` or ``[H, W, C]`` (C = 1 or 3), any real dtype -> float32 ``[3, H, W]`` divided by ``divisor``:
    cast and moved channels first in one pass (one channel repeated to three), then divided in place."""
    if a.ndim == 2:
        a = a[..., None]
    out = np.empty((3, *a.shape[:2]), dtype=np.float32)
    np.copyto(out, a.transpose(2, 0, 1))
    if divisor != 1.0:
        out /= divisor
    return out


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """``[H, W, 4]`` float in [0, 1] -> ``[H, W, 3]``: alpha-blend onto ``ALPHA_BACKGROUND``."""
    rgb, alpha = rgba[..., :3], rgba[..., 3:4]
    return rgb * alpha + ALPHA_BACKGROUND * (1.0 - alpha)


def value_scale(img: Image.Image) -> float | None:
    """The divisor taking a 16-bit, 32-bit integer or float image (modes ``I;16*``, ``I``, ``F``) to [0, 1];
    None for other modes. Fixed by the mode (see the module docstring); the range only decides whether
    the image is usable, and a mode ``F`` image's range whether it is on Pillow's 0..255 scale. Decided
    as decoded, before any resize (a reduced 16-bit image is 32-bit; a filter's overshoot moves the range).
    """
    mode = img.mode
    if mode.startswith("I;16"):
        return SIXTEEN_BIT_MAX
    if mode not in ("I", "F"):
        return None
    lo, hi = (float(v) for v in img.getextrema())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"mode {mode} image contains NaN/inf pixels")
    if mode == "I":
        if lo < 0.0 or hi > SIXTEEN_BIT_MAX:
            raise ValueError(f"mode I pixels are read on the 16-bit scale 0..65535, got range [{lo:.6g}, {hi:.6g}]; "
                             "save the image as 8- or 16-bit, or pass a float array in [0, 1]")
        return SIXTEEN_BIT_MAX
    for scale in (1.0, EIGHT_BIT_MAX):  # [0, 1], else Pillow's float scale of 8-bit data
        if lo >= -FLOAT_TOLERANCE and hi <= (1.0 + FLOAT_TOLERANCE) * scale:
            return scale
    raise ValueError(f"mode F pixels must lie in [0, 1] (or 0..255, Pillow's float scale of 8-bit data), "
                     f"got range [{lo:.6g}, {hi:.6g}]; rescale the image to [0, 1]")


def has_alpha(img: Image.Image) -> bool:
    mode = img.mode
    return mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode in ("P", "L", "RGB") and "transparency" in img.info
    )


def shrink(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` resized to ``size`` (Lanczos). Modes Pillow cannot filter (palette, 1-bit, CMYK, ...) and
    colour-keyed transparency are converted to RGB(A) first, 16-bit to 32-bit ``I``."""
    if img.mode.startswith("I;16"):
        img = img.convert("I")
    elif img.mode not in ("L", "RGB", "RGBA", "LA", "I", "F") or has_alpha(img):
        img = img.convert("RGBA" if has_alpha(img) else "RGB")
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)


def from_pil(img: Image.Image, *, size: tuple[int, int] | None = None,
              box: tuple[int, int, int, int] | None = None, where: str = "a PIL image") -> np.ndarray:
    """A Pillow image of any mode, oriented -> float32 ``[3, H, W]`` in [0, 1], first cut to ``box``
    (left, top, right, bottom), converted to sRGB from an embedded colour profile (:func:`to_srgb`, which
    warns naming ``where``), then reduced to ``size`` (Lanczos) when given. 16-bit, 32-bit and float
    images are scaled by their mode (:func:`value_scale`, checked on the whole image), clipped after;
    a transparent colour among them (``info["transparency"]``) is made white."""
    if img.mode == "La":  # premultiplied alpha, which Pillow converts only to LA
        img = img.convert("LA")
    divisor = value_scale(img)
    if box is not None:
        img = img.crop(box)
    img = to_srgb(img, where)
    if divisor is not None:
        return scaled(img, divisor, size)
    if size is not None:
        img = shrink(img, size)
    if has_alpha(img):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        return channels_first(composite_on_white(rgba))
    return channels_first(np.asarray(img if img.mode in ("RGB", "L") else img.convert("RGB")), EIGHT_BIT_MAX)


def scaled(img: Image.Image, divisor: float, size: tuple[int, int] | None) -> np.ndarray:
    """A 16-bit, 32-bit or float image -> float32 ``[3, H, W]`` divided by ``divisor`` and clipped to [0, 1],
    reduced to ``size`` when given. Pixels of its transparent colour are made white first (as 8-bit
    images are composited): alpha is 0 or 1 there, so compositing and then reducing is exact."""
    mode, key, gray = img.mode, img.info.get("transparency"), None
    if isinstance(key, (int, float)):
        gray = np.asarray(img, dtype=np.float64)
        gray[gray == key] = ALPHA_BACKGROUND * divisor
        if size is not None:  # reduced as mode F, in [0, 1]
            img, divisor, gray = Image.fromarray((gray / divisor).astype(np.float32)), 1.0, None
    if size is not None:
        img = shrink(img, size)
    gray = (np.asarray(img, dtype=np.float64) if gray is None else gray) / divisor
    if not np.isfinite(gray).all():
        raise ValueError(f"mode {mode} image contains NaN/inf pixels")
    return channels_first(gray.clip(0.0, 1.0))


def from_array(a: np.ndarray) -> np.ndarray:
    """HW / HWC (C = 1, 3, 4) uint8, uint16, bool or float in [0, 1] -> float32 ``[3, H, W]``."""
    if not a.dtype.isnative:  # big-endian data: the same values in native byte order
        a = a.astype(a.dtype.newbyteorder("="))
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        hint = ("; for channels first pass x.transpose(1, 2, 0)" if a.ndim == 3 and a.shape[0] in (1, 3, 4)
                else "")
        raise ValueError(f"expected an array [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] (channels last){hint}")
    divisor = {np.uint8: EIGHT_BIT_MAX, np.uint16: SIXTEEN_BIT_MAX, np.bool_: 1.0}.get(a.dtype.type)
    if divisor is not None and a.shape[2] != 4:
        return channels_first(a, divisor)
    if divisor is not None:
        f = a.astype(np.float32) / divisor
    elif np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float32)
        if not np.isfinite(f).all():
            raise ValueError("it contains NaN/inf values")
        if f.size and (f.min() < -FLOAT_TOLERANCE or f.max() > 1.0 + FLOAT_TOLERANCE):
            raise ValueError(
                f"float pixels must lie in [0, 1], got range [{f.min():.3g}, {f.max():.3g}] "
                "(divide 0..255 data by 255, or pass uint8)"
            )
        f = f.clip(0.0, 1.0)
    elif np.issubdtype(a.dtype, np.integer):  # int64 from arithmetic, int32 from a decoder of its own
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        fits = ("uint8 (x.astype(numpy.uint8), or x.to(torch.uint8) for a tensor)" if 0 <= lo and hi <= 255
                else "uint16" if 0 <= lo and hi <= 65535 else "float in [0, 1]")
        raise ValueError(f"supported dtypes are {DTYPES}, got {a.dtype} with values {lo}..{hi}: convert it to {fits}")
    else:
        raise ValueError(f"supported dtypes are {DTYPES}")
    return channels_first(composite_on_white(f) if f.shape[2] == 4 else f)
