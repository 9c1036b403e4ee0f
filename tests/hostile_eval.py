"""Hostile eval runs (issue 10 items 1, 6, 12): concurrent runs into one results folder, resumed peak memory, Ctrl-C.

Each test failed before its fix: two runs with the same key shared (and corrupted) one run log, a run of another
checkpoint, checkpoint entry, loading option, model argument, model file or exec mode resumed a log it did not write, a resume reported only its own process's peak memory, and
a Ctrl-C while the finisher thread was inside torch aborted the process (exit 134).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import Tensor

import sr_bench
from sr_bench.datasets import custom_dataset, resolve_dataset
from sr_bench.errors import ResultsError
from sr_bench.eval_config import EvalOptions
from sr_bench.evaluate import EvalEvent, evaluate
from sr_bench.models import LoadOptions
from test_evaluate import Bicubicish, CtrlC, _loaded, _log_rows, _options

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------ item 1: one run per run log


class SecondRunInside(Bicubicish):
    """While the outer run does its second forward, a second run with the same key starts (as from another
    terminal); its error, if any, is kept."""

    def __init__(self, start_second: object) -> None:
        super().__init__()
        self.start_second = start_second
        self.error: BaseException | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.calls == 1 and self.error is None:
            try:
                self.start_second()  # type: ignore[operator]
            except ResultsError as exc:
                self.error = exc
        return super().forward(x)


def test_a_second_run_with_the_same_key_stops_at_once_naming_the_owner(tmp_path: Path, data_dir: Path) -> None:
    ds = resolve_dataset("set5", data_dir, 4)
    options = _options(tmp_path, protocol="ntire2023")
    model = SecondRunInside(lambda: evaluate(_loaded(Bicubicish()), ds, CPU, options))
    rec = evaluate(_loaded(model), ds, CPU, options).record
    assert isinstance(model.error, ResultsError)
    assert f"another srbench run (pid {os.getpid()}) is evaluating the same model" in str(model.error)
    rows = _log_rows(Path(rec["run_log"]))
    assert [r["name"] for r in rows] == ["baby", "bird", "butterfly", "head", "woman"]  # each image once
    assert len(list((tmp_path / "results/eval").glob("*.json"))) == 1  # the second run wrote nothing


def _variant(tmp_path: Path, change: str) -> tuple[object, EvalOptions]:
    """A run that differs from the base run in one thing that changes a number."""
    options = _options(tmp_path, limit=1)
    loaded = replace(_loaded(sha="a" * 64), model_args={"gain": 1.0}, model_file_sha256="c" * 64)
    loaded = replace(loaded, checkpoint=replace(loaded.checkpoint, key="params_ema"))
    if change == "checkpoint":
        loaded = replace(loaded, checkpoint=replace(loaded.checkpoint, sha256="b" * 64))
    elif change == "data_range":
        loaded = replace(loaded, data_range=255.0)
    elif change == "exec":
        options = replace(options, exec="channels_last")
    elif change == "protocol":
        options = replace(options, protocol="ntire2023")
    elif change == "threads":
        options = replace(options, threads=2)
    elif change == "tile":
        options = replace(options, tile=48, tile_overlap=8)
    elif change == "overlap":
        options = replace(options, tile=48, tile_overlap=4)
    elif change == "checkpoint_key":  # another entry of the same file (params where params_ema is the default)
        loaded = replace(loaded, checkpoint=replace(loaded.checkpoint, key="params"))
    elif change == "strict":
        loaded = replace(loaded, load=LoadOptions(strict=False))
    elif change == "after_load":
        loaded = replace(loaded, load=LoadOptions(after_load=("switch_deploy",)))
    elif change == "model_args":
        loaded = replace(loaded, model_args={"gain": 0.5})
    elif change == "model_file":  # the user's file.py was edited between the runs
        loaded = replace(loaded, model_file_sha256="d" * 64)
    return loaded, options


@pytest.mark.parametrize("change", ["checkpoint", "data_range", "exec", "protocol", "threads", "tile", "overlap",
                                    "checkpoint_key", "strict", "after_load", "model_args", "model_file"])
def test_the_run_log_key_covers_what_changes_a_number(change: str, tmp_path: Path, data_dir: Path) -> None:
    ds = resolve_dataset("set5", data_dir, 4)
    base, base_options = _variant(tmp_path, "")
    if change == "overlap":  # compared with a tiled base
        base_options = replace(base_options, tile=48, tile_overlap=8)
    first = evaluate(base, ds, CPU, base_options).record["run_log"]  # type: ignore[arg-type]
    loaded, options = _variant(tmp_path, change)
    second = evaluate(loaded, ds, CPU, replace(options, resume=True)).record  # type: ignore[arg-type]
    assert second["run_log"] != first and second["resumed"] is False


def test_another_srbench_version_does_not_resume(tmp_path: Path, data_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ds = resolve_dataset("set5", data_dir, 4)
    loaded, options = _variant(tmp_path, "")
    first = evaluate(loaded, ds, CPU, options).record["run_log"]  # type: ignore[arg-type]
    monkeypatch.setattr(sr_bench, "__version__", "99.0.0")
    second = evaluate(loaded, ds, CPU, replace(options, resume=True)).record  # type: ignore[arg-type]
    assert second["run_log"] != first and second["resumed"] is False


def test_the_same_model_args_in_another_order_resume(tmp_path: Path, data_dir: Path) -> None:
    ds = resolve_dataset("set5", data_dir, 4)
    first = evaluate(replace(_loaded(), model_args={"a": 1, "b": 2}), ds, CPU, _options(tmp_path, limit=1)).record
    again = evaluate(replace(_loaded(), model_args={"b": 2, "a": 1}), ds, CPU,
                     _options(tmp_path, limit=1, resume=True)).record
    assert again["resumed"] is True and again["run_log"] == first["run_log"]
    assert again["model_args"] == first["model_args"] == {"a": 1, "b": 2}


def test_the_key_covers_the_image_list(tmp_path: Path, data_dir: Path) -> None:
    hr = tmp_path / "hr"
    hr.mkdir()
    for name in ("baby", "bird"):
        (hr / f"{name}.png").write_bytes((data_dir / "Set5/HR" / f"{name}.png").read_bytes())
    first = evaluate(_loaded(sha="a" * 64), custom_dataset(hr, None, 4), CPU, _options(tmp_path)).record
    (hr / "bird.png").write_bytes((data_dir / "Set5/HR/head.png").read_bytes())  # same name, another image
    events: list[EvalEvent] = []
    second = evaluate(_loaded(sha="a" * 64), custom_dataset(hr, None, 4), CPU, _options(tmp_path, resume=True),
                      progress=events.append).record
    assert second["run_log"] != first["run_log"] and second["resumed"] is False
    assert second["images"][1]["psnr_rgb"] != first["images"][1]["psnr_rgb"]
    assert any("--resume: no finished image of this run" in e.message for e in events if e.kind == "notice")


def test_a_run_of_another_checkpoint_never_resumes_or_touches_the_first_log(tmp_path: Path, data_dir: Path) -> None:
    ds = resolve_dataset("set5", data_dir, 4)
    options = _options(tmp_path, protocol="ntire2023")
    with pytest.raises(KeyboardInterrupt):
        evaluate(_loaded(CtrlC(), sha="a" * 64), ds, CPU, options)
    first_log = next((tmp_path / "results/runs").glob("*.jsonl"))
    other = Bicubicish()
    rec = evaluate(_loaded(other, sha="b" * 64), ds, CPU, replace(options, resume=True)).record
    assert other.calls == 5 and rec["resumed"] is False and Path(rec["run_log"]) != first_log
    assert [r["name"] for r in _log_rows(first_log)] == ["baby", "bird"]
    again = Bicubicish()
    resumed = evaluate(_loaded(again, sha="a" * 64), ds, CPU, replace(options, resume=True)).record
    assert again.calls == 3 and resumed["resumed"] is True and Path(resumed["run_log"]) == first_log


# ------------------------------------------------------------- item 6: the peak memory of a resumed run


def _segments(log: Path) -> list[dict]:
    return [obj for line in log.read_text().splitlines() if (obj := json.loads(line)).get("kind") == "eval-segment"]


def test_a_resume_with_nothing_left_reports_the_earlier_peak(tmp_path: Path, data_dir: Path) -> None:
    ds = resolve_dataset("set5", data_dir, 4)
    options = _options(tmp_path, limit=2)
    first = evaluate(_loaded(), ds, CPU, options).record
    model = Bicubicish()
    again = evaluate(_loaded(model), ds, CPU, replace(options, resume=True)).record
    assert model.calls == 0 and again["resumed"] is True
    assert again["memory_mib"] == first["memory_mib"] and again["memory"]["peak_mib"] == first["memory_mib"]
    assert again["memory"]["peak_source"] == f"the earlier segment of pid {os.getpid()}: this resume ran no forward"
    assert [s["forwards"] for s in again["memory"]["segments"]] == [2, 0]


def test_a_partial_resume_reports_the_max_over_its_segments(tmp_path: Path, data_dir: Path) -> None:
    ds = resolve_dataset("set5", data_dir, 4)
    options = _options(tmp_path, protocol="ntire2023")
    with pytest.raises(KeyboardInterrupt):
        evaluate(_loaded(CtrlC()), ds, CPU, options)
    log = next((tmp_path / "results/runs").glob("*.jsonl"))
    (interrupted,) = _segments(log)
    assert interrupted["forwards"] == 2 and interrupted["complete"] is False
    assert interrupted["pid"] == os.getpid() and interrupted["peak_memory_mib"] > 0
    rec = evaluate(_loaded(), ds, CPU, replace(options, resume=True)).record
    segments = _segments(log)
    assert [s["forwards"] for s in segments] == [2, 3]
    assert rec["memory_mib"] == max(s["peak_memory_mib"] for s in segments)
    assert rec["memory"]["peak_source"] == "max over the 2 run-log segment(s) that ran forwards"


def test_a_segment_killed_without_its_line_is_named(tmp_path: Path, data_dir: Path) -> None:
    ds = resolve_dataset("set5", data_dir, 4)
    options = _options(tmp_path, limit=3, protocol="ntire2023")
    log = Path(evaluate(_loaded(), ds, CPU, replace(options, limit=2)).record["run_log"])
    lines = [line for line in log.read_text().splitlines() if '"eval-segment"' not in line]
    log.write_text("\n".join(lines) + "\n")  # as a SIGKILL leaves it: rows, no segment line
    rec = evaluate(_loaded(), ds, CPU, replace(options, resume=True)).record
    assert rec["memory"]["peak_source"].endswith(
        "; covers 1 of 3 images (an earlier process left no memory line: killed?)")


# ------------------------------------------------------------------------------ item 12: Ctrl-C exits 130

SIGINT_WHILE_DRAINING = textwrap.dedent("""
    import os, signal, sys, time
    import torch
    from sr_bench import pipeline
    from sr_bench.cli.app import main

    real = pipeline.write_png

    def save(path, array):  # the main thread has finished the loop and waits for this thread to drain
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)
        a = torch.rand(400, 400)
        end = time.time() + 2
        while time.time() < end:  # inside torch (GIL released) when the main thread gets Ctrl-C
            a @ a
        real(path, array)

    pipeline.write_png = save
    sys.argv = ["srbench", *sys.argv[1:]]
    main()
""")


def test_ctrl_c_while_the_finisher_is_inside_torch_exits_130(tmp_path: Path, data_dir: Path, weights_dir: Path) -> None:
    env = os.environ | {"PYTHONPATH": str(REPO), "SRBENCH_WEIGHTS": str(weights_dir)}
    proc = subprocess.run(
        [sys.executable, "-c", SIGINT_WHILE_DRAINING, "eval", "--model", "rfdn", "--dataset", "set5",
         "--data-root", str(data_dir), "--limit", "1", "--exec", "eager", "--threads", "1",
         "--save-sr", str(tmp_path / "sr"), "--results", str(tmp_path / "results")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "finished work was kept" in proc.stderr and "terminate called" not in proc.stderr
    log = next((tmp_path / "results/runs").glob("*.jsonl"))
    assert [r["name"] for r in _log_rows(log)] == ["baby"]  # the image being saved was finished, then the run stopped
    assert (tmp_path / "sr/rfdn_x4/set5/baby.png").is_file()
