"""The challenge table itself: columns, raw-valued rows, and the caption naming what the numbers depend on.

Every other module of the package produces or consumes a :class:`ChallengeTable`; this one holds no logic
about records, so renderers and the plot can use it without knowing how rows were chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sr_bench.sizes import size_text

if TYPE_CHECKING:  # only an annotation here: scores.py builds on this module, not the other way round
    from sr_bench.report.scores import ScoreRule

MISSING = "-"
GPU_MARK = " (!)"  # after the model name: its runtime was measured under a GPU warning
FLOPS_CONVENTIONS = ("ntire2023", "fvcore", "full")
FLOPS_DESCRIPTIONS = {
    "ntire2023": "module hooks as in NTIRE 2022/2023",
    "fvcore": "fvcore as in NTIRE 2024+",
    "full": "srbench: fvcore plus the ops it leaves at 0",
}
# What must match for two runtimes to be comparable; each is a row key beside the model.
SETUP_HEADERS = {"scale": "Scale", "protocol": "Protocol", "device": "Device", "exec": "Exec"}
CHALLENGE_SIZE = (256, 256)  # the LR input size NTIRE counts complexity at
SPLITS = ("val", "test")


@dataclass(frozen=True)
class Column:
    """One table column: the row key holding its raw value, the header, and how renderers format it."""

    key: str
    header: str
    spec: str = "2.2f"  # format spec for a present value (the official results.txt specs)
    width: int = 10  # txt field width: the official file pads every field to it, then adds a tab

    def text(self, value: Any) -> str:
        """The rendered cell: ``-`` when there is no value, ``pass``/``fail`` for a gate."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING
        if isinstance(value, bool):
            return "pass" if value else "fail"
        return format(value, self.spec)


@dataclass
class ChallengeTable:
    """Rows of raw values keyed by column key, plus what a reader needs to interpret them."""

    columns: list[Column]
    rows: list[dict[str, Any]]
    val: str | None
    test: str | None
    flops: str
    setups: dict[str, list]  # distinct values of each setup key over the rows (None left out)
    size: tuple[int, int] = CHALLENGE_SIZE  # input size of the profiles behind the complexity columns
    score: ScoreRule | None = None
    baseline: str | None = None
    notes: list[str] = field(default_factory=list)  # non-fatal problems met while building

    @property
    def has_test(self) -> bool:
        return any(c.key == "test_psnr" for c in self.columns)

    @property
    def runtime_key(self) -> str:
        """The runtime the score uses: Ave Time when a test split exists, else Val Time."""
        return "ave_time_ms" if self.has_test else "val_time_ms"

    def caption(self) -> str:
        """One line naming everything the numbers depend on."""
        scales, execs = self.setups["scale"], self.setups["exec"]
        parts = [
            "x" + "/".join(str(s) for s in scales) if scales else None,
            f"val: {self.val}" if self.val else None,
            f"test: {self.test}" if self.has_test else None,
            f"FLOPs: {self.flops} ({FLOPS_DESCRIPTIONS[self.flops]}; 1 MAC = 1 FLOP) at {size_text(self.size)} input",
            f"protocol: {self._setup_text('protocol')}",
            f"device: {self._setup_text('device')}",
            f"exec: {self._setup_text('exec')}" if execs else None,
            *self._eval_marks(),
        ]
        if self.score is not None:
            s = self.score
            runtime = "Ave Time" if self.has_test else "Val Time"
            parts.append(
                f"score {s.year} vs {self.baseline}: {s.runtime:g}·runtime ({runtime}) + {s.flops:g}·FLOPs"
                f" + {s.params:g}·params, each exp(2·x/x_baseline); lower is better"
            )
        return "; ".join(p for p in parts if p)

    def _eval_marks(self) -> list[str]:
        """Caption parts naming every row whose eval was tiled or partial (the Notes column says which)."""
        marks = []
        for key, what in (("tile", "tiled eval"), ("coverage", "partial eval (--allow-partial)"),
                          ("runtime_mixed", "runtime not comparable, time left empty")):
            used = [f"{row['model']} {split} ({row[f'{split}_{key}']})" for row in self.rows for split in SPLITS
                    if row.get(f"{split}_{key}")]
            if used:
                marks.append(f"{what}: {', '.join(used)}")
        return marks

    def _setup_text(self, key: str) -> str:
        if any(c.key == key for c in self.columns):
            return "per row"
        return ", ".join(map(str, self.setups[key])) or "unknown"
