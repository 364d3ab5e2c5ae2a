"""Where in frequency an audio tokenizer loses intelligibility: its decoded log-mel with one band
of mel channels swapped for the true ones, through the same learned vocoder.

    python benchmarks/audio_bands.py --manifest /work/data/corpus/audio/manifest.jsonl --split validation \\
        --model audio --edges 0,1000,2000,4800,8000 --clips 40 [--plot bands.png]

Clips are chosen as ``benchmarks/audio_quality.py`` chooses them (``audio_clips.py``). For each
clip the tokenizer's decoded log-mel (what ``tok.decode`` hands its vocoder) is scored, the true
log-mel of the same frames (the vocoder's ceiling), and, for each band between two ``--edges``,
the decoded log-mel with the channels whose centre frequency lies in that band replaced by the
true ones. A band whose repair recovers most of the gap to the ceiling is where the codes lose
what STOI and PESQ measure; one whose repair gains nothing is not worth more of the code's
capacity. One JSON object per line:

- ``eval_set``: the clips, as in ``audio_quality.py``.
- ``bands``, one per ``method``: ``decoded``, ``true`` and ``band`` (with ``low_hz``, ``high_hz``
  and ``channels``, the first and one past the last mel channel it covers): mean ``stoi`` and
  ``pesq_wb`` over the clips, and for a band ``closed_stoi``, the share of the gap from decoded
  to true that its repair closes.
- ``bands_paired``: each band's repair minus ``decoded``, per clip, with a 95 % bootstrap interval
  (``mmtok.core.metrics.paired_difference``).

``--plot`` draws the STOI of each repair between the decoded and true levels (needs matplotlib).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from audio_clips import RATE, add_clip_arguments, eval_clips, eval_set_row, load_audio_tokenizer
from common import emit, file_to_write, positive, run_script
from tqdm import tqdm

from mmtok.audio.config import VOCODER_CHUNK_FRAMES
from mmtok.audio.features import mel_centres
from mmtok.audio.scores import speech_scores
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.metrics import paired_difference

KEYS = ("stoi", "pesq_wb")


def channel_centres(tok: AudioTokenizer) -> torch.Tensor:
    """Centre frequency in Hz of each of ``tok``'s mel channels (the centroid of its filter)."""
    c = tok.cfg
    return mel_centres(c.sample_rate, c.n_fft, c.n_mels, c.f_min, c.f_max)


def band_channels(tok: AudioTokenizer, edges: Sequence[float]) -> list[tuple[float, float, int, int]]:
    """``(low_hz, high_hz, first, stop)`` per band between consecutive ``edges``: the mel channels
    ``first .. stop - 1`` whose centres lie in ``[low_hz, high_hz)`` (the last band includes its top).
    A band that holds no channel stops the run, named."""
    centres = channel_centres(tok)
    out = []
    for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
        top = centres <= hi if i == len(edges) - 2 else centres < hi
        idx = torch.nonzero((centres >= lo) & top).flatten()
        if idx.numel() == 0:
            raise SystemExit(f"--edges: no mel channel has its centre in {lo:g}-{hi:g} Hz; widen that band")
        out.append((float(lo), float(hi), int(idx[0]), int(idx[-1]) + 1))
    return out


def clip_variants(tok: AudioTokenizer, audio: torch.Tensor, bands: Sequence[tuple[float, float, int, int]],
                  ) -> dict[str, torch.Tensor]:
    """The log-mel each method hands the vocoder for one clip: ``decoded``, ``true`` and one per band."""
    ctx = tok.context_frames
    decoded = tok.decode_features(tok.encode(audio, RATE))  # (M, fpt*n)
    true = tok.context_features(audio)[:, ctx : ctx + decoded.shape[-1]]  # the same frames, measured
    out = {"decoded": decoded, "true": true}
    for lo, hi, first, stop in bands:
        mel = decoded.clone()
        mel[first:stop] = true[first:stop]
        out[f"{lo:g}-{hi:g} Hz"] = mel
    return out


