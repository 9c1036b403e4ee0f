"""The eval pipeline's speed, each part against a faithful baseline: the official loop, the model alone, BasicSR.

Part ``pipeline`` (the pipeline alone): a near-free x4 model (one 3x3 conv + PixelShuffle, ``common.NearFreeX4``,
nearest-neighbour-like weights) on the first ``--images`` B100 images, SR PNGs saved, RGB PSNR + SSIM.
``srbench eval`` (defaults, ``--threads``) against ``official_loop.py`` (the NTIRE harness's per-image loop, cv2
decode/encode, re-implemented faithfully) in both of its variants: ``--ssim`` (what srbench computes) and the
harness's default, PSNR only. Each side is a fresh process timed from outside, with the same torch thread count;
B100 ships no LR, so the LR files are made once before any clock and both sides read the same folders. The sides
run in turn, the first side changing every round; each keeps its minimum wall. Per-image PSNR/SSIM must agree
within 1e-4 dB / 1e-5 (else the script fails), and the SR PNGs are compared pixel for pixel.

Part ``overhead`` (what the loop costs beyond the model): LGVAN on the first ``--lgvan-images`` B100 images (LR
generated, cold cache, SR PNGs saved), in process. Each round runs ``evaluate()`` and, in turn with it, the same
forwards alone (same prepared model, same inputs, evaluate()'s warm-up count, no decode/score/save threads beside
them; when evaluate() settled on another warm-up count than the alone run used, its warm-ups are priced at the mean
warm-up time alone):

    (wall - sum of forwards timed inside the loop) / wall    -- forwards timed while the threads run beside them
    wall / sum of the same forwards alone                    -- the honest cost of the loop around the model

Part ``metrics``: srbench's ``image_metrics`` (torch) against BasicSR's PSNR/SSIM (numpy + ``cv2.filter2D``, RGB and
Y, ``official_loop.basicsr_metrics``) on the same SR/HR pairs, alternating which runs first; they must agree within
1e-4 dB / 1e-5. The official ``calculate_ssim`` (three whole-image SSIMs) is timed too, for reference.

    python benchmarks/bench_eval.py                              # all parts, defaults finish in a few minutes
    python benchmarks/bench_eval.py --part pipeline --images 100 --rounds 3
    python benchmarks/bench_eval.py --part overhead --lgvan-images 16 --threads 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import torch

import official_loop
from common import DATA, NEAR_FREE_MODEL, WEIGHTS, NearFreeX4, check_agreement, near_free_checkpoint, versus_official

CPU = torch.device("cpu")


# ------------------------------------------------------------------------------------------- part pipeline


def pipeline_part(images: int, rounds: int, threads: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-near-free-") as tmp:
        weights = near_free_checkpoint(Path(tmp) / "near_free_x4.pth")
        versus_official("pipeline: near-free x4 model (one 3x3 conv + PixelShuffle)",
                        ["--model", NEAR_FREE_MODEL, "--weights", str(weights)], images, rounds, threads, target=4)


# ------------------------------------------------------------------------------------------- part overhead


def _alone(model, inputs: list[torch.Tensor], warmups: int, threads: int) -> tuple[list[float], list[float]]:
    """The forwards evaluate() runs (warm-up forwards on the first shape, then one per image), each timed (ms) with
    nothing else running in this process: (warm-up times, per-image times)."""
    from sr_bench.clocks import time_call
    from sr_bench.timing import pinned_threads

    with pinned_threads(threads), torch.inference_mode():
        warm = [time_call(lambda: model(inputs[0]), CPU)[1] for _ in range(warmups)]
        return warm, [time_call(lambda: model(x), CPU)[1] for x in inputs]


def _warmups(result: dict) -> int:
    return len(result["record"]["runtime_ms"]["warmup_samples"])


def overhead_part(name: str, images: int, rounds: int, threads: int) -> None:
    from sr_bench.datasets import load_pair, lr_cache_dir, resolve_dataset
    from sr_bench.eval_config import EvalOptions
    from sr_bench.evaluate import evaluate, prepare_run
    from sr_bench.images import to_input
    from sr_bench.models import resolve_model

    loaded = resolve_model(name, device=CPU, require_weights=True)
    dataset = resolve_dataset("b100", DATA, loaded.scale)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        root = Path(tmp)
        base = EvalOptions(results_dir=root / "setup", threads=threads, limit=images)
        setup_start = time.perf_counter()
        prepared = prepare_run(loaded, CPU, base)
        setup_ms = (time.perf_counter() - setup_start) * 1e3
        pairs = [load_pair(p, loaded.scale, lr_cache_dir(root / "setup")) for p in dataset.pairs[:images]]
        inputs = [to_input(lr, loaded.data_range, CPU) for lr, _ in pairs]
        for i in range(rounds):
            options = EvalOptions(results_dir=root / f"r{i}", threads=threads, limit=images, save_sr=root / f"sr{i}")

            def loop() -> dict:
                start = time.perf_counter()
                record = evaluate(loaded, dataset, CPU, options, prepared=prepared).record
                return {"wall": (time.perf_counter() - start) * 1e3, "record": record}

            if i % 2 == 0:  # evaluate() first; the forwards alone repeat its warm-up count
                result = loop()
                warm, per_image = _alone(prepared.model, inputs, _warmups(result), threads)
            else:  # alone first, with round 0's warm-up count (evaluate() settles its own as it goes)
                warm, per_image = _alone(prepared.model, inputs, _warmups(rows[0]), threads)
                result = loop()
            runtime = result["record"]["runtime_ms"]
            result["inside"] = sum(runtime["samples"]) + sum(runtime["warmup_samples"])
            # the same forwards as inside: when evaluate() settled on another warm-up count, at the mean warm-up time
            result["alone"] = sum(per_image) + sum(warm) / len(warm) * _warmups(result) if warm else sum(per_image)
            rows.append(result)
    record = rows[-1]["record"]
    print(f"\n== overhead: {name} on {len(record['images'])} B100 images, CPU, {threads} torch thread(s), exec "
          f"{record['exec']['label']} (set-up {setup_ms:.0f} ms, before the clock), LR generated (cold cache), "
          f"SR PNGs saved; {rounds} rounds, evaluate() and the forwards alone in turn")
    for i, r in enumerate(rows):
        print(f"  round {i}: wall {r['wall']:.0f} ms, forwards inside {r['inside']:.0f} ms ({_warmups(r)} of them "
              f"warm-up), the same forwards alone {r['alone']:.0f} ms")
    best = min(rows, key=lambda r: r["wall"] / r["alone"])
    print(f"  (wall - forwards inside) / wall = {(best['wall'] - best['inside']) / best['wall']:.1%}  (target <= 5%)")
    print(f"  wall / forwards alone = {best['wall'] / best['alone']:.3f}  "
          f"(loop cost beyond the model {(best['wall'] - best['alone']) / best['wall']:.1%} of the wall; best round)")


# -------------------------------------------------------------------------------------------- part metrics


def metrics_part(images: int) -> None:
    from sr_bench.images import modcrop, read_rgb_u8, to_input, to_uint8
    from sr_bench.imresize import imresize
    from sr_bench.metrics import image_metrics

    scale = 4
    model = official_loop.prepare_model(_near_free_module(), CPU)
    pairs = []
    for path in sorted((DATA / "B100" / "HR").glob("*.png"))[:images]:
        hr = modcrop(read_rgb_u8(path), scale)
        with torch.inference_mode():
            sr = to_uint8(model(to_input(imresize(hr, 1 / scale), 1.0, CPU)), 1.0)
        pairs.append((sr, torch.from_numpy(hr).permute(2, 0, 1), sr.permute(1, 2, 0).numpy(), hr))
    took = {"srbench": 0.0, "basicsr": 0.0, "official": 0.0}
    ours, ref = {}, {}
    for i, (sr_t, hr_t, sr_np, hr_np) in enumerate(pairs):
        calls = {
            "srbench": lambda: image_metrics(sr_t, hr_t, crop_border=scale),
            "basicsr": lambda: official_loop.basicsr_metrics(sr_np, hr_np, scale),
            "official": lambda: official_loop.calculate_ssim(sr_np, hr_np, scale),
        }
        names = list(calls) if i % 2 == 0 else list(reversed(calls))
        for side in names:
            start = time.perf_counter()
            value = calls[side]()
            took[side] += time.perf_counter() - start
            if side == "srbench":
                ours[str(i)] = value
            elif side == "basicsr":
                ref[str(i)] = value
    agreement = check_agreement(ours, ref, ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"))
    per = {side: t / len(pairs) * 1e3 for side, t in took.items()}
    print(f"\n== metrics: PSNR + SSIM, RGB and Y, per image, {len(pairs)} B100 images (SR of the near-free model), "
          "in turn")
    print(f"  srbench image_metrics (torch) {per['srbench']:.1f} ms; BasicSR calculate_psnr/calculate_ssim "
          f"(numpy + cv2.filter2D per channel) {per['basicsr']:.1f} ms; the harness's calculate_ssim alone "
          f"(RGB, 3 whole-image SSIMs) {per['official']:.1f} ms")
    print(f"  {agreement}")
    print(f"  BasicSR / srbench = {per['basicsr'] / per['srbench']:.2f}x")


def _near_free_module() -> torch.nn.Module:
    with tempfile.TemporaryDirectory() as tmp:
        model = NearFreeX4()
        model.load_state_dict(torch.load(near_free_checkpoint(Path(tmp) / "w.pth"), weights_only=True))
    return model


def main() -> None:
    from sr_bench.execution import default_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("pipeline", "overhead", "metrics", "all"), default="all")
    parser.add_argument("--images", type=int, default=100, help="B100 images for the pipeline part")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the pipeline part (each side once a round)")
    parser.add_argument("--threads", type=int, default=default_threads(), help="torch threads, every part")
    parser.add_argument("--model", default="lgvan", help="model of the overhead part")
    parser.add_argument("--lgvan-images", type=int, default=24, help="B100 images for the overhead part")
    parser.add_argument("--overhead-rounds", type=int, default=2)
    parser.add_argument("--metric-images", type=int, default=32, help="B100 images for the metrics part")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)  # the metrics part's BasicSR side filters with OpenCV
    os.environ.setdefault("SRBENCH_WEIGHTS", str(WEIGHTS))
    print(f"{os.cpu_count()} logical cores, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.part in ("pipeline", "all"):
        pipeline_part(args.images, args.rounds, args.threads)
    if args.part in ("overhead", "all"):
        overhead_part(args.model, args.lgvan_images, args.overhead_rounds, args.threads)
    if args.part in ("metrics", "all"):
        metrics_part(args.metric_images)


if __name__ == "__main__":
    main()
