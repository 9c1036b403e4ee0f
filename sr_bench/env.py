"""Environment facts stored with every record, so a number can be traced to the machine that produced it.

Runtime depends on the GPU (model, driver, persistence mode, clock and power limits), CUDA/cuDNN, CPU features
(AVX-512, AMX make bf16 fast or slow) and the thread count, so each record carries them; ``srbench env`` prints
the same block. Nothing here may fail a benchmark: a missing NVML library, no driver or an
unreadable ``/proc/cpuinfo`` gives ``None`` fields, never an exception. The static parts are read once per
process.

    >>> env = environment(torch.device("cpu"), threads=2)
    >>> env["torch"], env["cpu_model"], env["cpu_flags"]
"""

from __future__ import annotations

import copy
import os
import platform
import sys
from functools import lru_cache
from pathlib import Path

import torch

import sr_bench
from sr_bench.gpu_conditions import NvmlDevice

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # the ones that change CPU fp32/bf16 speed
_CPUINFO = Path("/proc/cpuinfo")
_MIB = 1024**2


def parse_cpuinfo(text: str) -> tuple[str | None, dict[str, bool] | None]:
    """(model name, {flag: present}) from ``/proc/cpuinfo`` text; None for what the text does not say."""
    model = flags = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip() or None
        elif key == "flags" and flags is None:
            present = set(value.split())
            flags = {flag: flag in present for flag in CPU_FLAGS}
        if model is not None and flags is not None:
            break
    return model, flags


def logical_cores() -> int:
    """Cores this process may run on (affinity-aware where the OS supports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@lru_cache(maxsize=1)
def _static() -> dict:
    """Facts that cannot change while the process runs."""
    try:
        model, flags = parse_cpuinfo(_CPUINFO.read_text())
    except OSError:
        model, flags = None, None
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "srbench_version": sr_bench.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "cpu_model": model or platform.processor() or None,
        "cpu_logical_cores": logical_cores(),
        "cpu_flags": flags,
    }


_NO_GPU = {  # every GPU key of a record, unknown
    "gpu_name": None, "gpu_driver": None, "gpu_memory_mib": None, "gpu_persistence_mode": None,
    "gpu_max_clocks_mhz": None, "gpu_application_clocks_mhz": None, "gpu_power_limit_w": None,
    "gpu_compute_capability": None, "gpu_info_source": None,
}


def _nvml_gpu(device: torch.device) -> dict:
    """Name, driver, memory, persistence mode, clock and power limits from NVML (``gpu_conditions.NvmlDevice``)."""
    with NvmlDevice.open(device) as nvml:
        facts = nvml.facts()
    if facts["gpu_name"] is None:
        raise RuntimeError("NVML gave no GPU name")
    return {**facts, "gpu_compute_capability": _capability(device), "gpu_info_source": "nvml"}


def _capability(device: torch.device) -> str | None:
    props = torch.cuda.get_device_properties(device)
    major, minor = getattr(props, "major", None), getattr(props, "minor", None)
    return None if major is None else f"{major}.{minor}"


def _torch_gpu(device: torch.device) -> dict:
    """Fallback without NVML: torch knows the name and memory, not the driver, clocks or power."""
    props = torch.cuda.get_device_properties(device)
    return {
        **_NO_GPU,
        "gpu_name": torch.cuda.get_device_name(device),
        "gpu_memory_mib": props.total_memory / _MIB,
        "gpu_compute_capability": _capability(device),
        "gpu_info_source": "torch",
    }


@lru_cache(maxsize=None)
def _gpu(device: torch.device) -> dict:
    """GPU facts for a CUDA device; all None for CPU or when nothing can be read."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return dict(_NO_GPU)
    for reader in (_nvml_gpu, _torch_gpu):
        try:
            return reader(device)
        except Exception:  # noqa: BLE001  (no library, no driver, old driver: all mean "unknown", never a failure)
            continue
    return dict(_NO_GPU)


def environment(device: torch.device, checkpoint: dict | None = None, threads: int | None = None) -> dict:
    """Everything a record needs to say where it was measured.

    ``threads`` is the count the measurement pinned (None: torch's current count). ``checkpoint`` is the
    checkpoint facts dict (path, sha256, verified...) and is stored as given.
    """
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    env = copy.deepcopy(_static())
    env.update(copy.deepcopy(_gpu(device)))
    env["device"] = str(device)
    env["torch_threads"] = threads if threads is not None else torch.get_num_threads()
    env["checkpoint"] = checkpoint
    return env
