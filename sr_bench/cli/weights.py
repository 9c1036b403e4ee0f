"""``srbench weights list | verify | pull``: official checkpoints on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich import box
from rich.markup import escape
from rich.table import Table

from sr_bench import checkpoint_files
from sr_bench.cli import output
from sr_bench.cli.models import STATUS_STYLE
from sr_bench.errors import UsageError
from sr_bench.zoo import get_spec, list_models

app = typer.Typer(help="Official checkpoints: list what is found, verify hashes, download.", no_args_is_help=False)

ModelArg = Annotated[Optional[str], typer.Argument(help="Model name (default: every zoo model).")]


@app.callback(invoke_without_command=True)
def _default(ctx: typer.Context) -> None:
    """Without a subcommand, list the checkpoints."""
    if ctx.invoked_subcommand is None:
        weights_list(as_json=False)


@app.command("list")
def weights_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
) -> None:
    """Each model's checkpoint file, where it was found, and whether its sha256 is the official one.

    Example: srbench weights list
    """
    rows = checkpoint_files.catalogue()
    if as_json:
        output.print_json(rows)
        return
    table = Table(title="checkpoints", box=box.SIMPLE_HEAD,
                  caption="searched: --weights, $SRBENCH_WEIGHTS, ./weights, the user cache, built-in")
    # Names never wrap; file names, paths and URLs fold onto more lines: nothing is ever cut off.
    table.add_column("model", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("file / found at / source", overflow="fold")
    notes: dict[str, str] = {}
    for row in rows:
        if row["builtin"]:
            where = "shipped with srbench"
        elif row["path"] or row["url"]:
            where = row["path"] or row["url"]
        else:
            where = "by hand, see below" if row["note"] else "-"
            if row["note"]:
                notes.setdefault(row["model"], row["note"])
        table.add_row(f"{row['model']} x{row['scale']}",
                      f"[{STATUS_STYLE[row['status']]}]{checkpoint_files.status_label(row)}[/]",
                      f"{row['file'] or '-'}\n[dim]{escape(where)}[/]")
    output.out.print(table)
    for model, note in notes.items():
        output.out.print(f"{model}: {note}", highlight=False)


@app.command("verify")
def weights_verify(model: ModelArg = None) -> None:
    """Check sha256 against the official hash and load each found checkpoint strictly into its network.

    Exits 1 when a found checkpoint is wrong or a named model has none. Example: srbench weights verify lgvan
    """
    from sr_bench.models import verify_checkpoint  # builds networks: imports torch

    names = [get_spec(model).name] if model else list_models()
    failed = False
    for name in names:
        for scale in get_spec(name).scales:
            row = verify_checkpoint(name, scale)
            label = f"{name} x{scale}"
            if row["path"] is None:
                if model:
                    failed = True
                    output.error(f"{label}: {row['problem']}")
                else:
                    output.info(f"{label}: missing")
            elif row["problem"]:
                failed = True
                output.error(f"{label}: {row['problem']}")
            else:
                hash_word = "official sha256" if row["status"] == "verified" else "no official sha256 to compare"
                output.out.print(f"{label}: ok ({hash_word}, loads strictly) {row['path']}", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command("pull")
def weights_pull(
    model: Annotated[str, typer.Argument(help="Model name, e.g. lgvan.")],
    scale: Annotated[Optional[int], typer.Option("--scale", "-s", help="Scale (default: the model's).")] = None,
    dest: Annotated[Optional[Path], typer.Option("--dir", help="Destination folder (default: the user cache).")] = None,
) -> None:
    """Download a model's official checkpoint, verify its sha256, then move it into place.

    Set SRBENCH_WEIGHTS_URL to fetch from a mirror. Example: srbench weights pull rfdn
    """
    spec = get_spec(model)
    scale = spec.check_scale(scale)
    ckpt = spec.checkpoint(scale)
    if ckpt is None:
        raise UsageError(f"{spec.name} x{scale} has no known checkpoint to download")
    with output.progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                         TimeRemainingColumn(), transient=True) as progress:
        task = progress.add_task(f"{ckpt.file}", total=None)

        def advance(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        path = checkpoint_files.pull(ckpt, dest, progress=advance)
    verified = "sha256 verified" if ckpt.sha256 else "no official sha256 to check"
    output.out.print(f"saved {path} ({verified})", soft_wrap=True)
