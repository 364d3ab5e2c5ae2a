"""One vocoder training run in its folder: set up (new or resumed), step, checkpoint, validate.

The command around it, its stages and the run folder's layout are described in
:mod:`mmtok.audio.vocoder_train`; this module holds the run itself (:class:`Run`). What fixes a run, the
names in its folder and how it starts from another checkpoint are :mod:`mmtok.audio.vocoder_settings`'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import random
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmtok.audio.config import front_end_mismatch
from mmtok.audio.corpus import synthetic_clips
from mmtok.audio.discriminator import WaveGAN, random_crops
from mmtok.audio.front_end import SAMPLE_RATE
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.train_data import padding_note
from mmtok.audio.vocoder import Vocoder, mel_l1, multi_resolution_stft_loss
from mmtok.audio.vocoder_config import VocoderConfig
from mmtok.audio.vocoder_data import (
    AudioCache,
    MixedClips,
    cache_digest,
    draw_batch,
    listed_digest,
    mixed_weights,
    read_jsonl,
    sampling_weights,
    truncate_log,
    validation_set,
    write_json_atomic,
)
from mmtok.audio.vocoder_eval import (
    decoded_features,
    evaluate,
    figures_given,
    griffin_lim_scores,
    missing_figure,
)
from mmtok.audio.vocoder_joint import DecoderTuning
from mmtok.audio.vocoder_settings import (
    BASELINE_NAME,
    BEST_DIR,
    BEST_TOKENIZER_DIR,
    LOG_NAME,
    MODEL_DIR,
    STATE_DIR,
    TOKENIZER_DIR,
    VALIDATION_NAME,
    disc_window,
    initial_vocoder,
    run_settings,
    segment_samples,
)
from mmtok.core.checkpoint import config_from_dict, read_config
from mmtok.core.checkpoint_names import checkpoint_source
from mmtok.core.device import device_record, pick_device
from mmtok.core.divergence import (
    Start,
    Trained,
    check_decodable,
    check_state_finite,
    check_weights_finite,
    loss_not_finite,
)
from mmtok.core.errors import CheckpointError, ResumeMismatchError, UsageError
from mmtok.core.module_io import load_module, load_state_dict_checked, save_module
from mmtok.core.resume import reading_state_to_resume
from mmtok.core.schedule import warmup_cosine, warmup_note
from mmtok.core.trainstate import (
    check_trained_on,
    command_lines,
    load_train_state,
    save_train_state,
)

__all__ = ["Run"]


@contextmanager
def _rng_kept() -> Iterator[None]:
    """Leave torch's CPU, NumPy's and Python's random states as they were, so that a validation repeated on
    resume leaves the batches after it as a run that was never stopped draws them."""
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    with torch.random.fork_rng(devices=[]):
        yield
    np.random.set_state(np_state)  # noqa: NPY002
    random.setstate(py_state)


class Run:
    """One training run in ``args.out``: set up (new or resumed), step, checkpoint and validate.

    The options come checked, and a resumed run's own settings taken (:mod:`mmtok.audio.vocoder_checks`);
    ``prefix`` is the command as typed, before ``argv`` (the provenance records both)."""

    def __init__(self, args: argparse.Namespace, argv: list[str], *,
                 prefix: str = "mmtok train-tokenizer vocoder") -> None:
        self.args, self.out = args, Path(args.out)
        self.state_dir = self.out / STATE_DIR
        resuming = self.resumed = bool(args.resume and (self.state_dir / "config.json").is_file())
        init = self._config(resuming)
        self.tok = self._tokenizer(resuming)
        unit = VocoderConfig.hop_length if self.tok is None else self.tok.cfg.samples_per_token
        self.seg = segment_samples(args.segment_seconds, unit)  # samples per training segment
        was = self.saved_prov.get("segment_samples") if resuming else None
        if was is not None and was != self.seg:
            raise ResumeMismatchError(f"{self.out} was trained on segments of {was} samples; --segment-seconds "
                                      f"{args.segment_seconds:g} gives {self.seg}: leave it out to take the run's")
        self.out.mkdir(parents=True, exist_ok=True)
        cache_dir = Path(args.cache)
        real, val = AudioCache(cache_dir, "train"), AudioCache(cache_dir, "validation")
        self.material = cache_digest(cache_dir)
        if resuming:  # before the state is loaded (a state saved before any digest was recorded is not checked)
            refusal = (f"--cache {cache_dir} holds other clips than the cache the run in {self.out} trained on "
                       "(other files, or other audio in them); resume with that cache (moved or rebuilt from the "
                       "same files is fine), or train into a new --out")
            check_trained_on(self.state_dir, "content_digest", self.material, refusal)
            check_trained_on(self.state_dir, "material", listed_digest(real, val), refusal)
        self.synthetic = self.saved_prov.get("synthetic") if resuming else (
            {"clips": args.synthetic, "share": args.synthetic_share, "seed": args.seed,
             **({"tones": args.synthetic_tones} if args.synthetic_tones else {})} if args.synthetic else None)
        if self.synthetic:  # a resumed run redraws the clips it started with, whatever the options say
            synth = synthetic_clips(self.synthetic["clips"], seed=self.synthetic["seed"], sample_rate=SAMPLE_RATE,
                                    tones=self.synthetic.get("tones", 0.0))
            self.train_set: AudioCache | MixedClips = MixedClips(real, synth)
            self.probs = mixed_weights(sampling_weights(real.clips), len(synth), self.synthetic["share"])
        else:
            self.train_set, self.probs = real, sampling_weights(real.clips)
        if note := padding_note([c.length for c in self.train_set.clips], self.seg, weights=self.probs, who=prefix,
                                piece=f"segment (--segment-seconds {self.seg / SAMPLE_RATE:g})",
                                fix="a shorter --segment-seconds fits more of them"):
            print(note, file=sys.stderr)
        self.voc = Vocoder(self.cfg).to(pick_device(args.device))
        if init is not None:
            load_state_dict_checked(self.voc, init.state_dict(), where=args.init_from)
        if self.tok is not None:
            self.tok.to(self.voc.window.device)
        self.joint = self._joint(resuming)
        params = list(self.voc.parameters())
        groups: list[dict[str, Any]] = [
            {"params": [p for p in params if p.dim() > 1], "weight_decay": args.weight_decay},
            {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}]
        if self.joint is not None:  # the tokenizer's decoder: its own peak lr, no weight decay
            groups.append({"params": self.joint.params, "weight_decay": 0.0,
                           "lr_scale": self.joint_cfg["decoder_lr"] / args.lr})
        self.opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.8, 0.99))
        self.gan_cfg, self.best_by = self._adversarial(resuming)
        self.gan = None if self.gan_cfg is None else WaveGAN(
            weight=self.gan_cfg["weight"], fm_weight=self.gan_cfg["fm_weight"], start=self.gan_cfg["start"],
            warmup=self.gan_cfg["warmup"], lr=self.gan_cfg["lr"], channels=self.gan_cfg["channels"],
            device=self.voc.window.device)
        self.step, self.elapsed, self.best, self.best_step = 0, 0.0, math.inf, None
        self.begun = Start.of(0, init_from=args.init_from)  # the weights the run started or resumed from
        if note := warmup_note(args.warmup, args.steps, who=prefix):
            print(note, file=sys.stderr)
        if resuming:
            with reading_state_to_resume(self.out, model_dir=MODEL_DIR):
                st = load_train_state(self.state_dir, model=self.voc, optimizer=self.opt, kind=Vocoder.KIND)
            self.step, self.elapsed = st["step"], float(st["extra"].get("elapsed", 0.0))
            self.best = float(st["extra"].get("best_score", st["extra"].get("best_mel_l1", math.inf)))
            self.best_step = st["extra"].get("best_step")  # None: saved before it was recorded
            self.begun = Start.of(self.step, resumed=self.state_dir)
            if self.gan is not None:
                self.gan.load_state_tensors(st["extra_tensors"], st["extra"].get("disc_opt"), where=str(self.state_dir))
            if self.joint is not None:
                self.joint.load_state_tensors(st["extra_tensors"], where=str(self.state_dir))
            print(f"resumed at step {self.step}", file=sys.stderr)
        self.log_path, self.val_path = self.out / LOG_NAME, self.out / VALIDATION_NAME
        names = self._validation(val, resuming, prefix)
        for path in (self.log_path, self.val_path):  # the lines written after the checkpoint it restarts from;
            truncate_log(path, self.step if resuming else -1)  # a new run: all (a run stopped before one)
        self.prov = self._provenance(f"{prefix} {shlex.join(argv)}", cache_dir, params, names, init)

    def _config(self, resuming: bool) -> Vocoder | None:
        """Set ``self.cfg`` (and the seeds of a new run); the ``--init-from`` model of a new run, if any."""
        args = self.args
        init, self.saved_prov, self.saved_extra = None, {}, {}
        if resuming:  # the run's own model config wins over the options
            meta = read_config(self.state_dir, kind=Vocoder.KIND)
            self.cfg = config_from_dict(VocoderConfig, meta["config"])
            self.saved_prov = dict(meta.get("provenance") or {})
            self.saved_extra = dict((meta.get("train") or {}).get("extra") or {})
        elif args.init_from is not None:
            init = initial_vocoder(args.init_from)
            self.cfg = init.cfg
        else:
            self.cfg = VocoderConfig(dim=args.dim, intermediate=args.intermediate, blocks=args.blocks)
        self._mel_match(resuming)
        if not resuming:
            torch.manual_seed(args.seed)
            np.random.seed(args.seed)  # noqa: NPY002 - the global state is what train-state saves
        return init

    def _mel_match(self, resuming: bool) -> None:
        """``--mel-match`` / ``--mel-match-db`` set a new run's level correction (training runs through
        it); a resumed run keeps its own (asking it for another is refused before)."""
        if resuming:
            return
        args = self.args
        asked = {k: v for k, v in (("mel_match", args.mel_match), ("mel_match_db", args.mel_match_db)) if v is not None}
        if asked:
            self.cfg = dataclasses.replace(self.cfg, **asked)  # runs the range checks

    def _adversarial(self, resuming: bool) -> tuple[dict[str, Any] | None, str]:
        """The discriminators' settings (None: none) and the figure that picks best/; a resumed run keeps its own."""
        args = self.args
        if resuming:
            return self.saved_prov.get("discriminator"), self.saved_prov.get("best_by", "mel_l1")
        if args.disc_weight == 0:
            return None, args.best_by
        window = disc_window(args.disc_seconds, args.segment_seconds, self.seg)
        return {"weight": args.disc_weight, "fm_weight": args.fm_weight, "start": args.disc_start,
                "warmup": args.disc_warmup, "lr": args.disc_lr, "channels": args.disc_channels,
                "window_samples": window,
                "kinds": "multi-period (2, 3, 5, 7, 11) + multi-resolution STFT (512, 1024, 256); hinge + "
                         "feature matching"}, args.best_by

    def _joint(self, resuming: bool) -> DecoderTuning | None:
        """``--train-decoder``: the tokenizer's log-mel decoder trains too (None: it stays frozen).
        A resumed run keeps its own settings (as with the discriminators); asking a run that was
        started without it to train the decoder is refused (before)."""
        args = self.args
        if resuming:
            self.joint_cfg = self.saved_prov.get("train_decoder")
        elif args.train_decoder:
            self.joint_cfg = {"anchor": args.decoder_anchor,
                              "decoder_lr": args.lr if args.decoder_lr is None else args.decoder_lr}
        else:
            self.joint_cfg = None
        if self.joint_cfg is None or self.tok is None:
            return None
        return DecoderTuning(self.tok, anchor=self.joint_cfg["anchor"])

    def _tokenizer(self, resuming: bool) -> AudioTokenizer | None:
        """The tokenizer whose decoded features stage 2 trains on (None in stage 1), its fingerprint as read
        (``self.tok_fingerprint``, before any decoder tuning); a resumed run refuses one whose fingerprint is
        not the one it trained on (the folder now holds other weights), or, saved before that was recorded,
        not the one its provenance names (a ``--train-decoder`` run's was not checked)."""
        self.tok_fingerprint = None
        if self.args.features != "decoded":
            return None
        tok = load_module(AudioTokenizer, self.args.tokenizer)
        wrong = front_end_mismatch(tok.cfg, self.cfg)
        if wrong:
            raise UsageError(f"--tokenizer {self.args.tokenizer} writes another log-mel than this vocoder "
                             f"reads: {wrong}")
        self.tok_fingerprint = tok.fingerprint
        was = self.saved_extra.get("tokenizer_fingerprint")
        if was is None and resuming and not self.saved_prov.get("train_decoder"):
            was = (self.saved_prov.get("tokenizer") or {}).get("fingerprint")
        if was is not None and was != self.tok_fingerprint:
            raise ResumeMismatchError(f"--tokenizer {self.args.tokenizer} holds the tokenizer of fingerprint "
                                      f"{self.tok_fingerprint}, but the run in {self.out} trained on the one of "
                                      f"fingerprint {was}: resume it with that tokenizer, or train into a new --out")
        return tok

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The vocoder's input for segments ``x [B, S]``: ``[B, M, S // hop]``."""
        if self.tok is None:
            return self.voc.log_mel(x)[..., : x.shape[-1] // self.cfg.hop_length]
        return decoded_features(self.tok, x)

    def _validation(self, val: AudioCache, resuming: bool, who: str) -> list[str]:
        """Fix the validation material, the figures each clip can be given and the Griffin-Lim baseline (once
        per run: a resumed run reads its own); the clips' paths. A ``--best-by`` figure no clip can be given is
        refused before anything is written (:class:`UsageError`)."""
        args = self.args
        self.val_seg, self.val_waves, names = validation_set(
            val, segments=args.val_segments, segment_samples=self.seg, clips=args.val_clips,
            clip_samples=round(args.val_clip_seconds * SAMPLE_RATE))
        if self.tok is not None:  # whole tokens, so the decoded features cover each clip exactly
            unit = self.tok.cfg.samples_per_token
            self.val_waves = [w[: w.numel() // unit * unit] for w in self.val_waves]
        self.val_given = figures_given(self.val_waves)  # the clips each figure's mean covers, every step
        if self.best_by != "mel_l1" and not any(self.best_by in g for g in self.val_given):
            why = missing_figure(self.best_by, len(self.val_waves), min(args.val_clip_seconds, 3.0))
            raise UsageError(f"--best-by {self.best_by} picks best/ by a figure no validation clip can be given: "
                             f"{why}; use --best-by mel_l1, or give such clips")
        if args.val_clips and not self.val_waves:  # asked for, none there: the figures would be missing unsaid
            why = missing_figure("stoi", 0, min(args.val_clip_seconds, 3.0))
            print(f"{who}: note: no validation clip is scored for STOI and PESQ-WB: {why}", file=sys.stderr)
        baseline_path = self.out / BASELINE_NAME
        if self.val_waves and not (resuming and baseline_path.is_file()):  # computed once per run
            write_json_atomic(baseline_path, {**griffin_lim_scores(self.val_waves, self.tok, given=self.val_given),
                                              "files": names})
        elif not resuming:  # a run stopped before its first checkpoint, started afresh without clips
            baseline_path.unlink(missing_ok=True)
        self.baseline = json.loads(baseline_path.read_text()) if baseline_path.is_file() else {}
        self.baseline.pop("files", None)
        return names

    def _provenance(self, command: str, cache_dir: Path, params: list[torch.nn.Parameter], names: list[str],
                    init: Vocoder | None) -> dict[str, Any]:
        args = self.args
        prov: dict[str, Any] = {
            **command_lines(command, self.saved_prov if self.resumed else {}), "settings": run_settings(args),
            "stage": "true log-mel features" if self.tok is None else "decoded features of the tokenizer",
            "features": args.features, "cache": str(cache_dir.resolve()), "train_files": len(self.train_set.clips),
            "train_hours": round(sum(c.length for c in self.train_set.clips) / SAMPLE_RATE / 3600, 2),
            "sampling": "source ∝ sqrt(hours), group ∝ sqrt(hours), file ∝ length, uniform offset",
            "parameters": sum(p.numel() for p in params), "machine": f"{platform.machine()} {self.voc.window.device}",
            **device_record(self.voc.window.device),
            "threads": torch.get_num_threads(), "batch_size": args.batch_size, "segment_samples": self.seg,
            "lr": args.lr, "mel_weight": args.mel_weight, "validation_clips": names, "best_by": self.best_by,
        }
        if self.gan_cfg is not None:
            prov["discriminator"] = self.gan_cfg
        if self.joint_cfg is not None:
            prov["train_decoder"] = self.joint_cfg
        if self.synthetic:
            prov["synthetic"] = self.synthetic
            prov["sampling"] += (f"; plus {self.synthetic['clips']} seeded synthetic clips "
                                 f"({self.synthetic['share']:.0%} of the segments), each its own group")
        if self.tok is not None:
            prov["tokenizer"] = {"source": args.tokenizer, "fingerprint": self.tok_fingerprint,
                                 "steps": getattr(self.tok, "provenance", {}).get("steps")}
        if init is not None:
            prov["init_from"] = {"source": checkpoint_source(args.init_from),
                                 "steps": getattr(init, "provenance", {}).get("steps")}
        elif "init_from" in self.saved_prov:  # a resumed run keeps what it started from
            prov["init_from"] = self.saved_prov["init_from"]
        return prov

    def _validate(self) -> dict[str, Any]:
        feats = None if self.tok is None else self.features
        return {"step": self.step, **evaluate(self.voc, self.val_seg, self.val_waves, features=feats,
                                              given=self.val_given),
                "griffin_lim": self.baseline, "minutes": round(self.elapsed / 60, 1)}

    def checkpoint(self, *, redo: bool = False) -> None:
        """Validate, then write train-state, model (and best) atomically; append the validation row.

        ``redo``: the train-state of this step is written already (the run was stopped before the rest):
        validate again and write the rest, best/ too when this step was the best."""
        row = self._validate()
        score = row[self.best_by] if self.best_by == "mel_l1" else -row[self.best_by]  # lower is better
        if redo:  # (a state saved before best_step was recorded holds this step's score as its best if it was)
            improved = self.best_step == self.step if self.best_step is not None else score <= self.best
            truncate_log(self.val_path, self.step - 1)
        else:
            improved = score < self.best
            if improved:
                self.best, self.best_step = score, self.step
            self._save_state()
        prov = {**self.prov, "steps": self.step, "validation": row}
        if self.joint is not None:  # the tuned tokenizer written beside it now: the one --attach may join it to
            prov["tuned_tokenizer"] = {"fingerprint": self.joint.tok.fingerprint}
        save_module(self.voc, self.out / MODEL_DIR, provenance=prov)
        if improved:
            save_module(self.voc, self.out / BEST_DIR, provenance=prov)
        if self.joint is not None:  # the tuned tokenizer beside each vocoder folder written now
            for tok_dir in [TOKENIZER_DIR] + ([BEST_TOKENIZER_DIR] if improved else []):
                self.joint.save(self.out / tok_dir, source=self.args.tokenizer, run=self.out, steps=self.step)
        with open(self.val_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), file=sys.stderr, flush=True)

    def parts(self) -> list[Trained]:
        """What its train state holds, as the divergence checks name it."""
        return [Trained("the vocoder", "--lr", self.args.lr, module=self.voc, optimizer=self.opt),
                *([self.gan.part("the discriminators")] if self.gan is not None else []),
                *([Trained("the tokenizer's decoder", "--decoder-lr", self.joint_cfg["decoder_lr"],
                           module=self.joint.tok.decoder)] if self.joint is not None else [])]

    def _save_state(self) -> None:
        """Write train-state: weights, optimizer, step, RNG, best score (and the discriminators, the decoder), once
        every tensor it holds is known to be finite."""
        check_state_finite(self.parts(), step=self.step, state_dir=self.state_dir)
        disc_tensors, disc_opt = self.gan.state_tensors() if self.gan is not None else ({}, None)
        if self.joint is not None:
            disc_tensors = {**disc_tensors, **self.joint.state_tensors()}
        save_train_state(self.state_dir, kind=Vocoder.KIND, config=self.cfg, model=self.voc, optimizer=self.opt,
                         step=self.step, extra={"elapsed": self.elapsed, "best_score": self.best,
                                                "best_step": self.best_step, "content_digest": self.material,
                                                "tokenizer_fingerprint": self.tok_fingerprint,
                                                **({"disc_opt": disc_opt} if self.gan is not None else {})},
                         provenance=self.prov, extra_tensors=disc_tensors)

    def checkpoint_written(self) -> bool:
        """Whether the checkpoint of this step is whole: model/ holds this step and validation.jsonl a row
        for it (the last thing a checkpoint writes). A stop right after train-state leaves it not."""
        try:
            steps = (read_config(self.out / MODEL_DIR, kind=Vocoder.KIND).get("provenance") or {}).get("steps")
        except CheckpointError:
            return False
        return steps == self.step and any(r.get("step") == self.step for r in read_jsonl(self.val_path))

    def validate_init(self) -> None:
        """Step 0 of a run started ``--init-from``: how the initial model does (no checkpoint written)."""
        if self.step or "init_from" not in self.prov or any(r.get("step") == 0 for r in read_jsonl(self.val_path)):
            return
        row = {**self._validate(), "init_from": self.prov["init_from"]["source"]}
        with open(self.val_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), file=sys.stderr, flush=True)

    def train_step(self) -> dict[str, float]:
        """One optimizer step on a fresh batch; the loss terms (a non-finite loss raises, nothing stepped)."""
        args, voc = self.args, self.voc
        lr = warmup_cosine(self.step, peak=args.lr, warmup=args.warmup, total=args.steps,
                           floor=args.lr * args.min_lr_frac)
        for group in self.opt.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        x = draw_batch(self.train_set, self.probs, args.batch_size, self.seg, args.gain_db).to(voc.window.device)
        with torch.no_grad():
            mel = voc.log_mel(x)  # (B, M, S/hop + 1): the target's features
            if self.joint is None:
                inp = mel[..., : self.seg // self.cfg.hop_length] if self.tok is None else decoded_features(self.tok, x)
        anchor = None
        if self.joint is not None:  # the decoded features with gradients to the tokenizer's decoder
            inp = self.joint.features(x)
            check_decodable(inp, step=self.step + 1, lr=self.joint_cfg["decoder_lr"], flag="--decoder-lr",
                            state_dir=self.state_dir)
            anchor = self.joint.anchor_loss(inp, mel)
        y = voc.render(inp)  # (B, S): through the level correction when the config has one
        sc, mag = multi_resolution_stft_loss(y, x)
        ml = mel_l1(y, mel, voc.filters)
        loss = sc + mag + args.mel_weight * ml
        if anchor is not None:
            loss = loss + self.joint.anchor * anchor
        adv: dict[str, float] = {}
        if self.gan is not None:
            real_w, fake_w = random_crops(x, y, self.gan_cfg["window_samples"])
            term, adv = self.gan.generator_loss(real_w, fake_w, self.step)
            loss = loss + term
        if not math.isfinite(loss.item()):  # what is at fault looked for only now
            parts = self.parts()
            figures = {"the discriminators' adversarial term": (adv["g_adv"], parts[1]),
                       "their feature matching term": (adv["fm"], parts[1])} if "g_adv" in adv else {}
            raise loss_not_finite(loss.item(), step=self.step + 1, flag="--lr", lr=args.lr, parts=parts,
                                  figures=figures, batch=[x], start=self.begun, state_dir=self.state_dir)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(voc.parameters(), args.clip_grad))
        if self.joint is not None:
            adv["decoder_grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.joint.params, args.clip_grad))
            adv["anchor"] = anchor.item()
        self.opt.step()
        check_weights_finite(voc, step=self.step + 1, state_dir=self.state_dir, lr=args.lr)
        if self.joint is not None:
            check_weights_finite(self.joint.tok.decoder, step=self.step + 1, state_dir=self.state_dir,
                                 lr=self.joint_cfg["decoder_lr"], flag="--decoder-lr")
        if self.gan is not None:
            adv.update(self.gan.checked_step(real_w, fake_w, self.step, name="the discriminators",
                                             state_dir=self.state_dir))
        self.step += 1
        return {"loss": loss.item(), "stft_sc": sc.item(), "stft_logmag": mag.item(), "mel_l1": ml.item(),
                "lr": lr, "grad_norm": gnorm, **adv}

    def train(self) -> None:
        from tqdm import tqdm

        args = self.args
        self.validate_init()
        if self.resumed and not self.checkpoint_written():  # stopped between train-state and model/: finish it
            with _rng_kept():
                self.checkpoint(redo=True)
        self.voc.train()
        bar = tqdm(total=args.steps, initial=self.step, disable=args.no_progress, desc="vocoder", mininterval=10)
        t0 = time.perf_counter() - self.elapsed
        t_last, s_last = time.perf_counter(), self.step
        while self.step < args.steps:
            terms = self.train_step()
            self.elapsed = time.perf_counter() - t0
            bar.update(1)
            if self.step % args.log_every == 0 or self.step == args.steps:
                now = time.perf_counter()
                row = {"step": self.step, **{k: round(v, 7 if k == "lr" else 4) for k, v in terms.items()},
                       "s_per_step": round((now - t_last) / max(1, self.step - s_last), 3),
                       "minutes": round(self.elapsed / 60, 2)}
                t_last, s_last = now, self.step
                with open(self.log_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                bar.set_postfix(loss=row["loss"], mel=row["mel_l1"])
            if self.step % args.save_every == 0 or self.step == args.steps:
                c0 = time.perf_counter()
                self.checkpoint()
                t_last += time.perf_counter() - c0  # s_per_step times the training steps, not validation and saves
        bar.close()
