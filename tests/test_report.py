"""Challenge tables: the 2023 golden results.txt, row rules, extras, scores, renderers."""

from __future__ import annotations

import csv
import json
import math
import sys
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from conftest import TEST_DATA

from sr_bench.errors import ResultsError, UsageError
from sr_bench.report import build_table, format_for_path, load_table, render, to_rich
from sr_bench.results import load_records, write_record

VAL = "div2k-valid"

# The 2023 results.json values behind results_2023_lgvan.txt (protocol.md, "The 2023 table, as a golden file").
GOLDEN_2023 = {
    "18_LGVAN": dict(psnr=28.996871781479403, time=80.19443962097168, mem=1114.7724609375, params=118243,
                     flops=9057572992, fvcore=9036601472, acts=332392832, conv=122),
    "00_RFDN_baseline": dict(psnr=29.041133271361115, time=39.3906377696991, mem=788.1298828125, params=433448,
                             flops=27102622560, fvcore=27046231296, acts=112034240, conv=64),
}


def golden_txt() -> bytes:
    """The official 2023 results.txt (copied from specs/ into tests/data, so it always ships)."""
    return (TEST_DATA / "results_2023_lgvan.txt").read_bytes()


def profile_record(model: str, params: float, flops: float, fvcore: float | None, acts: float, conv: int,
                   created: str | None = None, **extra) -> dict:
    record = {"kind": "profile", "model": model, "scale": 4, "input_size": [256, 256], "device": "cuda",
              "protocol": "ntire2023", "params": params,
              "flops": {"ntire2023": flops, "fvcore": fvcore, "full": None},
              "activations": acts, "num_conv": conv, "runtime_ms": None, "memory_mib": None, "env": {},
              "warnings": []}
    if created:
        record["created"] = created
    record.update(extra)
    return record


def eval_record(model: str, dataset: str, psnr: float, time: float, mem: float | None = None,
                created: str | None = None, **extra) -> dict:
    record = {"kind": "eval", "model": model, "scale": 4, "dataset": dataset, "protocol": "ntire2023",
              "device": "cuda", "images": [],
              "mean": {"psnr_rgb": psnr, "ssim_rgb": 0.8, "psnr_y": psnr + 1.5, "ssim_y": 0.85, "runtime_ms": time},
              "runtime_ms": {"mean": time, "median": time * 0.9, "std": 1.25, "samples": [time]},
              "memory_mib": mem, "env": {}}
    if created:
        record["created"] = created
    record.update(extra)
    return record


def write_golden_records(folder: Path) -> None:
    """LGVAN's run is recorded first, then the baseline, as in the official results.json."""
    for i, (model, v) in enumerate(GOLDEN_2023.items()):
        day = f"2023-03-2{i}T10:00:00+00:00"
        write_record(eval_record(model, VAL, v["psnr"], v["time"], v["mem"], created=day), folder)
        write_record(profile_record(model, v["params"], v["flops"], v["fvcore"], v["acts"], v["conv"],
                                    created=day), folder)


@pytest.fixture
def golden_dir(tmp_path: Path) -> Path:
    write_golden_records(tmp_path)
    return tmp_path


def test_golden_2023_results_txt(golden_dir: Path) -> None:
    records, warnings = load_records(golden_dir)
    assert warnings == []
    table = build_table(records, val=VAL, test=None, flops="ntire2023")
    assert render(table, "txt").encode() == golden_txt()


def test_table_keeps_raw_values(golden_dir: Path) -> None:
    table, _ = load_table(golden_dir, val=VAL, test=None, flops="ntire2023")
    lgvan = table.rows[0]
    assert lgvan["val_psnr"] == 28.996871781479403
    assert lgvan["val_time_ms"] == 80.19443962097168
    assert lgvan["params_m"] == pytest.approx(0.118243, rel=1e-15)
    assert lgvan["conv"] == 122 and lgvan["ave_time_ms"] is None


