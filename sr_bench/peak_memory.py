"""Peak memory over a block: CUDA ``max_memory_allocated``, or the whole process's peak RSS on the CPU.

On the CPU the peak is read from the kernel's exact high-water mark (``VmHWM``) where Linux lets us reset it,
else sampled every 2 ms by a thread (which can miss short spikes; the record names the method used).

    >>> with track_peak_memory(torch.device("cpu"), reset=True) as memory:
    ...     model(x)
    >>> memory.peak_mib, memory.baseline_mib, memory.method
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil
import torch

MemoryKind = Literal["cuda_max_allocated", "cpu_rss_peak"]

_MIB = 1024**2
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _vm_hwm_mib() -> float:
    match = re.search(r"^VmHWM:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise OSError("VmHWM not in /proc/self/status")
    return int(match.group(1)) / 1024


def _reset_vm_hwm() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux >= 4.0); False where that is not allowed."""
    try:
        _CLEAR_REFS.write_text("5")
        _vm_hwm_mib()
    except OSError:
        return False
    return True


class _RssSampler:
    """Portable fallback: the max RSS seen by a thread polling every ``interval_s`` (can miss short spikes)."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self._proc = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


@dataclass
class PeakMemory:
    """Filled in by ``track_peak_memory``: the peak (after the block), what was held before, and how it was read."""

    peak_mib: float | None = None
    baseline_mib: float | None = None
    kind: MemoryKind = "cpu_rss_peak"
    method: str = ""


@contextmanager
def track_peak_memory(device: torch.device, reset: bool) -> Iterator[PeakMemory]:
    """Peak memory over the block; the yielded object's ``peak_mib`` is filled when the block ends.

    CUDA: ``max_memory_allocated``, reset first only when ``reset`` (official protocols never reset, so a later
    split reports the max over both). CPU: always scoped to the block, since the process's lifetime peak says
    nothing about this model.
    """
    result = PeakMemory()
    if device.type == "cuda":
        result.kind, result.method = "cuda_max_allocated", "torch.cuda.max_memory_allocated"
        if reset:
            torch.cuda.reset_peak_memory_stats(device)
        result.baseline_mib = torch.cuda.memory_allocated(device) / _MIB
        try:  # filled in when the block raises too (an interrupted eval still records its segment's peak)
            yield result
        finally:
            result.peak_mib = torch.cuda.max_memory_allocated(device) / _MIB
        return
    result.baseline_mib = psutil.Process().memory_info().rss / _MIB
    if _reset_vm_hwm():
        result.method = "process VmHWM (kernel peak RSS, reset before measuring)"
        try:
            yield result
        finally:
            result.peak_mib = _vm_hwm_mib()
        return
    result.method = "process RSS sampled every 2 ms"
    with _RssSampler() as sampler:
        try:
            yield result
        finally:
            result.peak_mib = sampler.peak / _MIB
