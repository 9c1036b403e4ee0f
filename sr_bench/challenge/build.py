"""Building one team's model the way the official harness does: the repository's own ``select_model``.

This runs the repository's code (as ``python test_demo.py --model_id N`` would): ``test_demo.py`` is imported
with the repository as the working directory and first on ``sys.path`` (its ``models``/``utils`` packages shadow
any others only for the duration), ``select_model(args, device)`` is called, and everything is put back
afterwards. Without CUDA, the CPU shims of :mod:`sr_bench.user_code` let ``.cuda()`` calls and GPU checkpoints
work; ``torch.load`` always reads with ``weights_only=True`` there, so a checkpoint cannot run code.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from sr_bench.challenge.repo import DEMO, ChallengeRepo, TeamEntry
from sr_bench.errors import SrBenchError
from sr_bench.user_code import cpu_cuda_shims, describe


class TeamFailure(SrBenchError):
    """A team that cannot be built or measured here; the message is its one-line failed-row reason."""


@dataclass
class BuiltTeam:
    """What ``select_model`` returned, plus what the shims did while it ran."""

    entry: TeamEntry
    module: nn.Module
    name: str
    data_range: float
    tile: int | None
    shims: dict | None


def build_team(repo: ChallengeRepo, entry: TeamEntry, device: torch.device) -> BuiltTeam:
    """Call the repository's ``select_model`` for one team; any failure becomes a :class:`TeamFailure`."""
    args = argparse.Namespace(model_id=entry.team_id, data_dir=str(repo.root.parent), save_dir="results",
                              include_test=False, ssim=False)
    try:
        with repo_imports(repo.root), cpu_cuda_shims(active=None if device.type != "cuda" else False) as shims:
            demo = _import_demo(repo.root)
            result = demo.select_model(args, device)
    except KeyboardInterrupt:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001  (the repository's code fails in arbitrary ways)
        raise TeamFailure(failure_reason(exc)) from None
    model, name, data_range, tile = _unpack(result, entry)
    report = shims.to_dict() if shims.active and (shims.cuda_calls or shims.loads_mapped) else None
    return BuiltTeam(entry, model, name, data_range, tile, report)


def failure_reason(exc: BaseException) -> str:
    """The failed row's reason: what is missing, in words a person can act on."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"needs the package {exc.name.split('.')[0]!r}, which is not installed here ({describe(exc)})"
    if isinstance(exc, FileNotFoundError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"missing file{where} ({describe(exc)})"
    text = str(exc)
    if "CUDA" in text and not torch.cuda.is_available():
        return f"needs CUDA, which this machine lacks ({describe(exc)})"
    if isinstance(exc, SrBenchError):
        return str(exc)
    return f"select_model failed: {describe(exc)}"


def _unpack(result: object, entry: TeamEntry) -> tuple[nn.Module, str, float, int | None]:
    """``(model, name, data_range, tile)`` as the 2023–2026 harnesses return it (tile is absent in some)."""
    if not isinstance(result, tuple) or len(result) not in (3, 4):
        raise TeamFailure(f"select_model returned {type(result).__name__}, expected (model, name, data_range, tile)")
    model, name, data_range = result[:3]
    tile = result[3] if len(result) == 4 else None
    if not isinstance(model, nn.Module):
        raise TeamFailure(f"select_model returned a {type(model).__name__} as the model, not a torch.nn.Module")
    if data_range not in (1.0, 255.0):
        raise TeamFailure(f"select_model returned data_range {data_range!r}; srbench measures 1.0 or 255.0")
    if tile is not None and (type(tile) is not int or tile < 8):
        raise TeamFailure(f"select_model returned tile {tile!r}; expected None or an integer >= 8")
    return model, str(name or entry.name or f"{entry.team_id:02}"), float(data_range), tile


def _import_demo(root: Path) -> object:
    module_name = f"srbench_challenge_{abs(hash(root))}"
    spec = importlib.util.spec_from_file_location(module_name, root / DEMO)
    if spec is None or spec.loader is None:
        raise TeamFailure(f"cannot import {root / DEMO}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(module_name, None)
    return module


def _top_level_names(root: Path) -> set[str]:
    """Module names the repository provides (``models``, ``utils``, ...), which must resolve to its own files."""
    names = {p.stem for p in root.glob("*.py")}
    names |= {p.name for p in root.iterdir() if p.is_dir() and p.name.isidentifier()}
    return names


@contextmanager
def repo_imports(root: Path) -> Iterator[None]:
    """cwd = ``root``, ``root`` first on ``sys.path``; its top-level module names shadow others only meanwhile."""
    names = _top_level_names(root)
    owned = lambda key: key.split(".")[0] in names  # noqa: E731
    hidden = {k: m for k, m in sys.modules.items() if owned(k)}
    for key in hidden:
        del sys.modules[key]
    saved_path, saved_cwd = list(sys.path), os.getcwd()
    sys.path.insert(0, str(root))
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        for key in [k for k in sys.modules if owned(k)]:
            del sys.modules[key]
        sys.modules.update(hidden)
