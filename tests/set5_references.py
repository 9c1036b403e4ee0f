"""The spec's agreement with the official Set5 numbers (``conftest.set5_quality_refs``), shared by
``test_quality_golden.py`` (srbench's components, end to end) and ``test_evaluate.py`` (the eval loop itself)."""

from __future__ import annotations

PSNR_TOL = 1e-4  # dB; the model output moves by +-1 in ~1 of 10^5 values with the CPU's summation order
SSIM_TOL = 1e-5
KEYS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")


def misses(got: dict[str, float], expected: dict[str, float]) -> dict[str, tuple[float, float]]:
    """``{metric: (got, expected)}`` for every metric of ``KEYS`` outside its tolerance (empty when all agree)."""
    return {
        key: (got[key], expected[key])
        for key in KEYS
        if not abs(got[key] - expected[key]) <= (PSNR_TOL if key.startswith("psnr") else SSIM_TOL)
    }
