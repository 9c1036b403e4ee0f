"""Fair-timing guard: what the GPU was doing while a runtime was measured.

A CUDA runtime is only as good as the conditions it was measured in. The official harness records nothing about
them, and its own logs show one baseline varying by 13% between runs (NTIRE 2024's RLFN: 16.92 / 16.97 /
14.94 ms). So around every timed split on CUDA srbench reads, through NVML: SM and memory clocks, temperature,
power draw and limit, the clocks-event (throttle) reason bitmask, the performance state, and the other compute
processes on the same GPU (pid, name, memory). It reads once before the split, every ``SAMPLE_INTERVAL_S`` from
a background thread during it, and once after; the record keeps before / after / min / max and warns when

* an SM or memory clock fell by more than 10% below a clock read earlier in the split (a ramp-up from idle is
  not a drop),
* a thermal or power throttle reason was set,
* another process was using the GPU,
* the GPU was not in its maximum performance state (P0).

An NVML read is a few driver calls (well under a millisecond, none on the GPU's queues); the sampler thread holds
the GIL only between them, so it costs the timed forwards ~0.1% of one core at the default interval.

Without NVML (no library, no driver, a GPU NVML cannot see) the fields are null and ``reason`` says why; on CPU
they are null with the reason "CPU run". Nothing here ever fails a benchmark.

    >>> guard = GpuGuard(torch.device("cuda", 0))
    >>> with guard.split():
    ...     samples = [time_call(fn, device)[1] for _ in range(10)]
    >>> record.update(guard.record_fields())    # gpu_conditions, gpu_conditions_reason
    >>> record["warnings"] += guard.warnings
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

SAMPLE_INTERVAL_S = 0.1  # sampler period during a split
CLOCK_DROP_WARN = 0.10  # a clock more than 10% below an earlier read in the same split is a drop
MAX_PERFORMANCE_PSTATE = 0  # NVML P0
_MIB = 1024**2
_CLOCK_SM, _CLOCK_MEM = 1, 2  # NVML_CLOCK_SM, NVML_CLOCK_MEM
_TEMPERATURE_GPU = 0  # NVML_TEMPERATURE_GPU

# NVML clocks-event (throttle) reason bits that mean the GPU slowed itself down for heat or power.
THERMAL_POWER_REASONS: dict[int, str] = {
    0x04: "sw_power_cap",
    0x08: "hw_slowdown",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
}
# The other bits, named in the record but harmless for timing (idle, clocks set by the admin, sync boost, display).
OTHER_REASONS: dict[int, str] = {0x01: "gpu_idle", 0x02: "applications_clocks_setting", 0x10: "sync_boost",
                                 0x100: "display_clock_setting"}


def reason_names(mask: int) -> list[str]:
    """The names of the bits set in an NVML clocks-event reason mask (unknown bits as hex)."""
    known = THERMAL_POWER_REASONS | OTHER_REASONS
    return [known.get(1 << i, hex(1 << i)) for i in range(mask.bit_length()) if mask >> i & 1]


@dataclass(frozen=True)
class GpuProcess:
    """One compute process NVML lists on the GPU."""

    pid: int
    name: str | None
    memory_mib: float | None


@dataclass(frozen=True)
class GpuSample:
    """One NVML read; a field NVML cannot give on this GPU is None."""

    t_s: float  # seconds since the split started (before: 0)
    sm_clock_mhz: int | None
    mem_clock_mhz: int | None
    temperature_c: int | None
    power_w: float | None
    power_limit_w: float | None
    throttle_reasons: int | None  # clocks-event reason bitmask
    pstate: int | None  # 0 = maximum performance
    processes: tuple[GpuProcess, ...] | None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["throttle_reason_names"] = reason_names(self.throttle_reasons) if self.throttle_reasons is not None else None
        data["processes"] = None if self.processes is None else [asdict(p) for p in self.processes]
        return data


def _text(value: bytes | str) -> str:
    """Older pynvml releases return bytes, newer ones str."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _try(fn: Callable[..., Any] | None, *args: Any) -> Any:
    """One NVML call; None when this GPU or driver does not support it (NVMLError_NotSupported and the like)."""
    if fn is None:
        return None
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001  (every NVML error means "not known here")
        return None


