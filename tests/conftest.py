"""Shared test fixtures: where the test assets are, and what happens when one is missing.

Small assets ship with the repository, so those tests always run on a fresh clone:
- the two official checkpoints and Set5 x4 (HR + official LR) are srbench's built-in package data
  (``sr_bench/assets``); ``weights_dir`` and ``data_dir`` fall back to them;
- small text facts (the 2023 golden ``results.txt``, the Set5 quality references) live in ``tests/data``.

Large assets (DLGSANet parity fixtures, Set14, B100) live in ``../shared`` beside the checkout, or wherever
``SRBENCH_WEIGHTS`` / ``SRBENCH_DATA`` / ``SRBENCH_FIXTURES`` point. A test that needs one that is absent is
**skipped** with one line naming the asset and where it comes from — unless ``SRBENCH_REQUIRE_ASSETS=1`` (set by
``.ci/run``), which turns every such skip into a failure so CI always runs everything.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from sr_bench import paths

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
TEST_DATA = REPO / "tests" / "data"
REQUIRE_ENV = "SRBENCH_REQUIRE_ASSETS"

# Where each large asset comes from, for the skip reason.
_SOURCES = {
    "SRBENCH_DATA": "public sources in ../shared/data/README.md (README 'Tests')",
    "SRBENCH_FIXTURES": "made with the upstream DLGSANet code, see ../shared/fixtures/dlgsanet/README.md",
    "SRBENCH_WEIGHTS": "see sr_bench/assets/weights/README.md",
}


def assets_required() -> bool:
    """True when a missing asset must fail the test (CI) instead of skipping it."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def missing_asset(what: str, hint: str) -> None:
    """Skip (or, under ``SRBENCH_REQUIRE_ASSETS=1``, fail) the running test for a missing asset."""
    message = f"test asset missing: {what} ({hint})"
    if assets_required():
        pytest.fail(f"{message}; {REQUIRE_ENV}=1 makes this a failure")
    pytest.skip(message)


def _configured(env: str, default: Path) -> Path:
    return Path(os.environ.get(env) or default).expanduser().resolve()


def _asset_dir(env: str, default: Path, fallback: Path | None = None) -> Path:
    """The folder ``$env`` names, else ``../shared/<x>``, else the built-in ``fallback``; else skip/fail."""
    path = _configured(env, default)
    if path.is_dir():
        return path
    if fallback is not None and env not in os.environ:
        return fallback
    missing_asset(f"folder {path}", f"set {env} or put ../shared beside the checkout; {_SOURCES[env]}")
    raise AssertionError("unreachable")  # missing_asset always raises


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    """A folder holding ``team18_LGVAN.pth`` and ``team00_rfdn.pth`` (built-in when nothing else is set)."""
    return _asset_dir("SRBENCH_WEIGHTS", SHARED / "weights", paths.builtin_weights_dir())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """A data root in the benchmark layout; always has Set5 (built-in when nothing else is set).

    Set14 / B100 may be absent: get them through :func:`require_dataset`.
    """
    return _asset_dir("SRBENCH_DATA", SHARED / "data", paths.builtin_data_root())


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The large parity fixtures (``dlgsanet/``); skips (or fails under CI) when absent."""
    return _asset_dir("SRBENCH_FIXTURES", SHARED / "fixtures")


@pytest.fixture(scope="session")
def specs_dir() -> Path:
    """The small text facts copied from ``../shared/specs`` (shipped in ``tests/data``)."""
    return TEST_DATA


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run the real CUDA paths: skipped, with the reason, where torch sees no CUDA device.

    Unlike a missing asset this skip holds under ``SRBENCH_REQUIRE_ASSETS=1`` too: a GPU is a machine, not an
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
    """``path`` if it is a file; otherwise skip the test naming it (fail under ``SRBENCH_REQUIRE_ASSETS=1``)."""
    if not path.is_file():
        missing_asset(f"file {path}", _hint_for(path))
    return path


def _hint_for(path: Path) -> str:
    """Which variable and source a missing file belongs to, judged by the folder it was looked for in."""
    data_roots = (paths.builtin_data_root(), SHARED / "data", _configured("SRBENCH_DATA", SHARED / "data"))
    if any(path.resolve().is_relative_to(root.resolve()) for root in data_roots):
        return f"only Set5 is built in: set SRBENCH_DATA to a folder holding the rest; {_SOURCES['SRBENCH_DATA']}"
    if path.resolve().is_relative_to(_configured("SRBENCH_FIXTURES", SHARED / "fixtures")):
        return f"set SRBENCH_FIXTURES; {_SOURCES['SRBENCH_FIXTURES']}"
    return "a large test asset: see README 'Tests' for where it comes from"


def require_dataset(data_root: Path, folder: str) -> Path:
    """``data_root/folder`` (e.g. ``Set14``, ``B100``) if present; otherwise skip naming it (fail under CI)."""
    path = data_root / folder
    if not path.is_dir():
        missing_asset(f"dataset {folder} under {data_root}",
                      f"set SRBENCH_DATA to a folder holding it; {_SOURCES['SRBENCH_DATA']}")
    return path


def set5_quality_refs() -> dict[str, dict[str, dict[str, float]]]:
    """``tests/data/quality_refs.md`` as ``{model: {image or 'mean': {psnr_rgb, ssim_rgb, psnr_y, ssim_y}}}``.

    The official-pipeline Set5 references (one torch thread), read from the shipped copy of the spec.
    """
    refs: dict[str, dict[str, dict[str, float]]] = {}
    row = re.compile(r"^\| (\w+) \| \**(\w+)\** \|[^|]*\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$")
    for line in (TEST_DATA / "quality_refs.md").read_text().splitlines():
        if match := row.match(line):
            model, image, *values = match.groups()
            refs.setdefault(model, {})[image] = dict(zip(("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"),
                                                         map(float, values)))
    return refs


@pytest.fixture
def no_builtin_weights(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the checkpoints shipped with srbench, for tests of what happens when no checkpoint is found."""
    empty = tmp_path_factory.mktemp("no-builtin-weights")
    monkeypatch.setattr(paths, "builtin_weights_dir", lambda: empty)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the user's cache and results folders."""
    root = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("SRBENCH_CACHE", str(root / "cache"))
    monkeypatch.setenv("SRBENCH_RESULTS", str(root / "results"))
