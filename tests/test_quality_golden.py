"""Golden quality: LGVAN and RFDN on Set5 (shipped x4 LR) must reproduce the official pipeline's numbers.

References transcribed from ``tests/data/quality_refs.md`` (a copy of ``specs/quality_refs.md``) (official NTIRE 2023 code path, one torch thread, fp32 CPU).
The model output moves very slightly with the CPU's summation order (about 1 in 10^5 values by +-1), hence the
tolerances: 1e-4 dB PSNR, 1e-5 SSIM. Exercises read_rgb_u8, modcrop, to_input, to_uint8 and image_metrics end to end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from conftest import require_file
from sr_bench.images import modcrop, read_rgb_u8, to_input, to_uint8
from sr_bench.metrics import image_metrics
from sr_bench.models import LoadedModel, resolve_model

PSNR_TOL = 1e-4
SSIM_TOL = 1e-5
KEYS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")

# model -> (checkpoint file, input range, {image: (LR h, LR w, PSNR RGB, SSIM RGB, PSNR Y, SSIM Y)}, means)
GOLDEN = {
    "lgvan": (
        "team18_LGVAN.pth",
        1.0,
        {
            "baby": (128, 128, 32.3047931734, 0.8695836798, 33.8106760318, 0.8943169485),
            "bird": (72, 72, 32.5492900214, 0.9239004724, 34.7770623579, 0.9439323621),
            "butterfly": (64, 64, 27.2739888082, 0.9067587263, 28.7263593150, 0.9259507313),
            "head": (70, 70, 29.9077264711, 0.7200155235, 32.9468782122, 0.7972258972),
            "woman": (86, 57, 29.3328602177, 0.9026006469, 30.7194162470, 0.9141107754),
        },
        (30.2737317384, 0.8645718098, 32.1960784328, 0.8951073429),
    ),
    "rfdn": (
        "team00_rfdn.pth",
        255.0,
        {
            "baby": (128, 128, 32.2518554268, 0.8687142134, 33.7588666647, 0.8934849654),
            "bird": (72, 72, 32.7004531000, 0.9249773198, 34.8903901168, 0.9442247402),
            "butterfly": (64, 64, 27.2228789473, 0.9061908969, 28.6406736799, 0.9251191265),
            "head": (70, 70, 29.9213354258, 0.7204024811, 32.9556930811, 0.7973685130),
            "woman": (86, 57, 29.1753888207, 0.9014527533, 30.5490805237, 0.9127373299),
        },
        (30.2543823441, 0.8643475329, 32.1589408133, 0.8945869350),
    ),
}


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """One torch thread, as the references were computed; the caller's setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _evaluate(model: LoadedModel, data_dir: Path, image: str) -> tuple[tuple[int, int], dict[str, float]]:
    lr = read_rgb_u8(require_file(data_dir / "Set5" / "LR_bicubic" / "X4" / f"{image}x4.png"))
    hr = modcrop(read_rgb_u8(require_file(data_dir / "Set5" / "HR" / f"{image}.png")), 4)
    with torch.inference_mode():
        sr = to_uint8(model.module(to_input(lr, model.data_range, "cpu")), model.data_range)
    return lr.shape[:2], image_metrics(sr, torch.from_numpy(hr).permute(2, 0, 1), crop_border=4)


def _close(key: str, got: float, want: float) -> bool:
    return abs(got - want) <= (PSNR_TOL if key.startswith("psnr") else SSIM_TOL)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_set5_quality_matches_official(name: str, weights_dir: Path, data_dir: Path, one_thread: None) -> None:
    checkpoint, data_range, per_image, means = GOLDEN[name]
    model = resolve_model(name, scale=4, weights=require_file(weights_dir / checkpoint), require_weights=True)
    assert model.data_range == data_range

    got: dict[str, dict[str, float]] = {}
    for image, (lr_h, lr_w, *expected) in per_image.items():
        lr_shape, metrics = _evaluate(model, data_dir, image)
        assert lr_shape == (lr_h, lr_w), image
        got[image] = metrics
        misses = {k: (metrics[k], want) for k, want in zip(KEYS, expected) if not _close(k, metrics[k], want)}
        assert not misses, f"{name} {image}: (got, expected) {misses}"

    for key, want in zip(KEYS, means):
        mean = sum(m[key] for m in got.values()) / len(got)
        assert _close(key, mean, want), f"{name} mean {key}: got {mean}, expected {want}"
