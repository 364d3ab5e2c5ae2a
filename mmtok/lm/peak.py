"""What this machine offers a training step and what one step asks of it: the peak throughput model FLOPs
utilisation (MFU) is measured against (a GPU's data-sheet figure, or what a float32 matrix product reaches on
this CPU just now), the memory available, and a step's peak memory (:func:`step_memory`), which
:func:`check_step_memory` holds to what is available before ``mmtok train`` takes a step.

Windows that hold several documents (or padding) attend through a mask of ``B × T × T`` booleans, and on the
CPU its ``0 / -inf`` float copy besides: memory quadratic in ``--seq-len``, which at long windows dwarfs the rest.

>>> from mmtok.lm.model import ModelConfig
>>> cfg = ModelConfig.preset("tiny", vocab_size=288)
>>> mask, rest = step_memory(cfg, batch_size=4, seq_len=6144, several_docs=True, float_bytes=4)
>>> mask / 2**20, round(rest / 2**20)  # the mask: 4 × 6144² × (1 + 4) bytes
(720.0, 1006)
"""

from __future__ import annotations

import os
import re
import time

import torch

from mmtok.core.errors import UsageError
from mmtok.core.limits import said_bytes
from mmtok.lm.model import ModelConfig, Transformer

__all__ = ["GPU_PEAK_TFLOPS", "available_memory", "check_step_memory", "cpu_peak_flops", "gpu_peak_tflops",
           "peak_flops", "step_memory"]

# Peak dense throughput assumed for MFU: bf16 tensor cores without sparsity, half the "with sparsity" figure of
# NVIDIA's data sheets (H100 SXM/PCIe/NVL and H200 SXM/NVL; A100 SXM and PCIe alike; L4, L40, L40S, A10). A key
# is the words a device name must hold, each a whole word of it: "H100 PCIe" is not the SXM's "H100".
GPU_PEAK_TFLOPS = {
    "H100": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H200": 989.0, "H200 NVL": 835.0,
    "A100": 312.0, "L4": 121.0, "L40": 181.0, "L40S": 362.0, "A10": 125.0,
}


def _words(name: str) -> set[str]:
    return set(re.split(r"[\s_-]+", name.strip().upper()))


def gpu_peak_tflops(name: str) -> float | None:
    """The :data:`GPU_PEAK_TFLOPS` figure of the GPU named ``name`` (as CUDA names it); the key with most words
    wins, so a PCIe card is not taken for its SXM sibling. None for a GPU the table does not know.

    >>> gpu_peak_tflops("NVIDIA H100 80GB HBM3"), gpu_peak_tflops("NVIDIA H100 PCIe"), gpu_peak_tflops("NVIDIA L40S")
    (989.0, 756.0, 362.0)
    >>> gpu_peak_tflops("NVIDIA RTX A1000") is None, gpu_peak_tflops("NVIDIA A100-SXM4-80GB")
    (True, 312.0)
    """
    words = _words(name)
    known = [key for key in GPU_PEAK_TFLOPS if _words(key) <= words]
    return GPU_PEAK_TFLOPS[max(known, key=lambda k: len(_words(k)))] if known else None


def cpu_peak_flops(seconds: float = 0.3) -> float:
    """Measured float32 matmul throughput of this CPU: the peak assumed for CPU MFU."""
    g = torch.Generator().manual_seed(0)  # not the global one: a resumed run's dropout masks depend on it
    a, b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
    torch.mm(a, b)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        n += 1
    return 2 * 1024**3 * n / (time.perf_counter() - t0)


def peak_flops(device: torch.device) -> tuple[float | None, str]:
    """``(peak FLOP/s, where it comes from)`` for ``device``; None for a GPU this table does not know."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        tflops = gpu_peak_tflops(name)
        if tflops is not None:
            return tflops * 1e12, f"{name}'s data-sheet peak of {tflops:g} TFLOP/s (bf16)"
        return None, f"unknown for {name}, so not reported"
    peak = cpu_peak_flops()
    return peak, (f"{peak / 1e9:.1f} GFLOP/s, what a float32 matrix product reached on this CPU just now "
                  "(it varies with the machine's load)")


def available_memory(device: torch.device) -> tuple[int, str] | None:
    """``(bytes, what they are)`` a training step on ``device`` may take: the GPU's free memory on CUDA,
    ``MemAvailable`` of ``/proc/meminfo`` on the CPU; None where that is unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"free on {torch.cuda.get_device_name(device)}"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available (MemAvailable)"
    except (OSError, ValueError, IndexError):
        pass
    return None


