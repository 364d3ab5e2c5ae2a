"""Image reading at its limits: the decompression-bomb limit judged as Pillow judges it (and set from
``MMTOK_MAX_IMAGE_PIXELS``), the ``native`` policy's size for arrays, animations, tensor dtypes,
lists encoded a chunk at a time, and empty files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from image_helpers import fitted_tiny_tokenizer, tiny_config
from PIL import Image, ImageSequence

from mmtok.core.errors import ImageError
from mmtok.image.io import load_image
from mmtok.image.sizing import MAX_SIDE
from mmtok.image.tokenizer import CHUNK, ImageTokenizer
from mmtok.video.tokenizer import VideoTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def limit(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Pillow's limit restored after the test (``MMTOK_MAX_IMAGE_PIXELS`` sets it), the variable unset."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    monkeypatch.delenv("MMTOK_MAX_IMAGE_PIXELS", raising=False)
    return monkeypatch


def strip(path: Path, height: int = 100, width: int = 8400) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


# --------------------------------------------------------------------------- decompression-bomb limit


def test_a_jpeg_is_judged_by_the_pixels_it_decodes(tmp_path: Path, limit: pytest.MonkeyPatch) -> None:
    """840,000 pixels in the header, over twice the limit; decoded at 1/2 scale: 210,000, under it."""
    jpeg, png = strip(tmp_path / "wide.jpg"), strip(tmp_path / "wide.png")
    limit.setattr(Image, "MAX_IMAGE_PIXELS", 200_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor a warning on the header's size
        assert load_image(jpeg).shape[-1] == MAX_SIDE
    with pytest.raises(ImageError, match=r"wide\.png' has 840,000 pixels, over twice .* limit of 200,000 .*"
                                         r"MMTOK_MAX_IMAGE_PIXELS=420000"):
        load_image(png)
    # "crop" decodes its window whole, unless that is over the limit: then the window of the reduced decode
    assert ImageTokenizer(tiny_config()).eval().encode(jpeg).ndim == 2


def test_over_the_limit_but_within_twice_it_is_read_as_pillow_reads_it(tmp_path: Path,
                                                                      limit: pytest.MonkeyPatch) -> None:
    png = strip(tmp_path / "wide.png")
    limit.setattr(Image, "MAX_IMAGE_PIXELS", 500_000)
    assert load_image(png).shape == (3, 49, MAX_SIDE)


def test_the_environment_variable_sets_the_limit(tmp_path: Path, limit: pytest.MonkeyPatch) -> None:
    png = strip(tmp_path / "wide.png")
    limit.setenv("MMTOK_MAX_IMAGE_PIXELS", "300000")
    with pytest.raises(ImageError, match=r"840,000 pixels, over twice .* of 300,000 .*MMTOK_MAX_IMAGE_PIXELS=420000"):
        load_image(png)
    limit.setenv("MMTOK_MAX_IMAGE_PIXELS", "420000")
    assert load_image(png).shape == (3, 49, MAX_SIDE)
    limit.setenv("MMTOK_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ImageError, match=r"MMTOK_MAX_IMAGE_PIXELS='lots' is not a whole number"):
        load_image(png)


# --------------------------------------------------------------------------- the native policy


def test_native_gives_a_file_and_an_array_of_the_same_pixels_one_grid(tmp_path: Path) -> None:
    path = strip(tmp_path / "strip.png", 48, 5000)
    a = np.array(Image.open(path))
    t = ImageTokenizer(tiny_config(size_policy="native")).eval()
    want = t.encode(path).shape
    assert want == (3, MAX_SIDE // 16)
    for x in (a, Image.open(path), torch.from_numpy(a).permute(2, 0, 1)):
        assert t.preprocess(x).shape == (3, 48, MAX_SIDE) and t.encode(x).shape == want
    assert t.encode(torch.from_numpy(a).permute(2, 0, 1)[None]).shape == (1, *want)
    assert t.encode(torch.rand(3, 40, 72)).shape == (3, 5)  # up to MAX_SIDE: the size kept


# --------------------------------------------------------------------------- animations


@pytest.mark.parametrize("ext", ["gif", "webp", "png"])
def test_an_animation_warns_and_reads_its_first_frame(tmp_path: Path, ext: str) -> None:
    frames = [Image.new("RGB", (64, 48), c) for c in ("red", "blue", "green")]
    path = tmp_path / f"anim.{ext}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.warns(UserWarning, match=rf"anim\.{ext}' is an animation of 3 frames: only the first is read"
                                         r".*VideoTokenizer"):
        x = load_image(path)
    assert x.mean((1, 2)).round().tolist() == [1.0, 0.0, 0.0]
    with Image.open(path) as img:  # the way the warning names
        video = VideoTokenizer(fitted_tiny_tokenizer(), fps=10.0)
        assert video.encode([f.convert("RGB") for f in ImageSequence.Iterator(img)]).shape == (3, 4, 4)
    frames[0].save(tmp_path / f"still.{ext}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image(tmp_path / f"still.{ext}")


# --------------------------------------------------------------------------- tensors and arrays


def test_tensors_take_the_dtypes_arrays_take() -> None:
    rng = np.random.default_rng(0)
    a16 = rng.integers(0, 65536, (20, 24)).astype(np.uint16)
    rgba = rng.integers(0, 256, (20, 24, 4)).astype(np.uint8)
    for a in (a16, a16 > 30000, rgba, rng.random((20, 24, 3)).astype(np.float32)):
        t = torch.from_numpy(a)
        t = t.permute(2, 0, 1) if t.dim() == 3 else t
        assert torch.equal(load_image(t), load_image(a)), a.dtype
    assert torch.equal(load_image(torch.ones(3, 4, 5, dtype=torch.bfloat16)), torch.ones(3, 4, 5))
    with pytest.raises(ImageError, match=r"dtype torch\.int32: supported dtypes are uint8, uint16, bool and float"):
        load_image(torch.zeros(3, 4, 5, dtype=torch.int32))
    with pytest.raises(ImageError, match=r"Tensor of shape \(3, 4, 5\).*: it contains NaN/inf"):
        load_image(torch.full((3, 4, 5), float("nan")))


# --------------------------------------------------------------------------- lists a chunk at a time


def test_a_list_longer_than_a_chunk_is_encoded_a_chunk_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    tok = fitted_tiny_tokenizer()
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 64, 80, generator=g) for _ in range(CHUNK + 5)]
    singles = torch.stack([tok.encode(x) for x in images])
    seen: list[int] = []
    latents = tok.latents
    monkeypatch.setattr(tok, "latents", lambda x: seen.append(len(x)) or latents(x))
    assert torch.equal(tok.encode(images), singles)
    assert torch.equal(tok.encode(torch.stack(images)), singles)
    assert seen == [CHUNK, 5, CHUNK, 5]
    assert torch.equal(tok.preprocess(images), torch.stack([tok.preprocess(x) for x in images]))
    native = ImageTokenizer(tiny_config(size_policy="native")).eval()
    with pytest.raises(ImageError, match=r"different sizes \[\(48, 80\), \(64, 64\)\]"):  # across chunks too
        native.encode([torch.rand(3, 40, 72)] * CHUNK + [torch.rand(3, 64, 64)])


# --------------------------------------------------------------------------- empty files


@pytest.mark.parametrize("name", ["empty.jpg", "empty.png"])
def test_an_empty_file_says_so(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(ImageError, match=rf"image file '.*{name.replace('.', '[.]')}' is empty \(0 bytes\)$"):
        load_image(tmp_path / name)


def test_the_limit_from_the_environment_leaves_pillow_s_own_setting_alone(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """MMTOK_MAX_IMAGE_PIXELS applies while mmtok reads a picture, and PIL.Image.MAX_IMAGE_PIXELS is as it was after:
    other code in the process keeps Pillow's limit, and a limit set in Python later still counts."""
    from mmtok.image.io import pixel_limit

    path = tmp_path / "p.png"
    Image.new("RGB", (120, 100)).save(path)  # 12,000 pixels
    before = Image.MAX_IMAGE_PIXELS
    monkeypatch.setenv("MMTOK_MAX_IMAGE_PIXELS", "5000")
    with pytest.raises(ImageError, match=r"12,000 pixels, over twice the decompression-bomb limit of 5,000 "
                                         r"\(MMTOK_MAX_IMAGE_PIXELS\)"):
        load_image(path)
    assert Image.MAX_IMAGE_PIXELS == before and pixel_limit() == 5000
    monkeypatch.setenv("MMTOK_MAX_IMAGE_PIXELS", "20000")
    assert load_image(path).shape == (3, 100, 120) and Image.MAX_IMAGE_PIXELS == before


