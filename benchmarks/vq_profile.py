"""Where a VQ encode call and a VQ training step spend their time, by torch's profiler.

Prints one JSON object per phase (``encode``: ``VectorQuantizer.encode`` of ``--n`` vectors; ``train_step``:
one training forward of a ``--batch`` after 30 warm-up steps on clustered data, restarts on as in
``benchmarks/vq.py``): wall time per call, the ops with the most time per call (device time on CUDA,
host time on the CPU), kernel launches per call and, on CUDA, the calls per call that made the host
wait for the device (``torch.cuda.set_sync_debug_mode``).

Usage: ``python benchmarks/vq_profile.py [--device cuda] [--n 262144] [--k 1024] [--dim 64] [--batch 8192]
[--calls 5] [--top 12]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import LAUNCHES, emit, host_waits, kernel_launches, pick_device, positive, run_script

import mmtok
from mmtok.synth.clustered import make_clustered


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_time(event: object) -> float:
    """An averaged event's own device time in µs (the attribute's name changed across torch releases)."""
    for attr in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(event, attr):
            return float(getattr(event, attr))
    return 0.0


def profile_phase(name: str, call: Callable[[], object], calls: int, top: int, device: torch.device) -> None:
    for _ in range(3):  # warm-up: kernels compiled, allocator primed
        call()
    _sync(device)
    start = time.perf_counter()
    for _ in range(calls):
        call()
    _sync(device)
    wall = (time.perf_counter() - start) / calls
    waits = host_waits(call, calls, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(calls):
            call()
        _sync(device)
    events = list(prof.key_averages())
    on_device = device.type == "cuda"
    key = _device_time if on_device else (lambda e: float(e.self_cpu_time_total))
    ranked = sorted((e for e in events if key(e) > 0 and e.key not in LAUNCHES), key=key, reverse=True)[:top]
    emit({"bench": "vq_profile", "phase": name, "device": str(device), "calls": calls,
          "wall_ms_per_call": round(wall * 1e3, 3), "host_waits_per_call": waits,
          "kernel_launches_per_call": kernel_launches(events, calls) if on_device else None,
          "time_is": "device (own time)" if on_device else "host (own time)",
          "top": [{"op": e.key, "per_call": round(e.count / calls, 1), "ms_per_call": round(key(e) / 1e3 / calls, 4)}
                  for e in ranked]})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=262_144, help="vectors per encode call")
    ap.add_argument("--k", type=int, default=1024, help="codebook size")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8192, help="vectors per training step")
    ap.add_argument("--calls", type=int, default=5, help="calls timed, counted and profiled (each)")
    ap.add_argument("--top", type=int, default=12, help="ops listed per phase")
    args = ap.parse_args(argv)
    for flag in ("--n", "--k", "--dim", "--batch", "--calls", "--top"):
        positive(flag, getattr(args, flag[2:]))
    device = pick_device(args.device)
    torch.manual_seed(0)
    data = make_clustered(max(args.n, 300_000), args.dim, 4 * args.k, seed=7).to(device)
    with torch.inference_mode():
        vq = mmtok.VectorQuantizer(mmtok.VQConfig(dim=args.dim, codebook_size=args.k, kmeans_init=False)).to(device)
        vq.embed.copy_(data[torch.randperm(data.shape[0], device=device)[: args.k]])
        vq.eval()
        x = data[: args.n]
        profile_phase("encode", lambda: vq.encode(x), args.calls, args.top, device)
    trainer = mmtok.VectorQuantizer(mmtok.VQConfig(dim=args.dim, codebook_size=args.k, dead_code_threshold=2.0))
    trainer = trainer.to(device).train()
    g = torch.Generator().manual_seed(1)
    picks = [torch.randint(0, data.shape[0], (args.batch,), generator=g).to(device) for _ in range(64)]
    step = iter(range(1 << 30))
    for _ in range(30):
        trainer(data[picks[next(step) % 64]])
    profile_phase("train_step", lambda: trainer(data[picks[next(step) % 64]]), args.calls, args.top, device)
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
