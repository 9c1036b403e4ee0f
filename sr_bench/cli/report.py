"""``srbench report``: the challenge table from the stored run records.

Usage::

    srbench report                                        # rich table of ntire-valid / ntire-test records
    srbench report --val set5 --test none --format md
    srbench report --val div2k-valid --test none --flops ntire2023 --out results.txt
    srbench report --score 2024 --baseline rlfn --extra ssim,y --plot psnr_runtime.png
    srbench report --val set5 --test none --size 32 --allow-partial   # 32x32 profiles, partial evals marked
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sr_bench.cli import output
from sr_bench.cli.options import ResultsOpt
from sr_bench.errors import UsageError
from sr_bench.paths import results_dir
from sr_bench.report import (
    EXTRAS,
    FLOPS_CONVENTIONS,
    FORMATS,
    ORDERS,
    format_for_path,
    load_table,
    read_official,
    render,
    render_comparison,
    to_rich,
)
from sr_bench.report import compare_official as compare_with_official
from sr_bench.results import atomic_write_text
from sr_bench.sizes import parse_size

NONE_WORDS = ("", "none", "-")


def report(
    results: ResultsOpt = None,
    val: Annotated[
        str, typer.Option("--val", help="Dataset of the Val columns (as recorded by 'srbench eval').")
    ] = "ntire-valid",
    test: Annotated[
        str, typer.Option("--test", help="Dataset of the Test/Ave columns; 'none' for a val-only table.")
    ] = "ntire-test",
    fmt: Annotated[
        Optional[str],
        typer.Option("--format", "-f", help=f"rich, {', '.join(FORMATS)} (default: rich, or from the --out suffix)."),
    ] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the table to this file.")] = None,
    flops: Annotated[str, typer.Option("--flops", help=f"FLOPs convention: {'|'.join(FLOPS_CONVENTIONS)}.")] = "fvcore",
    extra: Annotated[
        Optional[list[str]],
        typer.Option("--extra", "-x", help=f"Extra columns, comma-separated or repeated: {','.join(EXTRAS)}."),
    ] = None,
    score: Annotated[Optional[int], typer.Option("--score", help="Add NTIRE scores: 2024, 2025 or 2026.")] = None,
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="Model the score is relative to.")] = None,
    order: Annotated[
        str,
        typer.Option("--order", help=f"Row order: {'|'.join(ORDERS)} (created = first recorded, as officially)."),
    ] = "created",
    plot: Annotated[
        Optional[Path], typer.Option("--plot", help="Also save the PSNR-vs-runtime figure (.png/.pdf/.svg).")
    ] = None,
    size: Annotated[
        str, typer.Option("--size", help="Input size of the profiles used for Params/FLOPs/Acts/Conv: N or HxW.")
    ] = "256",
    allow_partial: Annotated[
        bool, typer.Option("--allow-partial", help="Use an eval record that covers only part of its dataset (marked).")
    ] = False,
    compare_official: Annotated[
        Optional[Path],
        typer.Option("--compare-official", help="An official results.json: print official vs srbench per team and column."),
    ] = None,
) -> None:
    """Build the NTIRE challenge table (PSNR, runtime, params, FLOPs, activations, memory, #conv) from run records.

    Example: srbench report --val div2k-valid --test none --flops ntire2023 --out results.txt
    """
    chosen = _output_format(fmt, out_path)
    # without --score, --baseline only marks the baseline in the plot
    table_baseline = baseline if score is not None or plot is None else None
    table, warnings = load_table(
        results_dir(results),
        val=val,
        test=None if test.lower() in NONE_WORDS else test,
        flops=flops,
        extras=[name.strip() for item in extra or [] for name in item.split(",") if name.strip()],
        score=score,
        baseline=table_baseline,
        order=order,
        size=parse_size(size),
        allow_partial=allow_partial,
    )
    for message in warnings:
        output.warning(message)
    if compare_official is not None:
        cells, notes = compare_with_official(table, read_official(compare_official))
        for message in notes:
            output.notice(message)
        output.raw(render_comparison(cells))
        return
    if plot is not None:
        from sr_bench.plot import plot_psnr_runtime

        for message in plot_psnr_runtime(table, plot, baseline=baseline):
            output.warning(message)
        output.info(f"wrote {plot}")
    if chosen == "rich":
        output.out.print(to_rich(table), crop=False)  # a table wider than the console overflows, never cut
    elif out_path is not None:
        atomic_write_text(out_path, render(table, chosen))
        output.info(f"wrote {out_path}")
    else:
        output.raw(render(table, chosen))  # exact text: rich would expand the txt format's tabs


def _output_format(fmt: str | None, out_path: Path | None) -> str:
    """``--format`` wins; else the ``--out`` suffix; else the rich console table."""
    if fmt is None:
        return format_for_path(out_path) if out_path is not None else "rich"
    fmt = fmt.lower()
    if fmt not in ("rich", *FORMATS):
        raise UsageError(f"unknown format {fmt!r}: use one of rich, {', '.join(FORMATS)}")
    if fmt == "rich" and out_path is not None:
        raise UsageError("the rich table is for the console: pick --format txt, md, csv or json with --out")
    return fmt
