"""The peak throughput model FLOPs utilisation (MFU) is measured against: a GPU's data-sheet figure,
or what a float32 matrix product reaches on this CPU just now."""

from __future__ import annotations

import re
import time

import torch

__all__ = ["GPU_PEAK_TFLOPS", "cpu_peak_flops", "gpu_peak_tflops", "peak_flops"]

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
