"""Execution modes: how a model is run (memory format, dtype, torch.compile, threads), recorded with every number.

The same network runs faster on CPU when its weights and activations use the channels-last layout (oneDNN's
depthwise convolutions are slow on NCHW; measured here: LGVAN 2.0x, RFDN 1.6x at 1x3x256x256, outputs within
1e-6 of eager), and faster still in bf16 (LGVAN 4.4x, RFDN 3.8x, not exact). A mode is part of every measurement
spec and record, so a number always says how it was obtained. ``--exec auto`` picks the fastest *exact* mode:
on CPU, channels_last fp32 when a probe shows its output within 1e-5 (of the data range) of eager NCHW fp32,
else eager; on CUDA, the model as written. Reduced precision is never chosen automatically.

How reduced precision is applied (``dtype_method``):
- CPU (bf16): ``torch.autocast``. On LGVAN at 1x3x256x256 (channels_last, one measurement) it was both faster
  (0.34 s against 1.14 s with bf16 weights) and 4x closer to fp32 than casting the weights: autocast runs the
  convolutions in bf16, but ops that meet an fp32 parameter (residual scales, norm affines) promote to fp32, so
  the residual stream stays fp32.
- CUDA (fp16/bf16): the weights and input are cast (``model.half()`` style), the way efficient-SR entries that
  quote fp16 runtimes run, so the whole network runs in reduced precision. Not yet compared with autocast on a GPU.

    >>> request = parse_exec("auto")
    >>> mode, probe = resolve_exec(request, model, torch.device("cpu"), data_range=1.0)
    >>> fast = prepare(model, mode, torch.device("cpu"))
    >>> sr = fast(lr)          # the caller's `model` is left exactly as it was
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace
from typing import Literal

import torch
from torch import Tensor, nn

from sr_bench import cpu_heap
from sr_bench.env import logical_cores
from sr_bench.errors import SrBenchError, UsageError
from sr_bench.protocols import get_protocol
from sr_bench.user_code import call_model

MemoryFormat = Literal["contiguous", "channels_last"]
Dtype = Literal["fp32", "fp16", "bf16"]
DtypeMethod = Literal["autocast", "weights"]

TORCH_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
AUTO_TOLERANCE = 1e-5  # max |channels_last - eager| allowed for `auto`, as a fraction of the data range
DEFAULT_PROBE_SHAPE = (1, 3, 64, 64)


@dataclass(frozen=True)
class ExecMode:
    """One way of running a model; ``label`` names it in tables ("eager", "channels_last", "bf16+channels_last")."""

    memory_format: MemoryFormat = "contiguous"
    dtype: Dtype = "fp32"
    dtype_method: DtypeMethod | None = None  # None exactly when dtype is fp32
    compile: bool = False
    threads: int | None = None  # None: leave torch's thread count alone
    retain_heap: bool = False  # CPU: glibc keeps freed memory for reuse (see sr_bench.cpu_heap); same numbers

    def __post_init__(self) -> None:
        if (self.dtype == "fp32") != (self.dtype_method is None):
            raise ValueError(
                f"dtype_method must be None for fp32 and set otherwise, got {self.dtype}/{self.dtype_method}"
            )

    @property
    def label(self) -> str:
        parts = [self.dtype] if self.dtype != "fp32" else []
        parts += ["channels_last"] if self.memory_format == "channels_last" else []
        parts += ["compile"] if self.compile else []
        parts += ["retain_heap"] if self.retain_heap else []
        return "+".join(parts) or "eager"

    def to_dict(self) -> dict:
        return {"label": self.label, **asdict(self)}


EAGER = ExecMode()

# ---------------------------------------------------------------------------------------------------------
# Parsing --exec

_FLAGS = ("channels_last", "bf16", "fp16", "compile", "retain_heap")
_ALONE = ("auto", "eager")
_CHOICES = ", ".join(_ALONE + _FLAGS)


@dataclass(frozen=True)
class ExecRequest:
    """What ``--exec`` asked for, before the device and model are known."""

    auto: bool = False
    channels_last: bool = False
    dtype: Dtype = "fp32"
    compile: bool = False
    retain_heap: bool = False

    @property
    def text(self) -> str:
        return "auto" if self.auto else self.mode(torch.device("cpu")).label

    def mode(self, device: torch.device, threads: int | None = None) -> ExecMode:
        """The concrete mode on ``device`` (``auto`` needs a probe: use ``resolve_exec``)."""
        if self.auto:
            raise ValueError("an auto request has no fixed mode; use resolve_exec()")
        method: DtypeMethod | None = None
        if self.dtype != "fp32":
            method = "weights" if device.type == "cuda" else "autocast"
        return ExecMode(
            memory_format="channels_last" if self.channels_last else "contiguous",
            dtype=self.dtype,
            dtype_method=method,
            compile=self.compile,
            threads=threads,
            retain_heap=self.retain_heap,
        )


def parse_exec(text: str) -> ExecRequest:
    """Parse ``--exec``: one of auto/eager, or channels_last, bf16|fp16, compile and retain_heap joined by '+'.

    >>> parse_exec("channels_last+bf16").text
    'bf16+channels_last'
    """
    parts = [p.strip().lower() for p in text.split("+")]
    for part in parts:
        if part not in _ALONE + _FLAGS:
            raise UsageError(f"unknown --exec part {part!r}: choose from {_CHOICES}, combined with '+'")
    if len(parts) != len(set(parts)):
        raise UsageError(f"--exec {text!r} repeats a part: name each of {_CHOICES} at most once")
    if len(parts) > 1 and (alone := [p for p in parts if p in _ALONE]):
        raise UsageError(f"--exec {alone[0]} cannot be combined ('{text}'): use it alone or list the parts you want")
    if "bf16" in parts and "fp16" in parts:
        raise UsageError("--exec cannot use both bf16 and fp16: pick one")
    if parts == ["auto"]:
        return ExecRequest(auto=True)
    return ExecRequest(
        channels_last="channels_last" in parts,
        dtype="bf16" if "bf16" in parts else "fp16" if "fp16" in parts else "fp32",
        compile="compile" in parts,
        retain_heap="retain_heap" in parts,
    )


# ---------------------------------------------------------------------------------------------------------
# Applying a mode


class PreparedModel:
    """A model run in an execution mode; call it like the model (NCHW fp32 in, fp32 out).

    The caller's module is never changed: channels_last and weight casts convert parameters in place, so they are
    applied to a deep copy (efficient-SR models are well under 100 MB, so the copy is cheap), and torch.compile
    wraps without mutating. Inputs are converted per call, and that conversion is part of what gets timed.
    """

    def __init__(self, model: nn.Module, mode: ExecMode, device: torch.device, name: str | None = None) -> None:
        self.name = name or type(model).__name__  # named in the error when the model's forward fails
        self.mode = mode
        self.device = device
        self._dtype = TORCH_DTYPES[mode.dtype]
        self.module = self._converted(model)
        self._forward: Callable[[Tensor], Tensor] = self.module
        if mode.compile:
            try:
                self._forward = torch.compile(self.module)
            except Exception as exc:  # noqa: BLE001  (torch.compile raises many types; all mean "not here")
                raise _compile_error(exc) from exc

    def _converted(self, model: nn.Module) -> nn.Module:
        cast_weights = self.mode.dtype_method == "weights"
        if self.mode.memory_format == "contiguous" and not cast_weights:
            return model
        module = copy.deepcopy(model)
        if cast_weights:
            module = module.to(dtype=self._dtype)
        if self.mode.memory_format == "channels_last":
            module = module.to(memory_format=torch.channels_last)
        return module

    def _autocast(self) -> AbstractContextManager[object]:
        if self.mode.dtype_method == "autocast":
            return torch.autocast(device_type=self.device.type, dtype=self._dtype)
        return nullcontext()

    def __call__(self, x: Tensor) -> Tensor:
        if self.device.type == "cpu":
            cpu_heap.use(self.mode.retain_heap)  # process-wide; re-asserted per call, as another mode may have run
        if self.mode.memory_format == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        if self.mode.dtype_method == "weights":
            x = x.to(self._dtype)
        with torch.inference_mode(), self._autocast():
            y = call_model(self.name, self._compiled_forward, x)
        return y.float()

    def _compiled_forward(self, x: Tensor) -> object:
        try:
            return self._forward(x)
        except Exception as exc:  # noqa: BLE001  (compilation happens lazily, on the first calls)
            if not self.mode.compile or isinstance(exc, (torch.OutOfMemoryError, SrBenchError)):
                raise
            raise _compile_error(exc) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _compile_error(exc: BaseException) -> SrBenchError:
    return SrBenchError(
        f"torch.compile failed for this model ({type(exc).__name__}: {_first_line(exc)}): drop 'compile' from --exec"
    )


def _check_device(mode: ExecMode, device: torch.device) -> None:
    if mode.dtype == "fp16" and device.type == "cpu":
        raise UsageError("--exec fp16 needs CUDA; on CPU use bf16")
    if mode.retain_heap and device.type != "cpu":
        raise UsageError("--exec retain_heap tunes the CPU heap; drop it for CUDA runs (PyTorch caches GPU memory)")
    if mode.retain_heap and not cpu_heap.available():
        raise UsageError("--exec retain_heap needs glibc (Linux); drop it on this system")


def prepare(model: nn.Module, mode: ExecMode, device: torch.device, name: str | None = None) -> PreparedModel:
    """Apply ``mode`` to ``model`` (already on ``device``, in eval mode) without changing ``model``; ``name`` is
    what a failing forward's error calls the model."""
    _check_device(mode, device)
    return PreparedModel(model, mode, device, name)


