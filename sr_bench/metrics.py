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


_FLOAT32_EXACT = (torch.uint8, torch.float32)  # sources whose values float32 holds exactly: no first rounding
# SSIM strips: output rows per strip (and output columns per band matmul). On CPU a strip's maps stay in cache and
# a band matmul does 2 * (32 + 10) flops per output instead of the minimal 22, at BLAS speed. Elsewhere (CUDA, and
# the memory estimate's meta device) strips only bound the memory, and the filter is shifted slices: a GPU has the
# bandwidth for them, and consumer GPUs are slow at float64 matmuls.
_CPU_BLOCK = 32
_DEVICE_BLOCK = 256


def psnr(sr: torch.Tensor, hr: torch.Tensor, *, crop_border: int, y_channel: bool = False) -> float:
    """PSNR in dB between two (3, H, W) [0, 255] images, RGB (all channels) or Y; ``inf`` when equal."""
    pair = _prepare(sr, hr, crop_border, min_size=1, luma=y_channel)
    return _psnr(pair[:, 3:] if y_channel else pair)


def ssim(sr: torch.Tensor, hr: torch.Tensor, *, crop_border: int, y_channel: bool = False) -> float:
    """Mean SSIM between two (3, H, W) [0, 255] images, averaged over RGB channels, or on Y."""
    pair = _prepare(sr, hr, crop_border, min_size=_WINDOW, luma=y_channel)
    return float(_ssim_per_channel(pair[:, 3:] if y_channel else pair).mean())


def image_metrics(sr: torch.Tensor, hr: torch.Tensor, *, crop_border: int) -> dict[str, float]:
    """``psnr_rgb``, ``ssim_rgb``, ``psnr_y``, ``ssim_y`` of one image pair, sharing the crop and conversions.

    The SSIM of R, G, B and Y is computed in one pass over the stacked channels; each channel's numbers are
    those it would get alone.
    """
    pair = _prepare(sr, hr, crop_border, min_size=_WINDOW, luma=True)
    per_channel = _ssim_per_channel(pair)
    return {
        "psnr_rgb": _psnr(pair[:, :3]),
        "ssim_rgb": float(per_channel[:3].mean()),
        "psnr_y": _psnr(pair[:, 3:]),
        "ssim_y": float(per_channel[3]),
    }


def _prepare(
    sr: torch.Tensor, hr: torch.Tensor, crop_border: int, *, min_size: int, luma: bool
) -> torch.Tensor:
    """Check shapes, crop the border and copy both images as float64 into one (2, C, h, w) tensor on ``sr``'s
    device (HR follows SR): ``[0]`` SR, ``[1]`` HR, channels R, G, B and, with ``luma``, Y as channel 3."""
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
    pair = torch.empty((2, 4 if luma else 3, h, w), dtype=torch.float64, device=sr.device)
    pair[0, :3].copy_(sr[region])
    pair[1, :3].copy_(hr[region])
    if luma:
        _luma_into(pair, exact_in_float32=sr.dtype in _FLOAT32_EXACT and hr.dtype in _FLOAT32_EXACT)
    return pair


def _luma_into(pair: torch.Tensor, *, exact_in_float32: bool) -> None:
    """Y of both images' float64 [0, 255] RGB (channels 0-2) into channel 3, rounding where BasicSR's float32
    path rounds.

    Every float32 operation is done in float64 and rounded once to float32: that is the correctly rounded
    float32 result, independent of how a device implements float32 division. ``exact_in_float32`` (the sources
    were uint8 or float32) skips the rounding of the RGB values to float32, which would leave them unchanged.
    """
    rgb = pair[:, :3]
    unit = rgb / 255.0 if exact_in_float32 else rgb.float().double() / 255.0
    unit = unit.float().double()
    y = unit[:, 2] * _LUMA_BGR[0]  # BasicSR's order: ((B w_B + G w_G) + R w_R) + 16
    y += unit[:, 1] * _LUMA_BGR[1]
    y += unit[:, 0] * _LUMA_BGR[2]
    y += 16.0
    y /= 255.0
    y = y.float().double()
    y *= 255.0
    pair[:, 3].copy_(y.float())


def _psnr(pair: torch.Tensor) -> float:
    """The official formula on a (2, C, h, w) float64 [0, 255] pair (a zero error is a perfect match)."""
    mse = float(torch.mean((pair[0] - pair[1]) ** 2))
    if mse == 0:
        return math.inf
    return 20.0 * math.log10(255.0 / math.sqrt(mse))


def _gaussian_1d() -> list[float]:
    """The 1-D factor of the 11x11 window, normalised like OpenCV's ``getGaussianKernel(11, 1.5)``."""
    g = [math.exp((k - (_WINDOW - 1) / 2) ** 2 * (-0.5 / _SIGMA**2)) for k in range(_WINDOW)]
    inv_total = 1.0 / math.fsum(g)
    return [v * inv_total for v in g]


def _band(n: int, device: torch.device) -> torch.Tensor:
    """(n, n + 10) float64 matrix whose row i holds the 11 Gaussian taps in columns i..i+10.

    ``band[:m, :m + 10] @ rows`` is the 'valid' vertical filter of m + 10 rows, ``cols @ band[:m, :m + 10].T``
    the horizontal one: each output is a dot product of its 11 inputs with the taps (the zeros add nothing).
    """
    g = _gaussian_1d()
    rows = [[0.0] * i + g + [0.0] * (n - 1 - i) for i in range(n)]
    return torch.tensor(rows, dtype=torch.float64, device=device)


