"""CPU speed of srbench's execution modes, measured in one run: model forwards, then a whole `srbench eval`.

Part ``forward``: for each model (random weights; timing does not depend on them) at 1x3x256x256 the modes eager,
retain_heap (eager with glibc keeping freed memory), channels_last, bf16+channels_last and auto run interleaved (one forward of each mode per round, so a noisy
neighbour hits all modes alike) after one untimed warm-up forward each; each mode's time is its minimum over the
rounds. The table gives the speed-up over eager (eager time / mode time) and the max |output - eager output|,
absolute and as a fraction of the model's data range.

Part ``eval``: the installed ``srbench eval`` (default ``--exec auto``, default threads, robust protocol, SR PNGs
saved) against a plain re-implementation of the official NTIRE per-image loop (written below: eager NCHW fp32,
``torch.no_grad``, no warm-up, numpy PSNR and SSIM on RGB with a 4-pixel border, each SR PNG saved with PIL), on the
first ``--limit`` B100 images with LGVAN's real checkpoint. B100 ships no LR, and the official loop reads LR files,
so the LR images are generated once, before any clock starts (MATLAB-exact ``imresize`` of the mod-cropped HR),
and both sides read the same HR and LR folders (srbench through ``--hr``/``--lr``). Each side runs as a fresh
process, timed from the outside, so both pay interpreter start, ``import torch`` and model loading; srbench also
pays its CLI imports, the auto probe and its warm-up. The sides alternate (official, srbench, official, ...) and
each keeps its minimum wall time. Per-image PSNR/SSIM of the two must agree (srbench's come from its ``--json``
record).

    python benchmarks/bench_cpu_modes.py                     # both parts: lgvan, rfdn, dlgsanet-tiny; then eval
    python benchmarks/bench_cpu_modes.py --part forward --models lgvan --rounds 5 --threads 2
    python benchmarks/bench_cpu_modes.py --part eval --limit 20 --eval-rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table
from scipy.ndimage import correlate1d

from sr_bench.env import environment
from sr_bench.execution import ExecMode, PreparedModel, default_threads, prepare, resolve_auto
from sr_bench.timing import pinned_threads, time_call
from sr_bench.zoo import get_spec

CPU = torch.device("cpu")
SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
SCALE = 4
FIXED_MODES = {
    "eager": ExecMode(),
    "retain_heap": ExecMode(retain_heap=True),
    "channels_last": ExecMode(memory_format="channels_last"),
    "bf16+channels_last": ExecMode(memory_format="channels_last", dtype="bf16", dtype_method="autocast"),
}


def _prepared_modes(model: torch.nn.Module, data_range: float) -> tuple[dict[str, PreparedModel], str]:
    """Every mode to time, keyed by row name, and the auto probe's reason.

    auto is prepared and timed on its own even though it resolves to one of the fixed modes: the gap between the
    two rows of the same mode shows how noisy the machine was.
    """
    auto, probe = resolve_auto(model, CPU, data_range=data_range)
    modes = {name: prepare(model, mode, CPU) for name, mode in FIXED_MODES.items()}
    modes[f"auto ({auto.label})"] = prepare(model, auto, CPU)
    return modes, f"auto: {probe['reason']}"


def _measure(
    modes: dict[str, PreparedModel], x: torch.Tensor, rounds: int
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Min forward time (s) per mode over interleaved rounds, and each mode's output from its warm-up forward."""
    outputs = {name: run(x) for name, run in modes.items()}  # untimed warm-up, kept for the diff
    best = {name: float("inf") for name in modes}
    for _ in range(rounds):
        for name, run in modes.items():
            best[name] = min(best[name], time_call(lambda: run(x), CPU)[1] / 1e3)
    return best, outputs


