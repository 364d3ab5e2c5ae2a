"""The peak throughput model FLOPs utilisation (MFU) is measured against: a GPU's data-sheet figure,
or what a float32 matrix product reaches on this CPU just now."""

from __future__ import annotations

import time

import torch

__all__ = ["GPU_PEAK_TFLOPS", "cpu_peak_flops", "peak_flops"]

# peak dense throughput assumed for MFU (bf16 tensor cores, no sparsity), from vendor data sheets
GPU_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}


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
        for key, tflops in GPU_PEAK_TFLOPS.items():
            if key in name:
                return tflops * 1e12, f"{name}'s data-sheet peak of {tflops:g} TFLOP/s (bf16)"
        return None, f"unknown for {name}, so not reported"
    peak = cpu_peak_flops()
    return peak, (f"{peak / 1e9:.1f} GFLOP/s, what a float32 matrix product reached on this CPU just now "
                  "(it varies with the machine's load)")
