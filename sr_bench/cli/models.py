"""``srbench models``: what the zoo holds, and which checkpoints are on this machine."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from sr_bench.cli import output
from sr_bench.models import catalogue

STATUS_STYLE = {"verified": "green", "found": "cyan", "mismatch": "bold red", "missing": "dim"}


def models_ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON instead of a table.")] = False,
) -> None:
    """List the registered models: scales, parameters, input range and checkpoint status.

    Example: srbench models --json
    """
    rows = catalogue()
    if as_json:
        output.print_json(rows)
        return
    table = Table(title="srbench model zoo", caption="checkpoint: verified = official sha256 matches")
    for column, justify in [("model", "left"), ("scale", "right"), ("params", "right"), ("input range", "right"),
                            ("checkpoint", "left"), ("file", "left")]:
        table.add_column(column, justify=justify)
    for row in rows:
        style = STATUS_STYLE[row["status"]]
        params = f"{row['params']:,}" if row["params"] is not None else "-"
        table.add_row(row["model"], f"x{row['scale']}", params, f"[0, {row['data_range']:g}]",
                      f"[{style}]{row['status']}[/]", row["path"] or row["file"] or "-")
    output.out.print(table)
