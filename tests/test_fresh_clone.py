"""A fresh clone or install works on its own: built-in checkpoints and Set5, instant start-up, new-user hints."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import REPO, TEST_DATA, require_file, set5_quality_refs
from sr_bench import checkpoint_files, paths
from sr_bench.cli.app import app
from sr_bench.datasets import check_pairs, custom_dataset, dataset_status, resolve_dataset
from sr_bench.errors import DatasetError, UnknownModelError
from sr_bench.models import resolve_model
from sr_bench.results import write_record
from sr_bench.zoo import ModelSpec, get_spec, registry

RFDN_FILE = "team00_rfdn.pth"


def run(*args: object, width: int = 80):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": str(width)})


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No SRBENCH_WEIGHTS / SRBENCH_DATA, an empty working folder: only what ships with srbench is there."""
    for env in ("SRBENCH_WEIGHTS", "SRBENCH_DATA", checkpoint_files.URL_BASE_ENV, "SRBENCH_DATA_URL"):
        monkeypatch.delenv(env, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


# ------------------------------------------------------------------------------------------- package data


def test_every_asset_file_is_package_data() -> None:
    """`pip install .` (not only editable) must carry every shipped asset: each file matches a package-data glob."""
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["sr_bench"]
    assets = [p.relative_to(REPO / "sr_bench").as_posix() for p in (REPO / "sr_bench/assets").rglob("*") if p.is_file()]
    assert len(assets) == 14  # 2 checkpoints + 10 Set5 PNGs + 2 READMEs
    assert [a for a in assets if not any(fnmatch(a, g) for g in globs)] == []


def test_shipped_checkpoints_are_the_official_files() -> None:
    for name in ("lgvan", "rfdn"):
        ckpt = get_spec(name).checkpoint(4)
        status = checkpoint_files.checkpoint_status(ckpt, paths.builtin_weights_dir() / ckpt.file)
        assert status.verified is True and status.builtin


def test_shipped_references_are_complete_and_equal_the_spec() -> None:
    """tests/data holds copies of the spec's golden facts: complete, and (where the specs are found) identical."""
    refs = set5_quality_refs()
    assert {m: sorted(r) for m, r in refs.items()} == {
        m: sorted(["baby", "bird", "butterfly", "head", "woman", "mean"]) for m in ("lgvan", "rfdn")
    }
    assert all(len(values) == 4 for rows in refs.values() for values in rows.values())
    specs = Path(os.environ.get("SRBENCH_SPECS") or REPO.parent / "shared" / "specs")
    for name in ("quality_refs.md", "results_2023_lgvan.txt"):
        spec = require_file(specs / name)
        assert (TEST_DATA / name).read_bytes() == spec.read_bytes(), name


# ------------------------------------------------------------------------------------- built-in weights


def test_builtin_checkpoint_is_found_last_and_used(bare: Path) -> None:
    loaded = resolve_model("rfdn")
    assert loaded.checkpoint.path == paths.builtin_weights_dir() / RFDN_FILE and loaded.checkpoint.verified
    assert loaded.notices == []  # the real pretrained model: no random-weights notice
    own = bare / "weights"
    own.mkdir()
    shutil.copy(paths.builtin_weights_dir() / RFDN_FILE, own / RFDN_FILE)
    assert checkpoint_files.find_checkpoint(get_spec("rfdn").checkpoint(4)).resolve() == own / RFDN_FILE


def test_listings_say_built_in_verified_and_never_cut_a_file_name(bare: Path) -> None:
    for command in (("weights", "list"), ("models",)):
        result = run(*command)
        assert result.exit_code == 0, result.output
        assert result.stdout.count("built-in (verified)") == 2, result.stdout
        assert "…" not in result.stdout
    listing = run("weights", "list").stdout
    for row in checkpoint_files.catalogue():
        assert row["file"] in listing, row["file"]
    rows = json.loads(run("weights", "list", "--json").stdout)
    lgvan = next(r for r in rows if r["model"] == "lgvan")
    assert lgvan["builtin"] is True and lgvan["status"] == "verified"


def test_models_counts_params_on_the_built_network_plugins_included(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torch import nn

    spec = ModelSpec(name="tiny-plugin", builder=lambda scale: nn.Conv2d(3, 3 * scale * scale, 3), scales=(2,),
                     data_range=1.0, param_counts={2: 1}, origin="plugin")  # a wrong published count
    monkeypatch.setitem(registry._REGISTRY, spec.name, spec)
    rows = {(r["model"], r["scale"]): r for r in json.loads(run("models", "--json").stdout)}
    assert rows[("tiny-plugin", 2)]["params"] == 3 * 12 * 9 + 12
    assert rows[("lgvan", 4)]["params"] == 118_243 and rows[("dlgsanet-light", 3)]["params"] == 751_683


# --------------------------------------------------------------------------------------------- built-in Set5


def test_builtin_set5_is_used_when_the_data_root_has_none(tmp_path: Path) -> None:
    ds = resolve_dataset("set5", tmp_path, 4)
    assert ds.hr_dir == paths.builtin_data_root() / "Set5" / "HR" and ds.lr_source == "files"
    assert [p.name for p in ds.pairs] == ["baby", "bird", "butterfly", "head", "woman"]
    status = {s.spec.name: s for s in dataset_status(tmp_path)}
    assert status["set5"].state == "built-in" and status["set5"].found == 5


def test_a_data_root_with_its_own_set5_wins(tmp_path: Path) -> None:
    own = tmp_path / "Set5" / "HR"
    own.mkdir(parents=True)
    shutil.copy(paths.builtin_data_root() / "Set5/HR/bird.png", own / "bird.png")
    ds = resolve_dataset("set5", tmp_path, 4)
    assert ds.hr_dir == own and ds.lr_source == "generated" and [p.name for p in ds.pairs] == ["bird"]
    assert {s.spec.name: s.state for s in dataset_status(tmp_path)}["set5"] == "partial"


def test_datasets_lists_set5_as_built_in(bare: Path) -> None:
    result = run("datasets", width=120)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if " set5 " in line)
    assert "built-in" in line and "5/5" in line and "built-in Set5/LR_bicubic/X4" in line
    row = next(r for r in json.loads(run("datasets", "--json").stdout) if r["name"] == "set5")
    assert row["builtin"] is True and row["state"] == "built-in"


FAST = ("--device", "cpu", "--threads", "1", "--protocol", "ntire2023", "--limit", "1")


def test_eval_without_a_dataset_runs_on_set5_with_one_notice(bare: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = run("eval", "--model", "rfdn", *FAST, "--results", tmp_path / "res", "--json", out)
    assert result.exit_code == 0, result.output
    notices = [line for line in result.stderr.splitlines() if "no --dataset" in line]
    assert notices == ["Note: no --dataset given: evaluating on set5 (srbench's built-in copy); pass --dataset "
                       "NAME for another set"], result.stderr
    record = json.loads(out.read_text())
    assert record["dataset"] == "set5" and record["images"][0]["name"] == "baby"
    assert abs(record["images"][0]["psnr_rgb"] - set5_quality_refs()["rfdn"]["baby"]["psnr_rgb"]) <= 1e-4


# --------------------------------------------------------------------------------------------- start-up


def _imported_by(*args: str) -> set[str]:
    """Heavy modules present in ``sys.modules`` after running ``srbench ARGS`` in a fresh interpreter."""
    code = (
        "import sys\nfrom sr_bench.cli.app import main\nsys.argv = ['srbench', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(m for m in ('torch', 'fvcore', 'numpy') if m in sys.modules), file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)
    return set(done.stderr.strip().splitlines()[-1].split()) if done.stderr.strip() else set()


def test_help_does_not_import_torch() -> None:
    assert _imported_by("--help") == set()


@pytest.mark.parametrize("args", [("--version",), ("report",), ("weights", "list"), ("datasets",)])
def test_light_commands_do_not_import_torch(args: tuple[str, ...], tmp_path: Path) -> None:
    args = (*args, "--results", str(tmp_path)) if args == ("report",) else args
    assert not _imported_by(*args) & {"torch", "fvcore"}


def test_models_imports_torch_only_to_build_networks() -> None:
    assert _imported_by("models") & {"torch", "fvcore"} == {"torch"}


# ------------------------------------------------------------------------------------ what a new user meets


def test_failed_weights_pull_says_how_to_work_offline_and_leaves_no_folder(bare: Path, monkeypatch) -> None:
    monkeypatch.setenv(checkpoint_files.URL_BASE_ENV, "http://127.0.0.1:9")  # nothing listens on the discard port
    result = run("weights", "pull", "rfdn", "--dir", bare / "weights")
    line = result.stderr
    assert result.exit_code != 0 and line.startswith("Error: download from http://127.0.0.1:9/team00_rfdn.pth")
    assert "--weights FILE" in line and "$SRBENCH_WEIGHTS" in line and "SRBENCH_WEIGHTS_URL=<mirror URL>" in line
    assert not (bare / "weights").exists()


def test_failed_dataset_pull_names_the_set_and_the_way_offline(bare: Path, monkeypatch) -> None:
    result = run("datasets", "pull", "div2k-valid", "--base-url", "http://127.0.0.1:9")
    line = result.stderr
    assert result.exit_code != 0 and line.startswith("Error: download from http://127.0.0.1:9/"), line
    assert "rerun 'srbench datasets pull div2k-valid' to resume" in line and "--data-root DIR" in line
    assert list(bare.iterdir()) == []  # no datasets/.downloads left behind


def test_written_files_honour_the_umask(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = bare / "mirror"
    mirror.mkdir()
    shutil.copy(paths.builtin_weights_dir() / RFDN_FILE, mirror / RFDN_FILE)
    monkeypatch.setenv(checkpoint_files.URL_BASE_ENV, mirror.as_uri())
    old = os.umask(0o022)
    try:
        pulled = checkpoint_files.pull(get_spec("rfdn").checkpoint(4), bare / "w")
        record = write_record({"kind": "profile", "model": "m", "scale": 4}, bare / "results")
        os.umask(0o027)
        strict = write_record({"kind": "profile", "model": "m", "scale": 4}, bare / "results")
    finally:
        os.umask(old)
    assert [stat.S_IMODE(p.stat().st_mode) for p in (pulled, record, strict)] == [0o644, 0o644, 0o640]


def test_scale_hint_does_not_repeat_the_option_given() -> None:
    result = run("profile", "--model", "lgvan", "--scale", "3", "--no-runtime")
    assert result.exit_code != 0
    assert result.stderr.strip() == ("Error: model 'lgvan' does not support x3; supported: x4 "
                                     "(drop --scale for its default x4)")


def test_skipped_image_is_not_told_to_use_skip_bad(tmp_path: Path) -> None:
    hr = tmp_path / "HR"
    hr.mkdir()
    shutil.copy(paths.builtin_data_root() / "Set5/HR/bird.png", hr / "a.png")
    (hr / "b.png").write_bytes(b"not a png")
    ds = custom_dataset(hr, None, 4)
    with pytest.raises(DatasetError, match=r"--skip-bad$"):
        check_pairs(ds.pairs, 4)
    _, bad = check_pairs(ds.pairs, 4, skip_bad=True)
    assert bad[0].name == "b" and "cannot read image" in bad[0].error and "--skip-bad" not in bad[0].error


def test_model_file_without_a_class_lists_the_classes_there() -> None:
    target = str(TEST_DATA / "user_net.py")
    with pytest.raises(UnknownModelError) as info:
        resolve_model(target)
    message = str(info.value)
    assert message.startswith(f"--model {target} names a file but no class: add ':ClassName' (classes there: ")
    assert "TinyNet" in message and "FactorNet" in message and "srbench models" not in message


def test_eval_error_is_the_first_stderr_line(bare: Path) -> None:
    result = run("eval", "--model", "rfdn", "--dataset", "set15", "--device", "cpu")
    assert result.exit_code == 1 and result.stderr.startswith("Error: unknown dataset 'set15'"), repr(result.stderr)


NAN_NET = """
import torch
from torch import nn


class Nan(nn.Module):
    def __init__(self, scale=4):
        super().__init__()
        self.conv = nn.Conv2d(3, 3 * scale * scale, 1)
        self.up = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.up(self.conv(x)) * float("nan")
"""


@pytest.fixture
def nan_net(tmp_path: Path) -> tuple[str, Path]:
    """A user model whose every output is NaN, with a (finite) checkpoint of its own: (--model, --weights)."""
    (tmp_path / "um.py").write_text(NAN_NET)
    model = f"{tmp_path / 'um.py'}:Nan"
    torch.save(resolve_model(model).module.state_dict(), tmp_path / "nan.pth")
    return model, tmp_path / "nan.pth"


def test_an_eval_error_inside_the_image_loop_is_the_first_stderr_line(bare: Path, nan_net: tuple[str, Path]) -> None:
    """No progress frame (drawn only on a terminal) comes before an error raised while the images run."""
    model, weights = nan_net
    result = run("eval", "--model", model, "--weights", weights, "--dataset", "set5", "--device", "cpu",
                 "--threads", "1", "--results", bare / "results")
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: {model} gave a non-finite output for baby"), \
        repr(result.stderr)


def test_lr_generation_notice_once_per_dataset_not_per_model(bare: Path, tmp_path: Path) -> None:
    hr = tmp_path / "HR"
    hr.mkdir()
    crop = np.array(Image.open(paths.builtin_data_root() / "Set5/HR/bird.png"))[:96, :96]
    Image.fromarray(crop).save(hr / "crop.png")
    result = run("eval", "--model", "rfdn,lgvan", "--hr", hr, *FAST, "--results", tmp_path / "res")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("LR is generated") == 1, result.stderr
    assert "rfdn x4 on custom" in result.stdout and "lgvan x4 on custom" in result.stdout


def test_profile_shows_the_builtin_checkpoint_verified(bare: Path, tmp_path: Path) -> None:
    result = run("profile", "--model", "rfdn", "--size", "32", "--no-runtime", "--results", tmp_path, width=200)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "Checkpoint" in line)
    assert "built-in (verified)" in row and str(paths.builtin_weights_dir() / RFDN_FILE) in row
    assert "random weights" not in result.stderr
