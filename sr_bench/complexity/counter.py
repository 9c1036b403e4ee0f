"""``count_complexity``: params, FLOPs under each convention, activations, #conv, and the cross-checks.

One forward does everything: the NTIRE 2022/2023 module hooks stay installed while fvcore traces the model,
and the trace itself is priced under both traced conventions (fvcore, full). If the model cannot be traced,
the traced conventions are reported as ``None`` with a warning, and one eager forward gives the hook counts.
The module hooks run again, in one eager forward, on a second, differently seeded input; when any module's
count changes (mixture-of-experts routing, Gumbel sampling), that input is traced too, and the record gets both
counts in ``input_dependent`` with a warning, where the official harnesses print one number from whatever their
input held. Work that moves only inside functional code (no module's count changes) is not detected. Counting
costs one trace and one eager forward (one more trace for an input-dependent model).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from types import MappingProxyType

import torch
from torch import nn
from torch.jit import TracerWarning

from sr_bench.complexity.hooks import CONV_TYPES, NTIRE2023_DESCRIPTION, ModuleTally, module_hooks
from sr_bench.complexity.ops import (
    FULL_DESCRIPTION,
    FULL_OPS,
    FVCORE_DESCRIPTION,
    FVCORE_OPS,
    TraceCounts,
    trace_counts,
)
from sr_bench.errors import ModelSpecError, UsageError
from sr_bench.user_code import describe

CONVENTIONS = MappingProxyType({
    "ntire2023": NTIRE2023_DESCRIPTION,
    "fvcore": FVCORE_DESCRIPTION,
    "full": FULL_DESCRIPTION,
})
"""FLOP convention name -> what it counts (one paragraph each, for the README and reports)."""

TRACED_TABLES = MappingProxyType({"fvcore": FVCORE_OPS, "full": FULL_OPS})
DISAGREEMENT_LIMIT = 0.01  # hooks vs fvcore; legitimate gaps (LGVAN: 0.23%) stay below it
PROBE_SEEDS = (0, 1)  # two differently seeded inputs reveal input-dependent work
OTHER_ROW = "(other)"  # by_layer remainder: ops run in a parent's own forward (e.g. a functional upsample)


@dataclass
class LayerRow:
    """One module's share of the model at the requested depth (totals include its descendants)."""

    name: str
    type: str
    depth: int
    params: int
    activations: int
    num_conv: int
    flops: dict[str, int | None]  # convention -> FLOPs; None where the convention was not counted
    share: dict[str, float | None]  # convention -> fraction of the model's FLOPs


