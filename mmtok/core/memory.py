"""Peak-memory measurement: resident memory on the CPU, allocator peaks on CUDA.

One implementation for the growth measurement, the benchmarks and the demo:

>>> with PeakMemory("cpu") as m:
...     _ = bytearray(1 << 20)
>>> m.peak_mib >= 0
True
"""

from __future__ import annotations

import resource
from types import TracebackType
from typing import Any

import torch

__all__ = ["PeakMemory", "reset_peak_rss", "rss_mib"]


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (0 where it is not available)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib() -> float:
    """The process's resident memory now, in MiB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


_OPEN_CPU: list[PeakMemory] = []  # the CPU blocks now open, outermost first


class PeakMemory:
    """Context manager: the peak memory above the starting point of what runs inside, in MiB.

    On CUDA the allocator's peak (``torch.cuda.max_memory_allocated``) above what
    was allocated at the start; on the CPU the kernel's high-water mark of the
    resident set (``VmHWM``, reset on entry) above the resident set at entry. Blocks
    nest: the mark an inner CPU block resets is first kept for the blocks around it.
    """

    def __init__(self, device: Any = "cpu") -> None:
        self.device = torch.device(device)
        self.peak_mib = 0.0
        self._base = 0.0
        self._seen = 0.0  # the highest mark an inner block's reset took away (MiB)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            mark = _status_kib("VmHWM") / 1024
            for outer in _OPEN_CPU:  # the reset below would take their peak away
                outer._seen = max(outer._seen, mark)
            reset_peak_rss()
            self._base = _status_kib("VmRSS") / 1024
            self._seen = 0.0
            _OPEN_CPU.append(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = max(_status_kib("VmHWM") / 1024, _status_kib("VmRSS") / 1024, self._seen)
            if self in _OPEN_CPU:
                _OPEN_CPU.remove(self)
        self.peak_mib = max(0.0, peak - self._base)
