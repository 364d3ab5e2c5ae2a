"""Image tokenizer benchmark: quality and codebook usage on unseen photos against fair baselines, encode speed against VQGAN.

Prints one JSON object per line (``benchmarks/common.py``), every comparison
measured side by side in this run, on the photos of one split of a corpus
manifest (``--manifest M --split validation``; the test split is for the final
figure only; ``--split train`` shows how far the photos both codebooks were
fitted on sit above held-out ones) or on ``FOLDER/heldout`` (``--data FOLDER``, the older layout with
``train/`` and ``heldout/``):

- ``image_quality``: mean PSNR and SSIM of ``decode(encode(x))`` against
  ``preprocess(x)`` over the split's whole photos (the default size policy),
  for each tokenizer, the k-means patch codebook and, with ``--vqvae``, a plain
  VQ-VAE; margins are ours minus theirs.
- ``image_paired``: per photo, ``model`` minus ``minus`` (each baseline, each later model):
  mean PSNR and SSIM differences with 95 % bootstrap intervals and wins (``mmtok.core.metrics.paired_difference``).
- ``image_usage``: distinct codes over ``min(K, tokens)`` and perplexity, on
  about ``--usage-tokens`` tokens of random crops of the split's photos: a
  square of side ``U(0.35, 1.0) * min(H, W)`` at a random position, resized to
  the tokenizer's size (antialiased): 274 crops of 256 tokens for 70,000.
- ``image_speed``: encode and decode images/s at batch 1 and 8, timed in
  alternation with the taming VQGAN f16 *encoder and quantizer* (diffusers
  ``VQModel``, ``--vqgan-codes`` 16384 or 1024 entries, random weights: speed
  does not depend on them), and each decoder, on its own codes of the same
  crops, in alternation with VQGAN's code lookup and decoder; with each model's
  PSNR and SSIM on the split beside. Speeds and ratios are of the medians of ``--speed-repeats``
  calls (``ratio_of``; each side's min, median and n in ``timings``). Without ``diffusers`` (``pip install mmtok[bench]``)
  a ``{"bench": "image_speed", "peer": "diffusers", "skipped": ...}`` row, and only the
  tokenizers and k-means are timed (the VQGAN fields None).
- ``image_bars``: the issue's bars (PSNR >= 23 dB, >= 2 dB over k-means,
  SSIM >= 0.65, usage >= 95 %, encode >= 50x VQGAN f16) and whether they are met.
- ``image_overlap``: photos of the split a compared model was trained on (its
  checkpoint's provenance); when there are any, every figure is also given without
  them (``set`` suffixed ``_unseen``). A photo counts as seen when the provenance
  names the same file: the same path relative to the manifest's folder when both the
  model and this run read a manifest (so a moved or copied corpus still matches),
  else the same file on disk; never by bare file name (``matched_by`` says which).

The k-means baseline (same K, one code per ``downsample``-sided patch of raw
RGB) is fitted on training crops cut exactly as ``mmtok train-tokenizer image``
cuts them from the manifest's train split (``FOLDER/train`` with ``--data``):
give it the options the compared model was trained with (``--kmeans-zoom-max``,
``--kmeans-zoom-prob``, ``--kmeans-rotate``, ``--kmeans-synthetic``, ...). The
fit is cached beside the manifest, keyed by everything it depends on.

    python benchmarks/image.py --manifest /work/data/corpus/image/manifest.jsonl --split validation \\
        --model image [CANDIDATE ...] [--vqvae RUN] [--skip-speed] [--threads 1]
    python benchmarks/image.py --data /work/data/image --model image

Several ``--model`` values (same K and image size) are measured on the same
photos and crops against the same baselines.

The plain VQ-VAE baseline (``--vqvae RUN``: the trainer's ``--out`` folder, or
its ``model/`` folder) has the compared model's encoder and decoder, losses
L1 + MSE + commitment only (no image-gradient loss, no SSIM loss), an EMA
codebook without dead-code restarts or rebalancing, and as many steps on the
same data options. With the existing trainer::

    python -c "import json; c = json.load(open('models/image/config.json'))['config']; \\
        c['grad_weight'] = 0.0; c['vq'].update(dead_code_threshold=0.0, dead_code_rate=0.0); \\
        json.dump(c, open('plain-vqvae.json', 'w'))"
    mmtok train-tokenizer image --data /work/data/corpus/image/manifest.jsonl --split train \\
        --config plain-vqvae.json --dead-code-rate 0 --ssim-weight 0 --steps STEPS \\
        --out /work/data/image-runs/plain-vqvae [--zoom-max Z --rotate --synthetic N --seed S as ours]

(``STEPS``: the compared model's total steps; no ``--rebalance-at``, no
``--init-from``. The trainer always starts the linear patch paths from PCA and
the codebook from k-means of encoder outputs, for both models.)
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from common import (
    RATIO_OF,
    Timing,
    check_peer,
    emit,
    positives,
    ratio,
    run_script,
    share,
    time_sides,
)
from image_baselines import (
    KMeansPatches,
    fit_kmeans_cached,
    vqgan_detokenize,
    vqgan_f16,
    vqgan_tokenize,
)

import mmtok
from mmtok.core.errors import MmtokError, UsageError
from mmtok.core.metrics import codebook_usage, paired_difference, psnr, ssim, usage_over
from mmtok.core.module_io import training_files
from mmtok.image.crops import find_images, load_corpus, train_crops
from mmtok.image.io import load_image
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.synth.dead_leaves import training_pictures

USAGE_SCALE = (0.35, 1.0)  # usage-protocol crop side, as a fraction of the photo's shorter side
USAGE_TOKENS = 70_000  # about this many tokens of usage-protocol crops
EVAL_BATCH = 16  # images per encode/decode call in the quality and usage passes
SPEED_BATCHES = (1, 8)
BARS = {"psnr_db": 23.0, "margin_db": 2.0, "ssim": 0.65, "usage": 0.95, "speedup": 50.0}  # the bars
KMEANS = "kmeans-patches"  # names of the baselines in the records
VQVAE = "vqvae"

Codec = tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]  # encode, decode


# --------------------------------------------------------------------------- the usage protocol


def crops_for_tokens(tokens: int, tokens_per_image: int) -> int:
    """Crops that give at least ``tokens`` tokens: ``crops_for_tokens(70_000, 256) == 274``."""
    return math.ceil(tokens / tokens_per_image)


def usage_boxes(shapes: Sequence[tuple[int, int]], n: int, *, scale: tuple[float, float] = USAGE_SCALE,
                generator: torch.Generator | None = None) -> list[tuple[int, int, int, int]]:
    """``n`` random crops ``(photo, top, left, side)`` of photos of ``shapes`` ``(H, W)``.

    Each picks a photo, a side ``U(scale) * min(H, W)`` (whole pixels, within the
    range) and a position where the square fits.
    """
    which = torch.randint(0, len(shapes), (n,), generator=generator).tolist()
    u = torch.rand(n, 3, generator=generator).tolist()
    boxes = []
    for i, (a, b, c) in zip(which, u, strict=True):
        h, w = shapes[i]
        short = min(h, w)
        side = min(math.floor(scale[1] * short), max(math.ceil(scale[0] * short),
                                                     round(short * (scale[0] + a * (scale[1] - scale[0])))))
        boxes.append((i, int(b * (h - side + 1)), int(c * (w - side + 1)), side))
    return boxes


def cut_crops(photos: Sequence[torch.Tensor], boxes: Sequence[tuple[int, int, int, int]], size: int) -> torch.Tensor:
    """The ``boxes`` of uint8 ``photos`` ``[3, H, W]``, each resized to ``size`` (antialiased) -> ``[n, 3, size, size]``."""
    out = torch.empty(len(boxes), 3, size, size)
    for j, (i, top, left, side) in enumerate(boxes):
        crop = photos[i][None, :, top : top + side, left : left + side].float() / 255.0  # (1, 3, side, side)
        out[j] = F.interpolate(crop, size=(size, size), mode="bicubic", antialias=True)[0] if side != size else crop[0]
    return out.clamp_(0.0, 1.0)


def load_photos(files: Sequence[Path], max_short: int) -> list[torch.Tensor]:
    """Each file as uint8 ``[3, H, W]``, reduced (antialiased) so its shorter side is at most ``max_short``.

    Crop sides are fractions of the shorter side, so the crops are those of the
    full photo as long as every crop is still reduced to the output size.
    """
    out = []
    for f in files:
        img = load_image(f)[None]  # (1, 3, H, W)
        short = min(img.shape[-2:])
        if short > max_short:
            s = max_short / short
            img = F.interpolate(img, size=(round(img.shape[-2] * s), round(img.shape[-1] * s)), mode="bicubic",
                                antialias=True)
        out.append((img[0].clamp(0, 1) * 255).round().to(torch.uint8))
    return out


# --------------------------------------------------------------------------- measurements


def roundtrip(codec: Codec, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes ``[n, h, w]`` and reconstructions ``[n, 3, H, W]`` of ``x``, ``EVAL_BATCH`` at a time."""
    enc, dec = codec
    codes = torch.cat([enc(b) for b in x.split(EVAL_BATCH)])
    return codes, torch.cat([dec(c) for c in codes.split(EVAL_BATCH)])


