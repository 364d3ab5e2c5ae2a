"""Image inputs at the API's edges: byte order, Pillow errors, 16-bit and float images past the
working size, very wide or tall images under each size policy, and codes that behave as
ordinary tensors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from image_helpers import fitted_tiny_tokenizer, tiny_config
from PIL import Image

from mmtok.core.errors import ImageError
from mmtok.core.memory import PeakMemory
from mmtok.image import io as image_io
from mmtok.image.io import load_image
from mmtok.image.sizing import MAX_SIDE, apply_size_policy
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.video.tokenizer import VideoTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: one thread is steadier


@pytest.fixture(scope="module")
def tok() -> ImageTokenizer:
    return fitted_tiny_tokenizer()


def test_big_endian_arrays_are_read_as_their_values() -> None:
    rng = np.random.default_rng(0)
    native = rng.integers(0, 65536, (8, 9, 3)).astype(np.uint16)
    assert torch.equal(load_image(native.astype(">u2")), load_image(native))
    floats = rng.random((8, 9)).astype(np.float32)
    assert torch.equal(load_image(floats.astype(">f4")), load_image(floats))


def test_decode_names_ragged_and_unsigned_codes(tok: ImageTokenizer) -> None:
    with pytest.raises(ImageError, match="ragged"):
        tok.decode([[1, 2], [3]])
    grid = np.arange(16).reshape(4, 4)
    want = tok.decode(torch.from_numpy(grid))
    for dtype in (np.uint16, np.uint32, np.uint64):
        assert torch.equal(tok.decode(grid.astype(dtype)), want)
    # a value past 2**63 is named as given, not as the negative number int64 would wrap it to
    huge = grid.astype(np.uint64)
    huge[1, 2] = 2**63 + 5
    with pytest.raises(ImageError, match=f"index {2**63 + 5} .*outside the codebook"):
        tok.decode(huge)
    with pytest.raises(ImageError, match=r"index 70000 .*outside the codebook"):
        tok.decode(np.full((2, 2), 70000, dtype=np.uint32))


def test_codes_and_decodes_are_ordinary_tensors(tok: ImageTokenizer) -> None:
    codes = tok.encode(torch.rand(3, 64, 64))
    embedding = torch.nn.Embedding(tok.codebook_size, 8)
    embedding(codes).sum().backward()  # codes can feed a model that trains
    assert embedding.weight.grad is not None and embedding.weight.grad.abs().sum() > 0
    codes[0, 0] = 5  # and can be changed in place
    codes += 1
    batch = tok.encode([torch.rand(3, 64, 64), torch.rand(3, 64, 64)])
    batch[1] = 0
    image = tok.decode(batch)
    image.mul_(0.5)
    video = VideoTokenizer(tok, fps=1.0)
    frames = video.encode(torch.rand(2, 3, 64, 64))
    frames += 1
    for out in (image, video.decode(frames - 1)):
        assert not out.is_inference() and out.clone().requires_grad_().sum().requires_grad


def truncated_jpeg(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)).save(buf, "JPEG")
    path = tmp_path / "trunc.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def test_a_broken_pil_image_is_an_image_error_naming_it(tok: ImageTokenizer, tmp_path: Path) -> None:
    path = truncated_jpeg(tmp_path)
    with pytest.raises(ImageError, match=r"trunc\.jpg.*truncated"):
        tok.encode(path)
    with pytest.raises(ImageError, match=r"image file '.*trunc\.jpg' .*truncated"):
        tok.encode(Image.open(path))
    with pytest.raises(ImageError, match=r"trunc\.jpg.*truncated"):
        load_image(Image.open(path))
    unnamed = Image.open(io.BytesIO(path.read_bytes()))
    with pytest.raises(ImageError, match=r"PIL image \(mode RGB.*truncated"):
        load_image(unnamed)


def test_wide_modes_keep_their_scale_past_the_working_size(tmp_path: Path) -> None:
    """16-bit, 32-bit and float images longer than MAX_SIDE: the scale comes from the image as
    decoded, not from the reduced one (whose mode and overshoot differ)."""
    step = np.zeros((300, 5000), np.float32)
    step[:, 2500:] = 1.0  # the reduction overshoots at the step: below 0 and above the top value
    Image.fromarray((step * 200).astype(np.uint16)).save(tmp_path / "dark16.png")
    Image.fromarray(np.where(step > 0, 1.0, 0.2).astype(np.float32), "F").save(tmp_path / "f.tif")
    Image.fromarray((step * 60000).astype(np.int32), "I").save(tmp_path / "i.tif")
    for name, dark, bright in (("dark16.png", 0.0, 200 / 65535), ("f.tif", 0.2, 1.0), ("i.tif", 0.0, 60000 / 65535)):
        x = load_image(tmp_path / name)
        assert x.shape == (3, round(300 * MAX_SIDE / 5000), MAX_SIDE)
        assert torch.equal(x, load_image(Image.open(tmp_path / name))), name
        assert float(x.min()) >= 0.0 and float(x.max()) <= min(1.0, 1.2 * bright), name
        assert float(x[0, :, :500].mean()) == pytest.approx(dark, abs=1e-4), name
        assert float(x[0, :, -500:].mean()) == pytest.approx(bright, abs=1e-4), name


def crop_whole(x: torch.Tensor, size: int) -> torch.Tensor:
    """The 'crop' policy done the long way: resize the whole image, then keep its centre."""
    h, w = x.shape[-2:]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    y = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    top, left = (nh - size) // 2, (nw - size) // 2
    return y[..., top : top + size, left : left + size]


@pytest.mark.parametrize(("h", "w", "size"), [(16, 300, 256), (300, 16, 256), (300, 5000, 256), (5000, 300, 256),
                                              (17, 1200, 64), (40, 3000, 64), (3001, 41, 64), (256, 5000, 256)])
def test_crop_of_a_long_image_crops_first_with_the_same_result(h: int, w: int, size: int) -> None:
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h + w))
    got = apply_size_policy(x, policy="crop", image_size=size, multiple=16)
    assert got.shape == (2, 3, size, size)
    assert float((got - crop_whole(x, size)).abs().max()) < 1e-5


def test_crop_of_a_long_array_stays_small() -> None:
    x = load_image(np.random.default_rng(0).integers(0, 256, (16, 8000, 3)).astype(np.uint8))[None]
    with PeakMemory("cpu") as m:
        y = apply_size_policy(x, policy="crop", image_size=256, multiple=16)
    assert y.shape == (1, 3, 256, 256)
    assert m.peak_mib < 40, m.peak_mib  # resizing the whole strip first took about 393 MiB


@pytest.fixture(scope="module")
def tok256() -> ImageTokenizer:
    """The shipped tokenizer's size policy (crop to 256 × 256) on a tiny network."""
    torch.manual_seed(0)
    t = ImageTokenizer(tiny_config(image_size=256))
    t.train()
    t(torch.rand(2, 3, 256, 256))  # k-means init so the codebook is data-shaped
    return t.eval()


