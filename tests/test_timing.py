"""sr_bench.timing with its clocks, protocols and peak_memory: device resolution, protocols as data,
spec/measurement split, warm-up, CPU and (faked) CUDA timing."""

from __future__ import annotations

import mmap
import statistics
import time
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import pytest
import torch

from sr_bench import peak_memory, timing
from sr_bench.clocks import time_call
from sr_bench.errors import DeviceError, UsageError
from sr_bench.protocols import PROTOCOLS
from sr_bench.timing import Measurement, RuntimeSpec, measure_runtime, resolve_device, warm_up

CPU = torch.device("cpu")
CUDA = torch.device("cuda", 0)


# ---------------------------------------------------------------------------------------------------------
# resolve_device


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, available: bool, count: int = 1) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_resolve_device_cpu_and_auto_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, available=False)
    assert resolve_device("cpu") == CPU
    assert resolve_device(" AUTO ") == CPU


def test_resolve_device_cuda_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, available=True, count=2)
    assert resolve_device("auto") == CUDA
    assert resolve_device("cuda") == CUDA
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_resolve_device_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, available=False)
    with pytest.raises(DeviceError, match=r"torch.cuda.is_available\(\) is False: use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="unknown device 'gpu': use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    _fake_cuda(monkeypatch, available=True, count=2)
    with pytest.raises(DeviceError, match=r"cuda:2 does not exist \(2 CUDA device\(s\) visible\): use cuda:0..cuda:1"):
        resolve_device("cuda:2")


# ---------------------------------------------------------------------------------------------------------
# Protocols and specs


@pytest.mark.parametrize("name, flops", [("ntire2023", "ntire2023"), ("ntire2024", "fvcore")])
def test_official_protocols_mirror_the_harness(name: str, flops: str) -> None:
    proto = PROTOCOLS[name]
    assert (proto.warmup, proto.warmup_max, proto.repeats) == (0, 0, 1)
    assert not proto.reset_peak_memory and not proto.cudnn_benchmark
    assert proto.forces_eager and proto.dtype == "fp32"
    assert proto.flops_headline == flops and not proto.flops_report_all
    assert proto.description


def test_robust_protocol_is_the_careful_default() -> None:
    proto = PROTOCOLS["robust"]
    assert proto.warmup > 0 and proto.warmup_max >= proto.warmup and proto.repeats > 1
    assert proto.reset_peak_memory and not proto.forces_eager and not proto.cudnn_benchmark
    assert proto.flops_headline == "fvcore" and proto.flops_report_all


def test_spec_takes_protocol_defaults_and_is_hashable() -> None:
    spec = RuntimeSpec(device=CPU, input_shape=[1, 3, 8, 8], protocol="ntire2023")
    assert (spec.warmup, spec.repeats, spec.input_shape) == (0, 1, (1, 3, 8, 8))
    assert spec == RuntimeSpec(device=CPU, input_shape=(1, 3, 8, 8), protocol="ntire2023")
    assert len({spec, RuntimeSpec(device=CPU, input_shape=(1, 3, 8, 8), protocol="ntire2023")}) == 1
    assert spec.to_dict()["device"] == "cpu" and spec.to_dict()["input_shape"] == [1, 3, 8, 8]


def test_spec_rejects_bad_combinations() -> None:
    with pytest.raises(UsageError, match="protocol ntire2024 measures eager fp32 only: drop --exec"):
        RuntimeSpec(device=CPU, input_shape=(1, 3, 8, 8), protocol="ntire2024", exec_mode="channels_last")
    with pytest.raises(UsageError, match="repeats must be >= 1"):
        RuntimeSpec(device=CPU, input_shape=(1, 3, 8, 8), repeats=0)
    with pytest.raises(UsageError, match="--threads must be >= 1"):
        RuntimeSpec(device=CPU, input_shape=(1, 3, 8, 8), threads=0)
    with pytest.raises(UsageError, match="unknown protocol 'ntire1999': use one of robust, ntire2023, ntire2024"):
        RuntimeSpec(device=CPU, input_shape=(1, 3, 8, 8), protocol="ntire1999")


# ---------------------------------------------------------------------------------------------------------
# Measurement statistics


def _measurement(samples: list[float]) -> Measurement:
    return Measurement(samples_ms=samples, peak_memory_mib=10.0, memory_kind="cpu_rss_peak", clock="perf_counter")


def test_statistics_match_references() -> None:
    samples = [12.0, 10.0, 11.0, 30.0, 10.5, 9.5, 10.2, 10.8]
    m = _measurement(samples)
    assert m.mean == pytest.approx(statistics.mean(samples))
    assert m.median == pytest.approx(statistics.median(samples))
    assert m.std == pytest.approx(statistics.stdev(samples))
    assert (m.min, m.max) == (9.5, 30.0)
    assert m.p90 == pytest.approx(np.percentile(samples, 90))
    assert m.iqr == pytest.approx(np.percentile(samples, 75) - np.percentile(samples, 25))


def test_single_sample_has_zero_spread_and_no_warning() -> None:
    m = _measurement([80.0])
    assert (m.std, m.iqr, m.warnings) == (0.0, 0.0, [])
    assert m.meets_confidence()


@pytest.mark.parametrize(
    "samples, expected",
    [
        ([10.0, 10.1, 10.2, 9.9, 10.0], None),
        ([10.7, 8.0, 10.0, 12.0, 9.3], "noisy: IQR is 14% of the median (> 10%)"),  # p25 = 9.3, p75 = 10.7
        ([15.0, 5.0, 10.0, 8.0, 12.0], "very noisy: IQR is 40% of the median (> 25%)"),
    ],
)
def test_noise_warning(samples: list[float], expected: str | None) -> None:
    m = _measurement(samples)
    if expected is None:
        assert m.warnings == [] and m.meets_confidence()
    else:
        assert len(m.warnings) == 1 and m.warnings[0].startswith(expected)
        assert not m.meets_confidence()


def test_to_dict_keeps_raw_samples() -> None:
    d = _measurement([3.0, 1.0, 2.0]).to_dict()
    assert d["samples"] == [3.0, 1.0, 2.0] and d["n"] == 3
    assert {"mean", "median", "std", "min", "max", "p90", "iqr", "peak_memory_mib", "memory_kind", "clock"} <= d.keys()
    assert d["median"] == 2.0


# ---------------------------------------------------------------------------------------------------------
# CPU measurement


def test_time_call_cpu_returns_output_and_ms() -> None:
    out, ms = time_call(lambda: torch.ones(2) * 3, CPU)
    assert torch.equal(out, torch.full((2,), 3.0)) and ms >= 0.0


def test_measure_runtime_cpu_counts_forwards_pins_threads_and_uses_inference_mode() -> None:
    seen: list[tuple[int, bool]] = []

    def fn() -> torch.Tensor:
        seen.append((torch.get_num_threads(), torch.is_inference_mode_enabled()))
        return torch.zeros(1)

    before = torch.get_num_threads()
    spec = RuntimeSpec(device=CPU, input_shape=(1, 3, 4, 4), protocol="ntire2023", threads=1, repeats=4)
    m = measure_runtime(fn, spec)
    assert len(seen) == 4 and m.warmup_ms == []  # the official protocol: no warm-up
    assert all(t == 1 and inf for t, inf in seen)
    assert torch.get_num_threads() == before
    assert m.clock == "perf_counter" and m.memory_kind == "cpu_rss_peak" and len(m.samples_ms) == 4


def test_measure_runtime_robust_warms_up_before_measuring() -> None:
    calls = []
    spec = RuntimeSpec(device=CPU, input_shape=(1, 3, 4, 4), warmup=2, repeats=3)
    m = measure_runtime(lambda: calls.append(1), spec)
    assert len(m.warmup_ms) >= 2 and len(calls) == len(m.warmup_ms) + 3


def _allocating_fn(mib: int, hold_s: float):
    """Touch ``mib`` MiB of fresh anonymous pages: an mmap, so no allocator can hand back already-resident memory."""

    def fn() -> int:
        size = mib * 1024 * 1024
        with mmap.mmap(-1, size) as block:
            for offset in range(0, size, mmap.PAGESIZE):
                block[offset] = 1
            time.sleep(hold_s)
            return block[0]

    return fn


def test_cpu_peak_memory_sees_an_allocation_inside_the_forward() -> None:
    spec = RuntimeSpec(device=CPU, input_shape=(1, 3, 4, 4), warmup=0, repeats=1)
    m = measure_runtime(_allocating_fn(64, 0.0), spec)
    assert m.peak_memory_mib - m.memory_baseline_mib >= 48
    assert m.memory_method


def test_cpu_peak_memory_sampler_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peak_memory, "_reset_vm_hwm", lambda: False)
    spec = RuntimeSpec(device=CPU, input_shape=(1, 3, 4, 4), warmup=0, repeats=1)
    m = measure_runtime(_allocating_fn(64, 0.3), spec)  # held long enough for a loaded machine to sample it
    assert m.memory_method == "process RSS sampled every 2 ms"
    assert m.peak_memory_mib - m.memory_baseline_mib >= 48


