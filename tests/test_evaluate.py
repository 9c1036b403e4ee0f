"""The eval loop: tiling, Set5 quality against the official pipeline, record contract, JSONL + resume, errors."""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from conftest import require_dataset

from sr_bench import evaluate as ev
from sr_bench import pipeline, tiling
from sr_bench.datasets import custom_dataset, load_pair, lr_cache_dir, resolve_dataset
from sr_bench.errors import DatasetError, DeviceError, ModelSpecError, ResultsError, UsageError
from sr_bench.eval_all import available_models, evaluate_all
from sr_bench.eval_config import EvalConfig, EvalOptions
from sr_bench.evaluate import EvalEvent, evaluate
from sr_bench.images import read_rgb_u8, to_input, to_uint8
from sr_bench.models import CheckpointInfo, LoadedModel
from sr_bench.results import load_records
from sr_bench.tiling import tiled_forward
from sr_bench.timing import pinned_threads
from sr_bench.zoo import ModelSpec

CPU = torch.device("cpu")
RFDN_SET5_MEAN_PSNR_RGB = 30.2543823441  # tests/data/quality_refs.md, official pipeline, one thread
RFDN_SET5_PSNR_RGB = {"baby": 32.2518554268, "bird": 32.7004531000, "butterfly": 27.2228789473,
                      "head": 29.9213354258, "woman": 29.1753888207}


class Bicubicish(nn.Module):
    """A tiny deterministic x4 net (two 3x3 convs + pixel shuffle over a bilinear base): fast, receptive field 2."""

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3 * scale**2, 3, padding=1))
        self.up = nn.PixelShuffle(scale)
        self.scale = scale
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        base = nn.functional.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return base + 0.01 * self.up(self.body(x))


def _loaded(module: nn.Module | None = None, sha: str | None = None) -> LoadedModel:
    module = module or Bicubicish()
    spec = ModelSpec(name="tiny", builder=lambda scale, **kw: Bicubicish(scale), scales=(4,), data_range=1.0)
    return LoadedModel(module.eval(), spec, 4, 1.0, CheckpointInfo(None, sha, None))


def _options(tmp_path: Path, **kw: object) -> EvalOptions:
    return EvalOptions(results_dir=tmp_path / "results", exec="eager", threads=1, **kw)  # type: ignore[arg-type]


def _log_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()[1:]]


# ---------------------------------------------------------------------------------------------------- tiling


@pytest.mark.parametrize(("length", "tile", "overlap"), [(5, 16, 4), (16, 16, 4), (37, 16, 4), (100, 24, 10), (53, 9, 0)])
def test_tile_spans_partition_the_axis_with_margins(length: int, tile: int, overlap: int) -> None:
    spans = tiling._tile_spans(length, tile, overlap)
    assert spans[0][1] == 0 and spans[-1][2] == length
    assert all(a[2] == b[1] for a, b in zip(spans, spans[1:]))  # owned ranges are contiguous
    for i, (start, own0, own1) in enumerate(spans):
        end = start + min(tile, length)
        assert start <= own0 < own1 <= end <= length
        if i > 0:
            assert own0 - start >= overlap // 2
        if i < len(spans) - 1:
            assert end - own1 >= overlap // 2


def test_tiled_forward_equals_untiled_when_overlap_covers_the_receptive_field() -> None:
    model = Bicubicish().eval()
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        full = model(x)
        tiled = tiled_forward(model, x, 4, tile=16, overlap=6)  # receptive radius 2 (convs) + 1 (bilinear) <= 3
        seams = tiled_forward(model, x, 4, tile=16, overlap=0)
    assert tiled.shape == full.shape
    torch.testing.assert_close(tiled, full, atol=1e-6, rtol=0)
    assert (seams - full).abs().max() > 1e-4  # without overlap the seams differ: the check above is meaningful


# ------------------------------------------------------------------------------------------ Set5 with RFDN


