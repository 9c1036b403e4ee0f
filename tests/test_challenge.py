"""Real submissions (issue 11): every case of the table through the user path and through `srbench challenge`.

The repository is the fake one of ``fake_challenge`` (written for these tests); expected numbers come from its
architectures, never from srbench's counter.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from fake_challenge import EXPECTED, FAILED, REP_TRAINING, ROUTE_SEED1, YEAR, checkpoints, make_repo
from sr_bench.challenge.build import build_team
from sr_bench.challenge.repo import read_repo
from sr_bench.challenge.run import challenge_datasets
from sr_bench.cli.app import app
from sr_bench.images import write_png
from sr_bench.models import LoadOptions, resolve_model
from sr_bench.results import load_records


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(autouse=True)
def _wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "240")  # whole table cells, so the tests can read them


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("challenge") / "NTIRE2025_ESR")


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """The record's state_sha256, recomputed here from a state dict."""
    digest = hashlib.sha256()
    for key, t in sorted(state.items()):
        t = t.contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def complexity(record: dict) -> tuple[int, int, int, int]:
    return record["params"], record["flops"]["fvcore"], record["activations"], record["num_conv"]


def expected(team_id: int) -> tuple[int, int, int, int]:
    e = EXPECTED[team_id]
    return e.params, e.flops, e.activations, e.num_conv


# ------------------------------------------------------------------------------------------------ user path


def profile_user(repo: Path, team_id: int, tmp_path: Path, *extra: object, runtime: bool = False):
    e = EXPECTED[team_id]
    out = tmp_path / f"team{team_id}.json"
    args = ["profile", "--model", f"{repo / e.file}:{e.model_class}", "--weights", repo / e.checkpoint,
            "--json", out, "--results", tmp_path / "res", *extra]
    if e.data_range != 1.0:
        args += ["--data-range", f"{e.data_range:g}"]
    result = run(*args, *([] if runtime else ["--no-runtime"]))
    return result, (json.loads(out.read_text()) if out.is_file() else None)


