"""``mmtok train-tokenizer image`` on a folder of one's own photos: unreadable files refused together, the
tokenizer a fine-tune started from recorded (and one of another shape refused by field), running means carried
through a resume, and a reconstruction grid of different photos."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from image_helpers import smooth_picture, tiny_config
from PIL import Image
from safetensors.torch import load_file

import mmtok
from mmtok.core.errors import ImageError
from mmtok.core.metrics import psnr
from mmtok.image import train as image_train
from mmtok.image.crops import load_corpus
from mmtok.image.init import check_init_source
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.image.train_pictures import GRID_CROPS, grid_crops
from tests.test_image_train_cli import interrupted_after_save

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny runs: one thread is steadier


def _photos(folder: Path, n: int = 3) -> Path:
    """``n`` generated 80x80 pictures in ``folder``."""
    folder.mkdir(exist_ok=True)
    for i in range(n):
        pixels = (smooth_picture(80, seed=i).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


def _args(tmp_path: Path, out: str, *extra: str) -> list[str]:
    """A tiny run (K = 16, 32-pixel crops) on :func:`_photos` into ``tmp_path/out``."""
    tmp_path.mkdir(exist_ok=True)
    cfg = {k: v for k, v in asdict(tiny_config()).items() if k != "vq"}
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "vq": {"codebook_size": 16}}))
    return ["--data", str(_photos(tmp_path / "data")), "--out", str(tmp_path / out), "--config",
            str(tmp_path / "cfg.json"), "--batch-size", "2", "--crop", "32", "--base-side", "64",
            "--init-crops", "16", "--warmup", "1", "--threads", "1", "--no-progress", *extra]


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_every_unreadable_photo_is_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder with a truncated JPEG and a text file named .jpg: both are named in one refusal, with what to
    do, before anything is written (before, the first stopped the run and the next came up only on the rerun)."""
    data = _photos(tmp_path / "data", 2)
    good = data / "0.png"
    jpeg = data / "x.jpg"
    Image.open(good).save(jpeg)
    (data / "cut.jpg").write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    (data / "notes.jpg").write_text("not a photo\n")
    jpeg.unlink()
    files = sorted(data.iterdir())
    with pytest.raises(ImageError) as e:
        load_corpus(files, 64)
    msg = str(e.value)
    assert msg.startswith("2 of the 4 images cannot be read")
    assert "cut.jpg" in msg and "corrupt or truncated" in msg and "notes.jpg" in msg and "remove or replace" in msg
    args = _args(tmp_path / "other", "run", "--steps", "1")
    with pytest.raises(ImageError, match="2 of the 4 images cannot be read"):
        image_train.main(["--data", str(data), *args[2:]])
    assert not (tmp_path / "other" / "run").exists()


def test_one_unreadable_photo_keeps_encodes_error(tmp_path: Path) -> None:
    data = _photos(tmp_path / "data", 1)
    (data / "notes.jpg").write_text("not a photo\n")
    with pytest.raises(ImageError) as e:
        load_corpus(sorted(data.iterdir()), 64)
    assert str(e.value) == f"image file {str(data / 'notes.jpg')!r} is not an image Pillow can read"


def test_a_fine_tune_records_the_tokenizer_it_started_from(tmp_path: Path) -> None:
    """--init-from: the model's provenance and card name the source (absolute path), its version and its
    fingerprint, and a resume keeps it (before, only the command line said so, as typed: 'image' cannot tell
    v2 from v3)."""
    assert image_train.main(_args(tmp_path, "base", "--steps", "2")) == 0
    base = mmtok.load(tmp_path / "base" / "model")
    ft = _args(tmp_path, "ft", "--steps", "2", "--init-from", str(tmp_path / "base"))
    assert image_train.main(ft) == 0
    want = f"{(tmp_path / 'base' / 'model').resolve()}, fingerprint {base.fingerprint}"
    assert mmtok.load(tmp_path / "ft" / "model").provenance["init_from"] == want
    assert f"starting from {want}." in (tmp_path / "ft" / "model" / "README.md").read_text()
    assert image_train.main([*ft[:-2], "--steps", "3", "--resume"]) == 0  # --init-from left out on resume
    assert mmtok.load(tmp_path / "ft" / "model").provenance["init_from"] == want
    assert "init_from" not in base.provenance  # a run from the data records none


