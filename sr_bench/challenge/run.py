"""Replaying a challenge: every team built by the repository's ``select_model``, measured as ``srbench`` does.

Profiles go through :func:`sr_bench.profile.run_profile` and quality through :func:`sr_bench.evaluate.evaluate`,
so a team's record is the same record ``srbench profile`` / ``srbench eval`` writes, plus a ``challenge`` block
(repo, year, team_id, name, data_range, tile, shims, the sha256 of the weights as built). The year's official
protocol sets the FLOPs headline (2022/2023: module hooks; 2024+: fvcore) and the timing rules. A team that
cannot be built or measured becomes a failed row with a one-line reason; the others go on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from sr_bench.challenge.build import BuiltTeam, TeamFailure, build_team
from sr_bench.challenge.repo import ChallengeRepo, TeamEntry
from sr_bench.datasets import Dataset, dataset_status, locate_dataset, resolve_dataset
from sr_bench.errors import DatasetError, ResultsError, SrBenchError
from sr_bench.evaluate import EvalOptions, evaluate
from sr_bench.models import CheckpointInfo, LoadedModel
from sr_bench.profile import ProfileRequest, run_profile
from sr_bench.results import load_records, write_record
from sr_bench.user_code import describe
from sr_bench.zoo import ModelSpec

SCALE = 4  # every NTIRE ESR challenge is x4
YearSet = tuple[str, str]  # a dataset name (sr_bench.datasets) and the HR folder that year's test_demo.py reads
# each year's (valid, test) sets, as its official test_demo.py lays them out under --data_dir
YEAR_DATASETS: dict[int, tuple[YearSet, YearSet]] = {
    2022: (("div2k-valid", "DIV2K_valid_HR"), ("div2k-test", "DIV2K_test_HR")),
    2023: (("div2k-valid", "DIV2K_valid_HR"), ("ntire2023-hybrid-test", "LSDIR_DIV2K_test_HR")),
    2024: (("ntire-valid", "LSDIR_DIV2K_valid_HR"), ("ntire-test", "LSDIR_DIV2K_test_HR")),
}
DEFAULT_DATASETS: tuple[YearSet, YearSet] = (  # 2025 on, and a year test_demo.py does not name
    ("ntire-valid", "DIV2K_LSDIR_valid_HR"), ("ntire-test", "DIV2K_LSDIR_test_HR"))


def year_protocol(year: int | None) -> str:
    """The official measuring protocol of a challenge year (unknown year: the newest harness)."""
    return "ntire2023" if year is not None and year <= 2023 else "ntire2024"


def year_datasets(year: int | None) -> tuple[YearSet, YearSet]:
    """The year's valid and test sets (an unknown year: the newest harness's)."""
    return YEAR_DATASETS.get(year or 0, DEFAULT_DATASETS)


@dataclass
class TeamOutcome:
    """One team's row: a record (measured now or found from an earlier run) or a failure reason."""

    entry: TeamEntry
    record: dict | None = None
    path: Path | None = None
    reason: str | None = None
    skipped: bool = False  # an earlier record was kept (no --force)

    @property
    def name(self) -> str:
        if self.record is not None:
            return self.record["challenge"]["name"]
        return self.entry.name or f"team {self.entry.team_id:02}"


