"""Image files as people have them, read against an independent reading of the same file: a transparent
colour in a 48-bit PNG and beside a colour profile, and a sweep of modes, JPEG variants, EXIF
orientations and damaged or mislabelled files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps
from test_image_inputs_fixes import _in_profile, _photo, _wide_gamut_profile

import mmtok
from mmtok.core.errors import ImageError
from mmtok.image.io import load_image
from mmtok.image.modes import sixteen_bit_key

pytestmark = pytest.mark.usefixtures("one_thread")

KEY16 = (65535, 0, 4660)  # the transparent colour, 16 bits a sample
INSIDE = (30000, 40000, 50000)  # every other pixel


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png48(path: Path, a: np.ndarray, key: tuple[int, int, int] | None) -> Path:
    """``a`` ``[H, W, 3]`` uint16 written as a 48-bit PNG (Pillow writes no 16-bit RGB), with a tRNS colour."""
    h, w, _ = a.shape
    raw = b"".join(b"\0" + a[y].astype(">u2").tobytes() for y in range(h))
    trns = _chunk(b"tRNS", struct.pack(">HHH", *key)) if key else b""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)) + trns
                     + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))
    return path


def _keyed48(path: Path) -> Path:
    a = np.empty((20, 24, 3), np.uint16)
    a[...] = INSIDE
    a[:10] = KEY16  # top half: the transparent colour
    return _png48(path, a, KEY16)


# --------------------------------------------------------------------------- 48-bit PNG with a transparent colour


def test_a_48_bit_png_with_a_transparent_colour_is_composited_on_white(tmp_path: Path) -> None:
    # Pillow keeps the key at 16 bits and the pixels at 8, so none matched: the top half came out red
    p = _keyed48(tmp_path / "keyed48.png")
    want = torch.ones(3, 20, 24)
    want[:, 10:] = torch.tensor([v >> 8 for v in INSIDE])[:, None, None] / 255.0
    assert torch.equal(load_image(p), want)
    lazy = Image.open(p)
    assert torch.equal(load_image(lazy), want)
    assert lazy.info["transparency"] == KEY16  # the caller's image is left as it was
    lazy.load()  # decoded: the key is judged from its values
    assert torch.equal(load_image(lazy), want)


def test_the_tokenizer_reads_a_keyed_48_bit_png_as_its_8_bit_twin(tmp_path: Path) -> None:
    p16 = _keyed48(tmp_path / "keyed48.png")
    a8 = np.empty((20, 24, 3), np.uint8)
    a8[...] = [v >> 8 for v in INSIDE]
    a8[:10] = [v >> 8 for v in KEY16]
    Image.fromarray(a8).save(tmp_path / "keyed8.png", transparency=tuple(v >> 8 for v in KEY16))
    tok = mmtok.load("image")
    assert torch.equal(tok.preprocess(p16), tok.preprocess(tmp_path / "keyed8.png"))


def test_sixteen_bit_key_leaves_8_bit_keys_and_other_modes_alone(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "k8.png", transparency=(1, 2, 3))
    assert sixteen_bit_key(Image.open(tmp_path / "k8.png")) is None
    assert sixteen_bit_key(Image.open(_png48(tmp_path / "n.png", np.zeros((4, 4, 3), np.uint16), None))) is None
    small = _png48(tmp_path / "small.png", np.zeros((4, 4, 3), np.uint16), (100, 200, 255))  # under 256 at 16 bits
    assert sixteen_bit_key(Image.open(small)) == (0, 0, 0)
    assert torch.equal(load_image(small), torch.ones(3, 4, 4))


# --------------------------------------------------------------------------- a transparent colour beside a profile


def test_a_transparent_colour_survives_the_colour_profile_conversion(tmp_path: Path) -> None:
    # the profile was converted first and the key dropped: the transparent pixels came out nearly black
    icc = _wide_gamut_profile()
    a = np.asarray(_in_profile(_photo(48), icc)).copy()
    a[:10] = (7, 8, 9)
    Image.fromarray(a).save(tmp_path / "keyed_icc.png", icc_profile=icc, transparency=(7, 8, 9))
    got = load_image(tmp_path / "keyed_icc.png")
    assert torch.equal(got[:, :10], torch.ones(3, 10, 48))
    ref = ImageCms.profileToProfile(Image.open(tmp_path / "keyed_icc.png").convert("RGB"),
                                    ImageCms.getOpenProfile(__import__("io").BytesIO(icc)),
                                    ImageCms.createProfile("sRGB"))
    want = torch.from_numpy(np.asarray(ref, np.float32) / 255).permute(2, 0, 1)
    assert (got[:, 10:] - want[:, 10:]).abs().max() * 255 < 1.01


# --------------------------------------------------------------------------- a sweep against an independent reading


def _independent(p: Path) -> np.ndarray:
    """The file as Pillow shows it, oriented, on white: float ``[3, H, W]`` (8-bit modes only)."""
    with Image.open(p) as im:
        a = np.asarray(ImageOps.exif_transpose(im).convert("RGBA"), np.float64) / 255
    return (a[..., :3] * a[..., 3:] + 1 - a[..., 3:]).transpose(2, 0, 1)


def _sweep(d: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    rgba = (rng.random((24, 32, 4)) * 255).astype(np.uint8)
    rgb = Image.fromarray(rgba[..., :3])
    out = []
    for name, im, kw in [("bit1.png", rgb.convert("1"), {}), ("l.png", rgb.convert("L"), {}),
                         ("la.png", Image.fromarray(rgba[..., :2], "LA"), {}), ("rgba.png", Image.fromarray(rgba), {}),
                         ("p.png", rgb.quantize(16), {"transparency": 3}), ("p.gif", rgb.quantize(16), {"transparency": 3}),
                         ("prog.jpg", rgb, {"progressive": True, "quality": 95}),
                         ("cmyk.jpg", rgb.convert("CMYK"), {"quality": 95}), ("png.jpg", rgb, {"format": "PNG"}),
                         ("ünïcødé 日本.png", rgb, {})]:
        im.save(d / name, **kw)
        out.append(d / name)
    for o in range(2, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        rgb.save(d / f"exif{o}.jpg", exif=exif, quality=95)
        out.append(d / f"exif{o}.jpg")
    return out


def test_every_8_bit_file_reads_as_pillow_shows_it(tmp_path: Path) -> None:
    for p in _sweep(tmp_path):
        got = load_image(p).numpy()
        want = _independent(p)
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-6, p.name
        assert torch.equal(load_image(Image.open(p)), torch.from_numpy(got)), p.name


def test_damaged_and_mislabelled_files_are_named_with_the_problem(tmp_path: Path) -> None:
    rgb = Image.fromarray((np.random.default_rng(1).random((24, 32, 3)) * 255).astype(np.uint8))
    rgb.save(tmp_path / "whole.jpg", progressive=True)
    rgb.save(tmp_path / "whole.png")
    for name in ("whole.jpg", "whole.png"):
        b = (tmp_path / name).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(b[: len(b) // 2])
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "dir.png").mkdir()
    for name, problem in [("cut_whole.jpg", "corrupt or truncated"), ("cut_whole.png", "corrupt or truncated"),
                          ("text.png", "not an image Pillow can read"), ("dir.png", "is a folder")]:
        with pytest.raises(ImageError, match=rf"{name.replace('.', '[.]')}'.*{problem}"):
            load_image(tmp_path / name)


def test_the_first_frame_of_an_animation_is_read_with_a_warning_saying_so(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), (c, c, c)) for c in (10, 128, 240)]
    for name in ("anim.gif", "anim.png", "anim.webp", "pages.tif"):
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], **({"lossless": True} if
                                                                                  name.endswith("webp") else {}))
        with pytest.warns(UserWarning, match=rf"{name.replace('.', '[.]')}'.* 3 frames: only the first is read"):
            got = load_image(tmp_path / name)
        assert torch.allclose(got, torch.full_like(got, 10 / 255)), name
