"""What the eval benchmarks share: the B100 subset with pre-made LR, timed fresh processes, the near-free x4 model,
and the per-image agreement check that fails a benchmark whose two sides disagree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SHARED = REPO.parent / "shared"
DATA = Path(os.environ.get("SRBENCH_DATA") or SHARED / "data")
WEIGHTS = Path(os.environ.get("SRBENCH_WEIGHTS") or SHARED / "weights")
PSNR_TOL, SSIM_TOL = 1e-4, 1e-5  # the spec's agreement for per-image numbers of the same model (dB, SSIM)
SRBENCH = [sys.executable, "-m", "sr_bench"]  # the installed CLI (PYTHONPATH picks a checkout), as `srbench`
OFFICIAL = [sys.executable, str(BENCH / "official_loop.py")]


class NearFreeX4(nn.Module):
    """One 3x3 conv and a PixelShuffle: a forward of microseconds, so only the eval pipeline around it counts."""

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


def near_free_checkpoint(path: Path, scale: int = 4) -> Path:
    """Weights that upsample like nearest neighbour plus a little seeded noise, so the SR images (and their PNG
    encoding cost) look like photos rather than random noise."""
    model = NearFreeX4(scale)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.conv.weight.copy_(torch.randn(model.conv.weight.shape, generator=generator) * 0.01)
        model.conv.bias.zero_()
        for c in range(3):
            model.conv.weight[c * scale * scale:(c + 1) * scale * scale, c, 1, 1] += 1.0
    torch.save(model.state_dict(), path)
    return path


# relative to the repository root, where every benchmark process runs: `srbench eval --save-sr DIR` files a user
# model's PNGs under DIR/<model name>_x4/, and an absolute path as the name would escape DIR
NEAR_FREE_MODEL = "benchmarks/common.py:NearFreeX4"


def make_subset(hr_src: Path, limit: int, root: Path, scale: int = 4) -> tuple[Path, Path]:
    """Copy the first ``limit`` HR images and write their LR (MATLAB bicubic of the mod-cropped HR, as srbench
    generates it) once, before any clock: B100 ships no LR, and the official loop reads LR files."""
    from sr_bench.images import modcrop, read_rgb_u8, write_png
    from sr_bench.imresize import imresize

    hr_dir, lr_dir = root / "HR", root / f"LR_x{scale}"
    hr_dir.mkdir(parents=True)
    lr_dir.mkdir()
    sources = sorted(hr_src.glob("*.png"))[:limit]
    if len(sources) < limit:
        sys.exit(f"{hr_src} has {len(sources)} PNG images, fewer than the {limit} asked for")
    for path in sources:
        shutil.copy(path, hr_dir / path.name)
        write_png(lr_dir / f"{path.stem}x{scale}.png", imresize(modcrop(read_rgb_u8(path), scale), 1 / scale))
    return hr_dir, lr_dir


def timed(cmd: list[str]) -> float:
    """Wall seconds of a fresh process; its output is kept out of the way unless it fails."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wall


TORCH_FLOOR = "python -c 'import torch'"


def startup_floor() -> dict[str, float]:
    """What a fresh process costs before any work, min of two: importing torch (both sides pay it), and
    srbench's CLI start-up alone (torch-free)."""
    return {
        TORCH_FLOOR: min(timed([sys.executable, "-c", "import torch"]) for _ in range(2)),
        "srbench --help": min(timed([*SRBENCH, "--help"]) for _ in range(2)),
    }


def srbench_rows(record_path: Path) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(record_path.read_text())["images"]}


def official_rows(json_path: Path) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(json_path.read_text())["images"]}


def check_agreement(ours: dict[str, dict], theirs: dict[str, dict], keys: tuple[str, ...]) -> str:
    """One line on how far the per-image numbers of the two sides are apart; exits non-zero (after printing
    the worst images) when they differ beyond the spec's 1e-4 dB / 1e-5, or scored different images."""
    if set(ours) != set(theirs):
        sys.exit(f"FAIL: the two sides scored different images: {sorted(set(ours) ^ set(theirs))}")
    parts, bad = [], []
    for key in keys:
        tol = PSNR_TOL if key.startswith("psnr") else SSIM_TOL
        diffs = {name: abs(ours[name][key] - theirs[name][key]) for name in ours}
        equal = sum(d == 0 for d in diffs.values())
        parts.append(f"{key} max |diff| {max(diffs.values()):.1e} ({equal}/{len(diffs)} identical)")
        bad += [f"{name} {key}: {ours[name][key]!r} vs {theirs[name][key]!r}" for name, d in diffs.items() if d > tol]
    if bad:
        print("\n".join(bad[:10]), file=sys.stderr)
        sys.exit(f"FAIL: {len(bad)} per-image value(s) differ by more than {PSNR_TOL:g} dB / {SSIM_TOL:g}")
    return "per image: " + ", ".join(parts)


