"""The command line of ``mmtok train-tokenizer audio`` (:mod:`mmtok.audio.train`): its options and their help
(:func:`build_parser`), the loss terms' among them (:func:`add_loss_arguments`). What their values must be is
:mod:`mmtok.audio.train_checks`'s."""

from __future__ import annotations

import argparse

from mmtok.audio.corpus import add_synthetic_arguments
from mmtok.audio.losses import parse_band_weight
from mmtok.audio.train_checks import INIT_ARCH_ARGS
from mmtok.core.command_line import HelpFormatter
from mmtok.core.corpus_manifest import DEFAULT_SPLIT

__all__ = ["add_loss_arguments", "build_parser"]


def _band_weight(text: str) -> tuple[float, float, float]:
    try:
        return parse_band_weight(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_loss_arguments(p: argparse.ArgumentParser) -> None:
    """The loss terms added to the log-mel L1, and the level augmentation of the crops."""
    p.add_argument("--mse-weight", type=float, default=0.0, metavar="W",
                   help="add W × the squared error on log-mel (in units of the mean per-channel variance) to the "
                        "L1: large misses, such as a steady tone's narrow peak, then cost more than many small ones")
    p.add_argument("--compressed-weight", type=float, default=0.0, metavar="W",
                   help="add W × the L1 between power-law compressed mel magnitudes (|X|^0.3, relative to the "
                        "target's mean): unlike the log-mel L1, errors in loud frames, where speech is, cost more "
                        "than errors in near-silence")
    p.add_argument("--envelope-weight", type=float, default=0.0, metavar="W",
                   help="add W × (1 - the correlation of short-time band envelopes: 380 ms of one-third-octave "
                        "bands, the quantity STOI is built on) between decoded and original log-mel")
    p.add_argument("--band-weight", type=_band_weight, action="append", default=[], metavar="LO-HI:W",
                   help="weigh the mel channels whose centres lie in LO-HI Hz W times the others in the log-mel "
                        "L1 and --mse-weight terms (weights scaled to average 1); repeatable, e.g. 0-500:2.5 "
                        "(benchmarks/audio_bands.py shows which bands the codes lose most); a band with no channel "
                        "centre in it is refused (a resumed run's own goes on, weighing nothing, said on stderr)")
    p.add_argument("--gain-db", type=float, default=0.0, metavar="DB",
                   help="level augmentation: a crop is made U(0, DB) dB quieter (exactly, on its floored log-mel), "
                        "so that quiet recordings are coded as well as loud ones; 0 = off (default: %(default)s)")
    p.add_argument("--gain-prob", type=float, default=1.0, metavar="P",
                   help="with --gain-db: the share of crops made quieter (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, prog="mmtok train-tokenizer audio", formatter_class=HelpFormatter,
                                description="Train the audio tokenizer on a folder of audio files.")
    p.add_argument("--data", required=True,
                   help="folder of training audio (DIR/train if it exists, else DIR; one that holds a corpus "
                        "manifest.jsonl is refused: give the manifest), a corpus manifest.jsonl (as "
                        "benchmarks/fetch_corpus.py writes it): its --split is trained on and --val-clips of its "
                        "validation split are validated on, or an audio cache of a "
                        "real corpus (index.json, as `python -m mmtok.audio.vocoder_train --corpus C --cache DIR` "
                        "builds it): its train split is trained on, crops drawn by source and speaker, and "
                        "--val-clips of its validation split are validated on")
    p.add_argument("--split", default=None,
                   help=f"with a manifest: the split to train on (default: {DEFAULT_SPLIT}, or the run's with "
                        "--resume); a folder's audio files are all trained on")
    p.add_argument("--out", required=True, help="output folder (tokenizer checkpoint, train state, PNGs)")
    p.add_argument("--make-data", action="store_true", help="first build the espeak-ng/pygame/synthetic corpus in --data (if absent)")
    p.add_argument("--steps", type=int, default=3000, help="optimizer steps in total")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/train-state if it exists, with the run's own settings for every flag left "
                        "out (its sizes, K, --init-from, rates and losses); a flag given with another value than the "
                        "run's is refused; --steps N extends it")
    p.add_argument("--batch-size", type=int, default=32, help="crops per step")
    p.add_argument("--crop-tokens", type=int, default=48, help="tokens per training crop")
    p.add_argument("--lr", type=float, default=1.5e-3, help="peak AdamW learning rate")
    p.add_argument("--warmup", type=int, default=150, help="linear warmup steps")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from a trained audio tokenizer (a checkpoint folder, 'audio' for the shipped one, or "
                        "the folder of an earlier run, whose model, RUN/model, is read): "
                        "its encoder, codebook, decoder and feature normalization, with a fresh optimizer and "
                        "schedule. Its architecture and K are kept, so leave out " + ", ".join(
                            f"--{a.replace('_', '-')}" for a in INIT_ARCH_ARGS) + "; its vocoder is neither trained "
                        "nor kept (mmtok train-tokenizer vocoder --tokenizer OUT/model --vocoder CKPT --attach DIR adds one)")
    p.add_argument("--decoder-only", action="store_true",
                   help="with --init-from: train the log-mel decoder alone; the encoder, codebook and feature "
                        "normalization stay as the source has them, so every clip keeps its codes (a deeper "
                        "--decoder-blocks adds blocks that start as the identity)")
    p.add_argument("--codebook-size", type=int, default=1024, help="K: number of codes")
    p.add_argument("--dead-code-rate", type=float, default=0.0, metavar="F",
                   help="also restart codes used below F × the mean use (the expected rate), not only those below "
                        "an absolute count; for learned codebooks (conv), where a large K leaves codes idle")
    p.add_argument("--encoder", choices=["slice", "conv"], default="slice",
                   help="slice: k-means codes of each token's frames + context decoder; conv: learned encoder (VQ-VAE)")
    p.add_argument("--code-dim", type=int, default=None, help="size of the code vectors (conv; slice: fpt*n_mels)")
    p.add_argument("--kmeans-vectors", type=int, default=200_000,
                   help="slice: training vectors the codebook is fitted on (random subset; default: %(default)s)")
    p.add_argument("--kmeans-iters", type=int, default=25, help="slice: Lloyd iterations")
    p.add_argument("--kmeans-balance", type=int, default=20, metavar="ROUNDS",
                   help="slice: group-balanced k-means: after Lloyd, ROUNDS rounds that retire codes serving fewer "
                        "than --kmeans-min-groups groups (speakers) and re-seed them inside the clusters with the "
                        "largest group-weighted distortion, each followed by 3 group-weighted Lloyd steps; "
                        "0 = plain Lloyd (default: %(default)s)")
    p.add_argument("--kmeans-min-groups", type=int, default=15,
                   help="slice: a code must serve at least this many groups (default: %(default)s)")
    p.add_argument("--kmeans-groups", default="auto", metavar="auto|file|JSON",
                   help="slice: what a group is: auto = the speaker (espeak-ng voice and variant) of each clip "
                        "from the corpus manifest.json, other clips on their own; file = every file; or a JSON "
                        "file mapping file names to group labels (default: %(default)s)")
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="fraction of training clips held aside (never fitted nor trained on; pygame files stay in "
                        "training); codebook usage and reconstruction on them go to summary.json")
    add_synthetic_arguments(p, unit="crops (cache mode only)")
    add_loss_arguments(p)
    p.add_argument("--val-clips", type=int, default=400,
                   help="with a cache or a manifest as --data: validation-split clips for summary.json "
                        "(default: %(default)s)")
    p.add_argument("--encoder-channels", type=int, default=128, help="encoder width")
    p.add_argument("--decoder-channels", type=int, default=256, help="decoder width")
    p.add_argument("--encoder-blocks", type=int, default=None, metavar="N",
                   help="conv encoder: residual blocks at token rate (default 3); with --init-from, at least the "
                        "source's: the extra blocks start as the identity, so training starts from its exact codes")
    p.add_argument("--decoder-blocks", type=int, default=None, metavar="N",
                   help="decoder residual blocks (default 4); with --init-from, at least the source's: the extra "
                        "blocks start as the identity, so training starts from its exact log-mel")
    p.add_argument("--save-every", type=int, default=200, help="checkpoint every N steps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p
