"""Prune an audio tokenizer's codebook to the codes its training audio picks most.

Every clip of one split of an audio cache (``python -m mmtok.audio.vocoder_train
--corpus ... --cache ...`` builds it), the training split unless ``--split
validation`` says otherwise, is encoded whole; each code's share is its
frequency under the trainer's own sampling (source ∝ √hours, group ∝ √hours,
clip ∝ length), with the seeded synthetic clips mixed in at their training
share when ``--synthetic`` is given. The ``--keep`` codes with the largest
share are kept (:mod:`mmtok.vq.prune`) and the tokenizer is written to ``--out``
with its learned vocoder, if it has one; its record gives the share of the
split's tokens that fell on dropped codes (``dropped_share_counted``, each
token once) and the share under that sampling (``dropped_share_weighted``).
Only that split is read: the codes to keep are the training audio's choice
(``--split validation`` counts held-out audio instead, to compare), and the
test split is never cached, so never read.
A tokenizer made for another sample rate than the cache's audio is refused.

    mmtok prune-codebook audio --model RUN/model --cache CACHE --keep 7168 --out OUT \\
        --synthetic 600 --synthetic-share 0.25 --synthetic-tones 0.5
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mmtok.audio.corpus import SYNTHETIC_MEMORY, add_synthetic_arguments
from mmtok.audio.corpus import synthetic_clips as synthetic_arrays
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder_data import CACHE_SPLITS, AudioCache, check_sample_rate, sampling_weights
from mmtok.core.errors import MmtokError
from mmtok.core.limits import memory_refusal
from mmtok.core.ranges import Range, out_of_range, seed_arg
from mmtok.vq.prune import add_prune_arguments, run_prune_command

__all__ = ["code_shares", "main"]

NUMBER_RULES = {  # what each numeric flag takes (mmtok.core.ranges)
    "max_clips": Range(1),
    "synthetic": Range(0),
    "synthetic_share": Range(0, 1, high_open=True),
    "synthetic_tones": Range(0, 1),
}


def _clip_counts(tok: AudioTokenizer, audio: np.ndarray) -> torch.Tensor | None:
    """How often each code ``[K]`` occurs in one clip (None when it is too short for one token)."""
    if audio.size < tok.cfg.samples_per_token:
        return None
    codes = tok.encode(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), tok.sample_rate)
    return torch.bincount(codes.flatten(), minlength=tok.codebook_size).double() if codes.numel() else None


def code_shares(tok: AudioTokenizer, cache: AudioCache, *, synthetic: Sequence[np.ndarray] = (),
                synthetic_share: float = 0.0, max_clips: int | None = None,
                progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Each code's share ``[K]`` of the tokens the trainer's sampling would show, each code's count ``[K]`` of the
    split's tokens (each token once), and what was counted.

    Real clips weigh as :func:`~mmtok.audio.vocoder_data.sampling_weights` says
    (within a clip, every token the same); the ``synthetic`` clips share
    ``synthetic_share`` of the total equally. ``max_clips`` (at least 1) counts
    only the first clips of the cache (for quick checks).
    """
    if max_clips is not None and max_clips < 1:
        raise ValueError(f"max_clips must be at least 1 (or None: every clip), got {max_clips}")
    clips = cache.clips[:max_clips] if max_clips is not None else cache.clips
    weights = sampling_weights(clips)
    share = torch.zeros(tok.codebook_size, dtype=torch.float64)
    counts = torch.zeros_like(share)
    used = 0.0
    for clip, w in tqdm(list(zip(clips, weights, strict=True)), desc="counting codes", unit="clip",
                        disable=not progress, file=sys.stderr):
        c = _clip_counts(tok, cache.read(clip))
        if c is not None:
            share += float(w) * c / c.sum()
            used += float(w)
            counts += c
    if used == 0:
        raise MmtokError(f"no clip of the {cache.split} split of the cache is long enough for one token")
    share /= used
    info: dict[str, Any] = {"split": cache.split, "clips": len(clips), "tokens": int(counts.sum()),
                            "weighting": "trainer sampling (source and group by sqrt hours)"}
    if synthetic and synthetic_share > 0:
        syn = torch.zeros_like(share)
        n = 0
        for a in synthetic:
            c = _clip_counts(tok, a)
            if c is not None:
                syn += c / c.sum()
                n += 1
        if n:
            share = (1.0 - synthetic_share) * share + synthetic_share * syn / n
            info |= {"synthetic_clips": n, "synthetic_share": synthetic_share}
    return share, counts, info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, prog="mmtok prune-codebook audio", description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_prune_arguments(p)
    p.add_argument("--cache", required=True, type=Path, help="audio cache folder (index.json, train.int16, ...)")
    p.add_argument("--split", default="train", choices=CACHE_SPLITS, help="the cache split to count codes on "
                   "(default: train; a cache holds no test split)")
    p.add_argument("--max-clips", type=int, default=None, help="count only the first N >= 1 clips (quick checks)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the --synthetic clips (the trainer's --seed), "
                   "in [0, 2**32)")
    add_synthetic_arguments(p, unit="counted tokens")
    return p


def main(argv: Sequence[str] | None = None, *, debug: bool | None = None) -> int:
    """``mmtok prune-codebook audio ARGS``: 0, or 2 with a one-line error (with ``debug``, ``mmtok --debug``,
    its traceback first)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    refused = out_of_range(parser, args, NUMBER_RULES) or memory_refusal(parser, args, [SYNTHETIC_MEMORY])
    if refused:
        parser.error(refused)

    def count(tok: AudioTokenizer) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        cache = AudioCache(args.cache, args.split)
        check_sample_rate(args.cache, tok.sample_rate, f"--model {args.model}")
        synth = synthetic_arrays(args.synthetic, seed=args.seed, sample_rate=tok.sample_rate,
                                 tones=args.synthetic_tones) if args.synthetic else []
        share, counts, info = code_shares(tok, cache, synthetic=synth, synthetic_share=args.synthetic_share,
                                          max_clips=args.max_clips, progress=not args.no_progress)
        return share, counts, {**info, "cache": str(args.cache.resolve())}

    return run_prune_command(parser, args, argv, AudioTokenizer, "audio", count, debug=debug)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
