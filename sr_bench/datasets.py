"""Evaluation datasets: named specs, folder layouts, LR/HR pairing, validation, generated LR, and pull.

A dataset spec is frozen data (timm-style registry): the folder layouts a set is known to ship in, the number of
images it should hold, and the official archives to download. ``resolve_dataset`` turns a name (or an alias such
as ``div2k``) plus a data root into a :class:`Dataset` of :class:`ImagePair`; ``custom_dataset`` does the same for
a ``--hr DIR [--lr DIR]`` pair of folders. ``check_pairs`` validates every pair from the file headers before any
model work starts, so a bad file or a wrong ``--scale`` fails in a second, not after an hour.

LR images are matched to HR images by file stem, with or without an ``x{scale}`` suffix (``0801.png`` pairs with
``0801x4.png`` or ``0801.png``). A set without an LR folder for the scale gets MATLAB-bicubic LR generated from
the mod-cropped HR (:func:`load_pair`), cached content-addressed under ``<results>/lr-cache/`` (keyed by the HR
file's SHA-256, so an edited HR image is regenerated and identical images are shared between sets).

Example::

    ds = resolve_dataset("set14", Path("../shared/data"), scale=4)
    checked = check_pairs(ds.pairs, scale=4)
    lr, hr = load_pair(ds.pairs[0], 4, lr_cache_dir(Path("results")))
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
from PIL import Image, UnidentifiedImageError

from sr_bench import paths
from sr_bench.errors import DatasetError, DownloadError, ResultsError
from sr_bench.files import download, missing_dirs, remove_empty_dirs, sha256_file

IMAGE_EXTS = frozenset({".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})
LR_CACHE_VERSION = 1  # bump when generated LR would change (imresize fix), so old cache entries are not reused
DATA_URL_ENV = "SRBENCH_DATA_URL"  # overrides the base URL of every archive (mirrors, tests)
SKIP_BAD_HINT = "; replace the file or rerun with --skip-bad"  # dropped from the message once --skip-bad is on
BUILTIN_SETS = ("set5",)  # shipped under sr_bench/assets/data; used when the data root has no copy

ProgressFn = Callable[[str, int, "int | None"], None]  # (label, done, total) for long work such as downloads


# --------------------------------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Archive:
    """One official download: where it lives and what it must contain."""

    file: str  # archive file name; also the last component of the URL when the base URL is overridden
    url: str  # official URL
    into: str = ""  # folder under the data root it unpacks into ("" = the root itself)
    images: int | None = None  # image files the archive must hold; None when not published
    size: int | None = None  # bytes, when published
    sha256: str | None = None  # hex digest, when published


@dataclass(frozen=True)
class Layout:
    """One way a set is laid out on disk: an HR folder and the LR folders that go with it.

    Paths are relative to the data root, matched case-insensitively; ``{scale}`` is replaced by the scale.
    """

    hr: str
    lr: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetSpec:
    """A named evaluation set: its layouts, size and downloads."""

    name: str
    description: str
    layouts: tuple[Layout, ...]
    count: int | None = None  # images in the full set; None when it varies or is unknown
    split: str | None = None  # "valid" / "test" for challenge splits
    archives: tuple[Archive, ...] = ()  # what `srbench datasets pull` downloads


@dataclass(frozen=True)
class ImagePair:
    """One evaluation image: its HR file and, when the set ships one, its LR file (else LR is generated)."""

    name: str  # the HR file stem, used as the image name in records
    hr_path: Path
    lr_path: Path | None


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
class CheckedPair:
    """A pair whose headers were read: sizes are (H, W); ``hr_size`` is after mod-crop."""

    pair: ImagePair
    lr_size: tuple[int, int]
    hr_size: tuple[int, int]
    sixteen_bit: bool = False  # a file of the pair has 16-bit samples (read as their high byte, see images.py)


@dataclass(frozen=True)
class BadImage:
    """An image that could not be read, kept in the record when ``--skip-bad`` lets the run go on."""

    name: str
    path: Path
    error: str


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


def _classic(name: str, folder: str, count: int, *, spellings: tuple[str, ...] = ()) -> DatasetSpec:
    """A classic benchmark in the ``<Set>/HR``, ``<Set>/LR_bicubic/X4`` layout (also under ``benchmark/``)."""
    layouts = []
    for base in (folder, *spellings):
        for parent in ("", "benchmark/"):
            root = f"{parent}{base}"
            layouts.append(Layout(f"{root}/HR", (f"{root}/LR_bicubic/X{{scale}}", f"{root}/LR/X{{scale}}")))
    return DatasetSpec(name, f"{folder} ({count} images)", tuple(layouts), count=count)


def _challenge(prefix: str, split: str, *, parents: tuple[str, ...] = ("",)) -> tuple[Layout, ...]:
    """The NTIRE naming: ``{prefix}_{split}_HR`` with ``{prefix}_{split}_LR`` or the release ``_LR_bicubic/X4``."""
    layouts = []
    for parent in parents:
        p = f"{parent}{prefix}_{split}"
        layouts.append(Layout(f"{p}_HR", (f"{p}_LR_bicubic/X{{scale}}", f"{p}_LR/X{{scale}}", f"{p}_LR")))
    return tuple(layouts)


_DIV2K = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
_SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        "div2k-valid",
        "DIV2K validation, 0801-0900",
        _challenge("DIV2K", "valid", parents=("", "DIV2K/")),
        count=100,
        split="valid",
        archives=(
            Archive("DIV2K_valid_HR.zip", _DIV2K + "DIV2K_valid_HR.zip", images=100),
            Archive("DIV2K_valid_LR_bicubic_X4.zip", _DIV2K + "DIV2K_valid_LR_bicubic_X4.zip", images=100),
        ),
    ),
    DatasetSpec(
        "div2k-test", "DIV2K test, 0901-1000", _challenge("DIV2K", "test", parents=("", "DIV2K/")), 100, "test"
    ),
    DatasetSpec(
        "lsdir-valid",
        "LSDIR validation (7-digit names)",
        _challenge("LSDIR", "valid", parents=("", "LSDIR/"))
        + tuple(
            Layout(f"{p}val1/HR/val", (f"{p}val1/X{{scale}}/val", f"{p}val1/LR/X{{scale}}/val", f"{p}val1/X{{scale}}"))
            for p in ("LSDIR/", "")
        ),
        count=250,
        split="valid",
        archives=(Archive("val1.tar.gz", "https://data.vision.ee.ethz.ch/yawli/val1.tar.gz", into="LSDIR"),),
    ),
    DatasetSpec("lsdir-test", "LSDIR test", _challenge("LSDIR", "test", parents=("", "LSDIR/")), split="test"),
    DatasetSpec(
        "ntire2023-hybrid-test",
        "NTIRE 2023 ESR test (LSDIR_DIV2K_test_*)",
        _challenge("LSDIR_DIV2K", "test"),
        split="test",
    ),
    DatasetSpec(  # the 2024 harness names the same 200 images LSDIR_DIV2K_valid_*
        "ntire-valid",
        "NTIRE 2024+ ESR valid (DIV2K_LSDIR_valid_*; 2024: LSDIR_DIV2K_valid_*)",
        _challenge("DIV2K_LSDIR", "valid") + _challenge("LSDIR_DIV2K", "valid"),
        200,
        "valid",
    ),
    DatasetSpec(
        "ntire-test",
        "NTIRE 2024+ ESR test (DIV2K_LSDIR_test_*; 2024: LSDIR_DIV2K_test_*)",
        _challenge("DIV2K_LSDIR", "test") + _challenge("LSDIR_DIV2K", "test"),
        200,
        "test",
    ),
    _classic("set5", "Set5", 5),
    _classic("set14", "Set14", 14),
    _classic("b100", "B100", 100, spellings=("BSD100", "BSDS100")),
    _classic("urban100", "Urban100", 100),
    _classic("manga109", "Manga109", 109),
)
_REGISTRY: MappingProxyType[str, DatasetSpec] = MappingProxyType({s.name: s for s in _SPECS})
# an alias means the first of its targets present under the data root (test split first), else the last one
ALIASES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {"div2k": ("div2k-test", "div2k-valid"), "lsdir": ("lsdir-test", "lsdir-valid")}
)


def list_datasets() -> list[str]:
    """Registered dataset names, in registry order (challenge splits first, then classic sets)."""
    return list(_REGISTRY)


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec registered under ``name`` (not an alias); unknown names fail listing the known ones."""
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise DatasetError(_unknown_message(name, None)) from None


