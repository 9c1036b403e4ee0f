"""The Python half of ``benchmarks/gpu_check.sh``: find Set5, then turn the folder of records into the summary.

``gpu_check.sh`` runs srbench the way a user does (one ``srbench`` process per step) and writes everything under
one folder; this script reads that folder back and checks what the GPU run must show:

* CUDA vs CPU per-image PSNR in fp32: every difference <= 1e-3 dB (a hard check: exit 1 when it fails);
* the robust median's spread over the repeated profiles: CV = std / mean per model (target <= 2%);
* the official per-image loop vs ``srbench eval`` on the same images: process wall times, and the loop's own;
* peak memory per protocol (profile) and per execution mode (eval);
* each execution mode's speed-up (fp32 mean per-image runtime / the mode's) and PSNR change (mode - fp32);
* every fair-timing warning (``gpu_conditions``) met on the way.

Usage::

    python benchmarks/gpu_check.py set5-dirs [--data-root DIR]        # prints "HR_DIR<TAB>LR_DIR"
    python benchmarks/gpu_check.py summarize OUT_DIR                   # writes OUT_DIR/summary.json, prints it
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's sr_bench, as the shell script's srbench calls use

from sr_bench.results import atomic_write_text, gpu_warnings, load_records  # noqa: E402

PSNR_CUDA_CPU_TOLERANCE_DB = 1e-3  # fp32: CUDA kernels may round differently, never by more
CV_TARGET = 0.02
FP32 = "eager"  # the label of the fp32 eval (the model as written)


def set5_dirs(data_root: Path | None) -> tuple[Path, Path]:
    """Set5's HR and x4 LR folders as srbench finds them (under ``data_root``, else the built-in copy)."""
    from sr_bench.datasets import resolve_dataset
    from sr_bench.paths import data_root as default_root

    dataset = resolve_dataset("set5", default_root(data_root), 4)
    if dataset.lr_dir is None:
        raise SystemExit(f"Set5 under {dataset.hr_dir} has no x4 LR folder; the official loop needs one")
    return dataset.hr_dir, dataset.lr_dir


# ---------------------------------------------------------------------------------------------------------
# Reading the folder


def _records(folder: Path) -> list[dict]:
    if not folder.is_dir():
        return []
    records, _ = load_records(folder)
    return records


def _walls(path: Path) -> dict[str, float]:
    """``name<TAB>seconds`` lines written by the shell script's ``timed`` function."""
    if not path.is_file():
        return {}
    return {name: float(value) for name, value in (line.split("\t") for line in path.read_text().splitlines() if line)}


def _evals(records: Iterable[dict], label: str) -> dict[str, dict]:
    """The newest eval record per model with this exec label (records come oldest first)."""
    out: dict[str, dict] = {}
    for record in records:
        if record.get("kind") == "eval" and record["exec"]["label"] == label and record["protocol"] == "robust":
            out[record["model"]] = record
    return out


# ---------------------------------------------------------------------------------------------------------
# The checks


def psnr_cuda_vs_cpu(gpu: dict[str, dict], cpu: dict[str, dict]) -> dict:
    """Per-image |PSNR(device run) - PSNR(CPU run)| in fp32, RGB and Y, per model; pass when all <= 1e-3 dB."""
    models = {}
    for model in sorted(gpu.keys() & cpu.keys()):
        reference = {row["name"]: row for row in cpu[model]["images"]}
        diffs = {row["name"]: {k: abs(row[k] - reference[row["name"]][k]) for k in ("psnr_rgb", "psnr_y")}
                 for row in gpu[model]["images"] if row["name"] in reference}
        worst = max((d for row in diffs.values() for d in row.values()), default=math.nan)
        models[model] = {"images": diffs, "max_abs_db": worst, "device": gpu[model]["device"]}
    worst = max((m["max_abs_db"] for m in models.values()), default=math.nan)
    return {"tolerance_db": PSNR_CUDA_CPU_TOLERANCE_DB, "models": models, "max_abs_db": worst,
            "pass": bool(models) and worst <= PSNR_CUDA_CPU_TOLERANCE_DB}


