"""Demo step: how much context video takes under each preset, and a short measured growth run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from mmtok.context.growth import (
    BUSY_MARGIN,
    MIN_POINTS,
    MIN_R2,
    REPEATS,
    Growth,
    math_scores_mib,
    measure_growth,
    plot_cost_vs_length,
    plot_tokens_vs_minutes,
    project,
)
from mmtok.context.planner import PRESETS, WINDOWS
from mmtok.context.shipped import plan
from mmtok.core.suffixes import VIDEO_SUFFIXES
from mmtok.lm.model import ModelConfig
from mmtok.stream.interleave import Interleaver
from mmtok.video.tokenizer import VideoTokenizer

if TYPE_CHECKING:
    from mmtok.demo.state import Demo

PLAN_SECONDS = 10 * 60  # the planner table is for ten minutes of video


def _gib(n: float) -> float:
    return round(n / 2**30, 3)


def _plan_rows(d: Demo) -> list[list[Any]]:
    """The planner table: every preset for ten minutes of video, the small model's KV cache in bf16."""
    rows = []
    for name in (*PRESETS, "mmtok"):
        p = plan(PLAN_SECONDS, preset=name, model="small")
        fits = [w.name for w in p.windows if w.fits]
        hold = {w.name: w.seconds for w in p.windows}
        minutes = int(hold["128k"] / 6) / 10  # rounded down: a video that long still fits 128k
        rows.append([name, round(p.tokens_per_frame, 1), round(p.tokens_per_second, 1), p.total_tokens,
                     fits[0] if fits else "none ≤ 2M", minutes, _gib(p.kv_cache_bytes)])
    d.figure("plan_gemini_tokens_per_second", float(plan(60, preset="gemini").tokens_per_second), "tokens/s",
             "planner (from the preset, not measured): Gemini, tokens per second of video (published: 258 per "
             "frame + 32 audio)")
    d.figure("plan_mmtok_tokens_per_second", round(plan(60, preset="mmtok").tokens_per_second, 1), "tokens/s",
             "planner (from the shipped tokenizers' configs, not measured): mmtok, tokens per second of video")
    return rows


def _measure_video(d: Demo) -> tuple[list[tuple[float, int]], torch.Tensor | None]:
    """The example video tokenized for real (1 fps with its soundtrack) in growing prefixes.

    Returns (seconds, stream tokens) per prefix and the longest stream's ids (None without a video).
    """
    measured: list[tuple[float, int]] = []
    videos = sorted(p for p in d.data.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) if d.has_video else []
    if not videos:
        return measured, None
    vt = VideoTokenizer(d.image, fps=1.0)
    il = Interleaver(None, video=vt, audio=d.audio)
    segs = vt.segments(videos[0], chunk_seconds=1.0, sample_rate=int(d.audio.sample_rate))
    chunks: list[list[dict]] = []
    for seg in segs:
        if "video_codes" in seg:
            chunks.append([])
        chunks[-1].append(seg)
    ids = None
    for n in (1, 2, 4, len(chunks)):
        if n <= len(chunks) and (not measured or measured[-1][0] != n):
            s = il.encode([x for c in chunks[:n] for x in c])
            measured.append((float(n), len(s)))
            ids = s.ids
    d.figure("video_stream_tokens_per_second", round(measured[-1][1] / measured[-1][0], 1), "tokens/s",
             f"video: measured stream rate of {videos[0].name} at 1 fps with its soundtrack")
    return measured, ids


FAST_LENGTHS = {"sdpa": [256, 512, 1024]}
GROWTH_MODEL = "tiny"  # the preset the growth run measures
FULL_LENGTHS = {"sdpa": [256 << k for k in range(7)], "math": [256 << k for k in range(6)]}  # to 16k and 8k


def _growth(d: Demo, ids: torch.Tensor | None) -> Growth:
    """Forward + backward of the tiny model on growing lengths (the stream's ids, repeated), within the budget."""
    base = ids if ids is not None else torch.randint(0, 1000, (4096,), generator=torch.Generator().manual_seed(0))
    return measure_growth(GROWTH_MODEL, FAST_LENGTHS if d.fast else FULL_LENGTHS, base, int(base.max()) + 1, d.device,
                          max_memory_gb=d.max_memory_gb,
                          progress=lambda jobs: tqdm(jobs, desc="context growth", leave=False, disable=not d.progress))