def test_created_order_follows_first_record_not_name(tmp_path: Path) -> None:
    write_golden_records(tmp_path)
    # A newer LGVAN run does not move LGVAN: a model keeps the place of its first record.
    write_record(eval_record("18_LGVAN", VAL, 29.5, 70.0, 1000.0, created="2023-04-01T00:00:00+00:00"), tmp_path)
    table, _ = load_table(tmp_path, val=VAL, test=None)
    assert [r["model"] for r in table.rows] == ["18_LGVAN", "00_RFDN_baseline"]
    assert table.rows[0]["val_psnr"] == 29.5, "the newest val record is used"
    by_name, _ = load_table(tmp_path, val=VAL, test=None, order="name")
    assert [r["model"] for r in by_name.rows] == ["00_RFDN_baseline", "18_LGVAN"]
    by_time, _ = load_table(tmp_path, val=VAL, test=None, order="time")
    assert [r["model"] for r in by_time.rows] == ["00_RFDN_baseline", "18_LGVAN"]


def test_test_split_adds_test_and_ave_columns(golden_dir: Path) -> None:
    write_record(eval_record("18_LGVAN", "div2k-test", 27.07, 40.0, 2000.0), golden_dir)
    table, notes = load_table(golden_dir, val=VAL, test="div2k-test", flops="ntire2023")
    assert notes == []
    lines = render(table, "txt").splitlines()
    assert lines[0].split("\t")[:7] == ["Model" + " " * 15, "Val PSNR  ", "Test PSNR ", "Val Time [ms] ",
                                        "Test Time [ms]", "Ave Time [ms] ", "Params [M]"]
    lgvan, rfdn = table.rows
    assert lgvan["ave_time_ms"] == pytest.approx((80.19443962097168 + 40.0) / 2)
    assert lgvan["mem_mib"] == 1114.7724609375, "Mem is the val record's figure"
    assert lines[2].split("\t")[2:6] == ["-         ", "39.39         ", "-             ", "-             "]
    assert rfdn["test_psnr"] is None and rfdn["ave_time_ms"] is None


def test_missing_datasets_are_named_and_cells_left_empty(golden_dir: Path) -> None:
    table, notes = load_table(golden_dir, val="ntire-valid", test="ntire-test")
    assert notes == [
        f"no eval record on dataset 'ntire-valid' (records have: {VAL}); choose one with --val NAME",
        f"no eval record on dataset 'ntire-test' (records have: {VAL}); choose one with --test NAME, or --test none",
    ]
    assert [r["model"] for r in table.rows] == ["18_LGVAN", "00_RFDN_baseline"]
    assert all(r["val_psnr"] is None and r["mem_mib"] is None for r in table.rows)
    assert table.rows[0]["flops_g"] == pytest.approx(9.036601472), "fvcore is the default convention"


def test_protocols_devices_and_exec_modes_split_rows_and_get_columns(golden_dir: Path) -> None:
    write_record(eval_record("18_LGVAN", VAL, 29.0, 12.0, 300.0, protocol="srbench", device="cpu"), golden_dir)
    bf16 = {"label": "bf16", "dtype": "bf16", "memory_format": "contiguous", "compile": False}
    write_record(eval_record("18_LGVAN", VAL, 28.99, 30.0, 600.0, exec=bf16), golden_dir)
    table, _ = load_table(golden_dir, val=VAL, test=None)
    headers = [c.header for c in table.columns]
    assert headers[:4] == ["Model", "Protocol", "Device", "Exec"]
    assert {(r["model"], r["protocol"], r["device"], r["exec"], r["val_time_ms"]) for r in table.rows} == {
        ("18_LGVAN", "ntire2023", "cuda", None, 80.19443962097168), ("18_LGVAN", "srbench", "cpu", None, 12.0),
        ("18_LGVAN", "ntire2023", "cuda", "bf16", 30.0), ("00_RFDN_baseline", "ntire2023", "cuda", None, 39.3906377696991)}
    assert "protocol: per row; device: per row; exec: per row" in table.caption()
    line = next(line for line in render(table, "txt").splitlines() if "\tbf16" in line)
    assert line.startswith("18_LGVAN            \tntire2023\tcuda  \tbf16\t28.99     \t30.00         \t")


