"""How much does srbench's profiling itself cost? Ratios measured in one run (CPU).

(a) complexity counting (all conventions, on both seeded inputs that reveal input-dependent work) / one plain
    forward of the same model and input, both run the way ``srbench profile`` runs them (the counter on the
    model as given; the plain forward in eager and in the execution mode the profile uses). Target: counting
    <= 3 eager forwards in total.
(b) whole ``srbench profile`` wall time (a fresh process: start-up, model load, counting, warm-up, timing,
    record) against the forwards it timed (warm-up + repeats). Target: start-up and everything else
    <= 10% of the wall time; counting is reported as its own share.

Usage: python benchmarks/bench_profile.py [--size 256] [--models lgvan,dlgsanet-tiny]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from sr_bench.complexity import count_complexity
from sr_bench.execution import parse_exec, prepare, resolve_exec
from sr_bench.zoo import get_spec


def best_of(fn, n: int = 2) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def counting_ratio(name: str, size: int) -> None:
    """Counting time against forwards timed right before and after it (this VM's speed drifts)."""
    model = get_spec(name).build()
    shape = (1, 3, size, size)
    x = torch.rand(shape)
    mode, _ = resolve_exec(parse_exec("auto"), model, torch.device("cpu"))
    fast = prepare(model, mode, torch.device("cpu"))
    with torch.inference_mode():
        model(x), fast(x)  # first calls pay one-off set-up
        eager_s = [best_of(lambda: model(x)), best_of(lambda: fast(x))]
        t0 = time.perf_counter()
        report = count_complexity(model, shape)
        count_s = time.perf_counter() - t0
        eager_s += [best_of(lambda: model(x)), best_of(lambda: fast(x))]
    eager, mode_s = min(eager_s[0], eager_s[2]), min(eager_s[1], eager_s[3])
    verdict = "ok" if count_s / eager <= 3 else "OVER the 3-forward target"
    print(f"{name:16s} (a) counting {count_s:6.2f} s ({report.forward_passes} model forwards run) = "
          f"{count_s / eager:5.2f} eager forwards ({eager:.2f} s, {verdict}) = {count_s / mode_s:5.2f} {mode.label} "
          f"forwards ({mode_s:.2f} s)")


def wall_ratio(name: str, size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        record_path = Path(tmp) / "record.json"
        cmd = [sys.executable, "-m", "sr_bench", "profile", "--model", name, "--size", str(size),
               "--json", str(record_path), "--results", tmp, "--device", "cpu"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        record = json.loads(record_path.read_text())
    rt = record["runtime_ms"]
    forwards_s = (sum(rt["samples"]) + sum(rt["warmup_samples"])) / 1e3
    counting_s = record["profile_timings_s"]["complexity"]
    other_s = wall - forwards_s - counting_s
    print(f"{name:16s} (b) wall {wall:6.2f} s / timed forwards {forwards_s:6.2f} s = {wall / forwards_s:4.2f}; "
          f"counting {counting_s / wall:5.1%} of wall, start-up and everything else {other_s / wall:5.1%} "
          f"({len(rt['warmup_samples'])} warm-up + {rt['n']} timed, exec {record['exec']['label']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--models", default="lgvan,dlgsanet-tiny")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input 1x3x{args.size}x{args.size}")
    for name in args.models.split(","):
        counting_ratio(name, args.size)
        wall_ratio(name, args.size)


if __name__ == "__main__":
    main()
