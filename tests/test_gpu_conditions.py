"""sr_bench.gpu_conditions: the fair-timing guard, run against a fake NVML (``gpu_fakes.FakeNvml``; no GPU needed)."""

from __future__ import annotations

import sys
import threading
from dataclasses import replace

import pytest
import torch

from gpu_fakes import OWN, STEADY, FakeNvml
from sr_bench.gpu_conditions import GpuGuard, GpuProcess, GpuSample, NvmlDevice, reason_names, summarize

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


def sample(t: float = 0.0, sm: int | None = 1980, mem: int | None = 2619, reasons: int | None = 0, pstate: int | None = 0,
           processes: tuple[GpuProcess, ...] | None = (GpuProcess(OWN, "python", 812.0),)) -> GpuSample:
    return GpuSample(t_s=t, sm_clock_mhz=sm, mem_clock_mhz=mem, temperature_c=61, power_w=250.5, power_limit_w=700.0,
                     throttle_reasons=reasons, pstate=pstate, processes=processes)


# ---------------------------------------------------------------------------------------------------------
# Summaries and warnings


def test_clean_split_has_no_warnings_and_keeps_before_after_min_max() -> None:
    before, during, after = sample(0.0, sm=1980), [sample(0.1, sm=1965), sample(0.2, sm=1980)], sample(0.25, sm=1950)
    summary = summarize(before, during, after, own_pid=OWN)
    assert summary["warnings"] == []
    assert summary["before"]["sm_clock_mhz"] == 1980 and summary["after"]["sm_clock_mhz"] == 1950
    assert summary["min"]["sm_clock_mhz"] == 1950 and summary["max"]["sm_clock_mhz"] == 1980
    assert summary["min"]["power_w"] == 250.5 and summary["max"]["pstate"] == 0
    assert summary["reads"] == 4 and summary["duration_s"] == 0.25
    assert summary["other_processes"] == [] and summary["own_process_visible"] is True
    assert summary["throttle_reasons_seen"] == 0 and summary["throttle_reason_names_seen"] == []
    assert summary["before"]["processes"] == [{"pid": OWN, "name": "python", "memory_mib": 812.0}]


def test_a_clock_drop_over_ten_percent_warns_but_a_ramp_up_does_not() -> None:
    dropped = summarize(sample(sm=1980), [sample(sm=1980), sample(sm=1410)], sample(sm=1500), own_pid=OWN)
    assert dropped["warnings"] == [
        "GPU SM clock dropped 1980 -> 1410 MHz (-29%) during the timed split: the runtime is not what this GPU does "
        "at full speed"
    ]
    ramp = summarize(sample(sm=210), [sample(sm=1200), sample(sm=1980)], sample(sm=1980), own_pid=OWN)
    assert ramp["warnings"] == []  # idle clocks before a cold first forward are not a drop
    exactly_ten = summarize(sample(sm=2000), [], sample(sm=1800), own_pid=OWN)
    assert exactly_ten["warnings"] == []
    memory = summarize(sample(mem=2619), [], sample(mem=1593), own_pid=OWN)
    assert memory["warnings"] == ["GPU memory clock dropped 2619 -> 1593 MHz (-39%) during the timed split: the "
                                  "runtime is not what this GPU does at full speed"]


def test_thermal_or_power_reasons_warn_and_idle_does_not() -> None:
    hot = summarize(sample(reasons=0x1), [sample(reasons=0x20 | 0x1)], sample(reasons=0x4), own_pid=OWN)
    assert hot["throttle_reasons_seen"] == 0x25
    assert hot["throttle_reason_names_seen"] == ["gpu_idle", "sw_power_cap", "sw_thermal_slowdown"]
    assert hot["warnings"] == ["GPU throttled for heat or power during the timed split (sw_power_cap, "
                               "sw_thermal_slowdown): let it cool or check its power limit, then rerun"]
    idle = summarize(sample(reasons=0x1), [], sample(reasons=0x1 | 0x2 | 0x10), own_pid=OWN)
    assert idle["warnings"] == []


def test_reason_names() -> None:
    assert reason_names(0) == []
    assert reason_names(0x40 | 0x80 | 0x8) == ["hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"]
    assert reason_names(0x1000) == ["0x1000"]  # a bit newer than this table is still shown


