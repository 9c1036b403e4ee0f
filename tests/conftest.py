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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run the real CUDA paths: skipped, with the reason, where torch sees no CUDA device.

    This is the suite's only skip, and it holds under ``SRBENCH_REQUIRE_ASSETS=1`` too: a GPU is a machine, not an
    asset, and CI has none (the faked CUDA tests in ``test_gpu_fakes.py`` run everywhere).
    """
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch  # only when gpu tests were collected

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False); "
                                   "run them on a GPU machine: bash benchmarks/gpu_check.sh")
    for item in gpu_items:
        item.add_marker(skip)


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
