"""Golden quality: LGVAN and RFDN on Set5 (shipped x4 LR) must reproduce the official pipeline's numbers.

References read from ``tests/data/quality_refs.md`` (a copy of ``specs/quality_refs.md``: official NTIRE 2023 code
path, one torch thread, fp32 CPU), at the spec's tolerances (``set5_references.py``): 1e-4 dB PSNR, 1e-5 SSIM.
Exercises read_rgb_u8, modcrop, to_input, to_uint8 and image_metrics end to end; ``test_evaluate.py`` asserts the
same numbers for the eval loop itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from conftest import require_file, set5_quality_refs
from set5_references import KEYS, misses
from sr_bench.images import modcrop, read_rgb_u8, to_input, to_uint8
from sr_bench.metrics import image_metrics
from sr_bench.models import LoadedModel, resolve_model

MODELS = {"lgvan": ("team18_LGVAN.pth", 1.0), "rfdn": ("team00_rfdn.pth", 255.0)}  # checkpoint, input range
SET5_LR = {"baby": (128, 128), "bird": (72, 72), "butterfly": (64, 64), "head": (70, 70), "woman": (86, 57)}


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


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_set5_quality_matches_official(name: str, weights_dir: Path, data_dir: Path, one_thread: None) -> None:
    checkpoint, data_range = MODELS[name]
    refs = set5_quality_refs()[name]
    model = resolve_model(name, scale=4, weights=require_file(weights_dir / checkpoint), require_weights=True)
    assert model.data_range == data_range
    assert list(SET5_LR) == [image for image in refs if image != "mean"]

    got: dict[str, dict[str, float]] = {}
    for image, lr_size in SET5_LR.items():
        lr_shape, metrics = _evaluate(model, data_dir, image)
        assert lr_shape == lr_size, image
        got[image] = metrics
        assert not misses(metrics, refs[image]), f"{name} {image}: (got, expected) {misses(metrics, refs[image])}"

    mean = {key: sum(m[key] for m in got.values()) / len(got) for key in KEYS}
    assert not misses(mean, refs["mean"]), f"{name} mean: (got, expected) {misses(mean, refs['mean'])}"
