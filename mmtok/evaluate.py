"""``mmtok eval``: how well tokenizers rebuild your own media, file by file and on average.

    mmtok eval photos/ speech/ clip.mp4                     # the shipped tokenizers
    mmtok eval speech/ --audio audio --audio run/model      # two audio models on the same files, paired
    mmtok eval photos/ --json > scores.jsonl                # JSON lines instead of a table

Each file goes through ``encode`` and ``decode``, and what comes back is scored against what the
encoder read:

- an image: PSNR and SSIM against ``tok.preprocess(file)`` (the tokenizer's size policy);
- a sound: STOI and wideband PESQ (with ``pystoi`` and ``pesq``: ``pip install mmtok[eval]``), the log-mel L1 (the tokenizer's own
  log-mel of the decoded sound against the original's; none for one without ``log_mel``), and with ``--dnsmos`` DNSMOS P.835
  of the decoded sound and of the original (``speechmos`` and ``onnxruntime``), all at 16 kHz, against
  the file read as mono at the tokenizer's rate;
- a video: PSNR and SSIM over the frames the tokenizer samples, and its soundtrack as a sound.

Per model: the means over files, and the codebook usage over every token it gave (distinct codes
over ``min(K, tokens)``, :func:`mmtok.core.metrics.usage_over`; a video with ``temporal="repeat"``
counts its repeat code among them) with the perplexity. With two or more models of a kind, each is
paired with the first on the files both scored: the mean per-file difference, its 95 % bootstrap interval over
the files (none from one file) and the files where it is better (higher, or lower for the log-mel L1:
:func:`mmtok.core.metrics.paired_difference`); a model named again is a model of its
own, labelled by its version, then its name (``image``), then numbered (``image (2)``), so rows never
merge. A file that cannot be read is one error line; the others go on (exit status 2).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmtok.audio.io import fit_length, load_audio
from mmtok.audio.scores import dnsmos, speech_scores
from mmtok.core.errors import MmtokError, UsageError
from mmtok.core.files import read_only_folder
from mmtok.core.metrics import codebook_usage, paired_difference, psnr, ssim, usage_over
from mmtok.core.paths import no_such_file
from mmtok.core.plotting import pyplot
from mmtok.data.codes import atomic_file
from mmtok.data.media_files import (
    CREATOR_MARKED,
    MEDIA_SUFFIXES,
    check_vocoder_flag,
    expand_paths,
    few,
    file_kinds,
    file_media_kind,
    marked,
    refuse_foreign,
    run_each,
)
from mmtok.pretrained import (
    is_callable_spec,
    load_tokenizer,
    model_version,
    rate_keywords,
    tokenizer_config,
    vocoder_keywords,
)

__all__ = ["METRICS", "PLOT_MARK", "Evaluation", "eval_main", "plot_scores", "plot_target",
           "score_audio", "score_image", "score_video"]

SCORE_RATE = 16_000  # Hz: STOI, PESQ-WB and DNSMOS run at this rate
PICTURE = (("psnr_db", "PSNR {:.2f} dB", True), ("ssim", "SSIM {:.3f}", True))
METRICS = {  # kind -> (key, how it is shown, higher is better), in the order they are shown
    "image": PICTURE,
    "video": PICTURE,
    "audio": (("stoi", "STOI {:.3f}", True), ("pesq_wb", "PESQ-WB {:.2f}", True),
              ("dnsmos_ovrl", "DNSMOS OVRL {:.2f}", True), ("logmel_l1", "log-mel L1 {:.3f}", False)),
}
EXTRA = ("dnsmos_sig", "dnsmos_bak", "original_dnsmos_ovrl")  # averaged and paired too, not in the table
NEEDS = {"image": (("preprocess",), "scores the decoded picture against tok.preprocess(FILE), what encode reads"),
         "video": (("frames", "expand", "image"), "scores each frame through tok.frames, tok.expand and tok.image"),
         "audio": (("sample_rate",), "reads each sound at tok.sample_rate")}  # what scoring uses beyond the protocol
PLOT_MARK = "mmtok eval"  # in every plot --plot draws (PNG: Software; PDF, SVG, PS: Creator): the files it replaces


def score_image(tok: Any, path: Path) -> tuple[dict[str, float], torch.Tensor]:
    """``({"psnr_db", "ssim"}, codes)`` of one image file through ``tok`` (on any device: scored on the CPU)."""
    image = tok.preprocess(path)  # the file decoded once: encoded and scored against
    codes = tok.encode(image)
    with torch.inference_mode():
        ref, rec = image.float().cpu()[None], tok.decode(codes).float().cpu()[None]
    return {"psnr_db": float(psnr(rec, ref)[0]), "ssim": float(ssim(rec, ref)[0])}, codes


def score_video(tok: Any, path: Path) -> tuple[dict[str, float], torch.Tensor]:
    """``({"psnr_db", "ssim", "frames"}, codes)`` of a video's frames through ``tok``: each frame
    the tokenizer samples, as its image tokenizer reads it, against the frame decoded from the codes.
    ``codes`` are what ``tok.encode`` gave (with ``temporal="repeat"``, its repeat code among them)."""
    codes = tok.encode(path)
    flat, done, p, s = tok.expand(codes), 0, [], []
    with torch.inference_mode():
        for frames, _ in tok.frames(path):
            ref = tok.image.preprocess(frames).float().cpu()  # scored on the CPU, whatever device tok is on
            rec = tok.image.decode(flat[done : done + ref.shape[0]]).float().cpu()
            p.append(psnr(rec, ref))
            s.append(ssim(rec, ref))
            done += ref.shape[0]
    if done != flat.shape[0]:
        raise UsageError(f"{path}: read {done} frames the second time but encoded {flat.shape[0]}")
    return {"psnr_db": float(torch.cat(p).mean()), "ssim": float(torch.cat(s).mean()), "frames": done}, codes


def score_audio(tok: Any, wave: torch.Tensor, *, vocoder: str = "auto", with_dnsmos: bool = False
                ) -> tuple[dict[str, float], torch.Tensor]:
    """``(scores, codes)`` of mono samples ``wave`` at ``tok.sample_rate`` through ``tok``: ``logmel_l1``
    where the tokenizer has a ``log_mel`` (every mmtok one); ``stoi`` and ``pesq_wb`` where their packages are
    installed and the clip can be scored; DNSMOS of the decoded sound and of ``wave`` with ``with_dnsmos``;
    ``seconds``. A tokenizer whose ``encode`` or ``decode`` takes no ``sample_rate`` or ``vocoder`` is called
    without (:func:`~mmtok.pretrained.rate_keywords`, :func:`~mmtok.pretrained.vocoder_keywords`)."""
    rate = int(tok.sample_rate)
    codes = tok.encode(wave, **rate_keywords(tok, rate))
    with torch.inference_mode():
        deg = tok.decode(codes, **vocoder_keywords(tok, vocoder)).float().cpu()
        deg = fit_length(deg, wave.numel())
        out: dict[str, float] = {"seconds": round(wave.numel() / rate, 3)}
        if hasattr(tok, "log_mel"):
            out["logmel_l1"] = float((tok.log_mel(deg) - tok.log_mel(wave)).abs().mean())
    ref16, deg16 = (wave, deg) if rate == SCORE_RATE else (
        load_audio(x, rate, target_rate=SCORE_RATE, max_seconds=None) for x in (wave, deg))
    out |= speech_scores(ref16, deg16)
    if with_dnsmos:
        out |= {f"dnsmos_{k}": v for k, v in dnsmos(deg16).items()}
        out["original_dnsmos_ovrl"] = dnsmos(ref16)["ovrl"]
    return out, codes


@dataclass
class _Model:
    kind: str
    name: str
    tok: Any
    label: str
    counts: torch.Tensor  # [K]: how often each code was given, over every file scored

    def count(self, codes: torch.Tensor) -> None:
        """Add the codes of one file (each in ``[0, K)``: a video's repeat code is one of its K) to ``counts``."""
        self.counts += torch.bincount(codes.reshape(-1).cpu(), minlength=self.counts.numel())


@dataclass
class Evaluation:
    """The models of each kind, loaded once, and every row scored so far."""

    names: dict[str, list[str]]
    vocoder: str = "auto"
    with_dnsmos: bool = False
    models: dict[str, list[_Model]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    built: dict[tuple[str, str], Any] = field(default_factory=dict)  # (kind, MODEL) -> built by config(), for of()

    def config(self, kind: str, name: str) -> Any:
        """The config of ``--KIND name`` (None for a tokenizer without one): a checkpoint's read without its weights,
        a ``module:callable`` one's from the tokenizer it builds, kept for :meth:`of` to take."""
        if not is_callable_spec(name):
            return tokenizer_config(name, kind=kind)
        if (kind, name) not in self.built:
            tok = load_tokenizer(name, kind=kind)
            needs, why = NEEDS[kind]
            if missing := [n for n in needs if not hasattr(tok, n)]:
                raise UsageError(f"tokenizer {name!r} gives a {type(tok).__name__}, which has no "
                                 f"{', '.join(missing)}: mmtok eval {why}")
            self.built[kind, name] = tok
        return getattr(self.built[kind, name], "cfg", None)

    def of(self, kind: str) -> list[_Model]:
        """The models of ``kind``, loaded the first time they are needed."""
        if kind not in self.models:
            models: list[_Model] = []
            for name in self.names[kind]:
                tok = self.built.pop((kind, name), None)  # a name given again is built again: a model of its own
                if tok is None:
                    tok = load_tokenizer(name, kind=kind)
                label = model_version(tok) or name
                if any(m.label == label for m in models):
                    label = name
                base, k = label, 1
                while any(m.label == label for m in models):  # rows and means go by label: one per model
                    k += 1
                    label = f"{base} ({k})"
                models.append(_Model(kind, name, tok, label, torch.zeros(int(tok.codebook_size), dtype=torch.long)))
            self.models[kind] = models
        return self.models[kind]

    def score_file(self, path: Path) -> list[dict[str, Any]]:
        """Every row of one file (one per model; a video also its soundtrack's, one per audio model). Each
        model counts the file's codes only once the whole file is scored: a file that fails counts nowhere."""
        kind = file_media_kind(path)
        if not path.is_file():
            raise UsageError(no_such_file(path))
        scored: list[tuple[_Model, dict[str, Any], torch.Tensor]] = []
        if kind == "audio":
            wave = None
            for m in self.of("audio"):
                if wave is None or int(m.tok.sample_rate) != wave[1]:
                    wave = (load_audio(path, target_rate=int(m.tok.sample_rate)), int(m.tok.sample_rate))
                scored.append(self._audio_row(m, path, wave[0], None))
        else:
            for m in self.of(kind):
                scores, codes = (score_image if kind == "image" else score_video)(m.tok, path)
                scored.append((m, {"file": str(path), "kind": kind, "model": m.label, **scores}, codes))
        if kind == "video":
            from mmtok.video.read import read_audio

            for m in self.of("audio"):
                sound = read_audio(path, int(m.tok.sample_rate))
                if sound is not None and sound[0].numel():
                    scored.append(self._audio_row(m, path, sound[0], "soundtrack"))
        for m, _, codes in scored:
            m.count(codes)
        return [row for _, row, _ in scored]

    def _audio_row(self, m: _Model, path: Path, wave: torch.Tensor, track: str | None
                   ) -> tuple[_Model, dict[str, Any], torch.Tensor]:
        scores, codes = score_audio(m.tok, wave, vocoder=self.vocoder, with_dnsmos=self.with_dnsmos)
        row = {"file": str(path), "kind": "audio", "model": m.label, **scores}
        return m, row | ({"track": track} if track else {}), codes

    def summaries(self) -> list[dict[str, Any]]:
        """Per model: files, means of each score, codebook usage and perplexity over its tokens."""
        out = []
        for kind, models in self.models.items():
            for m in models:
                rows = [r for r in self.rows if r["kind"] == kind and r["model"] == m.label]
                row: dict[str, Any] = {"summary": kind, "model": m.label, "name": m.name, "files": len(rows)}
                for key in [k for k, _, _ in METRICS[kind]] + list(EXTRA) + ["seconds", "frames"]:
                    vals = [r[key] for r in rows if key in r and math.isfinite(r[key])]
                    if vals:
                        row[key] = round(statistics.fmean(vals) if key not in ("seconds", "frames") else sum(vals), 6)
                        if len(vals) < len(rows) and key in ("stoi", "pesq_wb"):
                            row[f"{key}_files"] = len(vals)
                usage, used, tokens = usage_over(m.counts)
                usage_of_k, ppl = codebook_usage(m.counts)
                row |= {"tokens": tokens, "codebook_size": m.counts.numel(), "codes_used": used}
                if tokens:  # of no token at all there is no usage (not 0 %) and no perplexity (not 0)
                    row |= {"usage": round(usage, 4), "usage_of_k": round(usage_of_k, 4), "perplexity": round(ppl, 1)}
                out.append(row)
        return out

    def pairs(self) -> list[dict[str, Any]]:
        """Each model after the first of its kind against the first, on the files both scored."""
        out = []
        for kind, models in self.models.items():
            if not models:
                continue
            first = models[0].label
            keyed = defaultdict(dict)
            for r in self.rows:
                if r["kind"] == kind:
                    keyed[r["model"]][(r["file"], r.get("track"))] = r
            keys = [k for k, _, _ in METRICS[kind]] + list(EXTRA)
            lower = [k for k, _, higher in METRICS[kind] if not higher]  # an error: fewer is a win
            for m in models[1:]:
                common = [f for f in keyed[m.label] if f in keyed[first]]
                diff = paired_difference([keyed[m.label][f] for f in common], [keyed[first][f] for f in common], keys,
                                         lower_better=lower)
                out.append({"paired": kind, "model": m.label, "minus": first, **diff})
        return out


def _shown(d: dict[str, Any], kind: str) -> list[str]:
    """The scores of ``kind`` that ``d`` has, each as its table shows it; DNSMOS OVRL with the original's beside it
    where ``d`` holds that (a summary)."""
    original = d.get("original_dnsmos_ovrl")
    return [how.format(d[key]) + (f" (original {original:.2f})" if key == "dnsmos_ovrl" and original is not None
                                  else "") for key, how, _ in METRICS[kind] if key in d]


def _fmt_row(r: dict[str, Any]) -> str:
    shown = _shown(r, r["kind"])
    what = f"{r['seconds']:g} s" if "seconds" in r else f"{r['frames']} frames" if "frames" in r else ""
    track = f" ({r['track']})" if r.get("track") else ""
    return f"{r['file']}{track}  {r['model']}  " + "  ".join(shown) + (f"  [{what}]" if what else "")


def _fmt_summary(s: dict[str, Any]) -> str:
    shown = _shown(s, s["summary"])
    labels = {key: how.split(" {")[0] for key, how, _ in METRICS[s["summary"]]}  # as the table names them
    partial = [f"{labels[k.removesuffix('_files')]} on {v} of them" for k, v in s.items() if k.endswith("_files")]
    return (f"{s['summary']} · {s['model']}: {s['files']} file{'s' * (s['files'] != 1)}"
            + (f" ({', '.join(partial)})" if partial else "") + (", means: " if s["files"] != 1 else ": ")
            + ", ".join(shown)
            + f"; {s['codes_used']:,} of {s['codebook_size']:,} codes on {s['tokens']:,} tokens"
            f" (usage {100 * s['usage']:.1f}% of min(K, tokens)), perplexity {s['perplexity']:,.1f}")


PAIRED_HEAD = ("each model minus the first of its kind, over the files both scored: the mean per-file difference "
               "[its 95 % bootstrap interval over the files]")


def _label_unit(how: str) -> tuple[str, str]:
    """``("PSNR", "dB")`` of a :data:`METRICS` format such as ``"PSNR {:.2f} dB"``; ``""`` for a score without unit."""
    return how.split(" {")[0], how.split("}")[-1].strip()


def _fmt_pair(p: dict[str, Any]) -> Iterable[str]:
    """One line per score of a :meth:`Evaluation.pairs` row, read under :data:`PAIRED_HEAD`."""
    for key, how, higher in METRICS[p["paired"]]:
        if key in p:
            d = p[key]
            label, unit = _label_unit(how)
            ci = ("[no interval from 1 file]" if d["ci95"] is None
                  else f"[{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]")
            yield (f"{p['paired']} · {p['model']} − {p['minus']}: {label} {d['mean']:+.4f}{' ' * bool(unit)}{unit} "
                   f"{ci} ({'higher' if higher else 'lower'} is better), "
                   f"better on {d['wins']} of {d['n']} file{'s' * (d['n'] != 1)}")


def plot_target(path: Path, inputs: Iterable[Path] = ()) -> Path:
    """The file ``--plot path`` writes: ``path``, with ``.png`` added when it has no extension (as matplotlib
    would add it, unreported). A UsageError, before any scoring, for a folder, a type matplotlib cannot write or that holds no mark, one
    of the files scored (``inputs``), a folder it cannot write in (:func:`~mmtok.core.files.read_only_folder`) or a
    file there that is not a plot it drew (:func:`_refuse_to_replace`)."""
    from matplotlib.backend_bases import FigureCanvasBase

    if path.is_dir():
        raise UsageError(f"--plot {path} is a folder; give the file to write in it (e.g. {path / 'eval.png'})")
    if not path.suffix:
        path = path.with_name(path.name.rstrip(".") + ".png")
    kinds = FigureCanvasBase.get_supported_filetypes()
    if path.suffix[1:].lower() not in kinds:
        raise UsageError(f"--plot {path}: matplotlib cannot write {path.suffix} files; end the name with .png, .pdf "
                         "or .svg")
    if _plot_metadata(path.suffix[1:].lower()) is None:  # drawn once, it could never be replaced
        raise UsageError(f"--plot {path}: a {path.suffix} file holds no mark saying 'mmtok eval' drew it, so a later "
                         "run could not tell it from a picture of yours and would refuse to replace it; end the name "
                         "with .png, .pdf or .svg")
    if path.is_dir():  # "eval" -> "eval.png", a folder
        raise UsageError(f"--plot {path} is a folder; give another name")
    if path.parent.exists() and not path.parent.is_dir():
        raise UsageError(f"--plot {path}: {path.parent} is a file, not a folder")
    folder = read_only_folder(path.parent)
    if folder is not None:
        raise UsageError(f"--plot {path}: the folder {folder} is not writable")
    _refuse_to_replace(path, inputs)
    return path


def _refuse_to_replace(path: Path, inputs: Iterable[Path]) -> None:
    """A UsageError when ``path`` is there and is one of ``inputs``, or is not a plot marked :data:`PLOT_MARK`
    (:func:`~mmtok.data.media_files.refuse_foreign`, as ``mmtok decode`` refuses): a user's own file is never
    replaced, an earlier plot is."""
    if path.exists() and any(p.exists() and path.samefile(p) for p in inputs):
        raise UsageError(f"--plot {path} is one of the files to score; give the plot another name")
    refuse_foreign([(path, path.parent)], lambda p, _: p, _is_plot,
                   "is not a plot that 'mmtok eval' drew", flag="--plot ",
                   fix=" (the only files it replaces); move it, or give another name")


def _plot_metadata(kind: str) -> dict[str, str] | None:
    """The ``savefig`` metadata that marks a plot of format ``kind`` (``"png"``, ``"pdf"``, ...) as :data:`PLOT_MARK`;
    None for a format that holds no such text (a JPEG: :func:`plot_target` refuses to draw one)."""
    if kind == "png":
        return {"Software": PLOT_MARK}
    return {"Creator": PLOT_MARK} if f".{kind}" in CREATOR_MARKED else None


def _is_plot(path: Path) -> bool:
    """Whether ``path`` is a plot :func:`plot_scores` drew: a PNG, PDF, SVG, EPS or PS carrying :data:`PLOT_MARK`."""
    return _plot_metadata(path.suffix[1:].lower()) is not None and marked(path, PLOT_MARK)


def plot_scores(rows: list[dict[str, Any]], path: Path) -> Path:
    """One panel per kind and score: each file's score per model as a dot (files scored by two or more
    models joined by a grey line, so a pairing shows), the mean as a bar, written to :func:`plot_target` of
    ``path`` (marked :data:`PLOT_MARK` where its format holds text: PNG, PDF, SVG, EPS, PS), which it returns.
    Needs matplotlib."""
    path = plot_target(path, [Path(r["file"]) for r in rows])
    plt = pyplot(f"--plot {path}", required=True)

    panels = [(kind, key, how) for kind in dict.fromkeys(r["kind"] for r in rows)
              for key, how, _ in METRICS[kind] if any(r["kind"] == kind and key in r for r in rows)]
    if not panels:
        raise UsageError("--plot: no file was scored, so there is nothing to draw")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
    for ax, (kind, key, how) in zip(axes[0], panels, strict=True):
        mine = [r for r in rows if r["kind"] == kind and key in r and math.isfinite(r[key])]
        models = list(dict.fromkeys(r["model"] for r in mine))
        by_file: dict[Any, dict[int, float]] = defaultdict(dict)
        for r in mine:
            by_file[(r["file"], r.get("track"))][models.index(r["model"])] = r[key]
        for values in by_file.values():
            xs = sorted(values)
            ax.plot(xs, [values[x] for x in xs], color="0.8", lw=0.8, zorder=1)
        for i, m in enumerate(models):
            vals = [r[key] for r in mine if r["model"] == m]
            ax.scatter([i] * len(vals), vals, s=12, zorder=2)
            ax.hlines(statistics.fmean(vals), i - 0.3, i + 0.3, color="black", lw=2, zorder=3)
        ax.set_xticks(range(len(models)), [m if len(m) <= 18 else m[:17] + "…" for m in models], rotation=15)
        label, unit = _label_unit(how)
        higher = next(h for k, _, h in METRICS[kind] if k == key)
        ax.set_title(f"{kind}: {label} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.set_ylabel(label + (f" ({unit})" if unit else ""))
        ax.set_xlim(-0.6, len(models) - 0.4)
    fig.suptitle(f"mmtok eval: {len({(r['file'], r.get('track')) for r in rows})} files, one dot per file and model; "
                 "bars: means")
    fig.tight_layout()
    kind = path.suffix[1:].lower()
    atomic_file(path, lambda f: fig.savefig(f, dpi=100, format=kind, metadata=_plot_metadata(kind)))
    plt.close(fig)
    return path


def _missing(modules: Iterable[str]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def _refuse_plot_inside(plot: Path, named: list[Path]) -> None:
    """A UsageError, before the folders are searched, for a ``--plot`` file inside one of the folders ``named``
    to score: the next run over that folder would score the plot as one of its pictures."""
    for folder in (p for p in named if p.is_dir()):
        if folder.resolve() in plot.resolve().parents:
            raise UsageError(f"--plot {plot} is inside {folder}, a folder to score, where later runs would score the "
                             "plot too; write it outside that folder")


def _without_plots(files: list[tuple[Path, Path]], named: list[Path]) -> list[tuple[Path, Path]]:
    """``files`` less the plots ``mmtok eval --plot`` drew (:func:`_is_plot`) that a folder search found, said in
    one note line; a plot named on its own is scored. A folder left with none is kept, to fail with its own line."""
    alone = {p.resolve() for p in named if not p.is_dir()}
    plots = {p for p, _ in files if p.resolve() not in alone and _is_plot(p)}
    if not plots:
        return files
    print(f"mmtok: note: left out {few(sorted(map(str, plots)))}: plots 'mmtok eval --plot' drew (name one on "
          "its own to score it)", file=sys.stderr)
    kept = [(p, out) for p, out in files if p not in plots]
    emptied = [(d, Path(".")) for d in named if d.is_dir() and any(p.is_relative_to(d) for p in plots)
               and not any(p.is_relative_to(d) for p, _ in kept)]  # a search gives the folder's own paths
    return kept + emptied


def _kind_hint(kind: str, name: str) -> str:
    """``"; give it as --audio NAME"`` where the checkpoint ``name`` refused for ``--KIND`` loads as another kind."""
    for other in (k for k in NEEDS if k != kind and not is_callable_spec(name)):
        try:
            tokenizer_config(name, kind=other)
        except MmtokError:
            continue
        return f"; give it as --{other} {name}"
    return ""


def eval_main(args: argparse.Namespace) -> int:
    """``mmtok eval FILE...``: rows as files are scored, then a summary per model and the paired differences."""
    if args.dnsmos and (missing := _missing(("speechmos", "onnxruntime"))):
        raise UsageError(f"--dnsmos needs {' and '.join(missing)}: pip install mmtok[eval]")
    if args.plot is not None:
        pyplot(f"--plot {args.plot}", required=True)
        _refuse_plot_inside(args.plot, args.files)
    files = _without_plots(expand_paths(args.files, Path("."), MEDIA_SUFFIXES, once_per_file=True), args.files)
    plot = None if args.plot is None else plot_target(args.plot, [p for p, _ in files])
    names = {k: getattr(args, k) or [k] for k in ("image", "audio", "video")}
    ev = Evaluation(names, vocoder=args.vocoder, with_dnsmos=args.dnsmos)
    for kind in names:  # a model named wrong is one line now, not one per file
        for name in getattr(args, kind) or []:
            try:
                ev.config(kind, name)
            except MmtokError as e:
                raise UsageError(f"--{kind} {name}: {e}{_kind_hint(kind, name)}") from e
    if "audio" in file_kinds(files):  # sounds, or videos' soundtracks: refused once here, not once per file
        for name in names["audio"]:
            if ("audio", name) in ev.built:  # one's own tokenizer: its decode may take no vocoder
                vocoder_keywords(ev.built["audio", name], args.vocoder, name)
            check_vocoder_flag(args.vocoder, name, ev.config("audio", name))

    def one(path: Path, _out: Path) -> str:
        rows = ev.score_file(path)
        ev.rows.extend(rows)
        return "\n".join(json.dumps(r) if args.json else _fmt_row(r) for r in rows)

    status = run_each(files, one, done="scored")
    summaries, pairs = ev.summaries(), ev.pairs()
    if args.json:
        for row in summaries + pairs:
            print(json.dumps(row))
    else:
        paired = [x for p in pairs for x in _fmt_pair(p)]
        lines = [_fmt_summary(s) for s in summaries if s["files"]] + ([PAIRED_HEAD + ":", *paired] if paired else [])
        if lines:
            print("\n".join(["", *lines]), flush=True)
    if plot is not None and ev.rows:
        print(f"mmtok: drew {plot_scores(ev.rows, plot)}", file=sys.stderr)
    if any(r["kind"] == "audio" for r in ev.rows) and (missing := _missing(("pystoi", "pesq"))):
        print(f"mmtok: note: without {' and '.join(missing)} a sound gets no "
              f"{' or '.join({'pystoi': 'STOI', 'pesq': 'PESQ-WB'}[m] for m in missing)}: pip install mmtok[eval]",
              file=sys.stderr)
    return status
