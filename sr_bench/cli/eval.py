"""``srbench eval``: PSNR/SSIM per image and mean, with per-image runtime and peak memory, on named datasets.

Usage::

    srbench eval --model lgvan --dataset set14 --data-root ../shared/data
    srbench eval --model lgvan,rfdn --dataset set5,set14 --limit 3
    srbench eval --dataset lsdir                       # every zoo model with a checkpoint here
    srbench eval --model rfdn --hr my/HR --lr my/LR_x4 --save-sr out/
    srbench eval --model lgvan --dataset div2k-valid --resume   # continue an interrupted run
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.markup import escape
from rich.table import Table

from sr_bench.cli import output
from sr_bench.cli.options import (
    AfterLoadOpt,
    CheckpointKeyOpt,
    DataRangeOpt,
    DeviceOpt,
    ExecOpt,
    JsonOpt,
    ModelArgsOpt,
    NoStrictOpt,
    ProtocolOpt,
    ResultsOpt,
    ScaleOpt,
    ThreadsOpt,
    WeightsOpt,
    load_options,
)
from sr_bench.errors import UsageError
from sr_bench.paths import data_root as default_data_root
from sr_bench.paths import results_dir
from sr_bench.results import MEMORY_KINDS, atomic_write_json, gpu_warnings

if TYPE_CHECKING:
    from sr_bench.evaluate import EvalEvent, EvalResult
    from sr_bench.results import EvalRecord


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def eval_cmd(
    model: Annotated[
        Optional[str],
        typer.Option("--model", "-m", help="Model(s), comma-separated (default: every zoo model with a checkpoint here)."),
    ] = None,
    dataset: Annotated[
        Optional[str],
        typer.Option("--dataset", help="Dataset(s), comma-separated: see 'srbench datasets' (default: set5, built in; div2k/lsdir = test split if present, else valid)."),
    ] = None,
    data_root: Annotated[
        Optional[Path], typer.Option("--data-root", help="Where named datasets live (default: $SRBENCH_DATA or ./datasets).")
    ] = None,
    hr: Annotated[Optional[Path], typer.Option("--hr", help="A folder of HR images (evaluated as dataset 'custom').")] = None,
    lr: Annotated[
        Optional[Path], typer.Option("--lr", help="Its LR folder, matched by name with or without x{scale} (default: generate).")
    ] = None,
    scale: ScaleOpt = None,
    weights: WeightsOpt = None,
    data_range: DataRangeOpt = None,
    model_args: ModelArgsOpt = None,
    checkpoint_key: CheckpointKeyOpt = None,
    no_strict: NoStrictOpt = False,
    after_load: AfterLoadOpt = None,
    device: DeviceOpt = "auto",
    protocol: ProtocolOpt = "robust",
    exec_mode: ExecOpt = "auto",
    threads: ThreadsOpt = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N images of each dataset.")] = None,
    tile: Annotated[Optional[int], typer.Option("--tile", min=8, help="Run the model on LR tiles of N×N pixels (large images, out of memory).")] = None,
    tile_overlap: Annotated[int, typer.Option("--tile-overlap", min=0, help="LR pixels shared by neighbouring tiles.")] = 32,
    save_sr: Annotated[
        Optional[Path], typer.Option("--save-sr", help="Save SR images as PNG under DIR/<model>_x<scale>/<dataset>/.")
    ] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Record unreadable images and go on instead of stopping.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its per-image log.")] = False,
    json_path: JsonOpt = None,
    results: ResultsOpt = None,
) -> None:
    """Evaluate models on datasets: per-image and mean PSNR/SSIM (RGB and Y), per-image runtime, peak memory.

    Example: srbench eval --model lgvan --dataset set14 --data-root ../shared/data
    """
    from sr_bench.eval_all import evaluate_all  # torch: imported when the command runs
    from sr_bench.eval_config import EvalConfig, EvalOptions

    models, datasets = _names(model), _names(dataset)
    if json_path is not None and (len(models) != 1 or (len(datasets) + (hr is not None) or 1) != 1):  # none: set5
        raise UsageError("--json takes one --model and one dataset; every run's record is also saved under --results")
    config = EvalConfig(
        options=EvalOptions(
            results_dir=results_dir(results),
            protocol=protocol,
            exec=exec_mode,
            threads=threads,
            limit=limit,
            tile=tile,
            tile_overlap=tile_overlap,
            save_sr=save_sr,
            skip_bad=skip_bad,
            resume=resume,
        ),
        data_root=default_data_root(data_root),
        models=models,
        datasets=datasets,
        hr_dir=hr,
        lr_dir=lr,
        scale=scale,
        weights=weights,
        data_range=data_range,
        model_args=model_args,
        load=load_options(checkpoint_key, no_strict, after_load),
        device=device,
    )
    with _ProgressView() as view:
        runs = evaluate_all(config, progress=view.update)
    for run in runs:
        _render(run, view.warned)
    if json_path is not None and runs:  # under torchrun only rank 0 has the records
        atomic_write_json(json_path, runs[0].record)
        output.info(f"record written to {json_path}")


class _ProgressView:
    """A rich progress bar per (model, dataset) on stderr (a terminal only), with ETA and the running mean PSNR."""

    def __init__(self) -> None:
        self._progress = output.progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[psnr]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task: TaskID | None = None
        self._started = False  # the live display starts with the first dataset: an early error prints alone
        self.warned: set[tuple[str, str, str]] = set()  # (model, dataset, image) skips already told, with the reason

    def __enter__(self) -> _ProgressView:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._progress.stop()

    def update(self, event: EvalEvent) -> None:
        psnr = "" if event.mean_psnr is None else f"mean PSNR {event.mean_psnr:.2f} dB"
        if event.kind == "notice":
            output.notice(event.message)  # the same console as the bar: printed above it
        elif event.kind == "start":
            if not self._started:
                self._progress.start()
                self._started = True
            self._task = self._progress.add_task(
                f"{event.model} on {event.dataset}", total=event.total, completed=event.done, psnr=psnr
            )
        elif self._task is not None:
            self._progress.update(self._task, completed=event.done, total=event.total, psnr=psnr)  # done: all ranks
            if event.kind == "skip":
                output.warning(f"skipped {event.message}: {event.reason}")
                self.warned.add((event.model, event.dataset, event.message))


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _render(run: EvalResult, warned: set[tuple[str, str, str]]) -> None:
    """The record as a table and summary lines; skipped images are named unless the run already said why."""
    rec: EvalRecord = run.record
    alias = f" (for '{rec['dataset_requested']}')" if rec["dataset_requested"] not in (rec["dataset"], None) and rec["data"]["expected"] else ""
    title = (
        f"{rec['model']} x{rec['scale']} on {rec['dataset']}{alias} — {rec['device']}, protocol {rec['protocol']}, "
        f"exec {rec['exec']['label']}, LR {rec['data']['lr_source']}"
    )
    table = Table(title=title, caption=f"PSNR/SSIM with a {rec['crop_border']}-pixel border crop; runtime per image")
    for column in ("image", "LR (H×W)", "PSNR RGB", "SSIM RGB", "PSNR Y", "SSIM Y", "runtime (ms)"):
        table.add_column(column, justify="left" if column == "image" else "right")
    for row in rec["images"]:
        table.add_row(escape(row["name"]), "×".join(map(str, row["lr_size"])), _fmt(row["psnr_rgb"], 2), _fmt(row["ssim_rgb"], 4),
                      _fmt(row["psnr_y"], 2), _fmt(row["ssim_y"], 4), _fmt(row["runtime_ms"], 2))
    mean = rec["mean"]
    table.add_section()
    table.add_row("[bold]mean[/]", "", _fmt(mean["psnr_rgb"], 2), _fmt(mean["ssim_rgb"], 4), _fmt(mean["psnr_y"], 2),
                  _fmt(mean["ssim_y"], 4), _fmt(mean.get("runtime_ms"), 2))
    output.out.print(table)
    rt = rec["runtime_ms"]
    memory = rec.get("memory") or {}
    peak = memory.get("peak_mib")
    memory_text = "-" if peak is None else f"{peak:.2f} MiB ({MEMORY_KINDS.get(memory.get('kind', ''), '')})"
    sharding = rec.get("sharding") or {}
    runtime = (f"runtime: mean {rt['mean']:.2f} ms, median {rt['median']:.2f} ms, std {rt['std']:.2f} ms over {rt['n']} "
               f"images ({len(rt['warmup_samples'])} warm-up forwards)" if rt is not None else
               f"runtime: not pooled, {sharding.get('runtime_not_comparable')}")
    output.out.print(
        f"{runtime}; peak memory {memory_text}",
        soft_wrap=True,
        highlight=False,
    )
    for shard in rec.get("shards") or []:  # a torchrun eval: what each rank ran
        srt = shard["runtime_ms"] or {}
        output.out.print(
            f"rank {shard['rank']} ({shard['device']}, {shard['device_model']}): {shard['images']} images, runtime "
            f"mean {_fmt(srt.get('mean'), 2)} ms, peak memory {_fmt(shard['memory']['peak_mib'], 2)} MiB",
            soft_wrap=True, highlight=False,
        )
    for bad in rec["skipped"]:
        if (rec["model"], rec["dataset"], bad["name"]) not in warned:  # e.g. refused by the header check
            output.warning(f"skipped {bad['name']}: {bad['error']}")
    for message in gpu_warnings(rec):
        output.warning(message)  # the fair-timing guard: the runtimes above were measured under this
    output.info(f"record saved: {run.path} (per-image log: {rec['run_log']})")
