"""Fakes that stand for a CUDA machine, so the CUDA-only branches run on a CPU-only torch.

* ``FakeNvml`` stands for the ``pynvml`` module on a machine with one GPU: each per-read call answers from a
  scripted list of states, so a test says exactly what the driver reported before, during and after a split.
* ``FakeCuda`` stands for the CUDA runtime as torch exposes it: ``is_available``, events on a clock the test
  advances, ``synchronize``, and an allocator with ``memory_allocated`` / ``max_memory_allocated`` /
  ``reset_peak_memory_stats``. Tensors "moved to CUDA" stay on the CPU (``Tensor.to``, ``torch.rand`` and
  ``torch.zeros`` rewrite the device), and every upload is reported to ``on_upload`` so a test can make it allocate.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import pytest
import torch

OWN = 4242  # the pid the tests pretend srbench runs as
MIB = 1024**2
CPU = torch.device("cpu")


class FakeNvml:
    """Stands for the ``pynvml`` module with one GPU; ``states`` are what successive reads see (the last repeats).

    A state maps a field to its value; a missing field raises the fake's NotSupported error, as a GPU without that
    sensor does. ``reads`` counts completed reads (the process list is the last call of a read).
    """

    class NVMLError(Exception):
        pass

    def __init__(self, states: list[dict], *, old_driver: bool = False, fail_init: bool = False) -> None:
        self.states = states
        self.reads = 0
        self.inits = self.shutdowns = 0
        self.read_event = threading.Event()
        self.fail_init = fail_init
        if old_driver:  # before driver 535 only the "throttle" name exists
            self.nvmlDeviceGetCurrentClocksThrottleReasons = self.nvmlDeviceGetCurrentClocksEventReasons
            self.nvmlDeviceGetCurrentClocksEventReasons = None

    def __getattr__(self, name: str):
        raise AttributeError(name)

    def _state(self) -> dict:
        return self.states[min(self.reads, len(self.states) - 1)]

    def _get(self, key: str):
        state = self._state()
        if key not in state:
            raise FakeNvml.NVMLError("Not Supported")
        return state[key]

    # session
    def nvmlInit(self) -> None:
        if self.fail_init:
            raise FakeNvml.NVMLError("NVML Shared Library Not Found")
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        assert uuid == "GPU-1234-abcd"
        return "handle"

    # facts
    def nvmlDeviceGetName(self, handle: str) -> bytes:
        return b"NVIDIA H200"

    def nvmlSystemGetDriverVersion(self) -> str:
        return "570.86.15"

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> types.SimpleNamespace:
        return types.SimpleNamespace(total=143771 * 1024**2)

    def nvmlDeviceGetPersistenceMode(self, handle: str) -> int:
        return 1

    def nvmlDeviceGetMaxClockInfo(self, handle: str, kind: int) -> int:
        return {1: 1980, 2: 3201}[kind]

    def nvmlDeviceGetApplicationsClock(self, handle: str, kind: int) -> int:
        raise FakeNvml.NVMLError("Not Supported")

    # per read
    def nvmlDeviceGetClockInfo(self, handle: str, kind: int) -> int:
        return self._get({1: "sm", 2: "mem"}[kind])

    def nvmlDeviceGetTemperature(self, handle: str, sensor: int) -> int:
        assert sensor == 0
        return self._get("temp")

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        return self._get("power_mw")

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: str) -> int:
        return 700_000

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: str) -> int:
        return self._get("reasons")

    def nvmlDeviceGetComputeRunningProcesses(self, handle: str) -> list:
        try:
            return [types.SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self._get("procs")]
        finally:
            self.reads += 1
            self.read_event.set()

    def nvmlSystemGetProcessName(self, pid: int) -> bytes:
        if pid == OWN:
            return b"python"
        raise FakeNvml.NVMLError("No Permission")

    def nvmlDeviceGetPerformanceState(self, handle: str) -> int:
        return self._get("pstate")


STEADY = {  # a GPU at full clocks, cool, alone with srbench
    "sm": 1980, "mem": 3201, "temp": 55, "power_mw": 312_400, "reasons": 0, "pstate": 0,
    "procs": [(OWN, 812 * MIB)],
}


class FakeEvent:
    """Stands for ``torch.cuda.Event(enable_timing=True)``: records the fake GPU clock (ms)."""

    def __init__(self, cuda: FakeCuda, enable_timing: bool = False) -> None:
        assert enable_timing
        self._cuda = cuda
        self.at: float | None = None

    def record(self) -> None:
        self.at = self._cuda.clock_ms

    def elapsed_time(self, end: FakeEvent) -> float:
        assert self.at is not None and end.at is not None and self._cuda.synced_after(end.at)
        return end.at - self.at


def _is_cuda(value: Any) -> bool:
    return (isinstance(value, torch.device) and value.type == "cuda") or (
        isinstance(value, str) and value.startswith("cuda"))


class FakeCuda:
    """Stands for one CUDA GPU (see the module docstring); ``allocate``/``free`` move its allocator's counters."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.clock_ms = 0.0
        self.last_sync_ms = -1.0
        self.allocated = 0
        self.peak = 0
        self.calls = {"sync": 0, "reset": 0, "empty_cache": 0}
        self.on_upload: Callable[[torch.Tensor], None] = lambda tensor: None
        cuda = torch.cuda
        monkeypatch.setattr(cuda, "is_available", lambda: True)
        monkeypatch.setattr(cuda, "device_count", lambda: 1)
        monkeypatch.setattr(cuda, "current_device", lambda: 0)
        monkeypatch.setattr(cuda, "device", lambda device: nullcontext())
        monkeypatch.setattr(cuda, "Event", lambda enable_timing=False: FakeEvent(self, enable_timing))
        monkeypatch.setattr(cuda, "synchronize", self._synchronize)
        monkeypatch.setattr(cuda, "empty_cache", lambda: self._count("empty_cache"))
        monkeypatch.setattr(cuda, "memory_allocated", lambda device=None: self.allocated)
        monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: self.peak)
        monkeypatch.setattr(cuda, "reset_peak_memory_stats", self._reset)
        real_to = torch.Tensor.to

        def to(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            upload = any(_is_cuda(a) for a in args) or _is_cuda(kwargs.get("device"))
            args = tuple(CPU if _is_cuda(a) else a for a in args)
            if _is_cuda(kwargs.get("device")):
                kwargs["device"] = CPU
            out = real_to(tensor, *args, **kwargs)
            if upload:
                self.on_upload(out)
            return out

        def on_cpu(factory: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
            def make(*args: Any, **kwargs: Any) -> torch.Tensor:
                if _is_cuda(kwargs.get("device")):
                    kwargs["device"] = CPU
                return factory(*args, **kwargs)
            return make

        monkeypatch.setattr(torch.Tensor, "to", to)
        for name in ("rand", "zeros"):
            monkeypatch.setattr(torch, name, on_cpu(getattr(torch, name)))

    def _count(self, name: str) -> None:
        self.calls[name] += 1

    def _synchronize(self, device: object = None) -> None:
        self._count("sync")
        self.last_sync_ms = self.clock_ms

    def synced_after(self, at_ms: float) -> bool:
        """Whether a synchronize came after an event recorded at ``at_ms`` (events are read only then)."""
        return self.last_sync_ms >= at_ms

    def _reset(self, device: object = None) -> None:
        self._count("reset")
        self.peak = self.allocated

    def run_kernel(self, ms: float, workspace_bytes: int = 0) -> None:
        """A kernel: the clock advances, and ``workspace_bytes`` are allocated for its duration."""
        self.clock_ms += ms
        self.peak = max(self.peak, self.allocated + workspace_bytes)

    def allocate(self, nbytes: int) -> None:
        self.allocated += nbytes
        self.peak = max(self.peak, self.allocated)
