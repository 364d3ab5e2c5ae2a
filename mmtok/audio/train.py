"""Train an :class:`~mmtok.audio.tokenizer.AudioTokenizer`: ``mmtok train-tokenizer audio --data DIR --out DIR``.

``--data`` is a folder of audio files, a corpus manifest or an audio cache (:mod:`mmtok.audio.train_data`).

``--make-data`` first builds a corpus in DIR from audio made here
(:func:`mmtok.audio.corpus.build_corpus`): speech from ``espeak-ng`` (many
languages, voice variants, speeds and pitches), the example sounds shipped in the
``pygame`` package, and synthetic tones, chirps and noise. Part of it goes to
``DIR/heldout`` and is never read by training.

With the default ``slice`` encoder the codebook is group-balanced k-means
(:mod:`mmtok.audio.codebook`: Lloyd, then
``--kmeans-balance`` rounds that retire codes serving fewer than ``--kmeans-min-groups``
speakers or recordings and split broad clusters instead, with Lloyd steps in which every
(speaker, code) pair weighs the same), and only the decoder is trained.
``--val-fraction`` holds some training clips aside from both; their codebook usage and
reconstruction go to ``summary.json``. ``--init-from`` starts from a saved tokenizer (which
``--encoder-blocks`` / ``--decoder-blocks`` may grow); ``--decoder-only`` then trains its
log-mel decoder alone on its fixed codes.

Training takes random token-aligned crops of log-mel (with the encoder's
context), L1 on normalized log-mel plus the VQ commitment loss (and the optional terms of
:mod:`mmtok.audio.losses`: ``--mse-weight``, ``--compressed-weight``, ``--envelope-weight``), EMA codebook with
k-means init and dead-code restarts, AdamW with warmup and cosine decay, a
progress bar, atomic resumable checkpoints every ``--save-every`` steps, and two
pictures: original vs reconstructed mel and the codebook-usage histogram.

Output folder layout::

    OUT/model/          the trained tokenizer: config.json, model.safetensors, README.md (mmtok.load)
    OUT/train-state/    resumable state (weights + optimizer + RNG + the run's settings), read by --resume,
                        which takes the run's own settings for the flags left out and refuses others
    OUT/mel.png, OUT/codebook-usage.png, OUT/summary.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmtok.audio.codebook import fit_codebook
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.losses import (
    band_matrix,
    compressed_l1,
    envelope_correlation_loss,
)
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.train_checks import check_args, check_bands, check_fresh_run
from mmtok.audio.train_data import (
    CacheClip,
    attenuate_crops,
    cache_material,
    check_data,
    folder_digest,
    is_cache,
    manifest_material,
    padding_note,
    random_feature_crops,
    read_material,
    training_files,
)
from mmtok.audio.train_init import (
    COMMAND,
    build_config,
    init_source,
    load_grown,
    resume_source,
    settings_record,
)
from mmtok.audio.train_options import build_parser
from mmtok.audio.train_report import model_card, save_pictures, validate
from mmtok.audio.vocoder_data import cache_digest, check_sample_rate
from mmtok.core.corpus_manifest import data_split
from mmtok.core.device import device_record, pick_device
from mmtok.core.divergence import (
    Start,
    Trained,
    check_decodable,
    check_state_finite,
    check_weights_finite,
    diverging_forward,
    loss_not_finite,
)
from mmtok.core.module_io import save_module
from mmtok.core.resume import reading_state_to_resume
from mmtok.core.run_folder import (
    TOKENIZER_MODEL_DIR,
    TOKENIZER_RUN_MARKS,
    TOKENIZER_STATE_DIR,
    check_resume_folder,
    check_run_folder,
)
from mmtok.core.run_lock import hold_run_folder
from mmtok.core.schedule import warmup_cosine, warmup_note
from mmtok.core.trainstate import (
    check_trained_on,
    command_lines,
    freeze_codes,
    json_digest,
    load_train_state,
    save_train_state,
)

__all__ = ["main"]
STATE_DIR, MODEL_DIR, RUN_MARKS = TOKENIZER_STATE_DIR, TOKENIZER_MODEL_DIR, TOKENIZER_RUN_MARKS  # what a run writes in OUT
FINAL_LR_FRAC = 0.05  # the cosine schedule ends at this fraction of the peak rate
USAGE_CLIPS = 400  # training clips encoded for the final codebook-usage picture
# the figures of the last batch, kept in the state and the provenance: the loss it optimised (every term its flags
# add), its log-mel L1 (the term that measures the reconstruction; a state saved before the two were told apart kept
# the L1 alone, as "loss"), codebook usage, perplexity
LAST_KEYS = ("loss", "mel_l1", "usage", "perplexity")


# --------------------------------------------------------------------------- main, step by step


@dataclass
class _Run:
    """What the steps of :func:`main` share."""

    args: argparse.Namespace
    tok: AudioTokenizer
    opt: torch.optim.Optimizer
    feats: list[torch.Tensor]  # context log-mel [M, F] of every training clip, on the CPU
    out: Path
    val_files: list[Path] | list[torch.Tensor]  # validation clips: files, or waveforms from a cache
    step: int = 0
    crop_weights: torch.Tensor | None = None  # how likely each clip is cropped (None: by length)
    band_weights: torch.Tensor | None = None  # (M, 1) weights of the L1 and squared error (--band-weight; None: 1)
    elapsed: float = 0.0  # training seconds so far, across resumes
    groups_note: str | None = None  # what a codebook group is (None: no codebook was fitted)
    last: dict[str, float] = field(default_factory=dict)  # figures of the last batch
    prov: dict[str, Any] = field(default_factory=dict)  # provenance saved with every checkpoint
    material: str = ""  # what the run trains and validates on, by content (its content_digest), checked on --resume
    gen: torch.Generator = field(default_factory=torch.Generator)  # the crops' and level draws' generator
    begun: Start = field(default_factory=lambda: Start.of(0))  # the weights the run started or resumed from
    probe: torch.Tensor | None = None  # the last step's batch, decoded by the weights it left before they are saved

    @property
    def conv(self) -> bool:
        return self.tok.cfg.encoder_kind == "conv"


def material_digest(sources: Sequence[CacheClip | torch.Tensor | Path], val_names: Sequence[str]) -> str:
    """What a train-state saved before the content was recorded (``content_digest``) keeps of its data, under
    ``data_digest`` (:func:`~mmtok.core.trainstate.json_digest`): each training clip's length in samples (a
    cache's) or its file name and size in bytes (a folder's), in order, and the names of its validation clips.
    Such a run is resumed by that rule; its next checkpoint records the content. (The frame-length ``material``
    an earlier version kept is passed over.)"""
    clips = [w.clip.length if isinstance(w, CacheClip) else int(w.numel()) if isinstance(w, torch.Tensor)
             else [w.name, w.stat().st_size] for w in sources]
    return json_digest([clips, [str(n) for n in val_names]])


def start(run: _Run, groups: list[int], groups_note: str) -> None:
    """Resume from OUT/train-state (``--resume``), or set the feature normalization from the
    training clips and, for the "slice" encoder, fit the codebook."""
    args, tok = run.args, run.tok
    if note := warmup_note(args.warmup, args.steps, who="mmtok train-tokenizer audio"):
        print(note, file=sys.stderr)
    state = run.out / STATE_DIR
    if args.resume and (state / "config.json").is_file():
        with reading_state_to_resume(run.out, model_dir=MODEL_DIR):
            st = load_train_state(state, model=tok, optimizer=run.opt, kind="audio")
        run.step, run.elapsed = st["step"], float(st["extra"].get("elapsed", 0.0))
        run.groups_note, run.begun = st["extra"].get("codebook_groups"), Start.of(run.step, resumed=state)
        extra = dict(st["extra"])
        if "mel_l1" not in extra:  # saved before the two were told apart: its "loss" was the L1 alone
            extra["mel_l1"] = extra.pop("loss", None)
        run.last = {k: extra[k] for k in LAST_KEYS if extra.get(k) is not None}
        if "crop_generator" in st["extra_tensors"]:  # the draws go on where they stopped, as if never killed
            run.gen.set_state(st["extra_tensors"]["crop_generator"])
        else:  # a state saved before the generator was kept
            run.gen.manual_seed(args.seed * 1000 + run.step)
        print(f"resumed at step {run.step}", file=sys.stderr)
        if note := schedule_note(args, run.step, (st["extra"].get("settings") or {}).get("steps"), run.out):
            print(note, file=sys.stderr)
        if run.step >= args.steps:
            print(f"the run is at --steps {args.steps} already: nothing to train, the model is written again "
                  "(a larger --steps extends it)", file=sys.stderr)
        return
    if args.init_from:  # normalization, codebook and weights are the source tokenizer's
        run.groups_note, run.begun = groups_note, Start.of(0, init_from=args.init_from)
        return
    ctx = tok.context_frames
    allf = torch.cat([f[:, ctx : f.shape[-1] - ctx] for f in run.feats], 1)
    tok.feature_mean.copy_(allf.mean(1, keepdim=True))
    tok.feature_std.copy_(allf.std(1, keepdim=True).clamp_min(0.1))
    if run.conv:
        return
    t = time.perf_counter()
    run.groups_note = groups_note
    print(f"balanced codebook groups: {groups_note}", file=sys.stderr)
    fit_codebook(tok, run.feats, vectors=args.kmeans_vectors, iters=args.kmeans_iters,
                 generator=torch.Generator().manual_seed(args.seed), balance_rounds=args.kmeans_balance,
                 min_groups=args.kmeans_min_groups, groups=groups)
    print(f"k-means codebook: {time.perf_counter() - t:.0f} s", file=sys.stderr)


def schedule_note(args: argparse.Namespace, step: int, own: int | None, out: Path) -> str | None:
    """A resumed run given another ``--steps`` than its own (``own``): its cosine is drawn anew to end there, so
    it no longer takes the steps an unbroken run of either length takes; the line saying so, with the learning
    rate of the next step by both schedules (None when ``--steps`` is the run's own or the run is done)."""
    if own is None or int(own) == args.steps or step >= args.steps:
        return None

    def rate(total: int) -> float:
        return warmup_cosine(step, peak=args.lr, warmup=args.warmup, total=total, floor=FINAL_LR_FRAC * args.lr)

    how = "stretches" if args.steps > int(own) else "squeezes"
    return (f"{COMMAND}: --steps {args.steps} (the run's: {own}) {how} the cosine of {out} to end at step "
            f"{args.steps}: the learning rate at step {step + 1} is {rate(args.steps):.3g} (by the run's own "
            f"schedule: {rate(int(own)):.3g})")


def train_mode(run: _Run) -> None:
    run.tok.train()
    if run.args.decoder_only:
        freeze_codes(run.tok)  # encoder and codebook fixed: every clip keeps its codes
    elif not run.conv:
        run.tok.vq.eval()  # the k-means codebook stays fixed: only the decoder learns


def check_probe_decodes(run: _Run) -> None:
    """The weights of the last step decode its batch (:attr:`_Run.probe`) to a log-mel whose exp() is finite:
    each step's check sees the weights before that step moved them. No update and no count is left behind."""
    if run.probe is None:
        return
    tok, seen = run.tok, run.tok.vq.seen_counts.clone()
    tok.eval()
    try:
        with torch.inference_mode():
            recon = tok(run.probe).reconstruction
    finally:
        train_mode(run)
        tok.vq.seen_counts.copy_(seen)
    check_decodable(recon, step=run.step, lr=run.args.lr, after=True, state_dir=run.out / STATE_DIR)


def save_state(run: _Run) -> None:
    """The resumable state in OUT/train-state, once every tensor it holds is known to be finite and its
    weights decode to finite audio."""
    check_state_finite([Trained("the tokenizer", "--lr", run.args.lr, module=run.tok, optimizer=run.opt)],
                       step=run.step, state_dir=run.out / STATE_DIR)
    check_probe_decodes(run)
    extra = {"elapsed": run.elapsed, "codebook_groups": run.groups_note, **run.last,
             "settings": settings_record(run.args), "content_digest": run.material}
    save_train_state(run.out / STATE_DIR, kind="audio", config=run.tok.cfg, model=run.tok, optimizer=run.opt,
                     step=run.step, extra=extra, provenance=run.prov,
                     extra_tensors={"crop_generator": run.gen.get_state()})


def finish(run: _Run) -> None:
    """The last state, the model in OUT/model with its card, validation, summary.json, then the pictures."""
    tok, prov = run.tok, run.prov
    save_state(run)
    prov.update(steps=run.step, train_minutes=round(run.elapsed / 60, 1), last=run.last)
    save_module(tok, run.out / MODEL_DIR, provenance=prov, extra_files={"README.md": model_card(tok.cfg, prov)})
    tok.vq.reset_stats()
    tok.eval()
    with torch.inference_mode():
        for f in run.feats[:USAGE_CLIPS]:
            tok(f[None].to(tok.device))
    counts = tok.vq.usage_stats().counts
    if run.val_files:
        prov["validation"] = validate(tok, run.val_files)
    train_mode(run)
    (run.out / "summary.json").write_text(json.dumps(prov, indent=1))
    save_pictures(tok, run.feats[0][:, : 2 * 200 + 2 * tok.context_frames], counts, run.out)


def train_steps(run: _Run) -> None:
    """Optimizer steps up to ``--steps``: warmup and cosine decay, random crops, a checkpoint
    every ``--save-every`` steps."""
    from tqdm import tqdm

    args, tok, cfg, gen = run.args, run.tok, run.tok.cfg, run.gen
    train_mode(run)
    weights = None if run.band_weights is None else run.band_weights.to(tok.device)
    bar = tqdm(total=args.steps, initial=run.step, disable=args.no_progress, desc="audio tokenizer")
    t0 = time.perf_counter() - run.elapsed
    while run.step < args.steps:
        lr = warmup_cosine(run.step, peak=args.lr, warmup=args.warmup, total=args.steps,
                           floor=FINAL_LR_FRAC * args.lr)
        for g in run.opt.param_groups:
            g["lr"] = lr
        mel = random_feature_crops(run.feats, args.batch_size, args.crop_tokens, fpt=cfg.frames_per_token,
                                   ctx=tok.context_frames, floor=math.log(cfg.log_floor), generator=gen,
                                   weights=run.crop_weights)
        mel = attenuate_crops(mel, gain_db=args.gain_db, prob=args.gain_prob, floor=math.log(cfg.log_floor),
                              generator=gen)
        with diverging_forward(step=run.step + 1, state_dir=run.out / STATE_DIR, lr=args.lr, start=run.begun,
                               batch=mel, trains_encoder=run.conv and not args.decoder_only):
            res = tok(mel.to(tok.device))
        loss, err = res.loss, res.reconstruction - res.target
        if weights is not None:  # the tokenizer's plain L1 swapped for the weighted one
            loss = loss - res.recon_loss + (err.abs() * weights).mean() / tok.feature_std.mean()
        if args.mse_weight:
            sq = err.pow(2) if weights is None else err.pow(2) * weights
            loss = loss + args.mse_weight * sq.mean() / tok.feature_std.pow(2).mean()
        if args.compressed_weight:
            loss = loss + args.compressed_weight * compressed_l1(res.reconstruction, res.target)
        if args.envelope_weight:
            bands = band_matrix(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
            loss = loss + args.envelope_weight * envelope_correlation_loss(res.reconstruction, res.target, bands,
                                                                           log_floor=math.log(cfg.log_floor))
        if not torch.isfinite(loss):
            raise loss_not_finite(loss.item(), step=run.step + 1, flag="--lr", lr=args.lr, batch=[mel],
                                  start=run.begun, state_dir=run.out / STATE_DIR)
        check_decodable(res.reconstruction, step=run.step + 1, lr=args.lr, state_dir=run.out / STATE_DIR)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tok.parameters(), 1.0)
        run.opt.step()
        check_weights_finite(tok, step=run.step + 1, state_dir=run.out / STATE_DIR, lr=args.lr)
        run.probe = mel.to(tok.device)
        run.step += 1
        run.elapsed = time.perf_counter() - t0
        run.last = {"loss": round(loss.item(), 4), "mel_l1": round(res.recon_loss.item(), 4),
                    "usage": round(res.usage.item(), 3),
                    "perplexity": round(res.perplexity.item(), 1)}
        bar.update(1)
        bar.set_postfix(l1=run.last["mel_l1"], use=run.last["usage"], ppl=run.last["perplexity"])
        if run.step % args.save_every == 0 and run.step < args.steps:
            save_state(run)
    bar.close()


def crop_note(args: argparse.Namespace, cfg: AudioTokenizerConfig, ctx: int, feats: Sequence[torch.Tensor],
              weights: torch.Tensor | None) -> None:
    """Say on stderr when training clips are shorter than one crop of ``--crop-tokens`` (:func:`padding_note`)."""
    frames = [int(f.shape[-1]) for f in feats]
    width = cfg.frames_per_token * args.crop_tokens + 2 * ctx
    median = max(1, (sorted(frames)[len(frames) // 2] - 2 * ctx) // cfg.frames_per_token)
    note = padding_note(frames, width, weights=None if weights is None else weights.tolist(), who=COMMAND,
                        piece=f"crop (--crop-tokens {args.crop_tokens}: {width * cfg.hop_length / cfg.sample_rate:g} s)",
                        fix=f"a smaller --crop-tokens fits more of them (the median clip holds {median} tokens)")
    if note:
        print(note, file=sys.stderr)


def _source(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str],
            ) -> tuple[AudioTokenizerConfig, dict[str, torch.Tensor] | None, str | None, dict[str, Any]]:
    """What the run trains (``--out`` held, the options checked): the tokenizer's config, the weights it
    starts from (``--init-from``), the note on its source for the provenance, and the resumed run's
    provenance ({} for a new run). A resumed run rebuilds the tokenizer it was training, with its own
    settings (:func:`~mmtok.audio.train_init.resume_source`); a refused flag, a finished run in the way
    or a missing or wrong ``--init-from`` fails here, before anything is read or written. ``--resume`` of a folder
    without a train-state starts the run afresh, said on stderr (a run stopped before its first checkpoint leaves
    none); one that holds its model but no train-state is refused."""
    out = Path(args.out)
    check_run_folder(out, resume=args.resume, overwrite=False, marks=RUN_MARKS,
                     overwrite_flag=False)  # a finished run is not redone
    if args.resume:
        check_resume_folder(out, state_dir=STATE_DIR)
    resumed = resume_source(parser, args, argv, out / STATE_DIR)
    if resumed is not None:
        return resumed[0], None, resumed[1].get("init_from"), resumed[1]
    check_fresh_run(parser, args)
    if args.init_from:
        return (*init_source(args), {})
    return build_config(args), None, None, {}


def main(argv: Sequence[str] | None = None) -> int:
    """Train; returns 0. ``argv`` are the options after ``mmtok train-tokenizer audio``. ``--out`` is held
    (:func:`~mmtok.core.run_lock.hold_run_folder`) from before it is looked at to the end: a second run
    into it is refused, and a train state a killed run left mid-swap is put back first."""
    parser = build_parser()
    argv = list(argv) if argv is not None else sys.argv[1:]
    args = parser.parse_args(argv)
    check_args(parser, args)
    check_data(parser, args)
    with hold_run_folder(args.out):
        run = _train(parser, args, argv)
    print(json.dumps({"steps": run.step, "minutes": round(run.elapsed / 60, 1), **run.last}))
    return 0


def _train(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> _Run:
    """The run in the held ``--out``: its source, data and log-mel, then the steps and the final files."""

    cfg, weights_from, init_note, was = _source(parser, args, argv)
    bands = check_bands(parser, args, cfg, argv)  # against the tokenizer's mel channels, before any data
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    weights = None
    args.split = data_split(args.data, args.split)  # None for a folder or a cache
    validated_on = None
    if is_cache(args.data):
        check_sample_rate(args.data, cfg.sample_rate, f"--init-from {args.init_from}" if args.init_from
                          else f"the tokenizer of {args.out}")
        sources, val_clips, val_names, groups, groups_note, weights = cache_material(args, sample_rate=cfg.sample_rate)
        material = cache_digest(args.data)
    elif args.split is not None:
        sources, val_clips, groups, groups_note, validated_on = manifest_material(args)
        val_names = [f.relative_to(Path(args.data).parent).as_posix() for f in val_clips]
        material = folder_digest(sources, val_clips)
        print(f"training on split {args.split!r} of {args.data}: {len(sources)} files; {validated_on}", file=sys.stderr)
    else:
        sources, val_clips, groups, groups_note = training_files(args)
        val_names = [f.name for f in val_clips]
        material = folder_digest(sources, val_clips)
    if args.resume:  # before any log-mel: other data is refused at once
        refusal = (f"--data {args.data} is not the material the run in {args.out} trained on (other audio, or other "
                   "validation clips); resume with its own data (moved is fine), or train into a new --out")
        check_trained_on(Path(args.out) / STATE_DIR, "content_digest", material, refusal)
        check_trained_on(Path(args.out) / STATE_DIR, "data_digest", material_digest(sources, val_names), refusal)
    out = Path(args.out)
    device = pick_device(args.device)
    tok = AudioTokenizer(cfg)
    if weights_from is not None:
        load_grown(tok, weights_from)
    tok = tok.to(device)
    with torch.inference_mode():
        feats, val_clips = read_material(sources, val_clips, lambda w: tok.context_features(w.to(device)).cpu(),
                                         cfg.sample_rate, progress=not args.no_progress)
    del sources
    crop_note(args, cfg, tok.context_frames, feats, weights)
    # every parameter, --decoder-only or not (train_mode freezes the encoder and codebook), so any run resumes
    opt = torch.optim.AdamW([p for p in tok.parameters() if p.requires_grad], lr=args.lr,
                            weight_decay=0.0, betas=(0.9, 0.99))
    run = _Run(args, tok, opt, feats, out, val_clips, crop_weights=weights, material=material,
               gen=torch.Generator().manual_seed(args.seed * 1000), band_weights=bands)
    start(run, groups, groups_note)
    seconds = sum(f.shape[-1] for f in feats) * cfg.hop_length / cfg.sample_rate
    run.prov = {**command_lines(f"{COMMAND} {shlex.join(argv)}", was), "data": str(Path(args.data)),
                "train_files": len(feats), "validation_files": val_names, "train_seconds": round(seconds, 1),
                "machine": f"{platform.machine()} {device}", **device_record(device), "threads": torch.get_num_threads(),
                "codebook_groups": run.groups_note}
    if args.split is not None:
        run.prov.update(split=args.split, validated_on=validated_on)
    if init_note:
        run.prov["init_from"] = init_note
    if args.decoder_only:
        run.prov["decoder_only"] = True
    train_steps(run)
    finish(run)
    return run
