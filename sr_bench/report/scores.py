"""The NTIRE ESR ranking formulas per year, and scoring a table's rows against a baseline row.

A score compares a row only with the baseline measured the same way (scale, protocol, device, exec), so a
faster device or execution mode never shows up as a better model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sr_bench.errors import ResultsError
from sr_bench.report.table import SETUP_HEADERS, ChallengeTable


@dataclass(frozen=True)
class ScoreRule:
    """One year's NTIRE ESR ranking formula: weights of exp(2·x/x_baseline) for runtime, FLOPs, params."""

    year: int
    runtime: float
    flops: float
    params: float
    official_baseline: str
    gate_val: float = 26.90  # dB on the valid split; below it a model is not ranked
    gate_test: float = 26.99  # dB on the test split


SCORES = {
    2024: ScoreRule(2024, 0.7, 0.15, 0.15, "RLFN"),
    2025: ScoreRule(2025, 0.7, 0.15, 0.15, "EFDN"),
    2026: ScoreRule(2026, 0.8, 0.1, 0.1, "SPAN"),
}


def add_scores(table: ChallengeTable, rule: ScoreRule, baseline: str) -> None:
    """Score each row against the baseline row measured the same way (same scale, protocol, device, exec)."""
    bases = [r for r in table.rows if r["model"] == baseline]
    if not bases:
        models = ", ".join(sorted({r["model"] for r in table.rows}))
        raise ResultsError(
            f"baseline '{baseline}' is not in the records (models: {models}); pass one of them to --baseline"
        )
    parts = (("score_runtime", table.runtime_key, rule.runtime), ("score_flops", "flops_g", rule.flops),
             ("score_params", "params_m", rule.params))
    for base in bases:
        for _, key, _ in parts:
            if not base.get(key):
                raise ResultsError(f"baseline '{baseline}' has no {key} to score against: {_missing(base, key, table)}")
    for row in table.rows:
        base = next((b for b in bases if _same_setup(b, row)), None)
        if base is None:
            table.notes.append(
                f"{row['model']}: not scored: no '{baseline}' record with the same scale, protocol, device and exec"
            )
        for name, key, _ in parts:
            value = row.get(key)
            row[name] = math.exp(2 * value / base[key]) if base is not None and value is not None else None
        scores = [(row[name], weight) for name, _, weight in parts]
        row["score"] = None if any(v is None for v, _ in scores) else sum(v * w for v, w in scores)
        row["psnr_gate"] = _gate(row, rule, table.has_test)


def _missing(base: dict, key: str, table: ChallengeTable) -> str:
    """Why the baseline's cell is empty, and the fix: its eval records are only partial (and not allowed), or
    the measurement was never recorded."""
    splits = {"val_time_ms": ("val",), "ave_time_ms": ("val", "test")}.get(key, ())
    partial = [(split, base[f"{split}_partial_left_out"]) for split in splits if base.get(f"{split}_partial_left_out")]
    if partial:
        datasets = {"val": table.val, "test": table.test}
        which = ", ".join(f"on {datasets[split]} ({coverage})" for split, coverage in partial)
        return (f"its eval record is partial {which}; re-run its eval on the whole set, or pass --allow-partial "
                "to score against the partial one")
    return "record it first"


def _gate(row: dict, rule: ScoreRule, has_test: bool) -> bool | None:
    """False if any known PSNR is below its gate, True if all are known and pass, else unknown."""
    checks = [(row["val_psnr"], rule.gate_val)] + ([(row["test_psnr"], rule.gate_test)] if has_test else [])
    if any(v is not None and v < limit for v, limit in checks):
        return False
    return True if all(v is not None for v, _ in checks) else None


def _same_setup(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] for k in SETUP_HEADERS)
