"""CPU speed of srbench's execution modes, measured in one run: model forwards, then a whole `srbench eval`.

Part ``forward``: for each model (random weights; timing does not depend on them) at 1x3x256x256 the modes eager,
retain_heap (eager with glibc keeping freed memory), channels_last, bf16+channels_last and auto run interleaved (one forward of each mode per round, so a noisy
neighbour hits all modes alike) after one untimed warm-up forward each; each mode's time is its minimum over the
rounds. The table gives the speed-up over eager (eager time / mode time) and the max |output - eager output|,
absolute and as a fraction of the model's data range.

Part ``eval``: ``srbench eval`` (defaults: ``--exec auto``, robust protocol; SR PNGs saved) against the official NTIRE
per-image loop (``official_loop.py``: the harness's ``test_demo.py`` with KAIR's cv2-based ``utils_image``,
re-implemented faithfully) in both its variants, ``--ssim`` and the default PSNR only, on the first ``--limit`` B100
images with LGVAN's real checkpoint (``common.versus_official``). B100 ships no LR, so the LR files are made once
before any clock and both sides read the same folders. Each side is a fresh process timed from outside (both pay
interpreter start, ``import torch`` and model loading; srbench also its CLI imports, the auto probe and its
warm-up), with the same ``--eval-threads``; the first side rotates every round and each keeps its minimum. The
script fails when per-image PSNR/SSIM differ by more than 1e-4 dB / 1e-5.

    python benchmarks/bench_cpu_modes.py                     # both parts: lgvan, rfdn, dlgsanet-tiny; then eval
    python benchmarks/bench_cpu_modes.py --part forward --models lgvan --rounds 5 --threads 2
    python benchmarks/bench_cpu_modes.py --part eval --limit 20 --eval-rounds 2
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from common import WEIGHTS, versus_official
from sr_bench.clocks import time_call
from sr_bench.env import environment
from sr_bench.execution import ExecMode, PreparedModel, default_threads, prepare, resolve_auto
from sr_bench.timing import pinned_threads
from sr_bench.zoo import get_spec

CPU = torch.device("cpu")
FIXED_MODES = {
    "eager": ExecMode(),
    "retain_heap": ExecMode(retain_heap=True),
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
    parser.add_argument("--part", choices=("forward", "eval", "all"), default="all")
    parser.add_argument("--models", nargs="+", default=["lgvan", "rfdn", "dlgsanet-tiny"])
    parser.add_argument("--size", type=int, default=256, help="LR height and width")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed forwards per mode")
    parser.add_argument("--threads", type=int, default=default_threads(), help="torch threads, both parts and sides")
    parser.add_argument("--limit", type=int, default=20, help="B100 images for the eval part")
    parser.add_argument("--eval-rounds", type=int, default=2, help="rounds of the eval part (each side once a round)")
    parser.add_argument("--weights", type=Path, default=WEIGHTS / "team18_LGVAN.pth",
                        help="LGVAN checkpoint, used by both sides of the eval part")
    args = parser.parse_args()

    console = Console()
    env = environment(CPU, threads=args.threads)
    console.print(f"{env['cpu_model']} | {os.cpu_count()} logical cores | torch {env['torch']} | "
                  f"flags {env['cpu_flags']} | load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.part in ("forward", "all"):
        title = f"CPU execution modes, 1x3x{args.size}x{args.size}, min of {args.rounds} interleaved rounds"
        with pinned_threads(args.threads):
            for name in args.models:  # one table per model, printed as soon as it is measured
                console.print(_model_table(name, args.size, args.rounds, title))
    if args.part in ("eval", "all"):
        versus_official("lgvan (real checkpoint)", ["--model", "lgvan", "--weights", str(args.weights)], args.limit,
                        args.eval_rounds, args.threads, target=3)


if __name__ == "__main__":
    main()