# ---------------------------------------------------------------------------------------------------------
# Warm-up policy (scripted clock)


def _scripted_clock(monkeypatch: pytest.MonkeyPatch, times: list[float]) -> list[float]:
    queue = list(times)
    monkeypatch.setattr(timing, "time_call", lambda fn, device: (fn(), queue.pop(0)))  # the name warm_up calls
    return queue


def test_warm_up_runs_until_two_forwards_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    _scripted_clock(monkeypatch, [900.0, 50.0, 20.0, 19.5, 19.4, 19.4])
    assert warm_up(lambda: None, CPU, PROTOCOLS["robust"], minimum=2) == [900.0, 50.0, 20.0, 19.5]


def test_warm_up_is_bounded_by_count_and_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    _scripted_clock(monkeypatch, [10.0, 20.0] * 50)
    proto = replace(PROTOCOLS["robust"], warmup_max=7)
    assert len(warm_up(lambda: None, CPU, proto, minimum=2)) == 7
    _scripted_clock(monkeypatch, [10.0, 20.0] * 50)
    assert len(warm_up(lambda: None, CPU, replace(proto, warmup_budget_s=0.0), minimum=2)) == 2


def test_no_warm_up_under_official_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    _scripted_clock(monkeypatch, [])
    assert warm_up(lambda: None, CPU, PROTOCOLS["ntire2023"]) == []


