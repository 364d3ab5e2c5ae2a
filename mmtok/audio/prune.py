"""Prune an audio tokenizer's codebook to the codes its training audio picks most.

Every clip of the training split of an audio cache (``mmtok train-tokenizer
vocoder --corpus ... --cache ...`` builds it) is encoded whole; each code's
share is its frequency under the trainer's own sampling (source ∝ √hours,
group ∝ √hours, clip ∝ length), with the seeded synthetic clips mixed in at
their training share when ``--synthetic`` is given. The ``--keep`` codes with
the largest share are kept (:mod:`mmtok.vq.prune`) and the tokenizer is written
to ``--out`` with its learned vocoder, if it has one. Validation and test
audio are never read.

    mmtok prune-codebook audio --model RUN/model --cache CACHE --keep 7168 --out OUT \\
        --synthetic 600 --synthetic-share 0.25 --synthetic-tones 0.5
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mmtok.audio.corpus import add_synthetic_arguments
from mmtok.audio.corpus import synthetic_clips as synthetic_arrays
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder_data import AudioCache, sampling_weights
from mmtok.core.checkpoint import load_module
from mmtok.core.errors import MmtokError
from mmtok.vq.prune import save_pruned

__all__ = ["code_shares", "main"]


def _clip_share(tok: AudioTokenizer, audio: np.ndarray) -> torch.Tensor | None:
    """Frequency ``[K]`` of each code in one clip (None when it is too short for one token)."""
    if audio.size < tok.cfg.samples_per_token:
        return None
    codes = tok.encode(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), tok.sample_rate)
    if codes.numel() == 0:
        return None
    return torch.bincount(codes.flatten(), minlength=tok.codebook_size).double() / codes.numel()


def code_shares(tok: AudioTokenizer, cache: AudioCache, *, synthetic: Sequence[np.ndarray] = (),
                synthetic_share: float = 0.0, max_clips: int | None = None,
                progress: bool = True) -> tuple[torch.Tensor, dict[str, Any]]:
    """Each code's share ``[K]`` of the tokens the trainer's sampling would show, and what was counted.

    Real clips weigh as :func:`~mmtok.audio.vocoder_data.sampling_weights` says
    (within a clip, every token the same); the ``synthetic`` clips share
    ``synthetic_share`` of the total equally. ``max_clips`` counts only the
    first clips of the cache (for quick checks).
    """
    clips = cache.clips[:max_clips] if max_clips else cache.clips
    weights = sampling_weights(clips)
    share = torch.zeros(tok.codebook_size, dtype=torch.float64)
    tokens, used = 0, 0.0
    for clip, w in tqdm(list(zip(clips, weights, strict=True)), desc="counting codes", unit="clip",
                        disable=not progress, file=sys.stderr):
        s = _clip_share(tok, cache.read(clip))
        if s is not None:
            share += float(w) * s
            used += float(w)
            tokens += clip.length // tok.cfg.samples_per_token
    if used == 0:
        raise MmtokError(f"no clip of the {cache.split} split of the cache is long enough for one token")
    share /= used
    info: dict[str, Any] = {"split": cache.split, "clips": len(clips), "tokens": tokens,
                            "weighting": "trainer sampling (source and group by sqrt hours)"}
    if synthetic and synthetic_share > 0:
        syn = torch.zeros_like(share)
        n = 0
        for a in synthetic:
            s = _clip_share(tok, a)
            if s is not None:
                syn += s
                n += 1
        if n:
            share = (1.0 - synthetic_share) * share + synthetic_share * syn / n
            info |= {"synthetic_clips": n, "synthetic_share": synthetic_share}
    return share, info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmtok prune-codebook audio", description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="audio tokenizer: a shipped name or a checkpoint folder")
    p.add_argument("--cache", required=True, type=Path, help="audio cache folder (index.json, train.int16, ...)")
    p.add_argument("--split", default="train", help="the cache split to count codes on (default: train)")
    p.add_argument("--keep", required=True, type=int, help="codes to keep (the new codebook size K')")
    p.add_argument("--out", required=True, type=Path, help="folder for the pruned checkpoint (must not exist)")
    p.add_argument("--max-clips", type=int, default=None, help="count only the first N clips (quick checks)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --synthetic clips (the trainer's --seed)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_synthetic_arguments(p, unit="counted tokens")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"--out {args.out} already exists; choose a new folder")
    if args.synthetic < 0 or not 0 <= args.synthetic_share < 1 or not 0 <= args.synthetic_tones <= 1:
        parser.error("--synthetic must be >= 0, --synthetic-share in [0, 1) and --synthetic-tones in [0, 1]")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        tok = load_module(AudioTokenizer, args.model)
        if not 1 <= args.keep <= tok.codebook_size:
            parser.error(f"--keep must be in 1..{tok.codebook_size} (the codebook size of {args.model}), "
                         f"got {args.keep}")
        cache = AudioCache(args.cache, args.split)
        synth = synthetic_arrays(args.synthetic, seed=args.seed, sample_rate=tok.sample_rate,
                                 tones=args.synthetic_tones) if args.synthetic else []
        share, info = code_shares(tok, cache, synthetic=synth, synthetic_share=args.synthetic_share,
                                  max_clips=args.max_clips, progress=not args.no_progress)
        info["cache"] = str(args.cache.resolve())
        command = "mmtok prune-codebook audio " + shlex.join(list(argv) if argv is not None else sys.argv[1:])
        record = save_pruned(tok, share, args.keep, args.out, source=str(args.model), counted_on=info,
                             command=command)
    except MmtokError as e:
        print(f"mmtok prune-codebook audio: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"pruned": str(args.out), **{k: v for k, v in record.items() if k != "counted_on"},
                      "tokens_counted": info["tokens"]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
