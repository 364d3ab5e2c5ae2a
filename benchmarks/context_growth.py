"""How context length grows with video, and what that length costs to train on, measured here.

1. Writes a real video with PyAV: a camera panning over a large generated image
   (H.264, with an AAC soundtrack), plus two short clips for the temporal
   compression figures (a static scene; a fixed camera with moving objects and
   sensor noise).
2. Tokenizes increasing durations (doubling) with mmtok's tokenizers: the shipped
   ``image``/``audio`` checkpoints when present, else the default-config models with
   their initial weights (the same architecture, rate and cost; the ids are
   meaningless). Video codes and soundtrack codes are interleaved one second at a
   time into one stream by the :class:`~mmtok.Interleaver`.
3. For each stream length, one forward+backward pass of the ``tiny`` and ``small``
   transformers, with PyTorch's SDPA dispatch (flash/efficient kernels, memory
   linear in length) and with the math backend (materializes the T×T scores: the
   quadratic term), doubling until a step takes longer than ``--step-limit`` seconds
   or would need more than ``--mem-limit`` GiB, or the time budget runs out. Each
   length is measured ``--repeats`` times and the fastest kept.
4. Fits log-log exponents of time and memory vs tokens per series with their R²
   (:func:`mmtok.context.growth.fit`), marked unreliable when other processes kept
   the CPU busy during the series or the R² is low. The exponents are local, over
   the lengths measured (``fitted_tokens``). For one hour of this video and a
   1M-token window: SDPA's time extrapolated from a reliable fit, as a lower bound,
   and its memory scaled linearly from the longest step; for the math backend the
   memory its T×T scores alone take (a lower bound), no time. Draws two PNGs.

Every measurement prints as one JSON object per line. Peak memory is
:class:`mmtok.core.memory.PeakMemory` over the step: on CUDA the allocator's peak,
on the CPU the process's peak resident set, each above what was in use before it.

Usage: ``python benchmarks/context_growth.py [--out DIR] [--fps 2] [--budget 540] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, folder_to_fill, json_line, positives, preset, run_script
from context_growth_media import (
    FRAME_H,
    FRAME_W,
    SRC_FPS,
    WORLD_H,
    WORLD_W,
    _soundtrack,
    _world,
    pan_frames,
    scene_frames,
    write_video,
)

import mmtok
from mmtok.audio.config import AudioTokenizerConfig
from mmtok.audio.tokenizer import AudioTokenizer
from mmtok.context.growth import (
    REPEATS,
    CpuShare,
    estimate_peak_mib,
    fit,
    fit_power,
    math_scores_mib,
    measure_step,
    plot_cost_vs_length,
    plot_tokens_vs_minutes,
    project,
)
from mmtok.context.planner import WINDOWS, mmtok_preset, plan
from mmtok.core.errors import UsageError
from mmtok.image.config import ImageTokenizerConfig
from mmtok.image.tokenizer import ImageTokenizer
from mmtok.lm.model import ModelConfig
from mmtok.stream.interleave import Interleaver
from mmtok.video.temporal import compression_stats
from mmtok.video.tokenizer import VideoTokenizer

# --------------------------------------------------------------------------- main


class Recorder:
    """Every row of the run: printed as one JSON line when recorded, kept for ``results.jsonl``."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def __call__(self, row: dict) -> None:
        """Print ``row`` and keep it."""
        self.rows.append(row)
        emit(row)

    def write(self, path: Path) -> None:
        """Write every recorded row, in order, one JSON object per line (NaN and infinity as null)."""
        with open(path, "w") as f:
            for row in self.rows:
                f.write(json_line(row) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "mmtok_context_growth"),
                    help="folder for the PNGs and results.jsonl (default: in the system's temp folder)")
    ap.add_argument("--fps", type=float, default=2.0, help="frames tokenized per second of video")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="longest duration tokenized, doubling from 1 s (default: 32 on CPU, 256 on a GPU)")
    ap.add_argument("--models", nargs="+", default=["tiny", "small"], help="transformer presets")
    ap.add_argument("--step-limit", type=float, default=40.0, help="stop doubling before a step this slow (s)")
    ap.add_argument("--mem-limit", type=float, default=4.0, help="stop doubling before a step needs this much (GiB)")
    ap.add_argument("--budget", type=float, default=540.0, help="wall-clock budget of the whole run (s)")
    ap.add_argument("--repeats", type=int, default=REPEATS, help="steps per length; the fastest is kept")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: all cores, or 1 when the load average exceeds the core count)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.max_seconds is not None and not args.max_seconds >= 1:
        raise UsageError(f"--max-seconds {args.max_seconds:g}: give 1 or more (the durations double from 1 s)")
    positives(args, "--fps", "--repeats", "--step-limit", "--mem-limit", "--budget", "--threads")
    preset("--models", *args.models)
    return args