# ---------------------------------------------------------------------------------------------------------
# CUDA path with fakes


class _FakeEvent:
    clock = 0.0

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.at: float | None = None

    def record(self) -> None:
        _FakeEvent.clock += 7.0
        self.at = _FakeEvent.clock

    def elapsed_time(self, end: _FakeEvent) -> float:
        return end.at - self.at


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"sync": 0, "reset": 0, "empty_cache": 0}
    _fake_cuda(monkeypatch, available=True)
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    monkeypatch.setattr(torch.cuda, "device", lambda device: nullcontext())
    def count(name: str):
        return lambda device=None: calls.__setitem__(name, calls[name] + 1)

    monkeypatch.setattr(torch.cuda, "synchronize", count("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", count("reset"))
    monkeypatch.setattr(torch.cuda, "empty_cache", count("empty_cache"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2 * 1024**2)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 1114.5 * 1024**2)
    return calls


def test_cuda_measurement_uses_events_sync_and_max_allocated(
    fake_cuda: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    during: list[bool] = []

    def fn() -> torch.Tensor:
        during.append(torch.backends.cudnn.benchmark)
        _FakeEvent.clock += 5.0  # the "forward" takes 5 ms of GPU time between the two events
        return torch.zeros(1)

    spec = RuntimeSpec(device=CUDA, input_shape=(1, 3, 8, 8), warmup=0, repeats=3)
    m = measure_runtime(fn, spec)
    assert m.samples_ms == [12.0, 12.0, 12.0]  # 7 ms per record() + 5 ms forward
    assert m.clock == "cuda_event" and m.memory_kind == "cuda_max_allocated"
    assert (m.peak_memory_mib, m.memory_baseline_mib) == (1114.5, 2.0)
    assert fake_cuda["sync"] == 3 and fake_cuda["reset"] == 1  # robust: reset before the measured split
    assert during == [False] * 3 and torch.backends.cudnn.benchmark is True  # set per protocol, then restored


def test_cuda_official_protocol_never_resets_peak(fake_cuda: dict[str, int]) -> None:
    spec = RuntimeSpec(device=CUDA, input_shape=(1, 3, 8, 8), protocol="ntire2023")
    measure_runtime(lambda: torch.zeros(1), spec)
    assert fake_cuda["reset"] == 0


def test_cuda_out_of_memory_becomes_a_device_error(fake_cuda: dict[str, int]) -> None:
    def fn() -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    spec = RuntimeSpec(device=CUDA, input_shape=(1, 3, 256, 256), warmup=0, repeats=1)
    with pytest.raises(DeviceError, match=r"CUDA out of memory at input 1x3x256x256: use a smaller --size or --tile"):
        measure_runtime(fn, spec)
    assert fake_cuda["empty_cache"] == 1


def test_cuda_spec_without_cuda_is_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, available=False)
    spec = RuntimeSpec(device=CUDA, input_shape=(1, 3, 8, 8))
    with pytest.raises(DeviceError, match="use --device cpu"):
        measure_runtime(lambda: torch.zeros(1), spec)


def test_cpu_allocator_failure_becomes_a_device_error() -> None:
    def fn() -> torch.Tensor:
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1125899906842624 bytes")

    spec = RuntimeSpec(device=CPU, input_shape=(1, 3, 2040, 2040), warmup=0, repeats=1)
    with pytest.raises(DeviceError, match=r"CPU out of memory at input 1x3x2040x2040: use a smaller --size or --tile"):
        measure_runtime(fn, spec)


def test_other_runtime_errors_pass_through() -> None:
    def fn() -> torch.Tensor:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        measure_runtime(fn, RuntimeSpec(device=CPU, input_shape=(1, 3, 8, 8), warmup=0, repeats=1))
