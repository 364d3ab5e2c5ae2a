"""The checks of ``benchmarks/gpu_check.sh`` whose figures another program left: one JSON object per line,
each with the check's name and an ``ok`` derived from what is there, never a constant; exit status 1 when the
check is not ok (gpu_check.sh then stops before its ``done`` line).

    python benchmarks/gpu_verdict.py shards DIR/shards/manifest.json --docs 6000
    python benchmarks/gpu_verdict.py train DIR/run --name train_gpu --log DIR/train_gpu.log --loss-falls --start T
    python benchmarks/gpu_verdict.py sample DIR/sample.log --prompt "the first " --max-new-tokens 300 --start T
    python benchmarks/gpu_verdict.py vq DIR/vq.log --device cuda --ks 1024 8192 --shares 0 0.3
    python benchmarks/gpu_verdict.py media DIR/media.log
    python benchmarks/gpu_verdict.py trainers DIR/trainers.log
    python benchmarks/gpu_verdict.py demo DIR/demo.log --device cuda

- ``shards``: ok when the manifest counts every document written, and tokens.
- ``train_gpu``, ``torchrun_nccl_1_rank`` (``train``, ``--name``): the run's ``log.jsonl``: ok when it has rows (as
  many as ``--steps``), every loss finite, the last below the first with ``--loss-falls``, and the checkpoint
  ``--checkpoint`` saved; tokens/s and MFU are the medians of its second half.
- ``sample_cuda``: ok when ``mmtok sample`` printed the prompt and text after it.
- ``vq_cuda``: every JSON row ``benchmarks/vq.py`` printed, then ok only when mmtok's own rows are there, on
  the device: an encode row for each codebook size (``--ks``) and a train row with a finite MSE for each
  repeated share (``--shares``), which on CUDA waited for the device at most twice a step (``host_waits``:
  the finiteness check and the count of dead codes; more is a regression). The peer's rows count for nothing: without ``vector_quantize_pytorch`` vq.py
  measures mmtok alone, and a vq.py that printed only its machine row and the peer's ``skipped`` row ran none of
  mmtok's VQ, which is not ok.
- ``media``: the rows ``benchmarks/gpu_media.py`` printed, ok when there are some and each is ok.
- ``trainers``: the rows ``benchmarks/gpu_trainers.py`` printed, likewise.
- ``demo_cuda``: the summary line ``mmtok demo --json`` printed: ok when the demo says it ran on ``--device``,
  every one of its steps has a summary, and its page is there.

A check that is not ok names what it read (``read``) and ends with the last lines of the step's log
(``log_tail``): a step that stopped before printing a JSON line (an empty log) is a failed check, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["demo_verdict", "json_rows", "log_tail", "main", "media_verdict", "read_log", "sample_verdict",
           "shards_verdict", "train_verdict", "vq_verdict"]

DEMO_STEPS = ("VQ core", "images", "audio", "stream", "corpus", "train", "sample", "context")  # mmtok demo's steps

TEXT_TAIL = 120  # characters of the sampled text a sample_cuda row shows
LOG_TAIL = 20  # last lines of a step's log a check that is not ok shows


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


def read_log(path: str | Path) -> str:
    """The text of the log at ``path``: "" when the step left none."""
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def log_tail(path: str | Path, lines: int = LOG_TAIL) -> list[str]:
    """The last ``lines`` lines of the log at ``path`` (none when it is empty or missing).

    >>> log_tail("/no/such.log")
    []
    """
    return read_log(path).splitlines()[-lines:]


def shards_verdict(manifest: Mapping[str, Any], docs: int) -> dict[str, Any]:
    """The ``shards`` row: ok when the manifest counts ``docs`` documents and some tokens.

    >>> shards_verdict({"docs": 2, "tokens": {"total": 40}}, 2)["ok"], shards_verdict({"docs": 1}, 2)["ok"]
    (True, False)
    """
    got = manifest.get("docs")
    tokens = (manifest.get("tokens") or {}).get("total")
    ok = got == docs and isinstance(tokens, int) and tokens > 0
    return {"check": "shards", "ok": ok, "docs": got, "docs_in_corpus": docs, "tokens": tokens}


def train_verdict(rows: Sequence[Mapping[str, Any]], name: str, *, steps: int | None = None,
                  loss_falls: bool = False, checkpoint_saved: bool = True) -> dict[str, Any]:
    """The ``name`` row of a training run's ``log.jsonl`` rows: ok when there are rows (``steps`` of them, when
    given), every loss is finite, the last below the first with ``loss_falls``, and ``checkpoint_saved``. No rows
    (the run stopped before its first step was logged) is a row that is not ok, ``steps`` 0.

    >>> train_verdict([], "train_gpu")
    {'check': 'train_gpu', 'ok': False, 'steps': 0}
    >>> train_verdict([{"loss": 5.0, "tokens_per_s": 9.0}, {"loss": 4.0, "tokens_per_s": 11.0}], "t", loss_falls=True)
    {'check': 't', 'ok': True, 'steps': 2, 'loss_first': 5.0, 'loss_last': 4.0, 'tokens_per_s': 11.0, 'mfu': None}
    """
    if not rows:
        return {"check": name, "ok": False, "steps": 0}
    losses = [r.get("loss") for r in rows]
    ok = (all(_number(x) for x in losses) and (steps is None or len(rows) == steps) and checkpoint_saved
          and (not loss_falls or losses[-1] < losses[0]))
    half = rows[len(rows) // 2 :]
    median = lambda key: statistics.median(r[key] for r in half) if all(_number(r.get(key)) for r in half) else None  # noqa: E731
    return {"check": name, "ok": ok, "steps": len(rows), "loss_first": losses[0], "loss_last": losses[-1],
            "tokens_per_s": median("tokens_per_s"), "mfu": median("mfu")}


def media_verdict(rows: Sequence[Mapping[str, Any]], name: str = "media") -> list[dict[str, Any]]:
    """The rows ``benchmarks/gpu_media.py`` (or ``gpu_trainers.py``) printed (each its own check), or, when it
    printed none, one row ``name`` that is not ok.

    >>> media_verdict([])
    [{'check': 'media', 'ok': False}]
    >>> media_verdict([], name="trainers")
    [{'check': 'trainers', 'ok': False}]
    """
    return [dict(r) for r in rows] if rows else [{"check": name, "ok": False}]


def demo_verdict(rows: Sequence[Mapping[str, Any]], *, device: str) -> dict[str, Any]:
    """The ``demo_cuda`` row from the lines ``mmtok demo --json`` printed: its summary line (the one naming the
    page) on ``device``, a summary for each of :data:`DEMO_STEPS`, and the page on disk.

    >>> demo_verdict([], device="cuda")["ok"]
    False
    """
    summary = next((r for r in rows if "page" in r), None)
    if summary is None:
        return {"check": "demo_cuda", "ok": False, "summary_line": False}
    steps = summary.get("steps") or {}
    missing = [s for s in DEMO_STEPS if not (isinstance(steps.get(s), Mapping) and steps[s].get("summary"))]
    ran_on = str(summary.get("device", ""))
    page = Path(str(summary["page"])).is_file()
    ok = ran_on.split(":")[0] == device.split(":")[0] and not missing and page
    return {"check": "demo_cuda", "ok": ok, "device": ran_on, "seconds": summary.get("seconds"), "page": page,
            "missing_steps": missing, "steps": {k: v.get("summary") for k, v in steps.items() if isinstance(v, Mapping)}}


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


MAX_VQ_HOST_WAITS = 2.0  # a VQ training step's reads on the host: its finiteness check and its count of dead codes


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
    if device.split(":")[0] == "cuda":  # vq.py counts them there: more than the step's reads is a regression
        for r in ours:
            waits = (r.get("host_waits") or {}).get("host_waits_per_step") if r.get("bench") == "vq_train" else 0
            if not (_number(waits) and waits <= MAX_VQ_HOST_WAITS):
                missing.append(f"mmtok vq_train row for repeated_share {r.get('repeated_share', '?')} with at most "
                               f"{MAX_VQ_HOST_WAITS:g} host waits a step (counted: {waits})")
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
    tr = sub.add_parser("train", help="the log.jsonl of a 'mmtok train' run")
    tr.add_argument("run", help="the run folder")
    tr.add_argument("--name", required=True, help="the check's name (train_gpu, torchrun_nccl_1_rank)")
    tr.add_argument("--log", required=True, help="what the training command printed (its last lines when not ok)")
    tr.add_argument("--steps", type=int, help="the steps the run must have logged (default: any)")
    tr.add_argument("--loss-falls", action="store_true", help="the last loss must be below the first")
    tr.add_argument("--checkpoint", help="a checkpoint folder of the run that must hold config.json")
    tr.add_argument("--start", type=float, help="when the training started (seconds since the epoch): wall_s")
    tr.add_argument("--settings", nargs="*", default=[], help="settings the run used, each shown as true")
    md = sub.add_parser("media", help="what benchmarks/gpu_media.py printed")
    md.add_argument("log")
    tn = sub.add_parser("trainers", help="what benchmarks/gpu_trainers.py printed")
    tn.add_argument("log")
    dm = sub.add_parser("demo", help="what 'mmtok demo --json' printed")
    dm.add_argument("log")
    dm.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    read = log = getattr(args, "log", None)
    if args.check == "shards":
        rows, read = [shards_verdict(json.loads(Path(args.manifest).read_text()), args.docs)], args.manifest
    elif args.check == "train":
        run = Path(args.run)
        read = str(run / "log.jsonl")
        saved = args.checkpoint is None or (run / args.checkpoint / "config.json").is_file()
        rows = [train_verdict(json_rows(read_log(read)), args.name, steps=args.steps, loss_falls=args.loss_falls,
                              checkpoint_saved=saved)]
        rows[0].update({**({"wall_s": round(time.time() - args.start)} if args.start else {}),
                        **dict.fromkeys(args.settings, True)})
    elif args.check == "sample":
        rows = [sample_verdict(read_log(args.log), args.prompt, max_new_tokens=args.max_new_tokens,
                               wall_s=time.time() - args.start)]
    elif args.check == "demo":
        rows = [demo_verdict(json_rows(read_log(args.log)), device=args.device)]
    elif args.check in ("media", "trainers"):
        rows = media_verdict(json_rows(read_log(args.log)), name=args.check)
    else:
        rows = vq_verdict(json_rows(read_log(args.log)), device=args.device, ks=args.ks, shares=args.shares)
    ok = all(r["ok"] for r in rows)
    if not ok:
        rows[-1]["read"] = read
        if log is not None:
            rows[-1].update({**({"log": log} if log != read else {}), "log_tail": log_tail(log)})
    for row in rows:
        print(json.dumps(row), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