def setup_device(args: argparse.Namespace, record: Recorder) -> tuple[torch.device, str | None]:
    """Set torch's threads, pick the device, default ``--max-seconds`` by it, and record a ``device`` row.

    Returns the device and the GPU's name (``None`` on the CPU).
    """
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    threads = args.threads or (1 if load > cores else cores)  # oversubscribed threads spin against each other
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.max_seconds is None:
        args.max_seconds = 256.0 if device.type == "cuda" else 32.0
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    record({"bench": "device", "device": device.type, "gpu": gpu, "torch": torch.__version__, "threads":
            torch.get_num_threads(), "repeats": args.repeats, "load_average": round(load, 2), "cpu": platform.processor() or platform.machine(), "cpus": cores,
            "note": None if gpu else "no GPU was available: CPU only; the >=128k-token GPU target was not run"})
    return device, gpu


def write_pan_video(tmp: Path, world: np.ndarray, seconds: float, rng: np.random.Generator,
                    record: Recorder) -> Path:
    """Write ``pan.mp4`` (the panning camera with its soundtrack, ``seconds`` long) and record a ``video`` row."""
    n_src = int(seconds * SRC_FPS)
    t = time.perf_counter()
    pan = write_video(tmp / "pan.mp4", pan_frames(world, n_src), n_src, audio=_soundtrack(seconds, rng))
    record({"bench": "video", "file": "pan.mp4", "seconds": seconds, "size": [FRAME_W, FRAME_H],
            "fps": SRC_FPS, "codec": "h264+aac", "bytes": pan.stat().st_size, "write_s": round(time.perf_counter() - t, 2)})
    return pan


def _shipped(name: str) -> Any:
    """The shipped checkpoint ``name``, or ``None`` when there is none."""
    try:
        return mmtok.load(name)
    except mmtok.MmtokError:
        return None


def _fit_image_codebook(image: ImageTokenizer, world: np.ndarray, rng: np.random.Generator) -> None:
    """Fit ``image``'s codebook by k-means to its (random) encoder's features of 24 views of the world image.

    So codes spread over the codebook as a trained one's do. Leaves ``image`` in eval mode.
    """
    views = torch.stack([torch.from_numpy(world[y : y + 256, x : x + 256]).permute(2, 0, 1).float() / 255
                         for y, x in zip(rng.integers(0, WORLD_H - 256, 24), rng.integers(0, WORLD_W - 256, 24),
                                         strict=True)])
    with torch.no_grad():
        image.train()(views)
    image.eval()


def load_tokenizers(world: np.ndarray, rng: np.random.Generator) -> tuple[Any, Any, dict[str, str | None]]:
    """The image and audio tokenizers: shipped checkpoints when present, else default-config models.

    Returns ``(image, audio, weights)``, ``weights`` saying which weights each one has.
    """
    image, audio = _shipped("image"), _shipped("audio")
    weights = {"image": "shipped" if image is not None else None, "audio": "shipped" if audio is not None else None}
    if audio is None:
        audio = AudioTokenizer(AudioTokenizerConfig()).eval()
        weights["audio"] = "default config, initial weights (no shipped checkpoint)"
    if image is None:
        image = ImageTokenizer(ImageTokenizerConfig())
        _fit_image_codebook(image, world, rng)
        weights["image"] = ("default config, initial encoder weights, codebook k-means-fitted to views of the "
                            "generated image (no shipped checkpoint)")
    return image, audio, weights


def measure_compression(vt: VideoTokenizer, image: Any, pan: Path, tmp: Path, world: np.ndarray,
                        rng: np.random.Generator, fps: float, weights: dict, record: Recorder) -> None:
    """Temporal compression of 16 s of three scenes (the pan, moving objects with noise, static): ``compression`` rows."""
    for scene, frames in (
        ("pan", None),
        ("fixed camera, moving objects, sensor noise", scene_frames(world, 16 * SRC_FPS, rng, moving=True, noise=3.0)),
        ("static", scene_frames(world, 16 * SRC_FPS, rng, moving=False, noise=0.0)),
    ):
        path = pan if frames is None else write_video(tmp / "scene.mp4", frames, 16 * SRC_FPS)
        codes = vt.encode(path, duration=16.0)
        record({"bench": "compression", "scene": scene, "fps": fps, "weights": weights["image"],
                **compression_stats(codes, image.codebook_size)})


