"""Resolving a set: a catalogue name (or alias) or a ``--hr DIR [--lr DIR]`` pair of folders -> a :class:`Dataset`.

The name is looked up in ``catalogue``, its folders found by ``folders``, its files paired by ``pairing``; the
:class:`Dataset` carries the pairs plus notices (a partial set, generated LR) for the CLI to show.
``dataset_status`` does the same for every catalogued set, for ``srbench datasets``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sr_bench.datasets.catalogue import ALIASES, BUILTIN_SETS, REGISTRY, SPECS, DatasetSpec, unknown_message
from sr_bench.datasets.folders import find_anywhere, find_layout, image_files
from sr_bench.datasets.pairing import ImagePair, pair_images
from sr_bench.errors import DatasetError


@dataclass
class Dataset:
    """A resolved set: which folders were found and the image pairs in order."""

    name: str  # registry name actually used (an alias resolves to its split) or "custom"
    scale: int
    hr_dir: Path
    lr_dir: Path | None  # None: LR is generated from HR
    pairs: list[ImagePair]
    spec: DatasetSpec | None = None
    requested: str | None = None  # the name as the user typed it (e.g. the alias "div2k")
    notices: list[str] = field(default_factory=list)

    @property
    def lr_source(self) -> str:
        return "generated" if self.lr_dir is None else "files"


@dataclass(frozen=True)
class DatasetStatus:
    """What ``srbench datasets`` shows for one spec."""

    spec: DatasetSpec
    found: int  # HR images found (0 when missing)
    hr_dir: Path | None
    lr_dir: Path | None  # None with found > 0: LR will be generated
    error: str | None = None  # why a present set cannot be used (e.g. an LR file missing)
    builtin: bool = False  # found in srbench's own copy, not under the data root

    @property
    def state(self) -> str:
        if self.hr_dir is None:
            return "missing"
        if self.builtin:
            return "built-in"
        if self.error:
            return "broken"
        if self.spec.count is not None and self.found != self.spec.count:
            return "partial"
        return "present"


def locate_dataset(name: str, data_root: Path, scale: int = 4,
                   prefer: str | None = None) -> tuple[DatasetSpec, Path, Path | None]:
    """Which spec a name (or alias) means under ``data_root``, and its HR and LR folders, without pairing files.

    Raises the unknown / not-found errors of :func:`resolve_dataset`; cheap enough to check every ``--dataset``
    before any model is loaded. A built-in set (Set5) not found under ``data_root`` comes from srbench's own copy.
    ``prefer`` names an HR folder (a layout's ``hr``) to try first: a challenge year's own naming of a set.
    """
    key = name.lower()
    candidates = ALIASES.get(key, (key,))
    if any(c not in REGISTRY for c in candidates):
        raise DatasetError(_unknown_here(name, data_root))
    for candidate in candidates:
        spec = REGISTRY[candidate]
        hr_dir, lr_dir, _ = find_anywhere(spec, data_root, scale, prefer)
        if hr_dir is not None:
            return spec, hr_dir, lr_dir
    tried = ", ".join(dict.fromkeys(lay.hr for c in candidates for lay in REGISTRY[c].layouts))
    pullable = [c for c in candidates if REGISTRY[c].archives]
    fix = f"run 'srbench datasets pull {pullable[-1]}'" if pullable else "put it there"
    raise DatasetError(f"dataset {name!r} not found under {data_root} (looked for {tried}): {fix} or pass --data-root")


def resolve_dataset(name: str, data_root: Path, scale: int, prefer: str | None = None) -> Dataset:
    """Find a named set (or alias) under ``data_root`` and pair its images for ``scale`` (``prefer``: as in
    :func:`locate_dataset`).

    >>> resolve_dataset("set5", Path("../shared/data"), 4).pairs[0].name
    'baby'
    """
    spec, hr_dir, lr_dir = locate_dataset(name, data_root, scale, prefer)
    return _dataset_from(spec, hr_dir, lr_dir, scale, requested=name)


def _dataset_from(spec: DatasetSpec, hr_dir: Path, lr_dir: Path | None, scale: int, requested: str) -> Dataset:
    pairs = pair_images(hr_dir, lr_dir, scale)
    ds = Dataset(spec.name, scale, hr_dir, lr_dir, pairs, spec=spec, requested=requested)
    if spec.count is not None and len(pairs) != spec.count:
        ds.notices.append(f"{spec.name}: found {len(pairs)} images in {hr_dir}, the full set has {spec.count}")
    if lr_dir is None:
        ds.notices.append(f"{spec.name}: no LR folder for x{scale}; LR is generated from HR (MATLAB bicubic)")
    return ds


def custom_dataset(hr_dir: Path, lr_dir: Path | None, scale: int) -> Dataset:
    """A ``--hr DIR [--lr DIR]`` pair of folders, named ``custom`` in records."""
    for label, folder in (("--hr", hr_dir), ("--lr", lr_dir)):
        if folder is not None and not folder.is_dir():
            raise DatasetError(f"{label} folder {folder} does not exist; pass an existing folder of images")
    ds = Dataset("custom", scale, hr_dir, lr_dir, pair_images(hr_dir, lr_dir, scale), requested=str(hr_dir))
    if lr_dir is None:
        ds.notices.append(f"no --lr folder; LR is generated from {hr_dir} (MATLAB bicubic)")
    return ds


def dataset_status(data_root: Path, scale: int = 4) -> list[DatasetStatus]:
    """Every registered set: found under ``data_root``, built-in, or missing, with its image count."""
    statuses = []
    for spec in SPECS:
        hr_dir, lr_dir, builtin = find_anywhere(spec, data_root, scale)
        if hr_dir is None:
            statuses.append(DatasetStatus(spec, 0, None, None))
            continue
        try:
            found = len(pair_images(hr_dir, lr_dir, scale))
            statuses.append(DatasetStatus(spec, found, hr_dir, lr_dir, builtin=builtin))
        except DatasetError as exc:
            statuses.append(DatasetStatus(spec, len(image_files(hr_dir)), hr_dir, lr_dir, error=str(exc),
                                          builtin=builtin))
    return statuses


def _unknown_here(name: str, data_root: Path) -> str:
    """The unknown-name error, with the sets present under ``data_root`` (a typo is then easy to spot)."""
    present = [s.name for s in SPECS if find_layout(s, data_root, 4)[0] is not None]
    where = f"; present under {data_root}: {', '.join(present) or 'none'}; built-in: {', '.join(BUILTIN_SETS)}"
    return unknown_message(name, where)