def test_another_process_on_the_gpu_warns() -> None:
    other = (GpuProcess(OWN, "python", 812.0), GpuProcess(777, "train.py", 30_000.0))
    summary = summarize(sample(), [sample(processes=other)], sample(), own_pid=OWN)
    assert summary["other_processes"] == [{"pid": 777, "name": "train.py", "memory_mib": 30_000.0}]
    assert summary["warnings"] == ["other process(es) on the GPU during the timed split: pid 777 (train.py, 30000 "
                                   "MiB); they share the GPU with the timed forwards"]
    unknown = (GpuProcess(OWN, None, None), GpuProcess(9, None, None))
    assert "pid 9 (?, ? MiB)" in summarize(sample(processes=unknown), [], sample(), own_pid=OWN)["warnings"][0]


def test_in_a_pid_namespace_one_unknown_process_is_presumably_this_one() -> None:
    """A container lists host pids: srbench's own pid is absent, so only a second process is "another" one."""
    alone = (GpuProcess(91234, None, 812.0),)
    summary = summarize(sample(processes=alone), [], sample(processes=alone), own_pid=OWN)
    assert summary["warnings"] == [] and summary["own_process_visible"] is False
    two = (GpuProcess(91234, None, 812.0), GpuProcess(91300, None, 5000.0))
    summary = summarize(sample(processes=two), [], sample(processes=two), own_pid=OWN)
    assert len(summary["other_processes"]) == 2 and summary["warnings"][0].startswith("other process(es)")


def test_not_in_p0_during_the_split_warns_but_an_idle_start_does_not() -> None:
    capped = summarize(sample(pstate=0), [sample(pstate=2)], sample(pstate=2), own_pid=OWN)
    assert capped["warnings"] == ["GPU in performance state P2 during the timed split (P0 is maximum performance): "
                                  "its clocks may be capped; check nvidia-smi -q -d PERFORMANCE"]
    cold_start = summarize(sample(pstate=8), [], sample(pstate=0), own_pid=OWN)
    assert cold_start["warnings"] == [] and cold_start["max"]["pstate"] == 8


def test_fields_nvml_cannot_read_stay_none_and_never_warn() -> None:
    blank = sample(sm=None, mem=None, reasons=None, pstate=None, processes=None)
    summary = summarize(blank, [blank], blank, own_pid=OWN)
    assert summary["warnings"] == []
    assert summary["min"]["sm_clock_mhz"] is None and summary["throttle_reasons_seen"] is None
    assert summary["before"]["throttle_reason_names"] is None and summary["before"]["processes"] is None


# ---------------------------------------------------------------------------------------------------------
# NvmlDevice against a fake pynvml


def test_nvml_read_converts_units_and_names() -> None:
    fake = FakeNvml([STEADY])
    read = NvmlDevice(fake, "handle").read(0.5)
    assert read == GpuSample(t_s=0.5, sm_clock_mhz=1980, mem_clock_mhz=3201, temperature_c=55, power_w=312.4,
                             power_limit_w=700.0, throttle_reasons=0, pstate=0,
                             processes=(GpuProcess(OWN, "python", 812.0),))


def test_nvml_read_leaves_unsupported_fields_none_and_uses_the_old_reason_call() -> None:
    fake = FakeNvml([{"sm": 1410, "reasons": 0x8, "procs": [(OWN, None), (55, 1024**3)]}], old_driver=True)
    read = NvmlDevice(fake, "handle").read()
    assert (read.sm_clock_mhz, read.mem_clock_mhz, read.temperature_c, read.power_w, read.pstate) == (
        1410, None, None, None, None)
    assert read.throttle_reasons == 0x8  # from nvmlDeviceGetCurrentClocksThrottleReasons
    assert read.processes == (GpuProcess(OWN, "python", None), GpuProcess(55, None, 1024.0))


def test_nvml_facts() -> None:
    facts = NvmlDevice(FakeNvml([STEADY]), "handle").facts()
    assert facts == {
        "gpu_name": "NVIDIA H200", "gpu_driver": "570.86.15", "gpu_memory_mib": 143771.0,
        "gpu_persistence_mode": True, "gpu_max_clocks_mhz": {"sm": 1980, "mem": 3201},
        "gpu_application_clocks_mhz": {"sm": None, "mem": None}, "gpu_power_limit_w": 700.0,
    }


class _Props:
    uuid = "1234-abcd"


def test_open_finds_the_gpu_by_uuid_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([STEADY])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: _Props())
    with NvmlDevice.open(CUDA) as nvml:
        assert nvml.handle == "handle" and fake.inits == 1
    assert fake.shutdowns == 1


