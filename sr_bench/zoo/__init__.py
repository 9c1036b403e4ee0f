"""The model zoo: importing this package registers every built-in spec (torch is imported only to build one)."""

from sr_bench.zoo import builtin  # noqa: F401  (imported for its register() calls)
from sr_bench.zoo.registry import CheckpointSpec, LazyBuilder, ModelSpec, get_spec, list_models, register

__all__ = ["CheckpointSpec", "LazyBuilder", "ModelSpec", "get_spec", "list_models", "register"]
