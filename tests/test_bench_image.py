"""benchmarks/image.py: the usage-protocol crops, the k-means baseline and the manifest mode, on tiny inputs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from image_helpers import smooth_picture, tiny_config
from PIL import Image

import mmtok
from mmtok.core.metrics import psnr
from mmtok.image.tokenizer import ImageTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import image as bench
from image_baselines import KMeansPatches


def test_usage_boxes_stay_within_the_protocol() -> None:
    shapes = [(300, 500), (120, 90), (1000, 1000)]
    boxes = bench.usage_boxes(shapes, 300, generator=torch.Generator().manual_seed(0))
    fracs = []
    for i, top, left, side in boxes:
        h, w = shapes[i]
        assert math.ceil(0.35 * min(h, w)) <= side <= min(h, w)
        assert 0 <= top <= h - side and 0 <= left <= w - side
        fracs.append(side / min(h, w))
    assert min(fracs) < 0.45 and max(fracs) > 0.9  # the whole range is drawn
    assert {i for i, *_ in boxes} == {0, 1, 2}


def test_cut_crops_and_token_count() -> None:
    photos = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for h, w in [(300, 500), (120, 90)]]
    boxes = bench.usage_boxes([tuple(p.shape[-2:]) for p in photos], 5, generator=torch.Generator().manual_seed(1))
    crops = bench.cut_crops(photos, boxes, 256)
    assert crops.shape == (5, 3, 256, 256) and crops.dtype == torch.float32
    assert 0.0 <= float(crops.min()) and float(crops.max()) <= 1.0
    assert bench.crops_for_tokens(70_000, 256) == 274  # 274 * 256 = 70,144 tokens
    assert bench.crops_for_tokens(256, 256) == 1 and bench.crops_for_tokens(257, 256) == 2


def test_load_photos_reduces_only_large_ones(tmp_path: Path) -> None:
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    Image.new("RGB", (400, 300), (10, 20, 30)).save(big)
    Image.new("RGB", (50, 40), (10, 20, 30)).save(small)
    a, b = bench.load_photos([big, small], 150)
    assert a.shape == (3, 150, 200) and a.dtype == torch.uint8
    assert b.shape == (3, 40, 50)


def test_kmeans_patches_beat_the_mean_colour() -> None:
    pytest.importorskip("sklearn")
    x = torch.stack([smooth_picture(64, seed) for seed in range(4)])  # (4, 3, 64, 64)
    km = KMeansPatches(16, seed=0, patch=16).fit(KMeansPatches.patches(x, 16), 2)
    codes = km.encode(x)
    assert codes.shape == (4, 4, 4) and int(codes.max()) < 16
    rec = km.decode(codes)
    mean = x.mean((0, 2, 3), keepdim=True).expand_as(x)
    assert float(psnr(rec, x).mean()) > float(psnr(mean, x).mean()) + 3.0


def _picture(path: Path, seed: int, size: tuple[int, int] = (96, 80)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = torch.nn.functional.interpolate(smooth_picture(128, seed)[None], size=size[::-1], mode="bilinear")[0]
    Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(path)


def _tiny_tokenizer(folder: Path, trained_on: list[str], data: str = "/elsewhere/train") -> Path:
    torch.manual_seed(0)
    tok = ImageTokenizer(tiny_config()).eval()
    return mmtok.save(tok, folder, provenance={"data": {"folder": data, "files": trained_on}})


def _records(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


FAST = ["--skip-speed", "--threads", "1", "--usage-tokens", "160", "--kmeans-crops", "8", "--kmeans-crop", "64",
        "--kmeans-base-side", "64", "--kmeans-polish", "1"]


def test_manifest_mode_takes_the_split_and_reports_the_overlap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    splits = {"train": 3, "validation": 2, "test": 1}
    lines = []
    for split, n in splits.items():
        for i in range(n):
            rel = f"images/src/{split[:3]}_{i}.png"
            _picture(tmp_path / rel, seed=len(lines))
            lines.append(json.dumps({"path": rel, "source": "src", "group": f"g{len(lines)}", "split": split,
                                     "width": 96, "height": 80, "license": "CC0"}))
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    # trained on a copy of this corpus elsewhere: its val_0.png, and another folder's val_1.png (the same bare name
    # as this split's images/src/val_1.png, a different photo): only val_0 was seen
    model = _tiny_tokenizer(tmp_path / "tok", trained_on=["images/src/val_0.png", "images/src/tra_1.png",
                                                          "images/other/val_1.png"], data="/elsewhere/manifest.jsonl")

    argv = ["--manifest", str(manifest), "--split", "validation", "--model", str(model), *FAST]
    bench.main(argv)
    recs = _records(capsys)
    by = {(r["bench"], r.get("set")): r for r in recs}
    q = by["image_quality", "validation"]
    assert q["files"] == ["images/src/val_0.png", "images/src/val_1.png"] and q["n"] == 2 and q["tokens_per_image"] == 16
    assert {"psnr_ours_db", "ssim_ours", "psnr_kmeans-patches_db", "margin_kmeans-patches_db"} <= q.keys()
    assert by["image_quality", "validation_unseen"]["files"] == ["images/src/val_1.png"]
    assert by["image_overlap", "validation"]["files"] == ["images/src/val_0.png"]
    assert by["image_overlap", "validation"]["matched_by"] == "path relative to the manifest"
    u = by["image_usage", "validation"]
    assert u["crops"] == 10 and u["tokens"] == 160 and 0 < u["usage_ours"] <= 1
    bars = by["image_bars", "validation"]
    assert bars["encode_speedup"] is None and set(bars["met"]) >= {"psnr_ge_23db", "usage_ge_95pct"}
    assert not any(r["bench"] == "image_speed" for r in recs)
    pair = by["image_paired", "validation"]  # per photo, ours minus k-means: the margin, with its interval
    assert pair["minus"] == "kmeans-patches" and pair["items"] == 2 and pair["psnr_db"]["n"] == 2
    assert pair["psnr_db"]["mean"] == pytest.approx(q["margin_kmeans-patches_db"], abs=2e-3)
    assert pair["psnr_db"]["ci95"][0] <= pair["psnr_db"]["mean"] <= pair["psnr_db"]["ci95"][1]

    cached = list(tmp_path.glob("kmeans-K64-*.pt"))
    assert len(cached) == 1  # beside the manifest
    bench.main(argv)  # second run: the same fit, read back
    again = {(r["bench"], r.get("set")): r for r in _records(capsys)}
    assert again["image_quality", "validation"]["kmeans_fit_s"] == q["kmeans_fit_s"]
    assert again["image_quality", "validation"]["psnr_kmeans-patches_db"] == q["psnr_kmeans-patches_db"]
    assert list(tmp_path.glob("kmeans-K64-*.pt")) == cached

    bench.main([*argv[:3], "train", *argv[4:]])  # the photos both codebooks were fitted on, with the same fit
    train = {(r["bench"], r.get("set")): r for r in _records(capsys)}
    assert train["image_quality", "train"]["files"] == [f"images/src/tra_{i}.png" for i in range(3)]
    assert train["image_quality", "train"]["kmeans_fit_s"] == q["kmeans_fit_s"]
    assert list(tmp_path.glob("kmeans-K64-*.pt")) == cached


def test_folder_mode_still_works(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    for i in range(2):
        _picture(tmp_path / "train" / f"t{i}.png", seed=i)
    _picture(tmp_path / "heldout" / "h0.png", seed=9)
    model = _tiny_tokenizer(tmp_path / "tok", trained_on=["h0.png"], data=str(tmp_path / "heldout"))  # all seen
    _tiny_tokenizer(tmp_path / "run" / "model", trained_on=[])  # a training run's --out folder
    bench.main(["--data", str(tmp_path), "--model", str(model), "--vqvae", str(tmp_path / "run"), *FAST])
    recs = _records(capsys)
    q = next(r for r in recs if r["bench"] == "image_quality")
    assert q["set"] == "heldout" and q["files"] == ["heldout/h0.png"]
    assert {"psnr_vqvae_db", "ssim_vqvae", "margin_vqvae_db"} <= q.keys()
    assert "usage_vqvae" in next(r for r in recs if r["bench"] == "image_usage")
    assert not any(r.get("set") == "heldout_unseen" for r in recs)
    overlap = next(r for r in recs if r["bench"] == "image_overlap" and r["model"] == str(model))
    assert overlap["files"] == ["heldout/h0.png"] and overlap["matched_by"].startswith("the same file on disk")


class _Prov:
    def __init__(self, folder: str, files: list[str]) -> None:
        self.provenance = {"data": {"folder": folder, "files": files}}


def test_trained_on_never_matches_bare_file_names(tmp_path: Path) -> None:
    manifest = tmp_path / "corpus" / "manifest.jsonl"
    files = [tmp_path / "corpus" / "images" / a / "horse.webp" for a in ("farm", "zoo")]
    files.append(tmp_path / "corpus" / "images" / "walls" / "1280x1024.jpg")
    moved = _Prov("/old/place/manifest.jsonl", ["images/zoo/horse.webp", "images/other/1280x1024.jpg"])
    seen, how = bench.trained_on(moved, files, manifest)
    assert seen == [files[1]] and how == "path relative to the manifest"  # the moved corpus matches; names alone don't
    by_name = _Prov("/elsewhere/train", ["horse.webp", "1280x1024.jpg"])  # a folder elsewhere: no such files here
    assert bench.trained_on(by_name, files, manifest)[0] == []
    here = _Prov(str(tmp_path / "corpus" / "images"), ["farm/horse.webp"])  # a folder holding these very files
    assert bench.trained_on(here, files, manifest)[0] == [files[0]]
    assert bench.trained_on(here, files, None)[0] == [files[0]]
    assert bench.trained_on(_Prov("", ["horse.webp"]), files, None)[0] == []
    assert bench.trained_on(object(), files, manifest)[0] == []
