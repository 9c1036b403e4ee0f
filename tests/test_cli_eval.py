"""``srbench eval`` and ``srbench datasets`` through Typer's CliRunner on the root app."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import re
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import require_dataset

from sr_bench import datasets as datasets_mod
from sr_bench.cli.app import app
from sr_bench.datasets import get_dataset_spec


def run(*args: object, width: int = 80):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": str(width)})


def error_line(result) -> str:
    """A failure prints exactly one non-empty stderr line, starting with 'Error: ', and no traceback."""
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def env(weights_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Shared checkpoints and data, run from an empty folder; returns the results folder."""
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(weights_dir))
    monkeypatch.setenv("SRBENCH_DATA", str(data_dir))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "results"


FAST = ("--device", "cpu", "--threads", "1", "--protocol", "ntire2023", "--limit", "1")


def test_eval_several_datasets_one_record_each(env: Path, data_dir: Path) -> None:
    require_dataset(data_dir, "Set14")
    result = run("eval", "--model", "rfdn", "--dataset", "set5,set14", *FAST, "--results", env)
    assert result.exit_code == 0, result.output
    assert "rfdn x4 on set5" in result.stdout and "rfdn x4 on set14" in result.stdout
    assert "LR generated" in result.stdout and "mean" in result.stdout and "peak memory" in result.stdout
    assert "LR is generated from HR" in result.stderr  # set14's notice
    records = sorted(json.loads(p.read_text())["dataset"] for p in (env / "eval").glob("*.json"))
    assert records == ["set14", "set5"]


def test_eval_lgvan_on_set14_with_generated_lr(env: Path, data_dir: Path, tmp_path: Path) -> None:
    require_dataset(data_dir, "Set14")
    out = tmp_path / "lgvan.json"
    result = run("eval", "--model", "lgvan", "--dataset", "set14", "--data-root", data_dir, "--device", "cpu",
                 "--threads", "1", "--limit", "1", "--json", out, "--save-sr", tmp_path / "sr")
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["kind"] == "eval" and record["model"] == "lgvan" and record["dataset"] == "set14"
    assert record["protocol"] == "robust" and record["runtime_ms"]["warmup_samples"]
    assert record["data"]["lr_source"] == "generated" and record["images"][0]["name"] == "baboon"
    assert 20 < record["mean"]["psnr_rgb"] < 30 and record["checkpoint"]["sha256"]
    assert (tmp_path / "sr/lgvan_x4/set14/baboon.png").is_file()


def test_eval_resume_through_the_cli(env: Path, tmp_path: Path) -> None:
    assert run("eval", "-m", "rfdn", "--dataset", "set5", *FAST, "--results", env).exit_code == 0
    out = tmp_path / "r.json"
    args = ["eval", "-m", "rfdn", "--dataset", "set5", *FAST[:-1], "2", "--resume", "--results", env, "--json", out]
    result = run(*args)
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["resumed"] is True and [r["name"] for r in record["images"]] == ["baby", "bird"]


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


def test_a_resume_with_another_checkpoint_key_starts_over_and_equals_a_clean_run(env: Path, tmp_path: Path) -> None:
    """The reviewer's case: after a params_ema run, --checkpoint-key params --resume reused its images (exit 0)."""
    base = ["eval", "-m", "lgvan", "--dataset", "set5", "--exec", "eager", *FAST]
    first, mixed, clean = tmp_path / "first.json", tmp_path / "mixed.json", tmp_path / "clean.json"
    assert run(*base, "--results", env, "--json", first).exit_code == 0
    result = run(*base, "--checkpoint-key", "params", "--resume", "--results", env, "--json", mixed, width=200)
    assert result.exit_code == 0, result.output
    assert "--resume: no finished image of this run in" in _flat(result.stderr)
    assert "the official weights are its 'params_ema' entry" in _flat(result.stderr)
    assert run(*base, "--checkpoint-key", "params", "--results", tmp_path / "other", "--json", clean).exit_code == 0
    first_rec, mixed_rec, clean_rec = (json.loads(p.read_text()) for p in (first, mixed, clean))
    assert mixed_rec["resumed"] is False and mixed_rec["run_log"] != first_rec["run_log"]
    assert (first_rec["checkpoint"]["key"], mixed_rec["checkpoint"]["key"]) == ("params_ema", "params")
    assert mixed_rec["checkpoint"]["official_key"] == "params_ema"
    metrics = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")
    assert [[r[k] for k in metrics] for r in mixed_rec["images"]] == [[r[k] for k in metrics] for r in clean_rec["images"]]
    assert mixed_rec["images"][0]["psnr_rgb"] != first_rec["images"][0]["psnr_rgb"]  # the two entries differ


GAIN_NET = """
import torch
from torch import nn


class Gain(nn.Module):
    def __init__(self, scale=4, gain=1.0):
        super().__init__()
        self.scale, self.gain = scale, gain
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x):
        up = nn.functional.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return up * self.w * self.gain
"""