def usage(codes: torch.Tensor, k: int) -> tuple[float, float, int]:
    """(distinct codes over ``min(k, tokens)``, perplexity, distinct codes) of a batch of codes."""
    counts = torch.bincount(codes.flatten(), minlength=k)
    share, distinct, _ = usage_over(counts)
    return share, codebook_usage(counts)[1], distinct


def time_alternating(fns: dict[str, Callable[[torch.Tensor], Any]], x: torch.Tensor,
                     repeats: int) -> dict[str, Timing]:
    """Each function's :class:`common.Timing` of ``repeats`` calls on ``x``, the functions called in
    alternation (:func:`common.time_sides`: same load for all), under ``torch.inference_mode``."""
    with torch.inference_mode():
        return time_sides({name: lambda fn=fn: fn(x) for name, fn in fns.items()}, repeats=repeats)


def trained_on(tok: Any, files: Sequence[Path], manifest: Path | None) -> tuple[list[Path], str]:
    """The ``files`` a checkpoint's provenance says it was trained on, and how they were matched.

    The trainer records its files relative to its ``--data`` folder, or to the manifest's folder when
    ``--data`` was a manifest. Both manifests: by path relative to the manifest's folder (a moved or
    copied corpus still matches, a photo of the same name elsewhere in the corpus does not); otherwise:
    by the file on disk the provenance names. Never by bare file name.
    """
    recorded = training_files(tok)
    if manifest is not None and recorded.from_manifest:
        seen = {Path(n).as_posix() for n in recorded.names}
        return [f for f in files if f.relative_to(manifest.parent).as_posix() in seen], "path relative to the manifest"
    on_disk = recorded.on_disk()
    return [f for f in files if f.resolve() in on_disk], f"the same file on disk (names relative to {recorded.root})"


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", type=Path, help="corpus manifest.jsonl: evaluate on --split, fit k-means on train")
    src.add_argument("--data", type=Path, help="older layout: a folder with train/ and heldout/ "
                     "(benchmarks/image_data.py --out DIR builds one)")
    ap.add_argument("--split", default="validation", choices=("validation", "test", "train"),
                    help="with --manifest (train: how far the photos the model and k-means were fitted on sit above "
                         "held-out ones; never for choices)")
    ap.add_argument("--model", nargs="+", default=["image"], help="shipped name(s) or checkpoint folder(s)")
    ap.add_argument("--vqvae", type=Path, default=None, metavar="RUN",
                    help="also evaluate a plain VQ-VAE checkpoint (a training --out folder or its model/)")
    ap.add_argument("--usage-tokens", type=int, default=USAGE_TOKENS, help="tokens of usage-protocol crops")
    ap.add_argument("--kmeans-crops", type=int, default=1200, help="training crops the k-means baseline sees")
    ap.add_argument("--kmeans-polish", type=int, default=10, help="full Lloyd iterations after mini-batch k-means")
    km = ap.add_argument_group("k-means training crops, as `mmtok train-tokenizer image` cuts them")
    km.add_argument("--kmeans-crop", type=int, default=128, help="like --crop")
    km.add_argument("--kmeans-base-side", type=int, default=320, help="like --base-side")
    km.add_argument("--kmeans-scale-min", type=float, default=0.8, help="like --scale-min")
    km.add_argument("--kmeans-scale-max", type=float, default=2.0, help="like --scale-max")
    km.add_argument("--kmeans-zoom-max", type=float, default=1.0, help="like --zoom-max")
    km.add_argument("--kmeans-zoom-prob", type=float, default=0.5, help="like --zoom-prob")
    km.add_argument("--kmeans-rotate", action="store_true", help="like --rotate")
    km.add_argument("--kmeans-synthetic", type=int, default=0, metavar="N", help="like --synthetic")
    ap.add_argument("--vqgan-codes", type=int, default=16384, choices=(16384, 1024), help="VQGAN f16 codebook size")
    ap.add_argument("--speed-repeats", type=int, default=3, help="timed calls per measurement (median kept)")
    ap.add_argument("--threads", type=int, default=None, help="torch (and k-means) threads")
    ap.add_argument("--fit-kmeans-only", action="store_true", help="fit (and cache) the k-means baseline, then stop")
    ap.add_argument("--skip-speed", action="store_true", help="quality and usage only")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def check_args(args: argparse.Namespace) -> None:
    """Every count, ``--threads`` and the k-means crop options (as ``mmtok train-tokenizer image`` takes them)
    refused in one line naming the flag, before any work."""
    positives(args, "--usage-tokens", "--kmeans-crops", "--kmeans-crop", "--kmeans-base-side", "--speed-repeats",
              "--threads")
    for flag, value in (("--kmeans-polish", args.kmeans_polish), ("--kmeans-synthetic", args.kmeans_synthetic)):
        if value < 0:
            raise UsageError(f"{flag} {value}: give 0 or more")
    if not (0 < args.kmeans_scale_min <= args.kmeans_scale_max and math.isfinite(args.kmeans_scale_max)):
        raise UsageError(f"--kmeans-scale-min and --kmeans-scale-max need 0 < MIN <= MAX, finite (got "
                         f"{args.kmeans_scale_min:g}, {args.kmeans_scale_max:g})")
    if not 1 <= args.kmeans_zoom_max < math.inf:
        raise UsageError(f"--kmeans-zoom-max {args.kmeans_zoom_max:g}: give 1 or more (1: no zoom)")
    share("--kmeans-zoom-prob", args.kmeans_zoom_prob)


