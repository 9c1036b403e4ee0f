"""Traced conventions: fvcore's op table, srbench's ``full`` table, and one trace that prices both.

Every handle has fvcore's signature: ``handle(inputs, outputs) -> number``, where inputs and outputs are the
op's ``torch._C.Value`` s in the traced graph; handles read shapes (and constant arguments), never data.
One multiply-add counts as one FLOP everywhere.

``fvcore`` is fvcore's own default table (what ``FlopCountAnalysis`` installs) plus a handle for srbench's
dynamic depthwise conv. ``full`` is that table plus rules for what fvcore leaves at zero; it never
overrides an fvcore rule, so ``full >= fvcore`` and their difference is exactly the ops fvcore ignores.

Both are computed from a single ``torch.jit.trace``: :func:`trace_counts` installs one fan-out handle per op
name, which evaluates each convention's rule and tags the result ``(convention, kind, op)``; fvcore's own
graph walk then aggregates the tags per module, and they are split again afterwards.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Number
from types import MappingProxyType
from typing import Any

import torch
from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS  # fvcore 0.1.5's default table, used as-is
from fvcore.nn.jit_analysis import _IGNORED_OPS, JitModelAnalysis  # ops fvcore prices at 0 on purpose
from fvcore.nn.jit_handles import get_shape
from torch import nn

Handle = Callable[[list[Any], list[Any]], Number]

DYNAMIC_DWCONV_OP = "srbench::idynamic_dwconv"

# ---------------------------------------------------------------------------------------------------------------
# Shape and constant readers


def _numel(value: Any) -> int:
    """Elements of a traced tensor value; 0 for non-tensors (ints, lists, None)."""
    shape = get_shape(value)
    return math.prod(shape) if shape is not None else 0


def _constant(value: Any) -> Any:
    """A constant argument of a traced op: a scalar, or a list built from constants (kernel sizes)."""
    node = value.node()
    if node.kind() == "prim::ListConstruct":
        return [_constant(v) for v in node.inputs()]
    return value.toIValue()


# ---------------------------------------------------------------------------------------------------------------
# Handles (pure: shapes in, FLOPs out)


def per_output_element(flops: int) -> Handle:
    """``flops`` per element of the first output (elementwise ops, activations, resampling)."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        return flops * _numel(outputs[0])

    return handle


