"""Corpus tokenizing throughput: docs/s and tokens/s of ``mmtok tokenize`` with 1 and 2 workers.

Writes a corpus of interleaved documents to disk (text, a JPEG or PNG photo-like
image of varying size, a WAV clip of varying length and sample rate), then runs
:func:`mmtok.tokenize_corpus` (what ``mmtok tokenize`` calls) on it for each
``--workers`` value, ``--repeat`` times, alternating the worker counts, each run
in a fresh Python process (so no run inherits another's warmed-up kernels or
loaded files; no warm-up run), and prints one JSON object per line: a ``run`` row per run and a
``ratio`` row from the median run of each count (``ratio_of``; ``timings`` has each count's min,
median and n), of ``seconds`` and of ``process_seconds`` (``common.time_sides`` times the runs).
In a ``run`` row:

- ``setup_seconds``: the first, cold load of the tokenizers in that process (the mmtok
  modules they need imported, the weights read from disk), timed before ``seconds`` and
  outside it;
- ``seconds``: :func:`mmtok.tokenize_corpus` end to end. It loads the tokenizers itself in
  the main process, as ``mmtok tokenize`` does, but warm by then (modules imported, weight
  files cached): that reload is inside ``seconds``, and ``warm_load_seconds`` (one more
  warm load, timed apart just before) says what it costs; the cold load is not inside it;
- ``process_seconds``: the whole process from its start, Python's start and every import
  and load included, timed by the parent;
- CPU seconds, and whether the shards are byte-identical to the first worker count's.

Other load on the machine shows in ``load_1min``; pause it for a clean ratio.

The tokenizers are the shipped ``image`` and ``audio`` checkpoints when present;
otherwise the default-config models with their initial weights (the same
architecture and cost; the ids are meaningless). Each worker uses one thread.

Usage: ``python benchmarks/stream.py [--docs 96] [--workers 1 2] [--repeat 3] [--seed 0]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import RATIO_OF, Timing, emit, positive, ratio, run_script, time_sides

import mmtok
from mmtok.core.checkpoint_names import shipped_names
from mmtok.data.corpus import tokenize_corpus
from mmtok.data.tokenizer_spec import TokenizerSpec, build_interleaver


def photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth colour field with edges and noise (compresses like a photo, not like static)."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    f = rng.uniform(2, 8, 3)
    img = np.stack([np.sin(f[c] * (x + rng.random()) + np.cos(f[c] * y)) for c in range(3)], -1)
    img[int(h * rng.uniform(0.3, 0.7)) :, : int(w * rng.uniform(0.3, 0.7))] *= -1
    img = (img + 1) / 2 + rng.normal(0, 0.03, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_corpus(folder: Path, docs: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    (folder / "media").mkdir(parents=True, exist_ok=True)
    lines = []
    for k in range(docs):
        h, w = (int(v) for v in rng.integers(192, 400, 2))
        img = f"media/{k:04d}.{'jpg' if k % 2 else 'png'}"
        Image.fromarray(photo(rng, h, w)).save(folder / img, quality=90)
        rate = int(rng.choice([16000, 22050, 44100]))
        t = np.arange(int(rate * rng.uniform(1.0, 4.0))) / rate
        tone = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
        clip = f"media/{k:04d}.wav"
        sf.write(folder / clip, (tone + rng.normal(0, 0.01, t.size)).astype(np.float32), rate)
        words = " ".join(rng.choice(["the", "cat", "sat", "on", "a", "mat", "and", "sang", "loudly"], 40))
        lines.append(json.dumps({"segments": [{"text": words}, {"image": img}, {"text": words[:60]},
                                              {"audio": clip}]}))
    path = folder / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def tokenizers(folder: Path) -> tuple[TokenizerSpec, str]:
    shipped = shipped_names()
    if "image" in shipped and "audio" in shipped:
        return TokenizerSpec(image="image", audio="audio"), "shipped checkpoints"
    from mmtok.audio.config import AudioTokenizerConfig
    from mmtok.audio.tokenizer import AudioTokenizer
    from mmtok.image.config import ImageTokenizerConfig
    from mmtok.image.tokenizer import ImageTokenizer

    mmtok.save(ImageTokenizer(ImageTokenizerConfig()), folder / "image")
    mmtok.save(AudioTokenizer(AudioTokenizerConfig()), folder / "audio")
    return (TokenizerSpec(image=str(folder / "image"), audio=str(folder / "audio")),
            "default configs, initial weights (no shipped checkpoint yet)")


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def one_run(corpus: Path, out: Path, spec: dict, workers: int) -> None:
    """In a fresh process: load the tokenizers cold (setup: imports, weights) and once more warm, each timed
    apart, then tokenize (which loads them again, warm, inside its timed span); print the times."""
    start = time.perf_counter()
    build_interleaver(TokenizerSpec(**spec))  # the cold load: timed apart, not inside `seconds`
    setup = time.perf_counter() - start
    start = time.perf_counter()
    build_interleaver(TokenizerSpec(**spec))  # a warm load: what tokenize_corpus's own load costs inside `seconds`
    warm_load = time.perf_counter() - start
    start = time.perf_counter()
    m = tokenize_corpus(corpus, out, tokenizers=TokenizerSpec(**spec), workers=workers, shard_tokens=1 << 16)
    seconds = time.perf_counter() - start
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    print(json.dumps({"seconds": seconds, "setup_seconds": setup, "warm_load_seconds": warm_load, "cpu_seconds": cpu,
                      "docs": m["docs"], "tokens": m["tokens"], "skipped": len(m["skipped"])}))


def runs(root: Path, corpus: Path, spec: TokenizerSpec, workers: int, repeat: int) -> Callable[[], tuple]:
    """The call that runs the next of ``repeat`` runs with ``workers`` in a fresh process (output folder
    ``out-WORKERS-K``), for :func:`common.time_sides` to time; it returns (folder, the finished process,
    the 1-minute load just after it)."""
    jobs = []
    for k in range(repeat):
        out = root / f"out-{workers}-{k}"
        job = {"corpus": str(corpus), "out": str(out), "spec": spec.__dict__, "workers": workers}
        jobs.append((out, [sys.executable, __file__, "--one", json.dumps(job)]))
    pending = iter(jobs)

    def run() -> tuple[Path, subprocess.CompletedProcess, float]:
        out, cmd = next(pending)
        return out, subprocess.run(cmd, check=True, capture_output=True, text=True), os.getloadavg()[0]

    return run


def run_rows(timings: dict[int, Timing], order: list[int]) -> dict[int, list[dict]]:
    """Emit a ``run`` row per run in the order they ran (``order`` reversed every other round); each
    worker count's runs, with ``process_seconds`` (timed by the parent) and ``identical_to_first``."""
    out: dict[int, list[dict]] = {w: [] for w in order}
    first_digest = None
    for k in range(len(timings[order[0]].seconds)):
        for workers in order if k % 2 == 0 else order[::-1]:
            folder, done, load = timings[workers].results[k]
            r = json.loads(done.stdout.strip().splitlines()[-1])
            r["process_seconds"], r["digest"] = timings[workers].seconds[k], digest(folder)
            first_digest = first_digest or r["digest"]
            r["identical_to_first"] = r["digest"] == first_digest
            out[workers].append(r)
            m_tokens = r["tokens"]
            emit({
                "bench": "stream", "row": "run", "workers": workers, "repeat": k, "docs": r["docs"],
                "tokens": m_tokens["total"],
                "tokens_by_modality": {key: v for key, v in m_tokens.items() if key != "total" and v},
                "skipped": r["skipped"], "seconds": round(r["seconds"], 3),
                "setup_seconds": round(r["setup_seconds"], 3),
                "warm_load_seconds": round(r["warm_load_seconds"], 3),
                "process_seconds": round(r["process_seconds"], 3),
                "cpu_seconds": round(r["cpu_seconds"], 3),
                "docs_per_s": round(r["docs"] / r["seconds"], 2),
                "tokens_per_s": round(m_tokens["total"] / r["seconds"], 1),
                "identical_to_first": r["identical_to_first"], "load_1min": round(load, 2),
            })
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=96, help="documents in the generated corpus")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    ap.add_argument("--repeat", type=int, default=3, help="runs per worker count (the median counts)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one run in this process
    args = ap.parse_args()
    if args.one:
        job = json.loads(args.one)
        one_run(Path(job["corpus"]), Path(job["out"]), job["spec"], job["workers"])
        return
    for flag, value in (("--docs", args.docs), ("--repeat", args.repeat), *(("--workers", w) for w in args.workers)):
        positive(flag, value)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "load_1min": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        corpus = make_corpus(root / "corpus", args.docs, args.seed)
        media_mb = sum(p.stat().st_size for p in (root / "corpus" / "media").iterdir()) / 1e6
        spec, weights = tokenizers(root / "tok")
        emit({"bench": "stream", "row": "corpus", "docs": args.docs, "media_mb": round(media_mb, 2),
              "write_seconds": round(time.perf_counter() - t0, 2), "tokenizers": weights, **machine})
        order = list(dict.fromkeys(args.workers))
        # no warm-up: every run is a fresh process, its cold load timed apart as setup_seconds
        process = time_sides({w: runs(root, corpus, spec, w, args.repeat) for w in order}, repeats=args.repeat,
                             warmup=0)
        rows = run_rows(process, order)
        inner = {w: Timing(tuple(r["seconds"] for r in rows[w])) for w in order}
        if len(order) > 1:
            base = order[0]
            emit({"bench": "stream", "row": "ratio", "of": "median run of each", "ratio_of": RATIO_OF,
                  **{f"speedup_{w}_vs_{base}_workers": ratio(inner[base].median, inner[w].median, 3)
                     for w in order[1:]},
                  **{f"speedup_{w}_vs_{base}_workers_whole_process": ratio(process[base].median, process[w].median, 3)
                     for w in order[1:]},
                  "all_identical": all(r["identical_to_first"] for w in order for r in rows[w]),
                  "timings": {w: {"seconds": inner[w].summary(3), "process_seconds": process[w].summary(3)}
                              for w in order}})


if __name__ == "__main__":
    sys.exit(run_script(main))