class NvmlDevice:
    """An open NVML session on the GPU behind one CUDA device.

    The handle is found by the device's UUID (NVML numbers GPUs ignoring ``CUDA_VISIBLE_DEVICES``), by index when
    torch does not know the UUID. ``open`` raises when NVML cannot be used; ``close`` ends the session.
    """

    def __init__(self, nvml: Any, handle: Any) -> None:
        self.nvml = nvml
        self.handle = handle

    @classmethod
    def open(cls, device: Any) -> NvmlDevice:
        import pynvml
        import torch

        pynvml.nvmlInit()
        try:
            uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
            if uuid is not None:
                handle = pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
            else:
                handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        except BaseException:
            pynvml.nvmlShutdown()
            raise
        return cls(pynvml, handle)

    def close(self) -> None:
        _try(self.nvml.nvmlShutdown)

    def __enter__(self) -> NvmlDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, name: str, *args: Any) -> Any:
        return _try(getattr(self.nvml, name, None), self.handle, *args)

    def facts(self) -> dict:
        """What does not change during a run: name, driver, memory, persistence mode, clock limits, power limit."""
        memory = self._call("nvmlDeviceGetMemoryInfo")
        name = self._call("nvmlDeviceGetName")
        driver = _try(getattr(self.nvml, "nvmlSystemGetDriverVersion", None))
        persistence = self._call("nvmlDeviceGetPersistenceMode")
        limit = self._call("nvmlDeviceGetEnforcedPowerLimit")
        return {
            "gpu_name": None if name is None else _text(name),
            "gpu_driver": None if driver is None else _text(driver),
            "gpu_memory_mib": None if memory is None else memory.total / _MIB,
            "gpu_persistence_mode": None if persistence is None else bool(persistence),
            "gpu_max_clocks_mhz": {"sm": self._call("nvmlDeviceGetMaxClockInfo", _CLOCK_SM),
                                   "mem": self._call("nvmlDeviceGetMaxClockInfo", _CLOCK_MEM)},
            "gpu_application_clocks_mhz": {"sm": self._call("nvmlDeviceGetApplicationsClock", _CLOCK_SM),
                                           "mem": self._call("nvmlDeviceGetApplicationsClock", _CLOCK_MEM)},
            "gpu_power_limit_w": None if limit is None else limit / 1000,
        }

    def _processes(self) -> tuple[GpuProcess, ...] | None:
        listed = self._call("nvmlDeviceGetComputeRunningProcesses")
        if listed is None:
            return None
        processes = []
        for proc in listed:
            used = getattr(proc, "usedGpuMemory", None)
            name = _try(getattr(self.nvml, "nvmlSystemGetProcessName", None), proc.pid)
            processes.append(GpuProcess(int(proc.pid), None if name is None else _text(name),
                                        None if used is None else used / _MIB))
        return tuple(processes)

    def read(self, t_s: float = 0.0) -> GpuSample:
        """One sample of the conditions now."""
        reasons = self._call("nvmlDeviceGetCurrentClocksEventReasons")
        if reasons is None:  # drivers before 535 only have the older name
            reasons = self._call("nvmlDeviceGetCurrentClocksThrottleReasons")
        power = self._call("nvmlDeviceGetPowerUsage")
        limit = self._call("nvmlDeviceGetEnforcedPowerLimit")
        return GpuSample(
            t_s=t_s,
            sm_clock_mhz=self._call("nvmlDeviceGetClockInfo", _CLOCK_SM),
            mem_clock_mhz=self._call("nvmlDeviceGetClockInfo", _CLOCK_MEM),
            temperature_c=self._call("nvmlDeviceGetTemperature", _TEMPERATURE_GPU),
            power_w=None if power is None else power / 1000,
            power_limit_w=None if limit is None else limit / 1000,
            throttle_reasons=None if reasons is None else int(reasons),
            pstate=self._call("nvmlDeviceGetPerformanceState"),
            processes=self._processes(),
        )


