"""Train an :class:`~mmtok.image.tokenizer.ImageTokenizer`: ``mmtok train-tokenizer image --data DIR --out DIR``.

Random crops at random scales with horizontal flips, L1 + MSE + image-gradient
loss, EMA codebook with dead-code restarts, AdamW with warmup and cosine decay,
a progress bar, atomic resumable checkpoints every ``--save-every`` steps, and
two pictures: a reconstruction grid and a codebook-usage histogram.

Output folder layout::

    OUT/model/               the trained tokenizer: config.json, model.safetensors, README.md (mmtok.load)
    OUT/train-state/         resumable state (weights + optimizer + RNG), read by --resume
    OUT/reconstructions.png, OUT/codebook-usage.png        pictures of the last checkpoint
    OUT/summary.json                                       steps, time, machine, last losses
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mmtok.core.checkpoint import config_from_dict
from mmtok.core.trainstate import load_train_state, pick_device, save_train_state
from mmtok.image.model import pca_init
from mmtok.image.tokenizer import (
    DEFAULT_VQ,
    ImageError,
    ImageTokenizer,
    ImageTokenizerConfig,
    load_image,
    patchify,
)
from mmtok.pretrained import load, save
from mmtok.synth.dead_leaves import training_pictures

__all__ = ["IMAGE_EXTENSIONS", "find_images", "load_corpus", "main", "random_crops", "train_crops"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
STATE_DIR = "train-state"  # resumable state inside OUT
MODEL_DIR = "model"  # the exported tokenizer inside OUT


def find_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted, so runs see them in the same order."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {str(root)!r} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"--data {str(root)!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def load_corpus(files: Sequence[Path], base_side: int, *, max_zoom: float = 1.0) -> list[torch.Tensor]:
    """Every file as uint8 ``[3, H, W]`` with the shorter side resized to ``base_side`` (antialiased).

    With ``max_zoom > 1`` an image larger than that is kept at up to ``max_zoom *
    base_side`` (never enlarged beyond its own size), so :func:`random_crops` can
    also show its finer detail; its zoom is then ``min(H, W) / base_side``.
    """
    if max_zoom < 1:
        raise ValueError(f"max_zoom must be >= 1, got {max_zoom}")
    out = []
    for f in files:
        img = load_image(f)[None]  # (1, 3, H, W)
        short = min(img.shape[-2:])
        s = base_side * min(max_zoom, max(1.0, short / base_side)) / short
        h, w = round(img.shape[-2] * s), round(img.shape[-1] * s)
        img = F.interpolate(img, size=(h, w), mode="bicubic", antialias=True).clamp(0, 1)
        out.append((img[0] * 255).round().to(torch.uint8))
    return out


def random_crops(
    corpus: Sequence[torch.Tensor],
    n: int,
    size: int,
    *,
    scale: tuple[float, float],
    flip: bool = True,
    generator: torch.Generator | None = None,
    base_side: int | None = None,
    zoom_prob: float = 0.0,
    rotate: bool = False,
) -> torch.Tensor:
    """``n`` random square crops -> float ``[n, 3, size, size]`` in [0, 1].

    Each crop picks an image, a side ``size * U(scale)`` (in pixels of the image
    seen with its shorter side at ``base_side``, so the content is zoomed in or
    out), a position and a horizontal flip. An image stored larger than
    ``base_side`` (see :func:`load_corpus`) is cropped at that same scale, except
    that with probability ``zoom_prob`` a crop is taken at a zoom drawn
    log-uniformly between 1 and the image's own, showing detail finer than
    ``base_side`` allows. ``zoom_prob = 0`` draws no extra random numbers, so the
    crops are those of a corpus stored at ``base_side``. With ``rotate`` each crop
    is also turned by a random multiple of 90° (with the flip: any of the 8
    symmetries of the square); without it no extra random numbers are drawn.
    """
    g = generator
    which = torch.randint(0, len(corpus), (n,), generator=g).tolist()
    u = torch.rand(n, 4, generator=g).tolist()
    z = torch.rand(n, 2, generator=g).tolist() if zoom_prob > 0 else [[1.0, 0.0]] * n
    turns = torch.randint(0, 4, (n,), generator=g).tolist() if rotate else [0] * n
    crops = []
    for i, (a, b, c, d), (zp, ze), t in zip(which, u, z, turns, strict=True):
        img = corpus[i]
        hh, ww = img.shape[-2:]
        own = min(hh, ww) / base_side if base_side else 1.0  # this image's zoom as stored
        seen = own**ze if zp < zoom_prob else 1.0  # the zoom this crop shows, in [1, own]
        side = min(hh, ww, max(8, round(size * (scale[0] + a * (scale[1] - scale[0])) * own / seen)))
        top, left = int(b * (hh - side + 1)), int(c * (ww - side + 1))
        crop = img[None, :, top : top + side, left : left + side].float() / 255.0
        crop = F.interpolate(crop, size=(size, size), mode="bicubic", antialias=True) if side != size else crop
        if flip and d < 0.5:
            crop = crop.flip(-1)
        if t:
            crop = crop.rot90(t, (-2, -1))
        crops.append(crop)
    return torch.cat(crops).clamp_(0.0, 1.0)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of ``[B, 3, H, W]`` tensors in [0, 1]."""
    mse = (a.clamp(0, 1) - b).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


