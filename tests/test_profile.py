"""``srbench profile``: the record contract, protocols, golden counts through the CLI, and its errors."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from sr_bench.cli.app import app
from sr_bench.errors import UsageError
from sr_bench.execution import parse_exec
from sr_bench.models import resolve_model
from sr_bench.profile import ProfileRequest, published_check, run_profile
from sr_bench.results import SCHEMA_VERSION
from sr_bench.sizes import parse_size

REQUIRED = ("model", "scale", "input_size", "device", "protocol", "params", "flops", "activations", "num_conv",
            "runtime_ms", "memory_mib", "env", "warnings")
CPU = torch.device("cpu")


@pytest.mark.parametrize(("text", "size"), [("256", (256, 256)), ("180x320", (180, 320)), (" 64 x 48 ", (64, 48)),
                                            ("32×16", (32, 16))])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "abc", "0", "12x0", "-4", "3x4x5", "2.5"])
def test_parse_size_rejects(text):
    with pytest.raises(UsageError, match="--size"):
        parse_size(text)


@pytest.fixture(scope="module")
def rfdn():
    return resolve_model("rfdn")


def test_record_has_the_public_fields(rfdn):
    request = ProfileRequest(device=CPU, size=(24, 20), warmup=0, repeats=3, threads=1)
    record = run_profile(rfdn, request).record
    assert set(REQUIRED) <= set(record)
    assert record["input_size"] == [24, 20]
    assert set(record["flops"]) == {"ntire2023", "fvcore", "full"}
    assert record["flops"]["full"] >= record["flops"]["fvcore"] > 0
    runtime = record["runtime_ms"]
    assert {"mean", "median", "std", "min", "p90", "samples"} <= set(runtime)
    assert len(runtime["samples"]) == 3 and runtime["min"] <= runtime["median"] <= max(runtime["samples"])
    assert record["memory_mib"] > 0 and record["memory"]["kind"] == "cpu_rss_peak"
    assert record["env"]["torch"] == torch.__version__
    assert record["exec"]["threads"] == 1
    json.dumps(record)  # JSON-ready as it is


def test_no_runtime_skips_timing(rfdn):
    record = run_profile(rfdn, ProfileRequest(device=CPU, size=(16, 16), runtime=False)).record
    assert record["runtime_ms"] is None and record["memory_mib"] is None
    assert record["params"] == 433_448


def test_named_protocol_runs_eager_without_warmup(rfdn):
    request = ProfileRequest(device=CPU, size=(16, 16), protocol="ntire2023", threads=1)
    record = run_profile(rfdn, request).record
    assert record["exec"]["label"] == "eager"
    assert record["flops_headline"] == "ntire2023"
    assert record["runtime_ms"]["warmup_samples"] == [] and len(record["runtime_ms"]["samples"]) == 1


def test_named_protocol_refuses_other_modes():
    with pytest.raises(UsageError, match="eager fp32 only"):
        ProfileRequest(device=CPU, size=(16, 16), protocol="ntire2024", exec_request=parse_exec("bf16"))


def test_profile_leaves_the_model_unchanged(rfdn):
    before = {k: v.clone() for k, v in rfdn.module.state_dict().items()}
    run_profile(rfdn, ProfileRequest(device=CPU, size=(16, 16), warmup=0, repeats=1, threads=1))
    after = rfdn.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.is_contiguous() for p in rfdn.module.parameters())  # channels_last ran on a copy
    assert not any(m._forward_hooks for m in rfdn.module.modules())


def test_published_counts_only_compared_at_256(rfdn):
    record = run_profile(rfdn, ProfileRequest(device=CPU, size=(16, 16), runtime=False)).record
    assert record["published"] is None


def test_published_counts_not_compared_for_a_batch(rfdn, monkeypatch):
    counts = {"params": 433_448, "flops": {"ntire2023": 1, "fvcore": 1}, "activations": 1, "num_conv": 64}
    report = type("Report", (), counts)()
    assert published_check(rfdn, (256, 256), 2, report) is None
    assert published_check(rfdn, (256, 256), 1, report)["params"]["equal"] is True


WINDOWED_NET = """
import torch
from torch import nn

