"""Audio tokenizer on a real corpus: waveform metrics of speech clips through each method.

    python benchmarks/audio.py --manifest /work/data/corpus/audio/manifest.jsonl --split validation \\
        --cache /work/data/audio/cache --model MODEL [--vocoder RUN/best] [--clips 40] [--threads 1]

(or ``python benchmarks/audio_quality.py`` with the same options). One JSON object per line:

- ``eval_set``: the clips: speech files of ``--split`` 1-13 s long, at their own loudness,
  picked round-robin over (source, group) in a seeded order, at most ``--clips``. With
  ``--level-db X`` every clip is first scaled by X dB and clipped to [-1, 1], the original
  included (``level_db`` in this row and in the ``quality``, ``paired`` and ``bar`` rows): how
  the methods hold up on quieter (X < 0) or louder recordings.
- ``quality``, one per ``method``: means over clips (and ``median``) of ``stoi`` (pystoi, 16 kHz,
  not extended), ``pesq_wb`` (``pesq``, mode "wb"; ``pesq_clips`` it could score),
  ``dnsmos_sig``/``dnsmos_bak``/``dnsmos_ovrl`` (DNSMOS P.835, ``mmtok.audio.scores.dnsmos``), ``logmel_l1``
  (mean |log-mel(decoded) - log-mel(original)|, the tokenizer's log-mel) and ``mel_distance``
  (mean |features the vocoder reads - true log-mel| over the frames the tokens cover).
  Methods: ``original`` (DNSMOS only); ``ceiling`` (the vocoder on the true log-mel);
  ``kmeans`` (plain Lloyd k-means at the same K on random 2-frame slices of the cache's train
  split, centroid log-mel -> the vocoder; with its usage; refused when ``--kmeans-vectors`` or the
  split's token positions are fewer than K); a ``cache_check`` row warns when the cache records
  another manifest's sha256 than ``--manifest``'s, or none; ``dmel`` (dMel-style: bands of channels
  averaged, each binned uniformly, ``ceil(log2 K)`` bits per token spread as evenly as can be over
  the bands, the split picked on the same slices -> the vocoder; ``bands``, ``bits_per_band`` lowest
  band first, ``bits_per_token`` and its own ``bits_per_second``); ``ours`` (``tok.decode(codes)``
  with the vocoder); ``ours_griffin_lim``; and with ``--compare M2`` ``compare`` (M2's codes through
  its own decode path).
  "The vocoder" is ``--vocoder`` if given, else the tokenizer's own.
- ``paired``: ``ours_minus_kmeans`` (and ``ours_minus_compare``): per metric, the mean of the per-clip
  differences with a 95 % bootstrap interval over the clips and the clips ours wins (is better on: a lower
  log-mel L1, a higher score otherwise; ``mmtok.core.metrics.paired_difference``: a generator per metric).
- ``codebook_usage``: ours on every file of the split (all kinds, whole files). Here and in the
  ``quality`` rows ``usage`` is distinct codes over ``min(K, tokens)``, with ``distinct``,
  ``codebook_size`` and ``tokens`` beside it (``audio_baselines.usage_fields``).
- ``tones``: the round trip of 8 rendered tones of each toy pitch (220, 660, 1,980 Hz) through
  the learned vocoder: how many come back at their pitch (:func:`mmtok.synth.toy.pitch_round_trip`;
  the toy tones task of ``mmtok demo`` needs it), and the median level change per pitch in dB
  (``level_db``: a tone can keep its pitch and come back far quieter).
- ``speed``: one thread by default: real-time factors of encode, decode to log-mel, decode
  with the learned vocoder and with Griffin-Lim on a 10 s speech clip, ``decode_x_realtime``,
  the streaming decode's speed with chunks of 1 and 10 tokens and its lookahead in seconds,
  encode and decode speed-ups over EnCodec 24 kHz (random weights, 1.5 kbps; its decoder
  decodes its own codes of the same clip), all medians of calls timed in turn (``ratio_of``; each
  side's min, median and n in ``timings``), size in MB; beside them ours' ``stoi`` and
  ``pesq_wb`` from this run's ``quality`` row (``ours_stoi``, ``ours_pesq_wb``). EnCodec not installed:
  a ``{"bench": "speed", "peer": "encodec", "skipped": ...}`` row, and the run goes on as with
  ``--skip encodec``.
- ``published_anchors``: other tokenizers' published figures on other data (a loose comparison).
- ``bar``: ours against the bar, each check with its figure and pass/fail.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
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
    fit_dmel,
    kmeans_fit_check,
    slices,
    unslice,
    usage_fields,
)
from audio_clips import (
    RATE,
    add_clip_arguments,
    at_level,
    eval_clips,
    eval_set_row,
    load_audio_tokenizer,
    load_model,
    read_manifest,
)
from common import (
    RATIO_OF,
    check_peer,
    emit,
    finite,
    missing_peer,
    positives,
    run_script,
    skip_parts,
    time_sides,
)
from tqdm import tqdm

from mmtok.audio.config import VOCODER_CHUNK_FRAMES, front_end_mismatch
from mmtok.audio.decode_stream import lookahead_samples
from mmtok.audio.io import load_audio
from mmtok.audio.scores import dnsmos, pesq_wb, stoi_score
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.audio.vocoder import Vocoder
from mmtok.audio.vocoder_data import INT16_SCALE, AudioCache
from mmtok.core.checkpoint_names import resolve_checkpoint
from mmtok.core.metrics import paired_difference
from mmtok.synth.toy import pitch_round_trip
from mmtok.vq.kmeans import kmeans
from mmtok.vq.search import nearest_code

SPEED_SECONDS = 10.0  # the speed clip
STREAM_CHUNKS = (1, 10)  # tokens per chunk for the streaming decode's timings
METRICS = ("stoi", "pesq_wb", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "logmel_l1", "mel_distance")
REQUIRED = ("pystoi", "pesq", "onnxruntime", "speechmos")  # the metrics' packages (pip install mmtok[bench])
PARTS = ("ceiling", "kmeans", "dmel", "griffin_lim", "usage", "tones", "speed", "encodec")  # --skip choices
ANCHORS = [  # LibriSpeech test-clean, single codebook, as published
    {"model": "X-codec (single layer)", "codebook_size": 1024, "tokens_per_second": 50, "stoi": 0.83, "pesq_wb": 1.84},
    {"model": "WavTokenizer", "codebook_size": 4096, "tokens_per_second": 40, "stoi": 0.85, "pesq_wb": 1.62},
    {"model": "SpeechTokenizer RVQ-1", "stoi": 0.64, "pesq_wb": 1.14},
    {"model": "DAC (single layer)", "stoi": 0.62, "pesq_wb": 1.06},
]
BAR = {  # name -> (figure key, operator, threshold)
    "stoi": ("stoi", ">=", 0.80),
    "pesq_wb": ("pesq_wb", ">=", 1.5),
    "dnsmos_ovrl": ("dnsmos_ovrl", ">=", 2.3),
    "stoi_beats_kmeans": ("stoi_minus_kmeans", ">", 0.0),
    "pesq_beats_kmeans": ("pesq_wb_minus_kmeans", ">", 0.0),
    "encode_vs_encodec": ("encode_speedup_vs_encodec", ">=", 30.0),
    "decode_x_realtime": ("decode_x_realtime", ">=", 20.0),
    "size_mb": ("size_mb", "<=", 40.0),
}

# --------------------------------------------------------------------------- metrics


def clip_metrics(tok: AudioTokenizer, ref: torch.Tensor, deg: torch.Tensor | None, feats: torch.Tensor | None,
                 true: torch.Tensor | None, *, threads: int = 1) -> dict[str, float]:
    """The metrics of one decoded clip ``deg`` (None: ``ref`` itself, DNSMOS only); ``feats`` the
    log-mel the vocoder read, ``true`` the clip's log-mel over the frames the tokens cover."""
    if deg is None:
        return {f"dnsmos_{k}": v for k, v in dnsmos(ref, threads=threads).items()}
    deg = torch.nn.functional.pad(deg.cpu(), (0, max(0, ref.numel() - deg.numel())))[: ref.numel()]
    out = {"stoi": stoi_score(ref, deg), "pesq_wb": pesq_wb(ref, deg)}
    out |= {f"dnsmos_{k}": v for k, v in dnsmos(deg, threads=threads).items()}
    with torch.inference_mode():
        out["logmel_l1"] = float((tok.log_mel(deg) - tok.log_mel(ref)).abs().mean())
    if feats is not None and true is not None:
        out["mel_distance"] = float((feats[:, : true.shape[-1]] - true).abs().mean())
    return out


