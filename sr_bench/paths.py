"""Where srbench looks for things on disk, in one place so every command agrees.

Environment variables (all optional):
- ``SRBENCH_WEIGHTS``: a folder of checkpoints, searched after an explicit ``--weights``.
- ``SRBENCH_DATA``: the dataset root (default ``./datasets``).
- ``SRBENCH_CACHE``: the user cache (default ``$XDG_CACHE_HOME/srbench`` or ``~/.cache/srbench``).
- ``SRBENCH_RESULTS``: the results store (default ``./results``).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The per-user cache root; downloaded checkpoints and generated LR images live below it."""
    if env := os.environ.get("SRBENCH_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "srbench"


def weights_cache_dir() -> Path:
    return cache_dir() / "weights"


def weights_search_dirs() -> list[Path]:
    """Checkpoint folders in priority order: ``$SRBENCH_WEIGHTS``, ``./weights``, the user cache."""
    dirs: list[Path] = []
    if env := os.environ.get("SRBENCH_WEIGHTS"):
        dirs.append(Path(env).expanduser())
    dirs.append(Path("weights"))
    dirs.append(weights_cache_dir())
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