def _unknown_message(name: str, data_root: Path | None) -> str:
    known = ", ".join([*_REGISTRY, *ALIASES])
    msg = f"unknown dataset {name!r}; known: {known}"
    if data_root is not None:
        present = [s.name for s in _SPECS if _find_layout(s, data_root, 4)[0] is not None]
        msg += f"; present under {data_root}: {', '.join(present) or 'none'}; built-in: {', '.join(BUILTIN_SETS)}"
    return msg + " (or use --hr DIR [--lr DIR])"


# ------------------------------------------------------------------------------------------------- folders


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


def _find_layout(spec: DatasetSpec, data_root: Path, scale: int,
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


def _find_anywhere(spec: DatasetSpec, data_root: Path, scale: int,
                   prefer: str | None = None) -> tuple[Path | None, Path | None, bool]:
    """:func:`_find_layout` under ``data_root``, else in srbench's built-in copy; the flag says which."""
    hr, lr = _find_layout(spec, data_root, scale, prefer)
    if hr is None and spec.name in BUILTIN_SETS:
        hr, lr = _find_layout(spec, paths.builtin_data_root(), scale)
        return hr, lr, hr is not None
    return hr, lr, False


def _image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, plain-sorted by name as the official harness globs them."""
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise DatasetError(f"cannot list {folder}: {exc.strerror or exc}; check the path and permissions") from None
    files = [p for p in entries if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=lambda p: p.name)


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
    files = _image_files(lr_dir)
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


def _pairs(hr_dir: Path, lr_dir: Path | None, scale: int) -> list[ImagePair]:
    hr_files = _image_files(hr_dir)
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


def locate_dataset(name: str, data_root: Path, scale: int = 4,
                   prefer: str | None = None) -> tuple[DatasetSpec, Path, Path | None]:
    """Which spec a name (or alias) means under ``data_root``, and its HR and LR folders, without pairing files.

    Raises the unknown / not-found errors of :func:`resolve_dataset`; cheap enough to check every ``--dataset``
    before any model is loaded. A built-in set (Set5) not found under ``data_root`` comes from srbench's own copy.
    ``prefer`` names an HR folder (a layout's ``hr``) to try first: a challenge year's own naming of a set.
    """
    key = name.lower()
    candidates = ALIASES.get(key, (key,))
    if any(c not in _REGISTRY for c in candidates):
        raise DatasetError(_unknown_message(name, data_root))
    for candidate in candidates:
        spec = _REGISTRY[candidate]
        hr_dir, lr_dir, _ = _find_anywhere(spec, data_root, scale, prefer)
        if hr_dir is not None:
            return spec, hr_dir, lr_dir
    tried = ", ".join(dict.fromkeys(lay.hr for c in candidates for lay in _REGISTRY[c].layouts))
    pullable = [c for c in candidates if _REGISTRY[c].archives]
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
    pairs = _pairs(hr_dir, lr_dir, scale)
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
    ds = Dataset("custom", scale, hr_dir, lr_dir, _pairs(hr_dir, lr_dir, scale), requested=str(hr_dir))
    if lr_dir is None:
        ds.notices.append(f"no --lr folder; LR is generated from {hr_dir} (MATLAB bicubic)")
    return ds


def dataset_status(data_root: Path, scale: int = 4) -> list[DatasetStatus]:
    """Every registered set: found under ``data_root``, built-in, or missing, with its image count."""
    statuses = []
    for spec in _SPECS:
        hr_dir, lr_dir, builtin = _find_anywhere(spec, data_root, scale)
        if hr_dir is None:
            statuses.append(DatasetStatus(spec, 0, None, None))
            continue
        try:
            found = len(_pairs(hr_dir, lr_dir, scale))
            statuses.append(DatasetStatus(spec, found, hr_dir, lr_dir, builtin=builtin))
        except DatasetError as exc:
            statuses.append(DatasetStatus(spec, len(_image_files(hr_dir)), hr_dir, lr_dir, error=str(exc),
                                          builtin=builtin))
    return statuses


# ---------------------------------------------------------------------------------------------- validation


def _header_size(path: Path) -> tuple[int, int, bool]:
    """(H, W, 16-bit) from the file header, after checking the file's structure (PNG chunk CRCs) without decoding."""
    from sr_bench.images import READ_ERRORS, is_sixteen_bit, read_failure

    try:
        with Image.open(path) as im:
            w, h = im.size
            deep = is_sixteen_bit(im)
            im.verify()
    except (*READ_ERRORS, UnidentifiedImageError) as exc:
        raise DatasetError(f"cannot read image {path}: {read_failure(exc)}{SKIP_BAD_HINT}") from None
    return h, w, deep


def _mismatch(pair: ImagePair, lr: tuple[int, int], hr_raw: tuple[int, int], scale: int) -> str:
    hr_mod = (hr_raw[0] - hr_raw[0] % scale, hr_raw[1] - hr_raw[1] % scale)
    msg = (
        f"LR/HR size mismatch for {pair.name}: LR {pair.lr_path} is {lr[0]}x{lr[1]}, "
        f"x{scale} = {lr[0] * scale}x{lr[1] * scale}, but HR {pair.hr_path.name} mod-cropped is "
        f"{hr_mod[0]}x{hr_mod[1]} (HxW)"
    )
    for k in range(1, 9):
        if k != scale and lr[0] * k == hr_raw[0] - hr_raw[0] % k and lr[1] * k == hr_raw[1] - hr_raw[1] % k:
            return msg + f"; the LR looks like x{k}: pass --scale {k}"
    return msg + "; check that the LR folder belongs to this HR folder"


def bad_image(pair: ImagePair, exc: DatasetError) -> BadImage:
    """A skipped image for the record and the warning, without advice to turn on the --skip-bad that is on."""
    return BadImage(pair.name, pair.hr_path, str(exc).removesuffix(SKIP_BAD_HINT))


def check_pairs(
    pairs: list[ImagePair], scale: int, *, skip_bad: bool = False
) -> tuple[list[CheckedPair], list[BadImage]]:
    """Read every pair's headers before the run: unreadable files and size mismatches fail here, named.

    With ``skip_bad`` an unreadable file is returned in the second list instead of raising; a size
    mismatch always raises, since it means a wrong folder or scale rather than one damaged file.
    """
    checked: list[CheckedPair] = []
    bad: list[BadImage] = []
    for pair in pairs:
        try:
            hr_h, hr_w, hr_deep = _header_size(pair.hr_path)
            lr_h, lr_w, lr_deep = _header_size(pair.lr_path) if pair.lr_path else (hr_h // scale, hr_w // scale, False)
        except DatasetError as exc:
            if not skip_bad:
                raise
            bad.append(bad_image(pair, exc))
            continue
        hr_raw, lr = (hr_h, hr_w), (lr_h, lr_w)
        hr = (hr_raw[0] - hr_raw[0] % scale, hr_raw[1] - hr_raw[1] % scale)
        if min(lr) < 1 or (lr[0] * scale, lr[1] * scale) != hr:
            raise DatasetError(_mismatch(pair, lr, hr_raw, scale))
        checked.append(CheckedPair(pair, lr, hr, sixteen_bit=hr_deep or lr_deep))
    return checked, bad


def sixteen_bit_warning(checked: list[CheckedPair], dataset: str) -> str | None:
    """The one warning a dataset gets when some of its files are 16-bit: how srbench reads them and why that
    is not the official reader's result (see ``images``)."""
    names = [c.pair.name for c in checked if c.sixteen_bit]
    if not names:
        return None
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (f"{len(names)} image(s) of {dataset} are 16-bit ({shown}): srbench reads the high byte of each sample; "
            "the official reader would keep uint16 and scale it as 8-bit, so no official number exists for them")


# ------------------------------------------------------------------------------------------- loading / LR


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


# -------------------------------------------------------------------------------------------------- pull


def archive_url(archive: Archive, base_url: str | None = None) -> str:
    """The archive's URL, or ``base_url/<file>`` when a base is given (argument, else ``$SRBENCH_DATA_URL``)."""
    base = base_url or os.environ.get(DATA_URL_ENV)
    return f"{base.rstrip('/')}/{archive.file}" if base else archive.url


def pull_dataset(
    spec: DatasetSpec,
    data_root: Path,
    *,
    base_url: str | None = None,
    progress: ProgressFn | None = None,
) -> Dataset:
    """Download, verify and unpack ``spec``'s archives into ``data_root``; return the resolved set.

    Downloads go to ``<data_root>/.downloads/<file>.part`` and resume with an HTTP range request when
    interrupted; a finished archive is checked (size, SHA-256 where published, image count) before it is
    unpacked, and deleted once its images are in place. A set already complete is not downloaded again.
    """
    if not spec.archives:
        raise DatasetError(f"dataset {spec.name!r} has no public download; place it under the data root by hand")
    scale = 4  # the archives ship x4 LR
    if not _complete(spec, data_root, scale):
        downloads = data_root / ".downloads"
        created = missing_dirs(downloads)
        try:
            downloads.mkdir(parents=True, exist_ok=True)
            for archive in spec.archives:
                path = _download(archive, downloads, base_url, progress, spec.name)
                _unpack(archive, path, data_root)
                path.unlink()
        except OSError as exc:  # a full disk or an unwritable data root, while downloading or unpacking
            raise DownloadError(
                f"pulling {spec.name} into {data_root} failed: {exc.strerror or exc}; free space or fix the folder's "
                "permissions, then pull again (an interrupted download resumes)"
            ) from None
        finally:  # a partial download stays (it resumes); folders left empty, by success or failure, do not
            remove_empty_dirs(created or [downloads])
    ds = resolve_dataset(spec.name, data_root, scale)
    if spec.count is not None and len(ds.pairs) != spec.count:
        raise DownloadError(
            f"{spec.name}: {len(ds.pairs)} images after unpacking, expected {spec.count}; "
            f"delete {ds.hr_dir} and pull again"
        )
    return ds


def _complete(spec: DatasetSpec, data_root: Path, scale: int) -> bool:
    """True when the set is already there in full, HR and LR, so pulling again would change nothing."""
    try:
        ds = resolve_dataset(spec.name, data_root, scale)
    except DatasetError:
        return False
    return ds.lr_dir is not None and spec.count is not None and len(ds.pairs) == spec.count


def _download(archive: Archive, folder: Path, base_url: str | None, progress: ProgressFn | None, name: str) -> Path:
    """Fetch one archive into ``folder`` (resuming a ``.part`` file) and verify it; return the final path."""
    final = folder / archive.file
    if final.is_file() and _verified(archive, final):
        return final
    part = folder / f"{archive.file}.part"
    digest = download(
        archive_url(archive, base_url),
        part,
        functools.partial(progress, archive.file) if progress else None,
        resume=True,
        advice=f"rerun 'srbench datasets pull {name}' to resume; without the network, put the set under a folder "
        f"and pass --data-root DIR (or set {DATA_URL_ENV}=<mirror URL>)",
    )
    if not _verified(archive, part, digest):
        part.unlink()
        raise DownloadError(
            f"{archive.file} failed verification (size or SHA-256 differs from the published one); "
            "the partial file was removed, pull again"
        )
    os.replace(part, final)
    return final


def _verified(archive: Archive, path: Path, digest: str | None = None) -> bool:
    """Size and published SHA-256 match; ``digest`` is the file's hash when the caller already has it."""
    if archive.size is not None and path.stat().st_size != archive.size:
        return False
    return archive.sha256 is None or (digest or sha256_file(path)) == archive.sha256.lower()


def _unpack(archive: Archive, path: Path, data_root: Path) -> None:
    """Extract into a staging folder, check the image count, then merge into the data root."""
    staging = data_root / f".unpack-{archive.file}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _extract(path, staging)
        images = sum(1 for p in staging.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        if archive.images is not None and images != archive.images:
            path.unlink()
            raise DownloadError(
                f"{archive.file} holds {images} images, expected {archive.images}; the archive was removed, pull again"
            )
        target = data_root / archive.into
        target.mkdir(parents=True, exist_ok=True)
        for entry in staging.iterdir():
            _merge_move(entry, target / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract(path: Path, dest: Path) -> None:
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                root = dest.resolve()
                for member in zf.namelist():
                    if not (dest / member).resolve().is_relative_to(root):
                        raise DownloadError(f"{path.name} has an unsafe member path {member!r}; not unpacking it")
                zf.extractall(dest)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as tf:
                tf.extractall(dest, filter="data")
        else:
            raise DownloadError(f"{path.name} is neither a zip nor a tar archive; delete it and pull again")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{path.name} is corrupt ({exc}); it was removed, pull again") from None


def _merge_move(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, merging folders (an LR archive adds ``X4/`` beside an existing ``X2/``)."""
    if src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            _merge_move(child, dst / child.name)
    else:
        if dst.exists() and not dst.is_dir():
            dst.unlink()
        shutil.move(str(src), str(dst))

