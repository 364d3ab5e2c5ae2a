"""Image inputs read alike everywhere: one list of image file suffixes (PPM/PGM found by the trainer
too); a tokenizer cast to float64 or bf16 encodes, and decodes to float32; the trainer's corpus
refuses what ``encode`` refuses and keeps an extremely elongated image as the square ``encode``
reads, while ordinary photos load exactly as before.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from image_helpers import fitted_tiny_tokenizer, smooth_picture
from PIL import Image

from mmtok.core import suffixes
from mmtok.core.errors import ImageError
from mmtok.core.suffixes import IMAGE_SUFFIXES
from mmtok.image import crops
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.crops import find_images, load_corpus
from mmtok.image.io import load_image, load_sized
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.stream import normalize

PACKAGE = Path(__file__).resolve().parents[1] / "mmtok"


def save(path: Path, h: int, w: int, *, seed: int = 0) -> Path:
    """An 8-bit RGB picture of ``h×w`` (a gradient with a little noise) saved as ``path``."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, w, dtype=np.float32)[None, :, None]
    pixels = (ramp + rng.integers(0, 56, (h, w, 3), dtype=np.uint8)).astype(np.uint8)
    Image.fromarray(pixels).save(path, **({"compress_level": 1} if path.suffix == ".png" else {}))
    return path


# --------------------------------------------------------------------------- 1. one list of image suffixes


def test_the_trainer_finds_ppm_and_pgm_images(tmp_path: Path) -> None:
    for name in ("a.png", "b.ppm", "c.PGM"):
        save(tmp_path / name, 20, 24)
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in find_images(tmp_path)] == ["a.png", "b.ppm", "c.PGM"]
    rows = [{"path": n, "split": "train"} for n in ("a.png", "b.ppm", "c.PGM")]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [p.name for p in find_images(tmp_path / "manifest.jsonl")] == ["a.png", "b.ppm", "c.PGM"]
    corpus = load_corpus(find_images(tmp_path), 32)
    assert [tuple(x.shape) for x in corpus] == [(3, 32, 38)] * 3


def test_one_list_of_image_suffixes() -> None:
    assert {".ppm", ".pgm", ".png", ".jpg", ".webp"} <= IMAGE_SUFFIXES
    assert crops.IMAGE_SUFFIXES is suffixes.IMAGE_SUFFIXES and normalize.IMAGE_SUFFIXES is suffixes.IMAGE_SUFFIXES
    for listed in ('".jpeg"', '".flac"', '".mkv"'):  # one list per kind, in core.suffixes
        holders = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                         if listed in p.read_text(encoding="utf-8"))
        assert holders == ["core/suffixes.py"], (listed, holders)


# --------------------------------------------------------------------------- 2. a cast model


def test_a_cast_model_encodes_and_decodes_to_float32() -> None:
    tok = fitted_tiny_tokenizer()
    img = smooth_picture(64)
    casts = {dtype: copy.deepcopy(tok).to(dtype) for dtype in (torch.float64, torch.bfloat16)}
    codes = tok.encode(img)
    assert torch.equal(codes, tok.vq.encode(tok.latents(img[None]))[0])  # float32: the input as it was
    wide = tok.decode(codes)
    for dtype, cast in casts.items():
        got = cast.encode(img)
        assert cast.dtype == dtype
        assert got.dtype == torch.int64 and got.shape == codes.shape
        assert float((got == codes).float().mean()) > 0.8
        out = cast.decode(codes)
        assert out.dtype == torch.float32 and out.shape == (3, 64, 64)
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
        assert float((out - wide).abs().mean()) < 0.05
    assert casts[torch.float64].encode([img, img]).shape == (2, 4, 4)


# --------------------------------------------------------------------------- 3. the trainer's corpus


def test_the_corpus_refuses_what_encode_refuses(tmp_path: Path) -> None:
    tok = ImageTokenizer(ImageTokenizerConfig()).eval()
    for h, w in ((1, 1), (4, 4000), (15, 40)):
        f = save(tmp_path / f"{h}x{w}.png", h, w)
        with pytest.raises(ImageError) as refused:
            tok.encode(f)
        with pytest.raises(ImageError) as trained:
            load_corpus([f], 320)
        assert str(trained.value) == str(refused.value)
        assert str(f) in str(trained.value) and "smaller than one 16×16 patch" in str(trained.value)
    f = save(tmp_path / "8x40.png", 8, 40)
    assert load_corpus([f], 16, patch=8)[0].shape == (3, 16, 80)  # another tokenizer's patch


@pytest.mark.parametrize(("h", "w"), [(16, 4000), (20, 9000), (3000, 150)])
def test_an_elongated_image_is_kept_as_the_square_encode_reads(tmp_path: Path, h: int, w: int) -> None:
    f = save(tmp_path / "strip.png", h, w)
    got = load_corpus([f], 320)[0]
    want = (load_sized(f, policy="crop", image_size=320, multiple=16)[0] * 255).round().to(torch.uint8)
    assert got.shape == (3, 320, 320) and torch.equal(got, want)


def old_load(f: Path, base_side: int, max_zoom: float) -> torch.Tensor:
    """The corpus loader as it was, for ordinary images."""
    img = load_image(f)[None]
    short = min(img.shape[-2:])
    s = base_side * min(max_zoom, max(1.0, short / base_side)) / short
    h, w = round(img.shape[-2] * s), round(img.shape[-1] * s)
    img = F.interpolate(img, size=(h, w), mode="bicubic", antialias=True).clamp(0, 1)
    return (img[0] * 255).round().to(torch.uint8)


@pytest.mark.parametrize(("h", "w", "zoom", "kind"), [(600, 800, 1.0, "png"), (1000, 1500, 2.0, "jpg"),
                                                      (600, 3840, 1.0, "bmp"), (500, 4400, 1.0, "bmp"),
                                                      (320, 480, 1.0, "png")])
def test_ordinary_images_load_as_before(tmp_path: Path, h: int, w: int, zoom: float, kind: str) -> None:
    f = save(tmp_path / f"photo.{kind}", h, w, seed=h)
    assert torch.equal(load_corpus([f], 320, max_zoom=zoom)[0], old_load(f, 320, zoom))
