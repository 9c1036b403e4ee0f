"""Checkpoints: find, verify, load safely, fit strictly, and download.

Checkpoints are untrusted input. Pickle-based files are read with ``torch.load(weights_only=True)``, which
refuses any object that would run code; ``.safetensors`` files hold tensors only. Nothing here ever
unpickles with the full unpickler.

Finding, listing and downloading checkpoint files (torch-free) lives in :mod:`sr_bench.checkpoint_files`;
its names are re-exported here.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from sr_bench.checkpoint_files import (  # noqa: F401  (re-exported: callers use weights.<name>)
    URL_BASE_ENV,
    CheckpointStatus,
    checkpoint_status,
    download_url,
    find_checkpoint,
    hash_mismatch_warning,
    pull,
    status_word,
)
from sr_bench.errors import CheckpointError
from sr_bench.files import sha256_file  # noqa: F401  (re-exported)

# Keys that wrap the real state dict, in preference order (BasicSR stores EMA weights beside the raw ones).
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")


def read_checkpoint(path: Path) -> object:
    """Read a checkpoint file without running any code from it."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused to load {path}: {_refusal_reason(exc)}; only tensors and plain containers are accepted — "
            "re-save the weights as a state_dict (torch.save) or as .safetensors"
        ) from None
    except Exception as exc:  # a damaged file can fail anywhere in zip/pickle parsing (IndexError, struct.error…)
        raise _corrupt(path, exc) from None


def _refusal_reason(exc: pickle.UnpicklingError) -> str:
    """Why the weights-only unpickler said no, without torch's advice to switch the protection off."""
    text = str(exc)
    if match := re.search(r"GLOBAL ((?:\w+\.)+\w+)", text):
        return f"it needs arbitrary code to unpickle (it references {match.group(1)})"
    if match := re.search(r"Unsupported operand (\d+)", text):
        return f"the safe weights-only unpickler rejects it (pickle opcode {match.group(1)}, not a torch.save file)"
    return "the safe weights-only unpickler rejects it"


def _corrupt(path: Path, exc: BaseException) -> CheckpointError:
    return CheckpointError(
        f"cannot read checkpoint {path}: the file is truncated or corrupt ({_first_line(exc)}); "
        "download it again ('srbench weights pull MODEL')"
    )


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: not a valid .safetensors file ({exc})") from None


def _first_line(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def unwrap_state_dict(obj: object, key: str | None = None, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the state dict inside a checkpoint and strip ``module.`` (DataParallel) prefixes.

    ``key`` names the preferred wrapper (a spec's choice); otherwise ``params_ema`` > ``params`` >
    ``state_dict`` > ``model``; a dict of tensors is taken as is.
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a state dict")
    if key is not None and key not in obj and not _is_tensor_dict(obj):
        raise CheckpointError(f"{source} has no {key!r} entry (it has: {', '.join(map(str, list(obj)[:6]))})")
    for candidate in ((key,) if key in obj else ()) + WRAPPER_KEYS:
        if candidate in obj and isinstance(obj[candidate], Mapping):
            return unwrap_state_dict(obj[candidate], None, source)
    if not _is_tensor_dict(obj):
        raise CheckpointError(
            f"{source} is not a state dict: expected tensors or one of {', '.join(WRAPPER_KEYS)}; "
            f"found keys {', '.join(map(str, list(obj)[:6]))}"
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _is_tensor_dict(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def non_finite_warning(state_dict: Mapping[str, torch.Tensor], source: str) -> str | None:
    """A warning naming the first tensor holding NaN or Inf (a diverged or damaged checkpoint), or None.

    Such weights make every output non-finite, which a clamp-and-round would turn into a normal-looking image.
    """
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if not bad:
        return None
    first = state_dict[bad[0]]
    count = int((~torch.isfinite(first)).sum())
    more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
    return (f"{source} has non-finite weights: {bad[0]} holds {count} NaN/Inf value(s) of {first.numel()}{more}; "
            "outputs will be non-finite: check the training run or re-download the file")


def load_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str, model_name: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming the first mismatches."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {'; '.join(shapes[:2])}: checkpoint vs model)")
        raise CheckpointError(
            f"{source} does not fit {model_name}: {'; '.join(parts)} — wrong architecture, scale or checkpoint?"
        )
    model.load_state_dict(state_dict, strict=True)
