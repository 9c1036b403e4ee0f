"""``srbench challenge``: replay an NTIRE ESR challenge repository, one record per team.

Usage::

    srbench challenge list NTIRE2025_ESR                       # team ids and names, read without running code
    srbench challenge profile NTIRE2025_ESR --teams 0,7,8      # params, FLOPs, activations, runtime per team
    srbench challenge eval NTIRE2025_ESR --data-dir ../data    # PSNR/SSIM on the year's valid/test sets
    torchrun --standalone --nproc-per-node 4 -m sr_bench challenge profile NTIRE2025_ESR   # teams shared by 4 ranks

``profile`` and ``eval`` run the repository's own ``select_model`` (its code, as the official harness does).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Optional, Union

import typer
from rich.cells import cell_len
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
from rich.table import Table
from rich.text import Text

from sr_bench.challenge.repo import read_repo
from sr_bench.cli import output
from sr_bench.cli.options import DeviceOpt, ResultsOpt
from sr_bench.errors import SrBenchError
from sr_bench.paths import results_dir

if TYPE_CHECKING:
    import torch

    from sr_bench.challenge.repo import TeamEntry
    from sr_bench.challenge.run import TeamOutcome

app = typer.Typer(help="Replay an NTIRE ESR challenge repository (test_demo.py with select_model, models/, model_zoo/).",
                  no_args_is_help=True)

RepoArg = Annotated[Path, typer.Argument(help="The challenge repository (holds test_demo.py).")]
TeamsOpt = Annotated[Optional[str], typer.Option("--teams", help="Team ids like 0,7,8, or 'all' (default).")]
YearOpt = Annotated[
    Optional[int], typer.Option("--year", help="Challenge year (default: from test_demo.py's logger name).")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Measure teams again even when they already have a record.")]


@app.command("list")
def list_teams(repo: RepoArg, year: YearOpt = None,
               as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List the teams of a challenge repository, read from select_model without running any code.

    Example: srbench challenge list NTIRE2025_ESR
    """
    challenge = read_repo(repo, year)
    if as_json:
        output.print_json({"repo": str(challenge.root), "year": challenge.year,
                           "teams": [t.to_dict() for t in challenge.teams]})
        return
    table = Table(title=f"{challenge.label}: {len(challenge.teams)} teams, year {challenge.year or 'unknown'}",
                  caption="read from select_model in test_demo.py (no code was run)")
    for column in ("id", "name", "range", "model", "checkpoint", "tile"):
        table.add_column(column, justify="right" if column in ("id", "range", "tile") else "left",
                         no_wrap=column in ("id", "name", "range", "tile"), overflow="fold")
    for team in challenge.teams:
        model = f"{team.module}:{team.model_class}" if team.module else "-"
        checkpoint = team.checkpoint or "-"
        if team.checkpoint and not (challenge.root / team.checkpoint).is_file():
            checkpoint += " (missing)"
        table.add_row(str(team.team_id), team.name or "?", "-" if team.data_range is None else f"{team.data_range:g}",
                      model, checkpoint, "-" if team.tile is None else str(team.tile))
    output.out.print(table)


@app.command("profile")
def profile(
    repo: RepoArg,
    teams: TeamsOpt = None,
    device: DeviceOpt = "auto",
    no_runtime: Annotated[bool, typer.Option("--no-runtime", help="Count complexity only; skip timing.")] = False,
    results: ResultsOpt = None,
    force: ForceOpt = False,
    year: YearOpt = None,
) -> None:
    """Profile every team as 'srbench profile' does, with the year's official FLOPs convention as the headline.

    Example: srbench challenge profile NTIRE2025_ESR --teams 0,7,8 --no-runtime
    """
    from sr_bench.challenge.run import profile_teams, year_protocol  # torch: loaded only when a team is built
    from sr_bench.challenge.sharded import leads, measure_teams

    challenge = read_repo(repo, year)
    entries = challenge.select(teams)
    if leads():
        output.notice(f"running the code of {challenge.root} (select_model) for {len(entries)} team(s); "
                      f"protocol {year_protocol(challenge.year)}")

    def measure(mine: list[TeamEntry], dev: torch.device, threads: int | None) -> list[TeamOutcome]:
        with _TeamProgress(len(mine), "profiling") as progress:
            return profile_teams(challenge, mine, dev, results_dir(results), runtime=not no_runtime, force=force,
                                 threads=threads, on_team=progress.advance)

    outcomes = measure_teams(challenge, entries, device, measure, on_split=output.notice)
    if outcomes is None:  # another rank of a torchrun launch: rank 0 prints the summary
        return
    _render_profiles(outcomes)
    _finish(outcomes, "profiled")


