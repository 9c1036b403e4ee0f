"""Hostile inputs to report, pairing, upscale and profile (issue 10 items 2-profile/upscale, 3, 4, 5, 7, 13, 17, 18).

Each test failed before its fix: the wrong number came out with exit 0, or the failure was blamed on srbench.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sr_bench.datasets import custom_dataset
from sr_bench.env import logical_cores
from sr_bench.errors import DatasetError, DeviceError, UsageError
from sr_bench.images import write_png
from sr_bench.models import resolve_model
from sr_bench.profile import ProfileRequest, run_profile
from sr_bench.report import build_table, load_table
from sr_bench.results import load_records, validate, write_record
from sr_bench.upscale import check_images
from test_cli_eval import error_line
from test_cli_eval import run as cli_run

CPU = torch.device("cpu")
VAL = "set5"

NETS = '''
import torch
from torch import nn


class Net(nn.Module):
    """Pixel shuffle x2 after one conv: tiny and fast."""

    def __init__(self, scale=2):
        super().__init__()
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.up = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.up(self.conv(x))


class NaNNet(Net):
    def forward(self, x):
        return super().forward(x) * float("nan")


class NaNWhenLarge(Net):
    """Finite on the tiny shape check, NaN from 32x32 up (as an overflow that only large inputs reach)."""

    def forward(self, x):
        out = super().forward(x)
        return out * float("nan") if x.shape[-1] >= 32 else out


class NaNWhenTiny(Net):
    def forward(self, x):
        out = super().forward(x)
        return out * float("nan") if x.shape[-1] < 32 else out


class Greedy(Net):
    """Fine on the tiny shape check, out of memory on anything larger (as a model at a huge --size)."""

    def forward(self, x):
        if x.shape[-1] > 24:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return super().forward(x)
'''


def run(*args: object):
    return cli_run(*args, width=200)  # wide enough that no error line wraps


@pytest.fixture
def nets(tmp_path: Path) -> Path:
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return path


def profile_record(model: str, flops: int, size: list[int], created: str, **extra) -> dict:
    return {"kind": "profile", "model": model, "scale": 4, "input_size": size, "batch": 1, "params": 118243,
            "flops": {"ntire2023": flops, "fvcore": flops, "full": flops}, "activations": 1000, "num_conv": 10,
            "created": created, **extra}


def eval_record(model: str, psnr: float, images: int, created: str, tile: dict | None = None) -> dict:
    return {"kind": "eval", "model": model, "scale": 4, "dataset": VAL, "protocol": "robust", "device": "cpu",
            "exec": {"label": "eager"}, "images": [{"name": f"img{i}"} for i in range(images)],
            "mean": {"psnr_rgb": psnr, "runtime_ms": 10.0}, "data": {"images_in_set": 5, "expected": 5},
            "tile": tile, "memory_mib": 100.0, "created": created}


# ------------------------------------------------------------------------------ item 3: one input size


@pytest.fixture
def two_sizes(tmp_path: Path) -> Path:
    write_record(profile_record("lgvan", 9_036_601_472, [256, 256], "2026-01-01T00:00:00+00:00"), tmp_path)
    write_record(profile_record("lgvan", 141_197_248, [32, 32], "2026-01-02T00:00:00+00:00"), tmp_path)  # newer
    write_record(eval_record("lgvan", 30.27, 5, "2026-01-01T00:00:00+00:00"), tmp_path)
    return tmp_path


def test_report_takes_complexity_from_256_profiles_and_names_the_others(two_sizes: Path) -> None:
    table, notes = load_table(two_sizes, val=VAL, test=None)
    assert table.rows[0]["flops_g"] == 9.036601472
    assert "at 256×256 input" in table.caption()
    assert notes == ["lgvan x4: profile(s) at 32×32 left out (the table uses 256×256 input); report them with "
                     "--size, or run 'srbench profile --model lgvan' at 256×256"]


def test_report_size_option_picks_the_other_profiles(two_sizes: Path) -> None:
    result = run("report", "--results", two_sizes, "--val", VAL, "--test", "none", "--size", "32", "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["rows"][0]["flops_g"] == 0.141197248 and "at 32×32 input" in doc["caption"]
    assert "profile(s) at 256×256 left out" in result.stderr


def test_batched_profile_is_another_size(tmp_path: Path) -> None:
    write_record(profile_record("lgvan", 2 * 9_036_601_472, [256, 256], "2026-01-01T00:00:00+00:00", batch=2),
                 tmp_path)
    table, notes = load_table(tmp_path, val=VAL, test=None)
    assert table.rows == [] and "profile(s) at 2×256×256 left out" in notes[-1]


# ------------------------------------------------------------------- item 4: partial and tiled evals


def test_a_newer_partial_tiled_eval_does_not_replace_the_full_one(tmp_path: Path) -> None:
    write_record(eval_record("lgvan", 30.27, 5, "2026-01-01T00:00:00+00:00"), tmp_path)
    write_record(eval_record("lgvan", 12.0, 2, "2026-01-02T00:00:00+00:00", tile={"size": 48, "overlap": 32}),
                 tmp_path)
    table, notes = load_table(tmp_path, val=VAL, test=None)
    assert table.rows[0]["val_psnr"] == 30.27 and table.rows[0]["notes"] is None
    assert notes == ["lgvan: 1 newer partial eval record(s) left out for a complete untiled one on set5"]


def test_only_partial_evals_leave_cells_empty_unless_allowed(tmp_path: Path) -> None:
    write_record(eval_record("lgvan", 29.0, 2, "2026-01-02T00:00:00+00:00", tile={"size": 48, "overlap": 32}),
                 tmp_path)
    table, notes = load_table(tmp_path, val=VAL, test=None)
    assert table.rows[0]["val_psnr"] is None and table.rows[0]["mem_mib"] is None
    assert "only partial eval records (newest: 2/5 images)" in notes[0] and "--allow-partial" in notes[0]

    result = run("report", "--results", tmp_path, "--val", VAL, "--test", "none", "--allow-partial", "-f", "md")
    assert result.exit_code == 0, result.output
    caption, _, header, _, row = result.stdout.splitlines()
    assert "partial eval (--allow-partial): lgvan val (2/5 images)" in caption
    assert "tiled eval: lgvan val (tiled 48, overlap 32)" in caption
    assert header.endswith("| Notes |")
    assert row.startswith("| lgvan | 29.00 |") and row.endswith("| val 2/5 images; val tiled 48, overlap 32 |")


def test_a_score_against_a_partial_baseline_says_so_and_how_to_allow_it(tmp_path: Path) -> None:
    write_record(profile_record("lgvan", 9_036_601_472, [256, 256], "2026-01-01T00:00:00+00:00"), tmp_path)
    write_record(eval_record("lgvan", 29.0, 2, "2026-01-02T00:00:00+00:00"), tmp_path)
    base = ("report", "--results", tmp_path, "--val", VAL, "--test", "none", "--score", "2025", "--baseline", "lgvan")
    line = error_line(run(*base))
    assert line == ("Error: baseline 'lgvan' has no val_time_ms to score against: its eval record is partial on set5 "
                    "(2/5 images); re-run its eval on the whole set, or pass --allow-partial to score against the "
                    "partial one")
    allowed = run(*base, "--allow-partial", "-f", "json")
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)["rows"][0]["score"] == pytest.approx(np.exp(2.0))


def test_complete_tiled_eval_is_used_when_no_untiled_one_exists_and_is_marked(tmp_path: Path) -> None:
    write_record(eval_record("lgvan", 30.1, 5, "2026-01-01T00:00:00+00:00", tile={"size": 256, "overlap": 32}),
                 tmp_path)
    write_record(eval_record("lgvan", 12.0, 1, "2026-01-02T00:00:00+00:00"), tmp_path)  # newer, untiled, partial
    records, _ = load_records(tmp_path)
    table = build_table(records, val=VAL, test=None)
    assert table.rows[0]["val_psnr"] == 30.1 and table.rows[0]["notes"] == "val tiled 256, overlap 32"
    assert "tiled eval: lgvan val (tiled 256, overlap 32)" in table.caption()


# ------------------------------------------------------------ item 13: malformed records do not crash report


@pytest.mark.parametrize("field", ["model", "scale"])
@pytest.mark.parametrize("value", [["a", "b"], {"x": 1}], ids=["list", "dict"])
def test_report_skips_a_record_with_a_list_or_dict_identity(tmp_path: Path, field: str, value: object) -> None:
    write_record(eval_record("lgvan", 30.27, 5, "2026-01-01T00:00:00+00:00"), tmp_path)
    bad = {**eval_record("lgvan", 1.0, 5, "2026-01-02T00:00:00+00:00"), field: value, "schema_version": 2}
    (tmp_path / "eval" / "hostile.json").write_text(json.dumps(bad))
    result = run("report", "--results", tmp_path, "--val", VAL, "--test", "none", "-f", "csv")
    assert result.exit_code == 0, result.output
    assert "30.27" in result.stdout and "1.0," not in result.stdout
    assert result.stderr.startswith(f"Warning: skipped eval/hostile.json: field '{field}' is ")


def test_report_skips_an_eval_record_with_a_nan_metric_naming_it(tmp_path: Path) -> None:
    """A NaN mean used to render as an empty cell with no word: the record is refused on load like other bad ones."""
    write_record(eval_record("lgvan", 30.27, 5, "2026-01-01T00:00:00+00:00"), tmp_path)
    write_record(eval_record("rfdn", float("nan"), 5, "2026-01-02T00:00:00+00:00"), tmp_path)
    result = run("report", "--results", tmp_path, "--val", VAL, "--test", "none", "-f", "csv")
    assert result.exit_code == 0, result.output
    assert "lgvan" in result.stdout and "rfdn" not in result.stdout
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("Warning: skipped eval/rfdn-x4-set5-") and warning.endswith(
        ": field 'mean.psnr_rgb' is NaN (the model's output was not finite); fix or delete the file, or re-run the "
        "command that made it")
    image_nan = {**eval_record("lgvan", 30.27, 2, "2026-01-01T00:00:00+00:00"), "schema_version": 2}
    image_nan["images"][1]["ssim_y"] = float("nan")
    assert validate(image_nan) == "field 'images[1].ssim_y' is NaN (the model's output was not finite)"
    assert validate({**image_nan, "mean": {"psnr_rgb": float("inf")}, "images": []}) is None  # identical images


# ------------------------------------------------------------------------ item 5: ambiguous LR pairing


def test_two_lr_candidates_for_one_hr_is_an_error_naming_both(tmp_path: Path) -> None:
    hr, lr = tmp_path / "HR", tmp_path / "LR"
    hr.mkdir()
    lr.mkdir()
    write_png(hr / "img1.png", np.zeros((16, 16, 3), np.uint8))
    write_png(lr / "img1x4.png", np.zeros((4, 4, 3), np.uint8))
    write_png(lr / "img1.png", np.full((4, 4, 3), 128, np.uint8))
    with pytest.raises(DatasetError, match=r"two LR images for img1\.png in .*LR: img1\.png and img1x4\.png; keep one"):
        custom_dataset(hr, lr, 4)


# --------------------------------------------------------------------- item 7: upscale never overwrites


def test_upscale_refuses_two_inputs_with_one_output_name(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_png(tmp_path / folder / "babyx4.png", np.zeros((8, 8, 3), np.uint8))
    images = [tmp_path / "a" / "babyx4.png", tmp_path / "b" / "babyx4.png"]
    with pytest.raises(UsageError, match=r"a/babyx4\.png and .*b/babyx4\.png would both be written as babyx4_x<scale>"):
        check_images(images)
    check_images([images[0], images[0]])  # the same file twice is not a conflict
    result = run("upscale", "--model", "rfdn", *images, "-o", tmp_path / "out", "--device", "cpu")
    assert "would both be written" in error_line(result)
    assert not (tmp_path / "out").exists()


def test_upscale_with_a_nan_output_fails_naming_image_and_model_and_writes_no_png(nets: Path, tmp_path: Path) -> None:
    """The clamp in to_uint8 would turn NaN into a plausible PNG and exit 0: the raw output is checked first."""
    model = f"{nets}:NaNNet"
    torch.save(resolve_model(model, scale=2, device=CPU).module.state_dict(), tmp_path / "nan.pth")
    images = [tmp_path / "a.png", tmp_path / "b.png"]
    for image in images:
        write_png(image, np.full((8, 8, 3), 100, np.uint8))
    result = run("upscale", "--model", model, "--scale", "2", "--weights", tmp_path / "nan.pth", *images,
                 "-o", tmp_path / "out", "--device", "cpu", "--threads", "1")
    line = error_line(result)
    assert line.startswith(f"Error: {model} gave a non-finite output for {images[0]}: 768 of 768 values are NaN/Inf")
    assert line.endswith("; fix the model; no PNG was written for it")
    assert list((tmp_path / "out").glob("*")) == []  # nothing written, not even a temporary file


# ------------------------------------------------- item 17 and 2: out of memory and NaN output in profile


def test_out_of_memory_while_counting_is_the_oom_error_with_its_size_hint(nets: Path) -> None:
    loaded = resolve_model(f"{nets}:Greedy", scale=2, device=CPU)
    with pytest.raises(DeviceError, match=r"^CPU out of memory at input 1x3x64x64: use a smaller --size or --tile$"):
        run_profile(loaded, ProfileRequest(device=CPU, size=(64, 64), runtime=False, threads=1))


def test_profile_warns_when_the_output_is_not_finite(nets: Path) -> None:
    loaded = resolve_model(f"{nets}:NaNNet", scale=2, device=CPU)
    record = run_profile(loaded, ProfileRequest(device=CPU, size=(32, 32), runtime=False, threads=1)).record
    assert any("non-finite value(s) (NaN/Inf)" in w and "NaNNet" in w for w in record["warnings"])
    healthy = resolve_model(f"{nets}:Net", scale=2, device=CPU)
    clean = run_profile(healthy, ProfileRequest(device=CPU, size=(32, 32), runtime=False, threads=1)).record
    assert not any("non-finite" in w for w in clean["warnings"])
    assert validate(clean) is None  # what profile builds is a valid record


@pytest.mark.parametrize(("name", "warned"), [("NaNWhenLarge", True), ("NaNWhenTiny", False)])
def test_profile_checks_the_output_at_the_profiled_size(nets: Path, name: str, warned: bool) -> None:
    """The warning is about the input whose numbers are reported, not the tiny shape check's."""
    loaded = resolve_model(f"{nets}:{name}", scale=2, device=CPU)
    record = run_profile(loaded, ProfileRequest(device=CPU, size=(32, 40), runtime=False, threads=1)).record
    warnings = [w for w in record["warnings"] if "non-finite" in w]
    assert warnings == ([f"{nets}:{name}: the output on a synthetic 1×3×32×40 input has 15,360 non-finite value(s) "
                         "(NaN/Inf) of 15,360: the weights or the model are broken, so these numbers are not those of "
                         "a working model"] if warned else [])


