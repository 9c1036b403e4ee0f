"""sr_bench.env: record facts, cached static parts, GPU facts via NVML / torch / nothing, never an exception."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

import sr_bench
from sr_bench import env as env_mod
from sr_bench.env import environment, parse_cpuinfo

CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    env_mod._static.cache_clear()
    env_mod._gpu.cache_clear()
    yield
    env_mod._static.cache_clear()
    env_mod._gpu.cache_clear()


def test_parse_cpuinfo() -> None:
    model, flags = parse_cpuinfo(CPUINFO)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert flags == {"avx2": True, "avx512f": True, "avx512_bf16": True, "amx_bf16": True}
    model, flags = parse_cpuinfo("model name\t: AMD EPYC\nflags\t: fpu avx2\n")
    assert model == "AMD EPYC" and flags == {"avx2": True, "avx512f": False, "avx512_bf16": False, "amx_bf16": False}
    assert parse_cpuinfo("processor\t: 0\n") == (None, None)  # e.g. an ARM cpuinfo: unknown, not "no flags"


def test_environment_on_cpu() -> None:
    env = environment(torch.device("cpu"), checkpoint={"sha256": "ab12", "verified": True}, threads=3)
    assert env["srbench_version"] == sr_bench.__version__
    assert env["torch"] == torch.__version__ and env["cuda"] == torch.version.cuda
    assert env["python"].count(".") == 2 and env["platform"]
    assert env["device"] == "cpu" and env["torch_threads"] == 3
    assert env["checkpoint"] == {"sha256": "ab12", "verified": True}
    assert env["cpu_logical_cores"] >= 1
    assert env["gpu_name"] is None and env["gpu_driver"] is None and env["gpu_memory_mib"] is None
    assert environment(torch.device("cpu"))["torch_threads"] == torch.get_num_threads()


def test_cached_facts_are_not_shared_with_callers() -> None:
    first = environment(torch.device("cpu"))
    first["torch"] = "changed"
    if first["cpu_flags"] is not None:
        first["cpu_flags"]["avx2"] = "changed"
    second = environment(torch.device("cpu"))
    assert second["torch"] == torch.__version__
    assert second["cpu_flags"] is None or second["cpu_flags"]["avx2"] != "changed"


def test_unreadable_cpuinfo_gives_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(env_mod, "_CPUINFO", tmp_path / "missing")
    monkeypatch.setattr(env_mod.platform, "processor", lambda: "")
    env = environment(torch.device("cpu"))
    assert env["cpu_model"] is None and env["cpu_flags"] is None


# ---------------------------------------------------------------------------------------------------------
# GPU facts, faked


class _Props:
    uuid = "1234-abcd"
    total_memory = 80 * 1024**3


def _fake_torch_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: _Props())
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100 (torch)")


def _fake_pynvml(fail: bool = False) -> types.ModuleType:
    nvml = types.ModuleType("pynvml")
    state = {"shutdown": 0}

    def init() -> None:
        if fail:
            raise RuntimeError("NVML Shared Library Not Found")

    def by_uuid(uuid: str) -> str:
        assert uuid == "GPU-1234-abcd"
        return "handle"

    nvml.nvmlInit = init
    nvml.nvmlShutdown = lambda: state.__setitem__("shutdown", state["shutdown"] + 1)
    nvml.nvmlDeviceGetHandleByUUID = by_uuid
    nvml.nvmlDeviceGetName = lambda handle: b"NVIDIA H100 80GB HBM3"  # old pynvml: bytes
    nvml.nvmlSystemGetDriverVersion = lambda: "550.54.15"
    nvml.nvmlDeviceGetMemoryInfo = lambda handle: types.SimpleNamespace(total=81559 * 1024**2)
    nvml.state = state
    return nvml


def test_gpu_facts_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_torch_cuda(monkeypatch)
    nvml = _fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    env = environment(torch.device("cuda"))
    assert env["device"] == "cuda:0"
    assert env["gpu_name"] == "NVIDIA H100 80GB HBM3" and env["gpu_driver"] == "550.54.15"
    assert env["gpu_memory_mib"] == 81559 and env["gpu_info_source"] == "nvml"
    assert nvml.state["shutdown"] == 1


@pytest.mark.parametrize("nvml", [None, _fake_pynvml(fail=True)], ids=["not-installed", "no-driver"])
def test_gpu_facts_fall_back_to_torch(monkeypatch: pytest.MonkeyPatch, nvml: types.ModuleType | None) -> None:
    _fake_torch_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)  # None makes `import pynvml` raise ImportError
    env = environment(torch.device("cuda", 0))
    assert env["gpu_name"] == "NVIDIA H100 (torch)" and env["gpu_driver"] is None
    assert env["gpu_memory_mib"] == 80 * 1024 and env["gpu_info_source"] == "torch"


def test_gpu_facts_never_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_torch_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", None)

    def broken(device: torch.device) -> None:
        raise RuntimeError("no CUDA driver")

    monkeypatch.setattr(torch.cuda, "get_device_properties", broken)
    env = environment(torch.device("cuda", 0))
    assert env["gpu_name"] is None and env["gpu_driver"] is None and env["gpu_memory_mib"] is None
