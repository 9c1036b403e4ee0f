"""One validated description of an eval: what to evaluate (:class:`EvalConfig`) and how (:class:`EvalOptions`).

The CLI builds one :class:`EvalConfig` from its options; everything below takes it (or its ``options``) whole,
so a new option is added in one place and checked once, before anything is loaded.

    >>> config = EvalConfig(models=["rfdn"], datasets=["set5"], data_root=Path("../shared/data"),
    ...                     options=EvalOptions(results_dir=Path("results"), limit=3))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sr_bench.errors import UsageError
from sr_bench.execution import parse_exec
from sr_bench.protocols import get_protocol

if TYPE_CHECKING:
    from sr_bench.models import LoadOptions


@dataclass(frozen=True)
class EvalOptions:
    """How to run an evaluation (everything except which model and which images)."""

    results_dir: Path
    protocol: str = "robust"
    exec: str = "auto"  # --exec text, resolved per model (named protocols force eager fp32)
    threads: int | None = None  # None: all cores (the execution module's default)
    limit: int | None = None  # only the first N images of each dataset
    tile: int | None = None  # LR tile size; None: whole images
    tile_overlap: int = 32  # LR pixels shared by neighbouring tiles
    save_sr: Path | None = None  # save SR PNGs under <save_sr>/<model>_x<scale>/<dataset>/<name>.png
    skip_bad: bool = False  # record unreadable images and go on, instead of stopping
    resume: bool = False  # continue the run log left by an interrupted run with the same key

    def __post_init__(self) -> None:
        get_protocol(self.protocol)
        parse_exec(self.exec)
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit must be >= 1, got {self.limit}")
        if self.tile is not None:
            if self.tile < 8:
                raise UsageError(f"--tile must be >= 8 LR pixels, got {self.tile}")
            if not 0 <= self.tile_overlap < self.tile:
                raise UsageError(f"--tile-overlap must be in [0, --tile), got {self.tile_overlap} with --tile {self.tile}")


@dataclass(frozen=True)
class EvalConfig:
    """Which models on which images, and how: the whole of an ``srbench eval`` request, validated on creation.

    ``models`` empty means every zoo model with a checkpoint here; ``hr_dir`` (with an optional ``lr_dir``) adds
    a custom folder to the named ``datasets``; neither datasets nor a folder means the built-in Set5
    (:data:`sr_bench.eval_all.DEFAULT_DATASET`).
    """

    options: EvalOptions
    data_root: Path
    models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    hr_dir: Path | None = None
    lr_dir: Path | None = None
    scale: int | None = None
    weights: Path | None = None
    data_range: float | None = None
    model_args: str | None = None
    load: LoadOptions | None = None  # --checkpoint-key / --no-strict / --after-load (None: the defaults)
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.lr_dir is not None and self.hr_dir is None:
            raise UsageError("--lr needs --hr: give the HR folder the LR images belong to")
