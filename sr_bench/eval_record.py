"""The stored record of one (model, dataset) eval, built from its finished rows and the run's facts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sr_bench.clocks import clock_kind
from sr_bench.datasets import BadImage, Dataset
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
    MemoryInfo,
    RuntimeStats,
    SkippedImage,
    TileInfo,
    split_measurement,
)
from sr_bench.runlog import METRICS
from sr_bench.timing import Measurement


def means(rows: list[dict]) -> MeanMetrics:
    """The mean of every metric and of the runtime over ``rows``."""
    return MeanMetrics(**{k: float(np.mean([r[k] for r in rows])) for k in (*METRICS, "runtime_ms")})


def memory_over_segments(segments: list[dict], images: int) -> MemoryInfo:
    """The record's peak memory from the run log's segments (oldest first, this process's last): the max over
    those that ran a forward, with ``peak_source`` saying where it comes from and ``segments`` listing them.

    A resume's own process peak says nothing about the images an earlier process ran (an empty resume measures
    the bare process), so the earlier segments' peaks count; a segment killed before it could write its line
    (SIGKILL) is missing, and ``peak_source`` then says how many of the ``images`` the peak covers.
    """
    current = segments[-1]
    ran = [s for s in segments if s.get("forwards") and isinstance(s.get("peak_memory_mib"), (int, float))]
    top = max(ran, key=lambda s: s["peak_memory_mib"]) if ran else current
    covered = sum(s.get("forwards") or 0 for s in segments)
    if len(segments) == 1:
        source = "this run (one process)" if covered >= images else "this process only"
    elif not current["forwards"]:
        source = f"the earlier segment of pid {top['pid']}: this resume ran no forward"
    else:
        source = f"max over the {len(ran)} run-log segment(s) that ran forwards"
    if covered < images:
        source += f"; covers {covered} of {images} images (an earlier process left no memory line: killed?)"
    return MemoryInfo(
        peak_mib=top.get("peak_memory_mib"),
        baseline_mib=top.get("memory_baseline_mib"),
        kind=current["memory_kind"],
        method=top.get("memory_method") or current["memory_method"],
        peak_source=source,
        segments=[{k: s.get(k) for k in ("pid", "forwards", "complete", "peak_memory_mib")} for s in segments],
    )


def runtime_summary(rows: list[dict], warmup_ms: list[float], device: torch.device) -> RuntimeStats:
    """Runtime statistics over the rows' forwards (memory is summarised separately: :func:`memory_over_segments`)."""
    runtime, _ = split_measurement(Measurement(samples_ms=[r["runtime_ms"] for r in rows], peak_memory_mib=None,
                                               memory_kind="cpu_rss_peak", clock=clock_kind(device),
                                               warmup_ms=warmup_ms).to_dict())
    runtime.pop("warnings")  # images differ in size, so their spread is not noise: noise warnings do not apply
    return runtime


def eval_record(loaded: LoadedModel, dataset: Dataset, device: torch.device, options: EvalOptions,
                exec_info: ExecInfo, rows: list[dict], bad: list[BadImage], warmup_ms: list[float],
                memory: MemoryInfo, log_path: Path, resumed: bool) -> EvalRecord:
    """The record (before ``results.stamp``): rows in dataset order, means, runtime summary, memory (a
    :func:`memory_over_segments` summary), provenance."""
    checkpoint = loaded.checkpoint.to_dict()
    return EvalRecord(
        kind="eval",
        schema_version=SCHEMA_VERSION,
        model=loaded.name,
        **loaded.model_facts(),  # the network's arguments and source file, beside its checkpoint
        scale=loaded.scale,
        dataset=dataset.name,
        dataset_requested=dataset.requested,
        split=dataset.spec.split if dataset.spec else None,
        protocol=options.protocol,
        device=str(device),
        images=[ImageRow(**row) for row in rows],
        mean=means(rows),
        runtime_ms=runtime_summary(rows, warmup_ms, device),
        memory_mib=memory["peak_mib"],
        memory=memory,
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
