"""srbench: benchmark efficient image super-resolution models the NTIRE ESR way, and better.

Public API::

    import sr_bench
    model = sr_bench.load_model("lgvan")          # nn.Module, eval mode, checkpoint loaded when found
    spec = sr_bench.get_spec("dlgsanet-tiny")     # ModelSpec: scales, data_range, checkpoint facts
    sr_bench.list_models()                        # ['dlgsanet-light', 'dlgsanet-tiny', 'lgvan', 'rfdn']

Every failure a user can cause raises :class:`SrBenchError`, whose message is the one line the CLI prints.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import Any

from sr_bench.errors import SrBenchError

# Heavy submodules (torch, the zoo) load on first use, so `import sr_bench.errors` stays cheap.
_LAZY = {
    "LoadedModel": "sr_bench.models",
    "LoadOptions": "sr_bench.models",
    "load_model": "sr_bench.models",
    "resolve_model": "sr_bench.models",
    "ModelSpec": "sr_bench.zoo",
    "get_spec": "sr_bench.zoo",
    "list_models": "sr_bench.zoo",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sr_bench' has no attribute {name!r}")

__all__ = [
    "LoadOptions",
    "LoadedModel",
    "ModelSpec",
    "SrBenchError",
    "__version__",
    "get_spec",
    "list_models",
    "load_model",
    "resolve_model",
]