def tokenize_file(vt: VideoTokenizer, pan: Path, seconds: float, record: Recorder) -> list[list[dict]]:
    """Tokenize the whole file once into one chunk of segments (video codes, soundtrack) per second.

    Records a ``tokenize_file`` row; each duration measured later is a prefix of these chunks.
    """
    t = time.perf_counter()
    segs = vt.segments(pan, chunk_seconds=1.0, duration=seconds)
    chunks: list[list[dict]] = []
    for seg in segs:
        if "video_codes" in seg:
            chunks.append([])
        chunks[-1].append(seg)
    record({"bench": "tokenize_file", "duration_s": seconds, "frames": sum(
        int(x["video_codes"].shape[0]) for x in segs if "video_codes" in x), "seconds": round(time.perf_counter() - t, 2)})
    return chunks


def planned_tokens(image: Any, audio: Any, fps: float, seconds: float) -> int:
    """What the context planner counts for ``seconds`` of the stream :func:`interleave_durations` builds: the
    video at ``fps`` in 1 s chunks with its soundtrack, through ``image``'s and ``audio``'s numbers, plus the
    document's ``<bos> <eos>``."""
    cfg = image.cfg
    preset = mmtok_preset(image_size=cfg.image_size, downsample=cfg.downsample,
                          audio_tokens_per_second=float(audio.tokens_per_second), size_policy=cfg.size_policy)
    return plan(seconds, preset=preset, fps=fps, chunk_seconds=1.0, resolution=None if cfg.size_policy != "native"
                else (FRAME_H, FRAME_W)).total_tokens + 2


def interleave_durations(il: Interleaver, chunks: list[list[dict]], record: Recorder,
                         length: float = math.inf) -> list[tuple[float, torch.Tensor]]:
    """Interleave the first 1, 2, 4, ... chunks into one stream each, recording a ``tokenize`` row per duration
    (``duration_s``: the seconds those chunks' frames last) with what the context planner counts for the same
    settings (``planned_tokens``, :func:`planned_tokens`: for a file that long; a prefix whose chunks are not a
    whole number of audio tokens long holds one audio token less). ``length``: the file's seconds (its last chunk
    may be short).

    Returns ``(seconds, ids)`` per duration, shortest first.
    """
    streams: list[tuple[float, torch.Tensor]] = []
    d = 1
    while d <= len(chunks):
        t = time.perf_counter()
        doc = [seg for chunk in chunks[:d] for seg in chunk]
        s = il.encode(doc)
        nv = sum(int(x["video_codes"].numel()) for x in doc if "video_codes" in x)
        na = sum(int(x["audio"].numel()) for x in doc if "audio" in x)
        frames = sum(int(x["video_codes"].shape[0]) for x in doc if "video_codes" in x)
        # the seconds d chunks last: a chunk holds 1 s rounded to whole frames (at 2.5 fps, 3 frames: 1.2 s)
        seconds = min(frames / il.video.fps, length)
        record({"bench": "tokenize", "chunks": d, "duration_s": round(seconds, 3), "frames": frames,
                "video_codes": nv, "audio_samples": na, "stream_tokens": len(s),
                "tokens_per_second": round(len(s) / seconds, 2), "interleave_s": round(time.perf_counter() - t, 3),
                "planned_tokens": planned_tokens(il.video.image, il.audio, il.video.fps, seconds)})
        streams.append((seconds, s.ids))
        d *= 2
    return streams


def _stop_reason(r: dict, done: list[dict], backend: str, args: argparse.Namespace, spent: float,
                 share: float) -> str | None:
    """Why not to measure the next (doubled) length after step ``r``, or ``None`` to go on.

    The next step's time is predicted from the last two steps' exponent (at least 1.5x, 2x for ``math``),
    its memory as 2x (4x for ``math``) this one's; it runs ``args.repeats`` times out of the series' budget.
    """
    nxt = 2.0
    grow_t = 2.0 if backend == "math" else 1.5
    if len(done) >= 2:
        e = fit_power([x["tokens"] for x in done[-2:]], [x["seconds"] for x in done[-2:]])
        grow_t = max(grow_t, nxt ** e[0]) if e else grow_t
    pred_t, pred_m = r["seconds"] * grow_t, r["peak_mib"] * (4.0 if backend == "math" else 2.0)
    if r["seconds"] > args.step_limit or pred_t > args.step_limit:
        return f"time: next step predicted {pred_t:.1f} s > {args.step_limit} s"
    if pred_m > args.mem_limit * 1024:
        return f"memory: next step predicted {pred_m / 1024:.2f} GiB > {args.mem_limit} GiB"
    if spent + pred_t * args.repeats > share:
        return f"budget: {share:.0f} s for this series"
    return None


