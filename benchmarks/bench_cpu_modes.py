"""CPU forward time of each execution mode against eager NCHW fp32, measured in one run.

For each model (random weights; timing does not depend on them) at 1x3x256x256 the modes eager, channels_last,
bf16+channels_last and auto run interleaved (one forward of each mode per round, so a noisy neighbour hits all
modes alike) after one untimed warm-up forward each; each mode's time is its minimum over the rounds. The table
gives the speed-up over eager (eager time / mode time) and the max |output - eager output|, absolute and as a
fraction of the model's data range.

    python benchmarks/bench_cpu_modes.py                     # lgvan, rfdn, dlgsanet-tiny
    python benchmarks/bench_cpu_modes.py --models lgvan --rounds 5 --threads 2
"""

from __future__ import annotations

import argparse

import torch
from rich.console import Console
from rich.table import Table

from sr_bench.env import environment
from sr_bench.execution import ExecMode, PreparedModel, default_threads, prepare, resolve_auto
from sr_bench.timing import pinned_threads, time_call
from sr_bench.zoo import get_spec

CPU = torch.device("cpu")
FIXED_MODES = {
    "eager": ExecMode(),
    "channels_last": ExecMode(memory_format="channels_last"),
    "bf16+channels_last": ExecMode(memory_format="channels_last", dtype="bf16", dtype_method="autocast"),
}


def _prepared_modes(model: torch.nn.Module, data_range: float) -> tuple[dict[str, PreparedModel], str]:
    """Every mode to time, keyed by row name, and the auto probe's reason.

    auto is prepared and timed on its own even though it resolves to one of the fixed modes: the gap between the
    two rows of the same mode shows how noisy the machine was.
    """
    auto, probe = resolve_auto(model, CPU, data_range=data_range)
    modes = {name: prepare(model, mode, CPU) for name, mode in FIXED_MODES.items()}
    modes[f"auto ({auto.label})"] = prepare(model, auto, CPU)
    return modes, f"auto: {probe['reason']}"


def _measure(
    modes: dict[str, PreparedModel], x: torch.Tensor, rounds: int
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Min forward time (s) per mode over interleaved rounds, and each mode's output from its warm-up forward."""
    outputs = {name: run(x) for name, run in modes.items()}  # untimed warm-up, kept for the diff
    best = {name: float("inf") for name in modes}
    for _ in range(rounds):
        for name, run in modes.items():
            best[name] = min(best[name], time_call(lambda: run(x), CPU)[1] / 1e3)
    return best, outputs


def _model_table(name: str, size: int, rounds: int, title: str) -> Table:
    """Build one zoo model (random weights, seeded), measure every mode and tabulate it against eager."""
    spec = get_spec(name)
    torch.manual_seed(0)
    model = spec.build(4)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * spec.data_range
    modes, auto_note = _prepared_modes(model, spec.data_range)
    best, outputs = _measure(modes, x, rounds)
    table = Table(title=f"{name}: {title}", caption=auto_note)
    for column in ("mode", "time [s]", "vs eager", "max |diff|", "diff / range"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode_name in modes:
        diff = float((outputs[mode_name] - outputs["eager"]).abs().max())
        table.add_row(
            mode_name, f"{best[mode_name]:.3f}", f"{best['eager'] / best[mode_name]:.2f}x",
            f"{diff:.2e}", f"{diff / spec.data_range:.1e}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lgvan", "rfdn", "dlgsanet-tiny"])
    parser.add_argument("--size", type=int, default=256, help="LR height and width")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed forwards per mode")
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args()

    console = Console()
    env = environment(CPU, threads=args.threads)
    console.print(f"{env['cpu_model']} | {args.threads} threads | torch {env['torch']} | flags {env['cpu_flags']}")
    title = f"CPU execution modes, 1x3x{args.size}x{args.size}, min of {args.rounds} interleaved rounds"
    with pinned_threads(args.threads):
        for name in args.models:  # one table per model, printed as soon as it is measured
            console.print(_model_table(name, args.size, args.rounds, title))


if __name__ == "__main__":
    main()
