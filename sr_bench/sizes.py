"""Input sizes as users type them (``--size``) and as tables print them; torch-free, so ``report`` stays light."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sr_bench.errors import UsageError

_SIZE = re.compile(r"^\s*(\d+)\s*(?:[x×,]\s*(\d+))?\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """``--size``: ``256`` (square) or ``HxW`` such as ``180x320`` (rows x columns, as tensors are shaped)."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"--size {text!r} is not a size: use N (square) or HxW, e.g. 256 or 180x320")
    h = int(match.group(1))
    w = int(match.group(2) or h)
    if h < 1 or w < 1:
        raise UsageError(f"--size must be positive, got {h}x{w}")
    return h, w


def size_text(size: Sequence[int] | None) -> str:
    """``256×256``; a leading batch is shown only when it is not 1 (``2×256×256``)."""
    if size is None:
        return "an unrecorded size"
    return "×".join(map(str, size[1:] if len(size) == 3 and size[0] == 1 else size))
