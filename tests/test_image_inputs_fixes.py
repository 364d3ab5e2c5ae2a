"""Image inputs as people have them: embedded colour profiles, Pillow images closed before they were
loaded, 16-bit grayscale with a transparent colour, multi-page files, the evaluation's one read of each
file, the decompression-bomb message's knob and windowed JPEG panoramas under the limit."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from image_helpers import fitted_tiny_tokenizer
from PIL import Image, ImageCms

from mmtok.core.errors import ImageError
from mmtok.image.io import bomb_message, load_image, load_sized

pytestmark = pytest.mark.usefixtures("one_thread")


def _wide_gamut_profile() -> bytes:
    """An Adobe RGB (1998)-like ICC v2 matrix/TRC profile, built by hand."""
    def s15(x: float) -> bytes:
        return struct.pack(">i", round(x * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + b"\0" * 4 + s15(x) + s15(y) + s15(z)

    curv = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(2.19921875 * 256)) + b"\0\0"
    name = b"Adobe RGB (1998) like\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(name)) + name + b"\0" * 79
    tags = [(b"desc", desc), (b"cprt", b"text\0\0\0\0none\0"), (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
            (b"rXYZ", xyz(0.60974, 0.31111, 0.01947)), (b"gXYZ", xyz(0.20528, 0.62567, 0.06087)),
            (b"bXYZ", xyz(0.14919, 0.06322, 0.74457)), (b"rTRC", curv), (b"gTRC", curv), (b"bTRC", curv)]
    start, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for sig, body in tags:
        data += b"\0" * (-(start + len(data)) % 4)
        table += sig + struct.pack(">II", start + len(data), len(body))
        data += body
    body = struct.pack(">I", len(tags)) + table + data
    header = (struct.pack(">I", 128 + len(body)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ " + b"\0" * 12
              + b"acspAPPL" + b"\0" * 24 + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + body


def _photo(size: int = 48) -> Image.Image:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    a = np.stack([0.2 + 0.7 * xx, 0.9 - 0.6 * yy, 0.3 + 0.5 * xx * yy], -1) + rng.uniform(-0.05, 0.05, (size, size, 3))
    return Image.fromarray((a.clip(0, 1) * 255).round().astype(np.uint8))


def _in_profile(img: Image.Image, icc: bytes) -> Image.Image:
    """``img`` (sRGB) converted into the colour space of ``icc``."""
    wide = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.profileToProfile(img, ImageCms.createProfile("sRGB"), wide,
                                     renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)


# --------------------------------------------------------------------------- colour profiles


def test_a_wide_gamut_profile_is_converted_to_srgb_for_files_and_pil_images(tmp_path: Path) -> None:
    # read as sRGB, the Adobe RGB values came out desaturated: mean 8.5/255 off on a photo
    base, icc = _photo(), _wide_gamut_profile()
    p = tmp_path / "adobe.png"
    _in_profile(base, icc).save(p, icc_profile=icc)
    want = load_image(base)
    got = load_image(p)
    assert (got - want).abs().mean() * 255 < 1.5
    assert torch.equal(load_image(Image.open(p)), got)
    rgba = Image.open(p).convert("RGBA")  # the profile kept, the alpha channel passed through
    assert torch.equal(load_image(rgba), got)


def test_an_srgb_profile_leaves_the_pixels_as_they_are(tmp_path: Path) -> None:
    base = _photo()
    p = tmp_path / "srgb.png"
    base.save(p, icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    assert torch.equal(load_image(p), load_image(base))


def test_a_broken_profile_warns_and_reads_the_pixels_unconverted(tmp_path: Path) -> None:
    base = _photo()
    p = tmp_path / "broken.png"
    base.save(p, icc_profile=b"not a colour profile at all")
    with pytest.warns(UserWarning, match=r"broken\.png'.*colour profile.*read as sRGB"):
        got = load_image(p)
    assert torch.equal(got, load_image(base))


# --------------------------------------------------------------------------- closed PIL images


def test_a_pil_image_closed_before_loading_names_the_item_and_the_fix(tmp_path: Path) -> None:
    # it was an AssertionError with no message, from deep inside Pillow
    p = tmp_path / "shut.png"
    _photo().save(p)
    ims = [load_image(_photo())]
    with Image.open(p) as im:
        ims.append(im)
    with pytest.raises(ImageError, match=r"shut\.png'.*closed before.*im\.load\(\).*or pass the path"):
        load_image(im)
    tok = fitted_tiny_tokenizer()
    with pytest.raises(ImageError, match=r"image 1 of the batch: .*shut\.png.*closed"):
        tok.encode([_photo(64), im])


def test_a_closed_pil_image_is_refused_the_same_under_python_O(tmp_path: Path) -> None:
    p = tmp_path / "shut.png"
    _photo().save(p)
    code = ("from PIL import Image\nfrom mmtok.image.io import load_image\n"
            f"with Image.open({str(p)!r}) as im: pass\n"
            "try: load_image(im)\nexcept Exception as e: print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.startswith("ImageError ") and "closed before" in out


# --------------------------------------------------------------------------- 16-bit transparency


@pytest.mark.parametrize("width", [40, 4200])  # as decoded, and reduced to the working size
def test_16_bit_gray_with_a_transparent_colour_is_composited_on_white_as_8_bit_is(tmp_path: Path, width: int) -> None:
    # the transparent pixels came out black at 16 bits, white at 8
    a = np.full((20, width), 120, np.uint8)
    a[:, width // 2 :] = 0  # the transparent colour
    Image.fromarray(a).save(tmp_path / "g8.png", transparency=0)
    Image.fromarray(a.astype(np.uint16) * 257).save(tmp_path / "g16.png", transparency=0)
    g8, g16 = load_image(tmp_path / "g8.png"), load_image(tmp_path / "g16.png")
    w = g8.shape[-1]
    assert torch.allclose(g16[..., w // 2 + 4 :], torch.ones(1)) and torch.allclose(g16, g8, atol=1.5 / 255)  # 8-bit rounding at the edge


# --------------------------------------------------------------------------- multi-page files


@pytest.mark.parametrize("ext", ["tif", "mpo"])
def test_a_multi_page_file_warns_that_only_the_first_page_is_read(tmp_path: Path, ext: str) -> None:
    # a multi-page TIFF (or a stereo MPO) read its first page without a word
    p = tmp_path / f"pages.{ext}"
    first = Image.new("RGB", (32, 32), (255, 0, 0))
    first.save(p, save_all=True, append_images=[_photo(32), Image.new("RGB", (32, 32))])
    with pytest.warns(UserWarning, match=rf"pages\.{ext}' has 3 frames: only the first is read"):
        got = load_image(p)
    assert torch.allclose(got, load_image(first), atol=0.02)  # an MPO is a JPEG


# --------------------------------------------------------------------------- evaluation


def test_eval_decodes_each_image_file_once_and_scores_the_same_codes(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from mmtok.evaluate import score_image

    p = tmp_path / "a.png"
    _photo(80).save(p)
    tok = fitted_tiny_tokenizer()
    expected = tok.encode(p)
    opens, real = [], Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opens.append(a) or real(*a, **k))
    scores, codes = score_image(tok, p)
    assert len(opens) == 1 and torch.equal(codes, expected) and scores["psnr_db"] > 0


# --------------------------------------------------------------------------- the decompression-bomb limit


@pytest.fixture
def limit(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Pillow's limit restored after the test (``MMTOK_MAX_IMAGE_PIXELS`` sets it), the variable unset."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    monkeypatch.delenv("MMTOK_MAX_IMAGE_PIXELS", raising=False)
    return monkeypatch


def test_the_bomb_message_names_the_knob_that_sets_the_limit(limit: pytest.MonkeyPatch) -> None:
    default = bomb_message("x has", 10**9, 1000)
    assert "(PIL.Image.MAX_IMAGE_PIXELS)" in default and "or raise PIL.Image.MAX_IMAGE_PIXELS" in default
    limit.setenv("MMTOK_MAX_IMAGE_PIXELS", "1000")
    message = bomb_message("x has", 10**9, 1000)
    assert "(MMTOK_MAX_IMAGE_PIXELS)" in message and "PIL.Image.MAX_IMAGE_PIXELS" not in message
    assert message.endswith("set the environment variable MMTOK_MAX_IMAGE_PIXELS=500000000")


def test_a_windowed_jpeg_panorama_is_counted_at_the_scale_it_is_decoded_at(tmp_path: Path,
                                                                          limit: pytest.MonkeyPatch) -> None:
    # refused at full size while a bigger, less elongated one was decoded reduced and accepted
    rng = np.random.default_rng(0)
    pano = tmp_path / "pano.jpg"
    Image.fromarray(np.tile(rng.integers(0, 255, (40, 100), dtype=np.uint8), (1, 120))).save(pano, quality=90)
    limit.setenv("MMTOK_MAX_IMAGE_PIXELS", "100000")  # 40×12000 is over twice it, 20×6000 (1/2 scale) is not
    got = load_sized(pano, policy="crop", image_size=16, multiple=16)
    assert got.shape == (1, 3, 16, 16)
    limit.setenv("MMTOK_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ImageError, match="decompression-bomb"):
        load_sized(pano, policy="crop", image_size=16, multiple=16)
