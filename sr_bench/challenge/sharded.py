"""``srbench challenge profile/eval`` under ``torchrun``: the teams shared between ranks, one record per team.

Teams are independent and each has its own record, so nothing is merged: each rank builds and measures its share
(:func:`sr_bench.sharding.my_share`, balanced by checkpoint size, a proxy for the model's cost) on its own device
(``cuda:LOCAL_RANK``, or the CPU with the cores divided between the ranks) and writes its teams' records; rank 0
gathers every rank's outcomes (records and failed rows) for the summary, in team order. A rerun with the same
number of ranks gives every rank the same teams, and each rank keeps the teams already recorded (no ``--force``).
A rank that fails prints its error (its rank in ``SrBenchError.where``); torchrun then stops the others, which say
so in one line each. An error every rank hits alike is printed once, by rank 0 (:mod:`sr_bench.cli.rank_errors`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sr_bench.challenge.repo import ChallengeRepo, TeamEntry
from sr_bench.challenge.run import TeamOutcome
from sr_bench.errors import SrBenchError
from sr_bench.sharding import Group, Ranks, RankStopped, from_env, my_share
from sr_bench.timing import resolve_device

# measure(teams, device, cpu threads or None) -> one outcome per team, in the order given
Measure = Callable[[list[TeamEntry], torch.device, int | None], list[TeamOutcome]]
SPLIT = "balanced by checkpoint size"


def checkpoint_cost(repo: ChallengeRepo, entry: TeamEntry) -> float:
    """The bytes of the team's checkpoint (1 when it has none or it is missing: such a team fails fast)."""
    path = repo.root / entry.checkpoint if entry.checkpoint else None
    return float(max(path.stat().st_size, 1)) if path is not None and path.is_file() else 1.0


def leads() -> bool:
    """True in a plain process and on rank 0 of a torchrun launch: the one process that prints the summary."""
    ranks = from_env()
    return ranks is None or ranks.rank == 0


def measure_teams(repo: ChallengeRepo, entries: list[TeamEntry], device: str, measure: Measure,
                  on_split: Callable[[str], None] | None = None) -> list[TeamOutcome] | None:
    """Every team's outcome, in the order of ``entries``; under torchrun, None on every rank but 0.

    A plain process measures every team on ``resolve_device(device)`` with the default threads.
    """
    ranks = from_env()
    if ranks is None:
        return measure(entries, resolve_device(device), None)
    return _sharded(repo, entries, ranks, device, measure, on_split)


def _sharded(repo: ChallengeRepo, entries: list[TeamEntry], ranks: Ranks, requested: str, measure: Measure,
             on_split: Callable[[str], None] | None) -> list[TeamOutcome] | None:
    device = ranks.device(requested)
    threads = ranks.cpu_threads() if device.type == "cpu" else None
    mine = my_share(entries, cost=lambda e: checkpoint_cost(repo, e), ranks=ranks)
    with Group(ranks, device) as group:
        try:
            gathered = group.gather(measure(mine, device, threads))
        except RankStopped:
            raise SrBenchError(
                f"{ranks} ({device}) stopped: another rank failed or was killed (its error is above); the records "
                "of finished teams are kept: fix the cause and rerun the same command (recorded teams are skipped)"
            ) from None
        except SrBenchError as exc:
            exc.where = f"{ranks} ({device})"
            raise
    if gathered is None:
        return None
    if on_split is not None:
        shares = "; ".join(f"rank {r}: {', '.join(str(o.entry.team_id) for o in g) or 'none'}"
                           for r, g in enumerate(gathered))
        on_split(f"teams shared by {ranks.world_size} ranks ({SPLIT}): {shares}")
        if message := mixed_devices([o for g in gathered for o in g]):
            on_split(message)
    by_id = {o.entry.team_id: o for g in gathered for o in g}
    return [by_id[e.team_id] for e in entries]


def mixed_devices(outcomes: list[TeamOutcome]) -> str | None:
    """A warning when the teams measured now ran on different device models: their runtimes do not compare."""
    models = set()
    for o in outcomes:
        if o.record is not None and not o.skipped:
            env = o.record.get("env") or {}
            models.add(str(env.get("gpu_name") if str(o.record.get("device")).startswith("cuda") else env.get("cpu_model")))
    if len(models) < 2:
        return None
    return (f"the teams ran on {len(models)} device models ({'; '.join(sorted(models))}): compare runtimes only "
            "between teams measured on the same one (each record's env names it)")
