"""``srbench challenge profile/eval`` under ``torchrun`` (2 gloo ranks on CPU) against one process: the teams are
shared, each record is written once by the rank that measured it, the numbers are those of one process, rank 0's
summary lists every team (failed rows too) in team order, and a rerun keeps the recorded teams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fake_challenge import EXPECTED, make_repo
from sr_bench.challenge.repo import read_repo
from sr_bench.challenge.run import TeamOutcome
from sr_bench.challenge.sharded import mixed_devices
from sr_bench.cli.app import app
from sr_bench.env import logical_cores
from sr_bench.results import load_records
from test_challenge import _valid_set

ROOT = Path(__file__).resolve().parents[1]
TEAMS = "0,1,2,3,8"  # 8: a missing checkpoint (a failed row)
STABLE = ("params", "flops", "activations", "num_conv", "flops_headline", "protocol", "model", "input_dependent")


def _torchrun(*args: object) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "240"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "sr_bench", "challenge", *[str(a) for a in args]]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def _by_team(results: Path, kind: str) -> dict[int, dict]:
    records = [r for r in load_records(results)[0] if r["kind"] == kind]
    by_team = {r["challenge"]["team_id"]: r for r in records}
    assert len(by_team) == len(records)  # each team's record written once
    return by_team


def _rows(stdout: str) -> list[str]:
    """The table's rows, as their first cell (the team id); a row's wrapped lines after its first have none."""
    ids = [line.split("│")[1].strip() for line in stdout.splitlines() if line.startswith("│")]
    return [i for i in ids if i]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("challenge") / "NTIRE2025_ESR")


def test_two_ranks_profile_the_teams_of_one_process(repo: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sharded = tmp_path / "sharded"
    proc = _torchrun("profile", repo, "--teams", TEAMS, "--no-runtime", "--results", sharded)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "teams shared by 2 ranks (balanced by checkpoint size): rank 0: 0, 2; rank 1: 1, 3, 8" in proc.stderr
    assert _rows(proc.stdout) == ["0", "1", "2", "3", "8"]  # one summary, on rank 0, in team order
    assert proc.stdout.count("challenge profile: one record per team") == 1
    assert "08_GoneSR" in proc.stdout and "failed: missing file model_zoo/team08_gone.pth" in proc.stdout
    assert proc.stderr.count("Warning: team 08 (08_GoneSR): missing file model_zoo/team08_gone.pth") == 1
    assert "4 team(s) profiled, 1 failed" in proc.stderr

    monkeypatch.setenv("COLUMNS", "240")
    single = tmp_path / "single"
    one = CliRunner().invoke(app, ["challenge", "profile", str(repo), "--teams", TEAMS, "--no-runtime",
                                   "--results", str(single)])
    assert one.exit_code == 0, one.stderr
    shared, alone = _by_team(sharded, "profile"), _by_team(single, "profile")
    assert sorted(shared) == sorted(alone) == [0, 1, 2, 3]
    for team_id, record in shared.items():
        assert {k: record.get(k) for k in STABLE} == {k: alone[team_id].get(k) for k in STABLE}, team_id
        assert record["challenge"] == alone[team_id]["challenge"]
        assert (record["params"], record["flops"]["fvcore"]) == (EXPECTED[team_id].params, EXPECTED[team_id].flops)
        assert record["exec"]["threads"] == max(1, logical_cores() // 2)  # each rank: its share of the cores

    again = _torchrun("profile", repo, "--teams", f"{TEAMS},4", "--no-runtime", "--results", sharded)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("kept (earlier record") == 4 and "5 team(s) profiled, 1 failed" in again.stderr
    assert sorted(_by_team(sharded, "profile")) == [0, 1, 2, 3, 4]  # only team 4 measured now


def test_two_ranks_evaluate_the_teams_of_one_process(repo: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    _valid_set(data)
    sharded, single = tmp_path / "sharded", tmp_path / "single"
    proc = _torchrun("eval", repo, "--data-dir", data, "--teams", "0,4,8", "--results", sharded)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _rows(proc.stdout) == ["0", "4", "8"]
    assert "2 team(s) evaluated, 1 failed" in proc.stderr
    monkeypatch.setenv("COLUMNS", "240")
    one = CliRunner().invoke(app, ["challenge", "eval", str(repo), "--data-dir", str(data), "--teams", "0,4,8",
                                   "--results", str(single)])
    assert one.exit_code == 0, one.stderr
    shared, alone = _by_team(sharded, "eval"), _by_team(single, "eval")
    assert sorted(shared) == sorted(alone) == [0, 4]
    for team_id, record in shared.items():
        assert [{k: r[k] for k in ("name", "psnr_rgb", "ssim_rgb")} for r in record["images"]] == \
            [{k: r[k] for k in ("name", "psnr_rgb", "ssim_rgb")} for r in alone[team_id]["images"]], team_id
        assert record["challenge"] == alone[team_id]["challenge"]
    assert json.dumps(shared[0]["mean"]["psnr_rgb"]) == json.dumps(alone[0]["mean"]["psnr_rgb"])


KILL = """import os, pathlib, signal, time
if os.environ.get("RANK") == "1":  # once rank 0 has recorded its two teams (or after 2 minutes), rank 1 is killed
    deadline = time.time() + 120
    while len(list(pathlib.Path({folder!r}).glob("*.json"))) < 2 and time.time() < deadline:
        time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_rank_stops_the_replay_and_the_rerun_keeps_finished_teams(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "NTIRE2025_ESR")
    team01 = repo / EXPECTED[1].file  # rank 1's first team (the split of the first test)
    source = team01.read_text()
    results = tmp_path / "results"
    team01.write_text(KILL.format(folder=str(results / "profile")) + source)  # rank 1 dies importing team 1
    proc = _torchrun("profile", repo, "--teams", TEAMS, "--no-runtime", "--results", results)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]  # the rest is torchrun's report
    assert errors == ["Error: rank 0/2 (cpu) stopped: another rank failed or was killed (its error is above); the "
                      "records of finished teams are kept: fix the cause and rerun the same command (recorded teams "
                      "are skipped)"]
    assert sorted(_by_team(results, "profile")) == [0, 2]  # rank 0's teams, written before it waited for rank 1

    team01.write_text(source)
    again = _torchrun("profile", repo, "--teams", TEAMS, "--no-runtime", "--results", results)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("kept (earlier record") == 2 and "4 team(s) profiled, 1 failed" in again.stderr
    assert sorted(_by_team(results, "profile")) == [0, 1, 2, 3]


def test_teams_on_different_device_models_are_named(repo: Path) -> None:
    a, b, c = read_repo(repo).teams[:3]
    h100 = {"device": "cuda:0", "env": {"gpu_name": "NVIDIA H100", "cpu_model": "Xeon"}}
    a100 = {"device": "cuda", "env": {"gpu_name": "NVIDIA A100", "cpu_model": "Xeon"}}
    assert mixed_devices([TeamOutcome(a, h100), TeamOutcome(b, h100), TeamOutcome(c, reason="x")]) is None
    assert mixed_devices([TeamOutcome(a, h100), TeamOutcome(b, a100, skipped=True)]) is None  # an earlier run's
    assert mixed_devices([TeamOutcome(a, h100), TeamOutcome(b, a100)]) == (
        "the teams ran on 2 device models (NVIDIA A100; NVIDIA H100): compare runtimes only between teams measured "
        "on the same one (each record's env names it)")