def _duration(seconds: float) -> str:
    """``3.2 s``, ``14 min``, ``2.1 h`` or ``3.5 days``: never a rounded zero."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.2g} s"


def _hour(label: str, ft: Any, tokens: float, longest: int) -> str:
    """One hour of the example video's tokens, ``tokens``, from the fit of ``label`` measured up to ``longest``:
    the math backend's T×T scores alone (as :func:`~mmtok.context.growth.math_scores_mib` counts them for the
    model measured) would not fit in memory; the other's time is extrapolated far past what was measured, and the
    exponent grows with length, so it is a lower bound."""
    if label.split()[-1] == "math":  # "tiny math": the backend is the last word
        tb = math_scores_mib(ModelConfig.preset(GROWTH_MODEL), round(tokens)) * 2**20 / 1e12
        return f"cannot run: its {tokens:,.0f}×{tokens:,.0f} attention scores alone take {tb:,.0f} TB"
    time = _duration(project((ft.exponent, ft.log_intercept), tokens) or 0.0)
    return (f"at least {time}: extrapolated {tokens / longest:,.0f}× past the longest length measured (the "
            "exponent grows with length)")


def _growth_rows(d: Demo, growth: Growth, measured: list[tuple[float, int]]) -> list[list[Any]]:
    """Per series: the longest step, fitted time and memory exponents with R², one hour of video projected."""
    rows = []
    rate = measured[-1][1] / measured[-1][0] if measured else 300.0
    for label, pts in growth.series.items():
        if not pts:
            continue
        ft, fm = growth.fits(label), growth.fits(label, "peak_mib")
        if d.fast:
            hour = "left out: a fast run measures only short lengths"
        elif ft is None or not ft.reliable:
            hour = f"not projected: {ft.why if ft else 'too few lengths'}"
        else:
            hour = _hour(label, ft, 3600 * rate, pts[-1]["tokens"])
        time_exp = f"{ft.exponent:.2f} (R² {ft.r2:.3f})" if ft else "n/a"
        if ft and not ft.reliable:
            time_exp = f"not reported, {ft.why} (the fit gave {ft.exponent:.2f}, R² {ft.r2:.3f})"
        rows.append([label, pts[-1]["tokens"], pts[-1]["seconds"], pts[-1]["peak_mib"], time_exp,
                     f"{fm.exponent:.2f} (R² {fm.r2:.3f})" if fm else "n/a", hour])
        if ft:
            mark = "" if ft.reliable else f"; not reliable, so not reported: {ft.why}"
            d.figure(f"growth_{label.replace(' ', '_')}_time_exponent", round(ft.exponent, 3), "exponent",
                     f"context growth: step time ∝ tokens^b, {label} on {d.device_label}, R² {ft.r2:.3f}{mark}",
                     reliable=ft.reliable)
    return rows


def _growth_notes(d: Demo, growth: Growth) -> list[str]:
    """What the growth run left out, and the machine's load while it ran."""
    notes = [f"While this ran, {growth.load.describe()} (on {growth.load.cores} cores). Each length is measured "
             f"{REPEATS} times and the fastest kept; a fit is marked unreliable when other processes kept more than "
             f"{BUSY_MARGIN:g} cores busy, when it has fewer than {MIN_POINTS} lengths or when its R² is below "
             f"{MIN_R2:g}."]
    if d.fast:
        notes.append("A fast run leaves out lengths above 1,024 tokens, the math backend and the projection to an "
                     "hour of video: run mmtok demo without --fast for them.")
    if growth.skipped:
        notes.append("Skipped to stay within the memory budget: " + "; ".join(
            f"{label} at {n:,} tokens ({why})" for label, n, why in growth.skipped) + ".")
    return notes


def context_step(d: Demo) -> str:
    rows = _plan_rows(d)
    measured, ids = _measure_video(d)
    plot_tokens_vs_minutes(d.out / "context" / "tokens_vs_minutes.png", measured=measured,
                           measured_label="measured: the example video through mmtok (1 fps + sound)")
    d.overview.append(("context/tokens_vs_minutes.png", "context length vs video minutes"))
    growth = _growth(d, ids)
    plot_cost_vs_length(d.out / "context" / "cost_vs_length.png", {k: v for k, v in growth.series.items() if v},
                        where=d.device_label)
    grow_rows = _growth_rows(d, growth, measured)
    d.report.section(
        "8. Context budget for video",
        d.report.text(f"The planner (mmtok context) for {PLAN_SECONDS // 60} minutes of video under each preset, "
                      "with the KV cache of the small model in bf16. Presets reproduce published rates; "
                      "mmtok reads its own shipped tokenizers' configs."),
        d.report.table(["preset", "tokens/frame", "tokens/s", f"tokens in {PLAN_SECONDS // 60} min",
                        "smallest window that fits", "minutes in 128k", "KV cache (GiB)"], rows),
        d.report.text(f"Windows: {', '.join(f'{k} = {v:,}' for k, v in WINDOWS.items())} tokens."),
        d.report.grid([d.report.image("context/tokens_vs_minutes.png",
                                      "tokens vs minutes for every preset" + ("; dots: the example video "
                                                                                 "measured" if measured else
                                                                                 " (no video among the media: "
                                                                                 "nothing measured)"),
                                      width=620)]),
        d.report.text("One forward+backward pass of the tiny transformer over growing sequences, measured here. "
                      "SDPA picks a fused kernel whose memory grows linearly; the math backend materializes the "
                      "T×T scores. Before each length the step's peak memory is estimated from the shorter ones "
                      f"(and, for the math backend, the T×T scores by formula); a length that would take the demo "
                      f"past {d.max_memory_gb:g} GiB is skipped. The last column carries the fitted time to one "
                      "hour of the example video's token rate, far past the lengths measured here: a lower bound, "
                      "since the exponent grows with length (benchmarks/context_growth.py measures longer ones)."),
        d.report.table(["series", "longest (tokens)", "its step (s)", "its peak (MiB)", "time exponent",
                        "memory exponent", "one hour of the example video's tokens: time per step"], grow_rows),
        *(d.report.note(n) for n in _growth_notes(d, growth)),
        d.report.grid([d.report.image("context/cost_vs_length.png", "step time and peak memory vs length",
                                      width=760)]),
    )
    return _context_line(growth, len(rows))


def _context_line(growth: Growth, presets: int) -> str:
    """The console's summary of the step: the longest length measured and the time exponent, if trustworthy."""
    label, pts = next(iter(growth.series.items()))
    if not pts:
        return (f"planned {presets} presets; measured no length of {label}: each would pass "
                f"--max-memory {growth.max_memory_gb:g} GiB")
    ft = growth.fits(label)
    shape = (f"step time grows as length^{ft.exponent:.2f}" if ft and ft.reliable
             else f"no time exponent ({ft.why if ft else 'too few lengths'})")
    skipped = f"; {len(growth.skipped)} length(s) skipped to stay under {growth.max_memory_gb:g} GiB" if growth.skipped else ""
    return f"planned {presets} presets; measured {label} up to {pts[-1]['tokens']:,} tokens, {shape}{skipped}"