# ---------------------------------------------------------------------------------------------------------
# Choosing a mode

# per model object (weakly held, so a freed model's id can't be mistaken for a new one) -> probe results
_AUTO_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple, tuple[ExecMode, dict]]] = weakref.WeakKeyDictionary()


def default_threads() -> int:
    """All cores this process may use: srbench's default, so runs on the same machine compare."""
    return logical_cores()


def threads_notice(requested: int | None, mode: ExecMode) -> str | None:
    """The line telling the user ``--threads`` was lowered to the cores present (None when it ran as asked)."""
    if requested is None or mode.threads is None or requested <= mode.threads:
        return None
    return f"--threads {requested} is more than the {mode.threads} core(s) this process may use: ran with {mode.threads}"


def _probe_input(shape: tuple[int, ...], data_range: float, device: torch.device) -> Tensor:
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(shape, generator=generator) * data_range).to(device)


def _probe_channels_last(
    model: nn.Module, device: torch.device, shape: tuple[int, ...], data_range: float
) -> tuple[ExecMode, dict]:
    """Run eager and channels_last on one deterministic input and keep channels_last only if it is exact.

    Each mode is compared on its second forward: the first forward of a process can be off. Measured on LGVAN
    (torch 2.13 CPU wheel, oneMKL 2024.2, 2 threads, a loaded machine): in about 1 process in 10 the first eager
    forward was 1.1e-4 from every later one (channels_last is 1.2e-6 from eager), so ``auto`` flipped to eager.
    The cause is oneMKL's vector-math library, which ATen calls for ``torch.sqrt`` and other float unary ops:
    it picks each function's kernel on that function's first call, and when the intra-op threads make that
    call at the same time one of them can run a low-accuracy kernel for its whole chunk (pytorch/pytorch#188792).
    Later calls are exact. srbench now resolves those kernels on one thread before any forward
    (:mod:`sr_bench.vml_warmup`, called when a LoadedModel is made), so the first forward should already be exact;
    the discarded forward per mode stays as cheap insurance (a model passed here directly, another library's
    first-call effects), so the decision is the same in every process.
    """
    channels_last = ExecMode(memory_format="channels_last")
    x = _probe_input(shape, data_range, device)
    probe: dict = {
        "probe_shape": list(shape), "data_range": data_range, "tolerance": AUTO_TOLERANCE, "max_abs_diff": None,
    }
    try:
        with torch.inference_mode():
            call_model(type(model).__name__, model, x)
            reference = call_model(type(model).__name__, model, x).float()
    except Exception as exc:  # noqa: BLE001  (e.g. a model that needs larger or window-multiple inputs)
        size = "x".join(map(str, shape[2:]))
        return EAGER, {**probe, "chosen": "eager", "reason": f"the {size} probe input fails ({_first_line(exc)})"}
    try:
        fast = prepare(model, channels_last, device)
        fast(x)
        candidate = fast(x)
    except Exception as exc:  # noqa: BLE001  (a .view() needing NCHW memory, a model overriding .to(), ...)
        reason = f"channels_last fails on this model ({type(exc).__name__}: {_first_line(exc)}); running eager"
        return EAGER, {**probe, "chosen": "eager", "reason": reason, "notice": f"--exec auto: {reason}"}
    if candidate.shape != reference.shape:
        return EAGER, {**probe, "chosen": "eager", "reason": "channels_last changes the output shape"}
    diff = float((candidate - reference).abs().max())
    probe["max_abs_diff"] = diff
    relative = diff / data_range
    measured = f"max |diff| {relative:.1e} of the data range"
    if relative <= AUTO_TOLERANCE:  # False for NaN too
        reason = f"channels_last matches eager fp32 ({measured} <= {AUTO_TOLERANCE:.0e})"
        return channels_last, {**probe, "chosen": channels_last.label, "reason": reason}
    reason = f"channels_last deviates from eager fp32 ({measured} > {AUTO_TOLERANCE:.0e})"
    return EAGER, {**probe, "chosen": "eager", "reason": reason}


