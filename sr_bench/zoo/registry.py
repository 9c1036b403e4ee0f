"""The model registry: frozen specs keyed by name, plus the few functions that read them.

A spec says everything srbench needs to know about a network without building it: how to build it per
scale, the input range it expects, where its checkpoint comes from and how to check it, and the numbers
its authors or the challenge published. Adding a model = its architecture file in ``sr_bench/zoo/`` plus a
``register(ModelSpec(..., builder=LazyBuilder("sr_bench.zoo.<file>:<function>")))`` call in ``zoo/builtin.py``.

Installable plugins can add specs through the ``srbench.models`` entry-point group: each entry point
names a ``ModelSpec`` or a zero-argument callable returning one spec or a list of specs.

This module and the built-in specs (``zoo/builtin.py``) do not import torch: listings (``srbench weights list``,
``--help``) stay instant, and an architecture module is imported by :class:`LazyBuilder` only when a network is
built.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

from sr_bench.errors import ModelSpecError, UnknownModelError

ENTRY_POINT_GROUP = "srbench.models"


@dataclass(frozen=True)
class LazyBuilder:
    """``module:function`` imported on first call, so a spec can name its builder without importing torch."""

    target: str  # e.g. "sr_bench.zoo.lgvan:build"

    def __call__(self, scale: int, **kwargs: object) -> nn.Module:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)(scale, **kwargs)


@dataclass(frozen=True)
class CheckpointSpec:
    """One official checkpoint file: where it lives and how to recognise it."""

    file: str  # file name searched for in the weights folders
    url: str | None = None  # raw download URL; None when the authors publish no direct link
    sha256: str | None = None  # hex digest of the official file; None when unknown
    key: str | None = None  # preferred state-dict key inside the file (e.g. "params_ema"); None = auto
    note: str | None = None  # how to get the file when there is no URL


@dataclass(frozen=True)
class ModelSpec:
    """Everything known about one registered model, across its scales.

    ``builder(scale, **kwargs)`` returns a fresh, randomly initialised ``nn.Module`` for that scale.
    """

    name: str
    builder: Callable[..., nn.Module]
    scales: tuple[int, ...]
    data_range: float  # the input/output range the network works in: 1.0 or 255.0
    description: str = ""
    default_scale: int = 4
    # checkpoint per scale; a scale missing here has no known checkpoint
    checkpoints: Mapping[int, CheckpointSpec] = field(default_factory=dict)
    # exact parameter count per scale, asserted by the tests
    param_counts: Mapping[int, int] = field(default_factory=dict)
    # provenance
    paper: str | None = None
    source: str | None = None  # where the architecture comes from (repo, challenge entry)
    # published reference numbers, keyed "x{scale}/{metric}" -> value, with units in the metric name
    reference: Mapping[str, float] = field(default_factory=dict)
    # arguments always passed to the builder (user models: --model-args)
    builder_kwargs: Mapping[str, object] = field(default_factory=dict)
    origin: str = "zoo"  # "zoo", "plugin" or "file"

    def __post_init__(self) -> None:
        if self.data_range not in (1.0, 255.0):
            raise ModelSpecError(f"model {self.name!r}: data_range must be 1 or 255, got {self.data_range}")
        object.__setattr__(self, "checkpoints", MappingProxyType(dict(self.checkpoints)))
        object.__setattr__(self, "param_counts", MappingProxyType(dict(self.param_counts)))
        object.__setattr__(self, "reference", MappingProxyType(dict(self.reference)))
        object.__setattr__(self, "builder_kwargs", MappingProxyType(dict(self.builder_kwargs)))

    def check_scale(self, scale: int | None) -> int:
        """Return the scale to use, or raise a one-line error naming the supported ones."""
        if scale is None:
            return self.default_scale
        if scale not in self.scales:
            supported = ", ".join(f"x{s}" for s in self.scales)
            raise ModelSpecError(
                f"model {self.name!r} does not support x{scale}; supported: {supported} "
                f"(drop --scale for its default x{self.default_scale})"
            )
        return scale

    def checkpoint(self, scale: int) -> CheckpointSpec | None:
        return self.checkpoints.get(scale)

    def build(self, scale: int | None = None) -> nn.Module:
        """Build the network for ``scale`` with random weights, in eval mode."""
        scale = self.check_scale(scale)
        return self.builder(scale, **self.builder_kwargs).eval()


_REGISTRY: dict[str, ModelSpec] = {}
_plugins_loaded = False


def register(spec: ModelSpec) -> ModelSpec:
    """Add a spec; registering the same name twice is a programming error."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load_plugins() -> None:
    """Register specs from installed ``srbench.models`` entry points, once; a broken plugin is named.

    The loaded flag is set only after every plugin registered, so a failure is reported on every call.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            specs = obj() if callable(obj) and not isinstance(obj, ModelSpec) else obj
        except Exception as exc:  # a plugin's own bug must not break srbench
            raise ModelSpecError(f"plugin entry point {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        if isinstance(specs, ModelSpec):
            specs = [specs]
        if not isinstance(specs, (list, tuple)):
            raise ModelSpecError(f"plugin entry point {ep.name!r} returned {type(specs).__name__}, not ModelSpec")
        for spec in specs:
            if not isinstance(spec, ModelSpec):
                raise ModelSpecError(f"plugin entry point {ep.name!r} returned {type(spec).__name__}, not ModelSpec")
            if spec.name not in _REGISTRY:
                register(replace(spec, origin="plugin"))
    _plugins_loaded = True


def _natural_key(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_models(pattern: str | Iterable[str] = "*", exclude: Iterable[str] = ()) -> list[str]:
    """Registered names matching the fnmatch pattern(s), naturally sorted.

    >>> list_models("dlgsanet-*")
    ['dlgsanet-light', 'dlgsanet-tiny']
    """
    _load_plugins()
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    names = {n for n in _REGISTRY if any(fnmatch.fnmatch(n, p) for p in patterns)}
    names -= {n for n in names for p in exclude if fnmatch.fnmatch(n, p)}
    return sorted(names, key=_natural_key)


def get_spec(name: str) -> ModelSpec:
    """The spec registered under ``name``; an unknown name fails with the closest matches."""
    _load_plugins()
    spec = _REGISTRY.get(name) or _REGISTRY.get(name.lower())
    if spec is None:
        close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run 'srbench models' to list them"
        raise UnknownModelError(f"unknown model {name!r}: {hint}")
    return spec
