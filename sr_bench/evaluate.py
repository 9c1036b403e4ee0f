"""The eval loop: a model over a dataset, per-image PSNR/SSIM with per-image runtime and peak memory.

Only the model's forward is timed (``timing.time_call``: CUDA events or ``perf_counter``), and the other work
hides behind it in two threads:

* a prefetch thread decodes the next images (and generates LR for sets that ship none) into a small queue; on
  CPU it also builds the model input;
* a finisher thread saves SR PNGs (``--save-sr``) and appends each finished image to a JSONL run log with
  flush + fsync. On CPU it also converts the output to uint8 and computes the metrics, overlapping the next
  forward; on CUDA the main thread does both on the GPU between forwards (fast, and nothing may share the GPU
  with a timed forward), and peak memory counts the forwards only.

A row reaches the log only after its PNG is on disk, so the log is exactly what is finished: an interrupted run
(Ctrl-C, a full disk, an OOM) keeps it, and ``resume=True`` continues from it. On CPU the threads share the cores
with the model; for the cleanest CPU timings leave one core free (``threads`` below the core count).

Protocols: ``robust`` warms up (``timing.warm_up``) on the first image's shape before anything is timed and
resets peak memory at the start of each dataset; ``ntire2023``/``ntire2024`` time every image once with no
warm-up (the first image pays start-up, as in the challenge) and never reset peak memory.

Reduced precision (``--exec bf16``/``fp16``) changes quality numbers, so such a record carries
``fp32_reference``: its per-image PSNR change against the newest fp32 record of the same model, checkpoint and
images in the same results folder (see :func:`fp32_reference`), or None plus a notice saying how to get one.

Example::

    loaded = resolve_model("rfdn", require_weights=True)
    ds = resolve_dataset("set5", Path("../shared/data"), loaded.scale)
    result = evaluate(loaded, ds, torch.device("cpu"), EvalOptions(results_dir=Path("results")))
    result.record["mean"]["psnr_rgb"]
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from sr_bench import paths
from sr_bench import weights as checkpoint_io
from sr_bench.datasets import (
    BadImage,
    CheckedPair,
    Dataset,
    check_pairs,
    custom_dataset,
    load_pair,
    locate_dataset,
    lr_cache_dir,
    resolve_dataset,
)
from sr_bench.env import environment
from sr_bench.errors import CheckpointError, DatasetError, DeviceError, ResultsError, SrBenchError, UsageError
from sr_bench.execution import ExecMode, PreparedModel, parse_exec, prepare, resolve_exec
from sr_bench.images import to_input, to_uint8, write_png
from sr_bench.metrics import image_metrics
from sr_bench.models import LoadedModel, check_output_shape, resolve_model
from sr_bench.results import atomic_write_text, load_records, stamp, write_record
from sr_bench.timing import (
    Measurement,
    MemoryKind,
    clock_kind,
    cudnn_benchmark,
    get_protocol,
    is_out_of_memory,
    pinned_threads,
    resolve_device,
    time_call,
    track_peak_memory,
    warm_up,
)
from sr_bench.zoo import get_spec, list_models

METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")
LOG_KIND = "eval-log"  # first line of a JSONL run log
DEFAULT_DATASET = "set5"  # with no --dataset: built into srbench, so `srbench eval --model M` always runs
PREFETCH_DEPTH = 2  # decoded images waiting for the model (each DIV2K pair is ~10 MB)
WRITE_DEPTH = 8  # finished images waiting for the writer; the model only waits when the disk is far behind


@dataclass(frozen=True)
class EvalOptions:
    """How to run an evaluation (everything except which model and which images)."""

    results_dir: Path
    protocol: str = "robust"
    exec: str = "auto"  # --exec text, resolved per model (named protocols force eager fp32)
    threads: int | None = None  # None: all cores (the execution module's default)
    limit: int | None = None  # only the first N images of each dataset
    tile: int | None = None  # LR tile size; None: whole images
    tile_overlap: int = 32  # LR pixels shared by neighbouring tiles
    save_sr: Path | None = None  # save SR PNGs under <save_sr>/<model>_x<scale>/<dataset>/<name>.png
    skip_bad: bool = False  # record unreadable images and go on, instead of stopping
    resume: bool = False  # continue the run log left by an interrupted run with the same key

    def __post_init__(self) -> None:
        get_protocol(self.protocol)
        parse_exec(self.exec)
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit must be >= 1, got {self.limit}")
        if self.tile is not None:
            if self.tile < 8:
                raise UsageError(f"--tile must be >= 8 LR pixels, got {self.tile}")
            if not 0 <= self.tile_overlap < self.tile:
                raise UsageError(f"--tile-overlap must be in [0, --tile), got {self.tile_overlap} with --tile {self.tile}")


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


ProgressFn = Callable[[EvalEvent], None]


@dataclass(frozen=True)
class EvalResult:
    record: dict
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
    return PreparedRun(mode, probe, prepare(loaded.module, mode, device))


# ------------------------------------------------------------------------------------------------- tiling


def _tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int]]:
    """(tile start, owned start, owned end) per tile along one axis; owned ranges partition [0, length).

    Neighbouring tiles overlap by at least ``overlap`` and split the overlap at its middle, so every owned pixel
    is at least ``overlap // 2`` pixels from the inner edge of the tile that computes it.
    """
    if length <= tile:
        return [(0, 0, length)]
    starts = list(range(0, length - tile, tile - overlap)) + [length - tile]
    bounds = [0] + [(starts[i] + starts[i - 1] + tile) // 2 for i in range(1, len(starts))] + [length]
    return [(s, bounds[i], bounds[i + 1]) for i, s in enumerate(starts)]


def tiled_forward(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int, tile: int,
                  overlap: int) -> torch.Tensor:
    """Run ``model`` on overlapping LR tiles of ``x`` (1, C, H, W) and stitch the SR result.

    Each output pixel comes from exactly one tile (no blending), so for a network whose receptive field reaches
    at most ``overlap // 2`` LR pixels the result equals the untiled output up to float rounding; wider
    receptive fields (attention, deep stacks) give small differences along the seams only.
    """
    _, _, h, w = x.shape
    out: torch.Tensor | None = None
    for y0, oy0, oy1 in _tile_spans(h, tile, overlap):
        for x0, ox0, ox1 in _tile_spans(w, tile, overlap):
            piece = model(x[:, :, y0 : y0 + min(tile, h), x0 : x0 + min(tile, w)])
            if out is None:
                out = piece.new_empty(piece.shape[0], piece.shape[1], h * scale, w * scale)
            out[:, :, oy0 * scale : oy1 * scale, ox0 * scale : ox1 * scale] = piece[
                :, :, (oy0 - y0) * scale : (oy1 - y0) * scale, (ox0 - x0) * scale : (ox1 - x0) * scale
            ]
    assert out is not None
    return out


# ---------------------------------------------------------------------------------------------- run log


class RunLog:
    """The per-image JSONL log of one run: a header line, then one line per finished image.

    Appends are flushed and fsynced, so a crash loses at most the line being written; a torn last line is
    dropped when the log is read back.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def open(cls, path: Path, header: dict, resume: bool) -> tuple[RunLog, dict[str, dict]]:
        """Start a fresh log, or (``resume``) reload the finished rows of a log with the same header."""
        rows: dict[str, dict] = {}
        if resume and path.is_file():
            old_header, rows = _read_log(path)
            if old_header is not None and _identity(old_header) != _identity(header):
                raise ResultsError(
                    f"cannot resume from {path}: it was made with another checkpoint or dataset folder; "
                    "drop --resume to start over"
                )
        lines = [header, *rows.values()]
        try:
            atomic_write_text(path, "".join(_json_line(x) for x in lines))
        except OSError as exc:
            raise _write_error(exc, path, "run log") from None
        return cls(path), rows

    def append(self, row: dict) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(_json_line(row))
            f.flush()
            os.fsync(f.fileno())