def test_long_files_pil_images_and_arrays_of_the_same_pixels_agree(tok256: ImageTokenizer, tmp_path: Path) -> None:
    """A 300×8200 picture is reduced by the crop policy to its centre 300×300 at full resolution,
    whatever form it comes in (the loader used to halve it to 150×4096 first, then enlarge it)."""
    noise = np.random.default_rng(0).integers(0, 256, (300, 8200, 3)).astype(np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    Image.fromarray(noise).save(tmp_path / "noise.jpg", quality=95)
    decoded_jpeg = np.asarray(Image.open(tmp_path / "noise.jpg").convert("RGB"))
    for path, pixels in ((tmp_path / "noise.png", noise), (tmp_path / "noise.jpg", decoded_jpeg)):
        want = tok256.preprocess(pixels)
        assert want.shape == (3, 256, 256) and float(want.std()) > (0.19 if path.suffix == ".png" else 0.12)
        assert torch.equal(tok256.preprocess(path), want)
        assert torch.equal(tok256.preprocess(Image.open(path)), want)
        assert torch.equal(tok256.encode(path), tok256.encode(pixels))


def test_thin_files_are_measured_at_their_real_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    strip = rng.integers(0, 256, (20, 20000, 3)).astype(np.uint8)
    Image.fromarray(strip).save(tmp_path / "strip.png")
    Image.fromarray(strip[:10]).save(tmp_path / "sliver.png")
    torch.manual_seed(0)
    for policy in ("crop", "pad"):
        t = ImageTokenizer(tiny_config(image_size=256, size_policy=policy)).eval()
        codes = t.encode(tmp_path / "strip.png")  # 20 pixels high: one patch fits
        assert codes.shape == (16, 16)
        if policy == "crop":
            assert torch.equal(codes, t.encode(strip))
        for x in (tmp_path / "sliver.png", Image.open(tmp_path / "sliver.png")):
            with pytest.raises(ImageError, match=r"sliver\.png.* is 20000×10 pixels, smaller than one 16×16 patch"):
                t.encode(x)


def test_large_photos_are_still_reduced_before_conversion(tok256: ImageTokenizer, tmp_path: Path) -> None:
    """A photo past MAX_SIDE whose crop needs no window is decoded at reduced scale and reduced to
    the working size first, as before: cheap, and its short side stays above image_size."""
    rng = np.random.default_rng(0)
    photo = np.repeat(np.repeat(rng.integers(0, 256, (100, 425, 3)), 10, 0), 10, 1).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.jpg", quality=90)  # 4250 × 1000
    want = apply_size_policy(load_image(tmp_path / "photo.jpg")[None], policy="crop", image_size=256, multiple=16)
    assert load_image(tmp_path / "photo.jpg").shape == (3, 964, MAX_SIDE)
    assert torch.equal(tok256.preprocess(tmp_path / "photo.jpg"), want[0])


def test_the_module_states_the_layouts_it_takes() -> None:
    assert load_image(np.zeros((4, 6, 3), np.uint8)).shape == (3, 4, 6)  # arrays: channels last
    assert load_image(torch.zeros(3, 4, 6)).shape == (3, 4, 6)  # tensors: channels first
    with pytest.raises(ImageError, match="channels last"):
        load_image(np.zeros((3, 4, 6), np.uint8))
    with pytest.raises(ImageError, match=r"\[3, H, W\]"):
        load_image(torch.zeros(8, 6, 3))
    doc = " ".join((image_io.__doc__ or "").split())
    assert "arrays ``[H, W]`` or ``[H, W, C]`` (channels last)" in doc
    assert "tensors ``[H, W]`` or ``[C, H, W]`` (channels first" in doc


def test_a_thin_jpeg_is_measured_before_it_is_decoded_smaller(tmp_path: Path) -> None:
    """Under 'pad' a long JPEG is decoded at reduced scale: the patch check sees its real size."""
    strip = np.random.default_rng(0).integers(0, 256, (20, 9000, 3)).astype(np.uint8)
    Image.fromarray(strip).save(tmp_path / "strip.jpg")
    t = ImageTokenizer(tiny_config(image_size=64, size_policy="pad")).eval()
    assert t.encode(tmp_path / "strip.jpg").shape == (4, 4)
    with pytest.raises(ImageError, match="empty"):
        t.encode(np.zeros((0, 20, 3), np.uint8))
