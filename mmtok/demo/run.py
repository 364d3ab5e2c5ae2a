"""``run_demo``: the demo's steps in order, the page's overview and its last section; the folder it writes,
claimed (:func:`claim_out`) and its paths recorded in its mark (:func:`record_paths`)."""


from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, TextIO

import torch

from mmtok.context.growth import load_average
from mmtok.core.checkpoint_folder import BACKUP_NAME, TEMP_NAME
from mmtok.core.device import pick_device
from mmtok.core.errors import UsageError
from mmtok.core.files import write_atomic
from mmtok.demo.plots import pyplot
from mmtok.demo.state import Demo, check_data, example_data

__all__ = ["LAYOUT", "MARK", "claim_out", "record_paths", "run_demo"]

MARK = ".mmtok-demo"  # in every folder the demo writes, recording the paths it wrote: the one kind it rewrites


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


# what a demo writes, as path patterns (a temporary or backup name a killed writer leaves, .NAME.tmp-PID or
# .NAME.old-XXXXXXXX, stands for NAME): how the paths of a folder whose mark records none of its own are read
LAYOUT = ("index.html", "index.tmp", "summary.json", "figures.json", "overview.png", "vq_usage.png", "image_usage.png",
          "audio_usage.png", MARK, "images/*.png", "audio/*.png", "audio/*.wav", "samples/*.png", "samples/*.wav",
          "context/*.png", "corpus/*.jsonl", "corpus/img/*.png", "corpus/snd/*.wav", "shards/shard-*.bin",
          "shards/shard-*.json", "shards/manifest.json", "shards/.verified.json", "shards/.lock", "run/log.jsonl",
          "run/loss.png", "run/.lock", "run/ckpt-*/*.json", "run/ckpt-*/*.safetensors")
_LAYOUT_DIRS = frozenset(p.rsplit("/", k)[0] for p in LAYOUT for k in range(1, p.count("/") + 1))


def claim_out(out: Path) -> Path:
    """``out``, made and marked as the demo's (:data:`MARK`) and emptied of what an earlier demo wrote there,
    or a :class:`UsageError` before anything is written or removed when it is a file or a folder holding
    anything else, an earlier demo's with files of the user's beside or among its own included: the demo
    rewrites its folder (its training run included), so it never takes one a user's own files are in, and its
    page shows only what this run made.

    What an earlier demo wrote is what its mark records (:func:`record_paths`). A path the record lacks is
    the demo's only where the record may be short of the run's last writes (a run killed part-way) or the mark
    records nothing (an older demo's, or a folder with its summary.json and no mark) and the path is one the
    demo writes (:data:`LAYOUT`). Those paths are removed, then the folders they leave empty."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; nothing was written")
    if out.is_dir():
        ours, others = _walk(out, _claims(out))
        if others:
            raise UsageError(f"--out {out} holds files the demo did not write ({', '.join(others[:4])}, ...): "
                             f"{len(others)} in all; the demo rewrites its folder, so give a new or empty one "
                             "(default: mmtok-demo); nothing was removed or written")
        for rel, is_dir in reversed(ours):  # a folder's contents before the folder
            if is_dir:
                with contextlib.suppress(OSError):  # what is in it now stays
                    (out / rel).rmdir()
            else:
                (out / rel).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    record_paths(out, complete=False)
    return out


def record_paths(out: Path, *, complete: bool) -> None:
    """Write the mark of ``out``: every path the demo's folder holds (a folder's with a ``/`` at its end), and
    whether that is the whole of what the run wrote (``complete``: it ended, or failed) or what it had written
    when last recorded (after each step: a run killed part-way may have written more)."""
    paths = [f"{rel}/" if is_dir else rel for rel, is_dir in _walk(out, lambda rel, is_dir: True)[0]]
    write_atomic(out / MARK, json.dumps({"what": "this folder is mmtok demo's output: a new demo run removes the "
                                         "paths listed here and rewrites it", "complete": complete,
                                         "paths": paths}, indent=1) + "\n")


def _claims(out: Path) -> Callable[[str, bool], bool]:
    """Whether a path of ``out`` (relative, ``/``-separated; a folder or not) is an earlier demo's (see
    :func:`claim_out`): none of a folder that is not a demo's (:func:`_demo_folder`)."""
    if not _demo_folder(out):
        return lambda rel, is_dir: False
    recorded, complete = _record(out)
    return lambda rel, is_dir: (f"{rel}/" if is_dir else rel) in recorded or (
        not complete and _in_layout(rel, is_dir))


def _record(out: Path) -> tuple[frozenset[str], bool]:
    """``(the paths the mark of out records, whether that is all its run wrote)``; none, and not all, for a
    mark an older demo wrote (in words, recording nothing), an unreadable one or none."""
    try:
        record = json.loads((out / MARK).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return frozenset(), False
    if not (isinstance(record, dict) and isinstance(record.get("paths"), list)
            and isinstance(record.get("complete"), bool)):
        return frozenset(), False
    return frozenset(p for p in record["paths"] if isinstance(p, str)), record["complete"]


def _in_layout(rel: str, is_dir: bool) -> bool:
    """Whether ``rel`` is a path the demo writes (:data:`LAYOUT`; a folder: one it writes into).

    >>> _in_layout("images/coffee.jpg.png", False), _in_layout("run/.ckpt-0000090.tmp-41-0badf00d", True)
    (True, True)
    >>> _in_layout("images/my-photo.jpg", False), _in_layout("run/NOTES.md", False), _in_layout("keep", True)
    (False, False, False)
    """
    parts = [m["name"] if (m := TEMP_NAME.fullmatch(p) or BACKUP_NAME.fullmatch(p)) else p for p in rel.split("/")]
    for pattern in (_LAYOUT_DIRS if is_dir else LAYOUT):
        wanted = pattern.split("/")
        if len(wanted) == len(parts) and all(fnmatchcase(p, w) for p, w in zip(parts, wanted, strict=True)):
            return True
    return False


def _walk(out: Path, claims: Callable[[str, bool], bool]) -> tuple[list[tuple[str, bool]], list[str]]:
    """The paths in ``out`` but its mark, by name, a folder before its contents, relative and ``/``-separated:
    ``(those claims takes, with whether each is a folder; the others)``. Links are not followed; a folder not
    taken is named alone, not its contents."""
    ours: list[tuple[str, bool]] = []
    others: list[str] = []

    def visit(folder: Path, prefix: str) -> None:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            rel, is_dir = prefix + entry.name, entry.is_dir(follow_symlinks=False)
            if rel == MARK and not is_dir:
                continue
            if not claims(rel, is_dir):
                others.append(rel)
                continue
            ours.append((rel, is_dir))
            if is_dir:
                visit(Path(entry.path), f"{rel}/")

    visit(out, "")
    return ours, others


def _demo_folder(out: Path) -> bool:
    """Whether ``out`` is a demo's: its mark, or (written before the mark existed) a summary.json of a demo."""
    if (out / MARK).is_file():
        return True
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and {"page", "steps", "figures"} <= summary.keys()


@contextmanager
def _recorded(out: Path) -> Iterator[None]:
    """While the demo writes ``out``; after it, also after a failure or Ctrl-C, the mark records all it wrote."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk: the record of the last step stays, and the error is said
            record_paths(out, complete=True)
        raise
    record_paths(out, complete=True)


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
    with _recorded(out):
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
        record_paths(d.out, complete=False)  # what a run killed in a later step wrote before it
        print(f"[{k}/{len(steps)}] {name}: {line} ({timings[name]:.1f} s)", file=log, flush=True)
    return timings, lines