# ---------------------------------------------------------------------------------------------------------
# Summarising a split


_RANGED = ("sm_clock_mhz", "mem_clock_mhz", "temperature_c", "power_w", "pstate")


def _largest_drop(values: Sequence[int | None]) -> tuple[float, int, int] | None:
    """(fraction, from, to) of the largest fall of a value below an earlier, higher one; None if it never fell."""
    best: tuple[float, int, int] | None = None
    peak: int | None = None
    for value in values:
        if value is None:
            continue
        if peak is not None and peak > 0 and value < peak:
            drop = (peak - value) / peak
            if best is None or drop > best[0]:
                best = (drop, peak, value)
        peak = value if peak is None else max(peak, value)
    return best


def _other_processes(reads: Sequence[GpuSample], own_pid: int) -> tuple[list[GpuProcess], bool]:
    """(processes other than this one, whether this process's pid was in NVML's list).

    In a container with its own PID namespace NVML lists host pids, so this process's pid never appears; then
    one of the listed processes is presumably this one and only a second one counts as "another process".
    """
    seen: dict[int, GpuProcess] = {}
    for read in reads:
        for proc in read.processes or ():
            old = seen.get(proc.pid)
            if old is None or (proc.memory_mib or 0) > (old.memory_mib or 0):
                seen[proc.pid] = proc
    own_visible = own_pid in seen
    others = [p for pid, p in sorted(seen.items()) if pid != own_pid]
    if not own_visible and others:
        others = others if len(others) > 1 else []
    return others, own_visible


def summarize(before: GpuSample, during: Sequence[GpuSample], after: GpuSample, own_pid: int | None = None) -> dict:
    """The record form of one split: before / after / min / max, what was seen, and the warnings.

    ``before`` may describe an idle GPU (an official protocol times its first forward cold), so the P-state is
    judged on the reads during and after the split only.
    """
    own_pid = os.getpid() if own_pid is None else own_pid
    reads = [before, *during, after]
    in_split = [*during, after]
    low, high = {}, {}
    for key in _RANGED:
        values = [getattr(r, key) for r in reads if getattr(r, key) is not None]
        low[key] = min(values) if values else None
        high[key] = max(values) if values else None
    masks = [r.throttle_reasons for r in reads if r.throttle_reasons is not None]
    union = 0
    for mask in masks:
        union |= mask
    others, own_visible = _other_processes(reads, own_pid)
    pstates = [r.pstate for r in in_split if r.pstate is not None]

    warnings = []
    for key, label in (("sm_clock_mhz", "SM clock"), ("mem_clock_mhz", "memory clock")):
        drop = _largest_drop([getattr(r, key) for r in reads])
        if drop is not None and drop[0] > CLOCK_DROP_WARN:
            warnings.append(f"GPU {label} dropped {drop[1]} -> {drop[2]} MHz (-{drop[0]:.0%}) during the timed split: "
                            "the runtime is not what this GPU does at full speed")
    heat = [name for bit, name in THERMAL_POWER_REASONS.items() if union & bit]
    if heat:
        warnings.append(f"GPU throttled for heat or power during the timed split ({', '.join(heat)}): "
                        "let it cool or check its power limit, then rerun")
    if others:
        listed = ", ".join(f"pid {p.pid} ({p.name or '?'}, "
                           f"{'?' if p.memory_mib is None else f'{p.memory_mib:.0f}'} MiB)" for p in others)
        warnings.append(f"other process(es) on the GPU during the timed split: {listed}; "
                        "they share the GPU with the timed forwards")
    if pstates and max(pstates) > MAX_PERFORMANCE_PSTATE:
        warnings.append(f"GPU in performance state P{max(pstates)} during the timed split (P0 is maximum "
                        "performance): its clocks may be capped; check nvidia-smi -q -d PERFORMANCE")
    return {
        "source": "nvml",
        "duration_s": after.t_s,
        "reads": len(reads),
        "interval_s": SAMPLE_INTERVAL_S,
        "before": before.to_dict(),
        "after": after.to_dict(),
        "min": low,
        "max": high,
        "throttle_reasons_seen": None if not masks else union,
        "throttle_reason_names_seen": None if not masks else reason_names(union),
        "other_processes": [asdict(p) for p in others],
        "own_process_visible": own_visible,
        "warnings": warnings,
    }