def measure_series(model_name: str, backend: str, streams: list[tuple[float, torch.Tensor]], vocab: int,
                   device: torch.device, args: argparse.Namespace, share: float,
                   record: Recorder) -> tuple[list[dict], bool]:
    """One forward+backward step per stream length (the fastest of ``args.repeats``), shortest first, until
    :func:`_stop_reason` says stop.

    Records a ``step`` row per length and a ``series_end`` row with how busy other processes kept the
    machine meanwhile; returns the step rows and whether it was busy (:class:`~mmtok.context.growth.CpuShare`).
    ``share``: seconds of the budget this series may spend.
    """
    done: list[dict] = []
    stopped = "longest stream reached"
    series_start = time.perf_counter()
    with CpuShare() as load:
        for d, ids in streams:
            r = measure_step(model_name, backend, ids, vocab, device, repeats=args.repeats)
            row = {"bench": "step", "model": model_name, "backend": backend, "device": device.type,
                   "duration_s": d, "tokens": int(ids.numel()), "repeats": args.repeats, **r}
            record(row)
            done.append(row)
            reason = _stop_reason(r, done, backend, args, time.perf_counter() - series_start, share)
            if reason is not None:
                stopped = reason
                break
    record({"bench": "series_end", "model": model_name, "backend": backend, "max_tokens": done[-1]["tokens"],
            "stopped_by": stopped, "busy": load.busy, "machine_load": load.describe()})
    return done, load.busy


def measure_steps(args: argparse.Namespace, streams: list[tuple[float, torch.Tensor]], vocab: int,
                  device: torch.device, t0: float,
                  record: Recorder) -> tuple[dict[tuple[str, str], list[dict]], dict[tuple[str, str], bool]]:
    """Forward+backward cost vs length for every model and both attention backends (``sdpa``, ``math``):
    the step rows per series, and whether other processes kept the machine busy during each.

    Each series gets an equal share of the budget left when it starts (``t0``: when the run began).
    """
    series: dict[tuple[str, str], list[dict]] = {}
    busy: dict[tuple[str, str], bool] = {}
    order = [(m, b) for m in args.models for b in ("sdpa", "math")]
    for k, key in enumerate(order):
        measure_step(*key, streams[0][1][:64], vocab, device)  # warm-up: first-call overheads
        share = (args.budget - (time.perf_counter() - t0)) / (len(order) - k)  # time left for this series
        series[key], busy[key] = measure_series(*key, streams, vocab, device, args, share, record)
    return series, busy


def _exponent(f: Any, key: str) -> dict:
    """``{key}_exponent`` and ``{key}_r2`` of a :class:`~mmtok.context.growth.Fit` (None without one)."""
    return {f"{key}_exponent": round(f.exponent, 3) if f else None, f"{key}_r2": round(f.r2, 4) if f else None}


