"""``srbench challenge``: replay an NTIRE ESR challenge repository, one record per team.

Usage::

    srbench challenge list NTIRE2025_ESR                       # team ids and names, read without running code
    srbench challenge profile NTIRE2025_ESR --teams 0,7,8      # params, FLOPs, activations, runtime per team
    srbench challenge eval NTIRE2025_ESR --data-dir ../data    # PSNR/SSIM on the year's valid/test sets
    torchrun --standalone --nproc-per-node 4 -m sr_bench challenge profile NTIRE2025_ESR   # teams shared by 4 ranks

``profile`` and ``eval`` run the repository's own ``select_model`` (its code, as the official harness does).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
from rich.table import Table

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
    table = Table(title=f"{challenge.label}: quality per team (last dataset shown)")
    for column in ("id", "name", "dataset", "PSNR", "SSIM", "runtime ms", "status"):
        table.add_column(column, no_wrap=column != "status", overflow="fold")
    for o in outcomes:
        rec = o.record or {}
        mean = rec.get("mean") or {}
        table.add_row(str(o.entry.team_id), o.name, rec.get("dataset", "-"), _num(mean.get("psnr_rgb"), ".2f"),
                      _num(mean.get("ssim_rgb"), ".4f"), _num((rec.get("runtime_ms") or {}).get("mean"), ".2f"),
                      _status(o))
    output.out.print(table)
    _finish(outcomes, "evaluated")


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


def _count(value: int | None, pair: list | None, unit: float) -> str:
    """A count in the table's unit, or its range over the two seeded inputs when it depends on the input."""
    if pair and None not in pair and pair[0] != pair[1]:
        return f"{min(pair) / unit:.4f}–{max(pair) / unit:.4f}"
    return _num(value / unit if isinstance(value, int) else None, ".4f")


def _status(outcome: TeamOutcome) -> str:
    if outcome.reason is not None:
        return "failed (reason below)"
    return "kept (earlier record; --force redoes it)" if outcome.skipped else "measured"


def _render_profiles(outcomes: list[TeamOutcome]) -> None:
    table = Table(title="challenge profile: one record per team", caption="FLOPs: the year's official convention")
    for column in ("id", "name", "Params [M]", "FLOPs [G]", "Acts [M]", "Conv", "runtime ms", "status"):
        table.add_column(column, justify="left" if column in ("name", "status") else "right",
                         no_wrap=column != "status", overflow="fold")
    for o in outcomes:
        rec = o.record or {}
        headline = rec.get("flops_headline", "")
        dependent = rec.get("input_dependent") or {}
        rt = rec.get("runtime_ms") or {}
        table.add_row(
            str(o.entry.team_id), o.name,
            _num(rec["params"] / 1e6 if "params" in rec else None, ".4f"),
            _count((rec.get("flops") or {}).get(headline), (dependent.get("flops") or {}).get(headline), 1e9),
            _count(rec.get("activations"), dependent.get("activations"), 1e6),
            str(rec.get("num_conv", "-")), _num(rt.get("median"), ".2f"), _status(o),
        )
    output.out.print(table)


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