def test_a_bad_limit_in_the_environment_is_one_refusal_before_any_work(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from mmtok.cli import main

    for k in range(2):
        Image.new("RGB", (64, 64)).save(tmp_path / f"p{k}.png")
    monkeypatch.setenv("MMTOK_MAX_IMAGE_PIXELS", "1e9")
    assert main(["encode", str(tmp_path / "p0.png"), str(tmp_path / "p1.png"), "--out", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "mmtok: error: the environment variable MMTOK_MAX_IMAGE_PIXELS='1e9' is not a whole number of pixels ≥ 1"]
    assert not (tmp_path / "c").exists()


def test_the_limit_is_put_back_once_no_thread_reads_a_picture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many threads reading under MMTOK_MAX_IMAGE_PIXELS: none is refused under twice its limit, and Pillow's own
    setting is as it was after (a save and restore per read would leave one thread's limit behind)."""
    from concurrent.futures import ThreadPoolExecutor

    paths = []
    for k in range(8):
        paths.append(tmp_path / f"p{k}.png")
        Image.new("RGB", (120, 100), (k, k, k)).save(paths[-1])  # 12,000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # set in Python: 12,000 is over twice it
    monkeypatch.setenv("MMTOK_MAX_IMAGE_PIXELS", "20000")
    with ThreadPoolExecutor(4) as pool:
        shapes = list(pool.map(lambda p: tuple(load_image(p).shape), paths * 25))
    assert shapes == [(3, 100, 120)] * 200 and Image.MAX_IMAGE_PIXELS == 1000
