"""Image tokenizer: every Pillow mode, EXIF, size policies, batch == single, bad input, shipped model."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from image_helpers import fitted_tiny_tokenizer, smooth_picture, tiny_config
from PIL import Image

import mmtok
from mmtok.core.errors import ImageError
from mmtok.image.io import load_image
from mmtok.image.sizing import patchify, unpatchify
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.vq.quantizer import VQConfig

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "image"
SHIPPED_PSNR_FLOOR = 20.0  # dB on the smooth synthetic test picture below


pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: one thread is steadier


@pytest.fixture(scope="module")
def tok() -> ImageTokenizer:
    return fitted_tiny_tokenizer()


def rgb_gradient(h: int = 24, w: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 90)], -1).astype(np.uint8)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10.0 * math.log10(float((a - b).pow(2).mean()))


# --------------------------------------------------------------------------- loading: every mode


def test_rgb_from_path_pil_array_tensor_agree(tmp_path: Path) -> None:
    arr = rgb_gradient()
    Image.fromarray(arr).save(tmp_path / "g.png")
    ref = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    for x in (tmp_path / "g.png", str(tmp_path / "g.png"), Image.fromarray(arr), arr, ref, (ref * 255).byte()):
        out = load_image(x)
        assert out.dtype == torch.float32 and tuple(out.shape) == (3, 24, 32)
        torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def _save_roundtrip(img: Image.Image, tmp_path: Path, fmt: str) -> Path:
    path = tmp_path / f"img.{fmt.lower()}"
    img.save(path, format=fmt)
    return path


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("1", "PNG"), ("L", "PNG"), ("P", "PNG"), ("RGB", "PNG"), ("CMYK", "TIFF"), ("CMYK", "JPEG"), ("I", "TIFF"), ("F", "TIFF")],
)
def test_plain_modes_convert(mode: str, fmt: str, tmp_path: Path) -> None:
    img = Image.fromarray(rgb_gradient()).convert(mode)
    for x in (img, _save_roundtrip(img, tmp_path, fmt)):
        out = load_image(x)
        assert tuple(out.shape) == (3, 24, 32) and out.dtype == torch.float32
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    if mode in ("1", "L", "I", "F"):
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])  # gray stays gray
    if mode == "1":
        assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_mode_cmyk_values() -> None:
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    out = load_image(cyan)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([0.0, 1.0, 1.0]))


def test_mode_i16_uses_full_16_bit_range(tmp_path: Path) -> None:
    a = np.full((20, 20), 32768, dtype=np.uint16)
    a[:10] = 65535
    img = Image.frombytes("I;16", (20, 20), a.astype("<u2").tobytes())
    assert img.mode == "I;16"
    path = tmp_path / "deep.png"
    img.save(path)
    for x in (img, path):
        out = load_image(x)
        assert abs(float(out[0, 15, 0]) - 0.5) < 1e-3 and float(out[0, 0, 0]) == pytest.approx(1.0)


def test_mode_i_and_f_values() -> None:
    i = Image.fromarray(np.full((16, 16), 1000, dtype=np.int32), mode="I")
    assert float(load_image(i)[0, 0, 0]) == pytest.approx(1000 / 65535, abs=1e-6)
    f = Image.fromarray(np.full((16, 16), 0.25, dtype=np.float32), mode="F")
    assert float(load_image(f)[1, 3, 3]) == pytest.approx(0.25)
    f255 = Image.fromarray(np.full((16, 16), 51.0, dtype=np.float32), mode="F")
    assert float(load_image(f255)[2, 0, 0]) == pytest.approx(0.2)


def test_alpha_modes_composite_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:8, :, 3] = 0  # top half fully transparent
    rgba[8:, :, 3] = 128  # bottom half half-transparent
    img = Image.fromarray(rgba, mode="RGBA")
    for x in (img, _save_roundtrip(img, tmp_path, "PNG"), rgba, torch.from_numpy(rgba).permute(2, 0, 1)):
        out = load_image(x)
        torch.testing.assert_close(out[:, 0, 0], torch.ones(3))
        torch.testing.assert_close(out[:, 12, 0], torch.tensor([1.0, 127 / 255, 127 / 255]), atol=2e-3, rtol=0)
    la = img.convert("LA")
    out = load_image(_save_roundtrip(la, tmp_path, "PNG"))
    torch.testing.assert_close(out[:, 0, 0], torch.ones(3))
    assert float(out[0, 12, 0]) < 0.9


def test_palette_with_transparency_composites_on_white(tmp_path: Path) -> None:
    img = Image.new("P", (16, 16), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 16, 8))  # top half red (index 1), bottom black (index 0)
    img.info["transparency"] = 0  # index 0 is transparent
    path = tmp_path / "pal.png"
    img.save(path, transparency=0)
    for x in (img, path):
        out = load_image(x)
        torch.testing.assert_close(out[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
        torch.testing.assert_close(out[:, 12, 0], torch.ones(3))  # transparent -> white, not black


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)  # left half red, right half blue
    a[:, 20:] = (0, 0, 255)
    img = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    out = load_image(path)
    assert tuple(out.shape) == (3, 40, 20)  # width and height swapped
    assert float(out[0, 5, 10]) > 0.8 and float(out[2, 35, 10]) > 0.8  # red on top, blue below


# --------------------------------------------------------------------------- bad inputs


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x00not an image at all" * 10)
    with pytest.raises(ImageError, match=r"junk\.png"):
        load_image(junk)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ImageError, match=r"notes\.txt"):
        load_image(text)
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(buf, "PNG")
    cut = tmp_path / "truncated.png"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match=r"truncated\.png.*(corrupt|truncated)"):
        load_image(cut)
    with pytest.raises(FileNotFoundError, match=r"missing\.jpg"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_bad_arrays_and_types() -> None:
    with pytest.raises(TypeError, match=r"path, PIL\.Image"):
        load_image(42)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        load_image(np.full((8, 8, 3), 200.0))
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        load_image(torch.full((3, 8, 8), 2.0))
    with pytest.raises(ImageError, match="NaN"):
        load_image(torch.full((3, 8, 8), float("nan")))
    with pytest.raises(ImageError, match=r"\[3, H, W\]"):
        load_image(torch.rand(8, 8, 3))
    with pytest.raises(ImageError, match="empty"):
        load_image(np.zeros((0, 5, 3), np.uint8))


def test_image_smaller_than_one_patch(tok: ImageTokenizer, tmp_path: Path) -> None:
    Image.new("RGB", (10, 40)).save(tmp_path / "sliver.png")
    with pytest.raises(ImageError, match=r"sliver\.png.*smaller than one 16×16 patch"):
        tok.encode(tmp_path / "sliver.png")
    with pytest.raises(ImageError, match="smaller than one"):
        tok.encode(torch.rand(3, 15, 15))


def test_decode_rejects_bad_codes(tok: ImageTokenizer) -> None:
    with pytest.raises(ImageError, match="outside the codebook"):
        tok.decode(torch.full((4, 4), 64))
    with pytest.raises(ImageError, match="integer"):
        tok.decode(torch.zeros(4, 4))
    with pytest.raises(ImageError, match=r"\[h, w\]"):
        tok.decode(torch.zeros(4, dtype=torch.long))


# --------------------------------------------------------------------------- size policies, patches


def test_patchify_known_answer_and_inverse() -> None:
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    p = patchify(x, 2)
    assert tuple(p.shape) == (2, 6, 12)
    torch.testing.assert_close(p[0, 1, :4], torch.tensor([2.0, 3.0, 8.0, 9.0]))  # channel 0 of patch (0, 1)
    torch.testing.assert_close(unpatchify(p, 2, 2, 3), x)


def test_size_policies_give_expected_grids() -> None:
    torch.manual_seed(0)
    img = torch.rand(3, 40, 72)
    crop = ImageTokenizer(tiny_config()).eval()
    assert tuple(crop.preprocess(img).shape) == (3, 64, 64)
    assert tuple(crop.encode(img).shape) == (4, 4)
    pad = ImageTokenizer(tiny_config(size_policy="pad")).eval()
    pre = pad.preprocess(img)
    assert tuple(pre.shape) == (3, 64, 64)
    torch.testing.assert_close(pre[:, 36:], pre[:, 35:36].expand(-1, 28, -1))  # 40×72 -> 36×64, edge rows below
    native = ImageTokenizer(tiny_config(size_policy="native")).eval()
    assert tuple(native.preprocess(img).shape) == (3, 48, 80)
    codes = native.encode(img)
    assert tuple(codes.shape) == (3, 5)
    assert tuple(native.decode(codes).shape) == (3, 48, 80)
    torch.testing.assert_close(native.preprocess(img)[:, :40, :72], img)  # content untouched
    with pytest.raises(ImageError, match="different sizes"):
        native.encode([img, torch.rand(3, 64, 64)])


def test_crop_policy_centers_and_keeps_aspect() -> None:
    t = ImageTokenizer(tiny_config()).eval()
    img = torch.zeros(3, 64, 128)
    img[:, :, 32:96] = 1.0  # a white square in the middle of a black bar
    pre = t.preprocess(img)
    assert tuple(pre.shape) == (3, 64, 64) and float(pre.min()) > 0.99


# --------------------------------------------------------------------------- the tokenizer


def test_encode_decode_shapes_and_attributes(tok: ImageTokenizer) -> None:
    assert tok.downsample == 16 and tok.codebook_size == 64 and tok.image_size == 64
    x = torch.rand(3, 64, 64)
    codes = tok.encode(x)
    assert codes.dtype == torch.int64 and tuple(codes.shape) == (4, 4)
    assert int(codes.min()) >= 0 and int(codes.max()) < 64
    img = tok.decode(codes)
    assert tuple(img.shape) == (3, 64, 64) and float(img.min()) >= 0 and float(img.max()) <= 1
    batch = tok.decode(torch.stack([codes, codes]))
    assert tuple(batch.shape) == (2, 3, 64, 64)


def test_batch_equals_single_and_codes_are_deterministic(tok: ImageTokenizer) -> None:
    g = torch.Generator().manual_seed(3)
    imgs = torch.rand(5, 3, 64, 64, generator=g)
    batch = tok.encode(imgs)
    assert tuple(batch.shape) == (5, 4, 4)
    singles = torch.stack([tok.encode(i) for i in imgs])
    assert torch.equal(batch, singles)
    assert torch.equal(tok.encode(list(imgs)), batch)
    assert torch.equal(tok.encode(imgs), batch)
    torch.testing.assert_close(tok.decode(batch)[2], tok.decode(batch[2]))
    torch.manual_seed(0)
    again = ImageTokenizer(tiny_config())
    again.load_state_dict(tok.state_dict())
    assert torch.equal(again.eval().encode(imgs), batch)


def test_preprocess_is_what_encode_sees(tok: ImageTokenizer, tmp_path: Path) -> None:
    arr = (np.random.default_rng(1).random((50, 90, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "wide.png")
    pre = tok.preprocess(tmp_path / "wide.png")
    assert tuple(pre.shape) == (3, 64, 64)
    assert torch.equal(tok.encode(pre), tok.encode(tmp_path / "wide.png"))


def test_forward_result_and_training_reduces_loss() -> None:
    torch.manual_seed(0)
    t = ImageTokenizer(tiny_config(vq=VQConfig(dim=8, codebook_size=16))).train()
    x = torch.stack([smooth_picture(64, seed=s) for s in range(4)])
    opt = torch.optim.Adam(t.parameters(), lr=1e-2)
    first = None
    for _ in range(50):
        out = t(x)
        if first is None:
            first = float(out.losses["mse"].detach())
            assert tuple(out.reconstruction.shape) == (4, 3, 64, 64)
            assert tuple(out.indices.shape) == (4, 4, 4) and out.indices.dtype == torch.int64
            assert set(out.losses) >= {"l1", "mse", "grad", "commit", "total"}
            assert 0 < float(out.usage) <= 1
        opt.zero_grad()
        out.losses["total"].backward()
        opt.step()
    assert float(out.losses["mse"].detach()) < 0.75 * first
    with pytest.raises(ImageError, match="divisible by 16"):
        t(torch.rand(1, 3, 40, 64))


def test_save_load_roundtrip(tok: ImageTokenizer, tmp_path: Path) -> None:
    folder = mmtok.save(tok, tmp_path / "ck")
    again = mmtok.load(folder)
    assert isinstance(again, ImageTokenizer) and again.cfg == tok.cfg
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(again.encode(x), tok.encode(x))


# --------------------------------------------------------------------------- the shipped model


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="models/image not trained yet")
def test_shipped_model_round_trips_a_test_picture() -> None:
    t = mmtok.load("image")
    assert isinstance(t, ImageTokenizer)
    assert 1024 <= t.codebook_size <= 16384 and t.downsample == 16 and t.image_size == 256
    assert (SHIPPED / "model.safetensors").stat().st_size <= 30 * 2**20
    assert (SHIPPED / "README.md").is_file()
    x = smooth_picture(256)
    codes = t.encode(x)
    assert tuple(codes.shape) == (16, 16)
    y = t.decode(codes)
    assert psnr(y, t.preprocess(x)) > SHIPPED_PSNR_FLOOR
    noise = torch.rand(3, 256, 256)  # white noise cannot be coded by 256 tokens: the PSNR test discriminates
    assert psnr(t.decode(t.encode(noise)), noise) < SHIPPED_PSNR_FLOOR - 5
