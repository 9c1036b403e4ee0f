"""``--compare-official``: read the official harness's ``results.json`` and set it beside srbench's table.

Only cells both sides have are compared; models found on one side only are named in notes, not guessed at.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sr_bench.errors import ResultsError
from sr_bench.report.rows import number
from sr_bench.report.table import MISSING, ChallengeTable

# table column -> key in the official harness's results.json (test_demo.py writes it per model, 2024+)
OFFICIAL_KEYS = {
    "val_psnr": "valid_ave_psnr",
    "test_psnr": "test_ave_psnr",
    "val_time_ms": "valid_ave_runtime",
    "test_time_ms": "test_ave_runtime",
    "params_m": "num_parameters",
    "flops_g": "flops",
    "acts_m": "activations",
    "mem_mib": "valid_memory",
    "conv": "num_conv",
}


@dataclass(frozen=True)
class OfficialDiff:
    """One (model, column) cell: the official value, srbench's, and srbench minus official."""

    model: str
    column: str
    official: float | None
    srbench: float | None

    @property
    def difference(self) -> float | None:
        return None if self.official is None or self.srbench is None else self.srbench - self.official


def read_official(path: Path) -> dict[str, dict]:
    """The official ``results.json``: model name -> its numbers (the units of the table: M, G, ms, MiB)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path} is not JSON ({exc}); pass the repository's results.json") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ResultsError(f"{path} is not an official results.json (expected {{model name: {{numbers}}}})")
    return data


def compare_official(table: ChallengeTable, official: dict[str, dict]) -> tuple[list[OfficialDiff], list[str]]:
    """Per model present in both, per column of the table that the official file has: the two values.

    Returns the cells and notes naming the models found on one side only.
    """
    headers = {c.key: c.header for c in table.columns}
    ours = {row["model"]: row for row in table.rows}
    cells = []
    for model in (m for m in official if m in ours):
        for key, official_key in OFFICIAL_KEYS.items():
            if key in headers and official_key in official[model]:
                cells.append(OfficialDiff(model, headers[key], number(official[model][official_key]),
                                          number(ours[model].get(key))))
    notes = [f"{m}: in the official file only" for m in official if m not in ours]
    notes += [f"{m}: measured by srbench only" for m in ours if m not in official]
    return cells, notes


def render_comparison(cells: Sequence[OfficialDiff]) -> str:
    """Tab-separated lines: model, column, official, srbench, difference (``-`` where a side has no value)."""
    def text(value: float | None) -> str:
        return MISSING if value is None else f"{value:.4f}"

    lines = ["Model\tColumn\tOfficial\tsrbench\tDiff"]
    lines += [f"{c.model}\t{c.column}\t{text(c.official)}\t{text(c.srbench)}\t"
              f"{MISSING if c.difference is None else f'{c.difference:+.4f}'}" for c in cells]
    return "\n".join(lines) + "\n"