class Windowed(nn.Module):
    \"\"\"Needs sides that are multiples of 48 (like window-attention models).\"\"\"

    def __init__(self, scale=2):
        super().__init__()
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        if x.shape[-1] % 48 or x.shape[-2] % 48:
            raise ValueError("input sides must be multiples of 48")
        return self.shuffle(self.conv(x))
"""


def test_cli_profiles_a_model_that_cannot_run_at_the_check_sizes(tmp_path):
    net = tmp_path / "windowed.py"
    net.write_text(WINDOWED_NET)
    result = runner.invoke(app, ["profile", "--model", f"{net}:Windowed", "--scale", "2", "--size", "48",
                                 "--repeats", "1", "--warmup", "0", "--results", str(tmp_path), "--json",
                                 str(tmp_path / "w.json")])
    assert result.exit_code == 0, result.stderr
    record = json.loads((tmp_path / "w.json").read_text())
    assert record["exec"]["memory_format"] == "contiguous"  # auto fell back to the model as written
    assert "probe input fails" in record["exec"]["probe"]["reason"]


runner = CliRunner()


def test_cli_golden_counts_for_lgvan(tmp_path, weights_dir, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(weights_dir))
    out = tmp_path / "lgvan.json"
    result = runner.invoke(app, ["profile", "--model", "lgvan", "--no-runtime", "--json", str(out),
                                 "--results", str(tmp_path / "results"), "--device", "cpu"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["params"] == 118_243
    assert record["flops"]["ntire2023"] == 9_057_572_992
    assert record["flops"]["fvcore"] == 9_036_601_472
    assert record["activations"] == 332_392_832
    assert record["num_conv"] == 122
    assert all(entry["equal"] for entry in record["published"].values())
    assert record["checkpoint"]["verified"] is True
    assert "= published" in result.stdout
    stored = list((tmp_path / "results" / "profile").glob("lgvan-x4-*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text()) == record  # --json is the stored record, id included
    assert record["id"] and record["schema_version"] == SCHEMA_VERSION


def test_cli_profiles_a_user_model(tmp_path):
    result = runner.invoke(app, ["profile", "--model", "tests/data/user_net.py:TinyNet", "--scale", "2",
                                 "--model-args", '{"channels": 4}', "--size", "16", "--repeats", "1", "--warmup", "0",
                                 "--results", str(tmp_path), "--json", str(tmp_path / "u.json")])
    assert result.exit_code == 0, result.stderr
    record = json.loads((tmp_path / "u.json").read_text())
    assert record["model"] == "tests/data/user_net.py:TinyNet" and record["scale"] == 2
    assert "random weights" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "0"], "--size must be positive"),
        (["--size", "big"], "is not a size"),
        (["--device", "tpu"], "device"),
        (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "cuda:99"], "CUDA"),
        (["--dtype", "int8"], "--dtype must be fp16 or bf16"),
        (["--exec", "eager", "--channels-last", "--dtype", "bf16", "--exec", "bf16"], "either --exec"),
        (["--protocol", "ntire2023", "--exec", "bf16"], "eager fp32 only"),
        (["--protocol", "nope"], "unknown protocol"),
        (["--json", "x.json", "--model", "rfdn,lgvan"], "--json takes one model"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, args, message):
    base = ["profile", "--model", "rfdn", "--size", "16", "--results", str(tmp_path)]
    result = runner.invoke(app, base + args)
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(("depth", "expected"), [("0", {"fea_conv", "B1", "B4", "upsampler"}),
                                                  ("1", {"fea_conv", "B1.esa", "B4.c1_d", "upsampler.0"})])
def test_cli_by_layer_breakdown(tmp_path, depth, expected):
    result = runner.invoke(app, ["profile", "--model", "rfdn", "--size", "16", "--no-runtime", "--by-layer", depth,
                                 "--results", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    by_layer = result.stdout[result.stdout.index("by layer"):]
    names = {line.split("│")[1].strip() for line in by_layer.splitlines() if line.startswith("│")}
    assert expected <= names  # full module names (depth = dots in the name), never truncated
