"""Embedded ICC colour profiles -> sRGB, the colour space the tokenizers read pixels in.

A photo saved in Adobe RGB, Display P3 or a CMYK press profile holds values that mean other
colours than the same numbers in sRGB: read as sRGB they come out desaturated (or, for CMYK,
wrong). :func:`to_srgb` converts an image that embeds such a profile with LittleCMS
(``PIL.ImageCms``), before any other conversion; an image without a profile, or with an sRGB one,
is returned as it is. A profile LittleCMS cannot read is warned about and the pixels are read
as sRGB. Profiles of other modes (grayscale, 16-bit, ...) are left alone: their pixels are read
as they are.

>>> from PIL import Image
>>> to_srgb(Image.new("RGB", (2, 2)), "a picture").mode
'RGB'
"""

from __future__ import annotations

import functools
import io
import warnings

from PIL import Image, ImageCms

from mmtok.core.warning_filters import user_stacklevel

__all__ = ["to_srgb"]

CONVERTED = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB", "P": "RGB"}  # mode -> the mode converted to
INTENT = ImageCms.Intent.PERCEPTUAL  # how colours out of sRGB's gamut are brought in (the profile's default)
SRGB_NAMES = ("srgb",)  # a profile whose description names sRGB is taken as sRGB: no conversion


@functools.lru_cache(maxsize=16)
def _transform(icc: bytes, mode: str, out: str) -> ImageCms.ImageCmsTransform | None:
    """The transform from profile ``icc`` (pixels of ``mode``) to sRGB (``out``), None for an sRGB profile;
    built once per profile, as one camera's photos share theirs. Raises ``ImageCms.PyCMSError`` (or
    ``OSError``) for a profile LittleCMS cannot read."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    name = ImageCms.getProfileDescription(source).strip().lower()
    if any(s in name for s in SRGB_NAMES):
        return None
    return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), mode, out, renderingIntent=INTENT)


def to_srgb(img: Image.Image, where: str) -> Image.Image:
    """``img`` with its embedded ICC profile (``img.info["icc_profile"]``) converted to sRGB: RGB and
    RGBA (alpha kept) stay so, CMYK and palette images become RGB; a transparent colour
    (``info["transparency"]``) becomes an alpha channel first (RGBA), as the converted pixels no longer match it. ``img`` itself when it embeds no
    profile, an sRGB one, or has a mode profiles are not converted for; a profile that cannot be read
    warns (naming ``where``) and leaves ``img`` as it is."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in CONVERTED:
        return img
    mode = img.mode
    if mode == "P" or "transparency" in img.info:  # a palette, or a transparent colour: through RGB(A)
        mode = "RGBA" if "transparency" in img.info else "RGB"  # the colour's pixels made transparent first
        img = img.convert(mode)
    out = CONVERTED[mode] if mode != "RGBA" else "RGBA"
    try:
        transform = _transform(bytes(icc), mode, out)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as e:
        warnings.warn(f"{where}: its embedded ICC colour profile cannot be read ({e}); its pixels are read as "
                      "sRGB (to silence this, save the picture without the profile or converted to sRGB)",
                      stacklevel=user_stacklevel())
        return img
    if transform is None:
        return img
    converted = ImageCms.applyTransform(img, transform)
    converted.info = {k: v for k, v in img.info.items() if k not in ("icc_profile", "transparency")}
    return converted
