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
from sr_bench.results import (
    SCHEMA_VERSION,
    CheckpointFacts,
    DataInfo,
    EvalRecord,
    ExecInfo,
    ImageRow,
    MeanMetrics,
    SkippedImage,
    TileInfo,
    split_measurement,
)
from sr_bench.runlog import METRICS
from sr_bench.timing import Measurement, clock_kind


def means(rows: list[dict]) -> MeanMetrics:
    """The mean of every metric and of the runtime over ``rows``."""
    return MeanMetrics(**{k: float(np.mean([r[k] for r in rows])) for k in (*METRICS, "runtime_ms")})


def eval_record(loaded: LoadedModel, dataset: Dataset, device: torch.device, options: EvalOptions,
                exec_info: ExecInfo, rows: list[dict], bad: list[BadImage], warmup_ms: list[float],
                memory: DevicePolicy, log_path: Path, resumed: bool) -> EvalRecord:
    """The record (before ``results.stamp``): rows in dataset order, means, runtime summary, memory, provenance."""
    runtime, peak = split_measurement(Measurement(
        samples_ms=[r["runtime_ms"] for r in rows],
        peak_memory_mib=memory.peak_mib,
        memory_kind=memory.kind,
        clock=clock_kind(device),
        warmup_ms=warmup_ms,
        memory_baseline_mib=memory.baseline_mib,
        memory_method=memory.method,
    ).to_dict())
    runtime.pop("warnings")  # images differ in size, so their spread is not noise: noise warnings do not apply
    checkpoint = loaded.checkpoint.to_dict()
    return EvalRecord(
        kind="eval",
        schema_version=SCHEMA_VERSION,
        model=loaded.name,
        scale=loaded.scale,
        dataset=dataset.name,
        dataset_requested=dataset.requested,
        split=dataset.spec.split if dataset.spec else None,
        protocol=options.protocol,
        device=str(device),
        images=[ImageRow(**row) for row in rows],
        mean=means(rows),
        runtime_ms=runtime,
        memory_mib=peak["peak_mib"],
        memory=peak,
        env=environment(device, checkpoint, threads=exec_info.get("threads")),
        exec=exec_info,
        checkpoint=CheckpointFacts(**checkpoint),
        shims=loaded.shims,  # CPU stand-ins for .cuda() in the model's code (sr_bench.user_code)
        data_range=loaded.data_range,
        crop_border=loaded.scale,
        data=DataInfo(
            hr_dir=str(dataset.hr_dir),
            lr_dir=str(dataset.lr_dir) if dataset.lr_dir else None,
            lr_source=dataset.lr_source,
            images_in_set=len(dataset.pairs),
            expected=dataset.spec.count if dataset.spec else None,
            limit=options.limit,
        ),
        skipped=[SkippedImage(name=b.name, path=str(b.path), error=b.error) for b in bad],
        tile=TileInfo(size=options.tile, overlap=options.tile_overlap) if options.tile else None,
        run_log=str(log_path),
        resumed=resumed,
        notices=list(dataset.notices),
        warnings=list(loaded.warnings),
    )