def test_a_resumed_run_reports_the_running_means_of_an_unbroken_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after its step-2 save and resumed, a run ends with the weights and the summary's running means
    (what `mmtok info` gives as last_loss) of the same run unbroken (before, the means restarted at the resume
    and differed)."""
    assert image_train.main(_args(tmp_path, "whole", "--steps", "4", "--save-every", "2")) == 0
    args = _args(tmp_path, "broken", "--steps", "4", "--save-every", "2")
    interrupted_after_save(monkeypatch, args, step=2)
    assert image_train.main([*args, "--resume"]) == 0
    whole, broken = (mmtok.load(tmp_path / r / "model") for r in ("whole", "broken"))
    assert whole.fingerprint == broken.fingerprint
    assert _summary(tmp_path / "broken")["running_means"] == _summary(tmp_path / "whole")["running_means"]


def test_the_reconstruction_grid_shows_different_pictures() -> None:
    """Six crops of eight pictures of one flat colour each: six colours (before, crops were drawn with
    replacement and the grid showed the same picture twice); of fewer pictures, each in turn."""
    corpus = [torch.full((3, 64, 64), 30 * i, dtype=torch.uint8) for i in range(8)]
    shown = grid_crops(corpus, 32, 64)
    assert shown.shape == (GRID_CROPS, 3, 32, 32)
    assert len({round(float(c.mean()) * 255) for c in shown}) == GRID_CROPS
    shown = grid_crops(corpus[:4], 32, 64)
    assert len({round(float(c.mean()) * 255) for c in shown}) == 4
    assert torch.equal(grid_crops(corpus, 32, 64), grid_crops(corpus, 32, 64))  # fixed: the same at every save


def test_the_reconstruction_grid_shows_the_photos_not_the_synthetic_pictures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --synthetic N the grid is cut from the photos alone (before, dead-leaves pictures took places in
    it); the crops it shows are those of the photos' run without them."""
    seen: list[int] = []
    real = image_train.grid_crops

    def counting(corpus, *a):
        seen.append(len(corpus))
        return real(corpus, *a)

    monkeypatch.setattr(image_train, "grid_crops", counting)
    assert image_train.main(_args(tmp_path, "run", "--steps", "1", "--synthetic", "2")) == 0
    assert seen == [3]


def test_an_init_from_of_another_shape_names_the_fields_and_the_fix() -> None:
    """A --config whose widths or latent size differ from the --init-from tokenizer's is refused naming each
    field with both values and what to do (before: only 'its encoder has another shape')."""
    src = ImageTokenizer(tiny_config())
    narrow = ImageTokenizer(tiny_config(enc_channels=(4, 8, 16)))
    with pytest.raises(ImageError) as e:
        check_init_source(narrow, src, "base")
    msg = str(e.value)
    assert "enc_channels [4, 8, 16] (its: [8, 16, 32])" in msg and "leave enc_channels out of --config" in msg
    shallow = ImageTokenizer(tiny_config(dec_blocks=1))
    with pytest.raises(ImageError, match=r"dec_blocks 1 \(its: 2\); it may only grow by dec_blocks: give "
                                         r"dec_blocks at least 2, or leave out --init-from"):
        check_init_source(shallow, ImageTokenizer(tiny_config(dec_blocks=2)), "base")


def test_a_thumbnail_enlarged_for_training_is_warned_about(tmp_path: Path) -> None:
    """A 40x30 picture among 80-px photos is enlarged 5.3x to a 160-px shorter side: one warning names it and
    how much (before, its blurred crops went into training unsaid); the photos, enlarged 2x, give none."""
    data = _photos(tmp_path / "data", 2)
    Image.fromarray(np.full((30, 40, 3), 120, np.uint8)).save(data / "thumb.jpg")
    with pytest.warns(UserWarning, match=r"1 of the 3 images is enlarged more than 2× to a shorter side of 160 px"
                                         r".*thumb\.jpg', 40×30 px, 5\.3×\)") as got:
        load_corpus(sorted(data.iterdir()), 160)
    assert len(got) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_corpus(sorted(data.glob("*.png")), 160)


def test_with_ema_decay_the_grid_shows_the_exported_average(tmp_path: Path) -> None:
    """--ema-decay exports the weight average as OUT/model: reconstructions.png and the summary's
    recon_grid_psnr are now of those weights (before, of the live ones, which nobody loads)."""
    args = _args(tmp_path, "run", "--steps", "12", "--save-every", "12", "--lr", "3e-3", "--ema-decay", "0.9")
    assert image_train.main(args) == 0
    run = tmp_path / "run"
    show = grid_crops(load_corpus(sorted((tmp_path / "data").glob("*.png")), 64), 64, 64)
    tok = mmtok.load(run / "model")

    def grid_psnr() -> float:
        with torch.inference_mode():
            return float(psnr(tok.decode(tok.encode(show)), show).mean())

    exported = grid_psnr()
    tok.load_state_dict(load_file(run / "train-state" / "model.safetensors"))  # the live weights
    assert abs(grid_psnr() - exported) > 0.01
    assert _summary(run)["recon_grid_psnr"] == round(exported, 3)
    pixels = np.asarray(Image.open(run / "reconstructions.png").convert("RGB"))[64:]  # the bottom row
    with torch.inference_mode():
        want = torch.cat(list(mmtok.load(run / "model").decode(mmtok.load(run / "model").encode(show))), -1)
    assert np.array_equal(pixels, (want.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
