"""Train the :class:`~mmtok.audio.vocoder.Vocoder`: ``python -m mmtok.audio.vocoder_train --corpus C --cache D --out RUN``
(also ``mmtok train-tokenizer vocoder ...``).

Three jobs:

1. **Cache** (:mod:`mmtok.audio.vocoder_data`): ``--corpus`` (a folder with ``manifest.jsonl``)
   -> ``--cache``, the train and validation files as 16 kHz int16; resumable. Every manifest row is
   checked first; a cache is complete only with both splits, and one made from another version of
   the manifest is refused (delete it to build it anew).

2. **Training**, in two stages. Random segments of ``--segment-seconds`` from the train
   split, the vocoder asked to give each segment back from its log-mel:

   * stage 1, ``--features true`` (default): the segment's true log-mel, computed on the fly
     (the ceiling);
   * stage 2, ``--features decoded --tokenizer audio --init-from RUN1/best``: what the vocoder
     will read at inference, ``tok.decode_features(tok.encode(segment))`` of the tokenizer
     (a shipped name or a checkpoint folder), computed on the fly without gradients; the target
     stays the true waveform. ``--init-from`` starts from a stage-1 model (or the vocoder inside
     an audio tokenizer checkpoint, e.g. ``audio``) with fresh optimizer state, and a first
     validation row (step 0) says how that model does on decoded features. With
     ``--train-decoder`` the waveform losses also train the tokenizer's log-mel decoder (the
     codes stay the encoder's; ``--decoder-anchor`` × its own log-mel L1 keeps the features a
     log-mel; :mod:`mmtok.audio.vocoder_joint`), and the tuned tokenizer is written beside the
     vocoder (``RUN/tokenizer/``, ``RUN/best-tokenizer/``) for ``--attach``.

   ``--synthetic N`` mixes N seeded synthetic clips (tones, chirps, noises, clicks; the ones the
   tokenizer trainer's ``--synthetic`` draws) into ``--synthetic-share`` of the segments, so a
   vocoder trained mostly on speech still renders a steady tone at its pitch.

   Loss: multi-resolution STFT (spectral convergence + log-magnitude L1) + ``--mel-weight`` ×
   L1 to the segment's TRUE log-mel; with ``--disc-weight W`` also adversarial terms
   (:mod:`mmtok.audio.discriminator`: multi-period and multi-resolution STFT discriminators
   on a random ``--disc-seconds`` window of each segment, hinge loss × W plus feature
   matching × ``--fm-weight``, after ``--disc-warmup`` discriminator-only steps and a ramp),
   the discriminators stepping after the vocoder. AdamW, linear warmup then cosine decay
   (:func:`mmtok.core.schedule.warmup_cosine`), gradient clipping. A non-finite loss stops the
   run with an error naming the step and what is at fault (:mod:`mmtok.core.divergence`: the
   discriminators, the batch, or at the first step the weights it started from), and nothing is
   saved; so do discriminators that diverge, and no train state holds a NaN. Validation reads the same kind of
   features as training, and Griffin-Lim's figures on those features are the baseline.

3. **Attach**: ``--attach OUT`` writes an audio tokenizer checkpoint = ``--tokenizer``'s config
   and weights + a vocoder (``--vocoder CKPT``, default ``--out``'s ``best/``) as its learned
   decoder, atomically, with both sources and their steps in its provenance
   (:func:`mmtok.audio.attach.attach_vocoder`); ``tok.decode(codes)`` then uses the vocoder.
   ``--tokenizer`` left out is the one the vocoder was trained on: a stage-2 run's ``--tokenizer``, a
   ``--train-decoder`` run's ``RUN/best-tokenizer`` for ``RUN/best`` (``RUN/tokenizer`` for ``RUN/model``),
   the shipped ``audio`` for a stage-1 vocoder; a tokenizer whose fingerprint is not the one the vocoder
   was trained on (nor its codebook pruned) is refused (a stage-1 vocoder fits any). ``OUT`` must be new,
   empty or an audio tokenizer checkpoint (replaced).
   ``--vocoder`` may also name an audio tokenizer checkpoint (its learned vocoder is taken), and
   ``--mel-match N`` sets the passes of the level correction the vocoder runs after decoding
   (:mod:`mmtok.audio.mel_match`; it changes no weight and no code) and ``--mel-match-db`` its clamp.
   Given to a new run in ``--out``, the two set the run's vocoder, and training runs through the
   correction (the losses see the corrected waveform); a resumed run keeps its own.

Run folder::

    RUN/train-state/     weights + optimizer + step + RNG (+ the discriminators and their optimizer),
                         atomic, read by --resume
    RUN/model/           the vocoder alone (mmtok checkpoint of kind "vocoder")
    RUN/best/            the checkpoint with the best validation figure so far (``--best-by``: the lowest
                         log-mel L1 by default, or the highest STOI or wideband PESQ)
    RUN/tokenizer/, RUN/best-tokenizer/
                         --train-decoder only: the tokenizer with its tuned decoder, beside model/ and best/
    RUN/log.jsonl        one line per --log-every steps: loss terms, lr, grad norm, s/step
    RUN/validation.jsonl one line per checkpoint: log-mel L1 and STFT losses on fixed validation
                         segments, STOI and wideband PESQ on fixed speech clips (with
                         Griffin-Lim's figures on the same clips and features for comparison)
    RUN/griffin-lim.json that baseline, computed once per run

A new run needs an empty (or new) ``--out``; ``--resume`` continues the run in it, with the run's own
settings for the options left out, and refuses an option given another value than the run's
(:mod:`mmtok.audio.vocoder_checks`; ``--steps`` may grow); of a run stopped before its first checkpoint
(its log, validation rows and baseline, no train-state) it starts the run afresh, rewriting those files.
``RUN/.lock`` keeps a second process out while one runs, and is taken before the folder is looked at,
which puts back a checkpoint folder a killed run left mid-swap and removes the temporary files of stopped
processes. A ``kill -9`` loses at most the steps since
the last checkpoint; ``--resume`` restores the RNG states too, so the continued run draws the same
batches it would have drawn, and first finishes a checkpoint stopped after its train-state (model/,
best/ and the validation row of that step).

Errors are one line, ``mmtok: error: ...``; exit status 2 for a refused flag, file or folder (an ``--out``
that holds another run or other files, as for every trainer), 1 for a run that cannot go on (a non-finite
loss). Every option is checked before any work (:mod:`mmtok.audio.vocoder_checks`): the checkpoints it
reads are there and made for the cache's 16 kHz audio, ``--attach`` may write its folder, and no option
is given that the command would ignore (``--vocoder`` without ``--attach``; the run's options without
``--out``; ``--dim``/``--intermediate``/``--blocks`` beside ``--init-from``). A resumed stage-2 run refuses a
``--tokenizer`` that now holds other weights than it trained on (another fingerprint); ``--best-by stoi``
or ``pesq_wb`` is refused before training when no validation clip can be given that figure.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from mmtok.audio.attach import SHIPPED_LIMIT_MB, attach_vocoder, folder_megabytes
from mmtok.audio.corpus import add_synthetic_arguments
from mmtok.audio.vocoder_checks import (
    check_options,
    check_out_folder,
    check_sources,
    take_run_settings,
)
from mmtok.audio.vocoder_config import VocoderConfig
from mmtok.audio.vocoder_data import build_cache
from mmtok.audio.vocoder_run import Run
from mmtok.audio.vocoder_settings import BEST_BY, FEATURES
from mmtok.core.adversary import add_adversary_options
from mmtok.core.command_line import HelpFormatter
from mmtok.core.device import pick_device
from mmtok.core.errors import CheckpointError, MmtokError, UsageError, report_error
from mmtok.core.run_lock import hold_run_folder
from mmtok.core.trainstate import options_given

__all__ = ["build_parser", "main"]

# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, prog="mmtok train-tokenizer vocoder", formatter_class=HelpFormatter,
                                description="Build the 16 kHz audio cache, train the learned vocoder on it "
                                "(stage 1: true log-mel; stage 2: the tokenizer's decoded log-mel) and attach "
                                "it to an audio tokenizer.")
    p.add_argument("--corpus", default=None, help="corpus folder with manifest.jsonl (needed to build the cache)")
    p.add_argument("--cache", default=None, help="cache folder (built from --corpus if index.json is missing)")
    p.add_argument("--out", default=None, help="run folder; without it only the cache is built (or --attach run)")
    p.add_argument("--features", default="true", choices=FEATURES,
                   help="what the vocoder reads: the true log-mel (stage 1) or --tokenizer's decoded log-mel (stage 2)")
    p.add_argument("--tokenizer", default=None, help="audio tokenizer (shipped name or folder) for --features "
                   "decoded (default: audio) and --attach (default: the one the vocoder was trained on; audio for "
                   "one trained on the true log-mel)")
    p.add_argument("--init-from", default=None, metavar="CKPT", help="start a new run from this vocoder checkpoint, "
                   "or from the learned vocoder inside an audio tokenizer checkpoint (a shipped name such as audio) "
                   "(e.g. a stage-1 RUN/best) with fresh optimizer state; a run folder is read as the model it "
                   "holds (a vocoder run holds two: name RUN/best or RUN/model)")
    p.add_argument("--attach", default=None, metavar="OUT", help="write an audio tokenizer checkpoint here: "
                   "--tokenizer + the vocoder (--vocoder, default --out's best/), after any training; a --train-decoder "
                   "run's best/ goes with the decoder it was trained on (RUN/best-tokenizer), not --tokenizer's")
    p.add_argument("--vocoder", default=None, metavar="CKPT", help="the vocoder --attach uses (a vocoder checkpoint, "
                   "or the learned vocoder inside an audio tokenizer checkpoint; of a run folder, name RUN/best or "
                   "RUN/model)")
    p.add_argument("--mel-match", type=int, default=None, metavar="N", help="passes of the level correction the "
                   "vocoder runs after decoding (mmtok.audio.mel_match; 0: none): for a new run in --out (it trains "
                   "through them) and for --attach (default: the vocoder's own setting)")
    p.add_argument("--mel-match-db", type=float, default=None, metavar="DB", help="the most one pass changes a mel "
                   "channel's power, either way (new runs and --attach; default: the vocoder's own setting)")
    add_synthetic_arguments(p, unit="segments")
    p.add_argument("--steps", type=int, default=200_000, help="total optimizer steps (the schedule's length)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--batch-size", type=int, default=16, help="segments per step")
    p.add_argument("--segment-seconds", type=float, default=1.0, help="length of a training segment")
    p.add_argument("--lr", type=float, default=5e-4, help="peak AdamW learning rate")
    p.add_argument("--warmup", type=int, default=1000, help="linear warmup steps")
    p.add_argument("--min-lr-frac", type=float, default=0.05, help="the cosine decays to lr × this")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay")
    p.add_argument("--clip-grad", type=float, default=1.0, help="gradient norm clip")
    p.add_argument("--mel-weight", type=float, default=1.0, help="weight of the log-mel L1 next to the STFT losses")
    add_adversary_options(p, weight_help="adversarial hinge term of multi-period + multi-resolution discriminators "
                                         "(0: none)", plural=True, warmup=500, lr=2e-4, channels=16)
    p.add_argument("--fm-weight", type=float, default=2.0,
                   help="feature-matching term beside it (relative L1 of the discriminators' activations)")
    p.add_argument("--disc-seconds", type=float, default=0.5,
                   help="the discriminators judge a random window this long of each segment")
    p.add_argument("--best-by", default="mel_l1", choices=BEST_BY,
                   help="validation figure that picks best/ (mel_l1 lowest; stoi, pesq_wb highest)")
    p.add_argument("--gain-db", type=float, default=6.0, help="segments are attenuated by U(0, this) dB")
    p.add_argument("--train-decoder", action="store_true", help="stage 2: train the tokenizer's log-mel decoder "
                   "through the vocoder too (codes unchanged); writes RUN/tokenizer and RUN/best-tokenizer")
    p.add_argument("--decoder-anchor", type=float, default=1.0, help="--train-decoder: weight of the tokenizer's "
                   "own log-mel L1, which keeps the decoded features a log-mel")
    p.add_argument("--decoder-lr", type=float, default=None, help="--train-decoder: the decoder's peak lr "
                   "(default: --lr)")
    p.add_argument("--dim", type=int, default=VocoderConfig.dim, help="backbone channels (new runs without "
                   "--init-from)")
    p.add_argument("--intermediate", type=int, default=VocoderConfig.intermediate, help="MLP width (new runs "
                   "without --init-from)")
    p.add_argument("--blocks", type=int, default=VocoderConfig.blocks, help="ConvNeXt blocks (new runs without "
                   "--init-from)")
    p.add_argument("--save-every", type=int, default=500, help="checkpoint and validate every N steps")
    p.add_argument("--log-every", type=int, default=10, help="append to log.jsonl every N steps")
    p.add_argument("--val-segments", type=int, default=32, help="fixed validation segments for mel/STFT losses")
    p.add_argument("--val-clips", type=int, default=8, help="fixed validation speech clips for STOI/PESQ (0: none)")
    p.add_argument("--val-clip-seconds", type=float, default=4.0, help="length of a STOI/PESQ clip")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default=str(pick_device()), help="cpu or cuda (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0, help="random seed of a new run")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None, *, debug: bool | None = None) -> int:
    """``mmtok train-tokenizer vocoder ARGS`` (and ``python -m mmtok.audio.vocoder_train ARGS``): exit status 0,
    2 for what the command line asks that cannot be (a flag, file or folder refused), 1 for a failure while
    running, each error one line ``mmtok: error: ...`` as the ``mmtok`` command says it; with ``debug``
    (``mmtok --debug``; default: ``MMTOK_DEBUG``) its traceback first."""
    argv = list(argv) if argv is not None else sys.argv[1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_options(parser, args)
        return _run(parser, args, argv)
    except MmtokError as e:
        return report_error(e, debug=debug)


def _typed() -> str:
    """The command as typed, before its options: the module when run as ``python -m``, else ``mmtok``'s."""
    if Path(sys.argv[0]).name == Path(__file__).name:
        return "python -m mmtok.audio.vocoder_train"
    return "mmtok train-tokenizer vocoder"


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    """The command, with ``--out`` (when given) held from before it is looked at to the end
    (:func:`~mmtok.core.run_lock.hold_run_folder`): a second run into it is refused, and a checkpoint a
    killed run left mid-swap is put back first."""
    torch.set_num_threads(args.threads)
    if args.out is None and args.cache is None and args.attach is None:
        raise UsageError("nothing to do: give --out RUN to train (with --cache, and --corpus to build it), --corpus "
                         "and --cache to build the cache alone, or --attach OUT to join a vocoder to a tokenizer")
    if args.out is None:
        return _work(parser, args, argv)
    pick_device(args.device)  # a GPU asked for and missing fails before --out is made
    with hold_run_folder(args.out):
        return _work(parser, args, argv)