def _model_table(name: str, size: int, rounds: int, title: str) -> Table:
    """Build one zoo model (random weights, seeded), measure every mode and tabulate it against eager."""
    spec = get_spec(name)
    torch.manual_seed(0)
    model = spec.build(4)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * spec.data_range
    modes, auto_note = _prepared_modes(model, spec.data_range)
    best, outputs = _measure(modes, x, rounds)
    table = Table(title=f"{name}: {title}", caption=auto_note)
    for column in ("mode", "time [s]", "vs eager", "max |diff|", "diff / range"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode_name in modes:
        diff = float((outputs[mode_name] - outputs["eager"]).abs().max())
        table.add_row(
            mode_name, f"{best[mode_name]:.3f}", f"{best['eager'] / best[mode_name]:.2f}x",
            f"{diff:.2e}", f"{diff / spec.data_range:.1e}",
        )
    return table


# ---------------------------------------------------------------------------------------------------------
# Part eval: `srbench eval` against the official per-image loop


def _gaussian_1d() -> np.ndarray:
    """cv2.getGaussianKernel(11, 1.5): the official SSIM window is its outer product with itself."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    return g / g.sum()


def official_psnr(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """The official ``calculate_psnr``: all RGB channels, float64, the border cropped."""
    sr = sr[border:-border, border:-border].astype(np.float64)
    hr = hr[border:-border, border:-border].astype(np.float64)
    mse = np.mean((sr - hr) ** 2)
    return float("inf") if mse == 0 else 20 * np.log10(255.0 / np.sqrt(mse))


def official_ssim(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """The official ``calculate_ssim`` per channel, with the 11x11 Gaussian applied as two 1-D passes (scipy).

    Separable filtering gives the same 'valid' result as ``cv2.filter2D`` with the 2-D window and is the faster
    way to write it, so the official side is not handicapped by a slow filter.
    """
    g = _gaussian_1d()

    def filt(x: np.ndarray) -> np.ndarray:
        return correlate1d(correlate1d(x, g, axis=0), g, axis=1)[5:-5, 5:-5]

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    sr = sr[border:-border, border:-border].astype(np.float64)
    hr = hr[border:-border, border:-border].astype(np.float64)
    values = []
    for ch in range(3):
        x, y = sr[..., ch], hr[..., ch]
        mx, my = filt(x), filt(y)
        sxx, syy, sxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
        values.append((((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))).mean())
    return float(np.mean(values))


def official_loop(hr_dir: Path, lr_dir: Path, weights: Path, out_dir: Path) -> dict:
    """The official NTIRE loop, plainly: one eager fp32 forward per image, metrics in numpy, a PNG per image.

    Runs in its own process (``--official-loop``); the model is the zoo's LGVAN with the given checkpoint,
    loaded strictly, exactly as ``srbench`` loads it.
    """
    from sr_bench.models import resolve_model

    loaded = resolve_model("lgvan", scale=SCALE, weights=weights, require_weights=True)
    model, data_range = loaded.module, loaded.data_range
    rows = {}
    for hr_path in sorted(hr_dir.glob("*.png")):
        lr = np.array(Image.open(lr_dir / f"{hr_path.stem}x{SCALE}.png").convert("RGB"))
        hr = np.array(Image.open(hr_path).convert("RGB"))
        hr = hr[: hr.shape[0] - hr.shape[0] % SCALE, : hr.shape[1] - hr.shape[1] % SCALE]
        x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1).float().div(255.0 / data_range).unsqueeze(0)
        start = time.perf_counter()
        with torch.no_grad():
            out = model(x)
        forward_ms = (time.perf_counter() - start) * 1e3
        img = np.transpose(out.squeeze(0).float().clamp(0, data_range).numpy(), (1, 2, 0))
        sr = np.uint8((img * (255.0 / data_range)).round())
        rows[hr_path.stem] = {
            "psnr_rgb": official_psnr(sr, hr, SCALE),
            "ssim_rgb": official_ssim(sr, hr, SCALE),
            "forward_ms": forward_ms,
        }
        Image.fromarray(sr).save(out_dir / f"{hr_path.stem}.png")
    return {"images": rows, "threads": torch.get_num_threads()}


def _make_subset(hr_src: Path, limit: int, root: Path) -> tuple[Path, Path]:
    """Copy the first ``limit`` HR images and write their x4 LR (MATLAB bicubic of the mod-cropped HR), once."""
    from sr_bench.images import modcrop, read_rgb_u8, write_png
    from sr_bench.imresize import imresize

    hr_dir, lr_dir = root / "HR", root / f"LR_x{SCALE}"
    hr_dir.mkdir(parents=True)
    lr_dir.mkdir()
    for path in sorted(hr_src.glob("*.png"))[:limit]:
        shutil.copy(path, hr_dir / path.name)
        write_png(lr_dir / f"{path.stem}x{SCALE}.png", imresize(modcrop(read_rgb_u8(path), SCALE), 1 / SCALE))
    return hr_dir, lr_dir


def _timed(cmd: list[str]) -> float:
    """Wall seconds of a fresh process; its output is kept out of the way unless it fails."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wall


def _eval_part(console: Console, data_root: Path, weights: Path, limit: int, rounds: int) -> None:
    srbench = shutil.which("srbench")
    if srbench is None:
        sys.exit("srbench is not on PATH: install the package (pip install -e .) first")
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        root = Path(tmp)
        hr_dir, lr_dir = _make_subset(data_root / "B100" / "HR", limit, root / "data")
        walls: dict[str, list[float]] = {"official": [], "srbench": []}
        for i in range(rounds):
            run = root / f"round{i}"
            (run / "official").mkdir(parents=True)
            walls["official"].append(_timed([
                sys.executable, __file__, "--official-loop", str(hr_dir), str(lr_dir), str(weights),
                str(run / "official"),
            ]))
            walls["srbench"].append(_timed([
                srbench, "eval", "--model", "lgvan", "--weights", str(weights), "--hr", str(hr_dir),
                "--lr", str(lr_dir), "--results", str(run / "results"), "--save-sr", str(run / "sr"),
                "--json", str(run / "record.json"),
            ]))
        floor = {  # what a fresh process costs before any work: both sides pay it
            "python -c 'import torch'": min(_timed([sys.executable, "-c", "import torch"]) for _ in range(2)),
            "srbench --help": min(_timed([srbench, "--help"]) for _ in range(2)),
        }
        official = json.loads((run / "official" / "metrics.json").read_text())
        record = json.loads((run / "record.json").read_text())
    ours = {row["name"]: row for row in record["images"]}
    theirs = official["images"]
    if set(ours) != set(theirs):
        sys.exit(f"the two sides scored different images: {sorted(set(ours) ^ set(theirs))}")
    d_psnr = max(abs(ours[n]["psnr_rgb"] - theirs[n]["psnr_rgb"]) for n in ours)
    d_ssim = max(abs(ours[n]["ssim_rgb"] - theirs[n]["ssim_rgb"]) for n in ours)
    best = {side: min(times) for side, times in walls.items()}
    rt = record["runtime_ms"]
    forwards = {
        "official": sum(r["forward_ms"] for r in theirs.values()) / 1e3,
        "srbench": (sum(rt["samples"]) + sum(rt["warmup_samples"])) / 1e3,
    }
    notes = {
        "official": f"eager fp32, {official['threads']} threads, no warm-up",
        "srbench": (f"exec {record['exec']['label']}, {record['env']['torch_threads']} threads, "
                    f"{len(rt['warmup_samples'])} warm-up forwards"),
    }
    table = Table(
        title=f"lgvan on the first {len(ours)} B100 images (LR pre-generated), wall time of a fresh process, "
              f"min of {rounds} alternating rounds",
        caption=f"per-image PSNR RGB max |official - srbench| {d_psnr:.1e} dB, SSIM RGB {d_ssim:.1e}",
    )
    for column in ("side", "rounds [s]", "min [s]", "forwards, last round [s]", "how"):
        table.add_column(column, justify="left" if column in ("side", "how") else "right")
    for side in ("official", "srbench"):
        table.add_row(side, " ".join(f"{t:.2f}" for t in walls[side]), f"{best[side]:.2f}", f"{forwards[side]:.2f}",
                      notes[side])
    console.print(table)
    console.print("process start-up alone: " + ", ".join(f"{cmd} {t:.2f} s" for cmd, t in floor.items()))
    console.print(f"official / srbench wall time: {best['official'] / best['srbench']:.2f}x  (target >= 3x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("forward", "eval", "all"), default="all")
    parser.add_argument("--models", nargs="+", default=["lgvan", "rfdn", "dlgsanet-tiny"])
    parser.add_argument("--size", type=int, default=256, help="LR height and width")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed forwards per mode")
    parser.add_argument("--threads", type=int, default=default_threads(), help="torch threads for the forward part")
    parser.add_argument("--limit", type=int, default=20, help="B100 images for the eval part")
    parser.add_argument("--eval-rounds", type=int, default=2, help="alternating runs of each side in the eval part")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SRBENCH_DATA") or SHARED / "data"))
    parser.add_argument("--weights", type=Path,
                        default=Path(os.environ.get("SRBENCH_WEIGHTS") or SHARED / "weights") / "team18_LGVAN.pth",
                        help="LGVAN checkpoint, used by both sides of the eval part")
    parser.add_argument("--official-loop", nargs=4, metavar=("HR", "LR", "WEIGHTS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.official_loop:  # the child process of the eval part
        hr, lr, weights, out = map(Path, args.official_loop)
        (out / "metrics.json").write_text(json.dumps(official_loop(hr, lr, weights, out)))
        return

    console = Console()
    env = environment(CPU, threads=args.threads)
    console.print(f"{env['cpu_model']} | {os.cpu_count()} logical cores | torch {env['torch']} | "
                  f"flags {env['cpu_flags']} | load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.part in ("forward", "all"):
        title = f"CPU execution modes, 1x3x{args.size}x{args.size}, min of {args.rounds} interleaved rounds"
        with pinned_threads(args.threads):
            for name in args.models:  # one table per model, printed as soon as it is measured
                console.print(_model_table(name, args.size, args.rounds, title))
    if args.part in ("eval", "all"):
        _eval_part(console, args.data, args.weights, args.limit, args.eval_rounds)


if __name__ == "__main__":
    main()