def mean_of(rows: Sequence[dict[str, float]], key: str) -> float:
    vals = [r[key] for r in rows if key in r and math.isfinite(r[key])]
    return round(sum(vals) / len(vals), 4) if vals else math.nan


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {r["method"]: r for r in rows}
    bands = [r for r in rows if r["method"] == "band"]
    fig, ax = plt.subplots(figsize=(6, 4))
    names = [f"{r['low_hz']:g}-{r['high_hz']:g}" for r in bands]
    ax.bar(names, [r["stoi"] for r in bands], color="tab:blue", label="decoded, this band true")
    ax.axhline(by["decoded"]["stoi"], color="tab:red", ls="--", label=f"decoded ({by['decoded']['stoi']:.3f})")
    ax.axhline(by["true"]["stoi"], color="tab:green", ls="--", label=f"true log-mel ({by['true']['stoi']:.3f})")
    lo = min(by["decoded"]["stoi"], *(r["stoi"] for r in bands))
    ax.set_ylim(lo - 0.03, by["true"]["stoi"] + 0.03)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax.set_xlabel("band repaired (Hz, by mel channel centre)")
    ax.set_ylabel("round-trip STOI")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_edges(text: str) -> list[float]:
    try:
        edges = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--edges {text!r}: a comma list of frequencies in Hz, e.g. 0,2000,8000") from None
    if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)) or edges[0] < 0:
        raise argparse.ArgumentTypeError(f"--edges {text!r}: at least two increasing frequencies >= 0")
    return edges


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_clip_arguments(ap)
    ap.add_argument("--model", default="audio", help="a tokenizer with a learned vocoder: shipped name or folder")
    ap.add_argument("--edges", type=parse_edges, default=parse_edges("0,1000,2000,4800,8000"),
                    help="band edges in Hz (default: 0,1000,2000,4800,8000)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--plot", default=None, help="write each repair's STOI to this PNG")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    positive("--threads", args.threads)
    if args.plot:
        file_to_write("--plot", args.plot)
    torch.set_num_threads(args.threads)
    tok = load_audio_tokenizer(args.model, "--model")
    if tok.vocoder is None:
        raise SystemExit(f"--model {args.model} has no learned vocoder (attach one first: mmtok train-tokenizer "
                         "vocoder ... --attach OUT)")
    tok.eval()
    bands = band_channels(tok, args.edges)
    clips = eval_clips(args)
    emit(eval_set_row(clips, args.split, args.seed))
    per: dict[str, list[dict[str, float]]] = {}
    for _, ref in tqdm(clips, desc="clips", unit="clip", disable=args.no_progress, file=sys.stderr):
        with torch.inference_mode():
            for name, mel in clip_variants(tok, ref, bands).items():
                deg = tok.vocoder.decode(mel, chunk_frames=VOCODER_CHUNK_FRAMES).float().cpu()
                deg = torch.nn.functional.pad(deg, (0, max(0, ref.numel() - deg.numel())))[: ref.numel()]
                per.setdefault(name, []).append(speech_scores(ref, deg))
    out = []
    gap = mean_of(per["true"], "stoi") - mean_of(per["decoded"], "stoi")
    for name in ("decoded", "true"):
        out.append({"bench": "bands", "method": name, "stoi": mean_of(per[name], "stoi"),
                    "pesq_wb": mean_of(per[name], "pesq_wb")})
    for lo, hi, first, stop in bands:
        name = f"{lo:g}-{hi:g} Hz"
        stoi = mean_of(per[name], "stoi")
        closed = round((stoi - out[0]["stoi"]) / gap, 3) if gap > 0 else None
        out.append({"bench": "bands", "method": "band", "low_hz": lo, "high_hz": hi, "channels": [first, stop],
                    "stoi": stoi, "pesq_wb": mean_of(per[name], "pesq_wb"), "closed_stoi": closed})
    for row in out:
        emit(row, split=args.split, clips=len(clips))
    for lo, hi, _, _ in bands:
        emit(bench="bands_paired", method="band", low_hz=lo, high_hz=hi, minus="decoded", split=args.split,
             seed=args.seed, **paired_difference(per[f"{lo:g}-{hi:g} Hz"], per["decoded"], KEYS, seed=args.seed))
    if args.plot:
        plot(out, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
