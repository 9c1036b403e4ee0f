"""Resolve oneMKL's vector-math kernels on one thread, once per process, before any model forward.

Why: ATen sends contiguous float32/float64 unary ops (``sqrt``, ``exp``, ``log``, ``tanh``, ``erf``, ...) to
oneMKL's vector-math library (VML), each intra-op thread calling it on its own chunk (``aten/src/ATen/cpu/vml.h``).
oneMKL picks a VML function's kernel lazily, on that function's first call in the process; with oneMKL 2024.2
(the torch 2.13 CPU wheel) several threads making that first call at once can leave one of them running a
low-accuracy kernel for its whole chunk (errors ~1e-4 relative in ``sqrt``; pytorch/pytorch#188792). Measured
here on LGVAN (2 threads, a loaded machine): in about 1 process in 4-10 the first eager forward of the process
was 1.1e-4 (of the data range) from every later one. So the first image of an ntire2023/ntire2024 eval (no
warm-up), the first image of ``srbench upscale`` and profile's first forwards could move between runs.

The fix proposed for ATen (pytorch/pytorch#188791) makes one tiny call per VML function first; this does the
same from Python. The input has ``_ELEMENTS`` values, far below the 2048-element grain size of ATen's unary
kernels, so TensorIterator runs it inline on the calling thread and every dispatch resolves without
concurrency. Later calls compute exactly what they would have (the high-accuracy kernel every call asks for).

Called from :class:`sr_bench.models.LoadedModel` (every model srbench measures or returns is one), whatever the
device: it costs about 2.5 ms once per process (measured here; ~30 ms on a loaded machine) and a few microseconds
on every later call, and a build without MKL or with oneMKL >= 2025.0 just runs 32 small ops.
Measured with 2 threads and busy loops beside it: LGVAN's first forward differed from its second in 5 of 52 fresh
processes without the warm-up and in 0 of 62 with it.
"""

from __future__ import annotations

import threading

import torch

_OPEN_UNIT = (-0.9, 0.9)  # acos, asin, erfinv: defined on (-1, 1)
_POSITIVE = (0.1, 4.0)  # log, log10, log2, sqrt
_REAL = (-1.5, 1.5)  # everything else (tan: inside (-pi/2, pi/2))

# Every IMPLEMENT_VML_MKL(...) op of aten/src/ATen/cpu/vml.h as shipped with torch 2.13 (torch/include), with
# an input range inside its domain; expm1, log1p, abs, cosh and sinh are commented out there (no MKL call).
VML_OPS: dict[str, tuple[float, float]] = {
    "acos": _OPEN_UNIT,
    "asin": _OPEN_UNIT,
    "atan": _REAL,
    "cos": _REAL,
    "erf": _REAL,
    "erfc": _REAL,
    "erfinv": _OPEN_UNIT,
    "exp": _REAL,
    "log": _POSITIVE,
    "log10": _POSITIVE,
    "log2": _POSITIVE,
    "sin": _REAL,
    "sqrt": _POSITIVE,
    "tan": _REAL,
    "tanh": _REAL,
    "trunc": _REAL,
}
VML_DTYPES = (torch.float32, torch.float64)  # vml.h's MKL stubs: vms* (float) and vmd* (double)
_ELEMENTS = 64  # < 2048, the unary kernels' grain size: no parallel_for, one thread

_lock = threading.Lock()  # torch ops release the GIL: two Python threads could otherwise race the first calls
_done = False


def warm_up() -> None:
    """Call each VML-backed op once per dtype on a small tensor, on this thread; later calls return at once."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        for name, (low, high) in VML_OPS.items():
            op = getattr(torch, name)  # looked up per call, so a test can watch it
            for dtype in VML_DTYPES:
                op(torch.linspace(low, high, _ELEMENTS, dtype=dtype))
        _done = True