def step_memory(cfg: ModelConfig, *, batch_size: int, seq_len: int, several_docs: bool,
                float_bytes: int, params: int | None = None) -> tuple[int, int]:
    """``(mask bytes, other bytes)`` at the peak of one training step of a :class:`Transformer` of ``cfg`` over
    ``batch_size`` windows of ``seq_len`` tokens, activations of ``float_bytes`` each.

    The mask: ``B·T²`` booleans and their float copy (``B·T²·(1 + float_bytes)``) when a window may hold several
    documents (``several_docs``), else none (plain causal attention). The rest: weights, gradients and AdamW's
    two moments in float32, and the activations kept for the backward pass, linear in ``B·T``: per layer the
    residual stream, norms, queries/keys/values and the SwiGLU hidden, and the logits with their gradient.
    ``params``: the model's parameter count where the caller has it (else counted on a model built on ``meta``).
    """
    if params is None:
        params = _param_count(cfg)
    c, kv = cfg.d_model, (cfg.n_head + 2 * cfg.n_kv_head) * cfg.head_dim
    per_token = cfg.n_layer * (8 * c + kv + 3 * cfg.hidden_dim) + 3 * cfg.vocab_size  # floats kept per token
    tokens = batch_size * seq_len
    mask = tokens * seq_len * (1 + float_bytes) if several_docs else 0
    return mask, 16 * params + tokens * per_token * float_bytes


def _param_count(cfg: ModelConfig) -> int:
    """Parameters of a :class:`Transformer` of ``cfg``, embedding included, from one built on ``meta`` (no memory)."""
    with torch.device("meta"):
        return Transformer(cfg).num_params(non_embedding=False)


def _fix(cfg: ModelConfig, need: dict[str, int | bool], grad_accum: int, room: int) -> str:
    """What to change so a step fits in ``room`` bytes: a smaller ``--batch-size`` dividing the batch with a
    larger ``--grad-accum`` (the same global batch), else a shorter ``--seq-len``."""
    b, t = int(need["batch_size"]), int(need["seq_len"])

    def fits(batch: int, seq: int) -> bool:
        return sum(step_memory(cfg, **{**need, "batch_size": batch, "seq_len": seq})) <= room  # type: ignore[arg-type]

    split = next((d for d in range(b - 1, 0, -1) if b % d == 0 and fits(d, t)), None)
    if split is not None:
        return (f"--batch-size {split} --grad-accum {grad_accum * b // split} takes the same global batch in "
                "smaller micro-batches; or lower --seq-len")
    lo, hi = 0, t  # the longest --seq-len that fits at this --batch-size
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(b, mid) else (lo, mid - 1)
    lo = lo - lo % 64 if lo >= 64 else lo
    return f"lower --seq-len to {lo} or less" if lo else "lower --preset: not one window of it fits"


def check_step_memory(cfg: ModelConfig, device: torch.device, *, batch_size: int, grad_accum: int, seq_len: int,
                      several_docs: bool) -> None:
    """A one-line :class:`UsageError` (``mmtok train`` exits 2) when one training step (:func:`step_memory`)
    would need more memory than ``device`` has available (:func:`available_memory`; on the CPU, shared by the
    ``LOCAL_WORLD_SIZE`` processes torchrun starts on this host); nothing is refused where that is unknown."""
    room = available_memory(device)
    if room is None:
        return
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1) if device.type == "cpu" else 1
    if ranks > 1:  # torchrun's processes on this host share its memory: each may take its part
        room = (room[0] // ranks, f"{room[1]}, shared by {ranks} processes on this host")
    need: dict[str, int | bool] = {"batch_size": batch_size, "seq_len": seq_len, "several_docs": several_docs,
                                   "float_bytes": 2 if device.type == "cuda" else 4, "params": _param_count(cfg)}
    mask, rest = step_memory(cfg, **need)  # type: ignore[arg-type]
    if mask + rest <= room[0]:
        return
    why = (f"the document mask of windows holding several documents, {batch_size} × {seq_len}² × "
           f"{1 + int(need['float_bytes'])} bytes, takes {said_bytes(mask)}; " if mask else "")
    raise UsageError(f"--seq-len {seq_len} --batch-size {batch_size}: one training step needs about "
                     f"{said_bytes(mask + rest)} ({why}the model, its optimizer and activations {said_bytes(rest)}), but "
                     f"{said_bytes(room[0])} is {room[1]}: {_fix(cfg, need, grad_accum, room[0])}")
