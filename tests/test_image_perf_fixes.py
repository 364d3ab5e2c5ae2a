"""Pictures become tensors in one cast-and-transpose pass: every Pillow mode, EXIF orientation, array and
tensor gives the tensor the three-copy conversion gave, bit for bit; a picture's conversion holds about one
float copy of it; an image with no orientation to apply is not copied for one."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from einops import rearrange
from PIL import Image, ImageOps

from mmtok.image.io import load_image

pytestmark = pytest.mark.usefixtures("one_thread")

H, W = 23, 37  # odd sides: a transposed axis shows
EXIF_ORIENTATION = 0x0112


# --------------------------------------------------------------------------- the conversion as it was


def composite(rgba: np.ndarray) -> np.ndarray:
    return rgba[..., :3] * rgba[..., 3:4] + 1.0 * (1.0 - rgba[..., 3:4])


def old_pil(img: Image.Image, divisor: float | None = None) -> torch.Tensor:
    """A whole Pillow image -> ``[3, H, W]`` by the former expressions (``divisor``: that of a 16-bit,
    32-bit or float mode)."""
    img = ImageOps.exif_transpose(img)
    if img.mode == "La":
        img = img.convert("LA")
    if divisor is not None:
        gray = np.asarray(img, dtype=np.float64) / divisor
        arr = np.repeat(gray.clip(0.0, 1.0)[..., None], 3, axis=2).astype(np.float32)
    elif img.mode in ("RGBA", "LA", "PA", "RGBa") or (img.mode in ("P", "L", "RGB") and "transparency" in img.info):
        arr = composite(np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0).astype(np.float32)
    else:
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rearrange(arr, "h w c -> c h w").copy())


def old_array(a: np.ndarray) -> torch.Tensor:
    """An array ``[H, W(, C)]`` -> ``[3, H, W]`` by the former expressions."""
    a = a[..., None] if a.ndim == 2 else a
    if a.dtype == np.uint8:
        f = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        f = a.astype(np.float32) / 65535.0
    elif a.dtype == np.bool_:
        f = a.astype(np.float32)
    else:
        f = a.astype(np.float32).clip(0.0, 1.0)
    if f.shape[2] == 4:
        f = composite(f)
    elif f.shape[2] == 1:
        f = np.repeat(f, 3, axis=2)
    f = np.ascontiguousarray(f, dtype=np.float32)
    return torch.from_numpy(rearrange(f, "h w c -> c h w").copy())


def same(new: torch.Tensor, old: torch.Tensor) -> None:
    assert new.dtype == torch.float32 and new.is_contiguous()
    assert torch.equal(new, old), (new - old).abs().max()


# --------------------------------------------------------------------------- inputs


def rgba() -> Image.Image:
    """Every 8-bit value in each channel, alpha from 0 to 255."""
    rng = np.random.default_rng(0)
    a = np.stack([rng.permutation(np.resize(np.arange(256, dtype=np.uint8), H * W)) for _ in range(4)], axis=-1)
    return Image.fromarray(a.reshape(H, W, 4), mode="RGBA")


def keyed(mode: str) -> Image.Image:
    """An 8-bit image with colour-keyed transparency."""
    img = rgba().convert(mode)
    img.info["transparency"] = img.getpixel((0, 0))
    return img


def sixteen_bit(mode: str) -> Image.Image:
    values = np.random.default_rng(1).integers(0, 65536, (H, W)).astype(np.uint16)
    if mode == "I":
        return Image.fromarray(values.astype(np.int32), mode="I")
    return Image.frombytes(mode, (W, H), values.astype(">u2" if mode == "I;16B" else "<u2").tobytes())


def floats(scale: float) -> Image.Image:
    values = np.random.default_rng(2).uniform(-5e-4, 1.0005, (H, W)).astype(np.float32) * scale
    return Image.fromarray(values, mode="F")


EIGHT_BIT = {
    "1": lambda: rgba().convert("1"),
    "L": lambda: rgba().convert("L"),
    "LA": lambda: rgba().convert("LA"),
    "La": lambda: rgba().convert("LA").convert("La"),
    "P": lambda: rgba().convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE),
    "PA": lambda: rgba().convert("PA"),
    "RGB": lambda: rgba().convert("RGB"),
    "RGBA": rgba,
    "RGBa": lambda: rgba().convert("RGBa"),
    "RGBX": lambda: rgba().convert("RGBX"),
    "CMYK": lambda: rgba().convert("CMYK"),
    "YCbCr": lambda: rgba().convert("RGB").convert("YCbCr"),
    "L keyed": lambda: keyed("L"),
    "P keyed": lambda: keyed("P"),
    "RGB keyed": lambda: keyed("RGB"),
}
SCALED = {
    "I": (lambda: sixteen_bit("I"), 65535.0),
    "I;16": (lambda: sixteen_bit("I;16"), 65535.0),
    "I;16B": (lambda: sixteen_bit("I;16B"), 65535.0),
    "F": (lambda: floats(1.0), 1.0),
    "F 0..255": (lambda: floats(255.0), 255.0),
}


# --------------------------------------------------------------------------- every mode, bit for bit


@pytest.mark.parametrize("name", list(EIGHT_BIT))
def test_every_8_bit_mode_gives_the_former_tensor(name: str) -> None:
    img = EIGHT_BIT[name]()
    same(load_image(img), old_pil(img))


@pytest.mark.parametrize("name", list(SCALED))
def test_every_16_bit_32_bit_and_float_mode_gives_the_former_tensor(name: str) -> None:
    make, divisor = SCALED[name]
    img = make()
    same(load_image(img), old_pil(img, divisor))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_gives_the_former_tensor(tmp_path: Path, orientation: int) -> None:
    img = rgba().convert("RGB")
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path = tmp_path / "o.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    tagged = Image.open(path)
    tagged.load()
    assert tagged.getexif().get(EXIF_ORIENTATION) == orientation
    old = old_pil(tagged)
    same(load_image(path), old)
    same(load_image(tagged), old)
    assert old.shape[1:] == ((W, H) if orientation >= 5 else (H, W))


@pytest.mark.parametrize(("mode", "suffix"), [("L", ".pgm"), ("RGB", ".ppm"), ("RGBA", ".tif"), ("CMYK", ".tif"),
                                              ("P", ".bmp"), ("I;16", ".png")])
def test_files_read_in_place_give_the_former_tensor(tmp_path: Path, mode: str, suffix: str) -> None:
    """Uncompressed files Pillow may map into memory, read without a copy once decoded."""
    img = sixteen_bit("I;16") if mode == "I;16" else rgba().convert(mode)
    path = tmp_path / f"a{suffix}"
    img.save(path)
    with Image.open(path) as opened:
        old = old_pil(opened, 65535.0 if mode == "I;16" else None)
    same(load_image(path), old)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "bool", "float32", "float64"])
@pytest.mark.parametrize("channels", [0, 1, 3, 4])
def test_arrays_and_tensors_give_the_former_tensor(dtype: str, channels: int) -> None:
    rng = np.random.default_rng(3)
    shape = (H, W) if channels == 0 else (H, W, channels)
    if dtype in ("uint8", "uint16"):
        a = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    elif dtype == "bool":
        a = rng.random(shape) < 0.5
    else:
        a = rng.uniform(-5e-4, 1.0005, shape).astype(dtype)
    old = old_array(a)
    same(load_image(a), old)
    t = torch.from_numpy(a)
    same(load_image(t if channels == 0 else t.permute(2, 0, 1)), old)


def test_the_callers_image_is_left_as_it_was() -> None:
    img = rgba().convert("RGB")
    before = img.tobytes()
    load_image(img)
    assert img.tobytes() == before and img.mode == "RGB"


# --------------------------------------------------------------------------- memory and copies


def test_a_picture_is_converted_holding_about_one_float_copy() -> None:
    """2000×1500 RGB: the float32 ``[3, H, W]`` result (36 MB) and the 8-bit pixels (9 MB), not three floats."""
    h, w = 1500, 2000
    img = Image.fromarray(np.random.default_rng(4).integers(0, 256, (h, w, 3), dtype=np.uint8))
    one_copy = 3 * h * w * 4
    tracemalloc.start()
    try:
        out = load_image(img)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (3, h, w)
    assert peak < 1.5 * one_copy, f"peak {peak / one_copy:.2f} float copies"


def test_an_image_without_an_orientation_to_apply_is_not_copied(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    transpose = ImageOps.exif_transpose

    def counted(image: Image.Image, **kwargs: bool) -> Image.Image | None:
        calls.append(image.getexif().get(EXIF_ORIENTATION, 1))
        return transpose(image, **kwargs)

    monkeypatch.setattr(ImageOps, "exif_transpose", counted)
    img = rgba().convert("RGB")
    img.save(tmp_path / "plain.png")
    one = Image.Exif()
    one[EXIF_ORIENTATION] = 1
    img.save(tmp_path / "one.jpg", exif=one.tobytes())
    for x in (img, tmp_path / "plain.png", tmp_path / "one.jpg"):
        load_image(x)
    assert calls == []
    six = Image.Exif()
    six[EXIF_ORIENTATION] = 6
    img.save(tmp_path / "six.jpg", exif=six.tobytes())
    assert load_image(tmp_path / "six.jpg").shape == (3, W, H)
    assert calls == [6]
