"""``srbench env``: the facts a runtime depends on — the ``env`` block every record carries — and the GPU now.

Usage::

    srbench env                  # versions, GPU (model, driver, clocks, persistence, power), CPU, threads
    srbench env --json           # the same as JSON: the record's env block plus "gpu_now"
    srbench env --device cpu
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from sr_bench.cli import output

GROUPS = {
    "versions": ("srbench_version", "python", "platform", "torch", "cuda", "cudnn"),
    "GPU": ("device", "gpu_name", "gpu_driver", "gpu_memory_mib", "gpu_compute_capability", "gpu_persistence_mode",
            "gpu_max_clocks_mhz", "gpu_application_clocks_mhz", "gpu_power_limit_w", "gpu_info_source"),
    "CPU": ("cpu_model", "cpu_logical_cores", "cpu_flags", "torch_threads"),
}
NOW = ("sm_clock_mhz", "mem_clock_mhz", "temperature_c", "power_w", "power_limit_w", "pstate",
       "throttle_reason_names", "processes")


def env_show(
    device: Annotated[str, typer.Option("--device", "-d", help="auto (CUDA when available), cpu, cuda or cuda:N.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the record's env block plus gpu_now).")] = False,
) -> None:
    """Show what a runtime depends on: torch/CUDA/cuDNN, GPU model, driver, clocks, persistence mode, CPU, threads.

    Example: srbench env --json
    """
    from sr_bench.env import environment  # imports torch: only when the command runs
    from sr_bench.gpu_conditions import read_now
    from sr_bench.timing import resolve_device

    torch_device = resolve_device(device)
    facts = environment(torch_device)
    facts.pop("checkpoint")  # a record's checkpoint facts; nothing to say without a model
    now, why = read_now(torch_device)
    if as_json:
        output.print_json({**facts, "gpu_now": now, "gpu_now_reason": why})
        return
    # no vertical bars, so a value folded over two lines still copies whole
    table = Table(title=f"srbench env — {facts['device']}", show_header=False, box=box.SIMPLE)
    table.add_column("group", style="bold")
    table.add_column("fact")
    table.add_column("value", overflow="fold")
    for group, keys in GROUPS.items():
        for i, key in enumerate(keys):
            table.add_row(group if i == 0 else "", key, _text(facts.get(key)))
        table.add_section()
    if now is not None:
        for i, key in enumerate(NOW):
            table.add_row("GPU now" if i == 0 else "", key, _text(now.get(key)))
    output.out.print(table)
    if why is not None and torch_device.type == "cuda":
        output.notice(why)


def _text(value: Any) -> str:
    """Plain text for a fact: dicts as k=v pairs, lists comma-joined, unknown as '-'."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
