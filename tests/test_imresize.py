"""MATLAB-exact bicubic: the shipped Set5 LR files, hand-computed values, and a scalar transcription of MATLAB."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import require_file
from sr_bench import imresize as imresize_module
from sr_bench.imresize import imresize

SET5 = ["baby", "bird", "butterfly", "head", "woman"]


def _png(path: Path) -> np.ndarray:
    return np.array(Image.open(require_file(path)).convert("RGB"))


def _set5_lr_mismatches(data_dir: Path) -> tuple[int, int, int]:
    """(values compared, values equal, largest |difference|) of imresize(modcrop(HR, 4), 1/4) vs the shipped LR."""
    total = equal = worst = 0
    for name in SET5:
        hr = _png(data_dir / "Set5" / "HR" / f"{name}.png")
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
        shipped = _png(data_dir / "Set5" / "LR_bicubic" / "X4" / f"{name}x4.png")
        ours = imresize(hr, 1 / 4)
        assert ours.dtype == np.uint8
        assert ours.shape == shipped.shape
        diff = np.abs(ours.astype(np.int16) - shipped)
        total += diff.size
        equal += int((diff == 0).sum())
        worst = max(worst, int(diff.max()))
    return total, equal, worst


def test_set5_lr_reproduced_exactly(data_dir: Path) -> None:
    """The shipped Set5 x4 LR files are MATLAB imresize(modcrop(HR, 4), 1/4): every value must match."""
    total, equal, worst = _set5_lr_mismatches(data_dir)
    assert total == 106_398
    assert (equal, worst) == (total, 0)


def test_half_to_even_rounding_would_fail_the_exact_check(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact check is sharp: rounding ties to even (numpy's default) moves a few dozen Set5 values by one."""
    monkeypatch.setattr(imresize_module, "_round_half_away_u8", lambda v: np.clip(np.rint(v), 0, 255).astype(np.uint8))
    total, equal, worst = _set5_lr_mismatches(data_dir)
    assert (total - equal, worst) == (60, 1)


def _column(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint8).reshape(-1, 1)


def test_hand_computed_halving() -> None:
    """4 -> 2 samples: out[0] = (70 v1 + 51 v2 + 13 v3 - 6 v4) / 128 with mirrored taps (worked out by hand)."""
    out = imresize(_column([0, 100, 200, 40]), 0.5)
    # (5100 + 2600 - 240) / 128 = 58.28125 ; (70*40 + 51*200 + 13*100 - 0) / 128 = 111.71875
    assert out.shape == (2, 1)
    assert out[:, 0].tolist() == [58, 112]


def test_exact_half_rounds_away_from_zero() -> None:
    """[1, 0, 0, 1] halves to exactly 0.5 at both outputs: MATLAB's uint8 cast gives 1 (half-to-even would give 0)."""
    assert imresize(_column([1, 0, 0, 1]), 0.5)[:, 0].tolist() == [1, 1]


def test_overshoot_saturates_instead_of_wrapping() -> None:
    """The negative lobes overshoot a hard edge when enlarging; values clip to 0 and 255."""
    edge = np.array([[0, 0, 0, 255, 255, 255]], dtype=np.uint8).repeat(6, axis=0)
    out = imresize(edge, 2.0).astype(np.int32)
    reference = _matlab_scalar(edge, 2.0)
    assert np.array_equal(out, reference)
    assert out.min() == 0 and out.max() == 255
    assert np.array_equal(out[:, :4], np.zeros((12, 4)))  # a wrap-around would show 255s (or 1s) here


def _cubic(x: float) -> float:
    a = abs(x)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def _matlab_1d(column: list[float], out_len: int, scale: float) -> list[int]:
    """MATLAB's contributions() + resize, one output sample at a time, 1-based like the original."""
    n = len(column)
    width = 4 / scale if scale < 1 else 4.0
    out = []
    for i in range(1, out_len + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = [left + k for k in range(math.ceil(width) + 2)]
        weights = [(scale * _cubic(scale * (u - t)) if scale < 1 else _cubic(u - t)) for t in taps]
        total = 0.0
        for wgt in weights:
            total += wgt
        value = 0.0
        for t, wgt in zip(taps, weights):
            j = (t - 1) % (2 * n)  # symmetric padding: 1..n, n..1, repeated
            src = j if j < n else 2 * n - 1 - j
            value += (wgt / total) * column[src]
        frac = value - math.floor(value)
        out.append(min(255, max(0, math.floor(value) + (1 if frac >= 0.5 else 0))))
    return out


def _matlab_scalar(img: np.ndarray, scale: float) -> np.ndarray:
    """Rows pass then columns pass, uint8 in between, as MATLAB orders equal-scale dimensions."""
    h, w = img.shape
    out_h, out_w = math.ceil(h * scale), math.ceil(w * scale)
    first = np.array([_matlab_1d(img[:, c].tolist(), out_h, scale) for c in range(w)]).T
    return np.array([_matlab_1d(first[r, :].tolist(), out_w, scale) for r in range(out_h)])


@pytest.mark.parametrize(("shape", "scale"), [((13, 9), 1 / 3), ((10, 7), 1 / 4), ((7, 5), 2.0), ((6, 9), 3.0)])
def test_matches_scalar_transcription(shape: tuple[int, int], scale: float) -> None:
    img = np.random.default_rng(sum(shape)).integers(0, 256, size=shape, dtype=np.uint8)
    out = imresize(img, scale)
    assert out.shape == (math.ceil(shape[0] * scale), math.ceil(shape[1] * scale))
    assert np.array_equal(out.astype(np.int32), _matlab_scalar(img, scale))


def test_channels_resized_independently() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    out = imresize(rgb, 0.25)
    assert out.shape == (3, 4, 3)
    for c in range(3):
        assert np.array_equal(out[:, :, c], imresize(np.ascontiguousarray(rgb[:, :, c]), 0.25))


def test_constant_image_stays_constant() -> None:
    img = np.full((20, 12, 3), 173, dtype=np.uint8)
    assert np.all(imresize(img, 0.25) == 173)
    assert np.all(imresize(img, 3.0) == 173)


def test_rejects_non_uint8_and_bad_scale() -> None:
    with pytest.raises(TypeError, match="uint8"):
        imresize(np.zeros((4, 4, 3), dtype=np.float32), 0.5)
    with pytest.raises(ValueError, match="positive"):
        imresize(np.zeros((4, 4, 3), dtype=np.uint8), 0.0)