def _uses_blas(device: torch.device) -> bool:
    """Whether SSIM filters with band matmuls (CPU) rather than shifted slices (every other device)."""
    return device.type == "cpu"


def _ssim_per_channel(pair: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each channel of a (2, C, H, W) float64 pair, as a (C,) tensor.

    The image is done in row strips: a strip's five maps (x, y, x², y², xy), their separable 'valid' Gaussian
    and the SSIM terms, with only the SSIM map itself kept whole, for the per-channel means. On CPU the filter is
    band matmuls (:func:`_band_filter`, 4-5x faster than one memory-bound pass per tap), elsewhere shifted
    slices (:func:`_slice_filter`). Each filtered value is the dot product of its 11 inputs with the taps, summed
    in tap order by the slices and by MKL's matmul alike: the two give the very same numbers on every Set5 and
    B100 image tested (a BLAS that sums in another order would differ by ~1e-15). (Float64 convolution kernels
    are slow, im2col, on CPU and missing in some backends.)
    """
    x, y = pair[0], pair[1]
    c, big_h, big_w = x.shape
    h, w = big_h - _WINDOW + 1, big_w - _WINDOW + 1
    blas = _uses_blas(x.device)
    rows = _even_split(h, _CPU_BLOCK if blas else _DEVICE_BLOCK)
    cols = _even_split(w, _CPU_BLOCK)
    band = _band(max(rows, cols), x.device) if blas else None
    new = {"dtype": torch.float64, "device": x.device}
    ssim_map = torch.empty((c, h, w), **new)
    maps = torch.empty((5, c, rows + _WINDOW - 1, big_w), **new)
    vertical = torch.empty((5, c, rows, big_w), **new)
    filtered = torch.empty((5, c, rows, w), **new)
    for top in range(0, h, rows):
        n = min(rows, h - top)
        xs, ys = x[:, top : top + n + _WINDOW - 1], y[:, top : top + n + _WINDOW - 1]
        strip = maps[:, :, : n + _WINDOW - 1]
        strip[0].copy_(xs)
        strip[1].copy_(ys)
        torch.mul(xs, xs, out=strip[2])
        torch.mul(ys, ys, out=strip[3])
        torch.mul(xs, ys, out=strip[4])
        shape = (5 * c, n + _WINDOW - 1, big_w)
        vert, out = vertical[:, :, :n].view(5 * c, n, big_w), filtered[:, :, :n]
        if band is not None:
            _band_filter(strip.view(shape), band, cols, vert, out.view(5 * c, n, w))
        else:
            _slice_filter(strip.view(shape), vert, out.view(5 * c, n, w))
        _ssim_terms(*out, out=ssim_map[:, top : top + n])
    return torch.stack([channel.mean() for channel in ssim_map])


def _band_filter(maps: torch.Tensor, band: torch.Tensor, cols: int, vert: torch.Tensor, out: torch.Tensor) -> None:
    """'Valid' Gaussian of (N, n + 10, W) maps into ``out`` (N, n, W - 10): one matmul down, then one per block of
    ``cols`` output columns across (``vert`` holds the vertical pass)."""
    n, w = out.shape[1], out.shape[2]
    torch.matmul(band[:n, : n + _WINDOW - 1], maps, out=vert)
    for left in range(0, w, cols):
        m = min(cols, w - left)
        torch.matmul(vert[:, :, left : left + m + _WINDOW - 1], band[:m, : m + _WINDOW - 1].T,
                     out=out[:, :, left : left + m])


def _slice_filter(maps: torch.Tensor, vert: torch.Tensor, out: torch.Tensor) -> None:
    """'Valid' Gaussian of (N, n + 10, W) maps into ``out`` (N, n, W - 10): 11 shifted, weighted slices per axis,
    in tap order (``vert`` holds the vertical pass)."""
    g = _gaussian_1d()
    n, w = out.shape[1], out.shape[2]
    torch.mul(maps[:, 0:n], g[0], out=vert)
    for k in range(1, _WINDOW):
        vert.add_(maps[:, k : k + n], alpha=g[k])
    torch.mul(vert[:, :, 0:w], g[0], out=out)
    for k in range(1, _WINDOW):
        out.add_(vert[:, :, k : k + w], alpha=g[k])


def _even_split(size: int, block: int) -> int:
    """The block length that cuts ``size`` into as few pieces of at most ``block`` as possible, of near-equal
    length (no sliver at the end for BLAS to treat as a special case)."""
    pieces = -(-size // block)
    return -(-size // pieces)


def _ssim_terms(mu_x: torch.Tensor, mu_y: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor, xy: torch.Tensor,
                *, out: torch.Tensor) -> None:
    """The SSIM map from the filtered maps, in place (they are overwritten), as
    ``(2 mu_x mu_y + C1)(2 cov + C2) / ((mu_x² + mu_y² + C1)(var_x + var_y + C2))``, rounded step by step as
    written. ``C + 2 t`` is one op (``add`` with ``alpha=2``): doubling is exact, so it rounds once either way."""
    mxx, myy, mxy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x, var_y, cov = xx.sub_(mxx), yy.sub_(myy), xy.sub_(mxy)
    num = torch.add(_C1, mxy, alpha=2, out=mxy).mul_(torch.add(_C2, cov, alpha=2, out=cov))
    den = mxx.add_(myy).add_(_C1).mul_(var_x.add_(var_y).add_(_C2))
    torch.div(num, den, out=out)