def test_extras_add_columns_beside_their_base(golden_dir: Path) -> None:
    table, _ = load_table(golden_dir, val=VAL, test=None, flops="ntire2023",
                          extras=["ssim", "y", "runtime-stats", "flops-all"])
    headers = [c.header for c in table.columns]
    assert headers == ["Model", "Val PSNR", "Val SSIM", "Val PSNR-Y", "Val SSIM-Y", "Val Time [ms]",
                       "Val Median [ms]", "Val Std [ms]", "Params [M]", "FLOPs [G]", "FLOPs fvcore [G]",
                       "FLOPs full [G]", "Acts [M]", "Mem [M]", "Conv"]
    row = table.rows[0]
    assert row["val_time_median_ms"] == pytest.approx(80.19443962097168 * 0.9)
    assert row["flops_full_g"] is None and row["flops_fvcore_g"] == pytest.approx(9.036601472)


def test_scores_against_baseline(golden_dir: Path) -> None:
    table, _ = load_table(golden_dir, val=VAL, test=None, flops="ntire2023", score=2024, baseline="00_RFDN_baseline")
    lgvan, rfdn = table.rows
    assert rfdn["score"] == pytest.approx(math.exp(2)), "the baseline scores exp(2) on every term"
    runtime = math.exp(2 * 80.19443962097168 / 39.3906377696991)
    flops = math.exp(2 * 9057572992 / 27102622560)
    params = math.exp(2 * 118243 / 433448)
    assert lgvan["score"] == pytest.approx(0.7 * runtime + 0.15 * flops + 0.15 * params)
    assert lgvan["psnr_gate"] is True
    table26, _ = load_table(golden_dir, val=VAL, test=None, flops="ntire2023", score=2026,
                            baseline="00_RFDN_baseline", order="score")
    assert table26.rows[0]["model"] == "00_RFDN_baseline"
    assert table26.rows[1]["score"] == pytest.approx(0.8 * runtime + 0.1 * flops + 0.1 * params)
    assert "score 2026 vs 00_RFDN_baseline" in table26.caption() and "(Val Time)" in table26.caption()


def test_score_uses_ave_time_and_gates_test_psnr(golden_dir: Path) -> None:
    write_record(eval_record("18_LGVAN", "div2k-test", 26.5, 40.0), golden_dir)
    write_record(eval_record("00_RFDN_baseline", "div2k-test", 27.0, 20.0), golden_dir)
    table, _ = load_table(golden_dir, val=VAL, test="div2k-test", score=2025, baseline="00_RFDN_baseline")
    lgvan, rfdn = table.rows
    assert lgvan["score_runtime"] == pytest.approx(math.exp(2 * lgvan["ave_time_ms"] / rfdn["ave_time_ms"]))
    assert lgvan["psnr_gate"] is False and rfdn["psnr_gate"] is True
    assert "fail" in render(table, "txt").splitlines()[1]


def test_unknown_baseline_is_a_clear_error(golden_dir: Path) -> None:
    expected = r"baseline 'RLFN' is not in the records \(models: 00_RFDN_baseline, 18_LGVAN\)"
    with pytest.raises(ResultsError, match=expected):
        load_table(golden_dir, val=VAL, test=None, score=2024, baseline="RLFN")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"flops": "macs"}, "unknown FLOPs convention 'macs'"),
        ({"extras": ["psnr"]}, "unknown extra column"),
        ({"score": 2023, "baseline": "x"}, "unknown score year 2023"),
        ({"score": 2024}, r"needs a baseline.*RLFN"),
        ({"baseline": "x"}, "only matters with --score"),
        ({"order": "score"}, "ordering by score needs --score"),
    ],
)
def test_bad_options_are_usage_errors(golden_dir: Path, options: dict, message: str) -> None:
    records, _ = load_records(golden_dir)
    with pytest.raises(UsageError, match=message):
        build_table(records, **options)


