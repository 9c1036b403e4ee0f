"""``srbench upscale``: super-resolve image files and write PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sr_bench.cli import output
from sr_bench.cli.options import (
    AfterLoadOpt,
    CheckpointKeyOpt,
    DataRangeOpt,
    DeviceOpt,
    ExecOpt,
    ModelArgsOpt,
    ModelOpt,
    NoStrictOpt,
    ScaleOpt,
    ThreadsOpt,
    WeightsOpt,
    load_cli_model,
    load_options,
)


def upscale(
    images: Annotated[list[Path], typer.Argument(help="Image files (PNG, JPEG, BMP, WebP, TIFF).")],
    model: ModelOpt,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder for <name>_x<scale>.png.")] = Path("sr"),
    scale: ScaleOpt = None,
    weights: WeightsOpt = None,
    data_range: DataRangeOpt = None,
    model_args: ModelArgsOpt = None,
    checkpoint_key: CheckpointKeyOpt = None,
    no_strict: NoStrictOpt = False,
    after_load: AfterLoadOpt = None,
    device: DeviceOpt = "auto",
    exec_mode: ExecOpt = "auto",
    threads: ThreadsOpt = None,
) -> None:
    """Super-resolve images with a model and write PNGs (input range handled per model).

    Example: srbench upscale --model lgvan photo.png -o sr/
    """
    from sr_bench.execution import parse_exec, prepare, resolve_exec, threads_notice
    from sr_bench.timing import pinned_threads, resolve_device
    from sr_bench.upscale import check_images, upscale_files

    request = parse_exec(exec_mode)
    dev = resolve_device(device)
    check_images(images)
    loaded = load_cli_model(model, scale, weights, data_range, model_args, device=str(dev),
                            load=load_options(checkpoint_key, no_strict, after_load))
    mode, probe = resolve_exec(request, loaded.module, dev, threads=threads, data_range=loaded.data_range)
    if probe and probe.get("notice"):
        output.notice(probe["notice"])
    run = prepare(loaded.module, mode, dev, loaded.name)
    if message := threads_notice(threads, mode):
        output.notice(message)
    with pinned_threads(mode.threads):
        upscale_files(loaded, images, out_dir, run, dev,
                      on_done=lambda src, dst: output.out.print(f"{src} -> {dst}", soft_wrap=True))
    output.info(f"{len(images)} image(s) upscaled x{loaded.scale} with {loaded.name} ({mode.label} on {dev})")
