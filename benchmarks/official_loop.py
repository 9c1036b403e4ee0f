"""The official NTIRE ESR per-image evaluation loop, re-implemented faithfully: the baseline srbench is measured against.

What the challenge harness does for each image (``test_demo.py`` ``run()`` of ofsoundof/NTIRE2023_ESR and
Amazingren/NTIRE2024_ESR, with KAIR's ``utils/utils_image.py``), step for step and in the same order:

1. ``imread_uint(lr, 3)``: ``cv2.imread(IMREAD_UNCHANGED)``, then ``cvtColor`` BGR->RGB (GRAY->RGB for gray files);
2. ``uint2tensor4(img, data_range)``: HWC uint8 -> 1x3xHxW float32 divided by ``255 / data_range``, ``.to(device)``;
3. the forward, timed: on CUDA with two ``torch.cuda.Event`` and a synchronize, as the harness; on CPU (where the
   harness cannot run) with ``time.perf_counter``. No warm-up, no ``no_grad`` (the harness only sets
   ``requires_grad = False`` on the parameters, see :func:`prepare_model`);
4. ``tensor2uint``: squeeze, clamp to [0, data_range], to numpy, HWC, ``uint8((x * 255 / data_range).round())``;
5. ``imread_uint(hr, 3)``, ``squeeze``, ``modcrop(hr, 4)`` (a copy, then the top-left crop);
6. ``calculate_psnr(sr, hr, border=4)``: float64, all channels;
7. only with ``--ssim`` (off by default in the harness): ``calculate_ssim(sr, hr, border=4)``, which calls ``ssim`` on
   the whole 3-channel image three times (a ``cv2.filter2D`` 11x11 Gaussian, 'valid' by cropping 5 pixels) and
   averages the three equal values -- the same number as the per-channel mean, at three times the cost;
8. ``imsave``: RGB->BGR by fancy indexing, ``cv2.imwrite`` with OpenCV's default PNG settings.

Omitted: the per-image ``logger.info`` / ``print`` lines (microseconds each), which only favours this side.
``basicsr_metrics`` is the reference for srbench's metric code: BasicSR's ``calculate_psnr`` / ``calculate_ssim``
(per channel, ``cv2.filter2D``) in RGB and on Y (``test_y_channel``), which is how the Y references were made.

API::

    model = prepare_model(loaded.module, device)
    run = official_loop(pairs, model, device, data_range=1.0, scale=4, ssim=True, save_dir=Path("sr"))
    run.images[0].psnr_rgb, run.images[0].forward_ms, run.wall_s

As a script (one fresh process, as the harness runs; what ``gpu_check.sh`` and the benchmarks call)::

    python benchmarks/official_loop.py --model lgvan --hr HR/ --lr LR_x4/ --save sr/ --json out.json [--ssim]
        [--device cuda] [--threads N] [--weights W.pth] [--scale 4] [--data-range 255] [--model-args JSON]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

NAME = "NTIRE ESR test_demo.py run() + KAIR utils_image (cv2), re-implemented"


@dataclass(frozen=True)
class OfficialImage:
    name: str
    psnr_rgb: float
    ssim_rgb: float | None  # None unless ssim=True, as the harness without --ssim
    forward_ms: float


@dataclass(frozen=True)
class OfficialRun:
    images: list[OfficialImage]
    wall_s: float  # the whole loop: decode, forward, metrics, PNG writes (model loading excluded)
    ssim: bool
    device: str
    threads: int  # torch threads during the loop
    memory_mib: float | None  # torch.cuda.max_memory_allocated / 2**20 after the loop (CUDA only), as the harness

    def to_dict(self) -> dict:
        return asdict(self) | {"loop": NAME}


# ------------------------------------------------------------------------------------ KAIR utils_image, re-done


def imread_uint(path: Path) -> np.ndarray:
    """3-channel read as KAIR: OpenCV decode of the file as stored, then BGR (or gray) to RGB."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f"cv2.imread could not read {path}")
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB if img.ndim == 2 else cv2.COLOR_BGR2RGB)


