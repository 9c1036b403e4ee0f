"""Super-resolve image files with a model: the quickest way for a person to see what a model does.

Each image is read as 8-bit RGB, scaled to the model's input range, run through the model in the chosen
execution mode, converted back exactly as the challenge does (clamp, scale, round) and written as PNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from sr_bench.errors import DatasetError
from sr_bench.images import read_rgb_u8, to_input, to_uint8, write_png
from sr_bench.models import LoadedModel, check_output_shape

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def output_path(image: Path, out_dir: Path, scale: int) -> Path:
    return out_dir / f"{image.stem}_x{scale}.png"


def upscale_files(
    loaded: LoadedModel,
    images: Sequence[Path],
    out_dir: Path,
    run: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    on_done: Callable[[Path, Path], None] | None = None,
) -> list[Path]:
    """Upscale every image with ``run`` (the prepared model); returns the written PNG paths.

    All inputs are checked to exist before any work, so a typo fails fast instead of after minutes.
    """
    missing = [p for p in images if not p.is_file()]
    if missing:
        raise DatasetError(f"image not found: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    written = []
    for image in images:
        lr = to_input(read_rgb_u8(image), loaded.data_range, device)
        with torch.inference_mode():
            sr = run(lr)
        check_output_shape(sr, tuple(lr.shape), loaded.scale, loaded.name)
        target = output_path(image, out_dir, loaded.scale)
        write_png(target, to_uint8(sr, loaded.data_range).permute(1, 2, 0).cpu().numpy())
        written.append(target)
        if on_done:
            on_done(image, target)
    return written
