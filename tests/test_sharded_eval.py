"""``srbench eval`` under ``torchrun`` (2 gloo ranks on CPU) against one process: same numbers, one record, resume,
and a killed rank. Small on purpose: three images per set, one thread per rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import require_dataset
from sr_bench.eval_all import evaluate_all
from sr_bench.eval_config import EvalConfig, EvalOptions
from sr_bench.eval_sharded import agree_on_mode
from sr_bench.evaluate import PreparedRun
from sr_bench.execution import EAGER, ExecMode, prepare
from sr_bench.sharding import Ranks, balanced_split, from_env, my_share

REPO = Path(__file__).resolve().parents[1]
METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")
LIMIT = 3


def test_balanced_split_is_deterministic_and_balanced() -> None:
    costs = [16384, 5184, 4096, 4900, 4902, 9000, 9000]
    parts = balanced_split(costs, 2)
    assert parts == balanced_split(list(costs), 2) == [[0, 1, 3], [2, 4, 5, 6]]  # LPT by hand: loads 26468 and 26998
    assert sorted(i for p in parts for i in p) == list(range(len(costs)))
    loads = [sum(costs[i] for i in p) for p in parts]
    assert abs(loads[0] - loads[1]) <= max(costs)
    ranks = Ranks(rank=1, world_size=2, local_rank=1, local_world_size=2)
    assert my_share(list("abcdefg"), cost=lambda x: costs["abcdefg".index(x)], ranks=ranks) == ["c", "e", "f", "g"]
    assert balanced_split([1.0], 3) == [[0], [], []]


def test_from_env_reads_the_torchrun_launch() -> None:
    assert from_env({}) is None and from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert from_env(env) == Ranks(rank=3, world_size=4, local_rank=1, local_world_size=2)


def _torchrun(args: list[str], weights_dir: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(REPO), "SRBENCH_WEIGHTS": str(weights_dir), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "sr_bench", "eval", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env | (extra_env or {}), timeout=600)


def _records(results: Path) -> dict[str, dict]:
    return {r["dataset"]: r for r in (json.loads(p.read_text()) for p in sorted((results / "eval").glob("*.json")))}


@pytest.fixture(scope="module")
def sharded(data_dir: Path, weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One torchrun eval of RFDN on the first images of Set5 and Set14, with the arguments it ran with."""
    require_dataset(data_dir, "Set14")
    results = tmp_path_factory.mktemp("sharded") / "results"
    args = ["--model", "rfdn", "--dataset", "set5,set14", "--data-root", str(data_dir), "--device", "cpu",
            "--exec", "eager", "--threads", "1", "--limit", str(LIMIT), "--results", str(results)]
    proc = _torchrun(args, weights_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results, args


def test_two_ranks_give_the_numbers_of_one_process(sharded: tuple[Path, list[str]], data_dir: Path,
                                                    weights_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    results, _ = sharded
    records = _records(results)
    assert sorted(records) == ["set14", "set5"]  # one merged record per dataset, written by rank 0 only
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(weights_dir))
    single = evaluate_all(EvalConfig(EvalOptions(results_dir=tmp_path, exec="eager", threads=1, limit=LIMIT),
                                     data_dir, models=["rfdn"], datasets=["set5", "set14"], device="cpu"))
    for one in (r.record for r in single):
        merged = records[one["dataset"]]
        assert [r["name"] for r in merged["images"]] == [r["name"] for r in one["images"]]  # dataset order
        for a, b in zip(merged["images"], one["images"]):
            assert {k: a[k] for k in METRICS} == {k: b[k] for k in METRICS}, a["name"]  # exactly equal
        assert merged["mean"]["psnr_rgb"] == one["mean"]["psnr_rgb"]
        assert {r["rank"] for r in merged["images"]} == {0, 1} and {r["device"] for r in merged["images"]} == {"cpu"}
        shards = merged["shards"]
        assert [s["rank"] for s in shards] == [0, 1] and sum(s["images"] for s in shards) == LIMIT
        assert merged["memory_mib"] == max(s["memory"]["peak_mib"] for s in shards)
        assert merged["sharding"] == {"world_size": 2, "split": "balanced by LR pixel count", "runtime_comparable": True}
        assert merged["runtime_ms"]["n"] == LIMIT and all(s["runtime_ms"]["n"] == s["images"] for s in shards)
        assert all(s["run_log"].endswith(f"-rank{s['rank']}of2.jsonl") for s in shards)
        assert merged["gpu_conditions"] is None and "shards[].gpu_conditions" in merged["gpu_conditions_reason"]
        assert [(s["gpu_conditions"], s["gpu_conditions_reason"]) for s in shards] == \
            [(None, "CPU run: there are no GPU clocks or processes to watch")] * 2  # each rank's own guard block


def test_resume_of_a_sharded_run_continues_every_rank(sharded: tuple[Path, list[str]], weights_dir: Path) -> None:
    results, args = sharded
    before = _records(results)["set5"]
    log = Path(next(s for s in before["shards"] if s["images"] > 1)["run_log"])
    lines = log.read_text().splitlines()
    dropped = json.loads(lines[-2])["name"]  # the last image row (the last line is the segment)
    log.write_text("\n".join(lines[:-2]) + "\n")  # as if that rank was killed before finishing it
    for old in (results / "eval").glob("*.json"):
        old.unlink()
    proc = _torchrun([*args, "--resume"], weights_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = _records(results)["set5"]
    assert after["resumed"] is True
    assert [{k: r[k] for k in ("name", *METRICS)} for r in after["images"]] == \
        [{k: r[k] for k in ("name", *METRICS)} for r in before["images"]]
    segments = [json.loads(line) for line in log.read_text().splitlines() if '"eval-segment"' in line]
    assert [s["forwards"] for s in segments][-1] == 1 and dropped in log.read_text()


KILLER = '''
import os, signal
import torch
from torch import nn


class Killer(nn.Module):
    """x4 bilinear; rank 1 is killed (SIGKILL) in its first forward."""

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.scale = scale

    def forward(self, x):
        if os.environ.get("RANK") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return nn.functional.interpolate(x, scale_factor=self.scale, mode="bilinear") * self.w
'''


def test_a_killed_rank_stops_the_run_with_a_clear_line(data_dir: Path, weights_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "killer.py"
    model.write_text(KILLER)
    import torch

    torch.save({"w": torch.ones(1)}, tmp_path / "killer.pth")
    proc = _torchrun(["--model", f"{model}:Killer", "--weights", str(tmp_path / "killer.pth"), "--dataset", "set5",
                      "--data-root", str(data_dir), "--device", "cpu", "--exec", "eager", "--threads", "1",
                      "--protocol", "ntire2023", "--results", str(tmp_path / "results")], weights_dir)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]  # the rest is torchrun's report
    assert errors == ["Error: rank 0/2 (cpu) stopped: another rank failed or was killed (its error is above); finished "
                      "images are kept in every rank's run log: fix the cause and rerun the same command with --resume"]
    assert not list((tmp_path / "results").glob("eval/*.json"))


def _errors(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("Error:")]  # the rest is torchrun's report


def test_a_failure_every_rank_shares_is_printed_once(data_dir: Path, weights_dir: Path, tmp_path: Path) -> None:
    unknown = _torchrun(["--model", "rfdn", "--dataset", "nosuch", "--data-root", str(data_dir), "--device", "cpu",
                         "--results", str(tmp_path)], weights_dir)
    assert unknown.returncode != 0
    assert len(_errors(unknown)) == 1 and _errors(unknown)[0].startswith("Error: unknown dataset 'nosuch'; known:")
    bad_option = _torchrun(["--model", "rfdn", "--limit", "0"], weights_dir)
    assert bad_option.returncode != 0
    assert _errors(bad_option) == ["Error: Invalid value for '--limit': Input should be greater than or equal to 1 "
                                   "(see 'srbench eval --help')"]


NAN_ON_RANK_1 = '''
import os
import torch
from torch import nn


class NanOnRank1(nn.Module):
    """x4 bilinear, whose output is NaN on rank 1 only: a failure of that rank's own."""

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.scale = scale

    def forward(self, x):
        y = nn.functional.interpolate(x, scale_factor=self.scale, mode="bilinear") * self.w
        return y * float("nan") if os.environ.get("RANK") == "1" else y
'''


def test_a_ranks_own_failure_is_printed_by_that_rank(data_dir: Path, weights_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "nan_on_rank1.py"
    model.write_text(NAN_ON_RANK_1)
    import torch

    torch.save({"w": torch.ones(1)}, tmp_path / "w.pth")
    proc = _torchrun(["--model", f"{model}:NanOnRank1", "--weights", str(tmp_path / "w.pth"), "--dataset", "set5",
                      "--limit", "2", "--data-root", str(data_dir), "--device", "cpu", "--exec", "eager",
                      "--threads", "1", "--protocol", "ntire2023", "--results", str(tmp_path / "results")],
                     weights_dir)
    assert proc.returncode != 0
    errors = sorted(_errors(proc))
    assert len(errors) == 2, proc.stderr[-3000:]
    assert errors[0].startswith("Error: rank 0/2 (cpu) stopped: another rank failed or was killed")
    assert errors[1].startswith(f"Error: rank 1/2 (cpu): {model}:NanOnRank1 gave a non-finite output for ")


class _FakeGroup:
    """Stands in for the process group: ``all_gather`` returns the choices the ranks would have made."""

    def __init__(self, choices: list[tuple[ExecMode, dict | None]]) -> None:
        self.choices = choices

    def all_gather(self, value: object) -> list:
        return self.choices


def test_every_rank_runs_the_mode_rank_0_resolved() -> None:
    import torch
    from torch import nn

    loaded = SimpleNamespace(name="net", module=nn.Conv2d(3, 3, 3, padding=1).eval())
    cpu = torch.device("cpu")
    fast = ExecMode(memory_format="channels_last", threads=4)
    probe = {"chosen": "channels_last", "max_abs_diff": 1e-6}
    own = PreparedRun(replace(EAGER, threads=2), {"chosen": "eager"}, prepare(loaded.module, EAGER, cpu))
    notices: list[str] = []
    agreed = agree_on_mode(_FakeGroup([(fast, probe), (own.mode, own.probe)]), loaded, own, cpu,
                           lambda event: notices.append(event.message))
    assert agreed.mode == replace(fast, threads=2) and agreed.model.mode == agreed.mode  # its own thread count
    assert agreed.probe == probe  # the facts behind the mode it runs
    assert notices == ["--exec resolved to channels_last on rank 0 but otherwise on 1 rank(s) (rank 1: eager): "
                       "every rank runs channels_last"]
    same = PreparedRun(replace(fast, threads=2), probe, prepare(loaded.module, fast, cpu))
    notices.clear()
    assert agree_on_mode(_FakeGroup([(fast, probe), (same.mode, probe)]), loaded, same, cpu,
                         lambda event: notices.append(event.message)).model is same.model  # nothing to redo
    assert notices == []


CHANNELS_LAST_OFF_ON_RANK_1 = '''
import os
import torch
from torch import nn


class ChannelsLastOffOnRank1(nn.Module):
    """x4 bilinear, off by 1e-3 in channels_last on rank 1 only: that rank's --exec auto probe picks eager."""

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.scale = scale

    def forward(self, x):
        y = nn.functional.interpolate(x, scale_factor=self.scale, mode="bilinear") * self.w
        return y + 1e-3 if os.environ.get("RANK") == "1" and not x.is_contiguous() else y
'''


def test_ranks_whose_auto_probes_differ_run_rank_0s_mode(data_dir: Path, weights_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "cl_off_on_rank1.py"
    model.write_text(CHANNELS_LAST_OFF_ON_RANK_1)
    import torch

    torch.save({"w": torch.ones(1)}, tmp_path / "w.pth")
    proc = _torchrun(["--model", f"{model}:ChannelsLastOffOnRank1", "--weights", str(tmp_path / "w.pth"),
                      "--dataset", "set5", "--limit", "2", "--data-root", str(data_dir), "--device", "cpu",
                      "--exec", "auto", "--threads", "1", "--results", str(tmp_path / "results")], weights_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = _records(tmp_path / "results").values()
    assert record["exec"]["memory_format"] == "channels_last" and record["exec"]["probe"]["chosen"] == "channels_last"
    assert {r["rank"] for r in record["images"]} == {0, 1}
    assert all("-channels_last" in Path(s["run_log"]).name for s in record["shards"])  # rank 1 ran it too
    assert "every rank runs channels_last" in " ".join((proc.stdout + proc.stderr).split())
