"""Audio tokenizer benchmark: one JSON object per line, everything side by side in one run.

Two modes. The real-corpus mode (waveform metrics on a fetched corpus, in
``benchmarks/audio_quality.py``, whose docstring lists its lines) runs when ``--manifest`` is given::

    python benchmarks/audio.py --manifest /work/data/corpus/audio/manifest.jsonl --split validation \
        --cache /work/data/audio/cache --model MODEL [--vocoder RUN/best] [--clips 40] [--threads 1] \
        [--compare audio] [--kmeans-vectors 200000] [--kmeans-iters 20] [--skip speed,usage]

The synthetic-corpus mode (log-mel only, on a folder with ``train/`` and ``heldout/``)::

    python benchmarks/audio.py --data /work/data/audio/corpus [--model audio] [--threads 2]

Lines of the synthetic-corpus mode (``"bench"`` names the measurement):

- ``reconstruction``: on ``DATA/heldout`` (audio training never read), L1 between the
  clip's log-mel and its reconstruction from tokens, divided by the clip's log-mel
  range (max - min), averaged over clips; for mmtok and two baselines at the same
  token rate, both fitted on ``DATA/train`` only: k-means (Lloyd, same K, so the same
  ``bits_per_second``) over the same feature slices (refused when ``DATA/train`` and
  ``--kmeans-vectors`` give fewer slices than K), and dMel-style uniform binning of mel
  channels (``dmel_uniform_bins``: bands of channels averaged, ``ceil(log2 K)`` bits per
  token spread as evenly as can be over the bands, ``bits_per_band`` lowest band first;
  the split is picked on training data; its own ``bits_per_second``).
- ``encode_speed``: a 10 s clip at 24 kHz, our encode (resampling to 16 kHz and the
  mel front end included) vs EnCodec 24 kHz (``pretrained=False``, 1.5 kbps), timed in
  turn (``common.time_sides``): medians of ``--repeats`` calls (``ratio_of``; ``timings`` has
  each side's min, median and n), same threads. The clip is the held-out files named ``*espeak*`` (else
  all held-out files; ``speed_clip`` says which) repeated to 10 s. Beside the times,
  ``mmtok_rel_l1``: ours' reconstruction figure of this run (None, said why, when
  ``reconstruction`` is skipped); EnCodec has random weights, so only its speed is measured.
- ``realtime_factor``: seconds of compute per second of audio for encode, decode to
  log-mel, and decode to waveform (the tokenizer's default: its learned vocoder, else
  Griffin-Lim), with EnCodec's decoder on its own codes of the clip timed in turn; the
  same ``speed_clip``, ``mmtok_rel_l1`` and ``quality_note`` fields as ``encode_speed``.
- ``peak_memory``: for ours and EnCodec, each in a fresh process with its model loaded:
  the growth of resident memory over what it was just before the call, at its peak during
  the first encode of the 10 s clip (``*_first_encode_mib``: the working memory a cold
  call needs) and during a second one (``*_second_encode_mib``: what a warmed-up
  process still adds); ``measured_by`` says how the peak was read.
- ``codebook_usage``: distinct codes over ``min(K, tokens)`` on the held-out audio, with
  ``distinct``, ``codebook_size`` and ``tokens`` beside it.

A peer that is not installed (EnCodec: ``pip install mmtok[bench]``) is named in one
``{"bench", "peer", "skipped"}`` row; its side of each row is then None.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from audio_baselines import (
    DMEL_WHAT,
    ENCODEC_RATE,
    decode_timings,
    dmel_bits,
    encode_timings,
    encodec_24khz,
    fit_dmel,
    kmeans_fit_check,
    rel_l1,
    slices,
    unslice,
    usage_fields,
)
from audio_clips import load_audio_tokenizer
from common import RATIO_OF, check_peer, emit, positives, ratio, run_script, skip_parts, time_sides
from peak_memory import fresh_peaks

import mmtok
from mmtok.audio.io import load_audio
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.core.errors import UsageError
from mmtok.vq.kmeans import kmeans
from mmtok.vq.search import nearest_code

CLIP_SECONDS = 10.0  # the speed clip
PARTS = ("reconstruction", "speed", "memory")  # what --skip may name


# --------------------------------------------------------------------------- peak memory, each side in a fresh process


def _encoder(which: str, model: str, clip: np.ndarray) -> Callable[[], Any]:
    """One encode of ``clip`` (24 kHz samples) by ``which`` ("mmtok" or "encodec"), its model loaded now."""
    x = torch.from_numpy(clip)
    if which == "mmtok":
        tok = mmtok.load(model)
        return lambda: tok.encode(x, ENCODEC_RATE)
    m = encodec_24khz()

    def run() -> None:
        with torch.inference_mode():
            m.encode(x[None, None])

    return run


# --------------------------------------------------------------------------- the measurements


def more_heldout_files(more: str | None) -> list[Path]:
    """The ``.wav`` files under ``--more-heldout`` (searched recursively); a missing folder or one without
    any is refused rather than measured as 0 % usage."""
    if more is None:
        return []
    folder = Path(more)
    if not folder.is_dir():
        raise UsageError(f"--more-heldout {folder}: {'not a folder' if folder.exists() else 'no such folder'}")
    files = sorted(folder.rglob("*.wav"))
    if not files:
        raise UsageError(f"--more-heldout {folder}: no .wav file in it or its subfolders")
    return files


def data_files(data: str) -> tuple[list[Path], list[Path]]:
    """The ``heldout/*.wav`` and ``train/*.wav`` files of ``--data``; a folder without both is refused in one
    line that says what is missing and what builds such a folder."""
    root = Path(data)
    build = (f"mmtok train-tokenizer audio --make-data --data {root} --out RUN builds one before it trains; "
             "for the real corpus give --manifest M.jsonl (benchmarks/fetch_corpus.py audio --out DIR writes it)")
    if not root.is_dir():
        raise UsageError(f"--data {root}: {'not a folder' if root.exists() else 'no such folder'} ({build})")
    held, train = sorted((root / "heldout").glob("*.wav")), sorted((root / "train").glob("*.wav"))
    missing = [f"{split}/*.wav" for split, files in (("train", train), ("heldout", held)) if not files]
    if missing:
        raise UsageError(f"--data {root}: no {' and no '.join(missing)} in it ({build})")
    return held, train


def usage_rows(tok: AudioTokenizer, held_audio: list[torch.Tensor], held_set: str,
               more: str | None) -> list[torch.Tensor]:
    """The ``codebook_usage`` rows (held-out, ``--more-heldout`` and both); the held-out clips' codes."""
    k = tok.codebook_size
    counts = torch.zeros(k, dtype=torch.long)
    codes = [tok.encode(a, tok.sample_rate) for a in held_audio]
    for c in codes:
        counts += torch.bincount(c.flatten(), minlength=k)
    emit(bench="codebook_usage", set=held_set, clips=len(held_audio), **usage_fields(counts))
    if more:
        files = more_heldout_files(more)
        more_counts = torch.zeros(k, dtype=torch.long)
        for f in files:
            more_counts += torch.bincount(tok.encode(f).flatten(), minlength=k)
        emit(bench="codebook_usage", set=more, clips=len(files), **usage_fields(more_counts))
        emit(bench="codebook_usage", set="both", clips=len(files) + len(held_audio),
             **usage_fields(counts + more_counts))
    return codes


def reconstruction_rows(tok: AudioTokenizer, args: argparse.Namespace, train: list[Path],
                        held_audio: list[torch.Tensor], codes: list[torch.Tensor]) -> float:
    """The ``reconstruction`` rows of mmtok and both baselines; ours' mean relative L1."""
    k, fpt, tps = tok.codebook_size, tok.cfg.frames_per_token, tok.tokens_per_second
    rng = np.random.default_rng(0)
    train_rows = torch.cat([slices(tok, load_audio(f, target_rate=tok.sample_rate)) for f in train])
    kmeans_fit_check(k, min(args.kmeans_vectors, train_rows.shape[0]),
                     f"--kmeans-vectors {args.kmeans_vectors} over the slices of {Path(args.data) / 'train'}")
    pick = torch.from_numpy(rng.permutation(train_rows.shape[0])[: args.kmeans_vectors])
    fit = train_rows[pick].contiguous()
    t = time.perf_counter()
    # the baseline: plain Lloyd's k-means (no group balancing), seeded from random rows
    centers, _ = kmeans(fit, k, args.kmeans_iters, generator=torch.Generator().manual_seed(0))
    kmeans_s = time.perf_counter() - t
    dmel = fit_dmel(fit, tok.cfg.n_mels, fpt, dmel_bits(k))
    ours, km, dm = [], [], []
    for audio, c in zip(held_audio, codes, strict=True):
        rows = slices(tok, audio)
        target = unslice(rows, fpt)
        ours.append(rel_l1(tok.decode_features(c), target))
        km.append(rel_l1(unslice(centers[nearest_code(rows, centers)], fpt), target))
        dm.append(rel_l1(unslice(dmel(rows), fpt), target))
    common = {"bench": "reconstruction", "clips": len(held_audio), "tokens_per_second": tps,
              "bits_per_second": round(tps * math.log2(k), 1),
              "metric": "mean over clips of L1(log-mel) / clip log-mel range"}
    emit(**common, method="mmtok", rel_l1=round(statistics.mean(ours), 5), median=round(statistics.median(ours), 5))
    emit(**common, method="kmeans", K=k, fit_vectors=fit.shape[0], iters=args.kmeans_iters,
         fit_seconds=round(kmeans_s, 1), rel_l1=round(statistics.mean(km), 5), median=round(statistics.median(km), 5))
    emit(common, bits_per_second=round(tps * dmel.bits_per_token, 1), method="dmel_uniform_bins", what=DMEL_WHAT,
         bands=len(dmel.bits_per_band), bits_per_band=dmel.bits_per_band,
         bits_per_token=dmel.bits_per_token, rel_l1=round(statistics.mean(dm), 5), median=round(statistics.median(dm), 5))
    emit(bench="reconstruction_ratio", mmtok_vs_kmeans=round(statistics.mean(ours) / statistics.mean(km), 3),
         mmtok_vs_dmel=round(statistics.mean(ours) / statistics.mean(dm), 3),
         clips_better_than_kmeans=sum(a < b for a, b in zip(ours, km, strict=True)))
    return statistics.mean(ours)


def speed_clip(tok: AudioTokenizer, held: list[Path], held_audio: list[torch.Tensor]) -> tuple[np.ndarray, str]:
    """The 10 s speed clip at 24 kHz ``(240000,)``: the held-out files named ``*espeak*`` (synthetic speech)
    repeated to 10 s, else every held-out file; and a phrase saying which."""
    picked = [a for a, f in zip(held_audio, held, strict=True) if "espeak" in f.name]
    label = f"{len(picked)} held-out clips named *espeak*, repeated to {CLIP_SECONDS:g} s"
    if not picked:
        picked = held_audio
        label = f"all {len(picked)} held-out clips (none is named *espeak*), repeated to {CLIP_SECONDS:g} s"
    speech = torch.cat(picked)
    n16 = int(CLIP_SECONDS * tok.sample_rate)
    speech = speech.repeat(math.ceil(n16 / speech.numel()))[:n16]
    return load_audio(speech, tok.sample_rate, target_rate=ENCODEC_RATE).numpy(), label


def speed_rows(tok: AudioTokenizer, x: torch.Tensor, args: argparse.Namespace, beside: dict[str, Any],
               encodec: bool) -> None:
    """The ``encode_speed`` and ``realtime_factor`` rows (EnCodec's side None without it); ``beside``: the
    clip and this run's quality figure, added to both."""
    tps = tok.tokens_per_second
    c10 = tok.encode(x, ENCODEC_RATE)
    enc = encode_timings(tok, x, args.repeats, encodec=encodec)
    dec = decode_timings(tok, "auto", c10, x, args.repeats, encodec=encodec)
    ours_s, encodec_s = enc["mmtok"].median, enc["encodec"].median if encodec else None
    wave_s, encodec_dec_s = dec["mmtok"].median, dec["encodec"].median if encodec else None
    emit(bench="encode_speed", clip_seconds=CLIP_SECONDS, input_rate=ENCODEC_RATE, threads=args.threads,
         mmtok_seconds=round(ours_s, 4), encodec_seconds=None if encodec_s is None else round(encodec_s, 4),
         speedup=ratio(encodec_s, ours_s), ratio_of=RATIO_OF, mmtok_tokens_per_second=tps,
         encodec_tokens_per_second=75 * 2, timings={k: t.summary() for k, t in enc.items()}, **beside)
    feat = time_sides({"decode_features": lambda: tok.decode_features(c10)}, repeats=args.repeats)
    vocoder = ("learned vocoder" if tok.vocoder is not None else
               f"NNLS mel inversion + torchaudio Griffin-Lim, {tok.cfg.griffin_lim_iters} iterations")
    timings = feat | {f"decode_waveform_{k}": t for k, t in dec.items()}
    emit(bench="realtime_factor", clip_seconds=CLIP_SECONDS, threads=args.threads,
         encode=round(ours_s / CLIP_SECONDS, 5), decode_features=round(feat["decode_features"].median / CLIP_SECONDS, 5),
         decode_waveform=round(wave_s / CLIP_SECONDS, 4),
         encodec_decode_waveform=None if encodec_dec_s is None else round(encodec_dec_s / CLIP_SECONDS, 4),
         decode_speedup_vs_encodec=ratio(encodec_dec_s, wave_s), ratio_of=RATIO_OF, vocoder=vocoder,
         timings={k: t.summary() for k, t in timings.items()}, **beside)


def memory_row(args: argparse.Namespace, clip: np.ndarray, label: str, encodec: bool) -> None:
    """The ``peak_memory`` row: each side's first and second encode of the clip, each side in a fresh process."""
    ours = fresh_peaks(_encoder, "mmtok", args.model, clip, threads=args.threads)
    theirs = fresh_peaks(_encoder, "encodec", args.model, clip, threads=args.threads) if encodec else (None, None, None)
    mib = lambda v: None if v is None else round(v, 1)  # noqa: E731
    emit(bench="peak_memory", clip_seconds=CLIP_SECONDS, threads=args.threads, speed_clip=label,
         what="growth of resident memory above its level just before the call, at its peak during the call; "
              "each side in a fresh process with its model loaded: its first encode, then a second one",
         measured_by=ours[2], mmtok_first_encode_mib=mib(ours[0]), encodec_first_encode_mib=mib(theirs[0]),
         mmtok_second_encode_mib=mib(ours[1]), encodec_second_encode_mib=mib(theirs[1]))


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0],
                                 epilog="--manifest M.jsonl ...: the real-corpus mode (see benchmarks/audio_quality.py --help)")
    ap.add_argument("--data", required=True, help="corpus folder with train/*.wav and heldout/*.wav "
                    "(mmtok train-tokenizer audio --make-data --data DIR builds one)")
    ap.add_argument("--model", default="audio", help="shipped name or checkpoint folder")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads for every measurement")
    ap.add_argument("--kmeans-vectors", type=int, default=100_000, help="training slices k-means is fitted on")
    ap.add_argument("--kmeans-iters", type=int, default=25, help="Lloyd iterations")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats (median)")
    ap.add_argument("--more-heldout", default=None,
                    help="another folder of audio training never read (searched recursively): codebook usage on it too")
    ap.add_argument("--skip", default="", help=f"comma list of parts to skip: {','.join(PARTS)}")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--manifest" or a.startswith("--manifest=") for a in argv):
        import audio_quality  # the real-corpus mode: its own options (python benchmarks/audio_quality.py --help)

        return audio_quality.main(argv)
    args = build_parser().parse_args(argv)
    more_heldout_files(args.more_heldout)  # refused before the model loads
    skip = skip_parts("--skip", args.skip, PARTS)
    positives(args, "--threads", "--kmeans-vectors", "--kmeans-iters", "--repeats")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tok = load_audio_tokenizer(args.model, "--model")
    encodec = not {"speed", "memory"} <= skip and check_peer(
        "encode_speed" if "speed" not in skip else "peak_memory", "encodec")
    data = Path(args.data)
    held, train = data_files(args.data)
    held_audio = [load_audio(f, target_rate=tok.sample_rate) for f in held]
    codes = usage_rows(tok, held_audio, str(data / "heldout"), args.more_heldout)
    beside: dict[str, Any] = {"mmtok_rel_l1": None, "quality_note": "not measured in this run: --skip reconstruction"}
    if "reconstruction" not in skip:
        beside = {"mmtok_rel_l1": round(reconstruction_rows(tok, args, train, held_audio, codes), 5),
                  "quality_note": "mmtok_rel_l1: this run's reconstruction row (DATA/heldout); EnCodec has random weights, "
                             "its quality is not measured"}
    if {"speed", "memory"} <= skip:
        return 0
    clip, label = speed_clip(tok, held, held_audio)
    if "speed" not in skip:
        speed_rows(tok, torch.from_numpy(clip), args, {"speed_clip": label, **beside}, encodec)
    if "memory" not in skip:
        memory_row(args, clip, label, encodec)
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
