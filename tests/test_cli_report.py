"""``srbench report`` through Typer's CliRunner, on a tiny app that mounts only this command.

Errors are asserted as the one-line ``SrBenchError`` the command raises; turning it into ``Error: ...`` on
stderr is the root app's job (sr_bench/cli/app.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sr_bench.cli.report import report
from sr_bench.errors import ResultsError, UsageError
from sr_bench.results import SCHEMA_VERSION, write_record
from test_report import VAL, eval_record, golden_txt, write_golden_records

app = typer.Typer()
app.command("report")(report)


@app.callback()
def _root() -> None:
    """Makes 'report' a subcommand, as under the real root app."""


GOLDEN_ARGS = ["--val", VAL, "--test", "none", "--flops", "ntire2023"]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    write_golden_records(folder)
    return folder


def run(*args: str | Path):
    return CliRunner().invoke(app, ["report", *map(str, args)])


def test_golden_txt_on_stdout(results: Path) -> None:
    result = run("--results", results, *GOLDEN_ARGS, "--format", "txt")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == golden_txt()
    assert result.stderr == ""


def test_golden_txt_to_file_format_from_suffix(results: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "results.txt"
    result = run("--results", results, *GOLDEN_ARGS, "--out", target)
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == golden_txt()
    assert result.stdout == "" and f"wrote {target}" in result.stderr


def test_results_folder_from_env(results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRBENCH_RESULTS", str(results))
    result = run(*GOLDEN_ARGS, "-f", "txt")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == golden_txt()


def test_rich_table_is_the_console_default(results: Path) -> None:
    result = run("--results", results, *GOLDEN_ARGS)
    assert result.exit_code == 0, result.output
    assert "18_LGVAN" in result.stdout and "00_RFDN_baseline" in result.stdout and "1114.77" in result.stdout
    assert "FLOPs: ntire2023" in result.stdout
    assert result.stdout.index("18_LGVAN") < result.stdout.index("00_RFDN_baseline")


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        ("md", "| 18_LGVAN | 29.00 | 80.19 | 0.118 | 9.06 | 332.39 | 1114.77 | 122 |"),
        ("csv", "18_LGVAN,4,ntire2023,cuda,,28.996871781479403,80.19443962097168,"),
        ("json", '"val_psnr": 28.996871781479403'),
    ],
)
def test_other_formats_follow_the_suffix(results: Path, tmp_path: Path, suffix: str, expected: str) -> None:
    target = tmp_path / f"table.{suffix}"
    result = run("--results", results, *GOLDEN_ARGS, "-o", target)
    assert result.exit_code == 0, result.output
    assert expected in target.read_text()


def test_extras_comma_separated_and_repeated(results: Path) -> None:
    result = run("--results", results, *GOLDEN_ARGS, "-f", "txt", "--extra", "ssim, y", "-x", "runtime-stats")
    assert result.exit_code == 0, result.output
    header = [h.strip() for h in result.stdout.splitlines()[0].split("\t")]
    assert header[:8] == ["Model", "Val PSNR", "Val SSIM", "Val PSNR-Y", "Val SSIM-Y", "Val Time [ms]",
                          "Val Median [ms]", "Val Std [ms]"]


def test_score_columns(results: Path) -> None:
    result = run("--results", results, *GOLDEN_ARGS, "-f", "csv", "--score", "2024", "--baseline", "00_RFDN_baseline",
                 "--order", "score")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith("Score Time,Score FLOPs,Score Params,Score,PSNR Gate")
    assert lines[1].startswith("00_RFDN_baseline,") and lines[1].endswith(",True")


def test_corrupt_and_incompatible_records_warn_and_the_rest_is_reported(results: Path) -> None:
    (results / "eval" / "broken.json").write_text("{not json")
    newer = eval_record("ghost", VAL, 30.0, 1.0, schema_version=SCHEMA_VERSION + 1)
    (results / "eval" / "newer.json").write_text(json.dumps(newer))
    result = run("--results", results, *GOLDEN_ARGS, "-f", "txt")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == golden_txt()
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2
    assert warnings[0].startswith("Warning: skipped eval/broken.json: corrupt JSON")
    assert warnings[1].startswith(f"Warning: skipped eval/newer.json: schema version {SCHEMA_VERSION + 1} is incompatible")


def test_missing_dataset_is_a_warning_naming_what_exists(results: Path) -> None:
    result = run("--results", results, "--test", "none", "-f", "txt")
    assert result.exit_code == 0, result.output
    assert f"no eval record on dataset 'ntire-valid' (records have: {VAL}); choose one with --val NAME" in result.stderr


def test_plot(results: Path, tmp_path: Path) -> None:
    write_record(eval_record("lonely", VAL, 28.5, 20.0), results)
    target = tmp_path / "fig.png"
    result = run("--results", results, *GOLDEN_ARGS, "-f", "txt", "--plot", target)
    assert result.exit_code == 0, result.output
    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "Warning: lonely: no FLOPs (ntire2023); drawn as a hollow marker" in result.stderr
    assert f"wrote {target}" in result.stderr


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--results", "{missing}"], ResultsError, r"does not exist: run 'srbench profile --model NAME'"),
        (["--results", "{empty}"], ResultsError, r"no records in .*: run 'srbench profile"),
        (["--format", "html"], UsageError, r"unknown format 'html': use one of rich, txt, md, csv, json"),
        (["--format", "rich", "--out", "t.txt"], UsageError, "rich table is for the console"),
        (["--out", "t.xlsx"], UsageError, r"cannot tell the format from t.xlsx"),
        (["--flops", "macs"], UsageError, "unknown FLOPs convention 'macs'"),
        (["--extra", "ssim,psnr"], UsageError, r"unknown extra column\(s\) psnr"),
        (["--score", "2024", "--baseline", "RLFN"], ResultsError, r"baseline 'RLFN' is not in the records"),
        (["--score", "2024"], UsageError, "a score needs a baseline"),
    ],
)
def test_errors_are_one_line_library_errors(results: Path, tmp_path: Path, args: list[str], error: type,
                                            message: str) -> None:
    (tmp_path / "empty").mkdir()
    spots = {"{missing}": str(tmp_path / "missing"), "{empty}": str(tmp_path / "empty")}
    args = [spots.get(a, a) for a in args]
    if "--results" not in args:
        args = ["--results", str(results), "--val", VAL, *args]
    result = run(*args)
    assert result.exit_code != 0
    assert isinstance(result.exception, error), result.output
    assert "\n" not in str(result.exception)
    assert re.search(message, str(result.exception)), str(result.exception)