def select_files(args: argparse.Namespace) -> tuple[str, list[Path], list[Path], Path]:
    """(set name, evaluation photos, k-means training photos, folder the files are named relative to); a manifest
    or folder that is refused (unreadable, a build of its corpus not finished, ...) stops the run in one line."""
    try:
        if args.manifest is not None:
            m = args.manifest
            if not m.is_file():
                raise SystemExit(f"--manifest {m}: no such file (benchmarks/fetch_corpus.py image --out DIR writes one)")
            return args.split, find_images(m, split=args.split), find_images(m, split="train"), m.parent
        if not args.data.is_dir():
            made = "not a folder" if args.data.exists() else "no such folder"
            raise SystemExit(f"--data {args.data}: {made} (benchmarks/image_data.py --out DIR fills one with train/ and "
                             "heldout/; or give --manifest M.jsonl)")
        return "heldout", find_images(args.data / "heldout"), find_images(args.data / "train"), args.data
    except MmtokError as e:
        raise SystemExit(str(e)) from None


def kmeans_baseline(args: argparse.Namespace, fit_files: list[Path], cache: Path, k: int,
                    patch: int) -> tuple[KMeansPatches, float, int]:
    """The k-means patch codebook fitted on training crops cut like the trainer's (cached); refused in one
    line when ``--kmeans-crops`` gives fewer patches than K."""
    per_crop = (args.kmeans_crop // patch) ** 2
    if args.kmeans_crops * per_crop < k:
        raise SystemExit(f"k-means at K = {k} needs at least {k} patches; --kmeans-crops {args.kmeans_crops} gives "
                         f"{args.kmeans_crops * per_crop} ({per_crop} per {args.kmeans_crop}-px crop): give "
                         f"--kmeans-crops {math.ceil(k / max(per_crop, 1))} or more")
    crops = argparse.Namespace(crop=args.kmeans_crop, base_side=args.kmeans_base_side,
                               scale_min=args.kmeans_scale_min, scale_max=args.kmeans_scale_max,
                               zoom_max=args.kmeans_zoom_max, zoom_prob=args.kmeans_zoom_prob,
                               rotate=args.kmeans_rotate)
    key = {"k": k, "seed": args.seed, "patch": patch, "polish": args.kmeans_polish, "n_crops": args.kmeans_crops,
           "synthetic": args.kmeans_synthetic, **vars(crops),
           "files": [(str(f.relative_to(cache)), f.stat().st_size) for f in fit_files]}

    def patches() -> torch.Tensor:
        corpus = load_corpus(fit_files, args.kmeans_base_side, max_zoom=args.kmeans_zoom_max)
        if args.kmeans_synthetic:
            corpus += training_pictures(corpus, args.kmeans_synthetic, 2 * args.kmeans_base_side, seed=args.seed)
        x = train_crops(corpus, args.kmeans_crops, crops, generator=torch.Generator().manual_seed(args.seed))
        return KMeansPatches.patches(x, patch)

    return fit_kmeans_cached(key, cache, patches, threads=args.threads)


def load_tokenizer(name: str | Path, flag: str = "--model") -> ImageTokenizer:
    path = Path(name)
    if (path / "model" / "config.json").is_file():  # a training run's --out folder
        path = path / "model"
    tok = mmtok.load(path if path.exists() else str(name))
    if not isinstance(tok, ImageTokenizer):
        raise SystemExit(f"{flag} {name}: not an image tokenizer ({type(tok).__name__}); give an image "
                         "tokenizer: a shipped name (image) or a checkpoint folder")
    return tok


def eval_sets(set_name: str, files: list[Path], models: dict[str, Any], manifest: Path | None,
              root: Path) -> dict[str, list[Path]]:
    """The split's photos, and (when a compared model was trained on some) those none of them saw."""
    seen: set[Path] = set()
    for name, t in models.items():
        overlap, how = trained_on(t, files, manifest)
        seen |= set(overlap)
        if getattr(t, "provenance", None):
            emit(bench="image_overlap", model=name, set=set_name, n=len(files), overlap=len(overlap),
                 files=[str(p.relative_to(root)) for p in overlap], matched_by=how)
    unseen = [p for p in files if p not in seen]
    return {set_name: files, **({f"{set_name}_unseen": unseen} if seen and unseen else {})}


def measure_set(codecs: dict[str, Codec], full: torch.Tensor, crops: torch.Tensor, k: int,
                per_photo: dict[str, list[dict[str, float]]] | None = None,
                ) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float, int]]]:
    """Per codec: (PSNR, SSIM) of the whole photos ``full`` and (usage, perplexity, distinct) over ``crops``;
    ``per_photo`` receives each codec's photo rows (``psnr_db``, ``ssim``)."""
    quality, use = {}, {}
    for c, codec in codecs.items():
        _, rec = roundtrip(codec, full)
        p, s = psnr(rec, full), ssim(rec, full)
        quality[c] = float(p.mean()), float(s.mean())
        if per_photo is not None:
            per_photo[c] = [{"psnr_db": float(a), "ssim": float(b)} for a, b in zip(p, s, strict=True)]
        use[c] = usage(torch.cat([codec[0](b) for b in crops.split(EVAL_BATCH)]), k)
    return quality, use


