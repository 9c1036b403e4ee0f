"""The boundary around code srbench does not own: a user's model file or a challenge repository.

Anything that code raises (any exception, ``sys.exit`` included) while it is imported, built, loaded or run is
the model's fault, so it is reported as one line naming the model, the phase and the exception, never as a bug
in srbench. Out-of-memory errors and srbench's own errors pass through unchanged: they have their own advice.

On a machine without CUDA, :func:`cpu_cuda_shims` lets code written for the GPU harness (``model.cuda()``,
``tensor.to("cuda")``, ``torch.load`` of GPU tensors) run on the CPU, scoped to the block and counted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from sr_bench.errors import ModelSpecError, SrBenchError
from sr_bench.timing import is_out_of_memory

Phase = Literal["import", "construct", "load", "after-load", "forward", "select_model"]


class ModelFault(ModelSpecError):
    """User code failed: the message names the model, the phase and the exception."""


def describe(exc: BaseException) -> str:
    """``Type: first line`` of an exception; ``sys.exit(N)`` is spelled out, as its text alone is just ``N``."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: the code called sys.exit({exc.code!r})"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def fault(model: str, phase: Phase, exc: BaseException, hint: str = "") -> ModelFault:
    more = f"; {hint}" if hint else ""
    return ModelFault(f"model {model} failed in {phase}: {describe(exc)} (an error in the model's code{more})")


@contextmanager
def model_phase(model: str, phase: Phase) -> Iterator[None]:
    """Run user code; any failure of its own becomes a :class:`ModelFault` naming ``model`` and ``phase``."""
    try:
        yield
    except (SrBenchError, KeyboardInterrupt):
        raise
    except RuntimeError as exc:  # torch.OutOfMemoryError included: the caller turns it into the --size/--tile advice
        if is_out_of_memory(exc):
            raise
        raise fault(model, phase, exc) from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001  (user code fails in arbitrary ways)
        raise fault(model, phase, exc) from None


def call_model(model: str, fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> torch.Tensor:
    """One forward of user code that must return a tensor; anything else is the model's fault."""
    with model_phase(model, "forward"):
        y = fn(x)
    return check_tensor(model, y)


def check_tensor(model: str, y: object) -> torch.Tensor:
    """A forward's result, refused unless it is a tensor (a tuple, dict or array would crash the metrics)."""
    if not isinstance(y, torch.Tensor):
        raise ModelFault(
            f"model {model} failed in forward: it returned a {_kind(y)}, not a torch.Tensor "
            "(an SR model's forward must return the upscaled image tensor)"
        )
    return y


def _kind(value: object) -> str:
    module = type(value).__module__
    return type(value).__name__ if module == "builtins" else f"{module.split('.')[0]}.{type(value).__name__}"


# ----------------------------------------------------------------------------------------------------- CUDA shims


@dataclass
class ShimReport:
    """What the CPU shims did, for the record and one notice line."""

    active: bool = False
    cuda_calls: int = 0  # .cuda() / .to("cuda") calls that returned the object unchanged
    loads_mapped: int = 0  # torch.load calls given map_location=cpu and weights_only=True
    calls: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1
        self.cuda_calls += what != "torch.load"
        self.loads_mapped += what == "torch.load"

    def to_dict(self) -> dict:
        return {"active": self.active, "cuda_calls": self.cuda_calls, "loads_mapped": self.loads_mapped,
                "calls": dict(self.calls)}

    def notice(self, model: str) -> str | None:
        if not self.active or not (self.cuda_calls or self.loads_mapped):
            return None
        return (f"{model}: no CUDA here, so {self.cuda_calls} .cuda()/.to('cuda') call(s) in the model's code "
                f"returned the object unchanged and {self.loads_mapped} torch.load call(s) were mapped to the CPU")


def _is_cuda(value: object) -> bool:
    if isinstance(value, torch.device):
        return value.type == "cuda"
    if isinstance(value, str):
        return value.split(":")[0].strip().lower() == "cuda"
    return isinstance(value, int) and not isinstance(value, bool)  # .to(0) means cuda:0


def _strip_cuda(args: tuple, kwargs: dict) -> tuple[tuple, dict, bool]:
    """``.to()`` arguments without a CUDA device (dtype, memory_format, non_blocking are kept)."""
    hit = False
    if args and _is_cuda(args[0]):
        args, hit = args[1:], True
    if "device" in kwargs and _is_cuda(kwargs["device"]):
        kwargs, hit = {k: v for k, v in kwargs.items() if k != "device"}, True
    return args, kwargs, hit


@contextmanager
def cpu_cuda_shims(active: bool | None = None) -> Iterator[ShimReport]:
    """While the block runs (only when CUDA is absent): ``.cuda()`` and ``.to("cuda")`` on modules and tensors
    return the object unchanged (other ``.to`` arguments still apply) and ``torch.load`` reads onto the CPU with
    ``weights_only=True`` (checkpoints are untrusted). Everything is restored afterwards, whatever happens."""
    report = ShimReport(active=not torch.cuda.is_available() if active is None else active)
    if not report.active:
        yield report
        return
    saved = {
        (nn.Module, "cuda"): nn.Module.cuda, (nn.Module, "to"): nn.Module.to,
        (torch.Tensor, "cuda"): torch.Tensor.cuda, (torch.Tensor, "to"): torch.Tensor.to,
        (torch, "load"): torch.load,
    }

    def module_cuda(self: nn.Module, device: object = None) -> nn.Module:
        report.count("Module.cuda")
        return self

    def tensor_cuda(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        report.count("Tensor.cuda")
        return self

    def shim_to(original: Callable, what: str) -> Callable:
        @functools.wraps(original)
        def to(self: Any, *args: Any, **kwargs: Any) -> Any:
            args, kwargs, hit = _strip_cuda(args, kwargs)
            if hit:
                report.count(what)
                if not args and not {k for k in kwargs if k != "non_blocking"}:
                    return self
            return original(self, *args, **kwargs)
        return to

    original_load = torch.load

    @functools.wraps(original_load)
    def load(f: Any, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
        report.count("torch.load")
        kwargs["weights_only"] = True
        return original_load(f, "cpu", *args, **kwargs)

    nn.Module.cuda = module_cuda  # type: ignore[method-assign]
    nn.Module.to = shim_to(saved[(nn.Module, "to")], "Module.to")  # type: ignore[method-assign]
    torch.Tensor.cuda = tensor_cuda  # type: ignore[method-assign]
    torch.Tensor.to = shim_to(saved[(torch.Tensor, "to")], "Tensor.to")  # type: ignore[method-assign]
    torch.load = load  # type: ignore[assignment]
    try:
        yield report
    finally:
        for (owner, name), original in saved.items():
            setattr(owner, name, original)
