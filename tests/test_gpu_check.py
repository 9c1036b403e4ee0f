"""``benchmarks/gpu_check.sh``: its ``--dry-run`` runs every step on CPU (the plumbing CI can check), and the
summary's hard check really fails on a PSNR difference above 1e-3 dB."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def _helper():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _eval(psnrs: dict[str, float], device: str) -> dict:
    return {"model": "rfdn", "device": device,
            "images": [{"name": n, "psnr_rgb": p, "psnr_y": p + 1.0} for n, p in psnrs.items()]}


def test_psnr_check_fails_above_a_millidecibel() -> None:
    check = _helper().psnr_cuda_vs_cpu
    cpu = {"rfdn": _eval({"baby": 32.0, "bird": 30.0}, "cpu")}
    close = check({"rfdn": _eval({"baby": 32.0005, "bird": 30.0}, "cuda:0")}, cpu)
    assert close["pass"] is True and close["max_abs_db"] == pytest.approx(5e-4, abs=1e-12)
    far = check({"rfdn": _eval({"baby": 32.0, "bird": 30.002}, "cuda:0")}, cpu)
    assert far["pass"] is False and far["models"]["rfdn"]["images"]["bird"]["psnr_rgb"] == pytest.approx(2e-3)
    assert check({}, cpu)["pass"] is False  # nothing compared is not a pass


def test_profile_spread_is_the_cv_of_the_robust_medians() -> None:
    records = [{"kind": "profile", "model": "rfdn", "protocol": p, "runtime_ms": {"median": m}}
               for p, m in (("robust", 10.0), ("robust", 10.2), ("ntire2023", 50.0), ("robust", 9.8))]
    spread = _helper().profile_spread(records)["models"]["rfdn"]
    assert spread["medians_ms"] == [10.0, 10.2, 9.8] and spread["cv"] == pytest.approx(0.02)


@pytest.mark.slow
def test_dry_run_exercises_every_step_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "check"
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(out)], capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"] == "cpu" and summary["pass"] is True and summary["gpu_tests_rc"] == 0
    psnr = summary["psnr_cuda_vs_cpu"]["models"]["rfdn"]
    assert list(psnr["images"]) == ["baby"] and psnr["max_abs_db"] == 0.0  # a dry run compares CPU with CPU
    assert len(summary["profile_spread"]["models"]["rfdn"]["medians_ms"]) == 2
    assert set(summary["peak_memory_mib"]["profile_by_protocol"]["rfdn"]) == {"robust", "ntire2023", "ntire2024"}
    modes = summary["exec_modes"]["models"]["rfdn"]
    assert set(modes) == {"channels_last"} and modes["channels_last"]["speedup"] > 0
    assert abs(modes["channels_last"]["psnr_rgb_change_db"]) < 1e-3
    assert summary["gpu_conditions_warnings"] == []
    official = summary["official_vs_srbench"]
    assert official["present"] == (REPO / "benchmarks" / "official_loop.py").is_file()
    if official["present"]:
        assert set(official["models"]["rfdn"]["psnr_rgb"]) == {"baby", "bird", "butterfly", "head", "woman"}
        assert official["models"]["rfdn"]["official_over_srbench"] > 0
    steps = {"profile-ntire2023", "profile-ntire2024", "profile-robust-1", "profile-robust-2", "eval-fp32",
             "eval-channels_last", "eval-cpu-fp32"}
    assert steps <= set(summary["walls_s"])
    assert "overall: PASS" in result.stdout
