"""Shared test fixtures: asset folders from env vars, failing (never skipping) when an asset is missing.

``.ci/run`` sets ``SRBENCH_WEIGHTS``, ``SRBENCH_DATA`` and ``SRBENCH_FIXTURES`` to ``../shared/...``; when a
variable is unset the same default (the ``shared`` folder beside the checkout) is used, so the README's
test command works on a fresh clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def _asset_dir(env: str, default: Path) -> Path:
    path = Path(os.environ.get(env) or default).expanduser().resolve()
    if not path.is_dir():
        pytest.fail(f"test asset folder missing: {path} (set {env} or put ../shared beside the checkout)")
    return path


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    return _asset_dir("SRBENCH_WEIGHTS", SHARED / "weights")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _asset_dir("SRBENCH_DATA", SHARED / "data")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return _asset_dir("SRBENCH_FIXTURES", SHARED / "fixtures")


def require_file(path: Path) -> Path:
    """Fail the test (not skip) when a needed asset file is absent."""
    if not path.is_file():
        pytest.fail(f"test asset missing: {path}")
    return path


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the user's cache and results folders."""
    root = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("SRBENCH_CACHE", str(root / "cache"))
    monkeypatch.setenv("SRBENCH_RESULTS", str(root / "results"))
