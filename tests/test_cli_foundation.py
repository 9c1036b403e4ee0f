"""The root CLI: version, help everywhere, `srbench models`, `srbench weights`, and one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from sr_bench import __version__
from sr_bench.cli.app import app
from sr_bench.images import write_png

LGVAN_SHA = "fe201971de6fb18e62fd17d7c10817cf406d68b7aa2adb5f00474a066b05e0ec"
COMMANDS = {"models", "weights", "upscale", "profile", "eval", "datasets", "report", "env", "challenge"}


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_error_line(result) -> str:
    """A failure: non-zero exit, exactly one non-empty stderr line starting with 'Error: ', no traceback."""
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and len(lines[0]) > len("Error: ")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


@pytest.fixture
def shared_weights(weights_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$SRBENCH_WEIGHTS at the shared checkpoints, run from an empty folder."""
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(weights_dir))
    monkeypatch.chdir(tmp_path)
    return weights_dir


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SRBENCH_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)


def _command_paths(cmd: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, sub in getattr(cmd, "commands", {}).items():
        paths += _command_paths(sub, (*prefix, name))
    return paths


COMMAND_PATHS = _command_paths(typer.main.get_command(app))


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"srbench {__version__}"


def test_every_command_is_mounted():
    assert {p[0] for p in COMMAND_PATHS if len(p) == 1} == COMMANDS
    assert {p for p in COMMAND_PATHS if p[:1] == ("weights",)} >= {("weights", "list"), ("weights", "verify"), ("weights", "pull")}


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "root")
def test_help(path):
    result = run(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: srbench" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("path", "text"),
    [(("weights", "pull"), "(default: the user cache)"), (("weights", "verify"), "(default: every zoo model)")],
)
def test_help_keeps_bracketed_defaults(path, text):
    """Help strings say '[default: ...]'; rich markup must not swallow it as a tag."""
    result = run(*path, "--help")
    assert result.exit_code == 0
    assert text in " ".join(result.stdout.replace("│", " ").split())


def test_no_arguments_shows_help():
    result = run()
    assert "Usage: srbench" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_models_lists_the_zoo(no_weights):
    result = run("models")
    assert result.exit_code == 0, result.output
    for name in ("dlgsanet-light", "dlgsanet-tiny", "lgvan", "rfdn"):
        assert name in result.stdout
    assert "118,243" in result.stdout and "433,448" in result.stdout


def test_models_json_with_shared_weights(shared_weights):
    result = run("models", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    status = {(r["model"], r["scale"]): r["status"] for r in rows}
    assert status[("lgvan", 4)] == "verified"
    assert status[("rfdn", 4)] == "verified"
    assert status[("dlgsanet-tiny", 2)] == "missing"
    assert len(rows) == 8
    lgvan = next(r for r in rows if r["model"] == "lgvan")
    assert lgvan["sha256"] == lgvan["expected_sha256"] == LGVAN_SHA
    assert Path(lgvan["path"]) == shared_weights / "team18_LGVAN.pth"
    assert (lgvan["params"], lgvan["data_range"]) == (118_243, 1.0)


def test_weights_list_json_matches_models_json(shared_weights):
    listed = run("weights", "list", "--json")
    assert listed.exit_code == 0
    models = json.loads(run("models", "--json").stdout)
    assert json.loads(listed.stdout) == [{k: v for k, v in row.items() if k != "params"} for row in models]


def test_weights_without_subcommand_lists(shared_weights):
    result = run("weights")
    assert result.exit_code == 0, result.output
    assert "team18_LGVAN.pth" in result.stdout and "verified" in result.stdout


def test_weights_verify_lgvan(shared_weights):
    result = run("weights", "verify", "lgvan")
    assert result.exit_code == 0, result.output
    assert "lgvan x4: ok (official sha256, loads strictly)" in result.stdout
    assert result.stderr == ""


def test_weights_verify_all(shared_weights):
    result = run("weights", "verify")
    assert result.exit_code == 0, result.output
    assert "rfdn x4: ok" in result.stdout
    assert "dlgsanet-tiny x2: missing" in result.stderr


def test_weights_verify_named_model_without_checkpoint_fails(no_weights, no_builtin_weights):
    result = run("weights", "verify", "rfdn")
    line = assert_one_error_line(result)
    assert result.exit_code == 1
    assert line.startswith("Error: rfdn x4: no checkpoint found")


# --- one-line errors ---------------------------------------------------------------------------------------------


def test_unknown_model():
    line = assert_one_error_line(run("weights", "verify", "lgvn"))
    assert line == "Error: unknown model 'lgvn': did you mean lgvan?"


def test_unknown_option_is_a_usage_error():
    result = run("models", "--bogus")
    line = assert_one_error_line(result)
    assert result.exit_code == 2
    assert "--bogus" in line and "srbench models --help" in line


def test_unknown_command_is_a_usage_error():
    result = run("frobnicate")
    line = assert_one_error_line(result)
    assert result.exit_code == 2
    assert "frobnicate" in line


def test_missing_argument_is_a_usage_error():
    result = run("weights", "pull")
    line = assert_one_error_line(result)
    assert result.exit_code == 2
    assert "srbench weights pull --help" in line


def test_bad_scale_is_one_line():
    result = run("weights", "pull", "lgvan", "--scale", "2", "--dir", "x")
    line = assert_one_error_line(result)
    assert "does not support x2; supported: x4" in line


def test_upscale_with_missing_weights_file(tmp_path):
    write_png(tmp_path / "in.png", np.zeros((8, 8, 3), dtype=np.uint8))
    result = run("upscale", "--model", "rfdn", "--weights", tmp_path / "nope.pth", "--device", "cpu",
                 "--out", tmp_path / "sr", tmp_path / "in.png")
    line = assert_one_error_line(result)
    assert "checkpoint not found" in line and "nope.pth" in line
    assert not (tmp_path / "sr").exists() or os.listdir(tmp_path / "sr") == []


def test_upscale_checks_images_before_loading_the_model(tmp_path):
    result = run("upscale", "--model", "rfdn", "--weights", tmp_path / "nope.pth", "--out", tmp_path / "sr",
                 tmp_path / "missing.png")
    assert "image not found" in assert_one_error_line(result)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("command", ["upscale", "profile"])
def test_malicious_weights_refused_through_the_cli(tmp_path, command):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pth"
    torch.save({"params": {"w": torch.zeros(1)}, "x": _Payload(marker)}, evil)
    args = ["--model", "rfdn", "--weights", evil, "--device", "cpu"]
    if command == "upscale":
        write_png(tmp_path / "in.png", np.zeros((8, 8, 3), dtype=np.uint8))
        args += ["--out", tmp_path / "sr", tmp_path / "in.png"]
    else:
        args += ["--size", "16", "--no-runtime", "--results", tmp_path / "results"]
    line = assert_one_error_line(run(command, *args))
    assert "refused to load" in line and "arbitrary code" in line
    assert not marker.exists()
