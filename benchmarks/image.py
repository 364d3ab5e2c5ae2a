"""Image tokenizer benchmark: held-out quality and usage against k-means, encode speed against VQGAN.

Prints one JSON object per line, every comparison measured side by side in this run:

- ``image_quality``: PSNR of ``decode(encode(x))`` against ``preprocess(x)`` on
  held-out images (never trained on), for the tokenizer and for a scikit-learn
  k-means codebook of the same size over raw 16×16 patches fitted on the same
  training images.
- ``image_usage``: fraction of codes used over many random held-out crops; for
  reference, also over as many crops of random training subsets as large as the
  held-out set (``set: "train_subset"``): what that many pictures can show of
  the codebook even when they were trained on.
- ``image_speed``: encode (and decode) images/s at 256×256 on this machine
  against the taming VQGAN f16 encoder architecture (diffusers ``VQModel``,
  block_out_channels (128, 128, 256, 256, 512), 2 layers per block, random
  init: speed does not depend on the weights), timed in alternation.
- ``image_bars``: the three bars of the issue and whether they are met.

    python benchmarks/image_data.py --out /work/data/image      # once: train/ and heldout/
    python benchmarks/image.py --data /work/data/image [--model image]
    python benchmarks/image.py --model image /path/to/candidate    # several tokenizers side by side in one run

With several ``--model`` values every record names its ``model``; the
tokenizers (same K and image size) are measured on the same crops against
the same k-means fit, and their encoders are timed in alternation with the
VQGAN encoder.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

import mmtok
from mmtok.image.tokenizer import ImageTokenizer, patchify, unpatchify
from mmtok.synth.dead_leaves import training_pictures
from mmtok.image.train import find_images, load_corpus, random_crops
from mmtok.vq.quantizer import nearest_code

PATCH = 16  # k-means baseline patch side: one token per 16×16 patch, like the tokenizer


def emit(**record: object) -> None:
    print(json.dumps(record), flush=True)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of ``[B, 3, H, W]`` in [0, 1]."""
    mse = (a.clamp(0, 1) - b).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


