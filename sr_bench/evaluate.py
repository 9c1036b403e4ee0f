"""The eval loop: a model over a dataset, per-image PSNR/SSIM with per-image runtime and peak memory.

Only the model's forward is timed (``clocks.time_call``: CUDA events or ``perf_counter``); decoding, scoring,
saving and logging hide behind it in the threads of :mod:`sr_bench.pipeline`, and what runs where on each device
(input building, scoring, peak memory) is the :mod:`sr_bench.device_policy`'s business. Finished images go to a
JSONL run log (:mod:`sr_bench.runlog`), so an interrupted run (Ctrl-C, a full disk, an OOM) keeps them and
``resume=True`` continues from it. On CPU the threads share the cores with the model; for the cleanest CPU
timings leave one core free (``threads`` below the core count).

Protocols: ``robust`` warms up (``timing.warm_up``) on the first image's shape before anything is timed and
resets peak memory at the start of each dataset; ``ntire2023``/``ntire2024`` time every image once with no
warm-up (the first image pays start-up, as in the challenge) and never reset peak memory.

Reduced precision (``--exec bf16``/``fp16``) changes quality numbers, so such a record carries
``fp32_reference`` (:mod:`sr_bench.fp32_reference`). Several models and sets: :mod:`sr_bench.eval_all`.

Example::

    loaded = resolve_model("rfdn", require_weights=True)
    ds = resolve_dataset("set5", Path("../shared/data"), loaded.scale)
    result = evaluate(loaded, ds, torch.device("cpu"), EvalOptions(results_dir=Path("results")))
    result.record["mean"]["psnr_rgb"]
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from sr_bench.clocks import time_call
from sr_bench.datasets import BadImage, CheckedPair, Dataset, bad_image, check_pairs, lr_cache_dir, sixteen_bit_warning
from sr_bench.device_policy import DevicePolicy, policy_for
from sr_bench.errors import DatasetError, NonFiniteOutputError
from sr_bench.eval_config import EvalOptions
from sr_bench.eval_record import eval_record, memory_over_segments
from sr_bench.execution import ExecMode, PreparedModel, parse_exec, prepare, resolve_exec, threads_notice
from sr_bench.fp32_reference import fp32_reference, reference_notice, stored_records
from sr_bench.gpu_conditions import GpuGuard
from sr_bench.images import PNG_ENCODING, check_finite
from sr_bench.memcheck import MemoryEstimator, check_eval_fits
from sr_bench.models import LoadedModel, check_output_shape
from sr_bench.pipeline import WRITE_DEPTH, Decoded, Failed, Finisher, Prefetcher, worker_count
from sr_bench.protocols import get_protocol
from sr_bench.results import EvalRecord, ExecInfo, MemoryInfo, safe_name, stamp, write_record
from sr_bench.runlog import RunLog, log_header, run_identity, run_key, write_error
from sr_bench.tiling import Forward, tiled
from sr_bench.timing import cudnn_benchmark, pinned_threads, warm_up

EventKind = Literal["notice", "start", "image", "skip", "done"]


@dataclass(frozen=True)
class EvalEvent:
    """Progress for renderers: a notice, a dataset starting, one image done or skipped, a dataset done."""

    kind: EventKind
    model: str = ""
    dataset: str = ""
    done: int = 0  # images finished so far in this dataset (resumed ones included)
    total: int = 0
    message: str = ""  # the notice, or the image name
    psnr: float | None = None  # this image's PSNR RGB
    mean_psnr: float | None = None  # running mean PSNR RGB over the finished images
    reason: str = ""  # why a skipped image was skipped (unreadable, non-finite output, ...), as its record says


ProgressFn = Callable[[EvalEvent], None]


@dataclass(frozen=True)
class EvalResult:
    record: EvalRecord
    path: Path  # where the record was stored in the results folder


@dataclass(frozen=True)
class PreparedRun:
    """A model in its execution mode, made once per model so several datasets share one converted copy
    (and one compilation)."""

    mode: ExecMode
    probe: dict | None  # the ``--exec auto`` probe facts, for the record
    model: PreparedModel


def prepare_run(loaded: LoadedModel, device: torch.device, options: EvalOptions) -> PreparedRun:
    """Resolve ``options.exec`` for this model and device (named protocols force eager fp32) and apply it."""
    mode, probe = resolve_exec(parse_exec(options.exec), loaded.module, device, protocol=options.protocol,
                               threads=options.threads, data_range=loaded.data_range)
    return PreparedRun(mode, probe, prepare(loaded.module, mode, device, loaded.name))


@dataclass
class _Run:
    """Mutable state of one (model, dataset) evaluation."""

    rows: dict[str, dict]
    bad: list[BadImage]
    warmup_ms: list[float] = field(default_factory=list)
    shape_checked: bool = False
    forwards: int = 0  # timed forwards in this process (this segment of the run log)


@dataclass(frozen=True)
class Share:
    """What one process computed for (a share of) a dataset: the input of its record."""

    rows: list[dict]  # finished images, in dataset order (resumed ones included)
    bad: list[BadImage]
    warmup_ms: list[float]
    memory: MemoryInfo  # peak memory over the run-log segments (eval_record.memory_over_segments)
    run_log: Path
    resumed: bool
    exec_info: ExecInfo
    mode: ExecMode
    guard: GpuGuard  # GPU clocks, throttling and other processes over the timed images (inactive on CPU)
    pipeline: dict  # decode and finish threads each (pipeline.worker_count)
    sr_png: dict | None  # where SR PNGs went and how they were encoded (--save-sr), else None
    warnings: list[str]  # about the data (16-bit images), for the record


def _running_mean(rows: dict[str, dict]) -> float | None:
    values = [r["psnr_rgb"] for r in rows.values()]
    return float(np.mean(values)) if values else None


def evaluate(
    loaded: LoadedModel,
    dataset: Dataset,
    device: torch.device,
    options: EvalOptions,
    *,
    checked: tuple[list[CheckedPair], list[BadImage]] | None = None,
    prepared: PreparedRun | None = None,
    progress: ProgressFn | None = None,
) -> EvalResult:
    """Evaluate one loaded model on one dataset, store the record in the results folder and return it.

    ``checked`` is the result of :func:`check_pairs` when the caller already validated the set (``limit``
    applied), and ``prepared`` the result of :func:`prepare_run`; each is made here when not given.
    """
    notify = progress or (lambda event: None)
    pairs = dataset.pairs[: options.limit]
    checked = checked if checked is not None else check_pairs(pairs, dataset.scale, skip_bad=options.skip_bad)
    share = run_share(loaded, dataset, device, options, checked, prepared or prepare_run(loaded, device, options),
                      notify)
    if not share.rows:
        raise DatasetError(f"no image of {dataset.name} could be evaluated (all {len(share.bad)} skipped)")
    record = eval_record(loaded, dataset, device, options, share.exec_info, share.rows, share.bad, share.warmup_ms,
                         share.memory, share.run_log, share.resumed)
    if message := threads_notice(options.threads, share.mode):
        record["notices"].append(message)
    record["pipeline"] = share.pipeline
    record["sr_png"] = share.sr_png
    record.update(share.guard.record_fields())
    record["warnings"] += share.warnings + share.guard.warnings
    if share.guard.notice:
        record["notices"].append(share.guard.notice)
        notify(EvalEvent("notice", loaded.name, dataset.name, message=share.guard.notice))
    return store(record, options, notify, total=len(checked[0]))


def store(record: EvalRecord, options: EvalOptions, notify: ProgressFn, total: int) -> EvalResult:
    """Add the fp32 reference (reduced precision), stamp and write ``record``, and say it is done (``total``:
    the images that passed the header check)."""
    if record["exec"]["dtype"] != "fp32":
        record["fp32_reference"] = fp32_reference(record, stored_records(options.results_dir))
        message = reference_notice(record)
        record["notices"].append(message)
        notify(EvalEvent("notice", record["model"], record["dataset"], message=message))
    record = stamp(record)  # the stored record, id included, is also what --json writes
    path = write_record(record, options.results_dir)
    notify(EvalEvent("done", record["model"], record["dataset"], len(record["images"]), total,
                     mean_psnr=record["mean"]["psnr_rgb"]))
    return EvalResult(record, path)


def run_share(loaded: LoadedModel, dataset: Dataset, device: torch.device, options: EvalOptions,
              checked: tuple[list[CheckedPair], list[BadImage]], prepared: PreparedRun, notify: ProgressFn,
              log_name: str = "") -> Share:
    """Run the model over the ``checked`` pairs (all of a dataset, or one rank's share) under the run log's lock.

    ``log_name`` is added to the run log's key (a rank's share has a log of its own).
    """
    checked_pairs, bad = checked
    mode, model = prepared.mode, prepared.model
    proto = get_protocol(options.protocol)
    identity = run_identity(loaded, dataset, options.protocol, mode, device, options.tile, options.tile_overlap)
    key = run_key(identity) + log_name
    with RunLog.open(options.results_dir / "runs" / f"{key}.jsonl", log_header(identity, key, loaded, dataset),
                     options.resume) as log:
        state = _Run(rows=dict(log.rows), bad=list(bad))
        todo = [c for c in checked_pairs if c.pair.name not in log.rows]
        total = len(checked_pairs)

        def emit(kind: EventKind, name: str = "", psnr: float | None = None, reason: str = "") -> None:
            done = len(state.rows) + len(state.bad) - len(bad)
            notify(EvalEvent(kind, loaded.name, dataset.name, done, total, name, psnr, _running_mean(state.rows),
                             reason))

        if options.resume and not log.rows:
            notify(EvalEvent("notice", loaded.name, dataset.name, message=(
                f"--resume: no finished image of this run in {log.path.name} (same model, checkpoint, data and "
                "settings), so it starts from the first image")))
        emit("start")
        forward = tiled(model, loaded.scale, options.tile, options.tile_overlap)
        policy = policy_for(device, loaded.data_range, loaded.scale, reset_peak=proto.reset_peak_memory)
        # a model given as a path (/abs/net.py:Net) must not escape --save-sr: its folder name is made file-safe
        save_dir = (options.save_sr / f"{safe_name(loaded.name)}_x{loaded.scale}" / dataset.name
                    if options.save_sr else None)
        workers = worker_count(device, mode.threads)
        finisher = Finisher(log, save_dir, policy.score, workers)
        prefetch = Prefetcher(todo, dataset.scale, lr_cache_dir(options.results_dir), policy.prefetch_input, workers)
        guard = GpuGuard(device)
        sixteen_bit = sixteen_bit_warning(checked_pairs, dataset.name)
        if sixteen_bit is not None:
            notify(EvalEvent("notice", loaded.name, dataset.name, message=sixteen_bit))

        def collect() -> None:
            for row in finisher.finished():
                state.rows[row["name"]] = row
                emit("image", row["name"], row["psnr_rgb"])

        complete = False
        with pinned_threads(mode.threads):  # held until the finisher is drained: every image scores with one count
            try:
                if todo:  # before the first forward: an image too large for memory is one line suggesting --tile
                    largest = max(todo, key=lambda c: c.lr_size[0] * c.lr_size[1])
                    check_eval_fits(MemoryEstimator(model.module), largest.lr_size, device, scale=loaded.scale,
                                    data_range=loaded.data_range, tile=options.tile, overlap=options.tile_overlap,
                                    scorers=workers, queued=max(WRITE_DEPTH - workers, 0), model=loaded.name,
                                    image=largest.pair.name)
                with torch.inference_mode(), cudnn_benchmark(proto.cudnn_benchmark), policy.track():
                    if todo and proto.warmup > 0:  # robust: warm up on the first image's shape while it is decoded
                        h, w = todo[0].lr_size
                        dummy = torch.rand(1, 3, h, w, device=device) * loaded.data_range
                        with policy.out_of_memory(todo[0].pair.name, (h, w), options.tile):
                            state.warmup_ms = warm_up(lambda: forward(dummy), device, proto)
                        del dummy
                    with guard.split():  # GPU clocks, throttling and other processes over the timed images
                        for item in prefetch:
                            if isinstance(item, Failed):
                                _skip_or_raise(item, options, state)
                                emit("skip", item.checked.pair.name, reason=state.bad[-1].error)
                                continue
                            try:
                                _one_image(item, loaded, forward, options, state, finisher, policy)
                            except NonFiniteOutputError as exc:  # fails like a bad image: stops the run, or skipped
                                if not options.skip_bad:
                                    raise
                                state.bad.append(BadImage(item.checked.pair.name, item.checked.pair.hr_path,
                                                          exc.reason))
                                emit("skip", item.checked.pair.name, reason=exc.reason)
                            collect()
                complete = True
            finally:
                prefetch.close()
                finisher.drain()
                segment = _segment(policy, state.forwards, complete)
                _end_segment(log, segment, quiet=not complete)
        finisher.check()
        collect()
    rows = [state.rows[c.pair.name] for c in checked_pairs if c.pair.name in state.rows]
    return Share(rows, state.bad, state.warmup_ms, memory_over_segments([*log.segments, segment], len(rows)),
                 log.path, bool(log.rows), ExecInfo(**mode.to_dict(), threads_requested=options.threads,
                                                    probe=prepared.probe), mode, guard,
                 {"workers": workers}, {"dir": str(save_dir), **PNG_ENCODING} if save_dir else None,
                 [sixteen_bit] if sixteen_bit else [])


def _segment(policy: DevicePolicy, forwards: int, complete: bool) -> dict:
    """This process's line in the run log: who worked on it, how much, and its peak memory."""
    return {"pid": os.getpid(), "forwards": forwards, "complete": complete, "peak_memory_mib": policy.peak_mib,
            "memory_baseline_mib": policy.baseline_mib, "memory_kind": policy.kind, "memory_method": policy.method}


