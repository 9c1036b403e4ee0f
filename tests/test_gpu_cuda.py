"""The real CUDA paths, on a real GPU (``gpu`` marker): skipped with the reason where torch sees no CUDA device.

What the faked tests (``test_gpu_fakes.py``) cannot prove: that events time a forward, that
``max_memory_allocated`` with resets gives the peak of one split, that fp16 weights run, that the guard reads
NVML for real, and that the eval loop's CUDA branch gives the CPU's PSNR. ``benchmarks/gpu_check.sh`` runs
these too.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from sr_bench.clocks import time_call
from sr_bench.datasets import custom_dataset
from sr_bench.evaluate import EvalOptions, evaluate
from sr_bench.execution import parse_exec, prepare, resolve_exec
from sr_bench.gpu_conditions import GpuGuard
from sr_bench.models import CheckpointInfo, LoadedModel
from sr_bench.timing import RuntimeSpec, measure_runtime
from sr_bench.zoo import ModelSpec

pytestmark = pytest.mark.gpu
MIB = 1024**2


@pytest.fixture
def cuda() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())


def _net(device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 48, 3, padding=1),
                         nn.PixelShuffle(4)).to(device).eval()


def test_events_time_the_gpu_work_not_the_launch(cuda: torch.device) -> None:
    """A kernel that spins ~10^8 cycles (tens of ms) returns at once on the host; the events still time it, within
    the host's wall time around the synchronized call (a missing synchronize would read ~0)."""
    torch.cuda._sleep(1000)  # wake the GPU
    t0 = time.perf_counter()
    _, ms = time_call(lambda: torch.cuda._sleep(100_000_000), cuda)
    wall = (time.perf_counter() - t0) * 1e3
    assert 0.5 * wall <= ms <= wall


def test_peak_memory_is_reset_per_split_under_robust_and_kept_under_official(cuda: torch.device) -> None:
    big, small = 256 * MIB, 16 * MIB

    def allocating(nbytes: int):
        return lambda: torch.empty(nbytes, dtype=torch.uint8, device=cuda)

    robust = RuntimeSpec(device=cuda, input_shape=(1,), warmup=0, repeats=2)
    assert measure_runtime(allocating(big), robust).peak_memory_mib >= big / MIB
    after = measure_runtime(allocating(small), robust)
    assert small / MIB <= after.peak_memory_mib < big / MIB  # reset: the big split does not leak into this one
    official = RuntimeSpec(device=cuda, input_shape=(1,), protocol="ntire2023")
    measure_runtime(allocating(big), official)
    assert measure_runtime(allocating(small), official).peak_memory_mib >= big / MIB  # never reset


def test_fp16_weights_run_and_stay_close_to_fp32(cuda: torch.device) -> None:
    model = _net(cuda)
    mode, _ = resolve_exec(parse_exec("fp16"), model, cuda)
    fast = prepare(model, mode, cuda)
    x = torch.rand(1, 3, 64, 64, device=cuda)
    with torch.inference_mode():
        reference = model(x)
    y = fast(x)
    assert next(fast.module.parameters()).dtype == torch.float16 and y.dtype == torch.float32
    assert 0 < float((y - reference).abs().max()) < 1e-2


def test_guard_reads_the_real_gpu(cuda: torch.device) -> None:
    guard = GpuGuard(cuda, interval_s=0.01)
    model, x = _net(cuda), torch.rand(1, 3, 128, 128, device=cuda)
    with guard.split(), torch.inference_mode():
        for _ in range(20):
            time_call(lambda: model(x), cuda)
    conditions = guard.record_fields()["gpu_conditions"]
    assert conditions is not None, guard.reason
    assert conditions["before"]["sm_clock_mhz"] > 0 and conditions["reads"] >= 2


def test_eval_on_cuda_matches_cpu_psnr(cuda: torch.device, tmp_path: Path) -> None:
    """The CUDA branch (metrics on the GPU, events, per-image peaks) gives the CPU's PSNR to 1e-3 dB in fp32."""
    rng = np.random.default_rng(0)
    (tmp_path / "hr").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (96, 80 + 8 * i, 3), dtype=np.uint8)).save(tmp_path / "hr" / f"{i}.png")
    records = {}
    for device in (torch.device("cpu"), cuda):
        model = _net(torch.device("cpu")).to(device)
        spec = ModelSpec(name="net", builder=lambda scale, **kw: model, scales=(4,), data_range=1.0)
        loaded = LoadedModel(model, spec, 4, 1.0, CheckpointInfo(None, None, None))
        options = EvalOptions(results_dir=tmp_path / "results", exec="eager")
        records[device.type] = evaluate(loaded, custom_dataset(tmp_path / "hr", None, 4), device, options).record
    cpu, gpu = records["cpu"], records["cuda"]
    for a, b in zip(cpu["images"], gpu["images"]):
        assert abs(a["psnr_rgb"] - b["psnr_rgb"]) <= 1e-3 and abs(a["ssim_rgb"] - b["ssim_rgb"]) <= 1e-5
    assert gpu["memory"]["kind"] == "cuda_max_allocated" and gpu["memory_mib"] > 0
    assert gpu["runtime_ms"]["clock"] == "cuda_event"