@dataclass
class ComplexityReport:
    """What :func:`count_complexity` measured. FLOPs are multiply-adds (1 MAC = 1 FLOP) under each convention."""

    input_shape: tuple[int, ...]
    params: int
    flops: dict[str, int | None]  # convention -> FLOPs; None when not requested or not countable
    activations: int  # output elements summed over every Conv2d/ConvTranspose2d call
    num_conv: int  # Conv2d/ConvTranspose2d calls
    warnings: list[str]
    unsupported_ops: dict[str, dict[str, int]]  # traced convention -> op -> occurrences priced at 0
    flops_by_operator: dict[str, dict[str, int]]  # traced convention -> op -> FLOPs
    by_layer: list[LayerRow] | None
    forward_passes: int  # model forwards run (the trace is one)
    traced: bool  # whether the fvcore trace succeeded
    input_dependent: dict | None = None  # {"seeds", "flops": {conv: [a, b]}, "activations": [a, b], "num_conv": [a, b]}

    def to_dict(self) -> dict:
        """Plain JSON-ready data for records."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data


def count_complexity(
    model: nn.Module,
    input_shape: Sequence[int] = (1, 3, 256, 256),
    *,
    conventions: Iterable[str] = tuple(CONVENTIONS),
    by_layer_depth: int | None = None,
    device: torch.device | str | None = None,
) -> ComplexityReport:
    """Count a model's complexity the NTIRE ESR way on one ``torch.rand`` input of ``input_shape``.

    Runs in eval mode under ``torch.no_grad()`` and leaves the model as it found it (training flags restored,
    no hooks left). The input is made on ``device`` (default: where the model's parameters are) with the
    parameters' dtype (seeds 0 and 1: a count that differs between them is reported as input-dependent). Hook counts, activations and #conv are always
    measured; ``conventions`` chooses which FLOP totals are reported, and the model is traced only when
    ``fvcore`` or ``full`` is asked for. ``by_layer_depth=N`` adds one row per module whose name has N dots.

    >>> report = count_complexity(nn.Conv2d(3, 8, 3, padding=1), (1, 3, 16, 16))
    >>> report.flops["ntire2023"], report.num_conv
    (55296, 1)
    """
    wanted = _check_conventions(conventions)
    if by_layer_depth is not None and by_layer_depth < 0:
        raise UsageError(f"by_layer_depth must be 0 or more, got {by_layer_depth}")
    x = _probe_input(model, tuple(input_shape), device, PROBE_SEEDS[0])
    traced_wanted = any(c in TRACED_TABLES for c in wanted)
    with _inference(model), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tallies, trace, passes, notes = _run(model, x, traced_wanted)
        second = _probe_input(model, tuple(input_shape), device, PROBE_SEEDS[1])
        tallies_2, trace_2, passes_2, _ = _run(model, second, False)  # hooks only: one eager forward
        if trace is not None and tallies != tallies_2:  # the work moved: price the second input traced too
            tallies_2, trace_2, more, _ = _run(model, second, True)
            passes_2 += more

    hook_flops = sum(t.flops for t in tallies.values())
    totals = _totals(tallies, trace)
    flops = {c: totals[c] if c in wanted else None for c in CONVENTIONS}
    reported_traced = [c for c in TRACED_TABLES if c in wanted and trace]
    dependent = _input_dependence(flops, wanted, (tallies, trace), (tallies_2, trace_2))
    notes += _dependence_warning(dependent)
    notes += _model_warnings(caught)
    notes += _check_disagreement(hook_flops, trace)
    notes += _check_zero_flop_modules(model, tallies, trace)
    notes += _check_linear_nd(tallies)
    notes += _check_unsupported(trace, reported_traced)
    return ComplexityReport(
        input_shape=tuple(x.shape),
        params=sum(p.numel() for p in model.parameters()),
        flops=flops,
        activations=sum(t.activations for t in tallies.values()),
        num_conv=sum(t.convs for t in tallies.values()),
        warnings=notes,
        unsupported_ops={c: trace.unsupported[c] for c in reported_traced},
        flops_by_operator={c: trace.by_operator[c] for c in reported_traced},
        by_layer=None if by_layer_depth is None else _layer_rows(model, by_layer_depth, tallies, trace, flops),
        forward_passes=passes + passes_2,
        traced=trace is not None,
        input_dependent=dependent,
    )


def _totals(tallies: dict[str, ModuleTally], trace: TraceCounts | None) -> dict[str, int | None]:
    hooks = sum(t.flops for t in tallies.values())
    return {"ntire2023": hooks, **{c: trace.by_module[c][""] if trace else None for c in TRACED_TABLES}}


def _input_dependence(flops: dict[str, int | None], wanted: tuple[str, ...],
                      first: tuple[dict[str, ModuleTally], TraceCounts | None],
                      second: tuple[dict[str, ModuleTally], TraceCounts | None]) -> dict | None:
    """Both inputs' counts when any module's count differs between them, else None."""
    if first[0] == second[0]:
        return None
    other = _totals(*second)
    pairs = {c: [flops[c], other[c] if c in wanted else None] for c in CONVENTIONS}
    acts = [sum(t.activations for t in tallies.values()) for tallies, _ in (first, second)]
    convs = [sum(t.convs for t in tallies.values()) for tallies, _ in (first, second)]
    return {"seeds": list(PROBE_SEEDS), "flops": pairs, "activations": acts, "num_conv": convs}


def _dependence_warning(dependent: dict | None) -> list[str]:
    if dependent is None:
        return []
    varied = [f"FLOPs ({c}) {a:,} vs {b:,}" for c, (a, b) in dependent["flops"].items() if a != b and a is not None]
    a, b = dependent["activations"]
    if a != b:
        varied.append(f"activations {a:,} vs {b:,}")
    seeds = " and ".join(map(str, dependent["seeds"]))
    return [f"the count depends on the input (torch.rand seeds {seeds}: {'; '.join(varied) or 'conv calls differ'}); "
            "the headline is the first input's, the record holds both"]


# ---------------------------------------------------------------------------------------------------------------
# Running the model


def _check_conventions(conventions: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(conventions) if not isinstance(conventions, str) else (conventions,)
    unknown = [c for c in wanted if c not in CONVENTIONS]
    if unknown or not wanted:
        raise UsageError(f"unknown FLOP convention(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(CONVENTIONS)}")
    return wanted


def _probe_input(model: nn.Module, shape: tuple[int, ...], device: torch.device | str | None,
                 seed: int) -> torch.Tensor:
    """A seeded ``torch.rand`` input with the model's floating dtype, on ``device`` or the model's device."""
    ref = next((t for t in itertools.chain(model.parameters(), model.buffers()) if t.is_floating_point()), None)
    place = torch.device(device) if device is not None else (ref.device if ref is not None else torch.device("cpu"))
    dtype = ref.dtype if ref is not None else torch.float32
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator).to(device=place, dtype=dtype)


@contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode and no_grad for the block; every module's own training flag is put back afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in flags:
            module.training = training


def _run(model: nn.Module, x: torch.Tensor,
         traced: bool) -> tuple[dict[str, ModuleTally], TraceCounts | None, int, list[str]]:
    """Hooks during the fvcore trace (one forward); an eager forward instead if not traced or the trace fails."""
    notes: list[str] = []
    if traced:
        with module_hooks(model) as tallies:
            try:
                return tallies, trace_counts(model, x, TRACED_TABLES), 1, notes
            except SystemExit as exc:  # user code calling sys.exit must not end the process silently
                raise _failed(x, exc) from None
            except Exception as exc:  # any tracing failure: degrade to the hook counts, say why
                notes.append(f"fvcore could not trace the model ({type(exc).__name__}: {_first_line(exc)}); "
                             "fvcore and full FLOPs are unavailable")
    with module_hooks(model) as tallies:
        try:
            model(x)
        except (Exception, SystemExit) as exc:  # noqa: BLE001  (the model's own failure, whatever it is)
            raise _failed(x, exc) from exc
    return tallies, None, 1 + traced, notes


def _failed(x: torch.Tensor, exc: BaseException) -> ModelSpecError:
    return ModelSpecError(f"the model failed on a {tuple(x.shape)} input while counting complexity: {describe(exc)}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


# ---------------------------------------------------------------------------------------------------------------
# Cross-checks, each a list of one-line warnings


def _model_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """Python warnings the model raised while running; tracer warnings are noise here and dropped."""
    seen = dict.fromkeys(f"model warning: {w.category.__name__}: {_first_line(w.message)}"
                         for w in caught if not issubclass(w.category, TracerWarning))
    return list(seen)


def _check_disagreement(hook_flops: int, trace: TraceCounts | None) -> list[str]:
    if trace is None:
        return []
    fv = trace.by_module["fvcore"][""]
    gap = abs(hook_flops - fv) / max(hook_flops, fv, 1)
    if gap <= DISAGREEMENT_LIMIT:
        return []
    return [f"FLOP counters disagree by {gap:.1%} (> {DISAGREEMENT_LIMIT:.0%}): ntire2023 hooks {hook_flops:,}, "
            f"fvcore {fv:,}; hooks miss functional convs/linears, fvcore misses activation modules, custom ops "
            "and modules dropped from the trace"]


def _check_zero_flop_modules(model: nn.Module, tallies: dict[str, ModuleTally],
                             trace: TraceCounts | None) -> list[str]:
    """Convs and parameterised leaf modules that ran but have no FLOPs at all in the traced graph."""
    if trace is None:
        return []
    notes = []
    for name, module in model.named_modules():
        leaf_with_params = next(module.children(), None) is None and next(module.parameters(False), None) is not None
        if not tallies[name].calls or not (isinstance(module, CONV_TYPES) or leaf_with_params):
            continue
        if all(per_module.get(name, 0) == 0 for per_module in trace.by_module.values()):
            notes.append(f"module {name!r} ({type(module).__name__}) ran {tallies[name].calls}x but has 0 FLOPs in "
                         f"the fvcore trace (ntire2023 hooks: {tallies[name].flops:,}): its ops are missing from "
                         "the trace, e.g. because they feed a custom or untraceable op, so fvcore under-counts")
    return notes


def _check_linear_nd(tallies: dict[str, ModuleTally]) -> list[str]:
    return [f"nn.Linear {name!r} ran {t.linear_nd_calls}x on >=3-D input: the ntire2023 rule "
            f"(batch * in.shape[1] * out.shape[1]) gives {t.linear_nd_flops:,} FLOPs for it, the real cost is "
            f"{t.linear_nd_true_flops:,} ({t.linear_nd_true_flops - t.linear_nd_flops:+,}); the ntire2023 total "
            "keeps the official error"
            for name, t in tallies.items() if t.linear_nd_calls]


def _check_unsupported(trace: TraceCounts | None, conventions: list[str]) -> list[str]:
    notes = []
    for convention in conventions:
        ops = trace.unsupported[convention]
        if ops:
            listed = ", ".join(f"{op} x{n}" for op, n in ops.items())
            notes.append(f"{convention}: {sum(ops.values())} call(s) of ops it has no rule for, priced at 0: {listed}")
    return notes


# ---------------------------------------------------------------------------------------------------------------
# Per-layer breakdown


def _layer_rows(model: nn.Module, depth: int, tallies: dict[str, ModuleTally], trace: TraceCounts | None,
                totals: dict[str, int | None]) -> list[LayerRow]:
    """Modules at ``depth`` (plus shallower leaves, so rows cover the model) and an ``(other)`` remainder row."""
    modules = dict(model.named_modules())
    names = [n for n, m in modules.items()
             if n and (n.count(".") == depth or (n.count(".") < depth and next(m.children(), None) is None))]
    rows = [_row(n, modules[n], tallies, trace, totals) for n in names]
    rest = LayerRow(
        name=OTHER_ROW, type="", depth=depth,
        params=sum(p.numel() for p in model.parameters()) - sum(r.params for r in rows),
        activations=sum(t.activations for t in tallies.values()) - sum(r.activations for r in rows),
        num_conv=sum(t.convs for t in tallies.values()) - sum(r.num_conv for r in rows),
        flops={c: None if v is None else v - sum(r.flops[c] for r in rows) for c, v in totals.items()},
        share={},
    )
    rest.share = _shares(rest.flops, totals)
    if rest.params or rest.activations or rest.num_conv or any(rest.flops.values()):
        rows.append(rest)
    return rows


def _row(name: str, module: nn.Module, tallies: dict[str, ModuleTally], trace: TraceCounts | None,
         totals: dict[str, int | None]) -> LayerRow:
    inside = [t for n, t in tallies.items() if n == name or n.startswith(name + ".")]
    measured = {"ntire2023": sum(t.flops for t in inside)}
    if trace is not None:
        measured |= {c: per_module.get(name, 0) for c, per_module in trace.by_module.items()}
    flops = {c: None if v is None else measured[c] for c, v in totals.items()}
    return LayerRow(
        name=name, type=type(module).__name__, depth=name.count("."),
        params=sum(p.numel() for p in module.parameters()),
        activations=sum(t.activations for t in inside),
        num_conv=sum(t.convs for t in inside),
        flops=flops, share=_shares(flops, totals),
    )


def _shares(flops: dict[str, int | None], totals: dict[str, int | None]) -> dict[str, float | None]:
    return {c: None if v is None or not totals[c] else v / totals[c] for c, v in flops.items()}
