"""The checks of ``benchmarks/gpu_check.sh`` whose figures another program left: one JSON object per line,
each with the check's name and an ``ok`` derived from what is there, never a constant; exit status 1 when the
check is not ok (gpu_check.sh then stops before its ``done`` line).

    python benchmarks/gpu_verdict.py shards DIR/shards/manifest.json --docs 6000
    python benchmarks/gpu_verdict.py sample DIR/sample.log --prompt "the first " --max-new-tokens 300 --start T
    python benchmarks/gpu_verdict.py vq DIR/vq.log --device cuda --ks 1024 8192 --shares 0 0.3

- ``shards``: ok when the manifest counts every document written, and tokens.
- ``sample_cuda``: ok when ``mmtok sample`` printed the prompt and text after it.
- ``vq_cuda``: every JSON row ``benchmarks/vq.py`` printed, then ok only when mmtok's own rows are there, on
  the device: an encode row for each codebook size (``--ks``) and a train row with a finite MSE for each
  repeated share (``--shares``). The peer's rows count for nothing: without ``vector_quantize_pytorch`` vq.py
  measures mmtok alone, and a vq.py that printed only its machine row and the peer's ``skipped`` row ran none of
  mmtok's VQ, which is not ok.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["json_rows", "main", "sample_verdict", "shards_verdict", "vq_verdict"]

TEXT_TAIL = 120  # characters of the sampled text a sample_cuda row shows


def json_rows(text: str) -> list[dict[str, Any]]:
    """The JSON objects of ``text``, one a line (other lines, a log's warnings among them, are passed over).

    >>> json_rows('{"bench": "machine"}\\nwarning: {not json}\\n[1]\\n')
    [{'bench': 'machine'}]
    """
    rows = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def shards_verdict(manifest: Mapping[str, Any], docs: int) -> dict[str, Any]:
    """The ``shards`` row: ok when the manifest counts ``docs`` documents and some tokens.

    >>> shards_verdict({"docs": 2, "tokens": {"total": 40}}, 2)["ok"], shards_verdict({"docs": 1}, 2)["ok"]
    (True, False)
    """
    got = manifest.get("docs")
    tokens = (manifest.get("tokens") or {}).get("total")
    ok = got == docs and isinstance(tokens, int) and tokens > 0
    return {"check": "shards", "ok": ok, "docs": got, "docs_in_corpus": docs, "tokens": tokens}


def sample_verdict(log: str, prompt: str, *, max_new_tokens: int, wall_s: float) -> dict[str, Any]:
    """The ``sample_cuda`` row of what ``mmtok sample --prompt PROMPT`` printed (``log``): ok when the prompt is
    there with text after it.

    >>> sample_verdict("the first word.\\n", "the first ", max_new_tokens=9, wall_s=1.0)["ok"]
    True
    >>> sample_verdict("the first \\n", "the first ", max_new_tokens=9, wall_s=1.0)["ok"]
    False
    """
    at = log.find(prompt)
    ok = at >= 0 and log[at + len(prompt) :].strip() != ""
    return {"check": "sample_cuda", "ok": ok, "max_new_tokens": max_new_tokens, "wall_s": round(wall_s, 2),
            "text": log.rstrip("\n")[-TEXT_TAIL:]}


def _on(row: Mapping[str, Any], device: str) -> bool:
    """Whether ``row`` was measured on a device of ``device``'s type (``cuda`` and ``cuda:0`` alike)."""
    return str(row.get("device", "")).split(":")[0] == device.split(":")[0]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def vq_verdict(rows: Sequence[Mapping[str, Any]], *, device: str, ks: Sequence[int],
               shares: Sequence[float]) -> list[dict[str, Any]]:
    """The ``vq_cuda`` rows: each of ``rows`` (what benchmarks/vq.py printed) with the check's name and ``ok``,
    then, when not ok, one row naming what is missing. Ok only when mmtok's rows are there: the machine row on
    ``device``, an encode row on ``device`` with a speed for each codebook size in ``ks``, and a train row with a
    finite MSE for each repeated share in ``shares``.

    >>> vq_verdict([{"bench": "machine", "device": "cuda"}, {"bench": "vq", "skipped": "not installed"}],
    ...            device="cuda", ks=[16], shares=[])[-1]["missing"]
    ['mmtok vq_encode row for codebook_size 16 on cuda']
    """
    ours = [r for r in rows if r.get("impl") == "mmtok"]
    missing = [] if any(r.get("bench") == "machine" and _on(r, device) for r in rows) else [f"machine row on {device}"]
    missing += [f"mmtok vq_encode row for codebook_size {k} on {device}" for k in ks
                if not any(r.get("bench") == "vq_encode" and r.get("codebook_size") == k and _on(r, device)
                           and _number(r.get("vectors_per_s")) for r in ours)]
    missing += [f"mmtok vq_train row with a finite mse for repeated_share {s:g}" for s in shares
                if not any(r.get("bench") == "vq_train" and r.get("repeated_share") == s and _number(r.get("mse"))
                           for r in ours)]
    ok = not missing
    out = [{"check": "vq_cuda", "ok": ok, **{k: v for k, v in r.items() if k not in ("check", "ok")}} for r in rows]
    if not ok:
        out.append({"check": "vq_cuda", "ok": False, "missing": missing})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="check", required=True)
    sh = sub.add_parser("shards", help="the manifest 'mmtok tokenize' wrote")
    sh.add_argument("manifest")
    sh.add_argument("--docs", type=int, required=True, help="documents in the corpus tokenized")
    sm = sub.add_parser("sample", help="what 'mmtok sample' printed")
    sm.add_argument("log")
    sm.add_argument("--prompt", required=True)
    sm.add_argument("--max-new-tokens", type=int, required=True)
    sm.add_argument("--start", type=float, required=True, help="when the sampling started (seconds since the epoch)")
    vq = sub.add_parser("vq", help="what benchmarks/vq.py printed")
    vq.add_argument("log")
    vq.add_argument("--device", default="cuda")
    vq.add_argument("--ks", type=int, nargs="+", required=True, help="the codebook sizes vq.py was given")
    vq.add_argument("--shares", type=float, nargs="*", default=[], help="the repeated shares vq.py was given")
    args = ap.parse_args(argv)
    if args.check == "shards":
        rows = [shards_verdict(json.loads(Path(args.manifest).read_text()), args.docs)]
    elif args.check == "sample":
        rows = [sample_verdict(Path(args.log).read_text(errors="replace"), args.prompt,
                               max_new_tokens=args.max_new_tokens, wall_s=time.time() - args.start)]
    else:
        rows = vq_verdict(json_rows(Path(args.log).read_text(errors="replace")), device=args.device, ks=args.ks,
                          shares=args.shares)
    if not rows[-1]["ok"]:
        rows[-1]["read"] = args.manifest if args.check == "shards" else args.log
    for row in rows:
        print(json.dumps(row), flush=True)
    return 0 if rows[-1]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
