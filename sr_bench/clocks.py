"""Clocks for one forward: CUDA events on the GPU (as the official harness times), ``perf_counter`` on the CPU.

    >>> out, ms = time_call(lambda: model(x), torch.device("cpu"))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

import torch

from sr_bench.errors import DeviceError

T = TypeVar("T")
ClockKind = Literal["cuda_event", "perf_counter"]


def require_cuda(device: torch.device) -> None:
    """Fail in one line when a CUDA device is asked for on a machine without CUDA, before torch fails deeper."""
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but torch.cuda.is_available() is False: use --device cpu")


def time_call(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """Run ``fn`` once and return (its output, milliseconds) with the right clock for ``device``.

    CUDA: events recorded around the call on the current stream, then a synchronize, so the time is the
    GPU's (as in the official harness). CPU: ``perf_counter`` around the call.
    """
    if device.type == "cuda":
        require_cuda(device)
        with torch.cuda.device(device):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            torch.cuda.synchronize(device)
        return out, float(start.elapsed_time(end))
    t0 = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t0) * 1e3


def clock_kind(device: torch.device) -> ClockKind:
    return "cuda_event" if device.type == "cuda" else "perf_counter"
