"""``srbench models``: what the zoo holds (plugins included), and which checkpoints are on this machine.

Parameters are counted on each network as built (``sum(p.numel())``), so this command imports torch; the other
listings (``weights list``, ``datasets``, ``report``) do not.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table

from sr_bench.checkpoint_files import catalogue, status_label
from sr_bench.cli import output

STATUS_STYLE = {"verified": "green", "found": "cyan", "mismatch": "bold red", "missing": "dim"}


def count_params(name: str, scale: int) -> int:
    """Parameters of the network as built for ``scale`` (buffers excluded), the way the challenge counts them."""
    from sr_bench.zoo import get_spec

    return sum(p.numel() for p in get_spec(name).build(scale).parameters())


def models_ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON instead of a table.")] = False,
) -> None:
    """List the registered models: scales, parameters (counted on the built network), input range, checkpoint.

    Example: srbench models --json
    """
    rows = [{**row, "params": count_params(row["model"], row["scale"])} for row in catalogue()]
    if as_json:
        output.print_json(rows)
        return
    table = Table(title="srbench model zoo", box=box.SIMPLE_HEAD,
                  caption="params: counted on the built network; checkpoint: verified = official sha256 matches "
                          "(files and sources: srbench weights list)")
    for column, justify in [("model", "left"), ("params", "right"), ("input range", "right"), ("checkpoint", "left")]:
        table.add_column(column, justify=justify, no_wrap=True)
    for row in rows:
        style = STATUS_STYLE[row["status"]]
        table.add_row(f"{row['model']} x{row['scale']}", f"{row['params']:,}", f"[0, {row['data_range']:g}]",
                      f"[{style}]{status_label(row)}[/]")
    output.out.print(table)
