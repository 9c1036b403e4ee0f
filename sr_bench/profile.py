"""``srbench profile``: complexity, runtime and memory of one model on a synthetic LR input.

The record keeps every convention and every raw sample; what the protocol names as the headline (e.g. the
``ntire2023`` hook FLOPs) is only a label, so one record can be rendered either way later.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from sr_bench import cpu_heap
from sr_bench.complexity import ComplexityReport, count_complexity
from sr_bench.env import environment
from sr_bench.errors import UsageError
from sr_bench.execution import ExecRequest, check_protocol, parse_exec, prepare, resolve_exec
from sr_bench.memcheck import MemoryEstimator, check_profile_fits
from sr_bench.models import LoadedModel, check_output_shape
from sr_bench.results import stamp
from sr_bench.timing import RuntimeSpec, get_protocol, measure_runtime, out_of_memory_error, pinned_threads

SHAPE_CHECK_SIZE = 24  # side of the tiny input used to check the output shape before anything long runs
_SIZE = re.compile(r"^\s*(\d+)\s*(?:[x×,]\s*(\d+))?\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """``--size``: ``256`` (square) or ``HxW`` such as ``180x320`` (rows x columns, as tensors are shaped)."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"--size {text!r} is not a size: use N (square) or HxW, e.g. 256 or 180x320")
    h = int(match.group(1))
    w = int(match.group(2) or h)
    if h < 1 or w < 1:
        raise UsageError(f"--size must be positive, got {h}x{w}")
    return h, w


@dataclass(frozen=True)
class ProfileRequest:
    """What to measure; the device is already resolved."""

    device: torch.device
    size: tuple[int, int] = (256, 256)
    batch: int = 1
    protocol: str = "robust"
    exec_request: ExecRequest = field(default_factory=lambda: parse_exec("auto"))
    threads: int | None = None
    warmup: int | None = None
    repeats: int | None = None
    runtime: bool = True
    by_layer_depth: int | None = None

    def __post_init__(self) -> None:
        """Reject impossible combinations before a model is loaded or anything is counted."""
        check_protocol(self.exec_request, self.protocol)


@dataclass
class ProfileResult:
    record: dict
    complexity: ComplexityReport


def run_profile(
    loaded: LoadedModel, request: ProfileRequest, progress: Callable[[str], None] | None = None
) -> ProfileResult:
    """Count complexity, then time the model as the protocol says; return the record and the report."""
    step = progress or (lambda _msg: None)
    protocol = get_protocol(request.protocol)
    shape = (request.batch, 3, *request.size)
    model, device = loaded.module, request.device
    _check_shape(loaded, device)
    check_profile_fits(MemoryEstimator(model), shape, device, model=loaded.name)  # before any forward at full size

    mode, probe = resolve_exec(
        request.exec_request, model, device, protocol=protocol.name, threads=request.threads,
        data_range=loaded.data_range,
    )
    fn = prepare(model, mode, device)  # one converted copy (e.g. channels_last), counted and timed
    step("counting complexity")
    if device.type == "cpu":
        cpu_heap.use(mode.retain_heap)  # the counting forward allocates like any other
    t0 = time.perf_counter()
    try:
        with pinned_threads(mode.threads):
            # counts depend on shapes only; the prepared layout just makes the counting forward faster
            complexity = count_complexity(fn.module, shape, by_layer_depth=request.by_layer_depth)
    except torch.OutOfMemoryError as exc:
        raise out_of_memory_error(device, shape) from exc
    timings = {"complexity": time.perf_counter() - t0}
    runtime = None
    if request.runtime:
        step(f"timing {mode.label} on {device}")
        spec = RuntimeSpec(
            device=device, input_shape=shape, protocol=protocol.name, warmup=request.warmup,
            repeats=request.repeats, dtype=mode.dtype, threads=mode.threads, exec_mode=mode.label,
        )
        x = torch.rand(shape, generator=torch.Generator().manual_seed(0)).mul_(loaded.data_range).to(device)
        t0 = time.perf_counter()
        runtime = measure_runtime(lambda: fn(x), spec)  # the spec pins mode.threads
        timings["runtime"] = time.perf_counter() - t0

    warnings = loaded.warnings + list(complexity.warnings) + (runtime.warnings if runtime else [])
    record = {
        "kind": "profile",
        "model": loaded.name,
        "scale": loaded.scale,
        "data_range": loaded.data_range,
        "input_size": list(request.size),
        "batch": request.batch,
        "device": str(device),
        "protocol": protocol.name,
        "protocol_description": protocol.description,
        "flops_headline": protocol.flops_headline,
        "exec": {**mode.to_dict(), "probe": probe},
        **complexity.to_dict(),
        "runtime_ms": runtime.to_dict() if runtime else None,
        "memory_mib": runtime.peak_memory_mib if runtime else None,
        "memory_kind": runtime.memory_kind if runtime else None,
        "checkpoint": loaded.checkpoint.to_dict(),
        "published": published_check(loaded, request.size, request.batch, complexity),
        "env": environment(device, checkpoint=loaded.checkpoint.to_dict(), threads=mode.threads),
        "warnings": warnings,
        "profile_timings_s": timings,  # where srbench's own time went (complexity counting, timing loop)
    }
    return ProfileResult(stamp(record), complexity)


def _check_shape(loaded: LoadedModel, device: torch.device) -> None:
    """One tiny forward first: a wrong --scale fails in a second, not after counting at 256x256."""
    x = torch.zeros(1, 3, SHAPE_CHECK_SIZE, SHAPE_CHECK_SIZE, device=device)
    try:
        with torch.inference_mode():
            out = loaded.module(x)
    except Exception:  # noqa: BLE001  (a model may need larger or window-multiple inputs; counting checks the real size)
        return
    check_output_shape(out, tuple(x.shape), loaded.scale, loaded.name)


def published_check(
    loaded: LoadedModel, size: tuple[int, int], batch: int, complexity: ComplexityReport
) -> dict | None:
    """Compare the counts with the numbers published for this model (only meaningful at 256x256, batch 1)."""
    prefix = f"x{loaded.scale}/ntire2023/"
    ref = {k.removeprefix(prefix): v for k, v in loaded.spec.reference.items() if k.startswith(prefix)}
    if size != (256, 256) or batch != 1 or not ref:
        return None
    measured = {
        "params": complexity.params,
        "flops_hooks": complexity.flops.get("ntire2023"),
        "flops_fvcore": complexity.flops.get("fvcore"),
        "activations": complexity.activations,
        "num_conv": complexity.num_conv,
    }
    return {
        key: {"published": ref[key], "measured": value, "equal": value == ref[key]}
        for key, value in measured.items()
        if key in ref
    }
