"""Finding a catalogued set on disk: its HR and LR folders under a data root, and the image files in a folder.

Folder names are matched case-insensitively (``X4`` / ``x4``, ``set5`` / ``Set5``), since the same set ships with
different spellings; a built-in set (``catalogue.BUILTIN_SETS``) missing from the data root comes from srbench's
own copy.
"""

from __future__ import annotations

from pathlib import Path

from sr_bench import paths
from sr_bench.datasets.catalogue import BUILTIN_SETS, DatasetSpec
from sr_bench.errors import DatasetError

IMAGE_EXTS = frozenset({".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})


def _find_dir(root: Path, rel: str) -> Path | None:
    """``root/rel`` as a directory, matching each component case-insensitively (X4 / x4, set5 / Set5)."""
    current = root
    for part in Path(rel).parts:
        exact = current / part
        if exact.is_dir():
            current = exact
            continue
        try:
            matches = sorted(p for p in current.iterdir() if p.is_dir() and p.name.lower() == part.lower())
        except OSError:
            return None
        if not matches:
            return None
        current = matches[0]
    return current


def find_layout(spec: DatasetSpec, data_root: Path, scale: int,
                prefer: str | None = None) -> tuple[Path | None, Path | None]:
    """The first layout whose HR folder exists (those whose HR folder is ``prefer`` tried first), and the first of
    its LR folders that exists (or None)."""
    layouts = spec.layouts if prefer is None else sorted(spec.layouts, key=lambda lay: lay.hr.lower() != prefer.lower())
    for layout in layouts:
        hr = _find_dir(data_root, layout.hr)
        if hr is None:
            continue
        for candidate in layout.lr:
            lr = _find_dir(data_root, candidate.format(scale=scale))
            if lr is not None:
                return hr, lr
        return hr, None
    return None, None


def find_anywhere(spec: DatasetSpec, data_root: Path, scale: int,
                  prefer: str | None = None) -> tuple[Path | None, Path | None, bool]:
    """:func:`find_layout` under ``data_root``, else in srbench's built-in copy; the flag says which."""
    hr, lr = find_layout(spec, data_root, scale, prefer)
    if hr is None and spec.name in BUILTIN_SETS:
        hr, lr = find_layout(spec, paths.builtin_data_root(), scale)
        return hr, lr, hr is not None
    return hr, lr, False


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, plain-sorted by name as the official harness globs them."""
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise DatasetError(f"cannot list {folder}: {exc.strerror or exc}; check the path and permissions") from None
    files = [p for p in entries if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=lambda p: p.name)