def fit_row(model_name: str, backend: str, done: list[dict], hour: float, *, busy: bool = False) -> dict:
    """The ``fit`` row of one series: time and memory exponents with their R², and one hour of video and a
    1M-token window.

    The exponents are local, fitted over ``fitted_tokens`` (1,024 tokens and up when three lengths are there):
    far longer contexts grow faster. ``reliable`` is the time fit's (:func:`~mmtok.context.growth.fit`: not
    ``busy``, R² high enough). Only SDPA's time is projected, from a reliable fit, and as a lower bound;
    its memory is the longest step's scaled linearly (:func:`~mmtok.context.growth.estimate_peak_mib`).
    The math backend's memory is at least its T×T scores (:func:`~mmtok.context.growth.math_scores_mib`).
    """
    big = [x for x in done if x["tokens"] >= 1024]  # past fixed per-call overheads
    sel = big if len(big) >= 3 else done
    xs = [x["tokens"] for x in sel]
    ft = fit(xs, [x["seconds"] for x in sel], busy=busy)
    fm = fit(xs, [x["peak_mib"] for x in sel], busy=busy)
    why = "fewer than two lengths measured" if ft is None else ft.why
    row = {"bench": "fit", "model": model_name, "backend": backend, "points": len(sel),
           "fitted_tokens": [min(xs), max(xs)], **_exponent(ft, "time"), **_exponent(fm, "memory"),
           "reliable": not why, "unreliable_because": why or None}
    quadratic = backend == "math"
    if quadratic:
        row["seconds_are"] = "not projected: its T×T scores alone need the memory of *_peak_gib"
        row["peak_gib_are"] = "at least: the T×T attention scores alone, float32 (math_scores_mib), no fit"
    else:
        row["seconds_are"] = (f"not projected: {why}" if why else "at least: the time fit extrapolated past the "
                              "longest step measured (the exponent grows with length)")
        row["peak_gib_are"] = "the longest step's peak scaled linearly (estimate_peak_mib)"
    cfg = ModelConfig.preset(model_name)
    kv_per_token = 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * 2  # keys + values, bf16
    for name, tokens in (("one_hour_video", round(hour)), ("1M_window", WINDOWS["1M"])):
        seconds = None if quadratic or why else project((ft.exponent, ft.log_intercept), tokens)
        peak = math_scores_mib(cfg, tokens) if quadratic else estimate_peak_mib(cfg, backend, tokens, sel)
        row[f"{name}_tokens"] = tokens
        row[f"{name}_seconds"] = None if seconds is None else round(seconds, 1)
        row[f"{name}_peak_gib"] = round(peak / 1024, 2)
        row[f"{name}_kv_cache_gib_bf16"] = round(kv_per_token * tokens / 2**30, 3)
    return row


def draw_plots(out: Path, streams: list[tuple[float, torch.Tensor]], series: dict[tuple[str, str], list[dict]],
               fps: float, gpu: str | None, record: Recorder) -> None:
    """Draw ``tokens_vs_minutes.png`` and ``cost_vs_length.png`` into ``out`` (skipped without matplotlib)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        record({"bench": "plots", "skipped": "matplotlib is not installed (pip install mmtok[plot])"})
        return
    plot_tokens_vs_minutes(out / "tokens_vs_minutes.png", measured=[(d, len(x)) for d, x in streams],
                           measured_label=f"measured: mmtok stream, {fps:g} fps + audio in 1 s chunks")
    n = torch.get_num_threads()
    where = gpu or f"CPU ({n} thread{'s' if n > 1 else ''})"
    plot_cost_vs_length(out / "cost_vs_length.png",
                        {f"{m} {b}": done for (m, b), done in series.items()}, where=where)
    record({"bench": "plots", "files": [str(out / "tokens_vs_minutes.png"), str(out / "cost_vs_length.png")]})


def main(argv: list[str] | None = None) -> int:
    """Run every phase, print each row, and write ``results.jsonl`` and the PNGs to ``--out``."""
    args = parse_args(argv)
    t0 = time.perf_counter()
    out = folder_to_fill("--out", args.out)
    record = Recorder()
    device, gpu = setup_device(args, record)

    rng = np.random.default_rng(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="context_growth_"))
    try:
        return _run(args, out, tmp, rng, device, gpu, record, t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, out: Path, tmp: Path, rng: np.random.Generator, device: torch.device,
         gpu: str | None, record: Recorder, t0: float) -> int:
    """The phases of :func:`main`, with the video and its pieces in ``tmp``."""
    world = _world(rng)
    pan = write_pan_video(tmp, world, args.max_seconds, rng, record)
    image, audio, weights = load_tokenizers(world, rng)
    vt = VideoTokenizer(image, fps=args.fps)
    il = Interleaver(None, video=vt, audio=audio)

    measure_compression(vt, image, pan, tmp, world, rng, args.fps, weights, record)
    streams = interleave_durations(il, tokenize_file(vt, pan, args.max_seconds, record), record, args.max_seconds)
    rate = len(streams[-1][1]) / streams[-1][0]
    series, busy = measure_steps(args, streams, il.vocab.size, device, t0, record)
    for (model_name, backend), done in series.items():
        record(fit_row(model_name, backend, done, rate * 3600, busy=busy[(model_name, backend)]))
    draw_plots(out, streams, series, args.fps, gpu, record)

    record({"bench": "summary", "seconds": round(time.perf_counter() - t0, 1), "device": device.type,
            "stream_tokens_per_second": round(rate, 2), "weights": weights,
            "longest": {f"{m}/{b}": d[-1]["tokens"] for (m, b), d in series.items()}})
    record.write(out / "results.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