def measure_speed(codecs: dict[str, Codec], x_all: torch.Tensor, vqgan: torch.nn.Module | None,
                  repeats: int) -> dict[int, dict[str, dict[str, Timing | None]]]:
    """Per batch size and codec: the timings of its ``encode`` and ``decode`` and of VQGAN's
    (``vqgan_encode``: encoder + quantizer, ``vqgan_decode``). The encoders are timed in alternation with
    VQGAN's encoder and quantizer, and the decoders, each on its own codes of the same images, with VQGAN's
    code lookup and decoder (``vqgan`` None: its timings None)."""
    peer: dict[str, Codec] = {}
    if vqgan is not None:
        peer["\0vqgan"] = (lambda v: vqgan_tokenize(vqgan, v), lambda g: vqgan_detokenize(vqgan, g))
    both = codecs | peer
    out: dict[int, dict[str, dict[str, Timing | None]]] = {}
    for batch in SPEED_BATCHES:
        x = x_all[:batch].contiguous()
        t_enc = time_alternating({c: enc for c, (enc, _) in both.items()}, x, repeats)
        with torch.inference_mode():
            grids = {c: enc(x) for c, (enc, _) in both.items()}
        t_dec = time_alternating({c: lambda _x, f=dec, g=grids[c]: f(g) for c, (_, dec) in both.items()}, x, repeats)
        out[batch] = {c: {"encode": t_enc[c], "decode": t_dec[c], "vqgan_encode": t_enc.get("\0vqgan"),
                          "vqgan_decode": t_dec.get("\0vqgan")} for c in codecs}
    return out