Opener = Callable[[Any], NvmlDevice]


def _unavailable(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return f"NVML unavailable ({type(exc).__name__}: {first})"


def read_now(device: Any, opener: Opener | None = None) -> tuple[dict | None, str | None]:
    """One read of the GPU's conditions now (for ``srbench env``), or (None, why not)."""
    if device.type != "cuda":
        return None, "CPU: there is no GPU to read"
    try:
        nvml = (opener or NvmlDevice.open)(device)
    except Exception as exc:  # noqa: BLE001  (same reasons as in GpuGuard.split)
        return None, _unavailable(exc)
    with nvml:
        return nvml.read().to_dict(), None


# ---------------------------------------------------------------------------------------------------------
# The guard


class _Sampler(threading.Thread):
    """Reads the GPU every ``interval_s`` until stopped."""

    def __init__(self, nvml: NvmlDevice, started: float, interval_s: float) -> None:
        super().__init__(name="srbench-gpu-guard", daemon=True)
        self._nvml = nvml
        self._t0 = started
        self._interval = interval_s
        self._stop_event = threading.Event()
        self.samples: list[GpuSample] = []

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            self.samples.append(self._nvml.read(time.perf_counter() - self._t0))

    def stop(self) -> list[GpuSample]:
        self._stop_event.set()
        self.join()
        return self.samples


class GpuGuard:
    """Watches one timed split on one device; afterwards ``record_fields()`` and ``warnings`` describe it.

    ``opener`` opens NVML for a device (tests pass a fake); a failure to open leaves the fields null with the
    reason. One guard watches one split.
    """

    def __init__(self, device: Any, *, interval_s: float = SAMPLE_INTERVAL_S, opener: Opener | None = None) -> None:
        self.device = device
        self.interval_s = interval_s
        self._opener = opener or NvmlDevice.open
        self.conditions: dict | None = None
        self.reason: str | None = (
            "CPU run: there are no GPU clocks or processes to watch" if device.type != "cuda"
            else "nothing was timed, so no GPU conditions were read"
        )
        self._used = False

    @property
    def warnings(self) -> list[str]:
        return list(self.conditions["warnings"]) if self.conditions else []

    @property
    def notice(self) -> str | None:
        """One line for the user when a CUDA split could not be watched (None on CPU or when it was)."""
        if self.device.type != "cuda" or self.conditions is not None or not self._used:
            return None
        return self.reason

    @contextmanager
    def split(self) -> Iterator[GpuGuard]:
        """Read before, sample during, read after the block (CUDA only; a no-op on CPU)."""
        if self._used:
            raise RuntimeError("a GpuGuard watches one split; make a new one")
        self._used = True
        if self.device.type != "cuda":
            yield self
            return
        try:
            nvml = self._opener(self.device)
        except Exception as exc:  # noqa: BLE001  (no library, no driver, a GPU NVML cannot see)
            self.reason = f"{_unavailable(exc)}: GPU clocks, throttling and other processes were not checked during timing"
            yield self
            return
        try:
            started = time.perf_counter()
            before = nvml.read(0.0)
            sampler = _Sampler(nvml, started, self.interval_s)
            sampler.start()
            try:
                yield self
            finally:
                during = sampler.stop()
            after = nvml.read(time.perf_counter() - started)
            self.conditions = summarize(before, during, after)
            self.reason = None
        finally:
            nvml.close()

    def record_fields(self) -> dict:
        """``gpu_conditions`` (the summary, or None) and ``gpu_conditions_reason`` (None when it was read)."""
        return {"gpu_conditions": self.conditions, "gpu_conditions_reason": self.reason}