def resolve_auto(
    model: nn.Module,
    device: torch.device,
    probe_shape: tuple[int, ...] = DEFAULT_PROBE_SHAPE,
    data_range: float = 1.0,
    threads: int | None = None,
) -> tuple[ExecMode, dict]:
    """The mode ``--exec auto`` runs, and the probe facts for the record (max_abs_diff, chosen, reason).

    CPU: channels_last fp32 when exact within ``AUTO_TOLERANCE`` of the data range, else eager; plus the
    retained heap where glibc offers it (bit-identical outputs, no page faults for large activations). CUDA: eager
    (the model as written; cuDNN already picks layouts). Cached per (model object, device, probe shape, data range).
    """
    if device.type == "cuda":
        probe = {"probe_shape": None, "data_range": data_range, "tolerance": AUTO_TOLERANCE, "max_abs_diff": None,
                 "chosen": "eager", "reason": "CUDA: the model runs as written"}
        return replace(EAGER, threads=threads), probe
    key = (str(device), tuple(probe_shape), float(data_range))
    per_model = _AUTO_CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = _probe_channels_last(model, device, tuple(probe_shape), data_range)
    mode, probe = per_model[key]
    retain = cpu_heap.available()
    heap = "retained (glibc keeps freed memory; bit-identical)" if retain else "system (no glibc)"
    return replace(mode, threads=threads, retain_heap=retain), {**probe, "heap": heap}