def speed_rows(args: argparse.Namespace, codecs: dict[str, Codec], models: dict[str, ImageTokenizer],
               photos: list[torch.Tensor], vqgan: torch.nn.Module | None, quality: dict[str, tuple[float, float]],
               set_name: str) -> dict[str, float | None]:
    """The ``image_speed`` rows (VQGAN's fields None without it); each codec's batch-1 encode speed-up."""
    tok = next(iter(models.values()))
    size = tok.image_size
    g = torch.Generator().manual_seed(args.seed)
    x_all = cut_crops(photos, usage_boxes([tuple(p.shape[-2:]) for p in photos], max(SPEED_BATCHES),
                                          generator=g), size)
    vq_params = None if vqgan is None else sum(p.numel() for mod in (vqgan.encoder, vqgan.quant_conv, vqgan.quantize)
                                               for p in mod.parameters())
    per_s = lambda n, t: None if t is None else round(n / t, 3)  # noqa: E731
    speedup: dict[str, float | None] = {}
    for batch, timings in measure_speed(codecs, x_all, vqgan, args.speed_repeats).items():
        for c, sides in timings.items():
            t = {side: None if timing is None else timing.median for side, timing in sides.items()}
            if batch == 1:
                speedup[c] = None if t["vqgan_encode"] is None else t["vqgan_encode"] / t["encode"]
            emit(bench="image_speed", model=c, batch=batch, size=size, threads=torch.get_num_threads(),
                 encode_img_s=round(batch / t["encode"], 2), decode_img_s=round(batch / t["decode"], 2),
                 encode_img_s_vqgan_f16=per_s(batch, t["vqgan_encode"]), vqgan_codes=args.vqgan_codes,
                 speedup_vs_vqgan=ratio(t["vqgan_encode"], t["encode"]),
                 decode_img_s_vqgan_f16=per_s(batch, t["vqgan_decode"]),
                 decode_speedup_vs_vqgan=ratio(t["vqgan_decode"], t["decode"]), ratio_of=RATIO_OF, set=set_name,
                 psnr_db=round(quality[c][0], 3), ssim=round(quality[c][1], 4),
                 params_encoder=sum(p.numel() for p in models[c].encoder.parameters()) if c in models else None,
                 params_vqgan_encoder_quantizer=vq_params,
                 timings={side: timing.summary() for side, timing in sides.items() if timing is not None})
    return speedup


