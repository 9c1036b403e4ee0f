"""``srbench profile``: params, FLOPs (every convention), activations, #conv, runtime and peak memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from sr_bench.checkpoint_files import checkpoint_label
from sr_bench.cli import output
from sr_bench.cli.options import (
    AfterLoadOpt,
    CheckpointKeyOpt,
    DataRangeOpt,
    DeviceOpt,
    ExecOpt,
    JsonOpt,
    ModelArgsOpt,
    ModelOpt,
    NoStrictOpt,
    ProtocolOpt,
    ResultsOpt,
    ScaleOpt,
    ThreadsOpt,
    WeightsOpt,
    load_cli_model,
    load_options,
)
from sr_bench.errors import UsageError
from sr_bench.paths import results_dir
from sr_bench.results import MEMORY_KINDS, atomic_write_json, write_record
from sr_bench.sizes import parse_size

if TYPE_CHECKING:
    from sr_bench.profile import ProfileResult

CONVENTION_NOTES = {
    "ntire2023": "module hooks (NTIRE 2022/2023 harness)",
    "fvcore": "fvcore FlopCountAnalysis (NTIRE 2024+ harness)",
    "full": "also prices elementwise, activations, norms, attention, dynamic conv",
}


def profile(
    model: ModelOpt,
    size: Annotated[str, typer.Option("--size", help="LR input size: N or HxW (rows x columns).")] = "256",
    scale: ScaleOpt = None,
    weights: WeightsOpt = None,
    data_range: DataRangeOpt = None,
    model_args: ModelArgsOpt = None,
    checkpoint_key: CheckpointKeyOpt = None,
    no_strict: NoStrictOpt = False,
    after_load: AfterLoadOpt = None,
    device: DeviceOpt = "auto",
    protocol: ProtocolOpt = "robust",
    exec_mode: ExecOpt = "auto",
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="Shorthand: fp16 or bf16 (same as --exec).")] = None,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Shorthand for --exec channels_last.")] = False,
    compile_model: Annotated[bool, typer.Option("--compile", help="Shorthand for --exec compile.")] = False,
    threads: ThreadsOpt = None,
    warmup: Annotated[Optional[int], typer.Option("--warmup", min=0, help="Warm-up forwards (default: protocol's).")] = None,
    repeats: Annotated[Optional[int], typer.Option("--repeats", min=1, help="Measured forwards (default: protocol's).")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Batch size of the synthetic input.")] = 1,
    no_runtime: Annotated[bool, typer.Option("--no-runtime", help="Count complexity only; skip timing.")] = False,
    by_layer: Annotated[
        Optional[int], typer.Option("--by-layer", min=0, help="Also show a per-module breakdown at this depth (0 = top-level modules, 1 = their children...).")
    ] = None,
    json_path: JsonOpt = None,
    results: ResultsOpt = None,
) -> None:
    """Measure a model on a synthetic LR input: complexity in every FLOP convention, runtime, peak memory.

    Example: srbench profile --model lgvan --size 256 --json lgvan.json
    """
    from sr_bench.execution import parse_exec  # torch: imported when the command runs, not at start-up
    from sr_bench.profile import ProfileRequest, run_profile
    from sr_bench.timing import resolve_device

    request = ProfileRequest(
        device=resolve_device(device),
        size=parse_size(size),
        batch=batch,
        protocol=protocol,
        exec_request=parse_exec(_exec_text(exec_mode, dtype, channels_last, compile_model)),
        threads=threads,
        warmup=warmup,
        repeats=repeats,
        runtime=not no_runtime,
        by_layer_depth=by_layer,
    )
    names = [n.strip() for n in model.split(",") if n.strip()]
    if json_path is not None and len(names) > 1:
        raise UsageError("--json takes one model; profile several models without --json (records go to --results)")
    for name in names:
        loaded = load_cli_model(name, scale, weights, data_range, model_args, device=str(request.device),
                                load=load_options(checkpoint_key, no_strict, after_load))
        with output.err.status(f"profiling {loaded.name}…") as status:
            result = run_profile(loaded, request, progress=lambda msg: status.update(f"{loaded.name}: {msg}…"))
        path = write_record(result.record, results_dir(results))
        if json_path is not None:
            atomic_write_json(json_path, result.record)
        _render(result)
        for message in result.record.get("notices", []):
            output.notice(message)
        for message in result.record["warnings"]:
            output.warning(message)
        output.info(f"record saved: {path}" + (f" and {json_path}" if json_path else ""))


def _exec_text(exec_mode: str, dtype: str | None, channels_last: bool, compile_model: bool) -> str:
    """Fold the issue-style shorthands (--dtype/--channels-last/--compile) into one --exec value."""
    parts = [p for p, on in ((dtype, dtype is not None), ("channels_last", channels_last), ("compile", compile_model)) if on]
    if not parts:
        return exec_mode
    if exec_mode not in ("auto", "eager"):
        raise UsageError("use either --exec or the --dtype/--channels-last/--compile shorthands, not both")
    if dtype not in (None, "fp16", "bf16"):
        raise UsageError(f"--dtype must be fp16 or bf16, got {dtype!r}")
    return "+".join(parts)


def _fmt_count(value: int | None, unit: str, div: float, digits: int) -> str:
    return "-" if value is None else f"{value / div:,.{digits}f} {unit}  ({value:,})"


def _render(result: ProfileResult) -> None:
    rec = result.record
    h, w = rec["input_size"]
    title = (
        f"{rec['model']} x{rec['scale']} — input {rec['batch']}×3×{h}×{w} (N×C×H×W), {rec['device']}, "
        f"protocol {rec['protocol']}, exec {rec['exec']['label']}"
    )
    published = rec.get("published") or {}
    table = Table(title=title, caption=rec["protocol_description"])
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("how", overflow="fold")  # paths fold, never cut

    def mark(key: str) -> str:
        if key not in published:
            return ""
        return "  [green]= published[/]" if published[key]["equal"] else f"  [red]≠ published {published[key]['published']:,}[/]"

    dependent = rec.get("input_dependent") or {}

    def count_cell(value: int | None, pair: list | None, unit: str, div: float, digits: int) -> str:
        """One count, or the range over the two seeded inputs when the model's work depends on its input."""
        if pair is None or value is None or pair[0] == pair[1] or None in pair:
            return _fmt_count(value, unit, div, digits)
        low, high = sorted(pair)
        return f"{low / div:,.{digits}f} – {high / div:,.{digits}f} {unit}  (input-dependent)"

    table.add_row("Params", _fmt_count(rec["params"], "M", 1e6, 3), "all parameters, buffers excluded" + mark("params"))
    for conv, key in (("ntire2023", "flops_hooks"), ("fvcore", "flops_fvcore"), ("full", None)):
        headline = " [bold](headline)[/]" if conv == rec["flops_headline"] else ""
        table.add_row(f"FLOPs ({conv})", count_cell(rec["flops"].get(conv), dependent.get("flops", {}).get(conv), "G", 1e9, 3),
                      CONVENTION_NOTES[conv] + headline + (mark(key) if key else ""))
    table.add_row("Activations", count_cell(rec["activations"], dependent.get("activations"), "M", 1e6, 2),
                  "Σ conv output elements" + mark("activations"))
    table.add_row("#Conv", f"{rec['num_conv']}", "conv calls" + mark("num_conv"))
    rt = rec["runtime_ms"]
    if rt is not None:
        table.add_row("Runtime (median)", f"{rt['median']:.2f} ms",
                      f"mean {rt['mean']:.2f}, std {rt['std']:.2f}, min {rt['min']:.2f}, p90 {rt['p90']:.2f} "
                      f"over {rt['n']} forwards ({rt['clock']}, {len(rt['warmup_samples'])} warm-up)")
        memory = rec.get("memory") or {}
        peak = memory.get("peak_mib")
        table.add_row("Peak memory", "-" if peak is None else f"{peak:.2f} MiB", MEMORY_KINDS.get(memory.get("kind", ""), ""))
    table.add_row("Threads", str(rec["exec"].get("threads") or "-"), f"CPU: {rec['env'].get('cpu_model') or '?'}")
    ckpt = rec["checkpoint"]
    label = checkpoint_label(ckpt["path"], ckpt["verified"], ckpt.get("key"), ckpt.get("official_key"))
    table.add_row("Checkpoint", label, escape(ckpt["path"] or "none found: random weights"))
    output.out.print(table)
    if result.complexity.by_layer:
        _render_layers(result)


def _render_layers(result: ProfileResult) -> None:
    headline = result.record["flops_headline"]
    table = Table(title="by layer: FLOPs per convention", caption=f"acts = conv output elements; share = FLOPs ({headline}) "
                  "/ total; (other) = ops in a parent's own forward")
    table.add_column("module", no_wrap=True, min_width=max(len(row.name) for row in result.complexity.by_layer))
    for column in ("params", "ntire2023", "fvcore", "full", "acts", "share"):
        table.add_column(column, justify="right")
    for row in result.complexity.by_layer:
        flops = row.flops
        table.add_row(
            row.name or "(model)", f"{row.params:,}",
            *("-" if flops.get(c) is None else f"{flops[c] / 1e6:,.1f} M" for c in ("ntire2023", "fvcore", "full")),
            f"{row.activations / 1e6:,.2f} M",
            "-" if row.share.get(headline) is None else f"{row.share[headline]:.1%}",
        )
    output.out.print(table)
