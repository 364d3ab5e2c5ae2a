"""Corpus tokenizing throughput: docs/s and tokens/s of ``mmtok tokenize`` with 1 and 2 workers.

Writes a corpus of interleaved documents to disk (text, a JPEG or PNG photo-like
image of varying size, a WAV clip of varying length and sample rate), then runs
:func:`mmtok.tokenize_corpus` (what ``mmtok tokenize`` calls) on it once per
``--workers`` value, side by side in one process, and prints one JSON object per
line: a ``run`` row per worker count (checking that the shards are
byte-identical to the 1-worker run) and a ``ratio`` row.

The tokenizers are the shipped ``image`` and ``audio`` checkpoints when present;
otherwise the default-config models with their initial weights (the same
architecture and cost; the ids are meaningless). Each worker uses one thread.

Usage: ``python benchmarks/stream.py [--docs 48] [--workers 1 2] [--seed 0]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit

import mmtok
from mmtok.core.checkpoint import shipped_names
from mmtok.data.corpus import TokenizerSpec, tokenize_corpus


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
    from mmtok.audio.tokenizer import AudioTokenizer, AudioTokenizerConfig
    from mmtok.image.tokenizer import ImageTokenizer, ImageTokenizerConfig

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=48, help="documents in the generated corpus")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "load_1min": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        corpus = make_corpus(root / "corpus", args.docs, args.seed)
        media_mb = sum(p.stat().st_size for p in (root / "corpus" / "media").iterdir()) / 1e6
        spec, weights = tokenizers(root / "tok")
        emit({"bench": "stream", "row": "corpus", "docs": args.docs, "media_mb": round(media_mb, 2),
              "write_seconds": round(time.perf_counter() - t0, 2), "tokenizers": weights, **machine})
        results = {}
        for workers in args.workers:
            out = root / f"out-{workers}"
            start = time.perf_counter()
            m = tokenize_corpus(corpus, out, tokenizers=spec, workers=workers, shard_tokens=1 << 16)
            seconds = time.perf_counter() - start
            results[workers] = (seconds, digest(out))
            emit({
                "bench": "stream", "row": "run", "workers": workers, "docs": m["docs"],
                "tokens": m["tokens"]["total"],
                "tokens_by_modality": {k: v for k, v in m["tokens"].items() if k != "total" and v},
                "skipped": len(m["skipped"]), "seconds": round(seconds, 3),
                "docs_per_s": round(m["docs"] / seconds, 2), "tokens_per_s": round(m["tokens"]["total"] / seconds, 1),
                "identical_to_first": results[workers][1] == results[args.workers[0]][1],
                "load_1min": round(os.getloadavg()[0], 2),
            })
        if len(results) > 1:
            base = args.workers[0]
            emit({"bench": "stream", "row": "ratio",
                  **{f"speedup_{w}_vs_{base}_workers": round(results[base][0] / results[w][0], 3)
                     for w in args.workers[1:]}})


if __name__ == "__main__":
    main()
