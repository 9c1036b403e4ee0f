"""The image pipeline around the timed forward: pool sizes, in-order decoding, parallel finishing, PNG encoding."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sr_bench import pipeline
from sr_bench.datasets import CheckedPair, ImagePair, custom_dataset, resolve_dataset
from sr_bench.errors import DatasetError, ResultsError
from sr_bench.evaluate import evaluate
from sr_bench.eval_config import EvalOptions
from sr_bench.images import PNG_ENCODING, read_rgb_u8, to_uint8
from sr_bench.metrics import image_metrics
from sr_bench.models import CheckpointInfo, LoadedModel
from sr_bench.pipeline import Decoded, Failed, Finisher, Prefetcher, Scored, Unscored, worker_count
from sr_bench.runlog import RunLog
from sr_bench.zoo import ModelSpec

CPU = torch.device("cpu")


@pytest.mark.parametrize(("device", "threads", "cores", "expected"), [
    ("cpu", None, 2, 1),  # the model takes every core: one worker each, as before pools
    ("cpu", 1, 2, 1),
    ("cpu", 4, 16, 8),  # capped
    ("cpu", 12, 16, 4),
    ("cuda", None, 16, 8),  # the GPU model needs one CPU thread
    ("cuda", None, 4, 3),
    ("cuda", None, 1, 1),
])
def test_worker_count_is_the_cores_the_model_leaves_free(monkeypatch: pytest.MonkeyPatch, device: str,
                                                          threads: int | None, cores: int, expected: int) -> None:
    monkeypatch.setattr(pipeline.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert worker_count(torch.device(device), threads) == expected


def _pairs(data_dir: Path, tmp_path: Path, broken: str | None = None) -> list[CheckedPair]:
    hr = tmp_path / "hr"
    hr.mkdir(exist_ok=True)
    for name in ("baby", "bird", "butterfly", "head", "woman"):
        shutil.copy(data_dir / "Set5/HR" / f"{name}.png", hr / f"{name}.png")
    if broken:
        (hr / f"{broken}.png").write_bytes((hr / f"{broken}.png").read_bytes()[:300])
    ds = custom_dataset(hr, None, 4)
    return [CheckedPair(p, (1, 1), (4, 4)) for p in ds.pairs]  # sizes are not read by the prefetcher


def test_prefetcher_pool_yields_in_dataset_order(data_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real, seen = pipeline.load_pair, set()

    def slow_first(pair: ImagePair, scale: int, cache: Path):  # the first image decodes last
        seen.add(threading.current_thread().name)
        if pair.name == "baby":
            time.sleep(0.3)
        return real(pair, scale, cache)

    monkeypatch.setattr(pipeline, "load_pair", slow_first)
    checked = _pairs(data_dir, tmp_path, broken="head")
    prefetch = Prefetcher(checked, 4, tmp_path / "cache", lambda lr: lr, workers=3)
    items = list(prefetch)
    prefetch.close()
    assert [i.checked.pair.name for i in items] == ["baby", "bird", "butterfly", "head", "woman"]
    assert [type(i) for i in items] == [Decoded, Decoded, Decoded, Failed, Decoded]
    assert isinstance(items[3].error, DatasetError)
    assert len(seen) > 1 and all(name.startswith("srbench-decode") for name in seen)
    assert np.array_equal(items[0].hr, read_rgb_u8(data_dir / "Set5/HR/baby.png"))


def test_prefetcher_close_stops_early(data_dir: Path, tmp_path: Path) -> None:
    prefetch = Prefetcher(_pairs(data_dir, tmp_path), 4, tmp_path / "cache", lambda lr: lr, workers=2)
    first = next(iter(prefetch))
    prefetch.close()
    assert first.checked.pair.name == "baby" and list(prefetch) == []


def _score(sr: torch.Tensor, hr: np.ndarray) -> tuple[torch.Tensor, dict]:
    sr_u8 = to_uint8(sr, 1.0)
    return sr_u8, image_metrics(sr_u8, torch.from_numpy(hr).permute(2, 0, 1), crop_border=4)


def test_finisher_pool_scores_saves_and_logs_every_image(tmp_path: Path) -> None:
    log = RunLog.open(tmp_path / "run.jsonl", {"kind": "eval-log", "key": "k"}, resume=False)
    finisher = Finisher(log, tmp_path / "sr", _score, workers=3)
    rng = np.random.default_rng(0)
    expected = {}
    for i in range(6):
        sr = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(i))
        hr = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
        u8, metrics = _score(sr, hr)
        expected[f"im{i}"] = (u8, metrics)
        finisher.submit(Unscored({"name": f"im{i}"}, sr, hr) if i % 2 else Scored({"name": f"im{i}", **metrics}, u8))
    finisher.drain()
    finisher.check()
    rows = {r["name"]: r for r in finisher.finished()}
    logged = [json.loads(line)["name"] for line in (tmp_path / "run.jsonl").read_text().splitlines()[1:]]
    assert sorted(rows) == sorted(logged) == sorted(expected)
    for name, (u8, metrics) in expected.items():
        assert {k: rows[name][k] for k in metrics} == metrics  # identical numbers, whichever thread scored
        assert np.array_equal(read_rgb_u8(tmp_path / "sr" / f"{name}.png"), u8.permute(1, 2, 0).numpy())


def test_finisher_first_failure_stops_and_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = RunLog.open(tmp_path / "run.jsonl", {"kind": "eval-log", "key": "k"}, resume=False)

    def broken(sr: torch.Tensor, hr: np.ndarray):
        raise ResultsError("disk on fire")

    finisher = Finisher(log, None, broken, workers=2)
    finisher.submit(Unscored({"name": "a"}, torch.zeros(1, 3, 8, 8), np.zeros((8, 8, 3), np.uint8)))
    finisher.drain()
    with pytest.raises(ResultsError, match="disk on fire"):
        finisher.check()
    assert finisher.finished() == [] and len((tmp_path / "run.jsonl").read_text().splitlines()) == 1


class _Bicubicish(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Conv2d(3, 48, 3, padding=1)
        self.up = torch.nn.PixelShuffle(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = torch.nn.functional.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
        return base + 0.01 * self.up(self.body(x))


def test_per_image_numbers_do_not_depend_on_the_pool_size(tmp_path: Path, data_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelSpec(name="tiny", builder=lambda scale, **kw: _Bicubicish(), scales=(4,), data_range=1.0)
    loaded = LoadedModel(_Bicubicish().eval(), spec, 4, 1.0, CheckpointInfo(None, None, None))
    ds = resolve_dataset("set5", data_dir, 4)
    records = []
    for workers in (1, 4):
        monkeypatch.setattr("sr_bench.evaluate.worker_count", lambda device, threads, n=workers: n)
        options = EvalOptions(results_dir=tmp_path / f"r{workers}", exec="eager", threads=1,
                              save_sr=tmp_path / f"sr{workers}")
        records.append(evaluate(loaded, ds, CPU, options).record)
    one, four = ([{k: v for k, v in row.items() if k != "runtime_ms"} for row in r["images"]] for r in records)
    assert one == four and [r["name"] for r in one] == ["baby", "bird", "butterfly", "head", "woman"]
    assert records[1]["sr_png"] == {"dir": str(tmp_path / "sr4" / "tiny_x4" / "set5"), **PNG_ENCODING}
    assert records[0]["pipeline"]["workers"] == 1 and records[1]["pipeline"]["workers"] == 4
    for name in ("baby", "woman"):
        a = read_rgb_u8(tmp_path / "sr1/tiny_x4/set5" / f"{name}.png")
        assert np.array_equal(a, read_rgb_u8(tmp_path / "sr4/tiny_x4/set5" / f"{name}.png"))
