"""``srbench env``: the record's env block plus one NVML read of the GPU now; faked CUDA/NVML via ``gpu_fakes``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from gpu_fakes import MIB, OWN, STEADY, FakeCuda, FakeNvml
from sr_bench.cli.app import app
from sr_bench.env import _gpu, environment


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(autouse=True)
def _fresh_gpu_facts() -> None:
    _gpu.cache_clear()
    yield
    _gpu.cache_clear()


class _Props:
    uuid = "1234-abcd"
    major, minor = 9, 0
    total_memory = 143771 * MIB


def test_env_json_on_cpu_is_the_record_block() -> None:
    result = run("env", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    record_env = environment(torch.device("cpu"))
    assert set(facts) == (set(record_env) - {"checkpoint"}) | {"gpu_now", "gpu_now_reason"}
    assert facts["torch"] == torch.__version__ and facts["device"] == "cpu" and facts["gpu_name"] is None
    assert facts["gpu_now"] is None and facts["gpu_now_reason"] == "CPU: there is no GPU to read"


def test_env_table_on_cpu_shows_every_value_whole() -> None:
    result = run("env", "--device", "cpu")
    assert result.exit_code == 0, result.output
    text = "".join(result.stdout.split())  # values may fold over lines, but are never cut
    assert "".join(environment(torch.device("cpu"))["platform"].split()) in text
    assert torch.__version__ in text and "cpu_logical_cores" in text


def test_env_on_a_cuda_machine_reads_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeCuda(monkeypatch)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: _Props())
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([dict(STEADY, pstate=2, reasons=0x1)]))
    monkeypatch.setattr("os.getpid", lambda: OWN)
    facts = json.loads(run("env", "--json").stdout)  # --device auto picks the (fake) GPU
    assert facts["device"] == "cuda:0" and facts["gpu_name"] == "NVIDIA H200" and facts["gpu_driver"] == "570.86.15"
    assert facts["gpu_persistence_mode"] is True and facts["gpu_max_clocks_mhz"] == {"sm": 1980, "mem": 3201}
    now = facts["gpu_now"]
    assert (now["sm_clock_mhz"], now["pstate"], now["throttle_reason_names"]) == (1980, 2, ["gpu_idle"])
    assert now["processes"] == [{"pid": OWN, "name": "python", "memory_mib": 812.0}]
    table = run("env").stdout
    assert "NVIDIA H200" in table and "GPU now" in table and "gpu_idle" in table


def test_env_on_cuda_without_nvml_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeCuda(monkeypatch)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: _Props())
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200 (torch)")
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([STEADY], fail_init=True))
    result = run("env", "--device", "cuda")
    assert result.exit_code == 0
    assert "NVIDIA H200 (torch)" in result.stdout
    assert result.stderr.strip() == "Note: NVML unavailable (NVMLError: NVML Shared Library Not Found)"


def test_env_cuda_without_cuda_is_one_error_line() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")  # never taken in CI; the gpu tests cover a GPU machine
    result = run("env", "--device", "cuda")
    assert result.exit_code != 0
    assert result.stderr.strip() == "Error: CUDA was requested but torch.cuda.is_available() is False: use --device cpu"


def test_the_command_module_imports_neither_torch_nor_pynvml() -> None:
    code = "import sys, sr_bench.cli.env, sr_bench.gpu_conditions; print('torch' in sys.modules, 'pynvml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