def test_open_shuts_nvml_down_when_the_gpu_is_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([STEADY])
    monkeypatch.setitem(sys.modules, "pynvml", fake)

    def no_gpu(device: torch.device) -> None:
        raise RuntimeError("no CUDA GPUs are available")

    monkeypatch.setattr(torch.cuda, "get_device_properties", no_gpu)
    with pytest.raises(RuntimeError, match="no CUDA GPUs"):
        NvmlDevice.open(CUDA)
    assert (fake.inits, fake.shutdowns) == (1, 1)


# ---------------------------------------------------------------------------------------------------------
# The guard around a split


def test_guard_on_cpu_is_null_with_the_reason() -> None:
    guard = GpuGuard(CPU, opener=lambda device: pytest.fail("NVML must not be opened for a CPU run"))
    with guard.split():
        pass
    assert guard.record_fields() == {"gpu_conditions": None,
                                     "gpu_conditions_reason": "CPU run: there are no GPU clocks or processes to watch"}
    assert guard.warnings == [] and guard.notice is None


def test_guard_that_never_ran_says_nothing_was_timed() -> None:
    guard = GpuGuard(CUDA)
    assert guard.record_fields()["gpu_conditions_reason"] == "nothing was timed, so no GPU conditions were read"
    assert guard.notice is None


def test_guard_without_nvml_is_null_with_one_notice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([STEADY], fail_init=True))
    guard = GpuGuard(CUDA)  # the real opener, meeting a machine whose NVML library is missing
    with guard.split():
        pass
    fields = guard.record_fields()
    assert fields["gpu_conditions"] is None
    assert fields["gpu_conditions_reason"] == (
        "NVML unavailable (NVMLError: NVML Shared Library Not Found): GPU clocks, throttling and other processes "
        "were not checked during timing"
    )
    assert guard.notice == fields["gpu_conditions_reason"] and guard.warnings == []


def test_guard_samples_during_the_split_and_catches_a_dip() -> None:
    """The sampler thread reads while the block runs: a throttled read in the middle reaches min and the warning."""
    hot = dict(STEADY, sm=1500, temp=87, reasons=0x40, power_mw=700_000)
    fake = FakeNvml([STEADY, hot, STEADY])
    guard = GpuGuard(CUDA, interval_s=0.001, opener=lambda device: NvmlDevice(fake, "handle"))
    with guard.split():
        while fake.reads < 4:  # before + at least three samples by the thread
            fake.read_event.wait(1.0)
            fake.read_event.clear()
    summary = guard.record_fields()["gpu_conditions"]
    assert summary["reads"] == fake.reads and summary["reads"] >= 5  # + the read after
    assert summary["min"]["sm_clock_mhz"] == 1500 and summary["max"]["temperature_c"] == 87
    assert summary["max"]["power_w"] == 700.0
    assert summary["before"]["sm_clock_mhz"] == 1980 and summary["after"]["sm_clock_mhz"] == 1980
    assert guard.warnings == [
        "GPU SM clock dropped 1980 -> 1500 MHz (-24%) during the timed split: the runtime is not what this GPU "
        "does at full speed",
        "GPU throttled for heat or power during the timed split (hw_thermal_slowdown): let it cool or check its "
        "power limit, then rerun",
    ]
    assert fake.shutdowns == 1 and guard.notice is None and guard.record_fields()["gpu_conditions_reason"] is None


def test_guard_stops_its_thread_and_closes_nvml_when_the_split_fails() -> None:
    fake = FakeNvml([STEADY])
    guard = GpuGuard(CUDA, interval_s=0.001, opener=lambda device: NvmlDevice(fake, "handle"))
    with pytest.raises(ValueError, match="model fault"), guard.split():
        raise ValueError("model fault")
    assert fake.shutdowns == 1
    assert not any(t.name == "srbench-gpu-guard" for t in threading.enumerate())
    assert guard.record_fields()["gpu_conditions"] is None


def test_a_guard_watches_one_split() -> None:
    guard = GpuGuard(CPU)
    with guard.split():
        pass
    with pytest.raises(RuntimeError, match="one split"), guard.split():
        pass


def test_sample_dict_round_trip() -> None:
    read = replace(sample(reasons=0x24), processes=())
    assert read.to_dict()["throttle_reason_names"] == ["sw_power_cap", "sw_thermal_slowdown"]
    assert read.to_dict()["processes"] == []