# -------------------------------------------------------------------------- item 18: --threads capped


def test_threads_beyond_the_cores_are_capped_and_recorded(nets: Path, tmp_path: Path) -> None:
    result = run("profile", "--model", f"{nets}:Net", "--scale", "2", "--size", "16", "--threads", "999",
                 "--device", "cpu", "--repeats", "1", "--warmup", "0", "--json", tmp_path / "r.json",
                 "--results", tmp_path / "results")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["exec"]["threads_requested"] == 999
    assert record["exec"]["threads"] == logical_cores() and record["env"]["torch_threads"] == logical_cores()
    assert f"--threads 999 is more than the {record['exec']['threads']} core(s)" in result.stderr
    assert record["notices"] == [f"--threads 999 is more than the {record['exec']['threads']} core(s) this process "
                                 f"may use: ran with {record['exec']['threads']}"]


# ---------------------------------------------------------------- the records srbench builds are valid


def test_an_eval_record_validates_and_reads_back(nets: Path, tmp_path: Path) -> None:
    from sr_bench.eval_all import evaluate_all
    from sr_bench.eval_config import EvalConfig, EvalOptions

    hr = tmp_path / "HR"
    hr.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        write_png(hr / f"{name}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    weights = tmp_path / "net.pth"
    torch.save(resolve_model(f"{nets}:Net", scale=2, device=CPU).module.state_dict(), weights)
    options = EvalOptions(results_dir=tmp_path / "results", threads=1, protocol="ntire2023")
    config = EvalConfig(options, tmp_path, models=[f"{nets}:Net"], hr_dir=hr, scale=2, weights=weights, device="cpu")
    (result,) = evaluate_all(config)
    assert validate(result.record) is None
    assert result.record["memory"]["peak_mib"] == result.record["memory_mib"]
    assert "peak_memory_mib" not in result.record["runtime_ms"] and result.record["exec"]["threads_requested"] == 1
    (stored,), warnings = load_records(tmp_path / "results")
    assert warnings == [] and stored == json.loads(json.dumps(result.record))