@app.command("eval")
def eval_cmd(
    repo: RepoArg,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Folder holding the year's valid/test sets as its "
                                           "test_demo.py reads them: DIV2K_LSDIR_{valid,test}_{HR,LR} (2025), "
                                           "LSDIR_DIV2K_{valid,test}_* (2024), DIV2K_valid_* and LSDIR_DIV2K_test_* "
                                           "(2023), DIV2K_{valid,test}_* (2022).")],
    teams: TeamsOpt = None,
    device: DeviceOpt = "auto",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N images of each set.")] = None,
    results: ResultsOpt = None,
    force: ForceOpt = False,
    year: YearOpt = None,
) -> None:
    """Evaluate every team on the year's valid/test sets through the same loop as 'srbench eval'.

    Example: srbench challenge eval NTIRE2025_ESR --data-dir .. --teams 0,7
    """
    from sr_bench.challenge.run import challenge_datasets, eval_teams, year_protocol
    from sr_bench.challenge.sharded import leads, measure_teams
    from sr_bench.evaluate import EvalOptions

    challenge = read_repo(repo, year)
    entries = challenge.select(teams)
    datasets, notices = challenge_datasets(challenge, data_dir)
    options = EvalOptions(results_dir=results_dir(results), protocol=year_protocol(challenge.year), limit=limit)
    if leads():
        for message in notices:
            output.notice(message)
        output.notice(f"running the code of {challenge.root} (select_model) for {len(entries)} team(s) on "
                      f"{', '.join(d.name for d in datasets)}")

    def measure(mine: list[TeamEntry], dev: torch.device, threads: int | None) -> list[TeamOutcome]:
        with _TeamProgress(len(mine), "evaluating") as progress:
            return eval_teams(challenge, mine, datasets, dev, replace(options, threads=threads), force=force,
                              on_team=progress.advance)

    outcomes = measure_teams(challenge, entries, device, measure, on_split=output.notice)
    if outcomes is None:  # another rank of a torchrun launch: rank 0 prints the summary
        return
    _render_evals(challenge.label, outcomes)
    _finish(outcomes, "evaluated")


_Cell = Union[str, tuple[str, ...]]
"""A table cell: text, which wraps at spaces, or pieces that share a line when the column is wide enough and
otherwise take one line each (a range of numbers breaks after its dash, never inside a number)."""


@dataclass(frozen=True)
class _Column:
    """A result-table column: its alignment, how narrow it may get, and whether a narrow terminal leaves it out.

    ``fold``: text (names, failure reasons) gets at least this width and folds words that are longer; without
    it a column is never narrower than its longest word or number, so no figure is ever cut. ``drop`` > 0: the
    column is left out (highest first) when the terminal is too narrow for every column at its narrowest.
    """

    header: str
    justify: Literal["left", "right"] = "right"
    fold: int | None = None
    drop: int = 0


MIN_FOLD = 8  # the narrowest a folding column gets on a terminal too narrow for everything else ("failed:" fits)


def _bounds(cell: _Cell) -> tuple[int, int]:
    """The narrowest and the widest a cell can be shown (its longest word or piece, and its longest line)."""
    if isinstance(cell, tuple):
        return max(map(cell_len, cell)), cell_len("".join(cell))
    return max(map(cell_len, cell.split()), default=1), max(map(cell_len, cell.splitlines()), default=1)


def _widths(columns: tuple[_Column, ...], rows: list[tuple[_Cell, ...]], width: int) -> dict[int, int]:
    """Each shown column's width within ``width``: every column at its narrowest, leaving out columns while even
    that does not fit (those with nothing but '-' first, then by ``drop``), and as a last resort narrowing folding
    text further; then from left to right each column that fits whole at its widest, the last column (the status)
    taking what is left. No cell is ever cut and no column ever shrinks to nothing."""
    narrow: list[int] = []
    wide: list[int] = []
    for i, column in enumerate(columns):
        least, most = zip(*(_bounds(cell) for cell in (column.header, *(row[i] for row in rows))))
        wide.append(max(most))
        narrow.append(min(wide[-1], column.fold) if column.fold else max(least))
    empty = {i for i in range(len(columns)) if all(row[i] == "-" for row in rows)}
    widths = {i: narrow[i] for i in range(len(columns))}
    for i in sorted((i for i in widths if columns[i].drop or i in empty),
                    key=lambda i: (i not in empty, -columns[i].drop)):
        if _spare(widths, width) >= 0:
            break
        del widths[i]
    for i in reversed(widths):
        if columns[i].fold and _spare(widths, width) < 0:
            widths[i] = max(min(widths[i], MIN_FOLD), widths[i] + _spare(widths, width))
    *growing, last = widths
    for i in growing:
        if wide[i] - widths[i] <= _spare(widths, width):
            widths[i] = wide[i]
    widths[last] = min(wide[last], widths[last] + max(0, _spare(widths, width)))
    return widths


def _spare(widths: dict[int, int], width: int) -> int:
    """What is left of ``width``: each column also takes a border and one space of padding either side."""
    return width - sum(widths.values()) - 3 * len(widths) - 1