def per_input_element(flops: int) -> Handle:
    """``flops`` per element of the first input (reductions read every element once)."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        return flops * _numel(inputs[0])

    return handle


def per_source_element(inputs: list[Any], outputs: list[Any]) -> int:
    """Scatter-add (``index_add(self, dim, index, source)``): one add per element of ``source``."""
    return _numel(inputs[3])


def pool_window(inputs: list[Any], outputs: list[Any]) -> int:
    """Pooling: one compare (max) or add (avg) per window element per output element."""
    kernel = _constant(inputs[1])
    sizes = kernel if isinstance(kernel, list) else [kernel]
    area = math.prod(sizes) if len(sizes) == 2 else sizes[0] ** 2  # a single size means a square window
    return area * _numel(outputs[0])


def dynamic_dwconv(inputs: list[Any], outputs: list[Any]) -> int:
    """``srbench::idynamic_dwconv(x, kernels, groups, impl)``: K*K multiply-adds per output element.

    ``kernels`` is (B, groups*K*K, H, W), so K*K = kernels.shape[1] // groups.
    """
    taps = get_shape(inputs[1])[1] // int(_constant(inputs[2]))
    return taps * _numel(outputs[0])


def scaled_dot_product_attention(inputs: list[Any], outputs: list[Any]) -> int:
    """q·kᵀ (L·S·E) and attn·v (L·S·Ev) multiply-adds, plus softmax (3 per score), per batch and head."""
    *batch, length, e = get_shape(inputs[0])
    source = get_shape(inputs[1])[-2]
    ev = get_shape(inputs[2])[-1]
    return math.prod(batch) * length * source * (e + ev + 3)


# ---------------------------------------------------------------------------------------------------------------
# Tables

FVCORE_OPS: Mapping[str, Handle] = MappingProxyType({**_DEFAULT_SUPPORTED_OPS, DYNAMIC_DWCONV_OP: dynamic_dwconv})


@dataclass(frozen=True)
class OpGroup:
    """A family of ops priced by one rule; ``handle=None`` prices them at 0 deliberately (not "unsupported")."""

    rule: str  # how the rule reads in the convention's description
    handle: Handle | None
    ops: tuple[str, ...]  # aten names without namespace; the in-place "op_" variant is added for each
    inplace: bool = True


FULL_EXTRA_GROUPS: tuple[OpGroup, ...] = (
    OpGroup("elementwise arithmetic: 1 per output element", per_output_element(1), (
        "add", "sub", "rsub", "mul", "div", "neg", "abs", "pow", "sqrt", "rsqrt", "exp", "log", "reciprocal",
        "square", "clamp", "clamp_min", "clamp_max", "maximum", "minimum", "addcmul", "addcdiv", "lerp",
        "where")),
    OpGroup("activations: 1 per output element, whatever the function (as the ntire2023 activation modules)",
            per_output_element(1), (
                "relu", "relu6", "leaky_relu", "prelu", "_prelu_kernel", "elu", "selu", "celu", "gelu",
                "sigmoid", "silu", "tanh", "hardtanh", "hardswish", "hardsigmoid", "softplus", "mish", "glu")),
    OpGroup("softmax: 3 per element (exp, sum, divide)", per_output_element(3), ("softmax", "log_softmax"),
            inplace=False),
    OpGroup("reductions (mean, sum, vector norm): 1 per input element", per_input_element(1), (
        "mean", "sum", "norm", "linalg_vector_norm", "amax", "amin"), inplace=False),
    OpGroup("variance, standard deviation: 2 per input element (mean, then squared deviations)",
            per_input_element(2), ("var", "std", "var_mean", "std_mean"), inplace=False),
    OpGroup("max/avg pooling: kernel area per output element", pool_window, ("max_pool2d", "avg_pool2d"),
            inplace=False),
    OpGroup("adaptive max pooling: 1 per input element", per_input_element(1), ("adaptive_max_pool2d",),
            inplace=False),
    OpGroup("bicubic upsampling: 16 per output element (4x4 taps)", per_output_element(16),
            ("upsample_bicubic2d",), inplace=False),
    OpGroup("scaled_dot_product_attention: L*S*(E + Ev) multiply-adds + 3 per score (softmax)",
            scaled_dot_product_attention, ("scaled_dot_product_attention",), inplace=False),
    OpGroup("scatter-add: 1 per source element (e.g. DLGSANet's TLC window fold-back)", per_source_element,
            ("index_add",)),
    OpGroup("data movement, 0 (pixel_shuffle moves values, computes nothing; its cost shows in runtime)", None, (
        "pixel_shuffle", "pixel_unshuffle", "expand_as", "view_as", "repeat", "flip", "im2col", "col2im",
        "reflection_pad2d", "replication_pad2d", "pad", "lift_fresh", "clone", "channel_shuffle",
        "native_channel_shuffle", "unfold"), inplace=False),
)


def _group_table(groups: tuple[OpGroup, ...]) -> dict[str, Handle | None]:
    table: dict[str, Handle | None] = {}
    for group in groups:
        for op in group.ops:
            table[f"aten::{op}"] = group.handle
            if group.inplace:
                table[f"aten::{op}_"] = group.handle
    return table


FULL_OPS: Mapping[str, Handle | None] = MappingProxyType({**FVCORE_OPS, **_group_table(FULL_EXTRA_GROUPS)})

FVCORE_DESCRIPTION = (
    "fvcore (NTIRE 2024+ harness): fvcore.nn.FlopCountAnalysis(model, input).total() with fvcore's default op "
    "handles; 1 multiply-add = 1 FLOP. Priced: " + ", ".join(sorted(op.split("::")[1] for op in _DEFAULT_SUPPORTED_OPS))
    + " (conv/linear/matmul as multiply-adds; batch_norm at inference 1 per element, 2 if affine; layer/group "
    "norm 5 per element; bilinear upsampling 4 per output element). Everything else counts 0: elementwise "
    "ops, activations, softmax, pooling, pixel_shuffle, custom ops. srbench adds one handle: "
    f"{DYNAMIC_DWCONV_OP} (DLGSANet's dynamic depthwise conv), K*K multiply-adds per output element."
)

FULL_DESCRIPTION = (
    "full (srbench): everything fvcore prices, with fvcore's rules, plus what both official conventions "
    "leave at 0; 1 multiply-add = 1 FLOP, one elementwise op = 1 FLOP. "
    + "; ".join(f"{g.rule} [{', '.join(g.ops)}]" for g in FULL_EXTRA_GROUPS)
    + ". In-place variants (add_, relu_, ...) are priced like their originals."
)

# ---------------------------------------------------------------------------------------------------------------
# One trace, several tables

FLOPS, UNSUPPORTED = "flops", "unsupported"


def _named(op: str, count: Number | Mapping[str, Number]) -> Mapping[str, Number]:
    """A handle's result keyed by operator name, as fvcore's ``by_operator`` names it ("aten::add" -> "add")."""
    return count if isinstance(count, Mapping) else {op.split("::")[-1]: count}


def _fan_out(op: str, tables: Mapping[str, Mapping[str, Handle | None]]) -> Handle:
    """A handle for ``op`` that applies every convention's own rule and tags each result with its convention.

    A convention without a rule for ``op`` treats it as fvcore would: 0 if fvcore ignores the op on purpose,
    otherwise one more occurrence of an unsupported op.
    """

    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        tagged: Counter = Counter()
        for convention, table in tables.items():
            if op in table:
                rule = table[op]
                if rule is not None:
                    for name, flops in _named(op, rule(inputs, outputs)).items():
                        tagged[(convention, FLOPS, name)] += flops
            elif op not in _IGNORED_OPS:
                tagged[(convention, UNSUPPORTED, op)] += 1
        return tagged

    return handle


@dataclass
class TraceCounts:
    """Per-convention results of one trace; module names are fvcore's canonical names ('' = whole model)."""

    by_module: dict[str, dict[str, int]]  # convention -> module -> FLOPs (module totals include descendants)
    by_operator: dict[str, dict[str, int]]  # convention -> op -> FLOPs, whole model
    unsupported: dict[str, dict[str, int]]  # convention -> op -> occurrences left unpriced


