"""How audio tokenizers hold up as recordings get quieter or louder: the round trip's STOI and
wideband PESQ at several input levels, for one or more models on the same clips.

    python benchmarks/audio_levels.py --manifest /work/data/corpus/audio/manifest.jsonl --split validation \\
        --models audio /path/to/candidate --levels=-30,-20,-10,0,6 --clips 40 [--plot levels.png]

Clips are chosen as ``benchmarks/audio_quality.py`` chooses them (``benchmarks/audio_clips.py``:
speech, 1-13 s, round-robin over source and group, seeded). At each level every clip is scaled by that many dB and clipped to
[-1, 1]; the scaled clip is the reference its round trip ``tok.decode(tok.encode(x))`` is scored
against, so a score measures what the codes keep, not the level. One JSON object per line:

- ``eval_set``: the clips, as in ``audio_quality.py``.
- ``levels``, one per model and level: mean ``stoi`` and ``pesq_wb`` over the clips they could
  score (``stoi_clips``, ``pesq_clips``), and ``stoi_drop``: the mean STOI at level 0 minus this
  one (when 0 is among the levels).
- ``levels_paired``, with two or more models: each later model minus the first, per level, as
  ``mmtok.core.metrics.paired_difference`` gives it (mean per-clip difference, 95 % bootstrap interval, wins).

``--plot`` draws STOI against the level, a line per model (needs matplotlib).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from audio_clips import (
    RATE,
    add_clip_arguments,
    at_level,
    eval_clips,
    eval_set_row,
    load_audio_tokenizer,
)
from common import emit, file_to_write, positive, run_script
from tqdm import tqdm

from mmtok.audio.scores import speech_scores
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.metrics import paired_difference

KEYS = ("stoi", "pesq_wb")


def round_trip_scores(tok: AudioTokenizer, ref: torch.Tensor) -> dict[str, float]:
    """STOI and PESQ-WB of ``tok``'s round trip of ``ref`` (16 kHz) against ``ref``: the scores that
    could be given (:func:`~mmtok.audio.scores.speech_scores` leaves out the others)."""
    with torch.inference_mode():
        deg = tok.decode(tok.encode(ref, sample_rate=RATE)).float().cpu()
    deg = torch.nn.functional.pad(deg, (0, max(0, ref.numel() - deg.numel())))[: ref.numel()]
    return speech_scores(ref, deg)


def mean_of(rows: Sequence[dict[str, float]], key: str) -> tuple[float, int]:
    vals = [r[key] for r in rows if key in r]
    return (round(sum(vals) / len(vals), 4) if vals else math.nan), len(vals)


def level_rows(name: str, per: dict[float, list[dict[str, float]]]) -> list[dict[str, Any]]:
    """One ``levels`` row per level of one model's per-clip scores ``per[level]``."""
    out = []
    base = mean_of(per[0.0], "stoi")[0] if 0.0 in per else None
    for level in sorted(per):
        stoi, n_stoi = mean_of(per[level], "stoi")
        pesq, n_pesq = mean_of(per[level], "pesq_wb")
        row: dict[str, Any] = {"bench": "levels", "model": name, "level_db": level, "stoi": stoi,
                               "stoi_clips": n_stoi, "pesq_wb": pesq, "pesq_clips": n_pesq}
        if base is not None:
            row["stoi_drop"] = round(base - stoi, 4)
        out.append(row)
    return out


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in dict.fromkeys(r["model"] for r in rows):
        pts = [(r["level_db"], r["stoi"]) for r in rows if r["model"] == model]
        ax.plot(*zip(*pts, strict=True), marker="o", label=model)
    ax.set_xlabel("input level (dB relative to the recording)")
    ax.set_ylabel("round-trip STOI")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_levels(text: str) -> list[float]:
    try:
        levels = sorted({float(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--levels {text!r}: a comma list of dB values, e.g. -20,-10,0") from None
    if not levels:
        raise argparse.ArgumentTypeError("--levels: give at least one level")
    if not all(math.isfinite(x) for x in levels):
        raise argparse.ArgumentTypeError(f"--levels {text!r}: each level a finite number of dB")
    return levels


def join_negative_levels(argv: Sequence[str]) -> list[str]:
    """``--levels -20,0`` as ``--levels=-20,0``: argparse takes a value starting with ``-`` for a flag.

    >>> join_negative_levels(["--levels", "-20,0", "--clips", "4"])
    ['--levels=-20,0', '--clips', '4']
    """
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--levels" and re.fullmatch(r"-[0-9.][0-9.,\s+-]*", arg):
            out[-1] = f"--levels={arg}"
        else:
            out.append(arg)
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_clip_arguments(ap)
    ap.add_argument("--models", nargs="+", default=["audio"], help="tokenizers: shipped names or checkpoint folders")
    ap.add_argument("--levels", type=parse_levels, default=parse_levels("-30,-20,-10,0,6"),
                    help="comma list of input levels in dB, e.g. --levels=-20,0 (default: -30,-20,-10,0,6)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--labels", nargs="+", default=None, help="names for --models in the rows and the plot")
    ap.add_argument("--plot", default=None, help="write STOI against level to this PNG")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(join_negative_levels(sys.argv[1:] if argv is None else argv))
    positive("--threads", args.threads)
    if args.plot:
        file_to_write("--plot", args.plot)
    torch.set_num_threads(args.threads)
    labels = args.labels or args.models
    if len(set(args.models)) != len(args.models) or len(set(labels)) != len(labels):
        raise SystemExit(f"--models {' '.join(args.models)}: each model once, each with its own label")
    if len(labels) != len(args.models):
        raise SystemExit(f"--labels: {len(labels)} names for {len(args.models)} models")
    toks = {}
    for name, label in zip(args.models, labels, strict=True):
        toks[label] = load_audio_tokenizer(name, "--models").eval()
    clips = eval_clips(args)
    emit(eval_set_row(clips, args.split, args.seed))
    per: dict[str, dict[float, list[dict[str, float]]]] = {name: {} for name in toks}
    bar = tqdm(total=len(toks) * len(args.levels) * len(clips), disable=args.no_progress, desc="levels")
    for level in args.levels:
        scaled = at_level(clips, level)
        for name, tok in toks.items():
            per[name][level] = []
            for _, ref in scaled:
                per[name][level].append(round_trip_scores(tok, ref))
                bar.update(1)
    bar.close()
    out = [row for name in toks for row in level_rows(name, per[name])]
    for row in out:
        emit(row, split=args.split)
    first, *others = toks
    for name in others:
        for level in args.levels:
            emit(bench="levels_paired", model=name, minus=first, split=args.split, level_db=level, seed=args.seed,
                 **paired_difference(per[name][level], per[first][level], KEYS, seed=args.seed))
    if args.plot:
        plot(out, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
