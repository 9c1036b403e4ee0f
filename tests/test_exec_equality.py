"""No execution mode may silently change a quality number.

* ``--exec auto`` (channels_last fp32 on CPU) must give the same per-image PSNR/SSIM as eager NCHW fp32 on Set5
  (official LR) for LGVAN, RFDN and DLGSANet-Tiny: PSNR (RGB and Y) within 1e-4 dB, SSIM within 1e-5. The two
  layouts sum in different orders, so a few output pixels may round to a neighbouring uint8 value: identical to
  these tolerances, not bit for bit.
* A reduced-precision eval (bf16) records its PSNR change against the newest matching fp32 record, or says how
  to get one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import require_file
from sr_bench.datasets import resolve_dataset
from sr_bench.eval_config import EvalOptions
from sr_bench.evaluate import EvalEvent, evaluate
from sr_bench.fp32_reference import fp32_reference
from sr_bench.execution import AUTO_TOLERANCE
from sr_bench.models import LoadedModel, resolve_model

CPU = torch.device("cpu")
THREADS = 1  # one thread: two OpenMP threads slow to a crawl when another process shares the 2 cores
PSNR_TOL = 1e-4  # dB
SSIM_TOL = 1e-5


def _checkpoint(name: str, weights_dir: Path, request: pytest.FixtureRequest) -> Path:
    """The official checkpoint (built-in), or DLGSANet's seeded fixture (a large asset, asked for only here)."""
    if name == "dlgsanet-tiny":  # seeded weights, BasicSR layout
        return require_file(request.getfixturevalue("fixtures_dir") / "dlgsanet" / "tiny_x4_seed0.pth")
    return require_file(weights_dir / {"lgvan": "team18_LGVAN.pth", "rfdn": "team00_rfdn.pth"}[name])


def _model(name: str, weights_dir: Path, request: pytest.FixtureRequest) -> LoadedModel:
    return resolve_model(name, scale=4, weights=_checkpoint(name, weights_dir, request), require_weights=True)


def _run(loaded: LoadedModel, data_dir: Path, results: Path, exec_text: str, limit: int | None = None,
         events: list[EvalEvent] | None = None) -> dict:
    """Evaluate on Set5 and return the record as stored (with its id)."""
    options = EvalOptions(results_dir=results, exec=exec_text, threads=THREADS, limit=limit)
    dataset = resolve_dataset("set5", data_dir, loaded.scale)
    result = evaluate(loaded, dataset, CPU, options, progress=None if events is None else events.append)
    return json.loads(result.path.read_text())


# ------------------------------------------------------------------------------------- eager against auto