def lr_at(step: int, *, base: float, warmup: int, total: int, final_frac: float = 0.05) -> float:
    """Linear warmup then cosine decay to ``final_frac * base`` at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * t)))


# --------------------------------------------------------------------------- pictures


def save_reconstruction_grid(tok: ImageTokenizer, images: torch.Tensor, path: Path) -> float:
    """Originals (top row) over reconstructions (bottom row) as one PNG; returns mean PSNR."""
    was = tok.training
    tok.eval()
    recon = tok.decode(tok.encode(images))  # (B, 3, H, W)
    tok.train(was)
    grid = torch.cat([torch.cat(list(images), -1), torch.cat(list(recon.cpu()), -1)], -2)  # (3, 2H, B*W)
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(arr).save(tmp)
    os.replace(tmp, path)
    return float(psnr(recon.cpu(), images).mean())


def save_usage_histogram(counts: torch.Tensor, path: Path, title: str) -> bool:
    """Bar chart of code counts (sorted, most used first); False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the codebook-usage histogram", file=sys.stderr)
        return False
    c = counts.sort(descending=True).values.numpy()
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(np.arange(len(c)), c, width=1.0)
    ax.set_xlabel("code (sorted by count)")
    ax.set_ylabel("count")
    ax.set_title(title)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return True


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mmtok train-tokenizer image",
        description="Train an image tokenizer (patches -> VQ codes -> image) on a folder of images.",
    )
    p.add_argument("--data", required=True, help="folder of training images (searched recursively)")
    p.add_argument("--out", required=True, help="output folder (tokenizer checkpoint, train state, PNGs)")
    p.add_argument("--steps", type=int, default=4000, help="optimizer steps in total")
    p.add_argument("--export", default=None, help="also write the final tokenizer checkpoint to this folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train-state if it exists")
    p.add_argument("--batch-size", type=int, default=16, help="crops per step")
    p.add_argument("--crop", type=int, default=128, help="side of the training crops (multiple of 16)")
    p.add_argument("--base-side", type=int, default=320, help="shorter side the images are stored at")
    p.add_argument("--scale-min", type=float, default=0.8, help="smallest crop side, in units of --crop")
    p.add_argument("--scale-max", type=float, default=2.0, help="largest crop side, in units of --crop")
    p.add_argument("--zoom-max", type=float, default=1.0,
                   help="keep images larger than --base-side at up to this many times it (default 1: all at "
                        "--base-side) so that crops can also show their finer detail")
    p.add_argument("--zoom-prob", type=float, default=0.5,
                   help="with --zoom-max above 1: the fraction of crops taken at a zoom drawn log-uniformly "
                        "between 1 and the image's own; the others are at the --base-side scale")
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="add N dead-leaves pictures (2 x --base-side square, colours drawn from the training "
                        "images' pixels, seeded by --seed) to the corpus")
    p.add_argument("--rotate", action="store_true",
                   help="also turn each crop by a random multiple of 90 degrees (with the flips: all 8 "
                        "symmetries of the square), for more distinct patches from few images")
    p.add_argument("--lr", type=float, default=5e-4, help="peak AdamW learning rate")
    p.add_argument("--warmup", type=int, default=200, help="linear warmup steps")
    p.add_argument("--lr-restart", type=int, default=None, metavar="STEP",
                   help="restart the schedule at STEP (warmup then cosine to --steps), e.g. to lengthen a resumed run")
    p.add_argument("--rebalance-at", default="", metavar="STEPS",
                   help="comma-separated steps after which the codebook is refitted to encoder outputs of "
                        "--rebalance-crops training crops by k-means that keeps every code busy; training then "
                        "goes on with the new codes (a decoder fine-tune)")
    p.add_argument("--rebalance-crops", type=int, default=2048, help="training crops for each rebalancing")
    p.add_argument("--rebalance-iters", type=int, default=30, help="k-means iterations of each rebalancing")
    p.add_argument("--rebalance-min-frac", type=float, default=0.25,
                   help="codes winning fewer than this fraction of the mean count are split off busy clusters")
    p.add_argument("--dead-code-rate", type=float, default=None,
                   help="also restart codes below this fraction of the expected use (sets vq.dead_code_rate)")
    p.add_argument("--codebook-size", type=int, default=None, help="K: number of codes (default 1024)")
    p.add_argument("--latent-dim", type=int, default=None, help="size of the code vectors (default 32)")
    p.add_argument("--config", default=None, help="JSON file of ImageTokenizerConfig fields (model shape)")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from this tokenizer's encoder and decoder (a folder or 'image'); its quantizer too "
                        "when the shapes match, else a new one fitted to its encoder's outputs")
    p.add_argument("--init-crops", type=int, default=1024, help="crops for the PCA and k-means initialisation")
    p.add_argument("--save-every", type=int, default=250, help="checkpoint every N steps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@torch.no_grad()
def init_from_data(tok: ImageTokenizer, corpus: Sequence[torch.Tensor], args: argparse.Namespace) -> float:
    """PCA-initialise the linear patch paths, then k-means the codebook on encoder outputs.

    The untrained model then already codes like k-means over patches (in the PCA
    subspace); training improves on that. Returns the patch variance PCA keeps.
    """
    crops = _init_crops(corpus, args)
    patches = patchify(crops, tok.downsample).reshape(-1, 3 * tok.downsample**2)  # (N, 3*f*f)
    kept = pca_init(tok.encoder, tok.decoder, patches)
    z = _encoder_outputs(tok, crops)  # (n, h, w, L)
    tok.vq.train()(z)  # first training call: k-means on all of z
    tok.vq.reset_stats()
    return kept


def load_init_source(tok: ImageTokenizer, source: str) -> ImageTokenizer:
    """The tokenizer ``--init-from`` names, checked against ``tok``: its encoder and decoder must have the same shapes."""
    src = load(source, kind="image")
    for part in ("encoder", "decoder"):
        mine, theirs = getattr(tok, part).state_dict(), getattr(src, part).state_dict()
        if {k: v.shape for k, v in mine.items()} != {k: v.shape for k, v in theirs.items()}:
            raise ImageError(f"--init-from {source!r}: its {part} has another shape than this config's")
    return src


def _init_crops(corpus: Sequence[torch.Tensor], args: argparse.Namespace) -> torch.Tensor:
    """The ``--init-crops`` training crops the initialisations fit to (seeded by ``--seed``)."""
    g = torch.Generator().manual_seed(args.seed)
    return train_crops(corpus, args.init_crops, args, generator=g)


def train_crops(corpus: Sequence[torch.Tensor], n: int, args: argparse.Namespace,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` training crops as the options ask: ``--crop``, ``--scale-*``, ``--zoom-*``, ``--rotate``."""
    return random_crops(corpus, n, args.crop, scale=(args.scale_min, args.scale_max), generator=generator,
                        base_side=args.base_side, zoom_prob=args.zoom_prob if args.zoom_max > 1 else 0.0,
                        rotate=args.rotate)


def _encoder_outputs(tok: ImageTokenizer, crops: torch.Tensor) -> torch.Tensor:
    """Crops ``[n, 3, H, W]`` -> encoder outputs ``[n, h, w, L]``, 64 at a time."""
    return torch.cat([tok._latents(c.to(tok.device)) for c in crops.split(64)])


@torch.no_grad()
def init_from_model(tok: ImageTokenizer, src: ImageTokenizer, corpus: Sequence[torch.Tensor],
                    args: argparse.Namespace) -> str:
    """Copy encoder and decoder weights from ``src`` (see :func:`load_init_source`) into ``tok``.

    The quantizer is copied too when its config is the same; otherwise (another
    lookup size, cosine codes, another K) it is fitted to the copied encoder's outputs
    on training crops: a low-dimensional lookup gets a whitened PCA in-projection (and
    an out-projection back to the same latents), then k-means. Returns a description.
    """
    tok.encoder.load_state_dict(src.encoder.state_dict())
    tok.decoder.load_state_dict(src.decoder.state_dict())
    if src.vq.cfg == tok.vq.cfg:
        tok.vq.load_state_dict(src.vq.state_dict())
        return f"encoder, decoder and codebook from {args.init_from}"
    z = _encoder_outputs(tok, _init_crops(corpus, args))  # (n, h, w, L)
    vq = tok.vq
    if isinstance(vq.project_in, torch.nn.Linear):
        flat = z.reshape(-1, z.shape[-1]).float()
        mean = flat.mean(0)
        _, sv, v = torch.linalg.svd(flat - mean, full_matrices=False)  # v (L, L): principal directions in rows
        d = vq.cfg.lookup_dim
        scale = sv[:d] / flat.shape[0] ** 0.5  # (d,) std along each direction
        vq.project_in.weight.copy_(v[:d] / scale[:, None])  # whitened coordinates
        vq.project_in.bias.copy_(-(v[:d] / scale[:, None]) @ mean)
        # cosine codes are unit vectors: scale them back to a typical whitened length sqrt(d)
        gain = d**0.5 if vq.cfg.cosine else 1.0
        vq.project_out.weight.copy_(v[:d].T * scale[None] * gain)
        vq.project_out.bias.copy_(mean)
    vq.train()(z)  # first training call: k-means on all of z
    vq.reset_stats()
    return f"encoder and decoder from {args.init_from}; new quantizer ({vq.cfg.lookup_dim}-d lookup) fitted by k-means"


@torch.no_grad()
def rebalance_codebook(tok: ImageTokenizer, corpus: Sequence[torch.Tensor], args: argparse.Namespace, step: int) -> float:
    """Refit the codebook to encoder outputs of fresh training crops (:meth:`VectorQuantizer.rebalance`).

    The crops come from their own generator (seeded by ``--seed`` and ``step``), so
    the training stream is unchanged. Returns the usage over those crops.
    """
    g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    was = tok.training
    tok.eval()
    zs = []
    for start in range(0, args.rebalance_crops, 64):
        n = min(64, args.rebalance_crops - start)
        crops = train_crops(corpus, n, args, generator=g)
        zs.append(tok._latents(crops.to(tok.device)))
    tok.train(was)
    stats = tok.vq.rebalance(torch.cat(zs), iters=args.rebalance_iters, min_frac=args.rebalance_min_frac)
    return stats.usage


def lr_for(step: int, args: argparse.Namespace) -> float:
    """The learning rate at ``step``: warmup + cosine over the run, or from ``--lr-restart`` on."""
    start = args.lr_restart if args.lr_restart is not None and step >= args.lr_restart else 0
    return lr_at(step - start, base=args.lr, warmup=args.warmup, total=args.steps - start)


def make_config(args: argparse.Namespace) -> ImageTokenizerConfig:
    """The model config: defaults, then ``--config`` JSON, then ``--latent-dim``/``--codebook-size``."""
    fields: dict[str, Any] = json.loads(Path(args.config).read_text()) if args.config else {}
    vq = {**DEFAULT_VQ, **fields.pop("vq", {})}
    if args.latent_dim is not None:
        fields["latent_dim"] = args.latent_dim
    if args.codebook_size is not None:
        vq["codebook_size"] = args.codebook_size
    if getattr(args, "dead_code_rate", None) is not None:
        vq["dead_code_rate"] = args.dead_code_rate
    vq["dim"] = fields.setdefault("latent_dim", ImageTokenizerConfig.latent_dim)
    return config_from_dict(ImageTokenizerConfig, {**fields, "vq": vq}, where=args.config or "options")


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU ({platform.processor() or 'unknown'}), {torch.get_num_threads()} torch thread(s)"


def main(argv: Sequence[str] | None = None) -> int:
    """Train; returns 0. ``argv`` are the options after ``mmtok train-tokenizer image``."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.zoom_max < 1 or not 0 <= args.zoom_prob <= 1:
        parser.error(f"--zoom-max must be >= 1 and --zoom-prob in [0, 1] (got {args.zoom_max}, {args.zoom_prob})")
    if args.synthetic < 0:
        parser.error(f"--synthetic must be >= 0 (got {args.synthetic})")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    out = Path(args.out)
    state_dir = out / STATE_DIR

    files = find_images(args.data)
    cfg = make_config(args)
    tok = ImageTokenizer(cfg).to(device).train()
    opt = torch.optim.AdamW(tok.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=1e-4)
    step, elapsed = 0, 0.0
    resume = args.resume and (state_dir / "config.json").is_file()
    source = load_init_source(tok, args.init_from) if args.init_from and not resume else None  # fails early
    corpus = load_corpus(files, args.base_side, max_zoom=args.zoom_max)  # a bad file stops us before OUT exists
    out.mkdir(parents=True, exist_ok=True)
    if args.synthetic:
        corpus += training_pictures(corpus, args.synthetic, 2 * args.base_side, seed=args.seed,
                                    progress=not args.no_progress)
    if resume:
        st = load_train_state(state_dir, model=tok, optimizer=opt, kind="image")
        step, elapsed = st["step"], float(st["extra"].get("elapsed_s", 0.0))
        print(f"resuming from {state_dir} at step {step}", file=sys.stderr)
    elif source is not None:
        print(init_from_model(tok, source, corpus, args), file=sys.stderr)
    else:
        kept = init_from_data(tok, corpus, args)
        print(f"linear paths set to {cfg.latent_dim} principal components ({kept:.1%} of patch variance); "
              "codebook set by k-means", file=sys.stderr)
    data_names = [str(f.relative_to(args.data)) for f in files]
    command = "mmtok train-tokenizer image " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    show = random_crops(corpus, 6, cfg.image_size, scale=(1.0, 1.0), flip=False,
                        generator=torch.Generator().manual_seed(1), base_side=args.base_side)

    def checkpoint(final: bool) -> None:
        prov = {
            "command": command,
            "data": {"folder": str(args.data), "files": data_names,
                     **({"synthetic_dead_leaves": args.synthetic} if args.synthetic else {})},
            "steps": step,
            "train_seconds": round(elapsed, 1),
            "machine": _machine(device),
            "torch": torch.__version__,
        }
        save_train_state(
            state_dir, kind="image", config=cfg, model=tok, optimizer=opt, step=step,
            extra={"elapsed_s": elapsed}, provenance=prov,
        )
        save(tok, out / MODEL_DIR, provenance=prov, extra_files={"README.md": _card(prov)})
        if final and args.export:
            save(tok, args.export, provenance=prov, extra_files={"README.md": _card(prov)})
        stats = tok.vq.usage_stats()
        save_usage_histogram(
            stats.counts, out / "codebook-usage.png",
            f"training codes since last checkpoint (step {step}): usage {stats.usage:.1%}",
        )
        tok.vq.reset_stats()
        p = save_reconstruction_grid(tok, show, out / "reconstructions.png")
        summary = {**prov, "final": final, "recon_grid_psnr": round(p, 3), "usage": round(stats.usage, 4)}
        tmp = out / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1))
        os.replace(tmp, out / "summary.json")

    rebalance_steps = {int(v) for v in args.rebalance_at.split(",") if v.strip()}
    from tqdm import tqdm

    bar = tqdm(total=args.steps, initial=step, disable=args.no_progress, dynamic_ncols=True, mininterval=5)
    smooth: dict[str, float] = {}
    while step < args.steps:
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_for(step, args)
        x = train_crops(corpus, args.batch_size, args).to(device)
        res = tok(x)
        opt.zero_grad(set_to_none=True)
        res.losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(tok.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed += time.perf_counter() - t0
        with torch.no_grad():
            now = {"loss": float(res.losses["total"]), "psnr": float(psnr(res.reconstruction, x).mean())}
            now["use"] = float(res.usage)
        smooth = {k: v if k not in smooth else 0.98 * smooth[k] + 0.02 * v for k, v in now.items()}
        bar.set_postfix({k: f"{v:.3f}" for k, v in smooth.items()}, refresh=False)
        bar.update(1)
        rebalanced = step in rebalance_steps
        if rebalanced:
            u = rebalance_codebook(tok, corpus, args, step)
            print(f"\nstep {step}: codebook rebalanced on {args.rebalance_crops} crops (usage {u:.1%})",
                  file=sys.stderr)
        if rebalanced or step % args.save_every == 0 or step == args.steps:
            checkpoint(final=step == args.steps)
    bar.close()
    if step == args.steps and not (out / MODEL_DIR / "config.json").is_file():
        checkpoint(final=True)  # resumed at the end: still export
    print(json.dumps({"out": str(out), "steps": step, "train_seconds": round(elapsed, 1)}))
    return 0


def _card(prov: dict[str, Any]) -> str:
    return (
        "# mmtok image tokenizer\n\n"
        f"Trained with `{prov['command']}` for {prov['steps']} steps "
        f"({prov['train_seconds']} s on {prov['machine']}).\n\n"
        f"Data: {len(prov['data']['files'])} images from `{prov['data']['folder']}`.\n"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
