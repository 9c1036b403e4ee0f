"""``srbench challenge``: replay an NTIRE ESR challenge repository team by team.

``repo`` reads a repository without running it (``challenge list``); ``build`` runs its ``select_model`` for one
team, as the official harness does; ``run`` measures every team through the same code as ``srbench profile`` and
``srbench eval``. Only ``repo`` is imported here, so listing stays light (no torch).
"""

from sr_bench.challenge.repo import ChallengeRepo, TeamEntry, read_repo

__all__ = ["ChallengeRepo", "TeamEntry", "read_repo"]
