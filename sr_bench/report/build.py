"""Records in, :class:`ChallengeTable` out: options checked, rows built, columns laid out, scored, ordered.

The steps, each in its own module: selection.py picks the records per row, rows.py reads their values,
columns.py lays out the columns, scores.py adds the year's score; this module only runs them in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sr_bench.errors import ResultsError, UsageError
from sr_bench.report.columns import EXTRAS, notes_column, setup_column, table_columns
from sr_bench.report.rows import build_row
from sr_bench.report.scores import SCORES, add_scores
from sr_bench.report.selection import missing_dataset_notes, other_size_notes, profile_size, row_key, row_keys
from sr_bench.report.table import CHALLENGE_SIZE, FLOPS_CONVENTIONS, GPU_MARK, SETUP_HEADERS, ChallengeTable
from sr_bench.results import EvalRecord, ProfileRecord, Record, load_records, record_time

ORDERS = ("created", "name", "psnr", "time", "score")


def load_table(results_dir: Path, **options: Any) -> tuple[ChallengeTable, list[str]]:
    """Load the records below ``results_dir`` and build the table; returns it with every warning.

    ``options`` are those of :func:`build_table`.
    """
    records, warnings = load_records(results_dir)
    if not records:
        more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
        raise ResultsError(f"no usable records in {results_dir}: {warnings[0]}{more}")
    table = build_table(records, **options)
    return table, warnings + table.notes


def build_table(
    records: Sequence[Record],
    *,
    val: str | None = "ntire-valid",
    test: str | None = "ntire-test",
    flops: str = "fvcore",
    extras: Iterable[str] = (),
    score: int | None = None,
    baseline: str | None = None,
    order: str = "created",
    size: tuple[int, int] = CHALLENGE_SIZE,
    allow_partial: bool = False,
) -> ChallengeTable:
    """Build the challenge table from profile and eval records (see the package docstring for the rules)."""
    extras = _check_options(flops, extras, score, baseline, order)
    evals: list[EvalRecord] = [r for r in records if r["kind"] == "eval" and r["dataset"] in (val, test)]
    all_profiles: list[ProfileRecord] = [r for r in records if r["kind"] == "profile"]
    profiles = [r for r in all_profiles if profile_size(r) == (1, *size)]
    notes = missing_dataset_notes(records, val, test) + other_size_notes(all_profiles, size)
    has_test = test is not None and any(r["dataset"] == test for r in evals)

    keys = row_keys(evals, profiles)
    rows = []
    for key in keys:
        row, row_notes = build_row(key, evals, profiles, val, test, flops, allow_partial)
        rows.append(row)
        notes += row_notes
    notes += [f"{row['model']}: runtime measured under a GPU warning, marked '{GPU_MARK.strip()}': {row['gpu_warning']}"
              for row in rows if row["gpu_warning"]]
    setups = {k: _distinct(r[k] for r in rows) for k in SETUP_HEADERS}
    # A setup gets a column when measured rows differ in it ("no exec recorded" vs "bf16" counts as differing).
    measured = {row_key(r)[1:] for r in evals}
    varying = [k for i, k in enumerate(SETUP_HEADERS) if len({key[i] for key in measured}) > 1]
    identity = [setup_column(k, setups[k]) for k in varying]
    rule = SCORES[score] if score is not None else None
    columns = table_columns(identity, has_test, extras, flops, rule is not None)
    if any(row["notes"] for row in rows):
        columns.append(notes_column(rows))
    table = ChallengeTable(columns, rows, val, test, flops, setups, size, rule, baseline, notes)
    if rule is not None:
        add_scores(table, rule, baseline)
    table.rows = _ordered(table, order, records)
    return table


def _check_options(flops: str, extras: Iterable[str], score: int | None, baseline: str | None, order: str) -> set[str]:
    if flops not in FLOPS_CONVENTIONS:
        raise UsageError(f"unknown FLOPs convention {flops!r}: use one of {', '.join(FLOPS_CONVENTIONS)}")
    chosen = set(extras)
    if unknown := sorted(chosen - set(EXTRAS)):
        raise UsageError(f"unknown extra column(s) {', '.join(unknown)}: use any of {', '.join(EXTRAS)}")
    if score is not None and score not in SCORES:
        raise UsageError(f"unknown score year {score}: use one of {', '.join(map(str, SCORES))}")
    if score is not None and not baseline:
        official = SCORES[score].official_baseline
        raise UsageError(f"a score needs a baseline: pass --baseline MODEL ({score} used {official})")
    if baseline and score is None:
        raise UsageError("--baseline only matters with --score 2024|2025|2026 or --plot")
    if order not in ORDERS:
        raise UsageError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
    if order == "score" and score is None:
        raise UsageError("ordering by score needs --score and --baseline")
    return chosen


def _ordered(table: ChallengeTable, order: str, records: Sequence[Record]) -> list[dict]:
    rows = table.rows
    if order == "created":
        first = _first_seen(records)
        return sorted(rows, key=lambda r: (first[(r["model"], r["scale"])], r["model"]))
    if order == "name":
        return sorted(rows, key=lambda r: (r["model"], r["scale"]))
    key = {"psnr": "val_psnr", "time": table.runtime_key, "score": "score"}[order]
    sign = -1 if order == "psnr" else 1
    return sorted(rows, key=lambda r: (r.get(key) is None, sign * (r.get(key) or 0.0)))


def _first_seen(records: Sequence[Record]) -> dict[tuple, str]:
    """When each (model, scale) was first recorded, as a sortable UTC ISO string."""
    first: dict[tuple, str] = {}
    for r in records:
        key = (r["model"], r["scale"])
        when = record_time(r).isoformat()
        if key not in first or when < first[key]:
            first[key] = when
    return first


def _distinct(values: Iterable[Any]) -> list:
    return sorted({v for v in values if v is not None}, key=str)