def bars(p: float, margin: float, s: float, u: float, speedup: float | None) -> dict[str, bool | None]:
    """The issue's bars met (``None``: not measured in this run)."""
    return {
        f"psnr_ge_{BARS['psnr_db']:g}db": p >= BARS["psnr_db"],
        f"margin_ge_{BARS['margin_db']:g}db_over_kmeans": margin >= BARS["margin_db"],
        f"ssim_ge_{BARS['ssim']:g}": s >= BARS["ssim"],
        f"usage_ge_{BARS['usage'] * 100:g}pct": u >= BARS["usage"],
        f"encode_ge_{BARS['speedup']:g}x_vqgan_f16": None if speedup is None else speedup >= BARS["speedup"],
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    toks = {m: load_tokenizer(m) for m in args.model}
    models: dict[str, ImageTokenizer] = {**toks, **({VQVAE: load_tokenizer(args.vqvae, "--vqvae")} if args.vqvae else {})}
    tok = next(iter(toks.values()))
    k, size, f = tok.codebook_size, tok.image_size, tok.downsample
    for name, t in models.items():
        if (t.codebook_size, t.image_size, t.downsample) != (k, size, f):
            raise SystemExit(f"{name}: models compared in one run need the same codebook size, image size and "
                             f"downsample (got {(t.codebook_size, t.image_size, t.downsample)}, want {(k, size, f)})")
    set_name, eval_files, fit_files, cache = select_files(args)
    tokens = (size // f) ** 2  # per image

    km, km_seconds, km_patches = kmeans_baseline(args, fit_files, cache, k, f)
    km_info = {"kmeans_fit_s": round(km_seconds, 1), "kmeans_patches": km_patches, "kmeans_crops": args.kmeans_crops,
               **{f"kmeans_{o}": getattr(args, f"kmeans_{o}") for o in ("zoom_max", "rotate", "synthetic")}}
    if args.fit_kmeans_only:
        emit(bench="image_kmeans_fit", codebook_size=k, **km_info)
        return
    codecs: dict[str, Codec] = {m: (t.encode, t.decode) for m, t in models.items()}
    codecs[KMEANS] = (km.encode, km.decode)
    baselines = [c for c in codecs if c not in toks]

    sets = eval_sets(set_name, eval_files, models, args.manifest, cache)
    photos = load_photos(eval_files, math.ceil(size / USAGE_SCALE[0]))
    full = torch.stack([tok.preprocess(p) for p in eval_files])  # (n, 3, size, size): the default size policy
    index = {p: i for i, p in enumerate(eval_files)}
    n_crops = crops_for_tokens(args.usage_tokens, tokens)
    quality, use = {}, {}
    for s, (name, files) in enumerate(sets.items()):
        sub = [photos[index[p]] for p in files]
        g = torch.Generator().manual_seed(args.seed + s)
        crops = cut_crops(sub, usage_boxes([tuple(p.shape[-2:]) for p in sub], n_crops, generator=g), size)
        per: dict[str, list[dict[str, float]]] = {}
        quality[name], use[name] = q, u = measure_set(codecs, full[[index[p] for p in files]], crops, k, per)
        names = list(codecs)
        for m in toks:  # per photo: each model minus each baseline and each later model, with intervals
            for other in [c for c in names if c not in toks or names.index(c) > names.index(m)]:
                emit(bench="image_paired", model=m, minus=other, set=name, seed=args.seed,
                     **paired_difference(per[m], per[other], ("psnr_db", "ssim"), seed=args.seed))
        for m in toks:
            row: dict[str, Any] = {"psnr_ours_db": round(q[m][0], 3), "ssim_ours": round(q[m][1], 4)}
            urow: dict[str, Any] = {"usage_ours": round(u[m][0], 4), "perplexity_ours": round(u[m][1], 1),
                                    "distinct_ours": u[m][2]}
            for b in baselines:
                row |= {f"psnr_{b}_db": round(q[b][0], 3), f"ssim_{b}": round(q[b][1], 4),
                        f"margin_{b}_db": round(q[m][0] - q[b][0], 3), f"ssim_margin_{b}": round(q[m][1] - q[b][1], 4)}
                urow |= {f"usage_{b}": round(u[b][0], 4), f"perplexity_{b}": round(u[b][1], 1),
                         f"distinct_{b}": u[b][2]}
            emit(bench="image_quality", model=m, set=name, n=len(files), tokens_per_image=tokens,
                 codebook_size=k, **row, **km_info, files=[str(p.relative_to(cache)) for p in files])
            emit(bench="image_usage", model=m, set=name, photos=len(files), crops=n_crops,
                 tokens=n_crops * tokens, crop_side=list(USAGE_SCALE), codebook_size=k, **urow)

    speedup: dict[str, float | None] = {m: None for m in toks}
    if not args.skip_speed:
        vqgan = vqgan_f16(args.vqgan_codes) if check_peer("image_speed", "diffusers") else None
        speedup |= speed_rows(args, codecs, models, photos, vqgan, quality[set_name], set_name)

    for name in sets:
        for m in toks:
            (p, s), u, sr = quality[name][m], use[name][m][0], speedup[m]
            margin = p - quality[name][KMEANS][0]
            emit(bench="image_bars", model=m, set=name, psnr_db=round(p, 3), margin_kmeans_db=round(margin, 3),
                 ssim=round(s, 4), usage=round(u, 4), encode_speedup=None if sr is None else round(sr, 1),
                 met=bars(p, margin, s, u, sr))


if __name__ == "__main__":
    raise SystemExit(run_script(main))
