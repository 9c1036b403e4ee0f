"""``srbench profile``: complexity, runtime and memory of one model on a synthetic LR input.

The record keeps every convention and every raw sample; what the protocol names as the headline (e.g. the
``ntire2023`` hook FLOPs) is only a label, so one record can be rendered either way later.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from sr_bench import cpu_heap
from sr_bench.complexity import ComplexityReport, count_complexity
from sr_bench.env import environment
from sr_bench.errors import ModelSpecError
from sr_bench.execution import ExecRequest, check_protocol, parse_exec, prepare, resolve_exec, threads_notice
from sr_bench.gpu_conditions import GpuGuard
from sr_bench.memcheck import MemoryEstimator, check_profile_fits
from sr_bench.models import LoadedModel, check_output_shape
from sr_bench.protocols import get_protocol
from sr_bench.results import (
    SCHEMA_VERSION,
    CheckpointFacts,
    ExecInfo,
    ProfileRecord,
    split_measurement,
    stamp,
)
from sr_bench.timing import (
    RuntimeSpec,
    is_out_of_memory,
    measure_runtime,
    out_of_memory_error,
    pinned_threads,
)
from sr_bench.user_code import check_tensor, fault

SHAPE_CHECK_SIZE = 24  # side of the tiny input used to check the output shape before anything long runs


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
    record: ProfileRecord
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
    fn = prepare(model, mode, device, loaded.name)  # one converted copy (e.g. channels_last), counted and timed
    step("counting complexity")
    if device.type == "cpu":
        cpu_heap.use(mode.retain_heap)  # the counting forward allocates like any other
    t0 = time.perf_counter()
    try:
        with pinned_threads(mode.threads), _output_values(fn.module) as outputs:
            # counts depend on shapes only; the prepared layout just makes the counting forward faster
            complexity = count_complexity(fn.module, shape, by_layer_depth=request.by_layer_depth)
    except ModelSpecError as exc:  # the counter names every model failure; running out of memory is not the model's
        if exc.__cause__ is not None and is_out_of_memory(exc.__cause__):
            raise out_of_memory_error(device, shape) from exc.__cause__
        raise
    timings = {"complexity": time.perf_counter() - t0}
    output_warnings = _non_finite_warning(loaded.name, shape, outputs)
    runtime = None
    guard = GpuGuard(device)
    if request.runtime:
        step(f"timing {mode.label} on {device}")
        spec = RuntimeSpec(
            device=device, input_shape=shape, protocol=protocol.name, warmup=request.warmup,
            repeats=request.repeats, dtype=mode.dtype, threads=mode.threads, exec_mode=mode.label,
        )
        x = _synthetic(shape, loaded.data_range, device)
        t0 = time.perf_counter()
        runtime = measure_runtime(lambda: fn(x), spec, guard)  # the spec pins mode.threads
        timings["runtime"] = time.perf_counter() - t0

    warnings = loaded.warnings + output_warnings + list(complexity.warnings) + (runtime.warnings if runtime else [])
    warnings += guard.warnings
    runtime_ms, memory = split_measurement(runtime.to_dict()) if runtime else (None, None)
    counts = {k: v for k, v in complexity.to_dict().items() if k != "warnings"}  # the record has one warnings list
    record = ProfileRecord(
        kind="profile",
        schema_version=SCHEMA_VERSION,
        model=loaded.name,
        **loaded.model_facts(),  # the network's arguments and source file, beside its checkpoint
        scale=loaded.scale,
        data_range=loaded.data_range,
        input_size=list(request.size),
        batch=request.batch,
        device=str(device),
        protocol=protocol.name,
        protocol_description=protocol.description,
        flops_headline=protocol.flops_headline,
        exec=ExecInfo(**mode.to_dict(), threads_requested=request.threads, probe=probe),
        **counts,
        runtime_ms=runtime_ms,
        memory_mib=memory["peak_mib"] if memory else None,
        memory=memory,
        **guard.record_fields(),  # gpu_conditions (clocks, throttling, other processes) or None, and why
        checkpoint=CheckpointFacts(**loaded.checkpoint.to_dict()),
        shims=loaded.shims,  # CPU stand-ins for .cuda() in the model's code (sr_bench.user_code)
        published=published_check(loaded, request.size, request.batch, complexity),
        env=environment(device, checkpoint=loaded.checkpoint.to_dict(), threads=mode.threads),
        warnings=warnings,
        notices=[n for n in (threads_notice(request.threads, mode), (probe or {}).get("notice"), guard.notice) if n],
        profile_timings_s=timings,  # where srbench's own time went (complexity counting, timing loop)
    )
    return ProfileResult(stamp(record), complexity)


def _check_shape(loaded: LoadedModel, device: torch.device) -> None:
    """One tiny forward on a synthetic input first: a wrong --scale fails in a second, not after counting at
    256x256."""
    x = _synthetic((1, 3, SHAPE_CHECK_SIZE, SHAPE_CHECK_SIZE), loaded.data_range, device)
    try:
        with torch.inference_mode():
            out = loaded.module(x)
    except SystemExit as exc:
        raise fault(loaded.name, "forward", exc) from None
    except Exception:  # noqa: BLE001  (a model may need larger or window-multiple inputs; counting checks the real size)
        return
    check_output_shape(check_tensor(loaded.name, out), tuple(x.shape), loaded.scale, loaded.name)


@contextmanager
def _output_values(module: nn.Module) -> Iterator[list[tuple[int, int]]]:
    """(non-finite values, values) of ``module``'s output on each eager forward inside the block.

    The counting forwards run at the profiled size anyway (one of them always eager), so the output behind the
    reported numbers is checked without a forward of its own; a model may be finite on a tiny input and not on
    the real one. Traced forwards are left out: ops run in the hook would enter fvcore's trace and its counts.
    """
    seen: list[tuple[int, int]] = []

    def hook(_module: nn.Module, _args: object, out: object) -> None:
        if isinstance(out, torch.Tensor) and not torch.jit.is_tracing():
            seen.append((int((~torch.isfinite(out)).sum()), out.numel()))

    handle = module.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def _non_finite_warning(model: str, shape: tuple[int, ...], outputs: list[tuple[int, int]]) -> list[str]:
    """An output with NaN/Inf (broken weights or model) is a warning: its counts and times are not those of a
    working model."""
    bad, total = next(((b, n) for b, n in outputs if b), (0, 0))
    if not bad:
        return []
    size = "×".join(map(str, shape))
    return [f"{model}: the output on a synthetic {size} input has {bad:,} non-finite value(s) (NaN/Inf) of "
            f"{total:,}: the weights or the model are broken, so these numbers are not those of a working model"]


def _synthetic(shape: tuple[int, ...], data_range: float, device: torch.device) -> torch.Tensor:
    """The fixed ``torch.rand`` input (seed 0) scaled to the model's range: what profile counts and times."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(0)).mul_(data_range).to(device)


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
