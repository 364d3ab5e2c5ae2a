"""Prune an image tokenizer's codebook to the codes its training photographs pick most.

Random square crops of the training photos (a side of ``--scale-min`` to
``--scale-max`` of the shorter side, a random position and flip, resized to the
tokenizer's input size) are encoded; each code's share is its frequency over
all their tokens. The ``--keep`` codes with the largest share are kept
(:mod:`mmtok.vq.prune`) and the tokenizer is written to ``--out``. From a
manifest only the ``--split`` photos (train by default, or validation to compare;
never test) are read; from a folder, every image in it (``--split`` is refused there).

    mmtok prune-codebook image --model RUN/model --data corpus/image/manifest.jsonl --keep 1984 --out OUT
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mmtok.core.corpus_manifest import DEFAULT_SPLIT, check_folder, check_split, data_split
from mmtok.core.ranges import Range, out_of_range, seed_arg
from mmtok.image.crops import find_images, load_corpus, random_crops
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.vq.prune import add_prune_arguments, run_prune_command

__all__ = ["code_shares", "main"]

BATCH = 32  # crops encoded at once
MAX_CROPS = 10_000_000  # crops counted: 2,400 times the default, days of encoding on a CPU, hours on a GPU
NUMBER_RULES = {"crops": Range(1, MAX_CROPS, why="ten million crops take days to encode on a CPU, and the codes' "
                                                  "shares settle long before")}
SPLITS = ("train", "validation")  # the manifest splits codes are counted on: the test split never


def code_shares(tok: ImageTokenizer, photos: Sequence[torch.Tensor], crops: int, *, scale: tuple[float, float],
                seed: int = 0, progress: bool = True) -> tuple[torch.Tensor, int]:
    """Each code's share ``[K]`` of the tokens of ``crops`` random crops of uint8 ``photos`` (shorter side
    at the tokenizer's input size), and the number of tokens counted."""
    size = tok.image_size
    g = torch.Generator().manual_seed(seed)
    counts = torch.zeros(tok.codebook_size, dtype=torch.long)
    with tqdm(total=crops, desc="counting codes", unit="crop", disable=not progress, file=sys.stderr) as bar:
        done = 0
        while done < crops:
            n = min(BATCH, crops - done)
            x = random_crops(photos, n, size, scale=scale, generator=g, base_side=size)
            counts += torch.bincount(tok.encode(x).flatten(), minlength=tok.codebook_size)
            done += n
            bar.update(n)
    total = int(counts.sum())
    return counts.double() / max(total, 1), total


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, prog="mmtok prune-codebook image", description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_prune_arguments(p)
    p.add_argument("--data", required=True, help="a folder of images or a corpus manifest.jsonl")
    p.add_argument("--split", default=None, choices=SPLITS,
                   help=f"with a manifest: the split whose photos are counted (default: {DEFAULT_SPLIT}; never test: "
                        "the codes to keep are chosen on training data); a folder's images are all counted")
    p.add_argument("--crops", type=int, default=4096, help=f"random crops to count codes on (1 to {MAX_CROPS:,})")
    p.add_argument("--scale-min", type=float, default=0.35, help="smallest crop side, as a fraction of the shorter side")
    p.add_argument("--scale-max", type=float, default=1.0, help="largest crop side, as a fraction of the shorter side")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the crops, in [0, 2**32)")
    return p


def main(argv: Sequence[str] | None = None, *, debug: bool | None = None) -> int:
    """``mmtok prune-codebook image ARGS``: 0, or 2 with a one-line error (with ``debug``, ``mmtok --debug``,
    its traceback first)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.crops < 1 or not 0 < args.scale_min <= args.scale_max <= 1:
        parser.error(f"--crops must be >= 1 and 0 < --scale-min <= --scale-max <= 1 "
                     f"(got {args.crops}, {args.scale_min}, {args.scale_max})")
    if refused := out_of_range(parser, args, NUMBER_RULES):
        parser.error(refused)
    check_split(parser, args.data, args.split, media="photos", verb="counted")
    check_folder(parser, args.data, verb="counts codes on")
    split = data_split(args.data, args.split)  # None: a folder, all of it

    def count(tok: ImageTokenizer) -> tuple[torch.Tensor, None, dict[str, Any]]:
        files = find_images(args.data, split=split)
        share, tokens = code_shares(tok, load_corpus(files, tok.image_size, patch=tok.downsample), args.crops,
                                    scale=(args.scale_min, args.scale_max), seed=args.seed,
                                    progress=not args.no_progress)
        return share, None, {"data": str(Path(args.data).resolve()), **({} if split is None else {"split": split}),
                             "photos": len(files), "crops": args.crops,
                             "crop_side": [args.scale_min, args.scale_max], "seed": args.seed, "tokens": tokens}

    return run_prune_command(parser, args, argv, ImageTokenizer, "image", count, debug=debug)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