def check_protocol(request: ExecRequest, protocol: str) -> bool:
    """True when ``protocol`` fixes the mode (official protocols: eager fp32); a request it forbids is a UsageError.

    ``auto`` and ``eager`` are accepted there and mean the model as written.
    """
    if not get_protocol(protocol).forces_eager:
        return False
    if request.auto or request == ExecRequest():
        return True
    raise UsageError(f"protocol {protocol} measures eager fp32 only: drop --exec {request.text} or use --protocol robust")


def resolve_exec(
    request: ExecRequest,
    model: nn.Module,
    device: torch.device,
    *,
    protocol: str = "robust",
    threads: int | None = None,
    data_range: float = 1.0,
) -> tuple[ExecMode, dict | None]:
    """The concrete mode for a request (threads default to all cores and never exceed them), plus the auto probe
    when one ran.

    Named (official) protocols run eager fp32 only: ``auto`` becomes eager, anything else is a usage error.
    """
    threads = default_threads() if threads is None else threads
    if threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    threads = min(threads, default_threads())  # more threads than cores only oversubscribe: see threads_notice
    if check_protocol(request, protocol):
        return replace(EAGER, threads=threads), None
    if request.auto:
        return resolve_auto(model, device, data_range=data_range, threads=threads)
    mode = request.mode(device, threads)
    _check_device(mode, device)
    return mode, None
