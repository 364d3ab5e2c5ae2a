"""What the demo's steps share: settings, the shipped tokenizers, the page under construction,
the figures; and where the example media are."""


from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mmtok.context.growth import load_average
from mmtok.core.errors import DemoError
from mmtok.core.report import Report

__all__ = ["Demo", "as_shown", "check_data", "example_data", "media_file", "vocab_words"]

_PACKAGE_EXAMPLES = Path(__file__).resolve().parents[1] / "_examples"  # inside an installed wheel
_REPO_EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


def check_data(folder: Path) -> Path:
    """``folder`` if it holds at least one image and one sound the demo can show, else :class:`DemoError`."""
    from mmtok.core.suffixes import AUDIO_SUFFIXES, IMAGE_SUFFIXES

    if not folder.is_dir():
        raise DemoError(f"demo data folder {folder} does not exist or is not a folder")
    suffixes = {p.suffix.lower() for p in folder.iterdir() if media_file(p)}
    for what, known in (("images", IMAGE_SUFFIXES), ("sounds", AUDIO_SUFFIXES)):
        if not suffixes & known:
            raise DemoError(f"demo data folder {folder} has no {what} ({', '.join(sorted(known))}); "
                            "the demo needs at least one image and one sound")
    return folder


def media_file(p: Path) -> bool:
    """Whether ``p`` is a file the demo may show: a plain file, not hidden (``._photo.jpg``, the resource
    fork macOS leaves beside a copied file, is no picture)."""
    return not p.name.startswith(".") and p.is_file()


def example_data() -> Path:
    """The folder of example media (``examples/data`` of the repo, or the wheel's copy)."""
    for candidate in (_PACKAGE_EXAMPLES, _REPO_EXAMPLES):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no example media: neither {_REPO_EXAMPLES} nor {_PACKAGE_EXAMPLES} exists; "
                            "pass data=FOLDER (mmtok demo --data FOLDER)")


class Demo:
    """What the steps share: settings, the shipped tokenizers, the page under construction, the figures."""

    shipped_examples = False  # the data is the shipped examples (their README says which trained the tokenizers)
    images: Sequence[Path] = ()  # the data's images the images step could read (the stream shows the first)
    sounds: Sequence[Path] = ()  # the data's sounds the audio step could read
    skipped: tuple[tuple[str, str], ...] = ()  # (file name, problem): data files left out as unreadable

    def __init__(self, out: Path, *, fast: bool, seed: int, device: torch.device, data: Path,
                 max_memory_gb: float = 2.0, progress: bool = True) -> None:
        from mmtok.pretrained import load

        self.out, self.fast, self.seed, self.device, self.data = out, fast, seed, device, data
        self.max_memory_gb = max_memory_gb  # memory (GiB) the context-growth measurement may take the process to
        self.progress = progress  # the long steps draw progress bars (on stderr)
        self.load_averages: list[float] = [load_average()]  # 1-minute load average at the start, after each step
        self.overview: list[tuple[str, str]] = []  # (file in out, caption): this run's pictures for overview.png
        self.shipped_examples = data.resolve() in (_REPO_EXAMPLES, _PACKAGE_EXAMPLES)  # what their README says holds
        self.data_label = "examples/data" if self.shipped_examples else str(data)

        n = torch.get_num_threads()
        self.device_label = (torch.cuda.get_device_name(device) if device.type == "cuda"
                             else f"the CPU ({n} thread{'s' if n > 1 else ''})")
        self.image = load("image", device=device)
        self.audio_name = "audio"
        self.audio = load(self.audio_name, device=device)
        try:
            import av  # noqa: F401

            self.has_video = True
        except ImportError:
            self.has_video = False
        self.spec: Any = None
        self.report = Report(out, "mmtok demo", f"{'fast run' if fast else 'full run'} · "
                             f"{time.strftime('%Y-%m-%d %H:%M')} · {self.device_label} · torch {torch.__version__} "
                             f"· {platform.machine()}")

    def figure(self, key: str, value: float, unit: str, what: str, *, reliable: bool = True) -> None:
        """Record a figure for the table and ``figures.json``; one that is not ``reliable`` (a fit the page
        does not report) is kept with ``"reliable": false`` beside its value. The value is kept as the
        page's table shows it (:func:`as_shown`), so that figures.json and the page give the same number."""
        self.report.figure(key, as_shown(value), unit, what)
        if not reliable:
            self.report.figures[key]["reliable"] = False

    def unreliable(self) -> list[str]:
        """The keys of the figures recorded as not reliable."""
        return [k for k, f in self.report.figures.items() if f.get("reliable") is False]

    def load_note(self) -> str:
        """The machine's load during the run, in words: timings on a busy machine are slower and noisier."""
        cores = os.cpu_count() or 1
        return (f"Load average (processes wanting a CPU, over the last minute) on this {cores}-core machine: "
                f"{self.load_averages[0]:.1f} at the start, at most {max(self.load_averages):.1f} after a step. "
                f"The demo's own threads account for up to about {cores}; above that it shared the CPU with other "
                "work, and its timings are slower than on an idle machine.")


def as_shown(value: float) -> float:
    """``value`` as the page's tables print it: 4 significant digits, or a whole number from 1,000 up.

    >>> as_shown(8.6687), as_shown(4664.8), as_shown(0.000235), as_shown(256)
    (8.669, 4665.0, 0.000235, 256)
    """
    if isinstance(value, bool) or isinstance(value, int):
        return value
    return float(round(value)) if abs(value) >= 1000 else float(f"{value:.4g}")


def vocab_words(vocab: Any) -> str:
    """A vocabulary's size and what makes it up, in words: ``2,336 ids: 256 text bytes, 32 special ...``."""
    parts = [f"{vocab.text_size:,} for text (bytes)", f"{vocab.n_special} special markers"]
    parts += [f"{len(vocab.range(m)):,} {m} codes" for m in vocab.media]
    return f"{vocab.size:,} ids: " + ", ".join(parts)