def state_sha256(module: torch.nn.Module) -> str:
    """A fingerprint of the weights as built (names, dtypes, shapes, bytes): which checkpoint entry was loaded."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def challenge_block(repo: ChallengeRepo, built: BuiltTeam) -> dict:
    return {
        "repo": str(repo.root),
        "year": repo.year,
        "team_id": built.entry.team_id,
        "name": built.name,
        "data_range": built.data_range,
        "tile": built.tile,
        "shims": built.shims,
        "module": built.entry.module,
        "model_class": type(built.module).__name__,
        "state_sha256": state_sha256(built.module),
    }


def as_loaded(repo: ChallengeRepo, built: BuiltTeam, device: torch.device) -> LoadedModel:
    """The built team in the shape every measurement takes (weights came from the team's own code)."""
    module = built.module
    spec = ModelSpec(
        name=built.name, builder=lambda _scale: module, scales=(SCALE,), data_range=built.data_range,
        description=f"team {built.entry.team_id} of {repo.label}", source=str(repo.root), origin="challenge",
    )
    notices = [f"{built.name}: CPU shims for .cuda() were used ({built.shims['cuda_calls']} call(s))"] \
        if built.shims else []
    return LoadedModel(module.to(device).eval(), spec, SCALE, built.data_range, CheckpointInfo(None, None, None),
                       notices=notices, shims=built.shims)


def existing_records(results_dir: Path, repo: ChallengeRepo, kind: str) -> dict[tuple[int, str | None], dict]:
    """(team id, dataset) -> newest record of this repository and kind (dataset is None for profiles)."""
    try:
        records, _ = load_records(results_dir)
    except ResultsError:  # no folder or no records yet
        return {}
    found = {}
    for record in records:  # oldest first, so the newest wins
        block = record.get("challenge")
        if record.get("kind") == kind and isinstance(block, dict) and block.get("repo") == str(repo.root):
            found[(block.get("team_id"), record.get("dataset"))] = record
    return found


def _measure(fn: Callable[[], TeamOutcome], entry: TeamEntry) -> TeamOutcome:
    """Run one team's measurement; its failure is its row, never the end of the replay."""
    try:
        return fn()
    except TeamFailure as exc:
        return TeamOutcome(entry, reason=str(exc))
    except torch.OutOfMemoryError as exc:
        return TeamOutcome(entry, reason=f"out of memory ({describe(exc)})")
    except SrBenchError as exc:
        return TeamOutcome(entry, reason=str(exc))
    except KeyboardInterrupt:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001  (the team's code runs inside every measurement)
        return TeamOutcome(entry, reason=f"failed while measuring: {describe(exc)}")


def profile_teams(
    repo: ChallengeRepo,
    entries: list[TeamEntry],
    device: torch.device,
    results_dir: Path,
    *,
    runtime: bool = True,
    force: bool = False,
    threads: int | None = None,
    on_team: Callable[[TeamOutcome], None] | None = None,
) -> list[TeamOutcome]:
    """One profile record per team (``--force`` redoes teams that already have one); ``threads`` None: all cores."""
    done = existing_records(results_dir, repo, "profile")
    request = ProfileRequest(device=device, protocol=year_protocol(repo.year), runtime=runtime, threads=threads)
    outcomes = []
    for entry in entries:
        if not force and (entry.team_id, None) in done:
            outcome = TeamOutcome(entry, done[(entry.team_id, None)], skipped=True)
        else:
            outcome = _measure(lambda e=entry: _profile_one(repo, e, device, request, results_dir), entry)
        outcomes.append(outcome)
        if on_team:
            on_team(outcome)
    return outcomes


def _profile_one(repo: ChallengeRepo, entry: TeamEntry, device: torch.device, request: ProfileRequest,
                 results_dir: Path) -> TeamOutcome:
    built = build_team(repo, entry, device)
    block = challenge_block(repo, built)
    result = run_profile(as_loaded(repo, built, device), request)
    record = {**result.record, "challenge": block}
    return TeamOutcome(entry, record, write_record(record, results_dir))


def challenge_datasets(repo: ChallengeRepo, data_dir: Path) -> tuple[list[Dataset], list[str]]:
    """The year's valid and test sets under ``data_dir``, each in the folder that year's ``test_demo.py`` reads
    when it is there (another known layout of the same set otherwise, with a notice). A missing test split is a
    notice; a missing valid split an error naming the folders the year expects and the challenge sets found."""
    year = f"NTIRE {repo.year}" if repo.year else "the newest NTIRE"
    found, notices = [], []
    for split, (name, hr) in zip(("valid", "test"), year_datasets(repo.year)):
        try:
            locate_dataset(name, data_dir, SCALE, prefer=hr)
        except DatasetError:
            if split == "valid":
                raise DatasetError(_no_valid_set(year, name, hr, data_dir)) from None
            notices.append(f"no {year} test set under {data_dir} ({name}: {hr} not found); evaluating the valid "
                           "split only")
            continue
        dataset = resolve_dataset(name, data_dir, SCALE, prefer=hr)
        if dataset.hr_dir.name.lower() != hr.lower():
            notices.append(f"{name}: {year}'s test_demo.py reads {hr}; using {dataset.hr_dir} found instead")
        notices += dataset.notices
        found.append(dataset)
    return found, notices


def _no_valid_set(year: str, name: str, hr: str, data_dir: Path) -> str:
    present = [s.spec.name for s in dataset_status(data_dir, SCALE)
               if s.spec.split is not None and s.hr_dir is not None and not s.builtin]
    there = f"; it holds {', '.join(present)} (another year's sets? pass --year)" if present else ""
    return (f"{year} valid set {name!r} not found under {data_dir}: its test_demo.py reads {hr} and "
            f"{hr.removesuffix('_HR')}_LR there{there}; pass the --data-dir that holds them")


def eval_teams(
    repo: ChallengeRepo,
    entries: list[TeamEntry],
    datasets: list[Dataset],
    device: torch.device,
    options: EvalOptions,
    *,
    force: bool = False,
    on_team: Callable[[TeamOutcome], None] | None = None,
) -> list[TeamOutcome]:
    """Quality and per-image runtime of each team on each dataset, with the team's own data_range and tile."""
    done = existing_records(options.results_dir, repo, "eval")
    outcomes = []
    for entry in entries:
        todo = [d for d in datasets if force or (entry.team_id, d.name) not in done]
        if not todo:
            outcome = TeamOutcome(entry, done[(entry.team_id, datasets[0].name)], skipped=True)
        else:
            outcome = _measure(lambda e=entry, t=todo: _eval_one(repo, e, t, device, options), entry)
        outcomes.append(outcome)
        if on_team:
            on_team(outcome)
    return outcomes


def _eval_one(repo: ChallengeRepo, entry: TeamEntry, datasets: list[Dataset], device: torch.device,
              options: EvalOptions) -> TeamOutcome:
    built = build_team(repo, entry, device)
    block = challenge_block(repo, built)
    loaded = as_loaded(repo, built, device)
    team_options = replace(options, tile=built.tile, protocol=year_protocol(repo.year))
    record, path = None, None
    for dataset in datasets:
        result = evaluate(loaded, dataset, device, team_options)
        record = {**result.record, "challenge": block}
        path = write_record(record, options.results_dir)
        if path != result.path:  # the stored record is replaced by the one carrying the challenge block
            result.path.unlink(missing_ok=True)
    return TeamOutcome(entry, record, path)