@pytest.fixture(scope="module")
def rfdn_set5(data_dir: Path, weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ev.EvalResult:
    mp = pytest.MonkeyPatch()
    mp.setenv("SRBENCH_WEIGHTS", str(weights_dir))
    try:
        results = tmp_path_factory.mktemp("rfdn")
        options = EvalOptions(results_dir=results, exec="eager", threads=1)
        (result,) = evaluate_all(EvalConfig(options, data_dir, models=["rfdn"], datasets=["set5"], device="cpu"))
    finally:
        mp.undo()
    return result


def test_set5_rfdn_matches_the_official_pipeline(rfdn_set5: ev.EvalResult) -> None:
    record = rfdn_set5.record
    assert abs(record["mean"]["psnr_rgb"] - RFDN_SET5_MEAN_PSNR_RGB) < 1e-4
    for row in record["images"]:
        assert abs(row["psnr_rgb"] - RFDN_SET5_PSNR_RGB[row["name"]]) < 1e-3


def test_eval_record_keeps_the_public_field_names(rfdn_set5: ev.EvalResult) -> None:
    rec = rfdn_set5.record
    assert rec["kind"] == "eval" and rec["model"] == "rfdn" and rec["scale"] == 4 and rec["dataset"] == "set5"
    assert rec["protocol"] == "robust" and rec["device"] == "cpu"
    assert [r["name"] for r in rec["images"]] == ["baby", "bird", "butterfly", "head", "woman"]
    for row in rec["images"]:
        assert {"name", "lr_size", "hr_size", "psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y", "runtime_ms"} <= set(row)
    assert rec["images"][4]["lr_size"] == [86, 57] and rec["images"][4]["hr_size"] == [344, 228]
    assert set(rec["mean"]) == {"psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y", "runtime_ms"}
    assert rec["mean"]["runtime_ms"] == pytest.approx(np.mean([r["runtime_ms"] for r in rec["images"]]))
    runtime = rec["runtime_ms"]
    assert {"mean", "median", "std", "samples"} <= set(runtime) and len(runtime["samples"]) == 5
    assert runtime["warmup_samples"]  # robust: warmed up before timing
    assert rec["memory_mib"] > 0 and rec["env"]["torch"] == torch.__version__
    assert rec["exec"]["label"] == "eager" and rec["exec"]["threads"] == 1
    assert rec["checkpoint"]["path"].endswith("team00_rfdn.pth") and len(rec["checkpoint"]["sha256"]) == 64
    assert rec["data"]["lr_source"] == "files" and rec["skipped"] == []


def test_record_and_jsonl_are_in_the_results_store(rfdn_set5: ev.EvalResult) -> None:
    records, warnings = load_records(rfdn_set5.path.parent.parent)
    assert [r["id"] for r in records] == [json.loads(rfdn_set5.path.read_text())["id"]] and not warnings
    log = Path(rfdn_set5.record["run_log"])
    assert log.parent.name == "runs" and log.suffix == ".jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[0]["kind"] == "eval-log" and len(lines) == 6
    assert {r["name"]: r["psnr_rgb"] for r in lines[1:]} == {r["name"]: r["psnr_rgb"] for r in rfdn_set5.record["images"]}


# ------------------------------------------------------------------------------------ loop with a tiny model


def test_generated_lr_protocols_and_saved_sr(tmp_path: Path, data_dir: Path) -> None:
    require_dataset(data_dir, "Set14")
    ds = resolve_dataset("set14", data_dir, 4)
    loaded = _loaded()
    official = evaluate(loaded, ds, CPU, _options(tmp_path, limit=2, protocol="ntire2023", save_sr=tmp_path / "sr"))
    rec = official.record
    assert rec["data"]["lr_source"] == "generated" and rec["runtime_ms"]["warmup_samples"] == []
    assert len(list((tmp_path / "results/lr-cache").rglob("*.png"))) == 2
    saved = tmp_path / "sr/tiny_x4/set14/baboon.png"
    lr, _ = load_pair(ds.pairs[0], 4, lr_cache_dir(tmp_path / "results"))
    with torch.inference_mode(), pinned_threads(1):  # the run's thread count: summation order moves a few values
        expected = to_uint8(loaded.module(to_input(lr, 1.0, CPU)), 1.0).permute(1, 2, 0).numpy()
    assert np.array_equal(read_rgb_u8(saved), expected)
    robust = evaluate(loaded, ds, CPU, _options(tmp_path, limit=2)).record
    assert robust["runtime_ms"]["warmup_samples"] and robust["protocol"] == "robust"
    assert [r["psnr_rgb"] for r in robust["images"]] == [r["psnr_rgb"] for r in rec["images"]]


def test_progress_events_carry_the_running_mean(tmp_path: Path, data_dir: Path) -> None:
    events: list[EvalEvent] = []
    rec = evaluate(_loaded(), resolve_dataset("set5", data_dir, 4), CPU, _options(tmp_path, limit=3),
                   progress=events.append).record
    kinds = [e.kind for e in events]
    assert kinds == ["start", "image", "image", "image", "done"]
    assert [e.done for e in events] == [0, 1, 2, 3, 3] and events[0].total == 3
    psnrs = [e.psnr for e in events if e.kind == "image"]
    assert events[3].mean_psnr == pytest.approx(np.mean(psnrs)) == pytest.approx(rec["mean"]["psnr_rgb"])


class CtrlC(Bicubicish):
    """Ctrl-C arrives while the model runs its third forward."""

    def forward(self, x: Tensor) -> Tensor:
        if self.calls == 2:
            raise KeyboardInterrupt
        return super().forward(x)


def test_interrupted_run_keeps_finished_images_and_resumes(tmp_path: Path, data_dir: Path) -> None:
    ds = resolve_dataset("set5", data_dir, 4)
    options = _options(tmp_path, protocol="ntire2023")
    reference = evaluate(_loaded(), ds, CPU, _options(tmp_path / "ref", protocol="ntire2023")).record
    with pytest.raises(KeyboardInterrupt):
        evaluate(_loaded(CtrlC()), ds, CPU, options)
    log = next((tmp_path / "results/runs").glob("*.jsonl"))
    assert [r["name"] for r in _log_rows(log)] == ["baby", "bird"]
    assert not list((tmp_path / "results").glob("eval/*.json"))  # no record for an unfinished run

    with log.open("a") as f:
        f.write('{"name": "butterfly", "psnr_rg')  # a line torn by a crash is ignored
    events: list[EvalEvent] = []
    model = Bicubicish()
    resumed = replace(options, resume=True)
    rec = evaluate(_loaded(model), ds, CPU, resumed, progress=events.append).record
    assert [e.message for e in events if e.kind == "image"] == ["butterfly", "head", "woman"] and model.calls == 3
    assert events[0].kind == "start" and events[0].done == 2
    assert rec["resumed"] is True and [r["name"] for r in rec["images"]] == [r["name"] for r in reference["images"]]
    assert [r["psnr_rgb"] for r in rec["images"]] == [r["psnr_rgb"] for r in reference["images"]]
    assert len(_log_rows(log)) == 5

    fresh = evaluate(_loaded(), ds, CPU, replace(options, limit=1)).record  # no --resume: starts over
    assert fresh["resumed"] is False and len(_log_rows(log)) == 1


def test_resume_refuses_a_log_of_another_checkpoint(tmp_path: Path, data_dir: Path) -> None:
    ds = resolve_dataset("set5", data_dir, 4)
    evaluate(_loaded(sha="a" * 64), ds, CPU, _options(tmp_path, limit=1))
    with pytest.raises(ResultsError, match=r"cannot resume from .*another checkpoint or dataset folder; drop --resume"):
        evaluate(_loaded(sha="b" * 64), ds, CPU, _options(tmp_path, limit=1, resume=True))


def test_disk_full_while_saving_is_clear_and_keeps_the_log(tmp_path: Path, data_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    real = pipeline.write_png
    calls = []

    def fill_up(path: Path, array: np.ndarray) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise ResultsError(f"cannot write image {path}") from OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, array)

    monkeypatch.setattr(pipeline, "write_png", fill_up)
    with pytest.raises(ResultsError, match=r"disk full while writing SR image .*butterfly\.png.*rerun with --resume"):
        evaluate(_loaded(), resolve_dataset("set5", data_dir, 4), CPU, _options(tmp_path, save_sr=tmp_path / "sr"))
    log = next((tmp_path / "results/runs").glob("*.jsonl"))
    assert [r["name"] for r in _log_rows(log)] == ["baby", "bird"]
    assert sorted(p.name for p in (tmp_path / "sr/tiny_x4/set5").iterdir()) == ["baby.png", "bird.png"]


def _custom_with_corrupt(tmp_path: Path, data_dir: Path) -> Path:
    hr = tmp_path / "hr"
    hr.mkdir()
    for name in ("baby", "bird", "head"):
        shutil.copy(data_dir / "Set5/HR" / f"{name}.png", hr / f"{name}.png")
    data = (hr / "bird.png").read_bytes()
    (hr / "bird.png").write_bytes(data[:200])
    return hr


def test_corrupt_image_stops_before_any_work_or_is_skipped(tmp_path: Path, data_dir: Path) -> None:
    ds = custom_dataset(_custom_with_corrupt(tmp_path, data_dir), None, 4)
    model = Bicubicish()
    with pytest.raises(DatasetError, match=r"cannot read image .*bird\.png"):
        evaluate(_loaded(model), ds, CPU, _options(tmp_path))
    assert model.calls == 0
    rec = evaluate(_loaded(model), ds, CPU, _options(tmp_path, skip_bad=True)).record
    assert [r["name"] for r in rec["images"]] == ["baby", "head"]
    assert [s["name"] for s in rec["skipped"]] == ["bird"] and "cannot read image" in rec["skipped"][0]["error"]


def test_image_that_fails_to_decode_mid_run_is_skipped_or_stops(tmp_path: Path, data_dir: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ds = resolve_dataset("set5", data_dir, 4)
    real = pipeline.load_pair

    def flaky(pair, scale, cache):  # passes the header check, fails to decode (e.g. a damaged IDAT stream)
        if pair.name == "bird":
            raise DatasetError(f"cannot decode image {pair.hr_path}: broken data stream")
        return real(pair, scale, cache)

    monkeypatch.setattr(pipeline, "load_pair", flaky)
    events: list[EvalEvent] = []
    rec = evaluate(_loaded(), ds, CPU, _options(tmp_path, limit=3, skip_bad=True), progress=events.append).record
    assert [r["name"] for r in rec["images"]] == ["baby", "butterfly"] and rec["skipped"][0]["name"] == "bird"
    assert ("skip", "bird") in [(e.kind, e.message) for e in events]
    with pytest.raises(DatasetError, match=r"cannot decode image .*bird\.png"):
        evaluate(_loaded(), ds, CPU, _options(tmp_path, limit=3))


class OutOfMemory(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


class WrongScale(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.interpolate(x, scale_factor=2)


def test_out_of_memory_suggests_tiling(tmp_path: Path, data_dir: Path) -> None:
    options = _options(tmp_path, limit=1, protocol="ntire2023")
    with pytest.raises(DeviceError, match=r"out of memory on baby \(LR 128x128\): rerun with --tile 256 .*--resume"):
        evaluate(_loaded(OutOfMemory()), resolve_dataset("set5", data_dir, 4), CPU, options)


def test_model_of_the_wrong_scale_is_caught(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(ModelSpecError, match=r"expected \(1, 3, 512, 512\) at x4"):
        evaluate(_loaded(WrongScale()), resolve_dataset("set5", data_dir, 4), CPU,
                 _options(tmp_path, limit=1, protocol="ntire2023"))


def test_tiled_run_is_recorded_and_matches_untiled(tmp_path: Path, data_dir: Path) -> None:
    ds = resolve_dataset("set5", data_dir, 4)
    plain = evaluate(_loaded(), ds, CPU, _options(tmp_path, limit=2)).record
    tiled = evaluate(_loaded(), ds, CPU, _options(tmp_path, limit=2, tile=48, tile_overlap=8)).record
    assert tiled["tile"] == {"size": 48, "overlap": 8} and "tile48o8" in tiled["run_log"]
    for a, b in zip(plain["images"], tiled["images"]):
        assert a["psnr_rgb"] == pytest.approx(b["psnr_rgb"], abs=1e-6)


# ----------------------------------------------------------------------------------- several models / usage


def test_available_models_are_those_with_a_checkpoint(tmp_path: Path, weights_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                      no_builtin_weights: None) -> None:
    only_rfdn = tmp_path / "w"
    only_rfdn.mkdir()
    os.symlink(weights_dir / "team00_rfdn.pth", only_rfdn / "team00_rfdn.pth")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(only_rfdn))
    assert available_models() == ["rfdn"]
    assert available_models(scale=3) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"datasets": [], "lr_dir": Path("x")}, r"--lr needs --hr"),
        ({"models": ["rfdn", "lgvan"], "weights": Path("w.pth")}, r"--weights applies to one model"),
    ],
)
def test_usage_errors(kwargs: dict, message: str, data_dir: Path) -> None:
    args = {"models": ["rfdn"], "datasets": ["set5"]} | kwargs
    with pytest.raises(UsageError, match=message):
        evaluate_all(EvalConfig(EvalOptions(results_dir=Path("r")), data_dir, **args))


