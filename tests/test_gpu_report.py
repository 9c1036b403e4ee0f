"""``report`` marks rows whose runtime was measured under a fair-timing (GPU conditions) warning."""

from __future__ import annotations

import json

from sr_bench.report import build_table, render, to_rich

WARNING = "GPU throttled for heat or power during the timed split (sw_power_cap): let it cool or check its power limit"


def _eval(model: str, dataset: str, time: float, conditions: dict | None) -> dict:
    return {"kind": "eval", "model": model, "scale": 4, "dataset": dataset, "protocol": "robust", "device": "cuda:0",
            "exec": {"label": "eager"}, "images": [], "memory_mib": 100.0, "env": {},
            "mean": {"psnr_rgb": 30.0, "ssim_rgb": 0.8, "psnr_y": 31.0, "ssim_y": 0.85, "runtime_ms": time},
            "runtime_ms": {"mean": time, "median": time, "std": 0.0}, "gpu_conditions": conditions}


def _records() -> list[dict]:
    return [
        _eval("hot", "set5", 10.0, {"warnings": [WARNING]}),
        _eval("cool", "set5", 12.0, {"warnings": []}),
        _eval("cpu-like", "set5", 14.0, None),  # no conditions read (CPU, or no NVML): nothing to mark
        _eval("hot-test", "set5", 9.0, None),
        _eval("hot-test", "set14", 9.0, {"warnings": [WARNING]}),
    ]


def test_rows_measured_under_a_gpu_warning_are_marked_and_noted() -> None:
    table = build_table(_records(), val="set5", test="set14", order="name")
    txt = render(table, "txt").splitlines()
    assert [line.split("\t")[0].strip() for line in txt[1:]] == ["cool", "cpu-like", "hot (!)", "hot-test (!)"]
    assert f"hot: runtime measured under a GPU warning, marked '(!)': {WARNING}" in table.notes
    assert f"hot-test: runtime measured under a GPU warning, marked '(!)': {WARNING}" in table.notes  # its test split
    assert "| hot (!) |" in render(table, "md")
    rich_models = [cell.plain for cell in to_rich(table).columns[0].cells]
    assert rich_models == ["cool", "cpu-like", "hot (!)", "hot-test (!)"]


def test_machine_formats_carry_the_warning_as_a_column() -> None:
    table = build_table(_records(), val="set5", test=None, order="name")
    rows = json.loads(render(table, "json"))["rows"]
    assert [r["gpu_warning"] for r in rows] == [None, None, WARNING, None]
    assert render(table, "csv").splitlines()[0].endswith(",GPU warning")


def test_no_warning_no_mark_and_no_extra_column() -> None:
    table = build_table(_records()[1:3], val="set5", test=None)
    assert "(!)" not in render(table, "txt") and "GPU warning" not in render(table, "csv")
    assert not [n for n in table.notes if "GPU warning" in n]