def identical_pngs(ours: Path, theirs: Path) -> tuple[int, int]:
    """(SR PNGs with identical pixels, SR PNGs compared): each of ``theirs`` against the same name under ``ours``."""
    import numpy as np
    from PIL import Image

    mine = {p.name: p for p in ours.rglob("*.png")}
    files = sorted(theirs.rglob("*.png"))
    same = sum(
        p.name in mine and np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(mine[p.name])))
        for p in files
    )
    return same, len(files)


def versus_official(title: str, model: list[str], images: int, rounds: int, threads: int, target: float) -> None:
    """``srbench eval`` against the official loop in both variants (``--ssim``; PSNR only, the harness's default),
    each a fresh process timed from outside with the same thread count, on the first ``images`` B100 images
    (LR made before any clock, SR PNGs saved). The first side rotates every round; each side keeps its min.
    Prints the walls, the start-up floor, the per-image agreement (exits non-zero beyond 1e-4 dB / 1e-5) and
    the ratios. ``model`` is the ``--model``/``--weights`` arguments both CLIs take."""
    import tempfile

    from official_loop import NAME

    sides = ["srbench", "official --ssim", "official"]
    with tempfile.TemporaryDirectory(prefix="bench-official-") as tmp:
        root = Path(tmp)
        hr_dir, lr_dir = make_subset(DATA / "B100" / "HR", images, root / "data")
        shared = [*model, "--threads", str(threads), "--hr", str(hr_dir), "--lr", str(lr_dir)]

        def cmd(side: str, run: Path) -> list[str]:
            if side == "srbench":
                return [*SRBENCH, "eval", *shared, "--results", str(run / "results"), "--save-sr", str(run / "sr"),
                        "--json", str(run / "record.json")]
            ssim = ["--ssim"] if side == "official --ssim" else []
            return [*OFFICIAL, *shared, "--save", str(run / "sr"), "--json", str(run / "official.json"), *ssim]

        walls: dict[str, list[float]] = {side: [] for side in sides}
        for i in range(rounds):
            for side in sides[i % 3:] + sides[: i % 3]:
                walls[side].append(timed(cmd(side, root / f"round{i}" / side.replace(" --", "-"))))
        last = root / f"round{rounds - 1}"
        ours = srbench_rows(last / "srbench/record.json")
        agreement = check_agreement(ours, official_rows(last / "official-ssim/official.json"), ("psnr_rgb", "ssim_rgb"))
        check_agreement(ours, official_rows(last / "official/official.json"), ("psnr_rgb",))  # the other variant
        same, compared = identical_pngs(last / "srbench/sr", last / "official-ssim/sr")
        record = json.loads((last / "srbench/record.json").read_text())
        floor = startup_floor()
    best = {side: min(times) for side, times in walls.items()}
    net = {side: best[side] - floor[TORCH_FLOOR] for side in sides}
    print(f"\n== {title}: {images} B100 images (LR made before the clock), SR PNGs saved, {threads} torch/OpenCV "
          f"thread(s) each side; wall of a fresh process, min of {rounds} rounds (first side rotating)")
    for side in sides:
        print(f"  {side:16s} {best[side]:7.2f} s   rounds: {' '.join(f'{t:.2f}' for t in walls[side])}")
    print(f"  srbench: exec {record['exec']['label']}, {len(record['runtime_ms']['warmup_samples'])} warm-up forwards; "
          f"official: {NAME}, no warm-up")
    print("  process start-up alone: " + ", ".join(f"{k} {v:.2f} s" for k, v in floor.items()))
    print(f"  {agreement}; SR PNGs pixel-identical: {same}/{compared}")
    print(f"  official --ssim / srbench wall: {best['official --ssim'] / best['srbench']:.2f}x  (target >= {target:g}x)")
    print(f"  official (PSNR only, the harness default) / srbench wall: {best['official'] / best['srbench']:.2f}x")
    print(f"  less {TORCH_FLOOR} from each: official --ssim / srbench {net['official --ssim'] / net['srbench']:.2f}x"
          f", official / srbench {net['official'] / net['srbench']:.2f}x")