def profile_spread(records: Iterable[dict]) -> dict:
    """CV of the robust median over the repeated robust profiles, per model."""
    medians: dict[str, list[float]] = {}
    for record in records:
        if record.get("kind") == "profile" and record["protocol"] == "robust" and record["runtime_ms"]:
            medians.setdefault(record["model"], []).append(record["runtime_ms"]["median"])
    out = {}
    for model, values in sorted(medians.items()):
        mean = statistics.fmean(values)
        cv = statistics.stdev(values) / mean if len(values) > 1 and mean > 0 else None
        out[model] = {"medians_ms": values, "cv": cv, "meets_target": cv is not None and cv <= CV_TARGET}
    return {"target_cv": CV_TARGET, "models": out}


def peak_memory(records: Iterable[dict]) -> dict:
    """Peak memory (MiB, with what it measures) of the newest profile per (model, protocol) and eval per exec."""
    profile: dict[str, dict] = {}
    evals: dict[str, dict] = {}
    for record in records:
        if record.get("kind") == "profile" and record["runtime_ms"]:
            profile.setdefault(record["model"], {})[record["protocol"]] = record["memory_mib"]
        elif record.get("kind") == "eval" and record["protocol"] == "robust":
            evals.setdefault(record["model"], {})[record["exec"]["label"]] = record["memory_mib"]
    kinds = {(r.get("memory") or {}).get("kind") for r in records} - {None}
    return {"kind": sorted(kinds), "profile_by_protocol": profile, "eval_by_exec": evals}


def exec_modes(records: list[dict], labels: Iterable[str]) -> dict:
    """Each mode against the fp32 eval: speed-up of the mean per-image runtime, change of the mean PSNR RGB."""
    base = _evals(records, FP32)
    out: dict[str, dict] = {}
    for label in labels:
        for model, record in _evals(records, label).items():
            if model not in base:
                continue
            ref = base[model]["mean"]
            out.setdefault(model, {})[label] = {
                "runtime_ms": record["mean"]["runtime_ms"],
                "speedup": ref["runtime_ms"] / record["mean"]["runtime_ms"],
                "psnr_rgb_change_db": record["mean"]["psnr_rgb"] - ref["psnr_rgb"],
                "psnr_y_change_db": record["mean"]["psnr_y"] - ref["psnr_y"],
            }
    return {"fp32_runtime_ms": {m: r["mean"]["runtime_ms"] for m, r in base.items()}, "models": out}


def official_vs_srbench(out_dir: Path, walls: dict[str, float]) -> dict:
    """Process wall time of the official loop and of ``srbench eval`` on the same images, and their PSNRs."""
    models = {}
    for path in sorted(out_dir.glob("official-*.json")):
        model = path.stem.removeprefix("official-")
        run = json.loads(path.read_text())
        srbench_wall, official_wall = walls.get(f"srbench-eval-{model}"), walls.get(f"official-{model}")
        models[model] = {
            "official_process_wall_s": official_wall,
            "official_loop_wall_s": run["wall_s"],
            "official_forward_ms_mean": statistics.fmean(i["forward_ms"] for i in run["images"]),
            "official_memory_mib": run.get("memory_mib"),
            "srbench_process_wall_s": srbench_wall,
            "official_over_srbench": (official_wall / srbench_wall) if official_wall and srbench_wall else None,
            "psnr_rgb": {i["name"]: i["psnr_rgb"] for i in run["images"]},
        }
    return {"models": models, "present": (REPO / "benchmarks" / "official_loop.py").is_file()}


def guard_warnings(records: Iterable[dict]) -> list[str]:
    seen = []
    for record in records:
        for warning in gpu_warnings(record):  # a torchrun eval's: every rank's
            seen.append(f"{record['kind']} {record['model']} ({record['protocol']}, {record['exec']['label']}): {warning}")
    return seen


