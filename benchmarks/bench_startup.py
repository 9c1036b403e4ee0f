"""How fast do srbench's light commands start? Ratios against ``python -c "import torch"``, measured in one run.

Each round runs, in a fresh process and in turn (interleaved, so the VM's speed drift hits every side alike):
``python -c "import torch"``, ``srbench --help`` and ``srbench report`` on a results folder of 3 records (two
profiles and one eval, written here). The script prints the median wall time of each and the two ratios.
Target: each ratio <= 0.25 (neither command imports torch).

Usage: python benchmarks/bench_startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sr_bench.results import write_record

REPO = Path(__file__).resolve().parent.parent


def _records(folder: Path) -> None:
    """Three small, valid records: what ``srbench report`` reads in a typical session."""
    for model, params, flops in (("lgvan", 118243, 9036601472), ("rfdn", 433448, 27046231296)):
        write_record({"kind": "profile", "model": model, "scale": 4, "input_size": [256, 256], "device": "cpu",
                      "protocol": "robust", "params": params, "flops": {"ntire2023": flops, "fvcore": flops,
                                                                         "full": flops},
                      "activations": 1, "num_conv": 1, "runtime_ms": None, "memory_mib": None, "env": {},
                      "warnings": []}, folder)
    write_record({"kind": "eval", "model": "lgvan", "scale": 4, "dataset": "set5", "protocol": "robust",
                  "device": "cpu", "images": [],
                  "mean": {"psnr_rgb": 30.27, "ssim_rgb": 0.86, "psnr_y": 32.2, "ssim_y": 0.9, "runtime_ms": 94.0},
                  "runtime_ms": {"mean": 94.0, "median": 84.0, "std": 28.0, "samples": [94.0]},
                  "memory_mib": 492.0, "env": {}}, folder)


def _wall(cmd: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median of each side)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _records(Path(tmp))
        commands = {
            "import torch": [sys.executable, "-c", "import torch"],
            "srbench --help": [sys.executable, "-m", "sr_bench", "--help"],
            "srbench report (3 records)": [sys.executable, "-m", "sr_bench", "report", "--results", tmp,
                                           "--val", "set5", "--test", "none"],
        }
        for cmd in commands.values():  # warm the file cache once, untimed
            _wall(cmd)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, cmd in commands.items():
                times[name].append(_wall(cmd))
    median = {name: statistics.median(t) for name, t in times.items()}
    base = median["import torch"]
    for name, value in median.items():
        ratio = "" if name == "import torch" else f"  ratio {value / base:.3f} (target <= 0.25)"
        print(f"{name:28s} median {value * 1000:7.1f} ms over {args.rounds} rounds{ratio}")


if __name__ == "__main__":
    main()
