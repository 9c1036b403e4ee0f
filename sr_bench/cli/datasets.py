"""``srbench datasets [list] | pull NAME``: which evaluation sets are found under the data root, and downloads.

Usage::

    srbench datasets                              # the table: present, partial, missing
    srbench datasets --data-root ../shared/data --json
    srbench datasets pull div2k-valid             # DIV2K valid HR + LR x4, verified and unpacked
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from sr_bench.cli import output
from sr_bench.paths import builtin_data_root
from sr_bench.paths import data_root as default_data_root

if TYPE_CHECKING:
    from sr_bench.datasets import DatasetStatus

app = typer.Typer(help="Evaluation datasets: list what is found under the data root, download official sets.")

DataRootOpt = Annotated[
    Optional[Path], typer.Option("--data-root", help="Dataset root (default: $SRBENCH_DATA or ./datasets).")
]
STATE_STYLE = {"present": "green", "built-in": "green", "partial": "yellow", "broken": "red", "missing": "dim"}


ScaleOpt = Annotated[int, typer.Option("--scale", "-s", min=1, help="Which LR folder to look for.")]
JsonRowsOpt = Annotated[bool, typer.Option("--json", help="Print JSON rows.")]


@app.callback(invoke_without_command=True)
def _default(ctx: typer.Context, data_root: DataRootOpt = None, scale: ScaleOpt = 4, as_json: JsonRowsOpt = False) -> None:
    """Without a subcommand, list the datasets (same options as 'list')."""
    if ctx.invoked_subcommand is None:
        datasets_list(data_root=data_root, scale=scale, as_json=as_json)


@app.command("list")
def datasets_list(data_root: DataRootOpt = None, scale: ScaleOpt = 4, as_json: JsonRowsOpt = False) -> None:
    """Every known dataset: found or missing, image count, HR and LR folders, whether it can be pulled.

    Example: srbench datasets list --data-root ../shared/data
    """
    from sr_bench.datasets import ALIASES, dataset_status  # numpy + PIL: loaded when a command runs

    root = default_data_root(data_root)
    statuses = dataset_status(root, scale)
    if as_json:
        output.print_json([_row(s) for s in statuses])
        return
    aliases = "; ".join(f"{a} = {' if present, else '.join(t)}" for a, t in ALIASES.items())
    table = Table(title=f"datasets under {root} (x{scale})", caption=f"aliases: {aliases}")
    for column in ("dataset", "state", "images", "HR folder", "LR folder", "pull"):
        table.add_column(column, justify="right" if column == "images" else "left", overflow="fold")
    for status in statuses:
        row = _row(status)
        expected = f"/{row['expected']}" if row["expected"] is not None else ""
        base, prefix = (builtin_data_root(), "built-in ") if status.builtin else (root, "")
        hr = f"{prefix}{_relative(status.hr_dir, base)}" if status.hr_dir else "-"
        lr = "-" if status.hr_dir is None else (f"{prefix}{_relative(status.lr_dir, base)}" if status.lr_dir else "generated")
        table.add_row(row["name"], f"[{STATE_STYLE[row['state']]}]{row['state']}[/]", f"{row['found']}{expected}",
                      hr, lr, "yes" if row["pullable"] else "")
    output.out.print(table)
    for status in statuses:
        if status.error:
            output.warning(f"{status.spec.name}: {status.error}")


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _row(status: DatasetStatus) -> dict:
    return {
        "name": status.spec.name,
        "state": status.state,
        "found": status.found,
        "expected": status.spec.count,
        "hr_dir": str(status.hr_dir) if status.hr_dir else None,
        "lr_dir": str(status.lr_dir) if status.lr_dir else None,
        "split": status.spec.split,
        "pullable": bool(status.spec.archives),
        "description": status.spec.description,
        "error": status.error,
        "builtin": status.builtin,
    }


@app.command("pull")
def datasets_pull(
    name: Annotated[str, typer.Argument(help="Dataset to download, e.g. div2k-valid or lsdir-valid.")],
    data_root: DataRootOpt = None,
    base_url: Annotated[
        Optional[str], typer.Option("--base-url", help="Fetch the archives from this mirror (default: $SRBENCH_DATA_URL or the official site).")
    ] = None,
) -> None:
    """Download a dataset's official archives, resumably, verify them and unpack into the data root.

    Rerun the same command to resume an interrupted download. Example: srbench datasets pull div2k-valid
    """
    from sr_bench.datasets import get_dataset_spec, pull_dataset

    spec = get_dataset_spec(name)
    root = default_data_root(data_root)
    with output.progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                         TimeRemainingColumn(), transient=True) as progress:
        tasks: dict[str, int] = {}

        def advance(label: str, done: int, total: int | None) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=total)
            progress.update(tasks[label], completed=done, total=total)

        dataset = pull_dataset(spec, root, base_url=base_url, progress=advance)
    lr = dataset.lr_dir or "generated from HR"
    output.out.print(f"{spec.name}: {len(dataset.pairs)} images in {dataset.hr_dir} (LR: {lr})", soft_wrap=True)
