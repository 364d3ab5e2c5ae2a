"""``run_demo``: the demo's steps in order, the page's overview and its last section."""


from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import torch

from mmtok.context.growth import load_average
from mmtok.core.errors import UsageError
from mmtok.core.trainstate import pick_device
from mmtok.demo.plots import pyplot
from mmtok.demo.state import Demo, check_data, example_data

__all__ = ["MARK", "claim_out", "run_demo"]

MARK = ".mmtok-demo"  # in every folder the demo writes: the one kind of folder it rewrites


def _steps() -> list[tuple[str, Callable[[Demo], str]]]:
    from mmtok.demo.budget import context_step
    from mmtok.demo.learn import corpus_step, sample_step, train_step
    from mmtok.demo.media import audio_step, images_step, stream_step
    from mmtok.demo.vqcore import vq_step

    return [("VQ core", vq_step), ("images", images_step), ("audio", audio_step), ("stream", stream_step),
            ("corpus", corpus_step), ("train", train_step), ("sample", sample_step), ("context", context_step)]


def _overview(d: Demo) -> None:
    """``overview.png``: the pictures the steps chose (:attr:`Demo.overview`) in one, at the top of the page."""
    from mmtok.demo.plots import overview

    panels = [(d.out / f, c) for f, c in d.overview if (d.out / f).is_file()]
    if panels:
        overview(d.out / "overview.png", panels, title="mmtok demo")
        d.report.parts.insert(0, d.report.grid([d.report.image("overview.png", "", width=1100)]))


# what a demo writes at the top of its folder (claim_out removes these, and only these, before a run)
DEMO_NAMES = frozenset({"index.html", "index.tmp", "summary.json", "figures.json", "overview.png", "vq_usage.png", "image_usage.png",
                        "audio_usage.png", "images", "audio", "samples", "context", "corpus", "shards", "run"})


def claim_out(out: Path) -> Path:
    """``out``, made and marked as the demo's (:data:`MARK`) and emptied of what an earlier demo wrote there
    (:data:`DEMO_NAMES`), or a :class:`UsageError` before anything is written when it is a file or a folder
    holding anything else, an earlier demo's with files of the user's beside its own included: the demo
    rewrites its folder (its training run included), so it never takes one a user's own files are in, and its
    page shows only what this run made."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; nothing was written")
    if out.is_dir():
        held = sorted(p.name for p in out.iterdir() if p.name != MARK)
        others = [name for name in held if name not in DEMO_NAMES] if _demo_folder(out) else held
        if others:
            raise UsageError(f"--out {out} holds files the demo did not write ({', '.join(others[:4])}, ...); the "
                             "demo rewrites its folder, so give a new or empty one (default: mmtok-demo); nothing "
                             "was written")
    out.mkdir(parents=True, exist_ok=True)
    for entry in out.iterdir():
        if entry.name not in DEMO_NAMES:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    (out / MARK).write_text("this folder is mmtok demo's output: a new demo run rewrites it\n")
    return out


def _demo_folder(out: Path) -> bool:
    """Whether ``out`` is a demo's: its mark, or (written before the mark existed) a summary.json of a demo."""
    if (out / MARK).is_file():
        return True
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and {"page", "steps", "figures"} <= summary.keys()


def run_demo(
    out: str | Path = "mmtok-demo", *, fast: bool = False, seed: int = 0, device: str | None = None,
    data: str | Path | None = None, max_memory_gb: float = 2.0, threads: int | None = None, progress: bool = True,
    log: TextIO | None = None,
) -> dict[str, Any]:
    """Run every step, write ``out/index.html``, and return the summary (also in ``out/summary.json``).

    ``max_memory_gb``: the context-growth measurement skips (and says so) every length whose
    estimated step would take the process past this many GiB. ``threads``: CPU threads for torch
    (default: torch's choice). ``progress``: the long steps' progress bars (on stderr). ``log``: where
    the step lines go (default: stdout; ``mmtok demo --json`` sends them to stderr, leaving stdout to the
    JSON). The data, the device and matplotlib are checked before ``out`` is touched.
    """
    t_start = time.perf_counter()
    folder = check_data(Path(data)) if data else example_data()
    dev = pick_device(device)
    pyplot()  # matplotlib, which every step draws with, is installed
    if folder.resolve().is_relative_to(Path(out).resolve()):
        raise UsageError(f"--data {folder} is inside --out {out}, which the demo empties and rewrites; keep the "
                         "media elsewhere; nothing was written")
    if threads:
        torch.set_num_threads(threads)
    out = claim_out(Path(out))
    for sub in ("images", "audio", "context", "samples"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    d = Demo(out, fast=fast, seed=seed, device=dev, data=folder, max_memory_gb=max_memory_gb, progress=progress)
    log = log or sys.stdout
    if not d.has_video:
        print("note: PyAV is not installed (pip install 'mmtok[video]'): the video parts are skipped", file=log)
    timings, lines = _run_steps(d, log)
    _overview(d)
    total = time.perf_counter() - t_start
    d.figure("demo_seconds", round(total, 1), "s", f"the whole demo ({'fast' if fast else 'full'} run)")
    d.report.section(
        "Measured figures",
        d.report.text("The run's key figures (also in figures.json): measured in this run, except the planner's, "
                      "which a preset or the shipped tokenizers' configs give, and the token counts "
                      "audio_tokens_per_second and image_tokens, which the shipped tokenizers' configs fix. "
                      "A figure its description calls not reliable (\"reliable\": false in figures.json, listed "
                      "under unreliable_figures in summary.json) is kept for the record, not reported."),
        d.report.note(d.load_note()),
        d.report.figures_table(),
        d.report.table(["step", "seconds", "summary"], [[n, timings[n], lines[n]] for n in timings]),
        d.report.note("Reconstruction quality on the example files is a demonstration, not a benchmark: the "
                      "held-out figures are in benchmarks/ and the model cards (models/*/README.md)."),
    )
    page = d.report.write()
    summary = {"page": str(page), "seconds": round(total, 1), "fast": fast, "device": str(d.device),
               "load_average": {"start": d.load_averages[0], "max": max(d.load_averages)},
               "steps": {n: {"seconds": timings[n], "summary": lines[n]} for n in timings},
               "figures": {k: v["value"] for k, v in d.report.figures.items()},
               "unreliable_figures": d.unreliable()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {page} in {total:.0f} s: open it in a browser", file=log, flush=True)
    return summary


def _run_steps(d: Demo, log: TextIO) -> tuple[dict[str, float], dict[str, str]]:
    """Every step in order, each with its line on ``log``: (seconds, summary line) per step."""
    steps = _steps()
    timings: dict[str, float] = {}
    lines: dict[str, str] = {}
    for k, (name, fn) in enumerate(steps, 1):
        t0 = time.perf_counter()
        line = fn(d)
        timings[name] = round(time.perf_counter() - t0, 2)
        lines[name] = line
        d.load_averages.append(load_average())
        print(f"[{k}/{len(steps)}] {name}: {line} ({timings[name]:.1f} s)", file=log, flush=True)
    return timings, lines