def test_profile_only_model_gets_a_row_with_empty_quality(golden_dir: Path) -> None:
    write_record(profile_record("lonely", 1e6, 2e9, 2e9, 3e6, 10), golden_dir)
    table, _ = load_table(golden_dir, val=VAL, test=None)
    lonely = next(r for r in table.rows if r["model"] == "lonely")
    assert lonely["val_psnr"] is None and lonely["params_m"] == 1.0
    assert "protocol: ntire2023; device: cuda" in table.caption(), "a profile-only row does not split the caption"
    assert render(table, "txt").splitlines()[-1].startswith("lonely              \t-         \t-             \t1.000")


def test_all_records_unusable_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(ResultsError, match="no usable records in .*x.json: corrupt JSON"):
        load_table(tmp_path)


def test_md_csv_json_and_rich(golden_dir: Path) -> None:
    table, _ = load_table(golden_dir, val=VAL, test=None, flops="ntire2023")
    md = render(table, "md").splitlines()
    assert md[0] == (f"*x4; val: {VAL}; FLOPs: ntire2023 (module hooks as in NTIRE 2022/2023; 1 MAC = 1 FLOP) at 256×256 input; "
                     "protocol: ntire2023; device: cuda*")
    assert md[2] == "| Model | Val PSNR | Val Time [ms] | Params [M] | FLOPs [G] | Acts [M] | Mem [M] | Conv |"
    assert md[3] == "|:---|---:|---:|---:|---:|---:|---:|---:|"
    assert md[4] == "| 18_LGVAN | 29.00 | 80.19 | 0.118 | 9.06 | 332.39 | 1114.77 | 122 |"

    rows = list(csv.DictReader(StringIO(render(table, "csv"))))
    assert list(rows[0])[:6] == ["Model", "Scale", "Protocol", "Device", "Exec", "Val PSNR"]
    assert float(rows[0]["Val PSNR"]) == 28.996871781479403, "csv keeps raw floats"

    doc = json.loads(render(table, "json"))
    assert doc["flops"] == "ntire2023" and doc["test"] is None
    assert doc["rows"][1]["model"] == "00_RFDN_baseline" and doc["rows"][1]["conv"] == 64

    console = Console(file=StringIO(), width=200, color_system=None)
    console.print(to_rich(table))
    text = console.file.getvalue()
    assert "18_LGVAN" in text and "1114.77" in text and "FLOPs: ntire2023" in text


def test_csv_keeps_integers_integers_when_a_row_has_no_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # any `import pandas` now fails: the CSV must not need it
    write_record(profile_record("rfdn", 433448, 27102622560, 27046231296, 112034240, 64), tmp_path)
    for model in ("rfdn", "unprofiled"):
        write_record(eval_record(model, VAL, 29.0, 40.0), tmp_path)
    table, _ = load_table(tmp_path, val=VAL, test=None, flops="ntire2023")
    text = render(table, "csv")
    rows = {row["Model"]: row for row in csv.DictReader(StringIO(text))}
    assert rows["rfdn"]["Conv"] == "64" and rows["rfdn"]["Scale"] == "4", text
    assert rows["unprofiled"]["Conv"] == "" and rows["unprofiled"]["Params [M]"] == "", text
    assert float(rows["rfdn"]["Params [M]"]) == 0.433448


def test_rich_never_cuts_a_value_on_a_narrow_console(golden_dir: Path) -> None:
    table, _ = load_table(golden_dir, val=VAL, test=None, flops="ntire2023", extras=["ssim", "y", "flops-all"])
    console = Console(file=StringIO(), width=60, color_system=None)
    console.print(to_rich(table), crop=False)
    rows = [line.split() for line in console.file.getvalue().splitlines() if line.strip().startswith("18_LGVAN")]
    assert rows == [["18_LGVAN", "29.00", "0.8000", "30.50", "0.8500", "80.19", "0.118", "9.06", "9.04", "-",
                     "332.39", "1114.77", "122"]]


def test_format_from_suffix_and_unknown_format(golden_dir: Path) -> None:
    assert format_for_path(Path("a/table.MD")) == "md"
    with pytest.raises(UsageError, match="cannot tell the format from t.xlsx"):
        format_for_path(Path("t.xlsx"))
    table, _ = load_table(golden_dir, val=VAL, test=None)
    with pytest.raises(UsageError, match="unknown format 'html'"):
        render(table, "html")


