"""``mmtok demo``: every capability, end to end, on the example media, into one HTML page.

Steps (each prints a one-line summary; the long ones show a progress bar):

1. the VQ core on clustered vectors next to a naive codebook;
2. the example images through the shipped image tokenizer and back (PSNR);
3. the example sounds through the shipped audio tokenizer and back (log-mel
   before/after, both playable);
4. one interleaved stream of text, an image, speech and a video with sound;
5. a generated corpus of captioned pictures and tones tokenized into shards;
6. a tiny transformer trained on those shards (loss per modality);
7. pictures and tones sampled from captions with grammar-constrained decoding;
8. context budgets for video under every planner preset, and a short measured
   growth run of the transformer's step time and memory.

Everything lands in ``out`` (default ``mmtok-demo/``): ``index.html`` (open it in
a browser; it loads nothing from the network), the files it shows,
``figures.json`` and ``summary.json``. The example media come from
``examples/data/`` (or ``data=``); ``fast=True`` is a smaller, quicker run.
Uses a GPU when one is available.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mmtok.core.errors import DemoError
from mmtok.core.report import Report
from mmtok.core.trainstate import pick_device
from mmtok.demo.vqcore import make_clustered

__all__ = ["Demo", "DemoError", "check_data", "example_data", "make_clustered", "run_demo"]

_PACKAGE_EXAMPLES = Path(__file__).resolve().parents[1] / "_examples"  # inside an installed wheel
_REPO_EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


def check_data(folder: Path) -> Path:
    """``folder`` if it holds at least one image and one sound the demo can show, else :class:`DemoError`."""
    from mmtok.stream.interleave import AUDIO_SUFFIXES, IMAGE_SUFFIXES

    if not folder.is_dir():
        raise DemoError(f"demo data folder {folder} does not exist or is not a folder")
    suffixes = {p.suffix.lower() for p in folder.iterdir() if p.is_file()}
    for what, known in (("images", IMAGE_SUFFIXES), ("sounds", AUDIO_SUFFIXES)):
        if not suffixes & known:
            raise DemoError(f"demo data folder {folder} has no {what} ({', '.join(sorted(known))}); "
                            "the demo needs at least one image and one sound")
    return folder


def example_data() -> Path:
    """The folder of example media (``examples/data`` of the repo, or the wheel's copy)."""
    for candidate in (_PACKAGE_EXAMPLES, _REPO_EXAMPLES):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no example media: neither {_REPO_EXAMPLES} nor {_PACKAGE_EXAMPLES} exists; "
                            "pass data=FOLDER (mmtok demo --data FOLDER)")


class Demo:
    """What the steps share: settings, the shipped tokenizers, the page under construction, the figures."""

    def __init__(self, out: Path, *, fast: bool, seed: int, device: torch.device, data: Path) -> None:
        import mmtok

        self.out, self.fast, self.seed, self.device, self.data = out, fast, seed, device, data
        self.data_label = "examples/data" if data in (_REPO_EXAMPLES, _PACKAGE_EXAMPLES) else str(data)
        n = torch.get_num_threads()
        self.device_label = (torch.cuda.get_device_name(device) if device.type == "cuda"
                             else f"the CPU ({n} thread{'s' if n > 1 else ''})")
        self.image = mmtok.load("image", device=device)
        self.audio_name = "audio"
        self.audio = mmtok.load(self.audio_name, device=device)
        try:
            import av  # noqa: F401

            self.has_video = True
        except ImportError:
            self.has_video = False
        self.spec: Any = None
        self.report = Report(out, "mmtok demo", f"{'fast run' if fast else 'full run'} · "
                             f"{time.strftime('%Y-%m-%d %H:%M')} · {self.device_label} · torch {torch.__version__} "
                             f"· {platform.machine()}")

    def figure(self, key: str, value: float, unit: str, what: str) -> None:
        self.report.figure(key, value, unit, what)