@pytest.fixture(scope="module", params=["lgvan", "rfdn", "dlgsanet-tiny"])
def eager_and_auto(request: pytest.FixtureRequest, weights_dir: Path, data_dir: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """One model over the whole of Set5, once eager and once auto, into one results folder."""
    loaded = _model(request.param, weights_dir, request)
    results = tmp_path_factory.mktemp(f"equality-{request.param}")
    eager = _run(loaded, data_dir, results, "eager")
    auto = _run(loaded, data_dir, results, "auto")
    return eager, auto


def test_auto_keeps_every_per_image_quality_number(eager_and_auto: tuple[dict, dict]) -> None:
    eager, auto = eager_and_auto
    assert [r["name"] for r in auto["images"]] == [r["name"] for r in eager["images"]]
    assert len(eager["images"]) == 5
    for e, a in zip(eager["images"], auto["images"]):
        for key in ("psnr_rgb", "psnr_y"):
            assert abs(a[key] - e[key]) <= PSNR_TOL, (e["name"], key, e[key], a[key])
        for key in ("ssim_rgb", "ssim_y"):
            assert abs(a[key] - e[key]) <= SSIM_TOL, (e["name"], key, e[key], a[key])


def test_auto_record_says_which_mode_ran_and_why(eager_and_auto: tuple[dict, dict]) -> None:
    eager, auto = eager_and_auto
    assert eager["exec"]["label"] == "eager" and eager["exec"]["probe"] is None
    run = auto["exec"]
    assert run["label"] == "channels_last+retain_heap" and run["memory_format"] == "channels_last"
    assert run["dtype"] == "fp32" and run["dtype_method"] is None and run["compile"] is False
    assert run["threads"] == THREADS and auto["env"]["torch_threads"] == THREADS
    probe = run["probe"]
    assert probe["chosen"] == "channels_last" and "matches eager" in probe["reason"]
    assert probe["data_range"] == auto["data_range"] and probe["tolerance"] == AUTO_TOLERANCE
    assert 0 <= probe["max_abs_diff"] <= AUTO_TOLERANCE * auto["data_range"]
    assert len(probe["probe_shape"]) == 4
    assert "fp32_reference" not in auto  # fp32 runs are the reference, they carry none


# --------------------------------------------------------------------------------- bf16 against fp32


@pytest.fixture(scope="module")
def rfdn(weights_dir: Path, request: pytest.FixtureRequest) -> LoadedModel:
    return _model("rfdn", weights_dir, request)


def test_bf16_record_carries_its_psnr_change_from_fp32(rfdn: LoadedModel, data_dir: Path, tmp_path: Path) -> None:
    fp32 = _run(rfdn, data_dir, tmp_path, "auto", limit=2)
    events: list[EvalEvent] = []
    bf16 = _run(rfdn, data_dir, tmp_path, "bf16", limit=2, events=events)
    assert bf16["exec"]["label"] == "bf16" and bf16["exec"]["dtype_method"] == "autocast"
    ref = bf16["fp32_reference"]
    assert ref["record_id"] == fp32["id"] and ref["exec"] == "channels_last+retain_heap" and ref["images_compared"] == 2
    rgb = [b["psnr_rgb"] - f["psnr_rgb"] for b, f in zip(bf16["images"], fp32["images"])]
    y = [b["psnr_y"] - f["psnr_y"] for b, f in zip(bf16["images"], fp32["images"])]
    assert ref["psnr_rgb_delta_mean"] == pytest.approx(sum(rgb) / 2, abs=1e-12)
    assert ref["psnr_rgb_delta_max_abs"] == pytest.approx(max(map(abs, rgb)), abs=1e-12)
    assert ref["psnr_y_delta_mean"] == pytest.approx(sum(y) / 2, abs=1e-12)
    assert 0 < ref["psnr_rgb_delta_max_abs"] < 0.5  # bf16 really ran, and stays close
    assert abs(ref["psnr_rgb_delta_mean"]) < 0.5
    notice = [e.message for e in events if e.kind == "notice"]
    assert len(notice) == 1 and "bf16 changes PSNR RGB by" in notice[0] and fp32["id"] in notice[0]
    assert notice[0] in bf16["notices"]


def test_bf16_without_an_fp32_record_says_how_to_get_one(rfdn: LoadedModel, data_dir: Path, tmp_path: Path) -> None:
    events: list[EvalEvent] = []
    bf16 = _run(rfdn, data_dir, tmp_path, "bf16", limit=2, events=events)
    assert bf16["fp32_reference"] is None
    notice = [e.message for e in events if e.kind == "notice"]
    assert len(notice) == 1 and notice[0] in bf16["notices"]
    assert notice[0].startswith("no fp32 eval of rfdn x4 on set5") and "--exec auto (or eager) first" in notice[0]


def _stored(created: str, *, dtype: str = "fp32", sha: str = "abc", names: tuple[str, ...] = ("a", "b"),
            psnr: float = 30.0, **changes: object) -> dict:
    record = {
        "kind": "eval", "id": created, "created": created, "model": "m", "scale": 4, "dataset": "set5",
        "data_range": 1.0, "tile": None, "device": "cpu", "checkpoint": {"sha256": sha},
        "data": {"hr_dir": "/d/Set5/HR", "lr_dir": "/d/Set5/LR_bicubic/X4"},
        "exec": {"label": "eager" if dtype == "fp32" else dtype, "dtype": dtype},
        "images": [{"name": n, "psnr_rgb": psnr, "psnr_y": psnr + 1} for n in names],
    }
    return record | changes


def test_fp32_reference_takes_the_newest_record_of_the_same_weights_and_images() -> None:
    run = _stored("run", dtype="bf16", names=("a", "b"), psnr=29.9)
    stored = [
        _stored("old", psnr=30.1),
        _stored("wanted", names=("a", "b", "c"), psnr=30.0),  # a longer fp32 run (larger --limit) serves too
        _stored("other-weights", sha="def"),
        _stored("too-few-images", names=("a",)),
        _stored("not-fp32", dtype="bf16"),
        _stored("other-folder", data={"hr_dir": "/elsewhere/HR", "lr_dir": "/d/Set5/LR_bicubic/X4"}),
        _stored("tiled", tile={"size": 64, "overlap": 32}),
    ]
    ref = fp32_reference(run, stored)
    assert ref is not None and ref["record_id"] == "wanted" and ref["images_compared"] == 2
    assert ref["psnr_rgb_delta_mean"] == pytest.approx(-0.1) and ref["psnr_y_delta_max_abs"] == pytest.approx(0.1)
    assert fp32_reference(run, stored[2:]) is None
    assert fp32_reference(_stored("random", dtype="bf16", sha=None), [_stored("x", sha=None)]) is None
