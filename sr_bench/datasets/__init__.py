"""Evaluation datasets: named specs, folder layouts, LR/HR pairing, validation, generated LR, and pull.

Data flow, one module per step::

    catalogue   DatasetSpec / Layout / Archive: which sets exist and how they ship (frozen data, no disk)
    folders     a spec's HR and LR folders under a data root (case-insensitive), the image files in a folder
    pairing     ImagePair: each HR file with its LR file, matched by stem (``0801.png`` <-> ``0801x4.png``)
    resolve     a name, alias or ``--hr DIR [--lr DIR]`` -> Dataset; dataset_status for ``srbench datasets``
    validation  check_pairs: every pair's headers read before any model work (bad file, wrong --scale)
    lr_cache    load_pair: decode a pair, generating MATLAB-bicubic LR (cached by HR SHA-256) when absent
    pull        pull_dataset: download, verify and unpack a spec's official archives

This package re-exports the public API, so callers import from ``sr_bench.datasets``. A test that replaces a
function must patch the module that *calls* it (e.g. ``resolve.pair_images``), not this re-export.

Example::

    ds = resolve_dataset("set14", Path("../shared/data"), scale=4)
    checked = check_pairs(ds.pairs, scale=4)
    lr, hr = load_pair(ds.pairs[0], 4, lr_cache_dir(Path("results")))
"""

from sr_bench.datasets.catalogue import (
    ALIASES,
    BUILTIN_SETS,
    Archive,
    DatasetSpec,
    Layout,
    get_dataset_spec,
    list_datasets,
)
from sr_bench.datasets.folders import IMAGE_EXTS
from sr_bench.datasets.lr_cache import LR_CACHE_VERSION, load_pair, lr_cache_dir
from sr_bench.datasets.pairing import ImagePair
from sr_bench.datasets.pull import DATA_URL_ENV, ProgressFn, archive_url, pull_dataset
from sr_bench.datasets.resolve import (
    Dataset,
    DatasetStatus,
    custom_dataset,
    dataset_status,
    locate_dataset,
    resolve_dataset,
)
from sr_bench.datasets.validation import (
    SKIP_BAD_HINT,
    BadImage,
    CheckedPair,
    bad_image,
    check_pairs,
    sixteen_bit_warning,
)

__all__ = [
    "ALIASES",
    "BUILTIN_SETS",
    "DATA_URL_ENV",
    "IMAGE_EXTS",
    "LR_CACHE_VERSION",
    "SKIP_BAD_HINT",
    "Archive",
    "BadImage",
    "CheckedPair",
    "Dataset",
    "DatasetSpec",
    "DatasetStatus",
    "ImagePair",
    "Layout",
    "ProgressFn",
    "archive_url",
    "bad_image",
    "check_pairs",
    "custom_dataset",
    "dataset_status",
    "get_dataset_spec",
    "list_datasets",
    "load_pair",
    "locate_dataset",
    "lr_cache_dir",
    "pull_dataset",
    "resolve_dataset",
    "sixteen_bit_warning",
]