def summarize(rows: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Means over clips of each metric (NaNs left out), their medians and how many clips PESQ scored."""
    out: dict[str, Any] = {"clips": len(rows)}
    med = {}
    for key in METRICS:
        vals = [r[key] for r in rows if key in r and math.isfinite(r[key])]
        if vals:
            out[key], med[key] = round(statistics.mean(vals), 4), round(statistics.median(vals), 4)
    if any("pesq_wb" in r for r in rows):
        out["pesq_clips"] = sum(math.isfinite(r.get("pesq_wb", math.nan)) for r in rows)
    if any("stoi" in r for r in rows):
        out["stoi_clips"] = sum(math.isfinite(r.get("stoi", math.nan)) for r in rows)
    out["median"] = med
    return out


def bar_row(fig: dict[str, float | None]) -> dict[str, Any]:
    """Each :data:`BAR` check as ``{figure, need, pass}`` (pass None when the figure is missing)."""
    ops: dict[str, Callable[[float, float], bool]] = {
        ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b}
    checks = {}
    for name, (key, op, need) in BAR.items():
        x = fig.get(key)
        ok = None if x is None or not math.isfinite(x) else bool(ops[op](x, need))
        checks[name] = {"figure": x, "need": f"{op} {need}", "pass": ok}
    return {"bench": "bar", "method": "ours", "checks": checks,
            "passed": sum(c["pass"] is True for c in checks.values()),
            "failed": sum(c["pass"] is False for c in checks.values()),
            "missing": sorted(n for n, c in checks.items() if c["pass"] is None)}


# --------------------------------------------------------------------------- baselines


def clip_tokens(tok: AudioTokenizer, cache: AudioCache) -> tuple[np.ndarray, np.ndarray]:
    """Samples and token positions of each of the cache's clips (a partial last token counts)."""
    lengths = np.array([clip.length for clip in cache.clips], dtype=np.int64)
    return lengths, -(-lengths // tok.cfg.samples_per_token)


def token_positions(tok: AudioTokenizer, cache: AudioCache) -> int:
    """Token positions over all of the cache's clips: the distinct slices :func:`train_slices` can draw."""
    return int(clip_tokens(tok, cache)[1].sum())


def train_slices(tok: AudioTokenizer, cache: AudioCache, n: int, *, seed: int = 0, chunk: int = 8192) -> torch.Tensor:
    """``n`` token slices ``[n, fpt*M]`` drawn uniformly over every token position of the cache's clips:
    the rows :func:`audio_baselines.slices` gives for those tokens of the whole clip (zeros past its ends)."""
    c = tok.cfg
    spt, width = c.samples_per_token, (c.frames_per_token - 1) * c.hop_length + c.n_fft
    offsets = np.array([clip.offset for clip in cache.clips], dtype=np.int64)
    lengths, tokens = clip_tokens(tok, cache)
    ends = np.cumsum(tokens)
    flat = np.random.default_rng(seed).integers(0, int(ends[-1]), size=n)
    which = np.searchsorted(ends, flat, side="right")
    start = (flat - (ends[which] - tokens[which])) * spt - c.n_fft // 2  # first sample of each window, in the clip
    rows = []
    for a in range(0, n, chunk):
        pos = start[a : a + chunk, None] + np.arange(width)  # (b, width)
        w = which[a : a + chunk, None]
        inside = (pos >= 0) & (pos < lengths[w])
        x = np.where(inside, cache.samples[np.where(inside, offsets[w] + pos, 0)], 0).astype(np.float32) / INT16_SCALE
        with torch.inference_mode():
            mel = tok.log_mel(torch.from_numpy(x), center=False)  # (b, M, fpt)
        rows.append(mel.transpose(1, 2).reshape(mel.shape[0], -1))  # (b, fpt*M), frame-major as slices()
    return torch.cat(rows)


def cache_check(cache: str | Path, manifest: str | Path) -> dict[str, Any] | None:
    """A warning row when the cache does not record ``manifest``'s sha256 (another version of it, or a cache
    built before the hash was recorded); None when it does, or when the cache has no index yet."""
    index = Path(cache) / "index.json"
    if not index.is_file() or not Path(manifest).is_file():
        return None
    recorded = json.loads(index.read_text()).get("manifest_sha256")
    now = hashlib.sha256(Path(manifest).read_bytes()).hexdigest()
    if recorded == now:
        return None
    why = ("records no manifest sha256 (built before it was recorded)" if recorded is None else
           f"was built from another version of the manifest (sha256 {recorded[:12]}..., --manifest {now[:12]}...)")
    return {"bench": "cache_check", "cache": str(cache), "manifest": str(manifest),
            "warning": f"the cache {why}: the k-means and dMel baselines are fitted on its train split, which may "
                       "not be this manifest's"}


def fit_baselines(tok: AudioTokenizer, args: argparse.Namespace, skip: set[str]) -> dict[str, Any]:
    """The k-means centroids and the dMel quantizer, fitted on random slices of the cache's train split
    (the cache is read only when one of them is measured)."""
    out: dict[str, Any] = {}
    if {"kmeans", "dmel"} <= skip:
        return out
    if not args.cache:
        raise SystemExit("the k-means and dMel rows fit on a cache's train split: give --cache, or skip kmeans,dmel")
    warning = cache_check(args.cache, args.manifest)
    if warning:
        emit(warning)
    cache, k = AudioCache(args.cache, "train"), tok.codebook_size
    if "kmeans" not in skip:  # the slices are drawn with replacement: fewer positions than K give duplicates
        kmeans_fit_check(k, args.kmeans_vectors, f"--kmeans-vectors {args.kmeans_vectors}")
        kmeans_fit_check(k, token_positions(tok, cache), f"the train split of --cache {args.cache}")
    fit = train_slices(tok, cache, args.kmeans_vectors, seed=args.seed)
    if "kmeans" not in skip:
        t = time.perf_counter()
        centers, _ = kmeans(fit, k, args.kmeans_iters, generator=torch.Generator().manual_seed(args.seed))
        out["kmeans"] = centers
        out["kmeans_info"] = {"codebook_size": k, "fit_vectors": fit.shape[0], "iters": args.kmeans_iters,
                              "fit_seconds": round(time.perf_counter() - t, 1)}
    if "dmel" not in skip:
        q = fit_dmel(fit, tok.cfg.n_mels, tok.cfg.frames_per_token, dmel_bits(k))
        out["dmel"] = q
        out["dmel_info"] = {"what": DMEL_WHAT, "bands": len(q.bits_per_band), "bits_per_band": q.bits_per_band,
                            "bits_per_token": q.bits_per_token,
                            "bits_per_second": round(q.bits_per_token * tok.tokens_per_second, 1)}
    return out


# --------------------------------------------------------------------------- the evaluation


def decoders(tok: AudioTokenizer, voc: Vocoder, base: dict[str, Any], skip: set[str],
             compare: AudioTokenizer | None, counts: dict[str, torch.Tensor]) -> dict[str, Callable[..., Any]]:
    """Each method as ``f(audio, rows, true, codes) -> (waveform, features the vocoder read, the true
    log-mel they stand for)`` (``original``: Nones)."""
    fpt = tok.cfg.frames_per_token

    def vocode(mel: torch.Tensor) -> torch.Tensor:
        return voc.decode(mel, chunk_frames=VOCODER_CHUNK_FRAMES)

    def km(audio: torch.Tensor, rows: torch.Tensor, true: torch.Tensor, codes: torch.Tensor) -> Any:
        idx = nearest_code(rows, base["kmeans"])
        counts["kmeans"] += torch.bincount(idx, minlength=tok.codebook_size)
        feats = unslice(base["kmeans"][idx], fpt)
        return vocode(feats), feats, true

    def dm(audio: torch.Tensor, rows: torch.Tensor, true: torch.Tensor, codes: torch.Tensor) -> Any:
        feats = unslice(base["dmel"](rows), fpt)
        return vocode(feats), feats, true

    def other(audio: torch.Tensor, *_: Any) -> Any:  # the other tokenizer, its own front end and decoder
        assert compare is not None
        c2, ctx = compare.encode(audio, RATE), compare.context_frames
        true2 = compare.context_features(audio)
        return compare.decode(c2), compare.decode_features(c2), true2[:, ctx : true2.shape[-1] - ctx]

    out: dict[str, Callable[..., Any]] = {"original": lambda *_: (None, None, None)}
    if "ceiling" not in skip:
        out["ceiling"] = lambda audio, rows, true, codes: (vocode(true), true, true)
    if "kmeans" in base:
        out["kmeans"] = km
    if "dmel" in base:
        out["dmel"] = dm
    out["ours"] = lambda audio, rows, true, codes: (tok.decode(codes, vocoder=voc), tok.decode_features(codes), true)
    if "griffin_lim" not in skip:
        out["ours_griffin_lim"] = lambda audio, rows, true, codes: (
            tok.decode(codes, vocoder="griffin-lim"), tok.decode_features(codes), true)
    if compare is not None:
        out["compare"] = other
    return out


def evaluate(tok: AudioTokenizer, voc: Vocoder, clips: Sequence[tuple[dict[str, Any], torch.Tensor]],
             base: dict[str, Any], skip: set[str], *, compare: AudioTokenizer | None = None,
             threads: int = 1, per_clip: dict[str, list[dict[str, float]]] | None = None) -> dict[str, dict[str, Any]]:
    """Every method on every clip -> ``{method: quality row}``; ``per_clip`` receives each method's clip rows."""
    counts = {m: torch.zeros(tok.codebook_size, dtype=torch.long) for m in ("kmeans", "ours")}
    methods = decoders(tok, voc, base, skip, compare, counts)
    per: dict[str, list[dict[str, float]]] = per_clip if per_clip is not None else {}
    per.update({m: [] for m in methods})
    for _, audio in tqdm(clips, desc="clips", unit="clip", file=sys.stderr):
        with torch.inference_mode():
            rows = slices(tok, audio)  # (n, fpt*M)
            codes = tok.encode(audio, RATE)
        true = unslice(rows, tok.cfg.frames_per_token)  # (M, fpt*n)
        counts["ours"] += torch.bincount(codes, minlength=tok.codebook_size)
        for name, fn in methods.items():
            with torch.inference_mode():
                wave, feats, target = fn(audio, rows, true, codes)
            per[name].append(clip_metrics(tok, audio, wave, feats, target, threads=threads))
    out = {}
    for name, rows_ in per.items():
        row: dict[str, Any] = {"bench": "quality", "method": name, **summarize(rows_)}
        if name in counts:
            row |= usage_fields(counts[name])
        row |= base.get(f"{name}_info", {})
        out[name] = row
    return out


def split_usage(tok: AudioTokenizer, rows: Sequence[dict[str, Any]], root: Path, split: str) -> dict[str, Any]:
    """Codebook usage of ours on every file of ``split`` (all kinds, whole files)."""
    counts = torch.zeros(tok.codebook_size, dtype=torch.long)
    files = [r for r in rows if r.get("split") == split]
    failed = 0
    for r in tqdm(files, desc=f"usage ({split})", unit="file", file=sys.stderr):
        try:
            audio = load_audio(root / r["path"], target_rate=RATE, max_seconds=None)
        except Exception:
            failed += 1
            continue
        counts += torch.bincount(tok.encode(audio, RATE), minlength=tok.codebook_size)
    return {"bench": "codebook_usage", "method": "ours", "split": split, "files": len(files) - failed,
            "unreadable": failed, **usage_fields(counts)}


def speed_quality(ours: dict[str, Any]) -> dict[str, Any]:
    """Ours' STOI and PESQ-WB from this run's ``quality`` row, to print beside the speed figures."""
    return {"ours_stoi": ours.get("stoi"), "ours_pesq_wb": ours.get("pesq_wb"),
            "quality_from": f"this run's quality row of ours ({ours.get('clips')} eval_set clips)"}


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def speed_row(tok: AudioTokenizer, voc: Vocoder, clips: Sequence[tuple[dict[str, Any], torch.Tensor]],
              args: argparse.Namespace, skip: set[str]) -> dict[str, Any]:
    """Real-time factors at ``--threads`` on a 10 s speech clip (the evaluation clips end to end)."""
    n = int(SPEED_SECONDS * RATE)
    speech = torch.cat([a for _, a in clips])
    x = speech.repeat(math.ceil(n / speech.numel()))[:n]
    codes = tok.encode(x, RATE)
    sides = {"encode": lambda: tok.encode(x, RATE), "decode_features": lambda: tok.decode_features(codes),
             "decode_learned": lambda: tok.decode(codes, vocoder=voc),
             "decode_griffin_lim": lambda: tok.decode(codes, vocoder="griffin-lim"),
             **{f"decode_stream_{k}": lambda k=k: list(tok.decode_stream(codes.split(k), vocoder=voc))
                for k in STREAM_CHUNKS}}
    timings = time_sides(sides, repeats=args.repeats)
    t = {name: timing.median for name, timing in timings.items()}
    row: dict[str, Any] = {
        "bench": "speed", "clip_seconds": SPEED_SECONDS, "threads": args.threads,
        "rtf_encode": round(t["encode"] / SPEED_SECONDS, 5),
        "rtf_decode_features": round(t["decode_features"] / SPEED_SECONDS, 5),
        "rtf_decode_learned": round(t["decode_learned"] / SPEED_SECONDS, 5),
        "rtf_decode_griffin_lim": round(t["decode_griffin_lim"] / SPEED_SECONDS, 4),
        "encode_x_realtime": round(SPEED_SECONDS / t["encode"], 1),
        "decode_x_realtime": round(SPEED_SECONDS / t["decode_learned"], 1),
        **{f"decode_stream_{k}_x_realtime": round(SPEED_SECONDS / t[f"decode_stream_{k}"], 1) for k in STREAM_CHUNKS},
        "decode_stream_lookahead_s": round(lookahead_samples(tok, voc) / RATE, 3), "ratio_of": RATIO_OF,
    }
    if "encodec" not in skip:
        clip24 = load_audio(x, RATE, target_rate=ENCODEC_RATE)
        enc = encode_timings(tok, clip24, args.repeats)
        ours_s, encodec_s = enc["mmtok"].median, enc["encodec"].median
        row |= {"encode_input_rate": ENCODEC_RATE, "encode_seconds_24k": round(ours_s, 4),
                "encodec_seconds": round(encodec_s, 4), "encode_speedup_vs_encodec": round(encodec_s / ours_s, 1)}
        dec = decode_timings(tok, voc, codes, clip24, args.repeats)
        ours_s, encodec_s = dec["mmtok"].median, dec["encodec"].median
        row |= {"decode_seconds": round(ours_s, 4), "encodec_decode_seconds": round(encodec_s, 4),
                "decode_speedup_vs_encodec": round(encodec_s / ours_s, 1)}
        timings |= {f"encode_24k_{k}": v for k, v in enc.items()} | {f"decode_{k}": v for k, v in dec.items()}
    row["timings"] = {name: timing.summary() for name, timing in timings.items()}
    row["model_mb"] = round(folder_mb(resolve_checkpoint(args.model)), 2)
    if args.vocoder:
        row["vocoder_mb"] = round(folder_mb(resolve_checkpoint(args.vocoder)), 2)
    row["size_mb"] = round(row["model_mb"] + row.get("vocoder_mb", 0.0), 2)
    return row


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clip_arguments(ap, seed_help="clip order, training slices and k-means seeds")
    ap.add_argument("--cache", default=None, help="16 kHz cache of the corpus: its train split fits the k-means and "
                    "dMel rows (not needed when both are skipped)")
    ap.add_argument("--model", default="audio", help="the tokenizer: shipped name or checkpoint folder")
    ap.add_argument("--vocoder", default=None, help="a vocoder checkpoint (RUN/best); default: the tokenizer's own")
    ap.add_argument("--compare", default=None, help="another tokenizer, decoded its own way (e.g. audio)")
    ap.add_argument("--level-db", type=finite, default=0.0, metavar="DB",
                    help="scale every clip by DB dB first (clipped to [-1, 1]); e.g. -20 for quiet recordings")
    ap.add_argument("--threads", type=int, default=1, help="torch and onnxruntime CPU threads")
    ap.add_argument("--kmeans-vectors", type=int, default=200_000, help="train slices k-means and dMel are fitted on")
    ap.add_argument("--kmeans-iters", type=int, default=20, help="Lloyd iterations")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
    ap.add_argument("--skip", default="", help=f"comma list of parts to skip: {','.join(PARTS)}")
    return ap


def load_vocoder(tok: AudioTokenizer, path: str | None) -> Vocoder:
    """``--vocoder`` if given, else the tokenizer's own; an error naming the fix without one."""
    voc = load_model(path, "--vocoder") if path else tok.vocoder
    if voc is None:
        raise SystemExit("the tokenizer (--model) carries no learned vocoder and no --vocoder was given: "
                         "pass --vocoder RUN/best (a vocoder training run's best/ folder)")
    if not isinstance(voc, Vocoder):
        raise SystemExit(f"--vocoder {path} is a {type(voc).__name__} checkpoint, not a vocoder")
    wrong = front_end_mismatch(tok.cfg, voc.cfg)
    if wrong:
        raise SystemExit(f"--vocoder {path} reads another log-mel than the tokenizer writes: {wrong}")
    return voc.eval()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    skip = skip_parts("--skip", args.skip, PARTS)
    positives(args, "--threads", "--kmeans-vectors", "--kmeans-iters", "--repeats")
    missing = [p for p in REQUIRED if missing_peer(p) is not None]
    if missing:
        raise SystemExit(f"the metrics need {', '.join(missing)}: pip install {' '.join(missing)} (or mmtok[bench])")
    if not {"speed", "encodec"} & skip and not check_peer("speed", "encodec"):
        skip.add("encodec")  # EnCodec's side of the speed row; ours is still timed
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tok = load_audio_tokenizer(args.model, "--model")
    voc = load_vocoder(tok, args.vocoder)
    compare = load_audio_tokenizer(args.compare, "--compare") if args.compare else None
    rows, root = read_manifest(args.manifest), Path(args.manifest).parent
    out = functools.partial(emit, level_db=args.level_db) if args.level_db else emit
    clips = at_level(eval_clips(args, rows), args.level_db)
    out(eval_set_row(clips, args.split, args.seed))
    base = fit_baselines(tok, args, skip)
    per: dict[str, list[dict[str, float]]] = {}
    quality = evaluate(tok, voc, clips, base, skip, compare=compare, threads=args.threads, per_clip=per)
    own = args.vocoder or "the tokenizer's own"
    labels = {"original": None, "ours_griffin_lim": "griffin-lim",
              "compare": compare is not None and ("its own" if compare.vocoder is not None else "griffin-lim")}
    for name, row in quality.items():
        out(row, model=args.compare if name == "compare" else args.model, vocoder=labels.get(name, own))
    for other in ("kmeans", "compare"):
        if other in per:
            out(bench="paired", method=f"ours_minus_{other}", seed=args.seed,
                 **paired_difference(per["ours"], per[other], ("stoi", "pesq_wb", "dnsmos_ovrl", "logmel_l1"),
                                    seed=args.seed, lower_better=("logmel_l1",)))
    if "usage" not in skip:
        emit(split_usage(tok, rows, root, args.split))
    if "tones" not in skip:
        emit(bench="tones", method="ours", **pitch_round_trip(tok, vocoder=voc, seed=args.seed))
    speed = speed_row(tok, voc, clips, args, skip) if "speed" not in skip else {}
    if speed:
        emit(speed, **speed_quality(quality["ours"]))
    emit(bench="published_anchors", data="LibriSpeech test-clean (other data; loose comparison)", anchors=ANCHORS)
    ours, km = quality["ours"], quality.get("kmeans", {})
    fig = {k: ours.get(k) for k in ("stoi", "pesq_wb", "dnsmos_ovrl")} | {
        k: speed.get(k) for k in ("encode_speedup_vs_encodec", "decode_x_realtime", "size_mb")}
    for k in ("stoi", "pesq_wb"):
        if ours.get(k) is not None and km.get(k) is not None:
            fig[f"{k}_minus_kmeans"] = round(ours[k] - km[k], 4)
    out(bar_row(fig))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
