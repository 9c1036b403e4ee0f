"""Which columns a table shows, in the official ``results.txt`` order, and how wide txt makes them.

Kept apart from the rows: the column set depends only on the options and on which setups differ, never on
the values, so a reader can see the layout in one place.
"""

from __future__ import annotations

from typing import Any

from sr_bench.report.table import FLOPS_CONVENTIONS, SETUP_HEADERS, Column

EXTRAS = ("ssim", "y", "runtime-stats", "flops-all")


def table_columns(identity: list[Column], has_test: bool, extras: set[str], flops: str, scored: bool) -> list[Column]:
    """Columns in the official order; extras sit beside the column they refine."""
    splits = ["val", "test"] if has_test else ["val"]
    names = {"val": "Val", "test": "Test"}
    cols = [Column("model", "Model", "s", 20), *identity]
    for s in splits:
        cols.append(Column(f"{s}_psnr", f"{names[s]} PSNR"))
        if "ssim" in extras:
            cols.append(Column(f"{s}_ssim", f"{names[s]} SSIM", ".4f"))
        if "y" in extras:
            cols += [Column(f"{s}_psnr_y", f"{names[s]} PSNR-Y"), Column(f"{s}_ssim_y", f"{names[s]} SSIM-Y", ".4f")]
    for s in splits:
        cols.append(Column(f"{s}_time_ms", f"{names[s]} Time [ms]", "3.2f", 14))
        if "runtime-stats" in extras:
            cols += [
                Column(f"{s}_time_median_ms", f"{names[s]} Median [ms]", "3.2f", 16),
                Column(f"{s}_time_std_ms", f"{names[s]} Std [ms]", "3.2f", 14),
            ]
    if has_test:
        cols.append(Column("ave_time_ms", "Ave Time [ms]", "3.2f", 14))
    cols += [Column("params_m", "Params [M]", "2.3f"), Column("flops_g", "FLOPs [G]")]
    if "flops-all" in extras:
        others = [c for c in FLOPS_CONVENTIONS if c != flops]
        cols += [Column(f"flops_{c}_g", f"FLOPs {c} [G]", "2.2f", len(f"FLOPs {c} [G]")) for c in others]
    cols += [
        Column("acts_m", "Acts [M]", "2.2f", 8),
        Column("mem_mib", "Mem [M]", "2.2f", 8),
        Column("conv", "Conv", "4d", 8),
    ]
    if scored:
        cols += [
            Column("score_runtime", "Score Time", ".4f"),
            Column("score_flops", "Score FLOPs", ".4f", 11),
            Column("score_params", "Score Params", ".4f", 12),
            Column("score", "Score", ".4f"),
            Column("psnr_gate", "PSNR Gate", "s"),
        ]
    return cols


def setup_column(key: str, values: list[Any]) -> Column:
    """A column for a setup value that differs between rows, wide enough for txt to stay aligned."""
    header = SETUP_HEADERS[key]
    width = max([len(header)] + [len(str(v)) for v in values])
    return Column(key, header, "" if key == "scale" else "s", width)


def notes_column(rows: list[dict[str, Any]]) -> Column:
    """The Notes column (tiled/partial/not comparable), as wide as its longest note."""
    return Column("notes", "Notes", "s", max(len("Notes"), *(len(row["notes"] or "") for row in rows)))