def summarize(out_dir: Path) -> dict:
    records = _records(out_dir / "results")
    cpu = _records(out_dir / "results-cpu")
    env_path = out_dir / "env.json"
    env = json.loads(env_path.read_text()) if env_path.is_file() else None
    walls = _walls(out_dir / "walls.tsv")
    labels = sorted({r["exec"]["label"] for r in records if r.get("kind") == "eval"} - {FP32})
    pytest_rc = out_dir / "pytest-gpu.rc"
    summary = {
        "device": (env or {}).get("device"),
        "gpu": (env or {}).get("gpu_name"),
        "env": env,
        "psnr_cuda_vs_cpu": psnr_cuda_vs_cpu(_evals(records, FP32), _evals(cpu, FP32)),
        "profile_spread": profile_spread(records),
        "peak_memory_mib": peak_memory(records),
        "exec_modes": exec_modes(records, labels),
        "official_vs_srbench": official_vs_srbench(out_dir, walls),
        "gpu_conditions_warnings": guard_warnings(records),
        "gpu_tests_rc": int(pytest_rc.read_text()) if pytest_rc.is_file() else None,
        "walls_s": walls,
    }
    summary["pass"] = summary["psnr_cuda_vs_cpu"]["pass"] and summary["gpu_tests_rc"] in (0, None)
    return summary


def _print(summary: dict) -> None:
    p = print
    p(f"device: {summary['device']}  GPU: {summary['gpu'] or '-'}")
    check = summary["psnr_cuda_vs_cpu"]
    p(f"PSNR {check['models'] and next(iter(check['models'].values()))['device']} vs CPU, fp32, per image: max |diff| "
      f"{check['max_abs_db']:.2e} dB (must be <= {check['tolerance_db']:g}): {'PASS' if check['pass'] else 'FAIL'}")
    for model, m in check["models"].items():
        p(f"  {model}: max {m['max_abs_db']:.2e} dB over {len(m['images'])} images")
    p(f"robust median spread over repeated profiles (target CV <= {CV_TARGET:.0%}):")
    for model, m in summary["profile_spread"]["models"].items():
        cv = "-" if m["cv"] is None else f"{m['cv']:.2%}"
        p(f"  {model}: medians {', '.join(f'{v:.3f}' for v in m['medians_ms'])} ms; CV {cv}")
    memory = summary["peak_memory_mib"]
    p(f"peak memory, MiB ({', '.join(memory['kind'])}):")
    for model, by in memory["profile_by_protocol"].items():
        p(f"  profile {model}: " + ", ".join(f"{k} {v:.2f}" for k, v in by.items() if v is not None))
    for model, by in memory["eval_by_exec"].items():
        p(f"  eval    {model}: " + ", ".join(f"{k} {v:.2f}" for k, v in by.items() if v is not None))
    modes = summary["exec_modes"]
    p("execution modes vs fp32 eval (mean per-image runtime; mean PSNR RGB change):")
    for model, by in modes["models"].items():
        p(f"  {model} (fp32 {modes['fp32_runtime_ms'][model]:.3f} ms): " + "; ".join(
            f"{k} {v['speedup']:.2f}x {v['psnr_rgb_change_db']:+.4f} dB" for k, v in by.items()))
    official = summary["official_vs_srbench"]
    if not official["present"]:
        p("official loop: benchmarks/official_loop.py is not in this checkout; skipped")
    for model, m in official["models"].items():
        ratio = "-" if m["official_over_srbench"] is None else f"{m['official_over_srbench']:.2f}x"
        p(f"  official loop {model}: process {m['official_process_wall_s']:.2f} s (loop {m['official_loop_wall_s']:.2f} s,"
          f" forward {m['official_forward_ms_mean']:.3f} ms) vs srbench eval {m['srbench_process_wall_s']:.2f} s: {ratio}")
    warnings = summary["gpu_conditions_warnings"]
    p(f"fair-timing warnings: {len(warnings)}")
    for warning in warnings:
        p(f"  {warning}")
    p(f"gpu tests (pytest -m gpu): rc {summary['gpu_tests_rc']}")
    p(f"overall: {'PASS' if summary['pass'] else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    dirs = sub.add_parser("set5-dirs", help="print Set5's HR and LR folders")
    dirs.add_argument("--data-root", type=Path)
    summary = sub.add_parser("summarize", help="write OUT/summary.json and print it")
    summary.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "set5-dirs":
        hr, lr = set5_dirs(args.data_root)
        print(f"{hr}\t{lr}")
        return 0
    result = summarize(args.out)
    atomic_write_text(args.out / "summary.json", json.dumps(result, indent=2, default=str) + "\n")
    _print(result)
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
