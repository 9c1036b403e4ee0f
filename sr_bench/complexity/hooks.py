"""The NTIRE 2022/2023 counter: forward hooks on modules, one pure rule per module type.

The official harness prices only what module hooks see, so a ReLU written as ``F.relu`` costs 0 while
``nn.ReLU()`` costs one FLOP per output element. The rules below reproduce that exactly, including the
official ``nn.Linear`` formula that is wrong for inputs with more than two dimensions (the error is kept
because the published numbers contain it; :class:`ModuleTally` records the true cost beside it).

Hooks also give the other official statistics: activations (sum of conv output sizes) and #conv (conv calls).
The hook functions read shapes through ``int()`` so that they also work while ``torch.jit.trace`` runs
(shapes are traced tensors then); what they compute never feeds the model, so the trace drops it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

# A rule maps (module, first tensor input, output) to FLOPs (multiply-adds) for one call.
ModuleRule = Callable[[nn.Module, Tensor, Tensor], int]


def _dims(t: Tensor) -> tuple[int, ...]:
    """Shape as plain ints, also while tracing (where sizes are 0-d tensors)."""
    return tuple(int(d) for d in t.shape)


def _conv(module: nn.Module, x: Tensor, out: Tensor) -> int:
    """kh·kw · Cin · Cout/groups per output pixel; bias ignored; transposed conv priced on its output size."""
    b, _, *spatial = _dims(out)
    per_pixel = math.prod(module.kernel_size) * module.in_channels * (module.out_channels // module.groups)
    return per_pixel * b * math.prod(spatial)


def _output_numel(module: nn.Module, x: Tensor, out: Tensor) -> int:
    return math.prod(_dims(out))


def _batchnorm(module: nn.Module, x: Tensor, out: Tensor) -> int:
    return math.prod(_dims(x)) * (2 if module.affine else 1)


def _linear_official(module: nn.Module, x: Tensor, out: Tensor) -> int:
    """batch · in.shape[1] · out.shape[1]: right for 2-D input only (the official error is kept)."""
    xs, os_ = _dims(x), _dims(out)
    return xs[0] * xs[1] * os_[1]


def _linear_true(module: nn.Linear, x: Tensor) -> int:
    """What a Linear call really costs: one in_features-long dot product per output feature and row."""
    return math.prod(_dims(x)[:-1]) * module.in_features * module.out_features


# The rule table, matched with isinstance semantics (first hit along the module type's MRO), as officially.
NTIRE2023_RULES: Mapping[type[nn.Module], ModuleRule] = MappingProxyType({
    nn.Conv2d: _conv,
    nn.ConvTranspose2d: _conv,
    nn.ReLU: _output_numel,
    nn.PReLU: _output_numel,
    nn.ELU: _output_numel,
    nn.LeakyReLU: _output_numel,
    nn.ReLU6: _output_numel,
    nn.BatchNorm2d: _batchnorm,
    nn.Linear: _linear_official,
})

# Modules whose calls count as activations (output elements) and as #conv.
CONV_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.ConvTranspose2d)

NTIRE2023_DESCRIPTION = (
    "ntire2023 (NTIRE 2022/2023 harness): forward hooks on modules; 1 multiply-add = 1 FLOP. "
    "Conv2d/ConvTranspose2d: kh*kw * Cin * Cout/groups * B * H_out * W_out (bias ignored; transposed conv on "
    "its output size). ReLU, PReLU, ELU, LeakyReLU, ReLU6 modules: output elements. BatchNorm2d: input "
    "elements, x2 if affine. Linear: B * in.shape[1] * out.shape[1] (the official formula, wrong for >=3-D "
    "input and kept). Everything else, and every functional call (F.relu, F.gelu, +, *, interpolate, "
    "custom ops), counts 0. Activations = output elements summed over every conv call; #conv = conv calls."
)


def rule_for(module: nn.Module, rules: Mapping[type[nn.Module], ModuleRule] = NTIRE2023_RULES) -> ModuleRule | None:
    """The rule for the nearest type in the module's MRO, i.e. what ``isinstance`` checks would pick."""
    return next((rules[t] for t in type(module).__mro__ if t in rules), None)


@dataclass
class ModuleTally:
    """What the hooks saw for one module (its own calls only, not its children's)."""

    calls: int = 0
    flops: int = 0  # hook-convention FLOPs
    activations: int = 0  # conv output elements
    convs: int = 0  # conv calls
    linear_nd_calls: int = 0  # Linear calls on >=3-D input, which the official formula under-counts
    linear_nd_flops: int = 0  # what the official formula gave for those calls
    linear_nd_true_flops: int = 0  # what those calls really cost


def _first_tensor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor | None:
    return next((v for v in (*args, *kwargs.values()) if isinstance(v, Tensor)), None)


def _record(tally: ModuleTally, rule: ModuleRule | None, module: nn.Module,
            args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    tally.calls += 1
    x = _first_tensor(args, kwargs)
    if rule is None or x is None or not isinstance(out, Tensor):
        return
    flops = rule(module, x, out)
    tally.flops += flops
    if isinstance(module, CONV_TYPES):
        tally.activations += math.prod(_dims(out))
        tally.convs += 1
    if isinstance(module, nn.Linear) and x.dim() >= 3:
        tally.linear_nd_calls += 1
        tally.linear_nd_flops += flops
        tally.linear_nd_true_flops += _linear_true(module, x)


@contextmanager
def module_hooks(model: nn.Module,
                 rules: Mapping[type[nn.Module], ModuleRule] = NTIRE2023_RULES) -> Iterator[dict[str, ModuleTally]]:
    """Hook every module of ``model`` while the block runs; yields name -> tally, filled by each forward.

    Names are those of ``named_modules()`` (a shared module counts under its first name, as fvcore does).
    Every hook is removed on exit, whatever happens inside the block.
    """
    tallies: dict[str, ModuleTally] = {}
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        for name, module in model.named_modules():
            tally = tallies.setdefault(name, ModuleTally())
            hook = partial(_record, tally, rule_for(module, rules))
            handles.append(module.register_forward_hook(hook, with_kwargs=True))
        yield tallies
    finally:
        for handle in handles:
            handle.remove()
