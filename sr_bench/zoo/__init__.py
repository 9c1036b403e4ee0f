"""The model zoo: importing this package registers every built-in architecture."""

from sr_bench.zoo import dlgsanet, lgvan, rfdn  # noqa: F401  (imported for their register() calls)
from sr_bench.zoo.registry import CheckpointSpec, ModelSpec, get_spec, list_models, register

__all__ = ["CheckpointSpec", "ModelSpec", "get_spec", "list_models", "register"]
