"""How much the eval loop costs beyond the model itself, and how fast its metric code is.

Runs LGVAN over the first ``--limit`` images of B100 on the CPU (LR generated, so a cold LR cache) and prints

    overhead = (wall time of evaluate() - sum of model forward times) / wall time

where the forward times are the timed per-image forwards plus the warm-up forwards. Decoding, LR generation,
metrics and saving should hide behind the model: the target is <= 5%. Model set-up (the ``--exec auto`` probe
and the conversion to the chosen mode, done once per model however many datasets follow) runs before the clock. Then it times ``image_metrics`` (torch)
against a straightforward numpy PSNR/SSIM (RGB and Y) on the same SR/HR pairs, checks they agree, and prints
the speed ratio.

    python benchmarks/bench_eval.py --limit 32 --threads 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def numpy_metrics(sr: np.ndarray, hr: np.ndarray, border: int) -> dict[str, float]:
    """PSNR/SSIM the way most SR repos write it: float64 numpy, an 11x11 Gaussian window, 'valid' filtering."""
    sr = sr[border:-border, border:-border].astype(np.float64)
    hr = hr[border:-border, border:-border].astype(np.float64)

    def luma(x: np.ndarray) -> np.ndarray:
        unit = (x / 255.0).astype(np.float32).astype(np.float64)
        y = unit[..., 2] * 24.966 + unit[..., 1] * 128.553 + unit[..., 0] * 65.481 + 16.0
        return ((y / 255.0).astype(np.float32) * np.float32(255.0)).astype(np.float64)[..., None]

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        mse = np.mean((a - b) ** 2)
        return float("inf") if mse == 0 else 20 * np.log10(255.0 / np.sqrt(mse))

    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    window = np.outer(g / g.sum(), g / g.sum())

    def filt(x: np.ndarray) -> np.ndarray:
        return np.einsum("ijkl,kl->ij", np.lib.stride_tricks.sliding_window_view(x, (11, 11)), window)

    def ssim(a: np.ndarray, b: np.ndarray) -> float:
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        values = []
        for ch in range(a.shape[2]):
            x, y = a[..., ch], b[..., ch]
            mx, my = filt(x), filt(y)
            sxx, syy, sxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
            m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
            values.append(m.mean())
        return float(np.mean(values))

    ys, yh = luma(sr), luma(hr)
    return {"psnr_rgb": psnr(sr, hr), "ssim_rgb": ssim(sr, hr), "psnr_y": psnr(ys, yh), "ssim_y": ssim(ys, yh)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=32, help="B100 images to evaluate")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the model")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SRBENCH_DATA") or SHARED / "data"))
    parser.add_argument("--model", default="lgvan")
    args = parser.parse_args()
    os.environ.setdefault("SRBENCH_WEIGHTS", str(SHARED / "weights"))
    torch.set_num_threads(args.threads)

    from sr_bench.datasets import load_pair, lr_cache_dir, resolve_dataset
    from sr_bench.eval_config import EvalOptions
    from sr_bench.evaluate import evaluate, prepare_run
    from sr_bench.images import to_input, to_uint8
    from sr_bench.metrics import image_metrics
    from sr_bench.models import resolve_model

    device = torch.device("cpu")
    loaded = resolve_model(args.model, device=device, require_weights=True)
    dataset = resolve_dataset("b100", args.data, loaded.scale)
    with tempfile.TemporaryDirectory() as tmp:
        options = EvalOptions(results_dir=Path(tmp), threads=args.threads, limit=args.limit, save_sr=Path(tmp) / "sr")
        setup_start = time.perf_counter()
        prepared = prepare_run(loaded, device, options)
        setup_ms = (time.perf_counter() - setup_start) * 1e3
        start = time.perf_counter()
        record = evaluate(loaded, dataset, device, options, prepared=prepared).record
        wall = (time.perf_counter() - start) * 1e3
        runtime = record["runtime_ms"]
        model_ms = sum(runtime["samples"]) + sum(runtime["warmup_samples"])
        print(f"{args.model} on B100, {len(runtime['samples'])} images, CPU, {args.threads} torch thread(s), "
              f"exec {record['exec']['label']} (model set-up {setup_ms:.0f} ms, before the clock), "
              "LR generated (cold cache), SR PNGs saved")
        print(f"wall {wall:.0f} ms, model forwards {model_ms:.0f} ms "
              f"({len(runtime['samples'])} timed + {len(runtime['warmup_samples'])} warm-up)")
        print(f"eval-loop overhead (wall - forwards) / wall = {(wall - model_ms) / wall:.2%}  (target <= 5%)")

        pairs = [load_pair(p, loaded.scale, lr_cache_dir(Path(tmp))) for p in dataset.pairs[: args.limit]]
    with torch.inference_mode():
        srs = [to_uint8(loaded.module(to_input(lr, loaded.data_range, device)), loaded.data_range) for lr, _ in pairs]
    hrs = [torch.from_numpy(hr).permute(2, 0, 1) for _, hr in pairs]
    t0 = time.perf_counter()
    ours = [image_metrics(sr, hr, crop_border=loaded.scale) for sr, hr in zip(srs, hrs)]
    t_torch = time.perf_counter() - t0
    srs_np = [sr.permute(1, 2, 0).numpy() for sr in srs]
    t0 = time.perf_counter()
    ref = [numpy_metrics(sr, hr, loaded.scale) for sr, (_, hr) in zip(srs_np, pairs)]
    t_numpy = time.perf_counter() - t0
    worst = max(abs(a[k] - b[k]) for a, b in zip(ours, ref) for k in a)
    print(f"metrics per image: srbench (torch) {t_torch / len(srs) * 1e3:.1f} ms, straightforward numpy "
          f"{t_numpy / len(srs) * 1e3:.1f} ms -> numpy / srbench = {t_numpy / t_torch:.1f}x "
          f"(max |difference| {worst:.1e})")


if __name__ == "__main__":
    main()