def _work(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    given, resuming = options_given(parser, argv), False
    if args.out is not None:  # the folder and a resumed run's settings, before any work
        resuming = check_out_folder(args)
        if resuming:
            take_run_settings(args, given)
            torch.set_num_threads(args.threads)  # the run's own, when left out
    joined = check_sources(args, given, resuming=resuming)  # what it reads and --attach writes, before any work
    if args.cache is not None:
        cache_dir = Path(args.cache)
        if args.corpus is not None:  # built if it is not; checked against the manifest if it is
            built, t = (cache_dir / "index.json").is_file(), time.perf_counter()
            summary = build_cache(args.corpus, cache_dir, progress=not args.no_progress)
            if not built:
                print(f"cache built in {time.perf_counter() - t:.0f} s: {json.dumps(summary['splits'])}",
                      file=sys.stderr)
        elif not (cache_dir / "index.json").is_file():
            raise UsageError(f"cache {cache_dir} is not built; pass --corpus to build it")
    if args.out is not None:
        Run(args, argv, prefix=_typed()).train()
    if joined is not None:
        tokenizer, source = joined
        try:
            folder = attach_vocoder(tokenizer, source, args.attach, mel_match=args.mel_match,
                                    mel_match_db=args.mel_match_db, command=f"{_typed()} {shlex.join(argv)}")
        except MmtokError:
            raise
        except ValueError as e:  # the level correction is out of range
            raise CheckpointError(f"--attach {args.attach}: {e}") from e
        mb = folder_megabytes(folder)
        print(json.dumps({"attached": str(folder), "tokenizer": tokenizer, "vocoder": str(source),
                          "megabytes": mb, "within_limit": mb <= SHIPPED_LIMIT_MB}))
    return 0


if __name__ == "__main__":  # errors said as the mmtok command says them (main's own handling)
    raise SystemExit(main())
