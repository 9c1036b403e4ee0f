"""HR/LR pairing: one :class:`ImagePair` per HR file, its LR file matched by stem.

An LR file pairs with an HR file by stem, with or without an ``x{scale}`` suffix (``0801.png`` pairs with
``0801x4.png`` or ``0801.png``). A folder without LR (``lr_dir`` None) gives pairs whose LR is generated later
(``lr_cache.load_pair``). A missing, doubled or wrong-scale LR file fails here, named, before any model work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sr_bench.datasets.folders import IMAGE_EXTS, image_files
from sr_bench.errors import DatasetError


@dataclass(frozen=True)
class ImagePair:
    """One evaluation image: its HR file and, when the set ships one, its LR file (else LR is generated)."""

    name: str  # the HR file stem, used as the image name in records
    hr_path: Path
    lr_path: Path | None


_SCALE_SUFFIX = re.compile(r"^(?P<stem>.+?)x(?P<scale>\d+)$", re.IGNORECASE)


def _lr_index(lr_dir: Path, scale: int) -> dict[str, list[Path]]:
    """LR files keyed by HR stem: ``0801x4.png`` and ``0801.png`` both key ``0801`` (both are kept, so that a
    folder holding the two is an ambiguity the pairing names instead of a silent pick).

    A folder whose files all carry another scale's suffix means the wrong ``--scale`` (or the wrong folder),
    which is named here rather than surfacing later as a size mismatch.
    """
    index: dict[str, list[Path]] = {}
    other_scales: set[int] = set()
    this_scale = False
    files = image_files(lr_dir)
    for path in files:
        m = _SCALE_SUFFIX.match(path.stem)
        if m and int(m["scale"]) == scale:
            this_scale = True
            index.setdefault(m["stem"], []).append(path)
        else:
            if m:
                other_scales.add(int(m["scale"]))
            index.setdefault(path.stem, []).append(path)
    if other_scales and not this_scale:
        found = ", ".join(f"x{s}" for s in sorted(other_scales))
        raise DatasetError(
            f"LR folder {lr_dir} holds {found} images (e.g. {files[0].name}) but the scale is x{scale}: "
            f"pass the matching --scale, or point --lr at the x{scale} images"
        )
    return index


def pair_images(hr_dir: Path, lr_dir: Path | None, scale: int) -> list[ImagePair]:
    """The pairs of ``hr_dir`` in HR file order, each with its LR file from ``lr_dir`` (None: LR is generated)."""
    hr_files = image_files(hr_dir)
    if not hr_files:
        raise DatasetError(f"no images in {hr_dir} (looked for {', '.join(sorted(IMAGE_EXTS))}); check the folder")
    if lr_dir is None:
        return [ImagePair(p.stem, p, None) for p in hr_files]
    index = _lr_index(lr_dir, scale)
    pairs = []
    for hr in hr_files:
        candidates = index.get(hr.stem, [])
        if not candidates:
            raise DatasetError(
                f"no LR image for {hr.name} in {lr_dir} (expected {hr.stem}x{scale}{hr.suffix} or {hr.name}); "
                "add it, or drop the LR folder to generate LR from HR"
            )
        if len(candidates) > 1:
            names = " and ".join(p.name for p in candidates)
            raise DatasetError(
                f"two LR images for {hr.name} in {lr_dir}: {names}; keep one (move the other out of the folder)"
            )
        pairs.append(ImagePair(hr.stem, hr, candidates[0]))
    return pairs
