"""The dataset catalogue: which evaluation sets srbench knows, as frozen data (timm-style registry).

A spec names the folder layouts a set is known to ship in, the number of images it should hold, and the official
archives ``datasets pull`` downloads. Nothing here touches the disk: finding a spec's folders is ``folders``'s job.

    >>> get_dataset_spec("set14").count
    14
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from sr_bench.errors import DatasetError

BUILTIN_SETS = ("set5",)  # shipped under sr_bench/assets/data; used when the data root has no copy


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
SPECS: tuple[DatasetSpec, ...] = (
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
REGISTRY: MappingProxyType[str, DatasetSpec] = MappingProxyType({s.name: s for s in SPECS})
# an alias means the first of its targets present under the data root (test split first), else the last one
ALIASES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {"div2k": ("div2k-test", "div2k-valid"), "lsdir": ("lsdir-test", "lsdir-valid")}
)


def list_datasets() -> list[str]:
    """Registered dataset names, in registry order (challenge splits first, then classic sets)."""
    return list(REGISTRY)


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec registered under ``name`` (not an alias); unknown names fail listing the known ones."""
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        raise DatasetError(unknown_message(name)) from None


def unknown_message(name: str, where: str = "") -> str:
    """The one-line error for a name that is neither a spec nor an alias; ``where`` adds what a search of the
    data root found, when one was searched."""
    known = ", ".join([*REGISTRY, *ALIASES])
    return f"unknown dataset {name!r}; known: {known}{where} (or use --hr DIR [--lr DIR])"