def uint2tensor4(img: np.ndarray, data_range: float) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255.0 / data_range).unsqueeze(0)


def tensor2uint(img: torch.Tensor, data_range: float) -> np.ndarray:
    out = img.data.squeeze().float().clamp_(0, data_range).cpu().numpy()
    if out.ndim == 3:
        out = np.transpose(out, (1, 2, 0))
    return np.uint8((out * 255.0 / data_range).round())


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    img = np.copy(img)
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def _same_shape(img1: np.ndarray, img2: np.ndarray) -> None:
    if img1.shape != img2.shape:
        raise ValueError(f"Input images must have the same dimensions: {img1.shape} vs {img2.shape}")


def calculate_psnr(img1: np.ndarray, img2: np.ndarray, border: int) -> float:
    _same_shape(img1, img2)
    h, w = img1.shape[:2]
    a = img1[border:h - border, border:w - border].astype(np.float64)
    b = img2[border:h - border, border:w - border].astype(np.float64)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))


def _ssim(img1: np.ndarray, img2: np.ndarray) -> float:
    """Wang et al. SSIM with a cv2.filter2D Gaussian (works on 2-D maps and, channel by channel, on 3-D ones)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = img1.astype(np.float64), img2.astype(np.float64)
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(kernel, kernel.transpose())

    def valid(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, window)[5:-5, 5:-5]

    mu1, mu2 = valid(a), valid(b)
    mu1_sq, mu2_sq, mu1_mu2 = mu1**2, mu2**2, mu1 * mu2
    sigma1_sq = valid(a**2) - mu1_sq
    sigma2_sq = valid(b**2) - mu2_sq
    sigma12 = valid(a * b) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return float(ssim_map.mean())


def calculate_ssim(img1: np.ndarray, img2: np.ndarray, border: int) -> float:
    """KAIR's ``calculate_ssim`` on an RGB image: SSIM of the whole 3-channel image, computed three times."""
    _same_shape(img1, img2)
    h, w = img1.shape[:2]
    a, b = img1[border:h - border, border:w - border], img2[border:h - border, border:w - border]
    if a.ndim == 2:
        return _ssim(a, b)
    return float(np.array([_ssim(a, b) for _ in range(3)]).mean())


def imsave(img: np.ndarray, path: Path) -> None:
    img = np.squeeze(img)
    if img.ndim == 3:
        img = img[:, :, [2, 1, 0]]
    cv2.imwrite(str(path), img)


# --------------------------------------------------------------------------------------------- the loop