def test_a_resume_with_other_model_args_or_an_edited_model_file_starts_over(env: Path, tmp_path: Path) -> None:
    net = tmp_path / "um.py"
    net.write_text(GAIN_NET)
    weights = tmp_path / "gain.pth"
    torch.save({"w": torch.ones(1)}, weights)
    base = ["eval", "-m", f"{net}:Gain", "--weights", weights, "--dataset", "set5", "--exec", "eager", *FAST,
            "--results", env]

    def record(*extra: object) -> dict:
        out = tmp_path / "r.json"
        result = run(*base, *extra, "--json", out)
        assert result.exit_code == 0, result.output
        return json.loads(out.read_text())

    first = record("--model-args", '{"gain": 1}')
    assert first["model_args"] == {"gain": 1}
    assert first["model_file_sha256"] == hashlib.sha256(net.read_bytes()).hexdigest()
    half = record("--model-args", '{"gain": 0.5}', "--resume")
    assert half["resumed"] is False and half["images"][0]["psnr_rgb"] < first["images"][0]["psnr_rgb"]
    net.write_text(GAIN_NET.replace("* self.gain", "* self.gain * 0.5"))
    edited = record("--model-args", '{"gain": 1}', "--resume")
    assert edited["resumed"] is False and edited["model_file_sha256"] != first["model_file_sha256"]
    assert edited["images"][0]["psnr_rgb"] == half["images"][0]["psnr_rgb"]
    assert record("--model-args", '{"gain": 1}', "--resume")["resumed"] is True  # the same run again does resume


def test_eval_without_model_runs_every_model_with_a_checkpoint(env: Path, weights_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                no_builtin_weights: None) -> None:
    only = tmp_path / "only-rfdn"
    only.mkdir()
    os.symlink(weights_dir / "team00_rfdn.pth", only / "team00_rfdn.pth")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(only))
    result = run("eval", "--dataset", "set5", *FAST, "--results", env)
    assert result.exit_code == 0, result.output
    assert "rfdn x4 on set5" in result.stdout and "lgvan" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["--model", "rfdn", "--dataset", "set15"], r"Error: unknown dataset 'set15'; known: .*present under .*set5", 1),
        (["--model", "rfdn", "--dataset", "div2k"], r"Error: dataset 'div2k' not found under .*srbench datasets pull", 1),
        (["--model", "rfdn", "--lr", "x"], r"Error: --lr needs --hr", 2),
        (["--model", "rfdn", "--dataset", "set5,set14", "--json", "o.json"], r"Error: --json takes one --model", 2),
        (["--model", "rfdn", "--dataset", "set5", "--tile", "16", "--tile-overlap", "16"], r"Error: --tile-overlap", 2),
        (["--model", "nope", "--dataset", "set5"], r"Error: unknown model 'nope'", 1),
    ],
)
def test_eval_errors_are_one_line(env: Path, args: list[str], message: str, code: int) -> None:
    result = run("eval", *args, "--device", "cpu")
    assert result.exit_code == code
    assert re.match(message, error_line(result))


def test_datasets_lists_found_and_missing(data_dir: Path) -> None:
    require_dataset(data_dir, "Set14"), require_dataset(data_dir, "B100")
    result = run("datasets", "--data-root", data_dir, width=120)
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "present" in lines["set5"] and "Set5/LR_bicubic/X4" in lines["set5"]
    assert "generated" in lines["set14"] and "missing" in lines["div2k-valid"]
    rows = {r["name"]: r for r in json.loads(run("datasets", "list", "--data-root", data_dir, "--json").stdout)}
    assert rows["b100"]["found"] == 100 and rows["b100"]["state"] == "present"
    assert rows["lsdir-valid"]["state"] == "missing" and rows["lsdir-valid"]["pullable"] is True
    default = json.loads(run("datasets", "--data-root", data_dir, "--json").stdout)  # as the README shows it
    assert {r["name"]: r for r in default} == rows


@pytest.fixture
def www(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain http.server on 127.0.0.1 serving a folder."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    thread.join()


def _zip(path: Path, files: dict[str, bytes]) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    path.write_bytes(buf.getvalue())


def test_datasets_pull_from_a_local_server(www: tuple[str, Path], data_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    url, root = www
    set5 = data_dir / "Set5"
    _zip(root / "DIV2K_valid_HR.zip", {"DIV2K_valid_HR/0801.png": (set5 / "HR/baby.png").read_bytes()})
    _zip(root / "DIV2K_valid_LR_bicubic_X4.zip",
         {"DIV2K_valid_LR_bicubic/X4/0801x4.png": (set5 / "LR_bicubic/X4/babyx4.png").read_bytes()})
    official = get_dataset_spec("div2k-valid")
    one_image = replace(official, count=1, archives=tuple(replace(a, images=1) for a in official.archives))
    monkeypatch.setattr(datasets_mod, "get_dataset_spec", lambda name: one_image)  # the CLI reads it here at run time
    result = run("datasets", "pull", "div2k-valid", "--data-root", tmp_path / "data", "--base-url", url)
    assert result.exit_code == 0, result.output
    assert "div2k-valid: 1 images in" in result.stdout and "DIV2K_valid_LR_bicubic/X4" in result.stdout
    assert (tmp_path / "data/DIV2K_valid_HR/0801.png").is_file()


def test_datasets_pull_errors_are_one_line(tmp_path: Path) -> None:
    assert "has no public download" in error_line(run("datasets", "pull", "set14", "--data-root", tmp_path))
    assert "unknown dataset 'nope'" in error_line(run("datasets", "pull", "nope", "--data-root", tmp_path))
