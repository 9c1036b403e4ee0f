"""Super-resolve image files with a model: the quickest way for a person to see what a model does.

Each image is read as 8-bit RGB, scaled to the model's input range, run through the model in the chosen
execution mode, converted back exactly as the challenge does (clamp, scale, round) and written as PNG. An output
holding NaN or Inf stops the run before its PNG is written: the clamp would turn it into ordinary-looking pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from sr_bench.errors import DatasetError, UsageError
from sr_bench.images import check_finite, read_rgb_u8, to_input, to_uint8, write_png
from sr_bench.models import LoadedModel, check_output_shape
from sr_bench.timing import is_out_of_memory, out_of_memory_error

def output_path(image: Path, out_dir: Path, scale: int) -> Path:
    return out_dir / f"{image.stem}_x{scale}.png"


def check_images(images: Sequence[Path]) -> None:
    """Fail before any model is loaded when an input is missing, so a typo costs nothing, or when two inputs
    would be written to the same output (``a/baby.png`` and ``b/baby.png``): refused rather than renamed, so an
    output's name always says which input it came from."""
    missing = [p for p in images if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetError(f"image not found: {missing[0]}{more}")
    by_stem: dict[str, Path] = {}
    for image in images:
        first = by_stem.setdefault(image.stem, image)
        if first.resolve() != image.resolve():
            raise UsageError(
                f"{first} and {image} would both be written as {image.stem}_x<scale>.png: upscale them in separate "
                "runs with different --out folders, or rename one"
            )


def upscale_files(
    loaded: LoadedModel,
    images: Sequence[Path],
    out_dir: Path,
    run: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    on_done: Callable[[Path, Path], None] | None = None,
) -> list[Path]:
    """Upscale every image with ``run`` (the prepared model); returns the written PNG paths.

    Stops at the first image that fails (a non-finite output included); the PNGs written before it stay, complete.
    """
    check_images(images)
    written = []
    for image in images:
        lr = to_input(read_rgb_u8(image), loaded.data_range, device)
        try:
            with torch.inference_mode():
                sr = run(lr)
        except RuntimeError as exc:  # torch.OutOfMemoryError included
            if not is_out_of_memory(exc):
                raise
            raise out_of_memory_error(device, tuple(lr.shape), f"{image} is too large for {device}; "
                                      "try a smaller image or another --device") from None
        check_output_shape(sr, tuple(lr.shape), loaded.scale, loaded.name)
        check_finite(sr, loaded.name, str(image), advice="fix the model; no PNG was written for it")
        target = output_path(image, out_dir, loaded.scale)
        write_png(target, to_uint8(sr, loaded.data_range).permute(1, 2, 0).cpu().numpy())
        written.append(target)
        if on_done:
            on_done(image, target)
    return written
