"""Where srbench looks for things on disk, in one place so every command agrees.

Environment variables (all optional):
- ``SRBENCH_WEIGHTS``: a folder of checkpoints, searched after an explicit ``--weights``.
- ``SRBENCH_DATA``: the dataset root (default ``./datasets``).
- ``SRBENCH_CACHE``: the user cache (default ``$XDG_CACHE_HOME/srbench`` or ``~/.cache/srbench``).
- ``SRBENCH_RESULTS``: the results store (default ``./results``).

Built-in assets (package data, so ``pip install .`` carries them): the two official checkpoints under
``assets/weights`` (searched last) and Set5 x4 under ``assets/data`` (used when the data root has no Set5).
"""

from __future__ import annotations

import os
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"


def builtin_weights_dir() -> Path:
    """The checkpoints shipped with srbench (the two MIT-licensed NTIRE 2023 files)."""
    return ASSETS / "weights"


def builtin_data_root() -> Path:
    """A data root in the benchmark layout holding the shipped Set5 (HR + official LR x4)."""
    return ASSETS / "data"


def cache_dir() -> Path:
    """The per-user cache root; downloaded checkpoints and generated LR images live below it."""
    if env := os.environ.get("SRBENCH_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "srbench"


def weights_cache_dir() -> Path:
    return cache_dir() / "weights"


def weights_search_dirs() -> list[Path]:
    """Checkpoint folders in priority order: ``$SRBENCH_WEIGHTS``, ``./weights``, the user cache, built-in."""
    dirs: list[Path] = []
    if env := os.environ.get("SRBENCH_WEIGHTS"):
        dirs.append(Path(env).expanduser())
    dirs.append(Path("weights"))
    dirs.append(weights_cache_dir())
    dirs.append(builtin_weights_dir())
    return dirs


def data_root(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit.expanduser()
    if env := os.environ.get("SRBENCH_DATA"):
        return Path(env).expanduser()
    return Path("datasets")


def results_dir(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit.expanduser()
    if env := os.environ.get("SRBENCH_RESULTS"):
        return Path(env).expanduser()
    return Path("results")
