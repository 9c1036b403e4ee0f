"""Results store: atomic writes, record naming, loading with warnings, concurrent writers and readers."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import sr_bench
from sr_bench.errors import ResultsError
from sr_bench.results import (
    SCHEMA_VERSION,
    atomic_write_json,
    atomic_write_text,
    eval_coverage,
    is_partial,
    load_records,
    split_measurement,
    upgrade,
    validate,
    write_record,
)

WRITERS = 4
RECORDS_PER_WRITER = 25
PAYLOAD = 4000  # floats per record: big enough that a non-atomic write would be seen half done


def profile_record(model: str = "lgvan", **extra) -> dict:
    record = {"kind": "profile", "model": model, "scale": 4, "params": 118243,
              "flops": {"ntire2023": 9057572992, "fvcore": 9036601472, "full": None}}
    record.update(extra)
    return record


def eval_record(model: str = "lgvan", dataset: str = "set5", **extra) -> dict:
    record = {"kind": "eval", "model": model, "scale": 4, "dataset": dataset,
              "mean": {"psnr_rgb": 30.0, "runtime_ms": 12.5}}
    record.update(extra)
    return record


def _write_many(folder: str, writer: int) -> None:
    """Child-process body: one writer of the concurrency test."""
    for i in range(RECORDS_PER_WRITER):
        write_record(profile_record(f"w{writer}", index=i, samples=[float(i)] * PAYLOAD), Path(folder))


def test_write_record_adds_provenance_and_names_the_file(tmp_path: Path) -> None:
    original = eval_record(model="my net.py:Net", dataset="div2k-valid")
    path = write_record(original, tmp_path)
    assert "id" not in original, "the caller's dict must not be modified"
    assert path.parent == tmp_path / "eval"
    stored = json.loads(path.read_text())
    assert stored["schema_version"] == SCHEMA_VERSION
    assert stored["srbench_version"] == sr_bench.__version__
    assert datetime.fromisoformat(stored["created"]).utcoffset().total_seconds() == 0
    assert uuid.UUID(hex=stored["id"]).version == 4
    stamp = datetime.fromisoformat(stored["created"]).strftime("%Y%m%dT%H%M%S")
    assert path.name == f"my_net.py_Net-x4-div2k-valid-{stamp}-{stored['id'][:8]}.json"


def test_write_record_keeps_given_fields_and_converts_numpy(tmp_path: Path) -> None:
    record = profile_record(id="a" * 32, created="2023-03-20T10:00:00+00:00", params=np.int64(7),
                            samples=np.array([1.5, 2.5]))
    path = write_record(record, tmp_path)
    assert path.name == "lgvan-x4-20230320T100000-aaaaaaaa.json"
    (loaded,), warnings = load_records(tmp_path)
    assert warnings == []
    assert loaded["params"] == 7 and loaded["samples"] == [1.5, 2.5]
    assert loaded["created"] == "2023-03-20T10:00:00+00:00"


def test_write_record_rejects_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="kind 'train'"):
        write_record({"kind": "train", "model": "x", "scale": 4}, tmp_path)


def test_infinite_psnr_round_trips(tmp_path: Path) -> None:
    write_record(eval_record(mean={"psnr_rgb": float("inf"), "runtime_ms": 1.0}), tmp_path)
    (record,), _ = load_records(tmp_path)
    assert record["mean"]["psnr_rgb"] == float("inf")


def test_atomic_write_replaces_and_leaves_no_temp_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "sub" / "out.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_text(target, "second\n")
    assert target.read_text() == "second\n"
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})

    def fail_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(ResultsError, match=r"cannot write .*out\.json: No space left on device; check the folder"):
        atomic_write_text(target, "third\n")
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_load_records_orders_by_creation_time(tmp_path: Path) -> None:
    write_record(profile_record("late", created="2024-01-02T00:00:00+00:00"), tmp_path)
    write_record(profile_record("early", created="2024-01-01T00:00:00+00:00"), tmp_path)
    write_record(eval_record("middle", created="2024-01-01T12:00:00+00:00"), tmp_path)
    records, _ = load_records(tmp_path)
    assert [r["model"] for r in records] == ["early", "middle", "late"]


def test_load_records_names_and_skips_bad_files(tmp_path: Path) -> None:
    write_record(profile_record("good"), tmp_path)
    (tmp_path / "profile" / "broken.json").write_text('{"kind": "prof')
    future = profile_record("future", schema_version=SCHEMA_VERSION + 1)
    (tmp_path / "profile" / "future.json").write_text(json.dumps(future))
    write_record(eval_record("nomean", mean=None), tmp_path)
    (tmp_path / "eval" / "per-image.jsonl").write_text("not json at all\n")
    (tmp_path / "notes.txt").write_text("ignored")
    records, warnings = load_records(tmp_path)
    assert [r["model"] for r in records] == ["good"]
    text = "\n".join(warnings)
    assert len(warnings) == 3, text
    assert "profile/broken.json: corrupt JSON" in text
    assert f"profile/future.json: schema version {SCHEMA_VERSION + 1} is incompatible" in text and "upgrade srbench" in text
    assert "eval record is missing mean" in text


def test_load_records_rejects_foreign_json(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"name": "x"}')
    records, warnings = load_records(tmp_path)
    assert records == [] and warnings == ["skipped package.json: not an srbench record (no schema_version)"]


@pytest.mark.parametrize("make", [False, True], ids=["missing", "empty"])
def test_load_records_without_records_says_how_to_make_them(tmp_path: Path, make: bool) -> None:
    folder = tmp_path / "results"
    if make:
        (folder / "eval").mkdir(parents=True)
        (folder / "eval" / "log.jsonl").write_text("{}\n")
    with pytest.raises(ResultsError, match="srbench profile --model NAME"):
        load_records(folder)


def test_concurrent_writers_and_reader(tmp_path: Path) -> None:
    """Four processes write at once while this one keeps reading: no record is lost, none is seen half done."""
    write_record(profile_record("seed"), tmp_path)  # so the reader has a folder to read from the start
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs) or reads == 0:
        records, warnings = load_records(tmp_path)
        assert warnings == []
        assert all(len(r.get("samples", [0.0] * PAYLOAD)) == PAYLOAD for r in records)
        reads += 1
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    records, warnings = load_records(tmp_path)
    assert warnings == []
    assert len(records) == 1 + WRITERS * RECORDS_PER_WRITER
    assert len({r["id"] for r in records}) == len(records)
    for w in range(WRITERS):
        assert sorted(r["index"] for r in records if r["model"] == f"w{w}") == list(range(RECORDS_PER_WRITER))
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- schema: types, validation, upgrades

V1_PROFILE = {
    "kind": "profile", "schema_version": 1, "model": "lgvan", "scale": 4, "input_size": [256, 256],
    "params": 118243, "flops": {"ntire2023": 9057572992, "fvcore": 9036601472, "full": 9625114752},
    "exec": {"label": "eager", "probe": None},
    "runtime_ms": {"mean": 2.0, "median": 2.0, "n": 1, "samples": [2.0], "peak_memory_mib": 12.5,
                   "memory_baseline_mib": 3.0, "memory_kind": "cpu_rss_peak", "memory_method": "VmHWM"},
    "memory_mib": 12.5, "memory_kind": "cpu_rss_peak", "created": "2026-01-01T00:00:00+00:00", "id": "b" * 32,
}
V1_EVAL = {
    "kind": "eval", "schema_version": 1, "model": "rfdn", "scale": 4, "dataset": "set5",
    "mean": {"psnr_rgb": 30.25, "runtime_ms": 5.0}, "images": [{"name": "baby", "psnr_rgb": 30.25}],
    "exec": {"label": "eager", "auto_probe": {"chosen": "eager"}},
    "runtime_ms": {"mean": 5.0, "samples": [5.0]}, "memory_mib": 40.0,
    "memory": {"peak_memory_mib": 40.0, "memory_baseline_mib": 10.0, "memory_kind": "cuda_max_allocated",
               "memory_method": "torch.cuda"},
    "created": "2026-01-01T00:00:01+00:00", "id": "c" * 32,
}


def test_version_1_records_are_upgraded_on_load(tmp_path: Path) -> None:
    (tmp_path / "profile").mkdir()
    (tmp_path / "eval").mkdir()
    (tmp_path / "profile" / "old.json").write_text(json.dumps(V1_PROFILE))
    (tmp_path / "eval" / "old.json").write_text(json.dumps(V1_EVAL))
    (profile, evaluation), warnings = load_records(tmp_path)
    assert warnings == []
    assert profile["schema_version"] == evaluation["schema_version"] == SCHEMA_VERSION == 2
    assert profile["memory"] == {"peak_mib": 12.5, "baseline_mib": 3.0, "kind": "cpu_rss_peak", "method": "VmHWM"}
    assert profile["runtime_ms"] == {"mean": 2.0, "median": 2.0, "n": 1, "samples": [2.0]}
    assert "memory_kind" not in profile and profile["memory_mib"] == 12.5
    assert evaluation["memory"] == {"peak_mib": 40.0, "baseline_mib": 10.0, "kind": "cuda_max_allocated",
                                    "method": "torch.cuda"}
    assert evaluation["exec"] == {"label": "eager", "probe": {"chosen": "eager"}}


def test_upgrade_does_not_modify_its_argument() -> None:
    original = json.loads(json.dumps(V1_EVAL))
    upgraded = upgrade(original)
    assert original == V1_EVAL and upgraded["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"model": ["lgvan", "rfdn"]}, "field 'model' is a list, expected a string"),
        ({"scale": {"x": 4}}, "field 'scale' is an object, expected an integer"),
        ({"scale": True}, "field 'scale' is true/false, expected an integer"),
        ({"mean": {"psnr_rgb": "high"}}, "field 'mean.psnr_rgb' is a string, expected a number"),
        ({"images": [{"psnr_rgb": 30.0}]}, "field 'images[0].name' is missing"),
        ({"memory": {"kind": "gpu"}}, "field 'memory.kind' is 'gpu', expected one of"),
        ({"exec": {"threads": 2}}, "field 'exec.label' is missing"),
        ({"tile": 48}, "field 'tile' is an integer, expected an object"),
        ({"mean": None}, "eval record is missing mean"),
    ],
)
def test_validate_names_the_bad_field(change: dict, problem: str) -> None:
    record = {**eval_record(), "schema_version": SCHEMA_VERSION, **change}
    assert problem in (validate(record) or "")


def test_a_record_of_the_wrong_type_is_skipped_with_its_file_named(tmp_path: Path) -> None:
    write_record(eval_record("good"), tmp_path)
    write_record(eval_record(["a", "b"]), tmp_path)  # type: ignore[arg-type]
    records, warnings = load_records(tmp_path)
    assert [r["model"] for r in records] == ["good"]
    assert len(warnings) == 1 and warnings[0].startswith("skipped eval/")
    assert "field 'model' is a list, expected a string" in warnings[0]


def test_records_srbench_builds_validate_and_keep_unknown_keys() -> None:
    full = {**profile_record(input_size=[256, 256], batch=1, runtime_ms=None, memory=None, memory_mib=None,
                             notices=[], some_future_field={"x": 1}), "schema_version": SCHEMA_VERSION}
    assert validate(full) is None
    assert validate({**full, "kind": "train"}) == "unknown record kind 'train' (expected one of profile, eval)"


def test_split_measurement_gives_one_memory_block() -> None:
    measured = {"mean": 1.0, "n": 1, "samples": [1.0], "warnings": [], "peak_memory_mib": 5.0,
                "memory_baseline_mib": 1.0, "memory_kind": "cpu_rss_peak", "memory_method": "VmHWM"}
    runtime, memory = split_measurement(measured)
    assert runtime == {"mean": 1.0, "n": 1, "samples": [1.0], "warnings": []}
    assert memory == {"peak_mib": 5.0, "baseline_mib": 1.0, "kind": "cpu_rss_peak", "method": "VmHWM"}


def test_eval_coverage_uses_the_larger_of_found_and_expected() -> None:
    rows = [{"name": "a"}, {"name": "b"}]
    assert eval_coverage(eval_record(images=rows, data={"images_in_set": 2, "expected": 5})) == (2, 5)
    assert is_partial(eval_record(images=rows, data={"images_in_set": 2, "expected": 5}))
    assert not is_partial(eval_record(images=rows, data={"images_in_set": 2, "expected": None}))
    assert eval_coverage(eval_record(images=rows)) == (2, None) and not is_partial(eval_record(images=rows))
