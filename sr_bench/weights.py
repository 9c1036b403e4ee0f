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
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
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
from sr_bench.user_code import fault

# Keys that wrap the real state dict, in preference order (BasicSR stores EMA weights beside the raw ones).
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
_TORCH_LOAD = torch.load  # bound at import, so the CPU shims for user code (sr_bench.user_code) never see our reads


def read_checkpoint(path: Path) -> object:
    """Read a checkpoint file without running any code from it."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path)
    try:
        with warnings.catch_warnings():  # torch's advice about legacy pickle protocols is noise before our verdict
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return _TORCH_LOAD(path, map_location="cpu", weights_only=True)
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


NO_KEY = "none"  # --checkpoint-key none: the file's top level is the state dict, whatever its keys are called


@dataclass(frozen=True)
class StateDict:
    """The tensors to load and where in the file they came from (``key`` None: the top level)."""

    tensors: dict[str, torch.Tensor]
    key: str | None
    notice: str | None = None  # set when the preferred key was absent and another one was used


def unwrap_state_dict(obj: object, key: str | None = None, source: str = "checkpoint",
                      explicit: bool = False) -> StateDict:
    """Find the state dict inside a checkpoint and strip ``module.`` (DataParallel) prefixes.

    Keys are tried in the documented order: ``key`` (the spec's choice, or ``--checkpoint-key``), then
    ``params_ema`` > ``params`` > ``state_dict`` > ``model``; a dict of tensors is taken as is. A key the user
    named (``explicit``) must exist; a spec's key that is absent falls back to the others with a notice.
    ``key="none"`` takes the top level as the state dict.
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a state dict")
    found = ", ".join(map(str, list(obj)[:6]))
    if key == NO_KEY:
        return StateDict(_tensors(obj, source, found), None)
    if key is not None and explicit and not isinstance(obj.get(key), Mapping):
        raise CheckpointError(f"{source} has no {key!r} entry holding a state dict (it has: {found}); "
                              "choose another --checkpoint-key, or 'none' for the top level")
    for candidate in ((key,) if key is not None else ()) + WRAPPER_KEYS:
        if isinstance(obj.get(candidate), Mapping):
            notice = None
            if key is not None and candidate != key:
                notice = f"{source} has no {key!r} entry; loaded {candidate!r} (the next key in the documented order)"
            return StateDict(_tensors(obj[candidate], source, found), candidate, notice)
    if not _is_tensor_dict(obj):
        raise CheckpointError(
            f"{source} is not a state dict: expected tensors or one of {', '.join(WRAPPER_KEYS)}; found keys {found}"
        )
    return StateDict(_tensors(obj, source, found), None)


def _tensors(obj: Mapping, source: str, found: str) -> dict[str, torch.Tensor]:
    if not _is_tensor_dict(obj):
        raise CheckpointError(f"{source}: the chosen entry is not a dict of tensors (keys: "
                              f"{', '.join(map(str, list(obj)[:6]))}; file keys: {found})")
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


@dataclass(frozen=True)
class LoadReport:
    """What ``load_state_dict`` accepted: with ``strict=False`` the keys the model left missing or ignored."""

    strict: bool
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"strict": self.strict, "missing": len(self.missing), "unexpected": len(self.unexpected),
                "first_missing": list(self.missing[:5]), "first_unexpected": list(self.unexpected[:5])}

    def notice(self, source: str) -> str | None:
        if self.strict or not (self.missing or self.unexpected):
            return None
        return f"{source} loaded non-strictly: {_key_summary(list(self.missing), list(self.unexpected))}"


def _key_summary(missing: list[str], unexpected: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    return "; ".join(parts) or "no key differences"


def load_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str, model_name: str,
              strict: bool = True) -> LoadReport:
    """Load through the model's own ``load_state_dict`` (some fuse branches while loading).

    srbench only interprets the outcome: when the model refuses the dict, the error names the first missing,
    unexpected and mis-shaped keys (compared with ``model.state_dict()``); any other failure of the model's own
    method is the model's fault.
    """
    try:
        result = model.load_state_dict(state_dict, strict=strict)
    except RuntimeError as exc:
        if "state_dict" not in str(exc) and "size mismatch" not in str(exc):
            raise fault(model_name, "load", exc) from None
        raise CheckpointError(_misfit(model, state_dict, source, model_name, strict)) from None
    except Exception as exc:  # noqa: BLE001  (an overridden load_state_dict fails in arbitrary ways)
        raise fault(model_name, "load", exc) from None
    missing = tuple(getattr(result, "missing_keys", ()) or ())
    unexpected = tuple(getattr(result, "unexpected_keys", ()) or ())
    return LoadReport(strict, missing, unexpected)


def _misfit(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str, model_name: str,
            strict: bool) -> str:
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict] if strict else []
    unexpected = [k for k in state_dict if k not in own] if strict else []
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    parts = [_key_summary(missing, unexpected)] if missing or unexpected else []
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches (e.g. {'; '.join(shapes[:2])}: checkpoint vs model)")
    hint = " (or --no-strict if the model is meant to ignore them)" if strict and not shapes else ""
    return (f"{source} does not fit {model_name}: {'; '.join(parts) or 'load_state_dict refused it'} — "
            f"wrong architecture, scale or checkpoint?{hint}")