def test_plot_writes_figure_and_reports_left_out_models(golden_dir: Path, tmp_path: Path) -> None:
    from sr_bench.plot import plot_psnr_runtime

    write_record(profile_record("profile_only", 1e5, 1e9, 1e9, 1e6, 5), golden_dir)
    write_record(eval_record("no_flops", VAL, 28.8, 20.0), golden_dir)
    table, _ = load_table(golden_dir, val=VAL, test=None, flops="ntire2023")
    png = tmp_path / "fig.png"
    warnings = plot_psnr_runtime(table, png, baseline="00_RFDN_baseline")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert warnings == ["profile_only: no val PSNR and runtime; left out of the plot",
                        "no_flops: no FLOPs (ntire2023); drawn as a hollow marker"]
    svg = tmp_path / "fig.svg"
    plot_psnr_runtime(table, svg, baseline="00_RFDN_baseline")
    text = svg.read_text()
    assert "18_LGVAN" in text and "00_RFDN_baseline (baseline)" in text and "FLOPs [G]" in text
    assert "ntire2023" in text and f"on {VAL}" in text


def test_plot_errors(golden_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sr_bench.errors import SrBenchError
    from sr_bench.plot import plot_psnr_runtime

    table, _ = load_table(golden_dir, val=VAL, test=None)
    with pytest.raises(UsageError, match=r"cannot plot to .*fig.jpg: use a .png, .pdf or .svg name"):
        plot_psnr_runtime(table, tmp_path / "fig.jpg")
    with pytest.raises(UsageError, match="cannot plot split 'test': the table has only val"):
        plot_psnr_runtime(table, tmp_path / "fig.png", split="test")
    empty, _ = load_table(golden_dir, val="set5", test=None)
    with pytest.raises(UsageError, match="nothing to plot"):
        plot_psnr_runtime(empty, tmp_path / "fig.png")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SrBenchError, match=r"plotting needs matplotlib: pip install 'srbench\[plot\]'"):
        plot_psnr_runtime(table, tmp_path / "fig.png")
    assert not (tmp_path / "fig.png").exists()


def test_partial_eval_is_passed_over_for_a_complete_one(golden_dir: Path) -> None:
    images = [{"name": f"{i:04d}"} for i in range(10)]
    write_record(eval_record("18_LGVAN", VAL, 29.1, 70.0, images=images, data={"images_in_set": 100, "limit": 10}),
                 golden_dir)
    table, notes = load_table(golden_dir, val=VAL, test=None)
    assert notes == ["18_LGVAN: 1 newer partial eval record(s) left out for a complete untiled one on div2k-valid"]
    assert table.rows[0]["val_psnr"] == GOLDEN_2023["18_LGVAN"]["psnr"]

def test_runtime_not_comparable_across_ranks_is_named_not_shown(golden_dir: Path) -> None:
    reason = "ranks ran on different devices (NVIDIA A100; NVIDIA H100): see shards[].runtime_ms"
    record = eval_record("18_LGVAN", VAL, 29.2, 70.0, created="2023-03-25T10:00:00+00:00", runtime_ms=None,
                         sharding={"world_size": 2, "split": "balanced by LR pixel count", "runtime_comparable": False,
                                   "runtime_not_comparable": reason})
    record["mean"].pop("runtime_ms")
    write_record(record, golden_dir)
    table, notes = load_table(golden_dir, val=VAL, test=None)
    row = next(r for r in table.rows if r["model"] == "18_LGVAN")
    assert row["val_psnr"] == 29.2 and row["val_time_ms"] is None
    assert row["notes"] == "val runtime not comparable"
    assert f"18_LGVAN: no val time on {VAL}: {reason}" in notes
    assert "runtime not comparable, time left empty: 18_LGVAN val (ranks on different devices)" in table.caption()
    baseline = next(r for r in table.rows if r["model"] == "00_RFDN_baseline")
    assert baseline["notes"] is None and baseline["val_time_ms"] == GOLDEN_2023["00_RFDN_baseline"]["time"]