def prepare_model(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The tail of the harness's ``select_model``: eval mode, no parameter gradients, on the device."""
    module.eval()
    for p in module.parameters():
        p.requires_grad = False
    return module.to(device)


def _timed_forward(model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, float]:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = model(x)
        end.record()
        torch.cuda.synchronize()
        return out, start.elapsed_time(end)
    start_s = time.perf_counter()
    out = model(x)
    return out, (time.perf_counter() - start_s) * 1e3


def official_loop(pairs: Sequence[tuple[Path, Path]], model: torch.nn.Module, device: torch.device | str, *,
                  data_range: float, scale: int = 4, ssim: bool = False, save_dir: Path | None = None) -> OfficialRun:
    """Run the harness's per-image loop over ``(lr_path, hr_path)`` pairs with a model made by
    :func:`prepare_model`; SR PNGs go to ``save_dir`` (the harness always saves; None skips it)."""
    device = torch.device(device)
    images = []
    start = time.perf_counter()
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    for lr_path, hr_path in pairs:
        x = uint2tensor4(imread_uint(lr_path), data_range).to(device)
        out, forward_ms = _timed_forward(model, x, device)
        sr = tensor2uint(out, data_range)
        hr = modcrop(imread_uint(hr_path).squeeze(), scale)
        psnr = calculate_psnr(sr, hr, border=scale)
        value = calculate_ssim(sr, hr, border=scale) if ssim else None
        if save_dir is not None:
            imsave(sr, save_dir / hr_path.name)
        images.append(OfficialImage(hr_path.stem, psnr, value, forward_ms))
    memory = torch.cuda.max_memory_allocated(device) / 1024**2 if device.type == "cuda" else None
    wall = time.perf_counter() - start
    return OfficialRun(images, wall, ssim, str(device), torch.get_num_threads(), memory)


# ------------------------------------------------------------------- BasicSR metrics: srbench's reference


def _to_y(rgb: np.ndarray) -> np.ndarray:
    """BasicSR ``to_y_channel`` of an RGB image (BasicSR expects BGR, so the weights are applied B, G, R)."""
    unit = rgb.astype(np.float32) / 255.0
    y = np.dot(unit[..., ::-1], [24.966, 128.553, 65.481]) + 16.0
    return ((y / 255.0).astype(np.float32) * 255.0)[..., None]


def basicsr_metrics(sr: np.ndarray, hr: np.ndarray, border: int) -> dict[str, float]:
    """PSNR/SSIM in RGB and Y the BasicSR way (per-channel cv2.filter2D SSIM): what srbench's metrics must equal."""
    sr = sr[border:-border, border:-border].astype(np.float64)
    hr = hr[border:-border, border:-border].astype(np.float64)

    def per_channel_ssim(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean([_ssim(a[..., c], b[..., c]) for c in range(a.shape[2])]))

    ys, yh = _to_y(sr), _to_y(hr)
    return {"psnr_rgb": calculate_psnr(sr, hr, 0), "ssim_rgb": per_channel_ssim(sr, hr),
            "psnr_y": calculate_psnr(ys, yh, 0), "ssim_y": per_channel_ssim(ys, yh)}


# ------------------------------------------------------------------------------------------------- script


def folder_pairs(hr_dir: Path, lr_dir: Path, scale: int) -> list[tuple[Path, Path]]:
    """(LR, HR) per HR PNG in name order; the LR is ``<name>x<scale>.png`` (the harness's naming) or ``<name>.png``."""
    pairs = []
    for hr in sorted(hr_dir.glob("*.png")):
        lr = lr_dir / f"{hr.stem}x{scale}.png"
        pairs.append((lr if lr.is_file() else lr_dir / hr.name, hr))
    return pairs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a zoo name or path/to/file.py:Class (built by srbench)")
    parser.add_argument("--weights", type=Path, help="checkpoint (default: srbench's search order)")
    parser.add_argument("--model-args", help="JSON constructor arguments of a file.py:Class model")
    parser.add_argument("--data-range", type=float, help="input range of a file.py:Class model (1 or 255)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--hr", type=Path, required=True)
    parser.add_argument("--lr", type=Path, required=True)
    parser.add_argument("--save", type=Path, help="where the SR PNGs go (the harness always saves them)")
    parser.add_argument("--json", type=Path, required=True, help="per-image PSNR/SSIM/forward ms, loop wall")
    parser.add_argument("--ssim", action="store_true", help="also SSIM, as the harness's --ssim")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch and OpenCV threads (default: theirs, as the harness)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    from sr_bench.models import resolve_model

    device = torch.device(args.device)
    if device.type == "cuda":  # the harness's basic settings
        torch.backends.cudnn.benchmark = False
    loaded = resolve_model(args.model, scale=args.scale, weights=args.weights, data_range=args.data_range,
                           model_args=args.model_args, require_weights=True)
    model = prepare_model(loaded.module, device)
    run = official_loop(folder_pairs(args.hr, args.lr, loaded.scale), model, device, data_range=loaded.data_range,
                        scale=loaded.scale, ssim=args.ssim, save_dir=args.save)
    args.json.write_text(json.dumps(run.to_dict()))


if __name__ == "__main__":
    main()
