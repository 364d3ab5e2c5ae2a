"""Train an :class:`~mmtok.image.tokenizer.ImageTokenizer`: ``mmtok train-tokenizer image --data DIR --out DIR``.

Random crops at random scales with horizontal flips, L1 + MSE + image-gradient
loss (an SSIM term with ``--ssim-weight``; a patch discriminator with ``--disc-weight``,
:mod:`mmtok.image.discriminator`), EMA codebook with dead-code restarts, AdamW with
warmup and cosine decay, a progress bar, atomic resumable checkpoints every ``--save-every`` steps, and
two pictures: a reconstruction grid and a codebook-usage histogram. A run starts from the
data or from another tokenizer (``--init-from``; :mod:`mmtok.image.init`), and
``--decoder-only`` trains the decoder alone on that tokenizer's fixed codes. With ``--ema-decay D``
the exported model is an exponential moving average of the weights (:mod:`mmtok.core.ema`). OUT is held
(:func:`~mmtok.core.run_lock.hold_run_folder`) before it is looked at: a second run into it is refused, and
a train state a killed run left mid-swap is put back.

Output folder layout::

    OUT/model/               the trained tokenizer: config.json, model.safetensors, README.md (mmtok.load)
                             (the weight average with --ema-decay)
    OUT/train-state/         resumable state (weights + optimizer + RNG, the average), read by --resume
    OUT/reconstructions.png, OUT/codebook-usage.png        pictures of the last checkpoint (the grid: of OUT/model)
    OUT/summary.json                                       steps, time, machine and device, last losses
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmtok.core.adversary import add_adversary_options
from mmtok.core.checkpoint import config_from_dict, load_checkpoint, save_checkpoint
from mmtok.core.checkpoint_names import checkpoint_source
from mmtok.core.command_line import HelpFormatter
from mmtok.core.corpus_manifest import DEFAULT_SPLIT, data_split
from mmtok.core.device import device_record, pick_device
from mmtok.core.divergence import (
    Start,
    Trained,
    check_state_finite,
    check_weights_finite,
    diverging_forward,
    loss_not_finite,
)
from mmtok.core.ema import WeightAverage
from mmtok.core.errors import ImageError, UsageError
from mmtok.core.files import write_atomic
from mmtok.core.metrics import psnr, ssim
from mmtok.core.module_io import load_module, save_module
from mmtok.core.resume import reading_state_to_resume
from mmtok.core.run_folder import TOKENIZER_MODEL_DIR, TOKENIZER_STATE_DIR
from mmtok.core.run_lock import hold_run_folder
from mmtok.core.schedule import warmup_cosine, warmup_note
from mmtok.core.trainstate import (
    command_lines,
    freeze_codes,
    load_train_state,
    options_given,
    save_train_state,
)
from mmtok.image.config import DEFAULT_VQ, ImageTokenizerConfig
from mmtok.image.crops import find_images, load_corpus, train_crops
from mmtok.image.discriminator import PatchGAN
from mmtok.image.init import (
    check_init_source,
    init_from_data,
    init_from_model,
    rebalance_codebook,
)
from mmtok.image.sizing import MAX_SIDE
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.image.train_checks import (
    check_args,
    check_model_fits,
    check_out_folder,
    check_same_images,
    data_digest,
    exported_provenance,
    name_under,
    run_settings,
    take_run_settings,
)
from mmtok.image.train_pictures import grid_crops, save_reconstruction_grid, save_usage_histogram
from mmtok.synth.dead_leaves import training_pictures

__all__ = ["main"]

STATE_DIR, MODEL_DIR = TOKENIZER_STATE_DIR, TOKENIZER_MODEL_DIR  # what a run writes in OUT

FINAL_LR_FRAC = 0.05  # the cosine schedule ends at this fraction of --lr


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False,
        formatter_class=HelpFormatter,
        prog="mmtok train-tokenizer image",
        description="Train an image tokenizer (patches -> VQ codes -> image) on a folder of images.",
    )
    p.add_argument("--data", required=True,
                   help="folder of training images (searched recursively), or a corpus manifest.jsonl")
    p.add_argument("--split", default=None,
                   help=f"with a manifest: the split to train on (default: {DEFAULT_SPLIT}, or the run's with "
                        "--resume); a folder's images are all trained on")
    p.add_argument("--out", required=True, help="output folder (tokenizer checkpoint, train state, PNGs)")
    p.add_argument("--steps", type=int, default=4000, help="optimizer steps in total")
    p.add_argument("--export", default=None, help="also write the final tokenizer checkpoint to this folder "
                   "(a --resume of a finished run writes it too)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train-state if it exists, with the run's "
                   "own model and settings for the flags left out (--steps N extends it)")
    p.add_argument("--batch-size", type=int, default=16, help="crops per step")
    p.add_argument("--crop", type=int, default=128, help=f"side of the training crops (a multiple of 16, at most {MAX_SIDE})")
    p.add_argument("--base-side", type=int, default=320, help=f"shorter side the images are stored at (at most {MAX_SIDE})")
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
    p.add_argument("--ssim-weight", type=float, default=0.0,
                   help="add this weight times (1 - SSIM) of the reconstruction to the loss (default 0: off)")
    p.add_argument("--ema-decay", type=float, default=0.0, metavar="D",
                   help="export an exponential moving average of the weights (decay D per step, e.g. 0.999) as "
                        "OUT/model, which reconstructions.png shows; the training state keeps the live weights and the "
                        "average, so --resume continues both (default 0: off)")
    add_adversary_options(p, weight_help="adversarial term of a patch discriminator, times the adaptive weight "
                                         "(0: no discriminator)", plural=False, warmup=200, lr=1e-4, channels=32)
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
    p.add_argument("--latent-dim", type=int, default=None, help="size of the code vectors (default 64, or that of --init-from or --config)")
    p.add_argument("--config", default=None, help="JSON file of ImageTokenizerConfig fields (model shape)")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from this tokenizer's encoder and decoder (a checkpoint folder, 'image', or the "
                        "folder of an earlier run, whose model, RUN/model, is read); its quantizer too when the "
                        "shapes match, else a new one fitted to its encoder's outputs")
    p.add_argument("--decoder-only", action="store_true",
                   help="train the decoder alone: the encoder and codebook stay as --init-from gives them, so every "
                        "picture keeps its codes (with a deeper --config dec_blocks: new blocks start as the identity)")
    p.add_argument("--init-crops", type=int, default=1024, help="crops for the PCA and k-means initialisation")
    p.add_argument("--save-every", type=int, default=250, help="checkpoint every N steps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def lr_for(step: int, args: argparse.Namespace) -> float:
    """The learning rate at ``step``: warmup + cosine over the run, or from ``--lr-restart`` on."""
    start = args.lr_restart if args.lr_restart is not None and step >= args.lr_restart else 0
    return warmup_cosine(step - start, peak=args.lr, warmup=args.warmup, total=args.steps - start,
                         floor=FINAL_LR_FRAC * args.lr)


def make_config(args: argparse.Namespace, base: ImageTokenizerConfig | None = None) -> ImageTokenizerConfig:
    """The model config: ``base`` (the ``--init-from`` tokenizer's config) or the defaults, with the fields of
    the ``--config`` JSON on top (``{"dec_blocks": 4}`` changes that alone: the codebook stays ``base``'s);
    then ``--latent-dim``/``--codebook-size``/``--dead-code-rate``."""
    fields: dict[str, Any] = dataclasses.asdict(base) if base is not None else {}
    vq = {**DEFAULT_VQ, **fields.pop("vq", {})}
    if args.config:
        given = json.loads(Path(args.config).read_text())
        if not isinstance(given, dict):
            raise UsageError(f"--config {args.config}: expected a JSON object of config fields, got "
                             f"{type(given).__name__}")
        vq.update(given.pop("vq", None) or {})
        fields.update(given)
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
        return device_record(device)["device_name"]
    return f"{platform.machine()} CPU ({platform.processor() or 'unknown'}), {torch.get_num_threads()} torch thread(s)"


@dataclass
class _Run:
    """What one ``train-tokenizer image`` run holds between its steps."""

    args: argparse.Namespace
    cfg: ImageTokenizerConfig
    tok: ImageTokenizer
    opt: torch.optim.Optimizer
    corpus: list[torch.Tensor]
    out: Path
    device: torch.device
    command: dict[str, Any]  # command_lines: the run's first command line, "resumed_with" the later ones
    data_names: list[str]
    show: torch.Tensor  # the fixed crops of reconstructions.png
    gan: PatchGAN | None = None  # the patch discriminator (--disc-weight > 0)
    ema: WeightAverage | None = None  # the exported weight average (--ema-decay > 0)
    material: str = ""  # what the run trains on, by content (data_digest), checked on --resume
    init_from: str | None = None  # the --init-from tokenizer: its source, version and fingerprint (provenance)
    step: int = 0
    elapsed: float = 0.0
    smooth: dict[str, float] = field(default_factory=dict)  # running means of the step figures (loss, psnr, ...)
    begun: Start = field(default_factory=lambda: Start.of(0))  # the weights the run started or resumed from

    @property
    def state_dir(self) -> Path:
        return self.out / STATE_DIR

    def parts(self) -> list[Trained]:
        """What its train state holds, as the divergence checks name it."""
        lr = self.args.lr
        return [Trained("the tokenizer", "--lr", lr, module=self.tok, optimizer=self.opt),
                *([self.gan.part()] if self.gan else []),
                *([Trained("the weight average", "--lr", lr, tensors=self.ema.shadow)] if self.ema else [])]


def _data_root(data: str) -> Path:
    """The folder file names are recorded relative to: ``--data`` itself, or a manifest's folder."""
    root = Path(data)
    return root.parent if root.is_file() else root


def _setup(args: argparse.Namespace, argv: Sequence[str] | None, resume: bool) -> _Run:
    """Model, optimizer and corpus; then resume (``resume``: OUT holds a train state), or initialise from
    ``--init-from`` or from the data."""
    if args.threads:  # the run's own on --resume, when left out
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    out = Path(args.out)
    files = find_images(args.data, split=args.split)
    material = data_digest(files, _data_root(args.data))
    state = out / STATE_DIR / "config.json"
    if resume:  # before any picture is decoded
        check_same_images(state.parent, args.data, files, _data_root(args.data), material)
    source = load_module(ImageTokenizer, args.init_from) if args.init_from and not resume else None  # fails early
    base = source.cfg if source is not None else None  # --init-from's shape and codebook, under --config's fields
    was = json.loads(state.read_text()) if resume else {}
    if resume:  # the run's own shape (take_run_settings refused model flags that would change it)
        base = config_from_dict(ImageTokenizerConfig, was["config"], where=str(state))
    cfg = make_config(args, base=base)
    check_model_fits(cfg, f"--config {args.config}" if args.config else "the model options")
    tok = ImageTokenizer(cfg).to(device).train()
    opt = torch.optim.AdamW(tok.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=1e-4)
    if source is not None:
        check_init_source(tok, source, args.init_from)
    if source is not None and args.decoder_only and not source.vq.cfg.same_codebook(tok.vq.cfg):
        raise ImageError(f"--decoder-only keeps the codes of --init-from {args.init_from!r}, but its codebook "
                         f"(K = {source.vq.cfg.codebook_size}, {source.vq.cfg.dim}-d) does not fit this config's "
                         f"(K = {cfg.vq.codebook_size}, {cfg.vq.dim}-d): leave out --codebook-size, --latent-dim "
                         "and the codebook fields of --config")
    corpus = load_corpus(files, args.base_side, max_zoom=args.zoom_max, patch=cfg.downsample)  # a bad file stops us before any write
    show = grid_crops(corpus, cfg.image_size, args.base_side)  # of the photos, never a --synthetic picture
    if args.synthetic:
        corpus += training_pictures(corpus, args.synthetic, 2 * args.base_side, seed=args.seed,
                                    progress=not args.no_progress)
    command = command_lines("mmtok train-tokenizer image " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
                            was.get("provenance") if isinstance(was.get("provenance"), dict) else {})
    gan = (PatchGAN(weight=args.disc_weight, start=args.disc_start, warmup=args.disc_warmup, lr=args.disc_lr,
                    channels=args.disc_channels, device=device) if args.disc_weight > 0 else None)
    saved_init = (was.get("provenance") or {}).get("init_from") if isinstance(was.get("provenance"), dict) else None
    run = _Run(args, cfg, tok, opt, corpus, out, device, command,
               [str(name_under(f, _data_root(args.data))) for f in files], show, gan, material=material,
               init_from=_init_note(source, args.init_from) if source is not None else saved_init)
    if resume:
        with reading_state_to_resume(out, model_dir=MODEL_DIR):
            st = load_train_state(run.state_dir, model=tok, optimizer=opt, kind="image")
        run.step, run.elapsed = st["step"], float(st["extra"].get("elapsed_s", 0.0))
        run.smooth = {k: float(v) for k, v in (st["extra"].get("running_means") or {}).items()}
        run.begun = Start.of(run.step, resumed=run.state_dir)
        if gan is not None:
            gan.load_state_tensors(st["extra_tensors"], st["extra"].get("disc_opt"), where=str(run.state_dir))
        print(f"resuming from {run.state_dir} at step {run.step}", file=sys.stderr)
    elif source is not None:
        print(init_from_model(tok, source, corpus, args), file=sys.stderr)
        run.begun = Start.of(0, init_from=args.init_from)
    else:
        kept = init_from_data(tok, corpus, args)
        print(f"linear paths set to {cfg.latent_dim} principal components ({kept:.1%} of patch variance); "
              "codebook set by k-means", file=sys.stderr)
    if args.lr_restart is None and (note := warmup_note(args.warmup, args.steps, who="mmtok train-tokenizer image")):
        print(note, file=sys.stderr)
    if args.decoder_only:
        freeze_codes(tok)
    if args.ema_decay:  # starts from the weights the run starts from (after freezing: frozen ones are not averaged)
        run.ema = WeightAverage(tok, args.ema_decay)
    if resume:
        _resume_average(run, st)
    return run


def _init_note(source: ImageTokenizer, init_from: str) -> str:
    """What a run started from, for its provenance: ``image (image v3 (2026-12-01)), fingerprint …``."""
    prov = getattr(source, "provenance", None)
    version = prov.get("model_version") if isinstance(prov, dict) else None
    return (f"{checkpoint_source(init_from)}{f' ({version})' if version else ''}, "
            f"fingerprint {source.loaded_fingerprint}")


def _resume_average(run: _Run, st: dict[str, Any]) -> None:
    """A resumed run keeps the weight average it was saved with (take_run_settings gave it the run's --ema-decay)."""
    if run.ema is not None:
        run.ema.load_state_tensors(st["extra_tensors"], where=str(run.state_dir))


def _checkpoint(run: _Run, final: bool) -> None:
    """Train state, model folder (and ``--export``), usage histogram, reconstructions, summary."""
    args, tok = run.args, run.tok
    prov = {
        **run.command,
        "data": {"folder": str(args.data), **({} if args.split is None else {"split": args.split}),
                 "files": run.data_names,
                 **({"synthetic_dead_leaves": args.synthetic} if args.synthetic else {})},
        **({"init_from": run.init_from} if run.init_from else {}),
        "steps": run.step,
        "ssim_weight": args.ssim_weight,
        **({"decoder_only": True} if args.decoder_only else {}),
        **({"ema_decay": args.ema_decay} if run.ema else {}),
        **({"discriminator": {"weight": args.disc_weight, "start": args.disc_start, "warmup": args.disc_warmup,
                              "lr": args.disc_lr, "channels": args.disc_channels,
                              "receptive_field": run.gan.disc.receptive_field}} if run.gan else {}),
        "train_seconds": round(run.elapsed, 1),
        "machine": _machine(run.device),
        **device_record(run.device),
        "torch": torch.__version__,
    }
    check_state_finite(run.parts(), step=run.step, state_dir=run.state_dir)
    disc_tensors, disc_opt = run.gan.state_tensors() if run.gan else ({}, None)
    save_train_state(run.state_dir, kind="image", config=run.cfg, model=tok, optimizer=run.opt, step=run.step,
                     extra={"elapsed_s": run.elapsed, "settings": run_settings(args), "content_digest": run.material,
                            "running_means": run.smooth,
                            **({"disc_opt": disc_opt} if run.gan else {}),
                            **({"ema_decay": args.ema_decay} if run.ema else {})},
                     provenance=prov, extra_tensors={**disc_tensors, **(run.ema.state_tensors() if run.ema else {})})
    with run.ema.swapped_in(tok) if run.ema else contextlib.nullcontext(tok):  # the export: the average
        save_module(tok, run.out / MODEL_DIR, provenance=prov, extra_files={"README.md": _card(prov)})
        if final and args.export:
            save_module(tok, args.export, provenance=prov, extra_files={"README.md": _card(prov)})
    stats = tok.vq.usage_stats()
    save_usage_histogram(stats.counts, run.out / "codebook-usage.png",
                         f"training codes since last checkpoint (step {run.step}): usage {stats.usage:.1%}")
    tok.vq.reset_stats()
    with run.ema.swapped_in(tok) if run.ema else contextlib.nullcontext(tok):  # the pictures of the export
        p = save_reconstruction_grid(tok, run.show, run.out / "reconstructions.png")
    summary = {**prov, "final": final, "recon_grid_psnr": round(p, 3), "usage": round(stats.usage, 4),
               "running_means": {k: round(v, 4) for k, v in run.smooth.items()}}
    write_atomic(run.out / "summary.json", json.dumps(summary, indent=1))


def _train_step(run: _Run) -> dict[str, float]:
    """One optimiser step on a fresh batch of crops (then one of the discriminator, if any); returns its
    loss, PSNR and codebook usage (and the adversarial figures)."""
    t0 = time.perf_counter()
    for group in run.opt.param_groups:
        group["lr"] = lr_for(run.step, run.args)
    if run.args.decoder_only:
        freeze_codes(run.tok)  # again: the checkpoint pictures switch the whole model back to training mode
    x = train_crops(run.corpus, run.args.batch_size, run.args).to(run.device)
    with diverging_forward(step=run.step + 1, state_dir=run.state_dir, lr=run.args.lr, start=run.begun, batch=x,
                           trains_encoder=not run.args.decoder_only):
        res = run.tok(x)
    loss = res.losses["total"]
    if run.args.ssim_weight:
        res.losses["ssim"] = ssim(res.reconstruction, x).mean()
        loss = loss + run.args.ssim_weight * (1.0 - res.losses["ssim"])
    adv: dict[str, float] = {}
    if run.gan is not None:
        term, adv = run.gan.generator_loss(res.reconstruction, loss, run.tok.decoder.out.proj.weight, run.step)
        loss = loss + term
    if not torch.isfinite(loss):  # what is at fault looked for only now
        parts = run.parts()
        figures = {"the discriminator's output": (adv.get("g_adv", 0.0), parts[1]),
                   "the adversarial term's adaptive weight": (adv.get("adv_w", 0.0), parts[0])} if run.gan else {}
        raise loss_not_finite(loss.item(), step=run.step + 1, flag="--lr", lr=run.args.lr, parts=parts,
                              figures=figures, batch=[x], start=run.begun, state_dir=run.state_dir)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.tok.parameters(), 1.0)
    run.opt.step()
    check_weights_finite(run.tok, step=run.step + 1, state_dir=run.state_dir, lr=run.args.lr)
    if run.ema is not None:
        run.ema.update(run.tok)
    if run.gan is not None:
        adv.update(run.gan.checked_step(x, res.reconstruction, run.step, state_dir=run.state_dir))
    run.step += 1
    run.elapsed += time.perf_counter() - t0
    with torch.no_grad():
        return {"loss": float(loss), "psnr": float(psnr(res.reconstruction, x).mean()), "use": float(res.usage), **adv}


def main(argv: Sequence[str] | None = None) -> int:
    """Train; returns 0. ``argv`` are the options after ``mmtok train-tokenizer image``."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    check_args(parser, args, STATE_DIR)
    with hold_run_folder(args.out):  # before OUT is looked at: a train state a kill left mid-swap is put back
        resume = check_out_folder(args.out, resume=args.resume)
        if resume:  # before any work: the run's own settings
            take_run_settings(args, options_given(parser, sys.argv[1:] if argv is None else argv),
                              Path(args.out) / STATE_DIR, make_config)
        args.split = data_split(args.data, args.split)  # None for a folder (a run saved before may have said "train")
        run = _setup(args, argv, resume)
        _train(run)
    print(json.dumps({"out": str(run.out), "steps": run.step, "train_seconds": round(run.elapsed, 1)}))
    return 0


def _train(run: _Run) -> None:
    """The steps up to ``--steps``, with the rebalancings and checkpoints they call for; then the export of a
    run resumed at its end."""
    from tqdm import tqdm

    args = run.args
    rebalance_steps = {int(v) for v in args.rebalance_at.split(",") if v.strip()}
    bar = tqdm(total=args.steps, initial=run.step, disable=args.no_progress, dynamic_ncols=True, mininterval=5)
    while run.step < args.steps:
        now = _train_step(run)
        run.smooth = {k: v if k not in run.smooth else 0.98 * run.smooth[k] + 0.02 * v for k, v in now.items()}
        bar.set_postfix({k: f"{v:.3f}" for k, v in run.smooth.items()}, refresh=False)
        bar.update(1)
        rebalanced = run.step in rebalance_steps
        if rebalanced:
            u = rebalance_codebook(run.tok, run.corpus, args, run.step)
            print(f"\nstep {run.step}: codebook rebalanced on {args.rebalance_crops} crops (usage {u:.1%})",
                  file=sys.stderr)
        if rebalanced or run.step % args.save_every == 0 or run.step == args.steps:
            _checkpoint(run, final=run.step == args.steps)
    bar.close()
    if run.step == args.steps:
        _finish(run)  # resumed at the end: export what a kill or a new --export left out


def _finish(run: _Run) -> None:
    """A run at its last step (resumed there): export that step unless OUT/model and summary.json hold it
    (a kill right after the train state's save leaves them older), and copy OUT/model to ``--export`` when
    that is missing or older."""
    model = exported_provenance(run.out / MODEL_DIR)
    try:
        summary = json.loads((run.out / "summary.json").read_text())
    except (OSError, ValueError):
        summary = None
    done = isinstance(summary, dict) and summary.get("final") is True and summary.get("steps") == run.step
    if model is None or model.get("steps") != run.step or not done:
        _checkpoint(run, final=True)
    elif run.args.export and exported_provenance(run.args.export) != model:
        ck = load_checkpoint(run.out / MODEL_DIR, kind="image")
        save_checkpoint(run.args.export, kind=ck.kind, config=ck.config, tensors=ck.tensors, provenance=model,
                        extra_files={"README.md": _card(model)})


def _card(prov: dict[str, Any]) -> str:
    resumed = "".join(f"- `{line}`\n" for line in prov.get("resumed_with") or [])
    return (
        "# mmtok image tokenizer\n\n"
        f"Trained with `{prov['command']}` for {prov['steps']} steps "
        f"({prov['train_seconds']} s on {prov['machine']})"
        + (f", starting from {prov['init_from']}" if prov.get("init_from") else "") + ".\n\n"
        + (f"Resumed with:\n\n{resumed}\n" if resumed else "") +
        f"Data: {len(prov['data']['files'])} images from `{prov['data']['folder']}`.\n"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