class KMeansPatches:
    """A codebook of raw ``PATCH×PATCH`` RGB patches (768-d), nearest-patch encode/decode."""

    def __init__(self, k: int, seed: int) -> None:
        self.k, self.seed = k, seed
        self.centers = torch.empty(0)

    @staticmethod
    def patches(images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B*h*w, 768]`` raw patch vectors."""
        return patchify(images, PATCH).reshape(-1, 3 * PATCH * PATCH)

    def fit(self, patches: torch.Tensor, polish_iters: int) -> KMeansPatches:
        from sklearn.cluster import KMeans, MiniBatchKMeans

        x = patches.numpy().astype(np.float32)  # (N, 768)
        mbk = MiniBatchKMeans(
            n_clusters=self.k, batch_size=4096, n_init=3, max_iter=50, random_state=self.seed
        ).fit(x)
        centers = mbk.cluster_centers_
        if polish_iters:  # full Lloyd iterations from the mini-batch solution
            centers = KMeans(
                n_clusters=self.k, init=centers, n_init=1, max_iter=polish_iters, random_state=self.seed
            ).fit(x).cluster_centers_
        self.centers = torch.from_numpy(np.ascontiguousarray(centers, dtype=np.float32))
        return self

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        p = self.patches(images)  # (B*h*w, 768)
        return nearest_code(p, self.centers).reshape(b, h // PATCH, w // PATCH)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        b, h, w = codes.shape
        return unpatchify(self.centers[codes.reshape(b, h * w)], PATCH, h, w).clamp(0, 1)


def usage(codes: torch.Tensor, k: int) -> tuple[float, float]:
    counts = torch.bincount(codes.flatten(), minlength=k).double()
    p = counts / counts.sum()
    ent = -(p[p > 0] * p[p > 0].log()).sum()
    return float((counts > 0).double().mean()), float(ent.exp())


def vqgan_encoder() -> torch.nn.Module:
    from diffusers import VQModel

    torch.manual_seed(0)
    m = VQModel(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 5,
        up_block_types=("UpDecoderBlock2D",) * 5,
        block_out_channels=(128, 128, 256, 256, 512),
        layers_per_block=2,
        latent_channels=256,
        num_vq_embeddings=1024,
        vq_embed_dim=256,
        sample_size=256,
    )
    return m.eval()


def time_alternating(fns: dict[str, object], x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds per call for each function, run in alternation (same load for all)."""
    best = {name: math.inf for name in fns}
    with torch.inference_mode():
        for fn in fns.values():
            fn(x)  # type: ignore[operator]  # warm-up
        for _ in range(repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn(x)  # type: ignore[operator]
                best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", default=["image"], help="shipped name(s) or checkpoint folder(s)")
    ap.add_argument("--data", default="/work/data/image", help="folder with train/ and heldout/")
    ap.add_argument("--crops", type=int, default=256, help="held-out random 256×256 crops")
    ap.add_argument("--kmeans-crops", type=int, default=800, help="training crops the k-means baseline sees")
    ap.add_argument("--kmeans-synthetic", type=int, default=0, metavar="N",
                    help="also show the k-means baseline N dead-leaves pictures, made by the recipe of "
                         "`train-tokenizer image --synthetic N` (a baseline that sees the same kind of data)")
    ap.add_argument("--kmeans-polish", type=int, default=10, help="full Lloyd iterations after mini-batch k-means")
    ap.add_argument("--train-subsets", type=int, default=4,
                    help="reference usage rows: this many random training subsets as large as the held-out set")
    ap.add_argument("--speed-repeats", type=int, default=3, help="timed calls per measurement (best kept)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--fit-kmeans-only", action="store_true", help="fit (and cache) the k-means baseline, then stop")
    ap.add_argument("--skip-speed", action="store_true", help="quality and usage only")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    toks = {m: mmtok.load(m) for m in args.model}
    for m, t in toks.items():
        assert isinstance(t, ImageTokenizer), f"{m} is not an image tokenizer"
    tok = toks[args.model[0]]
    k, size = tok.codebook_size, tok.image_size
    if any(t.codebook_size != k or t.image_size != size for t in toks.values()):
        raise SystemExit("--model: tokenizers compared in one run need the same codebook size and image size")
    several = len(toks) > 1
    data = Path(args.data)
    held_files, train_files = find_images(data / "heldout"), find_images(data / "train")
    g = torch.Generator().manual_seed(args.seed)

    # ---- evaluation sets: whole held-out images (the default policy) and random held-out crops
    held_full = torch.stack([tok.preprocess(f) for f in held_files])  # (n, 3, 256, 256)
    held_corpus = load_corpus(held_files, 384)  # shorter side 384: crops zoom 0.67×..1.5× around it
    held_crops = random_crops(held_corpus, args.crops, size, scale=(0.67, 1.5), generator=g)

    # ---- k-means baseline on the same training images, sampled like the tokenizer's training crops
    train_corpus = load_corpus(train_files, 320)
    if args.kmeans_synthetic:  # the trainer's recipe (its corpus is stored larger with --zoom-max, so the
        # palette pixels differ; the pictures are of the same kind)
        train_corpus += training_pictures(train_corpus, args.kmeans_synthetic, 640, seed=args.seed)
    fit_imgs = random_crops(train_corpus, args.kmeans_crops, 128, scale=(0.8, 2.0), generator=g)
    train_full = torch.stack([tok.preprocess(f) for f in train_files])
    fit_patches = torch.cat([KMeansPatches.patches(fit_imgs), KMeansPatches.patches(train_full)])
    synth = f"-synthetic{args.kmeans_synthetic}" if args.kmeans_synthetic else ""
    cache = data / f"kmeans-K{k}-seed{args.seed}-crops{args.kmeans_crops}-polish{args.kmeans_polish}{synth}.pt"
    km = KMeansPatches(k, args.seed)
    if cache.is_file():  # the fit depends only on the data, K and the seed: reuse it
        saved = torch.load(cache)
        km.centers, km_seconds = saved["centers"], float(saved["fit_seconds"])
    else:
        t0 = time.perf_counter()
        km.fit(fit_patches, args.kmeans_polish)
        km_seconds = time.perf_counter() - t0
        torch.save({"centers": km.centers, "fit_seconds": km_seconds, "patches": int(fit_patches.shape[0])}, cache)
    if args.fit_kmeans_only:
        emit(bench="image_kmeans_fit", codebook_size=k, patches=int(fit_patches.shape[0]), fit_s=round(km_seconds, 1))
        return

    def ours_roundtrip(t: ImageTokenizer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = torch.cat([t.encode(b) for b in x.split(16)])
        return codes, torch.cat([t.decode(c) for c in codes.split(16)])

    def km_roundtrip(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = km.encode(x)
        return codes, km.decode(codes)

    synth_tag = {"kmeans_synthetic": args.kmeans_synthetic} if args.kmeans_synthetic else {}

    def tag(m: str) -> dict[str, str]:
        return {"model": m} if several else {}

    results: dict[str, dict[str, dict[str, float]]] = {m: {} for m in toks}
    for name, x in (("heldout_images", held_full), ("heldout_crops", held_crops), ("train_images", train_full)):
        kc, krec = km_roundtrip(x)
        pk = float(psnr(krec, x).mean())
        for m, t in toks.items():
            oc, orec = ours_roundtrip(t, x)
            po = float(psnr(orec, x).mean())
            results[m][name] = {"ours": po, "kmeans": pk}
            emit(
                bench="image_quality", **tag(m), set=name, n=int(x.shape[0]), tokens_per_image=int(oc[0].numel()),
                codebook_size=k, psnr_ours_db=round(po, 3), psnr_kmeans_db=round(pk, 3),
                margin_db=round(po - pk, 3), kmeans_fit_s=round(km_seconds, 1), **synth_tag,
                files=[f.name for f in held_files] if name == "heldout_images" else None,
            )
            if name == "heldout_crops":
                uo, perp_o = usage(oc, k)
                uk, perp_k = usage(kc, k)
                results[m]["usage"] = {"ours": uo, "kmeans": uk}
                emit(
                    bench="image_usage", **tag(m), set=name, crops=int(x.shape[0]), tokens=int(oc.numel()),
                    codebook_size=k, usage_ours=round(uo, 4), usage_kmeans=round(uk, 4),
                    perplexity_ours=round(perp_o, 1), perplexity_kmeans=round(perp_k, 1),
                )

    # reference: usage over crops of training subsets the size of the held-out set (own generator, so the
    # held-out crops and the cached k-means fit above do not change)
    gs = torch.Generator().manual_seed(args.seed + 1)
    sub_corpus = load_corpus(train_files, 384) if args.train_subsets else []
    for _ in range(args.train_subsets):
        pick = torch.randperm(len(train_files), generator=gs)[: len(held_files)].tolist()
        x = random_crops([sub_corpus[i] for i in pick], args.crops, size, scale=(0.67, 1.5), generator=gs)
        uk, _ = usage(km.encode(x), k)
        for m, t in toks.items():
            uo, perp_o = usage(torch.cat([t.encode(b) for b in x.split(16)]), k)
            emit(bench="image_usage", **tag(m), set="train_subset", files=[train_files[i].name for i in pick],
                 crops=int(x.shape[0]), usage_ours=round(uo, 4), usage_kmeans=round(uk, 4),
                 perplexity_ours=round(perp_o, 1))

    speed_ratio: dict[str, float | None] = {m: None for m in toks}
    if not args.skip_speed:
        vqgan = vqgan_encoder()
        for batch in (1, 8):
            x = held_crops[:batch].contiguous()
            fns: dict[str, object] = {m: t.encode for m, t in toks.items()}
            fns["\0vqgan"] = lambda v: vqgan.encode(v).latents
            t_enc = time_alternating(fns, x, args.speed_repeats)
            for m, t in toks.items():
                codes = t.encode(x)
                td = time_alternating({"decode": lambda c, t=t: t.decode(c)}, codes, args.speed_repeats)
                ratio = t_enc["\0vqgan"] / t_enc[m]
                if batch == 1:
                    speed_ratio[m] = ratio
                emit(
                    bench="image_speed", **tag(m), batch=batch, size=size, threads=torch.get_num_threads(),
                    encode_img_s_ours=round(batch / t_enc[m], 2),
                    encode_img_s_vqgan_f16=round(batch / t_enc["\0vqgan"], 3),
                    speedup=round(ratio, 1), decode_img_s_ours=round(batch / td["decode"], 2),
                    params_ours_encoder=sum(p.numel() for p in t.encoder.parameters()),
                    params_vqgan_encoder=sum(p.numel() for p in vqgan.encoder.parameters()),
                )

    for m in toks:
        r, sr = results[m], speed_ratio[m]
        margin = r["heldout_images"]["ours"] - r["heldout_images"]["kmeans"]
        emit(
            bench="image_bars", **tag(m),
            psnr_margin_db=round(margin, 3), psnr_margin_crops_db=round(
                r["heldout_crops"]["ours"] - r["heldout_crops"]["kmeans"], 3),
            usage=round(r["usage"]["ours"], 4), encode_speedup=None if sr is None else round(sr, 1),
            met={
                "psnr_margin_ge_1.5db": margin >= 1.5,
                "usage_ge_95pct": r["usage"]["ours"] >= 0.95,
                "encode_ge_50x_vqgan": None if sr is None else sr >= 50,
            },
        )


if __name__ == "__main__":
    main()
