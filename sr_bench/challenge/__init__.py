"""``srbench challenge``: replay an NTIRE ESR challenge repository team by team (see ``repo``, ``build``, ``run``).

Listing reads the repository without running it; profiling and evaluating run its ``select_model``, as the
official harness does.
"""

from sr_bench.challenge.build import BuiltTeam, TeamFailure, build_team
from sr_bench.challenge.repo import ChallengeRepo, TeamEntry, read_repo
from sr_bench.challenge.run import TeamOutcome, challenge_datasets, eval_teams, profile_teams, year_protocol

__all__ = [
    "BuiltTeam",
    "ChallengeRepo",
    "TeamEntry",
    "TeamFailure",
    "TeamOutcome",
    "build_team",
    "challenge_datasets",
    "eval_teams",
    "profile_teams",
    "read_repo",
    "year_protocol",
]