def _identity(header: dict) -> tuple:
    return tuple(header.get(k) for k in ("key", "checkpoint_sha256", "hr_dir", "lr_dir"))


def _json_line(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str) + "\n"


def _read_log(path: Path) -> tuple[dict | None, dict[str, dict]]:
    header: dict | None = None
    rows: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line from a crash: that image is simply run again
        if not isinstance(obj, dict):
            continue
        if obj.get("kind") == LOG_KIND:
            header = obj
        elif isinstance(obj.get("name"), str) and all(k in obj for k in (*METRICS, "runtime_ms")):
            rows[obj["name"]] = obj
    return header, rows


def _write_error(exc: BaseException, path: Path, what: str) -> ResultsError:
    cause = exc.__cause__ if isinstance(exc, SrBenchError) and exc.__cause__ else exc
    if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
        return ResultsError(
            f"disk full while writing {what} {path}: free space (or pick another folder) and rerun with --resume; "
            "finished images are kept in the run log"
        )
    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
    return ResultsError(f"cannot write {what} {path}: {reason}; fix the folder and rerun with --resume")


def run_key(model: str, scale: int, dataset: Dataset, protocol: str, exec_label: str, device: torch.device,
            tile: int | None, overlap: int) -> str:
    """The name of a run's log: what must match for ``--resume`` to continue it."""
    name = dataset.name
    if dataset.spec is None:  # custom folders: the folder identifies the set
        name += "-" + hashlib.sha256(str(dataset.hr_dir.resolve()).encode()).hexdigest()[:10]
    parts = [model, f"x{scale}", name, protocol, exec_label, device.type]
    if tile is not None:
        parts.append(f"tile{tile}o{overlap}")
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", "-".join(parts))


