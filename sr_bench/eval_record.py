"""The stored record of one (model, dataset) eval, built from its finished rows and the run's facts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sr_bench.datasets import BadImage, Dataset
from sr_bench.device_policy import DevicePolicy
from sr_bench.env import environment
from sr_bench.eval_config import EvalOptions
from sr_bench.models import LoadedModel
from sr_bench.runlog import METRICS
from sr_bench.timing import Measurement, clock_kind


def means(rows: list[dict]) -> dict:
    """The mean of every metric and of the runtime over ``rows``."""
    return {k: float(np.mean([r[k] for r in rows])) for k in (*METRICS, "runtime_ms")}


def eval_record(loaded: LoadedModel, dataset: Dataset, device: torch.device, options: EvalOptions, exec_info: dict,
                rows: list[dict], bad: list[BadImage], warmup_ms: list[float], memory: DevicePolicy,
                log_path: Path, resumed: bool) -> dict:
    """The record (before ``results.stamp``): rows in dataset order, means, runtime summary, memory, provenance."""
    measurement = Measurement(
        samples_ms=[r["runtime_ms"] for r in rows],
        peak_memory_mib=memory.peak_mib,
        memory_kind=memory.kind,
        clock=clock_kind(device),
        warmup_ms=warmup_ms,
        memory_baseline_mib=memory.baseline_mib,
        memory_method=memory.method,
    ).to_dict()
    memory_keys = ("peak_memory_mib", "memory_baseline_mib", "memory_kind", "memory_method")
    # images differ in size, so their spread is not noise: the measurement's noise warnings do not apply here
    dropped = (*memory_keys, "warnings")
    checkpoint = loaded.checkpoint.to_dict()
    return {
        "kind": "eval",
        "model": loaded.name,
        "scale": loaded.scale,
        "dataset": dataset.name,
        "dataset_requested": dataset.requested,
        "split": dataset.spec.split if dataset.spec else None,
        "protocol": options.protocol,
        "device": str(device),
        "images": rows,
        "mean": means(rows),
        "runtime_ms": {k: v for k, v in measurement.items() if k not in dropped},
        "memory_mib": measurement["peak_memory_mib"],
        "memory": {k: measurement[k] for k in memory_keys},
        "env": environment(device, checkpoint, threads=exec_info.get("threads")),
        "exec": exec_info,
        "checkpoint": checkpoint,
        "data_range": loaded.data_range,
        "crop_border": loaded.scale,
        "data": {
            "hr_dir": str(dataset.hr_dir),
            "lr_dir": str(dataset.lr_dir) if dataset.lr_dir else None,
            "lr_source": dataset.lr_source,
            "images_in_set": len(dataset.pairs),
            "expected": dataset.spec.count if dataset.spec else None,
            "limit": options.limit,
        },
        "skipped": [{"name": b.name, "path": str(b.path), "error": b.error} for b in bad],
        "tile": {"size": options.tile, "overlap": options.tile_overlap} if options.tile else None,
        "run_log": str(log_path),
        "resumed": resumed,
        "notices": list(dataset.notices),
        "warnings": list(loaded.warnings),
    }
