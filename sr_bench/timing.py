"""Runtime: what to run (``RuntimeSpec``) and what happened (``Measurement``), and the loop between them.

The spec/measurement split follows ``torch.utils.benchmark``: a frozen, hashable spec says how a forward is
measured; the measurement keeps the raw per-forward samples and derives its statistics lazily, with a noise
warning stored on the result. How each protocol warms up, repeats and resets memory is data (``protocols``).

``measure_runtime`` runs the bounded warm-up, then the measured forwards, each timed by ``clocks.time_call``
(CUDA events or ``perf_counter``) inside one ``peak_memory.track_peak_memory`` block.

    >>> x = torch.rand(1, 3, 64, 64)
    >>> spec = RuntimeSpec(device=torch.device("cpu"), input_shape=tuple(x.shape), warmup=1, repeats=5)
    >>> m = measure_runtime(lambda: model(x), spec)
    >>> m.median, m.iqr, m.warnings   # ms, ms, [] unless IQR/median > 10%
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import torch

from sr_bench.clocks import ClockKind, clock_kind, require_cuda, time_call
from sr_bench.errors import DeviceError, UsageError
from sr_bench.peak_memory import MemoryKind, track_peak_memory
from sr_bench.protocols import PROTOCOLS, Protocol, get_protocol

if TYPE_CHECKING:
    from sr_bench.gpu_conditions import GpuGuard

NOISE_WARN = 0.10  # IQR/median above this stores a warning on the measurement
NOISE_SEVERE = 0.25  # ... and above this the wording says the median is unreliable
WARMUP_TOLERANCE = 0.05  # two consecutive warm-up forwards within 5% count as "stable"


# ---------------------------------------------------------------------------------------------------------
# Devices


def resolve_device(text: str) -> torch.device:
    """Turn ``--device`` text ("auto", "cpu", "cuda", "cuda:N") into a device that exists here.

    >>> resolve_device("auto")   # cuda when available, else cpu
    device(type='cpu')
    """
    value = text.strip().lower()
    if value == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    if value == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", value)
    if match is None:
        raise DeviceError(f"unknown device {text!r}: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but torch.cuda.is_available() is False: use --device cpu")
    index = int(match.group(1)) if match.group(1) is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(
            f"device cuda:{index} does not exist ({count} CUDA device(s) visible): use cuda:0..cuda:{count - 1}"
        )
    return torch.device("cuda", index)


# ---------------------------------------------------------------------------------------------------------
# Spec and measurement


@dataclass(frozen=True)
class RuntimeSpec:
    """What to run: hashable, so replicates of the same spec can be grouped.

    ``warmup``/``repeats`` default to the protocol's; named protocols only accept eager fp32.
    """

    device: torch.device
    input_shape: tuple[int, ...]
    protocol: str = "robust"
    warmup: int | None = None
    repeats: int | None = None
    dtype: str = "fp32"
    threads: int | None = None  # None: leave torch's thread count as it is
    exec_mode: str = "eager"  # the ExecMode label (see sr_bench.execution)

    def __post_init__(self) -> None:
        proto = get_protocol(self.protocol)
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        if self.warmup is None:
            object.__setattr__(self, "warmup", proto.warmup)
        if self.repeats is None:
            object.__setattr__(self, "repeats", proto.repeats)
        if self.repeats < 1 or self.warmup < 0:
            raise UsageError(f"repeats must be >= 1 and warm-up >= 0, got {self.repeats} and {self.warmup}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {self.threads}")
        if proto.forces_eager and (self.exec_mode != "eager" or self.dtype != proto.dtype):
            raise UsageError(
                f"protocol {proto.name} measures eager {proto.dtype} only: drop --exec or use --protocol robust"
            )

    @property
    def proto(self) -> Protocol:
        return PROTOCOLS[self.protocol]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["device"] = str(self.device)
        data["input_shape"] = list(self.input_shape)
        return data


@dataclass
class Measurement:
    """What happened: raw per-forward samples (ms) and peak memory; statistics derived lazily.

    Not frozen, because the derived statistics are cached. ``std`` is the sample standard deviation (0 for a
    single sample); percentiles interpolate linearly, like ``numpy.percentile``.
    """

    samples_ms: list[float]
    peak_memory_mib: float | None
    memory_kind: MemoryKind
    clock: ClockKind
    warmup_ms: list[float] = field(default_factory=list)
    memory_baseline_mib: float | None = None  # memory held just before the measured forwards
    memory_method: str = ""  # how the peak was read, for the record

    @cached_property
    def _array(self) -> np.ndarray:
        if not self.samples_ms:
            raise ValueError("a Measurement needs at least one sample")
        return np.asarray(self.samples_ms, dtype=np.float64)

    @cached_property
    def mean(self) -> float:
        return float(self._array.mean())

    @cached_property
    def median(self) -> float:
        return float(np.median(self._array))

    @cached_property
    def std(self) -> float:
        return float(self._array.std(ddof=1)) if self._array.size > 1 else 0.0

    @cached_property
    def min(self) -> float:
        return float(self._array.min())

    @cached_property
    def max(self) -> float:
        return float(self._array.max())

    @cached_property
    def p25(self) -> float:
        return float(np.percentile(self._array, 25))

    @cached_property
    def p75(self) -> float:
        return float(np.percentile(self._array, 75))

    @cached_property
    def p90(self) -> float:
        return float(np.percentile(self._array, 90))

    @cached_property
    def iqr(self) -> float:
        return self.p75 - self.p25

    @property
    def relative_iqr(self) -> float:
        return self.iqr / self.median if self.median > 0 else math.inf

    def meets_confidence(self, threshold: float = NOISE_WARN) -> bool:
        """True when the spread (IQR/median) is at most ``threshold``."""
        return self.relative_iqr <= threshold

    @cached_property
    def warnings(self) -> list[str]:
        """One-line warnings stored with the result (noise, as torch.utils.benchmark flags it)."""
        rel = self.relative_iqr
        if rel > NOISE_SEVERE:
            return [
                f"very noisy: IQR is {rel:.0%} of the median (> {NOISE_SEVERE:.0%}); the median is unreliable, "
                "rerun on an idle machine"
            ]
        if rel > NOISE_WARN:
            return [
                f"noisy: IQR is {rel:.0%} of the median (> {NOISE_WARN:.0%}); rerun on an idle machine or add repeats"
            ]
        return []

    def to_dict(self) -> dict:
        """The record form: raw samples kept, statistics in ms, unrounded."""
        return {
            "mean": self.mean,
            "median": self.median,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "p90": self.p90,
            "iqr": self.iqr,
            "n": len(self.samples_ms),
            "samples": list(self.samples_ms),
            "warmup_samples": list(self.warmup_ms),
            "clock": self.clock,
            "peak_memory_mib": self.peak_memory_mib,
            "memory_baseline_mib": self.memory_baseline_mib,
            "memory_kind": self.memory_kind,
            "memory_method": self.memory_method,
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------------------------------------
# Warm-up


def warm_up(
    fn: Callable[[], object], device: torch.device, protocol: Protocol, minimum: int | None = None
) -> list[float]:
    """Run the protocol's bounded warm-up and return its times (ms).

    At least ``minimum`` (default: the protocol's) forwards; then more while the last two disagree by more than
    5%, stopping at ``warmup_max`` forwards or once ``warmup_budget_s`` of warm-up has passed. The eval loop
    calls this for each new input shape.
    """
    minimum = protocol.warmup if minimum is None else minimum
    started = time.perf_counter()
    times = [time_call(fn, device)[1] for _ in range(minimum)]
    while minimum > 0 and len(times) < protocol.warmup_max and time.perf_counter() - started < protocol.warmup_budget_s:
        if len(times) >= 2 and abs(times[-1] - times[-2]) <= WARMUP_TOLERANCE * max(times[-2], 1e-9):
            break
        times.append(time_call(fn, device)[1])
    return times


# ---------------------------------------------------------------------------------------------------------
# Measuring


@contextmanager
def pinned_threads(threads: int | None) -> Iterator[None]:
    """Pin torch's intra-op thread count for the block and restore it after (None: leave it alone)."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """Set ``torch.backends.cudnn.benchmark`` for the block (protocols fix it) and restore it after."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA raises ``torch.OutOfMemoryError``; the CPU allocator a RuntimeError saying "can't allocate memory"."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def out_of_memory_error(
    device: torch.device, shape: tuple[int, ...], hint: str = "use a smaller --size or --tile"
) -> DeviceError:
    """The one-line error for running out of memory at input ``shape`` (freeing CUDA's cache first)."""
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    size = "x".join(str(s) for s in shape)
    return DeviceError(f"{device.type.upper()} out of memory at input {size}: {hint}")


def measure_runtime(fn: Callable[[], torch.Tensor], spec: RuntimeSpec, guard: GpuGuard | None = None) -> Measurement:
    """Warm up, then time ``spec.repeats`` forwards of ``fn`` under ``torch.inference_mode``.

    ``fn`` runs the model on an input already on ``spec.device``. Threads are pinned and ``cudnn.benchmark`` is
    set per protocol for the duration, then restored. Peak memory covers the measured forwards only (reset before
    them under ``robust``; accumulated since the last reset under official protocols, as the challenge reads it).
    ``guard`` (``sr_bench.gpu_conditions``) watches the GPU during the measured forwards, not the warm-up.
    """
    require_cuda(spec.device)
    proto = spec.proto
    try:
        with torch.inference_mode(), pinned_threads(spec.threads), cudnn_benchmark(proto.cudnn_benchmark):
            warm = warm_up(fn, spec.device, proto, minimum=spec.warmup)
            with track_peak_memory(spec.device, reset=proto.reset_peak_memory) as memory, \
                    (guard.split() if guard is not None else nullcontext()):
                samples = [time_call(fn, spec.device)[1] for _ in range(spec.repeats)]
    except RuntimeError as exc:
        if not is_out_of_memory(exc):
            raise
        raise out_of_memory_error(spec.device, spec.input_shape) from exc
    return Measurement(
        samples_ms=samples,
        peak_memory_mib=memory.peak_mib,
        memory_kind=memory.kind,
        clock=clock_kind(spec.device),
        warmup_ms=warm,
        memory_baseline_mib=memory.baseline_mib,
        memory_method=memory.method,
    )