def _fit_table(title: str, caption: str | None, columns: tuple[_Column, ...], rows: list[tuple[_Cell, ...]],
               width: int) -> Table:
    """A result table readable at ``width`` terminal columns (80 included); left-out columns are named below it."""
    widths = _widths(columns, rows, width)
    left_out = [c.header for i, c in enumerate(columns) if i not in widths]
    if left_out:
        note = f"{', '.join(left_out)} left out to fit {width} columns (a wider terminal shows them)"
        caption = f"{caption}; {note}" if caption else note
    table = Table(title=title, caption=caption)
    for i, w in widths.items():
        table.add_column(Text(columns[i].header), justify=columns[i].justify, width=w, overflow="fold")
    for row in rows:
        table.add_row(*(Text(_fit(row[i], w)) for i, w in widths.items()))
    return table


def _fit(cell: _Cell, width: int) -> str:
    """The cell's text in a column ``width`` wide: a piece per line only where the pieces do not fit on one."""
    if isinstance(cell, str):
        return cell
    joined = "".join(cell)
    return joined if cell_len(joined) <= width else "\n".join(cell)


class _TeamProgress:
    """A progress bar over teams, on stderr."""

    def __init__(self, total: int, verb: str) -> None:
        self._progress = output.progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                         transient=True)
        self._task = self._progress.add_task(f"{verb} teams", total=total)

    def __enter__(self) -> _TeamProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def advance(self, outcome: TeamOutcome) -> None:
        self._progress.advance(self._task)
        self._progress.update(self._task, description=f"team {outcome.entry.team_id:02} done")


def _num(value: object, spec: str) -> str:
    return "-" if not isinstance(value, (int, float)) else format(value, spec)


def _count(value: int | None, pair: list | None, unit: float) -> _Cell:
    """A count in the table's unit, or its range over the two seeded inputs when it depends on the input."""
    if pair and None not in pair and pair[0] != pair[1]:
        return (f"{min(pair) / unit:.4f}–", f"{max(pair) / unit:.4f}")
    return _num(value / unit if isinstance(value, int) else None, ".4f")


def _status(outcome: TeamOutcome) -> str:
    """The row's status; a failed row carries its reason, so the table alone says why."""
    if outcome.reason is not None:
        return f"failed: {outcome.reason}"
    return "kept (earlier record; --force redoes it)" if outcome.skipped else "measured"


# A narrow terminal leaves out first what the challenge score does not use (Conv, activations), then the time
PROFILE_COLUMNS = (
    _Column("id"), _Column("name", "left", fold=12), _Column("Params [M]"), _Column("FLOPs [G]"),
    _Column("Acts [M]", drop=2), _Column("Conv", drop=3), _Column("runtime ms", drop=1),
    _Column("status", "left", fold=24),
)
EVAL_COLUMNS = (
    _Column("id"), _Column("name", "left", fold=12), _Column("dataset", "left", drop=1), _Column("PSNR"),
    _Column("SSIM"), _Column("runtime ms", drop=2), _Column("status", "left", fold=24),
)


def _render_profiles(outcomes: list[TeamOutcome]) -> None:
    rows = []
    for o in outcomes:
        rec = o.record or {}
        headline = rec.get("flops_headline", "")
        dependent = rec.get("input_dependent") or {}
        rt = rec.get("runtime_ms") or {}
        rows.append((
            str(o.entry.team_id), o.name,
            _num(rec["params"] / 1e6 if "params" in rec else None, ".4f"),
            _count((rec.get("flops") or {}).get(headline), (dependent.get("flops") or {}).get(headline), 1e9),
            _count(rec.get("activations"), dependent.get("activations"), 1e6),
            str(rec.get("num_conv", "-")), _num(rt.get("median"), ".2f"), _status(o),
        ))
    output.out.print(_fit_table("challenge profile: one record per team", "FLOPs: the year's official convention",
                                PROFILE_COLUMNS, rows, output.out.width))


def _render_evals(label: str, outcomes: list[TeamOutcome]) -> None:
    rows = []
    for o in outcomes:
        rec = o.record or {}
        mean = rec.get("mean") or {}
        rows.append((str(o.entry.team_id), o.name, rec.get("dataset", "-"), _num(mean.get("psnr_rgb"), ".2f"),
                     _num(mean.get("ssim_rgb"), ".4f"), _num((rec.get("runtime_ms") or {}).get("mean"), ".2f"),
                     _status(o)))
    output.out.print(_fit_table(f"{label}: quality per team (last dataset shown)", None, EVAL_COLUMNS, rows,
                                output.out.width))


def _finish(outcomes: list[TeamOutcome], verb: str) -> None:
    """Every failed row also as a warning line; no team measured at all is an error."""
    failed = [o for o in outcomes if o.reason is not None]
    for o in failed:
        output.warning(f"team {o.entry.team_id:02} ({o.name}): {o.reason}")
    for o in outcomes:
        for message in (o.record or {}).get("warnings", []) if not o.skipped else []:
            output.warning(f"team {o.entry.team_id:02}: {message}")
    if failed and len(failed) == len(outcomes):
        raise SrBenchError(f"no team could be {verb} ({len(failed)} failed; reasons above)")
    output.info(f"{len(outcomes) - len(failed)} team(s) {verb}, {len(failed)} failed")
