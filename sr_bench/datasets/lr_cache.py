"""Loading a pair for the eval loop: decode LR and mod-cropped HR, generating LR when the set ships none.

Generated LR is MATLAB bicubic of the mod-cropped HR, cached content-addressed under ``<results>/lr-cache/``:
keyed by the HR file's SHA-256, so an edited HR image is regenerated and identical images are shared between sets.

    >>> lr, hr = load_pair(pair, 4, lr_cache_dir(Path("results")))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sr_bench.datasets.pairing import ImagePair
from sr_bench.datasets.validation import SKIP_BAD_HINT
from sr_bench.errors import DatasetError, ResultsError
from sr_bench.files import sha256_file

LR_CACHE_VERSION = 1  # bump when generated LR would change (imresize fix), so old cache entries are not reused


def lr_cache_dir(results_dir: Path) -> Path:
    """Where generated LR images live: next to the results they were made for."""
    return results_dir / "lr-cache" / f"v{LR_CACHE_VERSION}"


def load_pair(pair: ImagePair, scale: int, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pair as (LR, mod-cropped HR), both (H, W, 3) uint8; generate and cache LR when absent.

    Decoding errors raise :class:`DatasetError` naming the file (the caller decides whether to skip it).
    """
    from sr_bench.images import modcrop, read_rgb_u8
    from sr_bench.imresize import imresize

    hr = modcrop(_read(read_rgb_u8, pair.hr_path), scale)
    if pair.lr_path is not None:
        return _read(read_rgb_u8, pair.lr_path), hr
    cached = cache_dir / f"x{scale}" / f"{sha256_file(pair.hr_path)}.png"
    if cached.is_file():
        try:
            lr = read_rgb_u8(cached)
            if lr.shape[:2] == (hr.shape[0] // scale, hr.shape[1] // scale):
                return lr, hr
        except Exception:  # noqa: BLE001 - a damaged cache entry is regenerated, never trusted
            pass
    lr = imresize(hr, 1 / scale)
    _write_cache(cached, lr)
    return lr, hr


def _read(reader: Callable[[Path], np.ndarray], path: Path) -> np.ndarray:
    try:
        return reader(path)
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure becomes one named, one-line error
        raise DatasetError(f"cannot decode image {path}: {exc}{SKIP_BAD_HINT}") from None


def _write_cache(path: Path, lr: np.ndarray) -> None:
    """Cache generated LR (``write_png`` is atomic); a cache we cannot write (read-only, full) only costs
    regeneration later."""
    from sr_bench.images import write_png

    with contextlib.suppress(ResultsError):
        write_png(path, lr)
