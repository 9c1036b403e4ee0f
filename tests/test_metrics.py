"""PSNR / SSIM (RGB and Y) against a plain numpy reference, scikit-image, and hand-computed cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from skimage.metrics import structural_similarity

from conftest import require_file
from sr_bench import metrics
from sr_bench.errors import SrBenchError
from sr_bench.metrics import image_metrics, psnr, ssim


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


@pytest.fixture(scope="module")
def pair(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A realistic SR/HR pair: Set5 butterfly HR and its shipped x4 LR enlarged with Pillow's bicubic.

    A non-square crop keeps the test fast and catches any H/W mix-up.
    """
    hr = np.array(Image.open(require_file(data_dir / "Set5" / "HR" / "butterfly.png")).convert("RGB"))
    lr = Image.open(require_file(data_dir / "Set5" / "LR_bicubic" / "X4" / "butterflyx4.png")).convert("RGB")
    sr = np.array(lr.resize((hr.shape[1], hr.shape[0]), Image.BICUBIC))
    region = (slice(40, 168), slice(60, 220))
    return sr[region].copy(), hr[region].copy()


# ---- a straightforward numpy reference (official calculate_psnr/ssim, BasicSR's Y path) ----


def _ref_crop(img: np.ndarray, border: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img[border : h - border, border : w - border]


def _ref_y(rgb_u8: np.ndarray) -> np.ndarray:
    """BasicSR to_y_channel on a BGR image: float32 [0, 1], dot with BGR weights, /255 -> float32, *255."""
    bgr = rgb_u8[:, :, ::-1].astype(np.float32) / 255.0
    y = np.dot(bgr, [24.966, 128.553, 65.481]) + 16.0
    y = (y / 255.0).astype(np.float32)
    return (y * 255.0)[:, :, None]


def _ref_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))


def _ref_ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. with an explicit 11x11 Gaussian window over every valid position."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()

    def filt(x: np.ndarray) -> np.ndarray:
        return np.einsum("ijkl,kl->ij", sliding_window_view(x, (11, 11)), window)

    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = filt(a), filt(b)
    var_a, var_b, cov = filt(a * a) - mu_a**2, filt(b * b) - mu_b**2, filt(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def _ref_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([_ref_ssim_channel(a[:, :, c], b[:, :, c]) for c in range(a.shape[2])]))


def _reference(sr: np.ndarray, hr: np.ndarray, border: int) -> dict[str, float]:
    sr, hr = _ref_crop(sr, border), _ref_crop(hr, border)
    ysr, yhr = _ref_y(sr), _ref_y(hr)
    return {
        "psnr_rgb": _ref_psnr(sr, hr),
        "ssim_rgb": _ref_ssim(sr, hr),
        "psnr_y": _ref_psnr(ysr, yhr),
        "ssim_y": _ref_ssim(ysr, yhr),
    }


# ---- tests ----


@pytest.mark.parametrize("border", [0, 4])
def test_matches_numpy_reference(pair: tuple[np.ndarray, np.ndarray], border: int) -> None:
    sr, hr = pair
    ours = image_metrics(_chw(sr), _chw(hr), crop_border=border)
    ref = _reference(sr, hr, border)
    assert set(ours) == {"psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"}
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-10, rel=0), key


