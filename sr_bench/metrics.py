"""PSNR and SSIM as the NTIRE ESR challenge (RGB) and SR papers (Y) compute them, in torch on any device.

Inputs are (3, H, W) tensors, uint8 or float, holding [0, 255] RGB values; ``sr`` and ``hr`` must have the same
shape. ``crop_border`` pixels are removed on every side first (the challenge uses ``crop_border = scale``).

* **PSNR**: ``20 * log10(255 / sqrt(mse))`` over all channels in float64; ``inf`` when the images are equal.
* **SSIM**: Wang et al. as MATLAB ``ssim_index`` and the official ``calculate_ssim``: 11x11 Gaussian window,
  sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, "valid" filtering, mean SSIM per channel, then the mean over channels.
* **Y channel**: BT.601 luma as MATLAB ``rgb2ycbcr``, ``16 + (65.481 R + 128.553 G + 24.966 B)`` on [0, 1] RGB,
  computed exactly along BasicSR's ``to_y_channel`` path (the reference for published Y numbers): RGB / 255 in
  float32, the weighted sum in float64, back to float32 in [0, 1], times 255 in float32 -- **not** rounded to
  uint8 (rounding Y first costs ~0.01-0.02 dB).

Example::

    m = image_metrics(to_uint8(sr, 1.0), hr_tensor, crop_border=4)
    m["psnr_rgb"], m["ssim_y"]
"""

from __future__ import annotations

import math

import torch

from sr_bench.errors import MetricInputError

_WINDOW = 11
_SIGMA = 1.5
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2
_LUMA_BGR = (24.966, 128.553, 65.481)  # BasicSR's bgr2ycbcr weights, applied in its B, G, R order


def psnr(sr: torch.Tensor, hr: torch.Tensor, *, crop_border: int, y_channel: bool = False) -> float:
    """PSNR in dB between two (3, H, W) [0, 255] images, RGB (all channels) or Y; ``inf`` when equal."""
    x, y = _prepare(sr, hr, crop_border, min_size=1)
    if y_channel:
        x, y = _luma(x), _luma(y)
    return _psnr(x, y)


def ssim(sr: torch.Tensor, hr: torch.Tensor, *, crop_border: int, y_channel: bool = False) -> float:
    """Mean SSIM between two (3, H, W) [0, 255] images, averaged over RGB channels, or on Y."""
    x, y = _prepare(sr, hr, crop_border, min_size=_WINDOW)
    if y_channel:
        x, y = _luma(x), _luma(y)
    return float(_ssim_per_channel(x, y).mean())


def image_metrics(sr: torch.Tensor, hr: torch.Tensor, *, crop_border: int) -> dict[str, float]:
    """``psnr_rgb``, ``ssim_rgb``, ``psnr_y``, ``ssim_y`` of one image pair, sharing the crop and conversions."""
    x, y = _prepare(sr, hr, crop_border, min_size=_WINDOW)
    x_luma, y_luma = _luma(x), _luma(y)
    return {
        "psnr_rgb": _psnr(x, y),
        "ssim_rgb": float(_ssim_per_channel(x, y).mean()),
        "psnr_y": _psnr(x_luma, y_luma),
        "ssim_y": float(_ssim_per_channel(x_luma, y_luma).mean()),
    }


def _prepare(
    sr: torch.Tensor, hr: torch.Tensor, crop_border: int, *, min_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes, crop the border and convert both images to float64 on ``sr``'s device (HR follows SR)."""
    if sr.dim() != 3 or sr.shape[0] != 3 or hr.dim() != 3 or hr.shape[0] != 3:
        raise MetricInputError(f"metrics need (3, H, W) images, got SR {tuple(sr.shape)} and HR {tuple(hr.shape)}")
    if sr.shape != hr.shape:
        raise MetricInputError(
            f"SR {tuple(sr.shape)} and HR {tuple(hr.shape)} differ in shape; check the model's scale and that "
            "the HR image is mod-cropped to it"
        )
    if crop_border < 0:
        raise MetricInputError(f"crop_border must be >= 0, got {crop_border}")
    h, w = sr.shape[1] - 2 * crop_border, sr.shape[2] - 2 * crop_border
    if h < min_size or w < min_size:
        need = "SSIM needs at least 11x11 pixels" if min_size > 1 else "PSNR needs at least one pixel"
        raise MetricInputError(
            f"crop_border={crop_border} leaves {max(h, 0)}x{max(w, 0)} of a {sr.shape[1]}x{sr.shape[2]} image; "
            f"{need}: use a smaller crop_border or a larger image"
        )
    region = (slice(None), slice(crop_border, crop_border + h), slice(crop_border, crop_border + w))
    x = sr[region].to(torch.float64)
    y = hr[region].to(device=sr.device, dtype=torch.float64)
    return x, y


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    """(3, H, W) float64 [0, 255] RGB -> (1, H, W) float64 Y, rounding where BasicSR's float32 path rounds.

    Every float32 operation is done in float64 and rounded once to float32: that is the correctly rounded
    float32 result, independent of how a device implements float32 division.
    """
    unit = (rgb.float().double() / 255.0).float().double()
    b, g, r = unit[2], unit[1], unit[0]
    y = b * _LUMA_BGR[0] + g * _LUMA_BGR[1] + r * _LUMA_BGR[2] + 16.0
    y_unit = (y / 255.0).float().double()
    return (y_unit * 255.0).float().double().unsqueeze(0)


def _psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """The official formula on float64 [0, 255] values (a zero error is a perfect match, not an error)."""
    mse = float(torch.mean((x - y) ** 2))
    if mse == 0:
        return math.inf
    return 20.0 * math.log10(255.0 / math.sqrt(mse))


def _gaussian_1d() -> list[float]:
    """The 1-D factor of the 11x11 window, normalised like OpenCV's ``getGaussianKernel(11, 1.5)``."""
    g = [math.exp((k - (_WINDOW - 1) / 2) ** 2 * (-0.5 / _SIGMA**2)) for k in range(_WINDOW)]
    inv_total = 1.0 / math.fsum(g)
    return [v * inv_total for v in g]


def _valid_filter(maps: torch.Tensor, g: list[float]) -> torch.Tensor:
    """Separable 'valid' Gaussian filter of (N, H, W) maps: 11 shifted, weighted slices per axis.

    Shifted slices avoid float64 convolution kernels, which are slow (im2col) on CPU and unavailable in some
    backends, and keep memory at a few copies of the input.
    """
    h, w = maps.shape[-2] - _WINDOW + 1, maps.shape[-1] - _WINDOW + 1
    rows = maps[:, 0:h, :] * g[0]
    for k in range(1, _WINDOW):
        rows.add_(maps[:, k : k + h, :], alpha=g[k])
    out = rows[:, :, 0:w] * g[0]
    for k in range(1, _WINDOW):
        out.add_(rows[:, :, k : k + w], alpha=g[k])
    return out


def _ssim_per_channel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each channel of (C, H, W) float64 images, as a (C,) tensor."""
    g = _gaussian_1d()
    means = []
    for xc, yc in zip(x, y):
        mu_x, mu_y, xx, yy, xy = _valid_filter(torch.stack([xc, yc, xc * xc, yc * yc, xc * yc]), g)
        var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
        num = (2 * mu_x * mu_y + _C1) * (2 * cov + _C2)
        den = (mu_x * mu_x + mu_y * mu_y + _C1) * (var_x + var_y + _C2)
        means.append((num / den).mean())
    return torch.stack(means)