def test_user_cuda_in_constructor_runs_on_cpu_with_a_notice(repo, tmp_path):
    assert not torch.cuda.is_available()
    result, record = profile_user(repo, 3, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert complexity(record) == expected(3)
    assert record["shims"]["calls"] == {"Tensor.cuda": 1, "Module.cuda": 1}
    assert "no CUDA here, so 2 .cuda()/.to('cuda') call(s) in the model's code returned the object unchanged" \
        in result.stderr
    assert "cuda" not in vars(torch.Tensor) and torch.Tensor.cuda is torch._C.TensorBase.cuda  # restored
    assert nn.Module.cuda.__qualname__ == "Module.cuda"


def test_user_non_strict_load_counts_the_keys(repo, tmp_path):
    result, _ = profile_user(repo, 1, tmp_path)
    assert result.exit_code == 1
    assert ("does not fit" in result.stderr and "1 missing (e.g. scale_hint); 1 unexpected (e.g. teacher.weight)"
            in result.stderr and "--no-strict" in result.stderr)
    result, record = profile_user(repo, 1, tmp_path, "--no-strict")
    assert result.exit_code == 0, result.stderr
    assert complexity(record) == expected(1)
    assert record["checkpoint"]["load"] == {"strict": False, "missing": 1, "unexpected": 1,
                                            "first_missing": ["scale_hint"], "first_unexpected": ["teacher.weight"]}
    assert "loaded non-strictly: 1 missing (e.g. scale_hint); 1 unexpected (e.g. teacher.weight)" in result.stderr


def test_user_switch_deploy_after_load_measures_the_deployed_graph(repo, tmp_path):
    result, training = profile_user(repo, 2, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert complexity(training) == REP_TRAINING
    result, record = profile_user(repo, 2, tmp_path, "--after-load", "switch_deploy")
    assert result.exit_code == 0, result.stderr
    assert complexity(record) == expected(2)
    assert record["checkpoint"]["after_load"] == {"switch_deploy": 1}
    result, _ = profile_user(repo, 2, tmp_path, "--after-load", "fuse")
    assert result.exit_code == 1 and "--after-load fuse: no module of" in result.stderr


def test_user_model_with_its_own_load_state_dict(repo, tmp_path):
    result, record = profile_user(repo, 5, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert complexity(record) == expected(5)
    e = EXPECTED[5]
    loaded = resolve_model(f"{repo / e.file}:{e.model_class}", weights=repo / e.checkpoint)
    ckpt = checkpoints()["team05_ownload.pth"]
    assert torch.equal(loaded.module.body.weight, ckpt["body_a.weight"] + ckpt["body_b.weight"])


def test_user_overridden_to_falls_back_to_eager(repo, tmp_path):
    result, record = profile_user(repo, 6, tmp_path, runtime=True)
    assert result.exit_code == 0, result.stderr
    assert record["exec"]["label"].startswith("eager") or record["exec"]["memory_format"] == "contiguous"
    assert "--exec auto: channels_last fails on this model (TypeError" in result.stderr
    assert complexity(record) == expected(6)


def test_user_checkpoint_key_chooses_params_over_params_ema(repo, tmp_path):
    e = EXPECTED[4]
    target = f"{repo / e.file}:{e.model_class}"
    ckpt = checkpoints()["team04_key.pth"]
    default = resolve_model(target, weights=repo / e.checkpoint)
    chosen = resolve_model(target, weights=repo / e.checkpoint, load=LoadOptions(checkpoint_key="params"))
    assert default.checkpoint.key == "params_ema" and chosen.checkpoint.key == "params"
    assert all(torch.equal(chosen.module.state_dict()[k], v) for k, v in ckpt["params"].items())
    result, record = profile_user(repo, 4, tmp_path, "--checkpoint-key", "params")
    assert result.exit_code == 0 and record["checkpoint"]["key"] == "params"
    result, _ = profile_user(repo, 4, tmp_path, "--checkpoint-key", "weights")
    assert result.exit_code == 1 and "has no 'weights' entry holding a state dict" in result.stderr


def test_user_input_dependent_routing_is_reported(repo, tmp_path):
    result, record = profile_user(repo, 7, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert complexity(record) == expected(7)
    dep = record["input_dependent"]
    assert dep["flops"]["fvcore"] == [EXPECTED[7].flops, ROUTE_SEED1[1]]
    assert dep["flops"]["ntire2023"] == [EXPECTED[7].flops, ROUTE_SEED1[1]]
    assert dep["activations"] == [EXPECTED[7].activations, ROUTE_SEED1[2]]
    assert any(w.startswith("the count depends on the input") for w in record["warnings"])
    assert "input-dependent" in result.stdout


def test_user_missing_package_is_one_line(repo, tmp_path):
    result = run("profile", "--model", f"{repo / 'models/team09_Mamba.py'}:MambaSR", "--no-runtime")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "failed in import: ModuleNotFoundError: No module named 'mamba_ssm'" in lines[0]


# ------------------------------------------------------------------------------------------------ challenge


def test_list_reads_select_model_without_running_code(repo, tmp_path):
    copy = tmp_path / "copy"
    make_repo(copy)
    demo = copy / "test_demo.py"
    demo.write_text("open('RAN', 'w').close()\n" + demo.read_text())  # would leave a file if executed
    result = run("challenge", "list", copy, "--json")
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert not (copy / "RAN").exists() and not (Path.cwd() / "RAN").exists()
    assert listed["year"] == YEAR
    assert [t["team_id"] for t in listed["teams"]] == list(range(10))
    assert [t["name"] for t in listed["teams"]][:3] == ["00_PlainSR", "01_LooseSR", "02_RepSR"]
    assert listed["teams"][0]["data_range"] == 255.0 and listed["teams"][1]["data_range"] == 1.0
    assert listed["teams"][9] | {"line": 0} == {
        "team_id": 9, "name": "09_MambaSR", "data_range": 1.0, "module": "models.team09_Mamba",
        "model_class": "MambaSR", "checkpoint": "model_zoo/team09_mamba.pth", "tile": None, "line": 0}
    table = run("challenge", "list", copy)
    assert "team08_gone.pth (missing)" in table.stdout


def test_challenge_profile_one_record_per_team_and_failed_rows(repo, tmp_path):
    results = tmp_path / "res"
    before = (os.getcwd(), list(sys.path), torch.Tensor.cuda, nn.Module.to, torch.load)
    result = run("challenge", "profile", repo, "--no-runtime", "--results", results)
    assert result.exit_code == 0, result.stderr
    assert (os.getcwd(), list(sys.path), torch.Tensor.cuda, nn.Module.to, torch.load) == before
    assert not [m for m in sys.modules if m == "models" or m.startswith("models.")]
    records = {r["challenge"]["team_id"]: r for r in load_records(results)[0]}
    assert sorted(records) == sorted(EXPECTED)
    for team_id, e in EXPECTED.items():
        rec = records[team_id]
        assert complexity(rec) == expected(team_id), team_id
        assert rec["flops"]["ntire2023"] == e.flops
        assert rec["flops_headline"] == "fvcore" and rec["protocol"] == "ntire2024"
        assert rec["model"] == e.name
        block = rec["challenge"]
        assert (block["repo"], block["year"], block["name"], block["data_range"], block["tile"]) == \
            (str(repo.resolve()), YEAR, e.name, e.data_range, None)
    assert records[3]["challenge"]["shims"]["calls"] == {"Tensor.cuda": 1, "Module.cuda": 2, "torch.load": 1}
    assert records[0]["challenge"]["shims"] == {"active": True, "cuda_calls": 0, "loads_mapped": 1,
                                                "calls": {"torch.load": 1}}
    ckpt = checkpoints()
    assert records[4]["challenge"]["state_sha256"] == fingerprint(ckpt["team04_key.pth"]["params"])
    assert records[4]["challenge"]["state_sha256"] != fingerprint(ckpt["team04_key.pth"]["params_ema"])
    assert records[7]["input_dependent"]["flops"]["fvcore"] == [EXPECTED[7].flops, ROUTE_SEED1[1]]
    assert f"{EXPECTED[7].flops / 1e9:.4f}–{ROUTE_SEED1[1] / 1e9:.4f}" in result.stdout
    for team_id, reason in FAILED.items():
        line = next(line for line in result.stderr.splitlines() if line.startswith(f"Warning: team {team_id:02}"))
        assert reason in line, line
    assert "8 team(s) profiled, 2 failed" in result.stderr

    again = run("challenge", "profile", repo, "--no-runtime", "--results", results, "--teams", "0,4")
    assert again.exit_code == 0 and "kept (earlier record" in again.stdout
    assert len(load_records(results)[0]) == len(EXPECTED)
    forced = run("challenge", "profile", repo, "--no-runtime", "--results", results, "--teams", "0", "--force")
    assert forced.exit_code == 0 and len(load_records(results)[0]) == len(EXPECTED) + 1


def squash(text: str) -> str:
    return "".join(text.split())


def rendered_table(stdout: str) -> tuple[list[int], dict[str, dict[str, str]]]:
    """The first rich table in ``stdout``: each column's width (from its top border) and each team's row as
    {header: cell}, a cell's lines joined by spaces, so text that wrapped or folded over lines reads whole."""
    lines = stdout.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("┏"))
    head_end = next(i for i in range(top, len(lines)) if lines[i].startswith("┡"))
    bottom = next(i for i in range(head_end, len(lines)) if lines[i].startswith("└"))
    widths = [len(part) for part in lines[top][1:-1].split("┳")]

    def cells(line: str, bar: str) -> list[str]:
        return [cell.strip() for cell in line[1:-1].split(bar)]

    header_lines = [cells(line, "┃") for line in lines[top + 1:head_end]]
    headers = [" ".join(filter(None, column)) for column in zip(*header_lines)]
    rows: dict[str, list[list[str]]] = {}
    for line in lines[head_end + 1:bottom]:
        row = cells(line, "│")
        if row[0]:  # a team's first line; the lines after it until the next id continue its cells
            rows[row[0]] = [[] for _ in row]
        for parts, cell in zip(rows[list(rows)[-1]], row):
            parts.append(cell)
    return widths, {team: {h: " ".join(filter(None, parts)) for h, parts in zip(headers, row)}
                    for team, row in rows.items()}


@pytest.mark.parametrize("command", ["profile", "eval"])
def test_challenge_tables_are_readable_at_80_columns(repo, tmp_path, monkeypatch, command):
    monkeypatch.setenv("COLUMNS", "80")
    if command == "profile":
        result = run("challenge", "profile", repo, "--no-runtime", "--results", tmp_path, "--teams", "0,7,8,9")
    else:
        _valid_set(tmp_path / "data", count=1)
        result = run("challenge", "eval", repo, "--data-dir", tmp_path / "data", "--results", tmp_path,
                     "--teams", "0,8,9")
    assert result.exit_code == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    widths, rows = rendered_table(result.stdout)
    assert min(widths) >= 3, result.stdout  # one character or more between the borders: no column is empty
    names = {team.team_id: team.name for team in read_repo(repo).teams}
    for team_id, excerpt in FAILED.items():
        warning = next(line for line in result.stderr.splitlines() if line.startswith(f"Warning: team {team_id:02}"))
        reason = warning.split("): ", 1)[1]
        assert excerpt in reason
        row = rows[str(team_id)]
        assert row["name"] == names[team_id] and row["status"].startswith("failed: ")
        assert squash(row["status"]) == squash(f"failed: {reason}"), row  # all of it, wrapped, in the row
    record = {r["challenge"]["team_id"]: r for r in load_records(tmp_path)[0]}
    assert rows["0"]["name"] == "00_PlainSR" and rows["0"]["status"] == "measured"
    if command == "profile":
        assert rows["0"]["Params [M]"] == f"{EXPECTED[0].params / 1e6:.4f}"
        assert squash(rows["7"]["FLOPs [G]"]) == f"{EXPECTED[7].flops / 1e9:.4f}–{ROUTE_SEED1[1] / 1e9:.4f}"
        assert "Conv" not in rows["0"] and "runtime ms" not in rows["0"]  # --no-runtime: no times to show
        assert "Conv,runtimemsleftouttofit80columns" in squash(result.stdout)
    else:
        assert rows["0"]["PSNR"] == f"{record[0]['mean']['psnr_rgb']:.2f}"
        assert rows["0"]["SSIM"] == f"{record[0]['mean']['ssim_rgb']:.4f}"
        assert "runtimemsleftouttofit80columns" in squash(result.stdout)


def test_build_team_restores_everything_on_failure(repo):
    challenge = read_repo(repo)
    with pytest.raises(Exception, match="needs the package 'mamba_ssm'"):
        build_team(challenge, challenge.teams[9], torch.device("cpu"))
    assert torch.load.__name__ == "load" and not [m for m in sys.modules if m.split(".")[0] == "models"]


def test_unknown_team_and_not_a_repo(repo, tmp_path):
    result = run("challenge", "profile", repo, "--teams", "0,42")
    assert result.exit_code == 2 and "has no team 42 in select_model (teams: 0, 1, 2" in result.stderr
    result = run("challenge", "list", tmp_path)
    assert result.exit_code == 2 and "no test_demo.py" in result.stderr


def _split(root: Path, prefix: str, count: int = 2, lr_name: str = "{}x4.png") -> None:
    """A tiny NTIRE split: random 32x32 ``{prefix}_HR/NNNN.png`` and their x4 LR in ``{prefix}_LR`` (``lr_name``)."""
    rng = np.random.default_rng(3)
    for i in range(count):
        hr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        write_png(root / f"{prefix}_HR" / f"{i:04d}.png", hr)
        write_png(root / f"{prefix}_LR" / lr_name.format(f"{i:04d}"), hr[::4, ::4])


def _valid_set(root: Path, count: int = 2) -> None:
    _split(root, "DIV2K_LSDIR_valid", count)


def test_challenge_eval_and_report_with_scores(repo, tmp_path):
    data, results = tmp_path / "data", tmp_path / "res"
    _valid_set(data)
    teams = "0,3,4,8"
    assert run("challenge", "profile", repo, "--results", results, "--teams", teams, "--no-runtime").exit_code == 0
    result = run("challenge", "eval", repo, "--data-dir", data, "--results", results, "--teams", teams)
    assert result.exit_code == 0, result.stderr
    evals = {r["challenge"]["team_id"]: r for r in load_records(results)[0] if r["kind"] == "eval"}
    assert sorted(evals) == [0, 3, 4]
    assert {r["dataset"] for r in evals.values()} == {"ntire-valid"}
    assert evals[0]["data_range"] == 255.0 and evals[4]["data_range"] == 1.0
    assert evals[4]["challenge"]["state_sha256"] == fingerprint(checkpoints()["team04_key.pth"]["params"])

    # two images of a 200-image set: a partial eval, which the table uses only when told to
    report = run("report", "--results", results, "--test", "none", "--score", "2025", "--baseline", "00_PlainSR",
                 "--format", "txt", "--allow-partial")
    assert report.exit_code == 0, report.stderr
    header, *lines = [[cell.strip() for cell in line.split("\t")] for line in report.stdout.splitlines()
                      if line.strip()]
    rows = {cells[0]: dict(zip(header, cells)) for cells in lines}
    assert set(rows) == {"00_PlainSR", "03_CudaSR", "04_KeySR"}
    base_time = evals[0]["runtime_ms"]["mean"]
    for team_id, name in ((0, "00_PlainSR"), (4, "04_KeySR")):
        e, rt = EXPECTED[team_id], evals[team_id]["runtime_ms"]["mean"]
        score = 0.7 * math.exp(2 * rt / base_time) + 0.15 * math.exp(2 * e.flops / EXPECTED[0].flops) \
            + 0.15 * math.exp(2 * e.params / EXPECTED[0].params)
        assert rows[name]["Score"] == f"{score:.4f}", (score, rows[name])

    official = tmp_path / "results.json"
    e0 = EXPECTED[0]
    official.write_text(json.dumps({
        "00_PlainSR": {"valid_ave_psnr": 10.0, "num_parameters": e0.params / 1e6, "flops": e0.flops / 1e9 + 0.5,
                       "num_conv": 2, "valid_ave_runtime": 1.0},
        "99_Elsewhere": {"valid_ave_psnr": 30.0},
    }))
    compared = run("report", "--results", results, "--test", "none", "--allow-partial", "--compare-official", official)
    assert compared.exit_code == 0, compared.stderr
    lines = compared.stdout.splitlines()
    assert lines[0] == "Model\tColumn\tOfficial\tsrbench\tDiff"
    psnr = evals[0]["mean"]["psnr_rgb"]
    assert f"00_PlainSR\tVal PSNR\t10.0000\t{psnr:.4f}\t{psnr - 10:+.4f}" in lines
    assert f"00_PlainSR\tParams [M]\t{e0.params / 1e6:.4f}\t{e0.params / 1e6:.4f}\t+0.0000" in lines
    assert f"00_PlainSR\tFLOPs [G]\t{e0.flops / 1e9 + 0.5:.4f}\t{e0.flops / 1e9:.4f}\t-0.5000" in lines
    assert "00_PlainSR\tConv\t2.0000\t2.0000\t+0.0000" in lines
    assert "99_Elsewhere: in the official file only" in compared.stderr
    assert "04_KeySR: measured by srbench only" in compared.stderr


# each year's (valid, test) folders and LR names as its official test_demo.py reads them, and the sets they are
YEAR_LAYOUTS = {
    2022: ((("DIV2K_valid", "{}x4.png"), ("DIV2K_test", "{}.png")), ("div2k-valid", "div2k-test")),
    2023: ((("DIV2K_valid", "{}x4.png"), ("LSDIR_DIV2K_test", "{}x4.png")), ("div2k-valid", "ntire2023-hybrid-test")),
    2024: ((("LSDIR_DIV2K_valid", "{}x4.png"), ("LSDIR_DIV2K_test", "{}x4.png")), ("ntire-valid", "ntire-test")),
    2025: ((("DIV2K_LSDIR_valid", "{}x4.png"), ("DIV2K_LSDIR_test", "{}x4.png")), ("ntire-valid", "ntire-test")),
}


@pytest.mark.parametrize("year", sorted(YEAR_LAYOUTS))
def test_challenge_datasets_are_the_years_valid_and_test_sets(repo, tmp_path, year):
    folders, names = YEAR_LAYOUTS[year]
    for prefix, lr_name in folders:
        _split(tmp_path, prefix, lr_name=lr_name)
    datasets, notices = challenge_datasets(read_repo(repo, year), tmp_path)
    assert [d.name for d in datasets] == list(names)
    assert [(d.hr_dir.name, d.lr_dir.name) for d in datasets] == [(f"{p}_HR", f"{p}_LR") for p, _ in folders]
    assert all(len(d.pairs) == 2 for d in datasets)
    assert not [n for n in notices if "instead" in n or "valid split only" in n]


def test_challenge_datasets_prefer_the_years_own_folders(repo, tmp_path):
    for prefix in ("LSDIR_DIV2K_valid", "LSDIR_DIV2K_test", "DIV2K_LSDIR_valid", "DIV2K_LSDIR_test"):
        _split(tmp_path / "both", prefix, count=1)  # the 2024 and 2025 sets side by side
    for year, prefix in ((2024, "LSDIR_DIV2K"), (2025, "DIV2K_LSDIR")):
        datasets, _ = challenge_datasets(read_repo(repo, year), tmp_path / "both")
        assert [d.hr_dir.name for d in datasets] == [f"{prefix}_valid_HR", f"{prefix}_test_HR"]
    only = tmp_path / "only2025"
    _split(only, "DIV2K_LSDIR_valid", count=1)
    datasets, notices = challenge_datasets(read_repo(repo, 2024), only)
    assert [d.hr_dir for d in datasets] == [only / "DIV2K_LSDIR_valid_HR"]  # the same set under 2025's name
    assert (f"ntire-valid: NTIRE 2024's test_demo.py reads LSDIR_DIV2K_valid_HR; using {only / 'DIV2K_LSDIR_valid_HR'} "
            "found instead") in notices
    assert (f"no NTIRE 2024 test set under {only} (ntire-test: LSDIR_DIV2K_test_HR not found); evaluating the valid "
            "split only") in notices


def test_challenge_eval_on_the_2023_layout_and_without_the_years_valid_set(repo, tmp_path):
    data, results = tmp_path / "data", tmp_path / "res"
    _split(data, "DIV2K_valid")
    _split(data, "LSDIR_DIV2K_test")
    result = run("challenge", "eval", repo, "--year", "2023", "--data-dir", data, "--results", results, "--teams", "0")
    assert result.exit_code == 0, result.stderr
    evals = [r for r in load_records(results)[0] if r["kind"] == "eval"]
    assert sorted(r["dataset"] for r in evals) == ["div2k-valid", "ntire2023-hybrid-test"]
    assert {(r["protocol"], r["challenge"]["year"], len(r["images"])) for r in evals} == {("ntire2023", 2023, 2)}

    missing = run("challenge", "eval", repo, "--data-dir", data, "--results", results, "--teams", "0")  # YEAR: 2025
    assert missing.exit_code == 1
    assert missing.stderr.strip() == (
        f"Error: NTIRE {YEAR} valid set 'ntire-valid' not found under {data}: its test_demo.py reads "
        "DIV2K_LSDIR_valid_HR and DIV2K_LSDIR_valid_LR there; it holds div2k-valid, ntire2023-hybrid-test, ntire-test "
        "(another year's sets? pass --year); pass the --data-dir that holds them")


def test_shims_never_active_with_cuda(monkeypatch):
    from sr_bench.user_code import cpu_cuda_shims

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    original = torch.Tensor.cuda
    with cpu_cuda_shims() as report:
        assert torch.Tensor.cuda is original
    assert not report.active and report.notice("m") is None