# ------------------------------------------------------------------------------------------------ threads


_DONE = object()
BACKGROUND_NICE = 19  # background threads take only the cycles the timed model leaves (0 = normal, 19 = lowest)


def _lower_priority() -> None:
    """Make the calling thread nice (Linux applies niceness per thread), so that on a busy CPU the model's
    thread wins and decoding/metrics/saving take only the cycles it leaves: hidden, without inflating its time."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: background threads run at normal priority
        pass


class _Prefetcher:
    """Decodes pairs (and generates LR) in a background thread, a few images ahead of the model.

    ``to_tensor`` (CPU runs) also builds the model input there; on CUDA the main thread does it, so no copy to
    the GPU can overlap a timed forward.
    """

    def __init__(self, pairs: list[CheckedPair], scale: int, cache_dir: Path,
                 to_tensor: Callable[[np.ndarray], torch.Tensor] | None) -> None:
        self._pairs = pairs
        self._scale = scale
        self._cache = cache_dir
        self._to_tensor = to_tensor
        self._queue: queue.Queue = queue.Queue(maxsize=PREFETCH_DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="srbench-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        _lower_priority()
        for checked in self._pairs:
            try:
                lr, hr = load_pair(checked.pair, self._scale, self._cache)
                item: object = (checked, lr if self._to_tensor is None else self._to_tensor(lr), hr)
            except Exception as exc:  # noqa: BLE001 - handed to the main thread, which decides
                item = (checked, exc)
            if not self._put(item):
                return
        self._put(_DONE)

    def __iter__(self) -> Iterator[tuple]:
        while (item := self._queue.get()) is not _DONE:
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _Finisher:
    """Scores (on CPU), saves and logs finished images in order, off the model's thread.

    On CUDA the main thread scores on the GPU (fast, and nothing may share the GPU with a timed forward) and
    hands over a host copy for saving; on CPU this thread scores, so metrics overlap the next forward. The
    first failure stops it (later items are dropped, never logged) and is raised on the main thread, so the
    log never holds an image whose PNG is missing.
    """

    def __init__(self, log: RunLog, save_dir: Path | None, crop_border: int, data_range: float) -> None:
        self._log = log
        self._save_dir = save_dir
        self._crop = crop_border
        self._range = data_range
        self._in: queue.Queue = queue.Queue(maxsize=WRITE_DEPTH)
        self._out: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="srbench-finisher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        _lower_priority()
        while (item := self._in.get()) is not _DONE:
            if self.error is None:
                try:
                    self._finish(*item)
                except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
                    self.error = exc

    def _finish(self, row: dict, sr: torch.Tensor | None, hr: np.ndarray | None) -> None:
        if hr is not None:  # CPU: ``sr`` is the raw model output
            with torch.inference_mode():
                sr = to_uint8(sr, self._range)
                hr_t = torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1)
                row.update(image_metrics(sr, hr_t, crop_border=self._crop))
        if sr is not None and self._save_dir is not None:
            target = self._save_dir / f"{row['name']}.png"
            try:
                write_png(target, sr.permute(1, 2, 0).numpy())
            except (OSError, SrBenchError) as exc:
                raise _write_error(exc, target, "SR image") from None
        try:
            self._log.append(row)
        except OSError as exc:
            raise _write_error(exc, self._log.path, "run log") from None
        self._out.put(row)

    def submit(self, row: dict, sr: torch.Tensor | None, hr: np.ndarray | None) -> None:
        """Queue one image: with ``hr``, ``sr`` is the raw CPU output to convert and score here; without it,
        ``row`` is scored already and ``sr`` (uint8, on the host) is only there to be saved."""
        self.check()
        self._in.put((row, sr, hr))

    def finished(self) -> list[dict]:
        rows = []
        while True:
            try:
                rows.append(self._out.get_nowait())
            except queue.Empty:
                return rows

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def drain(self) -> None:
        """Finish everything queued and stop; runs after Ctrl-C too, so finished images stay logged."""
        self._in.put(_DONE)
        self._thread.join()


class _ForwardPeak:
    """Peak memory of the model's forwards only.

    CUDA: ``max_memory_allocated`` read after each forward, and the peak reset after scoring, so metrics on the
    GPU (which the official harness computes on the CPU) never count. Official protocols never reset between
    datasets: their figure is the max over every forward since the process started, as the challenge reads it.
    CPU: the process's peak RSS over the dataset (``timing``'s reader; prefetch buffers are part of it).
    """

    _process_peak: dict[str, float] = {}  # official protocols: the never-reset peak per CUDA device

    def __init__(self, device: torch.device, reset: bool) -> None:
        self.device = device
        self.reset = reset
        self.peak_mib: float | None = None
        self.baseline_mib: float | None = None
        self.kind: MemoryKind = "cuda_max_allocated" if device.type == "cuda" else "cpu_rss_peak"
        self.method = "torch.cuda.max_memory_allocated after each forward (metrics excluded)"

    @contextmanager
    def track(self) -> Iterator[_ForwardPeak]:
        if self.device.type != "cuda":
            with track_peak_memory(self.device, reset=True) as memory:
                yield self
            self.peak_mib, self.baseline_mib, self.method = memory.peak_mib, memory.baseline_mib, memory.method
            return
        if self.reset:
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak_mib = self._process_peak.get(str(self.device))
        self.baseline_mib = torch.cuda.memory_allocated(self.device) / _MIB
        yield self

    def after_forward(self) -> None:
        if self.device.type == "cuda":
            now = torch.cuda.max_memory_allocated(self.device) / _MIB
            self.peak_mib = max(self.peak_mib or 0.0, now)
            if not self.reset:
                self._process_peak[str(self.device)] = self.peak_mib

    def after_metrics(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)


_MIB = 1024**2


# ----------------------------------------------------------------------------------------------- the loop


@dataclass
class _Run:
    """Mutable state of one (model, dataset) evaluation."""

    rows: dict[str, dict]
    bad: list[BadImage]
    warmup_ms: list[float] = field(default_factory=list)
    shape_checked: bool = False


def _running_mean(rows: dict[str, dict]) -> float | None:
    values = [r["psnr_rgb"] for r in rows.values()]
    return float(np.mean(values)) if values else None


def _oom(device: torch.device, name: str, shape: tuple[int, ...], tile: int | None) -> DeviceError:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    hint = f"a smaller --tile than {tile}" if tile else "--tile 256 (smaller if needed)"
    return DeviceError(
        f"{device.type.upper()} out of memory on {name} (LR {shape[-2]}x{shape[-1]}): rerun with {hint} and --resume"
    )


@contextmanager
def _out_of_memory(device: torch.device, name: str, shape: tuple[int, ...], tile: int | None) -> Iterator[None]:
    try:
        yield
    except RuntimeError as exc:  # torch.OutOfMemoryError is one
        if not is_out_of_memory(exc):
            raise
        raise _oom(device, name, shape, tile) from None


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
    checked_pairs, bad = checked if checked is not None else check_pairs(pairs, dataset.scale, skip_bad=options.skip_bad)
    prepared = prepared or prepare_run(loaded, device, options)
    mode, model = prepared.mode, prepared.model
    proto = get_protocol(options.protocol)
    key = run_key(loaded.name, loaded.scale, dataset, options.protocol, mode.label, device, options.tile,
                  options.tile_overlap)
    log, done_rows = RunLog.open(options.results_dir / "runs" / f"{key}.jsonl", _log_header(key, loaded, dataset),
                                 options.resume)
    resumed = bool(done_rows)
    state = _Run(rows=dict(done_rows), bad=list(bad))
    todo = [c for c in checked_pairs if c.pair.name not in done_rows]
    total = len(checked_pairs)

    def emit(kind: EventKind, name: str = "", psnr: float | None = None) -> None:
        done = len(state.rows) + len(state.bad) - len(bad)
        notify(EvalEvent(kind, loaded.name, dataset.name, done, total, name, psnr, _running_mean(state.rows)))

    emit("start")

    def forward(x: torch.Tensor) -> torch.Tensor:
        if options.tile is None:
            return model(x)
        return tiled_forward(model, x, loaded.scale, options.tile, options.tile_overlap)

    save_dir = options.save_sr / f"{loaded.name}_x{loaded.scale}" / dataset.name if options.save_sr else None
    finisher = _Finisher(log, save_dir, loaded.scale, loaded.data_range)
    to_tensor = None if device.type == "cuda" else (lambda lr: to_input(lr, loaded.data_range, device))
    prefetch = _Prefetcher(todo, dataset.scale, lr_cache_dir(options.results_dir), to_tensor)
    memory = _ForwardPeak(device, reset=proto.reset_peak_memory)

    def collect() -> None:
        for row in finisher.finished():
            state.rows[row["name"]] = row
            emit("image", row["name"], row["psnr_rgb"])

    try:
        with pinned_threads(mode.threads), torch.inference_mode(), cudnn_benchmark(proto.cudnn_benchmark), \
                memory.track():
            if todo and proto.warmup > 0:  # robust: warm up on the first image's shape while it is decoded
                h, w = todo[0].lr_size
                dummy = torch.rand(1, 3, h, w, device=device) * loaded.data_range
                with _out_of_memory(device, todo[0].pair.name, (h, w), options.tile):
                    state.warmup_ms = warm_up(lambda: forward(dummy), device, proto)
                del dummy
            for item in prefetch:
                if len(item) == 2:  # the prefetch thread could not decode this pair
                    _skip_or_raise(item[0], item[1], options, state)
                    emit("skip", item[0].pair.name)
                    continue
                _one_image(item, loaded, forward, device, options, state, finisher, memory)
                collect()
    finally:
        prefetch.close()
        finisher.drain()
    finisher.check()
    collect()
    rows = [state.rows[c.pair.name] for c in checked_pairs if c.pair.name in state.rows]
    if not rows:
        raise DatasetError(f"no image of {dataset.name} could be evaluated (all {len(state.bad)} unreadable)")
    exec_info = mode.to_dict() | {"auto_probe": prepared.probe}
    record = _record(loaded, dataset, device, options, exec_info, rows, state, memory, log.path, resumed)
    if mode.dtype != "fp32":
        record["fp32_reference"] = fp32_reference(record, _stored_records(options.results_dir))
        message = _reference_notice(record)
        record["notices"].append(message)
        notify(EvalEvent("notice", loaded.name, dataset.name, message=message))
    record = stamp(record)  # the stored record, id included, is also what --json writes
    path = write_record(record, options.results_dir)
    notify(EvalEvent("done", loaded.name, dataset.name, len(rows), total, mean_psnr=record["mean"]["psnr_rgb"]))
    return EvalResult(record, path)


def _skip_or_raise(checked: CheckedPair, exc: BaseException, options: EvalOptions, state: _Run) -> None:
    if not isinstance(exc, DatasetError) or not options.skip_bad:
        raise exc
    state.bad.append(BadImage(checked.pair.name, checked.pair.hr_path, str(exc)))


def _one_image(item: tuple, loaded: LoadedModel, forward: Callable[[torch.Tensor], torch.Tensor],
               device: torch.device, options: EvalOptions, state: _Run, finisher: _Finisher,
               memory: _ForwardPeak) -> None:
    """Time one forward and hand the image to the finisher (converted and scored here first on CUDA)."""
    checked, lr, hr = item
    x = lr if isinstance(lr, torch.Tensor) else to_input(lr, loaded.data_range, device)
    shape = tuple(x.shape)
    with _out_of_memory(device, checked.pair.name, shape, options.tile):
        sr, ms = time_call(lambda: forward(x), device)
    memory.after_forward()
    del x
    if not state.shape_checked:
        check_output_shape(sr, shape, loaded.scale, loaded.name)
        state.shape_checked = True
    row: dict = {"name": checked.pair.name, "lr_size": list(checked.lr_size), "hr_size": list(checked.hr_size),
                 "runtime_ms": ms}
    if device.type != "cuda":
        finisher.submit(row, sr, hr)
        return
    sr_u8 = to_uint8(sr, loaded.data_range)
    del sr
    row.update(image_metrics(sr_u8, torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1).to(device),
                             crop_border=loaded.scale))
    host = sr_u8.cpu() if options.save_sr else None
    del sr_u8  # nothing of this image stays on the GPU when the peak is reset for the next forward
    memory.after_metrics()
    finisher.submit(row, host, None)


# ----------------------------------------------------------------------------------------------- records


def _log_header(key: str, loaded: LoadedModel, dataset: Dataset) -> dict:
    return {
        "kind": LOG_KIND,
        "key": key,
        "model": loaded.name,
        "scale": loaded.scale,
        "dataset": dataset.name,
        "checkpoint_sha256": loaded.checkpoint.sha256,
        "hr_dir": str(dataset.hr_dir.resolve()),
        "lr_dir": str(dataset.lr_dir.resolve()) if dataset.lr_dir else None,
    }


def _means(rows: list[dict]) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in (*METRICS, "runtime_ms")}


def _record(loaded: LoadedModel, dataset: Dataset, device: torch.device, options: EvalOptions, exec_info: dict,
            rows: list[dict], state: _Run, memory: _ForwardPeak, log_path: Path, resumed: bool) -> dict:
    measurement = Measurement(
        samples_ms=[r["runtime_ms"] for r in rows],
        peak_memory_mib=memory.peak_mib,
        memory_kind=memory.kind,
        clock=clock_kind(device),
        warmup_ms=state.warmup_ms,
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
        "mean": _means(rows),
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
        "skipped": [{"name": b.name, "path": str(b.path), "error": b.error} for b in state.bad],
        "tile": {"size": options.tile, "overlap": options.tile_overlap} if options.tile else None,
        "run_log": str(log_path),
        "resumed": resumed,
        "notices": list(dataset.notices),
        "warnings": list(loaded.warnings),
    }


# ------------------------------------------------------------------------ reduced precision against fp32


def _stored_records(results_dir: Path) -> list[dict]:
    """The records already in the results folder (none when it is new: that is not an error here)."""
    try:
        records, _ = load_records(results_dir)  # unusable files are the report command's business, not eval's
    except ResultsError:
        return []
    return records


def _same_run_inputs(record: dict, candidate: dict) -> bool:
    """Whether ``candidate`` scored the same images with the same weights, so only the precision differs."""
    data, other = record["data"], candidate.get("data") or {}
    sha = record["checkpoint"]["sha256"]  # None: random weights, which differ from run to run
    return (
        sha is not None
        and candidate.get("kind") == "eval"
        and all(candidate.get(k) == record[k] for k in ("model", "scale", "dataset", "data_range", "tile"))
        and (candidate.get("checkpoint") or {}).get("sha256") == sha
        and all(_resolved(other.get(k)) == _resolved(data[k]) for k in ("hr_dir", "lr_dir"))
        and (candidate.get("exec") or {}).get("dtype") == "fp32"
    )


def _resolved(folder: str | None) -> str | None:
    return None if folder is None else str(Path(folder).resolve())


def fp32_reference(record: dict, stored: list[dict]) -> dict | None:
    """The PSNR change of a reduced-precision eval ``record`` against the newest matching fp32 record in ``stored``
    (oldest first, as ``load_records`` returns them), or None when there is none.

    A match has the same model, scale, dataset folders, checkpoint (sha256), data range and tiling, runs in fp32
    (any memory format, compile, protocol or device: those move PSNR by ~1e-5 dB, bf16 by ~1e-2), and scored every
    image this run scored, so a longer fp32 run (a larger ``--limit``) serves too. Deltas are reduced - fp32 in
    dB, over the images where both PSNRs are finite.
    """
    names = {row["name"] for row in record["images"]}
    for candidate in reversed(stored):
        if not _same_run_inputs(record, candidate):
            continue
        reference = {row.get("name"): row for row in candidate.get("images") or []
                     if all(isinstance(row.get(k), (int, float)) for k in ("psnr_rgb", "psnr_y"))}
        if not names <= reference.keys():
            continue
        rgb = np.array([row["psnr_rgb"] - reference[row["name"]]["psnr_rgb"] for row in record["images"]])
        y = np.array([row["psnr_y"] - reference[row["name"]]["psnr_y"] for row in record["images"]])
        finite = np.isfinite(rgb) & np.isfinite(y)  # an infinite PSNR (an exact image) on either side has no delta
        rgb, y = rgb[finite], y[finite]
        return {
            "record_id": candidate.get("id"),
            "created": candidate.get("created"),
            "exec": candidate["exec"].get("label"),
            "device": candidate.get("device"),
            "images_compared": int(finite.sum()),
            "psnr_rgb_delta_mean": float(rgb.mean()) if rgb.size else None,
            "psnr_rgb_delta_max_abs": float(np.abs(rgb).max()) if rgb.size else None,
            "psnr_y_delta_mean": float(y.mean()) if y.size else None,
            "psnr_y_delta_max_abs": float(np.abs(y).max()) if y.size else None,
        }
    return None


def _reference_notice(record: dict) -> str:
    """One line for the user: the PSNR change against fp32, or how to get an fp32 record to compare with."""
    label, reference = record["exec"]["label"], record["fp32_reference"]
    if reference is None:
        return (
            f"no fp32 eval of {record['model']} x{record['scale']} on {record['dataset']} (same checkpoint and images) "
            f"in this results folder, so the PSNR change of {label} is unknown: run the same eval with --exec auto "
            "(or eager) first, then this one again"
        )
    if reference["psnr_rgb_delta_mean"] is None:
        return f"{label} vs fp32 record {reference['record_id']}: no image with a finite PSNR on both sides to compare"
    return (
        f"{label} changes PSNR RGB by {reference['psnr_rgb_delta_mean']:+.4f} dB on average (max |change| "
        f"{reference['psnr_rgb_delta_max_abs']:.4f} dB over {reference['images_compared']} images) against fp32 "
        f"record {reference['record_id']} ({reference['exec']})"
    )


# ------------------------------------------------------------------------------------- several models/sets


def available_models(scale: int | None = None) -> list[str]:
    """Zoo models whose checkpoint for ``scale`` (default: each model's own) is on disk."""
    names = []
    for name in list_models():
        spec = get_spec(name)
        s = spec.default_scale if scale is None else scale
        if s in spec.scales and checkpoint_io.find_checkpoint(spec.checkpoint(s)) is not None:
            names.append(name)
    return names


def evaluate_all(
    models: list[str] | None,
    datasets: list[str],
    options: EvalOptions,
    *,
    data_root: Path,
    hr_dir: Path | None = None,
    lr_dir: Path | None = None,
    scale: int | None = None,
    weights: Path | None = None,
    data_range: float | None = None,
    model_args: str | None = None,
    device: str = "auto",
    progress: ProgressFn | None = None,
) -> list[EvalResult]:
    """Evaluate every model on every dataset (one record each); ``models=None`` means every zoo model with a
    checkpoint here. All datasets are found and validated for a model before it runs anything."""
    notify = progress or (lambda event: None)
    if lr_dir is not None and hr_dir is None:
        raise UsageError("--lr needs --hr: give the HR folder the LR images belong to")
    if not datasets and hr_dir is None:
        datasets = [DEFAULT_DATASET]
        _, hr_found, _ = locate_dataset(DEFAULT_DATASET, data_root)
        where = "srbench's built-in copy" if hr_found.is_relative_to(paths.builtin_data_root()) else str(hr_found.parent)
        notify(EvalEvent("notice", message=f"no --dataset given: evaluating on {DEFAULT_DATASET} ({where}); "
                                           "pass --dataset NAME for another set"))
    for name in datasets:  # unknown or missing sets fail before any model is loaded
        locate_dataset(name, data_root)
    names = models or available_models(scale)
    if not names:
        raise CheckpointError(
            "no zoo model has its checkpoint here: pass --model, run 'srbench weights pull NAME', or set SRBENCH_WEIGHTS"
        )
    if weights is not None and len(names) > 1:
        raise UsageError("--weights applies to one model: pass a single --model with it")
    torch_device = resolve_device(device)
    results = []
    sets_by_scale: dict[int, list] = {}
    for name in names:
        loaded = resolve_model(name, scale=scale, weights=weights, device=torch_device, data_range=data_range,
                               model_args=model_args, require_weights=True)
        for message in loaded.notices + loaded.warnings:
            notify(EvalEvent("notice", loaded.name, message=message))
        if loaded.scale not in sets_by_scale:  # resolving + checking every pair reads every file header
            sets_by_scale[loaded.scale] = _prepare_sets(datasets, hr_dir, lr_dir, data_root, loaded.scale, options)
            for dataset, _ in sets_by_scale[loaded.scale]:  # once per dataset, not once per model
                for message in dataset.notices:
                    notify(EvalEvent("notice", loaded.name, dataset.name, message=message))
        sets = sets_by_scale[loaded.scale]
        run = prepare_run(loaded, torch_device, options)
        for dataset, checked in sets:
            results.append(evaluate(loaded, dataset, torch_device, options, checked=checked, prepared=run,
                                    progress=progress))
    return results


def _prepare_sets(names: list[str], hr_dir: Path | None, lr_dir: Path | None, data_root: Path, scale: int,
                  options: EvalOptions) -> list[tuple[Dataset, tuple[list[CheckedPair], list[BadImage]]]]:
    sets = [resolve_dataset(n, data_root, scale) for n in names]
    if hr_dir is not None:
        sets.append(custom_dataset(hr_dir, lr_dir, scale))
    return [(ds, check_pairs(ds.pairs[: options.limit], scale, skip_bad=options.skip_bad)) for ds in sets]