def _steps() -> list[tuple[str, Callable[[Demo], str]]]:
    from mmtok.demo.budget import context_step
    from mmtok.demo.learn import corpus_step, sample_step, train_step
    from mmtok.demo.media import audio_step, images_step, stream_step
    from mmtok.demo.vqcore import vq_step

    return [("VQ core", vq_step), ("images", images_step), ("audio", audio_step), ("stream", stream_step),
            ("corpus", corpus_step), ("train", train_step), ("sample", sample_step), ("context", context_step)]


def _overview(d: Demo) -> None:
    """``overview.png``: a few of the page's pictures in one, shown at the top of the page."""
    from mmtok.demo.plots import overview

    out = d.out
    pics = sorted(p for p in (out / "images").glob("*.png") if not p.stem.endswith("-tokens") and p.stem != "usage")
    pic = next((p for p in pics if p.stem == "coffee"), pics[0] if pics else out / "missing")
    mels = sorted((out / "audio").glob("*-mel.png"), key=lambda m: ("speech" not in m.stem, m.stem))
    mel = mels[0] if mels else out / "missing"
    candidates = [
        (pic, "an image" + (" the tokenizer never saw" if pic.stem == "coffee" else "")),
        (pic.with_name(f"{pic.stem}-tokens.png"), "the same from its tokens"),
        (mel, f"{mel.stem.removesuffix('-mel')}: log-mel before / after"),
        (out / "run" / "loss.png", "training loss per modality"),
        (next(iter(sorted((out / "samples").glob("*-0.png"))), out / "missing"), "sampled for an unseen caption"),
        (out / "context" / "tokens_vs_minutes.png", "context length vs video minutes"),
    ]
    panels = [(f, c) for f, c in candidates if f.is_file()]
    if panels:
        overview(out / "overview.png", panels, title="mmtok demo")
        d.report.parts.insert(0, d.report.grid([d.report.image("overview.png", "", width=1100)]))


def run_demo(
    out: str | Path = "mmtok-demo", *, fast: bool = False, seed: int = 0, device: str | None = None,
    data: str | Path | None = None,
) -> dict[str, Any]:
    """Run every step, write ``out/index.html``, and return the summary (also in ``out/summary.json``)."""
    t_start = time.perf_counter()
    folder = check_data(Path(data)) if data else example_data()  # before anything is written
    out = Path(out)
    for sub in ("images", "audio", "context", "samples"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    d = Demo(out, fast=fast, seed=seed, device=pick_device(device), data=folder)
    if not d.has_video:
        print("note: PyAV is not installed (pip install 'mmtok[video]'): the video parts are skipped")
    steps = _steps()
    timings: dict[str, float] = {}
    lines: dict[str, str] = {}
    for k, (name, fn) in enumerate(steps, 1):
        t0 = time.perf_counter()
        line = fn(d)
        timings[name] = round(time.perf_counter() - t0, 2)
        lines[name] = line
        print(f"[{k}/{len(steps)}] {name}: {line} ({timings[name]:.1f} s)", flush=True)
    _overview(d)
    total = time.perf_counter() - t_start
    d.figure("demo_seconds", round(total, 1), "s", f"the whole demo ({'fast' if fast else 'full'} run)")
    d.report.section(
        "Measured figures",
        d.report.text("Every number on this page, measured in this run (also in figures.json)."),
        d.report.figures_table(),
        d.report.table(["step", "seconds", "summary"], [[n, timings[n], lines[n]] for n in timings]),
        d.report.note("Reconstruction quality on the example files is a demonstration, not a benchmark: the "
                      "held-out figures are in benchmarks/ and the model cards (models/*/README.md)."),
    )
    page = d.report.write()
    summary = {"page": str(page), "seconds": round(total, 1), "fast": fast, "device": str(d.device),
               "steps": {n: {"seconds": timings[n], "summary": lines[n]} for n in timings},
               "figures": {k: v["value"] for k, v in d.report.figures.items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {page} in {total:.0f} s: open it in a browser")
    return summary