def test_options_reject_bad_values() -> None:
    with pytest.raises(UsageError, match=r"--tile-overlap must be in \[0, --tile\)"):
        EvalOptions(results_dir=Path("r"), tile=16, tile_overlap=16)
    with pytest.raises(UsageError, match=r"unknown protocol"):
        EvalOptions(results_dir=Path("r"), protocol="ntire1999")


def test_named_protocols_refuse_other_execution_modes(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(UsageError, match=r"protocol ntire2023 measures eager fp32 only"):
        evaluate(_loaded(), resolve_dataset("set5", data_dir, 4), CPU,
                 EvalOptions(results_dir=tmp_path, protocol="ntire2023", exec="channels_last"))


def test_custom_folder_run_log_is_plain_json_lines(tmp_path: Path) -> None:
    """Other tools can tail the run log: a header and one self-contained JSON object per image."""
    Image.new("RGB", (64, 64), (10, 20, 30)).save(tmp_path / "flat.png")
    rec = evaluate(_loaded(), custom_dataset(tmp_path, None, 4), CPU, _options(tmp_path / "o")).record
    assert rec["dataset"] == "custom" and rec["images"][0]["lr_size"] == [16, 16]
    for line in Path(rec["run_log"]).read_text().splitlines():
        json.loads(line)
