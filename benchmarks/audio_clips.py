"""Which speech clips of a corpus the audio benchmarks score, and how they are read.

``benchmarks/audio_quality.py``, ``audio_levels.py`` and ``audio_bands.py`` share these: speech
files of a split lasting 1-13 s, picked round-robin over (source, group) in a seeded order, read
mono at 16 kHz at their own loudness (:func:`at_level` scales them), and the ``eval_set`` row
that describes them.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import mmtok
from mmtok.audio.io import load_audio
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.errors import CorpusError
from mmtok.core.manifest import manifest_rows

RATE = 16_000  # Hz: every metric here runs at the tokenizer's rate
MIN_SECONDS, MAX_SECONDS = 1.0, 13.0  # evaluation clips: whole speech files this long


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a corpus manifest (:func:`mmtok.core.manifest.manifest_rows`: each checked, and a corpus
    whose build has not finished refused); a missing file or a refused one stops the run, named."""
    p = Path(path)
    if not p.is_file():
        raise SystemExit(f"--manifest {p}: no such file (benchmarks/fetch_corpus.py audio --out DIR writes one)")
    try:
        return [row for _, row in manifest_rows(p)]
    except CorpusError as e:
        raise SystemExit(f"--manifest {e}") from None


def load_model(name: str, flag: str) -> Any:
    """``mmtok.load(name)``; a checkpoint that is missing or unreadable stops the run, named by ``flag``."""
    try:
        return mmtok.load(name)
    except (mmtok.CheckpointError, FileNotFoundError) as e:
        raise SystemExit(f"{flag} {name}: {e}") from None


def load_audio_tokenizer(name: str, flag: str) -> AudioTokenizer:
    """:func:`load_model`, and a checkpoint of another kind stops the run, named by ``flag``."""
    tok = load_model(name, flag)
    if not isinstance(tok, AudioTokenizer):
        raise SystemExit(f"{flag} {name} is not an audio tokenizer: it loads as {type(tok).__name__}")
    return tok


def add_clip_arguments(ap: argparse.ArgumentParser, *, seed_help: str = "clip order seed") -> None:
    """The options that pick the clips: ``--manifest``, ``--split``, ``--clips``, ``--seed``."""
    ap.add_argument("--manifest", required=True, help="the corpus's manifest.jsonl (paths relative to its folder)")
    ap.add_argument("--split", default="validation", choices=("validation", "test"), help="the clips evaluated")
    ap.add_argument("--clips", type=int, default=40, help="speech clips evaluated (at most)")
    ap.add_argument("--seed", type=int, default=0, help=seed_help)


def eval_clips(args: argparse.Namespace, rows: Sequence[dict[str, Any]] | None = None,
               ) -> list[tuple[dict[str, Any], torch.Tensor]]:
    """The clips :func:`add_clip_arguments`' options pick, loaded (``rows``: the manifest's, when the
    caller has read it already); none readable, or ``--clips`` below 1, stops the run, named."""
    if args.clips < 1:
        raise SystemExit(f"--clips {args.clips}: give 1 or more")
    root = Path(args.manifest).parent
    rows = read_manifest(args.manifest) if rows is None else rows
    clips = load_clips(clip_order(rows, args.split, seed=args.seed), root, args.clips)
    if not clips:
        raise SystemExit(f"{args.manifest} has no readable {args.split} speech file of {MIN_SECONDS}-{MAX_SECONDS} s")
    return clips


def clip_order(rows: Sequence[dict[str, Any]], split: str, *, seed: int = 0) -> list[dict[str, Any]]:
    """Speech rows of ``split`` lasting 1-13 s, in evaluation order: round-robin over (source, group)
    (the groups shuffled with ``seed``), the longest files of each group first (sentences rather than
    single words, so that STOI has speech enough to score); take the first N that load."""
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("split") == split and r.get("kind") == "speech" and MIN_SECONDS <= float(r["seconds"]) <= MAX_SECONDS:
            by_group[(str(r.get("source")), str(r.get("group")))].append(r)
    rng, keys = np.random.default_rng(seed), sorted(by_group)
    pools = []
    for i in rng.permutation(len(keys)).tolist():
        pools.append(sorted(by_group[keys[i]], key=lambda r: (-float(r["seconds"]), r["path"])))
    order = []
    for i in range(max((len(p) for p in pools), default=0)):
        order += [p[i] for p in pools if i < len(p)]
    return order


def load_clips(order: Sequence[dict[str, Any]], root: Path, n: int) -> list[tuple[dict[str, Any], torch.Tensor]]:
    """The first ``n`` rows of ``order`` that load (mono, 16 kHz, own loudness), with their samples."""
    out = []
    for r in order:
        if len(out) == n:
            break
        try:
            out.append((r, load_audio(root / r["path"], target_rate=RATE)))
        except Exception as e:  # an unreadable file is passed over, and said
            print(f"skipping {r['path']}: {type(e).__name__}: {e}", file=sys.stderr)
    return out


def at_level(clips: Sequence[tuple[dict[str, Any], torch.Tensor]], level_db: float,
             ) -> list[tuple[dict[str, Any], torch.Tensor]]:
    """``clips`` scaled by ``level_db`` dB and clipped to [-1, 1] (0: the clips themselves)."""
    if level_db == 0:
        return list(clips)
    gain = 10.0 ** (level_db / 20.0)
    return [(r, (a * gain).clamp(-1.0, 1.0)) for r, a in clips]


def eval_set_row(clips: Sequence[tuple[dict[str, Any], torch.Tensor]], split: str, seed: int) -> dict[str, Any]:
    sources: dict[str, int] = defaultdict(int)
    for r, _ in clips:
        sources[str(r.get("source"))] += 1
    return {"bench": "eval_set", "split": split, "kind": "speech", "clips": len(clips),
            "seconds": round(sum(a.numel() for _, a in clips) / RATE, 1), "min_seconds": MIN_SECONDS,
            "max_seconds": MAX_SECONDS, "seed": seed,
            "groups": len({(r.get("source"), r.get("group")) for r, _ in clips}), "sources": dict(sorted(sources.items()))}