def test_single_metric_functions_agree_with_image_metrics(pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = _chw(pair[0]), _chw(pair[1])
    both = image_metrics(sr, hr, crop_border=4)
    assert psnr(sr, hr, crop_border=4) == both["psnr_rgb"]
    assert psnr(sr, hr, crop_border=4, y_channel=True) == both["psnr_y"]
    assert ssim(sr, hr, crop_border=4) == both["ssim_rgb"]
    assert ssim(sr, hr, crop_border=4, y_channel=True) == both["ssim_y"]


def test_float_inputs_give_the_same_numbers(pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = _chw(pair[0]), _chw(pair[1])
    as_u8 = image_metrics(sr, hr, crop_border=4)
    as_float = image_metrics(sr.float(), hr.double(), crop_border=4)
    assert as_float == as_u8


@pytest.mark.parametrize("block", [7, 32, 500])
def test_strip_size_leaves_the_numbers(pair: tuple[np.ndarray, np.ndarray], block: int,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """SSIM runs in row strips (and column blocks): many uneven ones, the default, or one for the whole image."""
    sr, hr = _chw(pair[0]), _chw(pair[1])
    default = image_metrics(sr, hr, crop_border=4)
    monkeypatch.setattr(metrics, "_CPU_BLOCK", block)
    for key, value in image_metrics(sr, hr, crop_border=4).items():
        assert value == pytest.approx(default[key], abs=1e-12, rel=0), key


@pytest.mark.parametrize("block", [40, 256])
def test_device_filter_gives_the_cpu_numbers(pair: tuple[np.ndarray, np.ndarray], block: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Off the CPU the Gaussian is shifted slices instead of band matmuls; run here on CPU, in several strips or one."""
    sr, hr = _chw(pair[0]), _chw(pair[1])
    cpu = image_metrics(sr, hr, crop_border=4)
    monkeypatch.setattr(metrics, "_uses_blas", lambda device: False)
    monkeypatch.setattr(metrics, "_DEVICE_BLOCK", block)
    for key, value in image_metrics(sr, hr, crop_border=4).items():
        assert value == pytest.approx(cpu[key], abs=1e-12, rel=0), key


def test_ssim_matches_scikit_image(pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = (_ref_crop(x, 4).astype(np.float64) for x in pair)
    per_channel = [
        structural_similarity(
            sr[:, :, c], hr[:, :, c], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        for c in range(3)
    ]
    ours = ssim(_chw(pair[0]), _chw(pair[1]), crop_border=4)
    assert ours == pytest.approx(float(np.mean(per_channel)), abs=1e-6)


def test_y_channel_uses_rgb_order_not_bgr(pair: tuple[np.ndarray, np.ndarray]) -> None:
    """Feeding BGR where RGB is expected is the classic ~0.1 dB bug; the two must differ measurably."""
    sr, hr = pair
    ours = psnr(_chw(sr), _chw(hr), crop_border=4, y_channel=True)
    swapped = psnr(_chw(sr[:, :, ::-1]), _chw(hr[:, :, ::-1]), crop_border=4, y_channel=True)
    assert ours == pytest.approx(_reference(sr, hr, 4)["psnr_y"], abs=1e-10)
    assert abs(ours - swapped) > 1e-3


@pytest.mark.parametrize("offset", [1, 5, 16])
def test_constant_offset_psnr(offset: int) -> None:
    hr = torch.full((3, 20, 20), 100, dtype=torch.uint8)
    sr = hr + offset
    assert psnr(sr, hr, crop_border=2) == pytest.approx(20 * math.log10(255 / offset), abs=1e-12)
    # Y moves by offset * (65.481 + 128.553 + 24.966) / 255 = offset * 219 / 255 (up to float32 steps)
    assert psnr(sr, hr, crop_border=2, y_channel=True) == pytest.approx(
        20 * math.log10(255 / (offset * 219 / 255)), abs=1e-4
    )


def test_one_pixel_error_psnr() -> None:
    """One value off by 255 among 3*10*10: mse = 255^2 / 300, PSNR = 10 log10(300)."""
    hr = torch.zeros(3, 12, 12, dtype=torch.uint8)
    sr = hr.clone()
    sr[1, 5, 7] = 255
    assert psnr(sr, hr, crop_border=1) == pytest.approx(10 * math.log10(300), abs=1e-12)
    assert psnr(sr, hr, crop_border=5) == math.inf  # rows/columns 5..6 remain: the error at column 7 is cut


def test_flat_images_ssim_is_the_luminance_term() -> None:
    """Constant images have zero variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1) exactly."""
    a, b = 100.0, 110.0
    c1 = (0.01 * 255) ** 2
    sr, hr = torch.full((3, 16, 16), a), torch.full((3, 16, 16), b)
    assert ssim(sr, hr, crop_border=0) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-12)


def test_identical_images() -> None:
    img = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    m = image_metrics(img, img.clone(), crop_border=4)
    assert m["psnr_rgb"] == math.inf and m["psnr_y"] == math.inf
    assert m["ssim_rgb"] == pytest.approx(1.0, abs=1e-12) and m["ssim_y"] == pytest.approx(1.0, abs=1e-12)


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(SrBenchError, match=r"SR \(3, 16, 16\) and HR \(3, 16, 20\)") as info:
        psnr(torch.zeros(3, 16, 16), torch.zeros(3, 16, 20), crop_border=0)
    assert isinstance(info.value, ValueError)


def test_not_three_channel_chw() -> None:
    with pytest.raises(SrBenchError, match=r"\(3, H, W\)"):
        ssim(torch.zeros(16, 16, 3), torch.zeros(16, 16, 3), crop_border=0)


def test_crop_border_too_large() -> None:
    img = torch.zeros(3, 20, 20)
    with pytest.raises(SrBenchError, match=r"crop_border=10 leaves 0x0 of a 20x20 image"):
        psnr(img, img, crop_border=10)
    with pytest.raises(SrBenchError, match=r"crop_border=5 leaves 10x10 .* SSIM needs at least 11x11"):
        ssim(img, img, crop_border=5)
    with pytest.raises(SrBenchError, match="SSIM needs"):
        image_metrics(img, img, crop_border=5)
    with pytest.raises(SrBenchError, match="must be >= 0"):
        psnr(img, img, crop_border=-1)