def trace_counts(model: nn.Module, x: torch.Tensor,
                 tables: Mapping[str, Mapping[str, Handle | None]]) -> TraceCounts:
    """Trace ``model(x)`` once with fvcore and price the graph under every table in ``tables``.

    fvcore's terminal output is switched off (the results are returned instead); warnings raised while
    tracing are left to the caller.
    """
    analysis = JitModelAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("all")
    ops = {op for table in tables.values() for op in table}
    analysis.set_op_handle(**{op: _fan_out(op, tables) for op in ops})
    per_module = analysis.by_module_and_operator()
    return _split(per_module, analysis.unsupported_ops(), tuple(tables))


def _split(per_module: Mapping[str, Counter], shared_unsupported: Counter, conventions: tuple[str, ...]) -> TraceCounts:
    """Undo the fan-out tags; ops no table names (shared_unsupported) are unpriced under every convention."""
    by_module = {c: dict.fromkeys(per_module, 0) for c in conventions}
    by_operator: dict[str, Counter] = {c: Counter() for c in conventions}
    unsupported = {c: Counter(shared_unsupported) for c in conventions}
    for module, counter in per_module.items():
        for (convention, kind, op), value in counter.items():
            if kind == FLOPS:
                by_module[convention][module] += int(value)
            if module == "":
                (by_operator if kind == FLOPS else unsupported)[convention][op] += int(value)
    return TraceCounts(by_module=by_module,
                       by_operator={c: dict(v) for c, v in by_operator.items()},
                       unsupported={c: dict(v.most_common()) for c, v in unsupported.items()})