def _end_segment(log: RunLog, segment: dict, quiet: bool) -> None:
    """Append the segment line; after a failure (``quiet``) a write error must not hide the first one."""
    try:
        log.end_segment(segment)
    except OSError as exc:
        if not quiet:
            raise write_error(exc, log.path, "run log") from None


def _skip_or_raise(item: Failed, options: EvalOptions, state: _Run) -> None:
    if not isinstance(item.error, DatasetError) or not options.skip_bad:
        raise item.error
    state.bad.append(bad_image(item.checked.pair, item.error))


def _one_image(item: Decoded, loaded: LoadedModel, forward: Forward, options: EvalOptions, state: _Run,
               finisher: Finisher, policy: DevicePolicy) -> None:
    """Time one forward and hand the image to the finisher (scored first where the policy says so)."""
    checked = item.checked
    x = policy.model_input(item.lr)
    shape = tuple(x.shape)
    with policy.out_of_memory(checked.pair.name, shape, options.tile):
        sr, ms = time_call(lambda: forward(x), policy.device)
    policy.after_forward()
    del x
    state.forwards += 1
    if not state.shape_checked:
        check_output_shape(sr, shape, loaded.scale, loaded.name)
        state.shape_checked = True
    check_finite(sr, loaded.name, checked.pair.name)  # before the clamp in to_uint8 would hide NaN/Inf
    row: dict = {"name": checked.pair.name, "lr_size": list(checked.lr_size), "hr_size": list(checked.hr_size),
                 "runtime_ms": ms}
    handed = policy.hand_over(row, sr, item.hr, keep_sr=options.save_sr is not None)
    del sr
    policy.after_hand_over()
    finisher.submit(handed)
