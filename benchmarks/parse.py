"""De-interleaving speed: the parser's one-pass read of well-formed images and videos against its per-row path.

``Interleaver.decode`` (and ``stream``, which parses to check) reads a well-formed image or video grid in one
vectorized pass and hands anything irregular to the per-row path that reports and repairs it. This times both
on the same streams, in alternating rounds in one process with one thread (``common.time_sides``, after a
warm-up call of each), and prints one JSON object per line: a row per case and path (min and median seconds
over the rounds) and a ``ratio`` row per case (of the medians: ``ratio_of``), with whether the two paths
gave the same result for that case: ``same_segments`` for a decode, ``same_stream`` (ids, modalities,
positions, loss weights) for a stream.

Cases: a mixed document (five texts, 16×16 images and 10 s sounds, a 60-frame video: about 21,800 ids) and
ten minutes of video at 1 fps (600 frames of 16×16 codes: about 163,800 ids), decoded and streamed.

Usage: ``python benchmarks/parse.py [--rounds 9] [--seed 0]``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch
from common import RATIO_OF, emit, positive, ratio, run_script, time_sides

import mmtok
from mmtok.stream.parse import Parser
from mmtok.stream.vocab import Vocabulary


def _streams(seed: int) -> tuple[mmtok.Interleaver, dict[str, torch.Tensor]]:
    vocab = Vocabulary(256, ranges={"image": 1280, "audio": 5888, "video": 1280})
    il = mmtok.Interleaver(vocab)
    g = torch.Generator().manual_seed(seed)
    doc: list = []
    for _ in range(5):
        doc += ["some text " * 30, {"image_codes": torch.randint(0, 1280, (16, 16), generator=g)},
                {"audio_codes": torch.randint(0, 5888, (500,), generator=g)}]
    doc.append({"video_codes": torch.randint(0, 1280, (60, 16, 16), generator=g)})
    video = ["10 minutes at 1 fps: ", {"video_codes": torch.randint(0, 1280, (600, 16, 16), generator=g)}]
    return il, {"mixed": il.encode(doc).ids, "video600": il.encode(video).ids}


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) if isinstance(x[k], torch.Tensor) else x[k] == y[k]
                                     for k in x) for x, y in zip(a, b, strict=True))


def _agreement(run: Callable[[], object], paths: dict[str, Callable[..., object]]) -> dict[str, bool]:
    """``{"same_segments": ...}`` (a decode) or ``{"same_stream": ...}`` (a stream): whether ``run`` gives the
    same result on the per-row path as on the one-pass path. Leaves the one-pass path in place."""
    out = {}
    for path in ("per_row", "one_pass"):
        Parser.grid = paths[path]
        out[path] = run()
    slow, fast = out["per_row"], out["one_pass"]
    if isinstance(fast, mmtok.Stream):
        return {"same_stream": all(torch.equal(getattr(fast, f), getattr(slow, f))
                                   for f in ("ids", "modality", "pos", "pos_thw", "loss_weight"))}
    return {"same_segments": _same(fast, slow)}  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    positive("--rounds", args.rounds)
    torch.set_num_threads(1)
    il, streams = _streams(args.seed)
    cases: dict[str, Callable[[], object]] = {
        "decode mixed": lambda: il.decode(streams["mixed"]),
        "decode video600": lambda: il.decode(streams["video600"]),
        "stream video600": lambda: il.stream(streams["video600"]),
    }
    paths = {"per_row": lambda self, b, modality: None, "one_pass": Parser.grid}

    def on(path: str, run: Callable[[], object]) -> Callable[[], object]:
        def call() -> object:
            Parser.grid = paths[path]
            return run()

        return call

    timings = time_sides({(name, path): on(path, run) for path in paths for name, run in cases.items()},
                         repeats=args.rounds)
    for name, run in cases.items():
        t = {path: timings[(name, path)] for path in paths}
        for path, timing in t.items():
            emit(bench="parse", case=name, path=path, ids=int(streams["mixed" if "mixed" in name else "video600"]
                                                             .numel()),
                 rounds=timing.n, min_seconds=round(timing.min, 6), median_seconds=round(timing.median, 6))
        emit(bench="parse", metric="ratio", case=name, speedup_one_pass=ratio(t["per_row"].median, t["one_pass"].median),
             ratio_of=RATIO_OF, **_agreement(run, paths))


if __name__ == "__main__":
    sys.exit(run_script(main))
