"""Hostile images and weights (issue 10 items 2, 10, 11; issue 14 item 8): decompression bombs, images too large
for memory, non-finite weights and outputs, 16-bit files. Each must end in a named, one-line outcome."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr_bench import memcheck
from sr_bench.datasets import check_pairs, custom_dataset, resolve_dataset, sixteen_bit_warning
from sr_bench.errors import DatasetError, DeviceError, NonFiniteOutputError
from sr_bench.eval_config import EvalOptions
from sr_bench.evaluate import evaluate
from sr_bench.images import is_sixteen_bit, read_rgb_u8
from sr_bench.memcheck import MemoryEstimator, check_eval_fits, check_profile_fits, estimate_eval, peak_tensor_bytes
from sr_bench.models import CheckpointInfo, LoadedModel, resolve_model
from sr_bench.profile import ProfileRequest, run_profile
from sr_bench.zoo import ModelSpec
from test_cli_eval import error_line
from test_cli_eval import run as cli_run

TINY = str(Path(__file__).parent / "data" / "user_net.py") + ":TinyNet"
CPU = torch.device("cpu")
GIB = 1024**3


def _png(width: int, height: int, *, bit_depth: int = 8, color_type: int = 2, rows: bytes | None = None) -> bytes:
    """A minimal PNG; ``rows`` defaults to black pixels, and a short ``rows`` gives a header promising more than
    the data holds (a bomb's header costs nothing to make)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    if rows is None:
        rows = (b"\x00" + bytes(width * channels * bit_depth // 8)) * height

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def run(*args: object):
    return cli_run(*args, width=100)  # wide enough that no error line wraps


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "tiny.pth"
    torch.save(resolve_model(TINY).module.state_dict(), path)
    return path


# ------------------------------------------------------------------------------------ item 10: bombs


@pytest.fixture
def bomb_set(tmp_path: Path, data_dir: Path) -> Path:
    """An HR folder with one good image and a 30000x30000 PNG header over a few bytes of data."""
    hr = tmp_path / "hr"
    hr.mkdir()
    shutil.copy(data_dir / "Set5/HR/bird.png", hr / "bird.png")
    (hr / "bomb.png").write_bytes(_png(30000, 30000, rows=b"\x00" * 1000))
    return hr


def test_a_decompression_bomb_is_a_named_bad_image(bomb_set: Path) -> None:
    with pytest.raises(DatasetError, match=r"cannot read image .*bomb\.png: a possible decompression bomb: its size "
                                           r"\(900000000 pixels\) exceeds limit of \d+ pixels; .*--skip-bad"):
        check_pairs(custom_dataset(bomb_set, None, 4).pairs, 4)
    with pytest.raises(DatasetError, match=r"bomb\.png: a possible decompression bomb"):
        read_rgb_u8(bomb_set / "bomb.png")
    checked, bad = check_pairs(custom_dataset(bomb_set, None, 4).pairs, 4, skip_bad=True)
    assert [c.pair.name for c in checked] == ["bird"] and [b.name for b in bad] == ["bomb"]


def test_eval_with_a_bomb_stops_named_or_skips_it(bomb_set: Path, tiny_weights: Path, tmp_path: Path) -> None:
    base = ("eval", "--model", TINY, "--weights", tiny_weights, "--hr", bomb_set, "--device", "cpu", "--threads", "1",
            "--protocol", "ntire2023", "--results", tmp_path / "results")
    line = error_line(run(*base))
    assert "bomb.png: a possible decompression bomb" in line and "bug in srbench" not in line
    result = run(*base, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "skipped bomb" in result.stderr and "decompression bomb" in result.stderr


# ------------------------------------------------------------------------------ item 11: memory check


def test_live_tensor_bytes_follow_allocation_and_release() -> None:
    def fn(x: torch.Tensor) -> torch.Tensor:
        a = x * 2  # 4 KiB more
        b = a + 1  # 8 KiB alive at most
        del a
        return b.view(-1)  # a view: no new bytes

    x = torch.empty(1024, device="meta")
    assert peak_tensor_bytes(fn, x) == 3 * 4096
    assert peak_tensor_bytes(lambda t: t.tolist(), x) is None  # cannot run on meta: no estimate


def test_estimate_grows_with_the_pixels_and_never_touches_the_model() -> None:
    model = resolve_model(TINY).module
    before = {k: v.clone() for k, v in model.state_dict().items()}
    estimator = MemoryEstimator(model)
    small, large = estimator.forward_bytes((1, 3, 32, 32)), estimator.forward_bytes((1, 3, 64, 64))
    assert small is not None and large is not None and 3.9 < large / small < 4.1
    # TinyNet at 64x64: input, 16-channel features, 48-channel tail output (its shuffle is a view) at the peak
    assert large >= 4 * 64 * 64 * (3 + 16 + 48)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert next(model.parameters()).device == CPU


def test_an_image_too_large_for_memory_is_an_error_that_suggests_a_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    estimator = MemoryEstimator(resolve_model(TINY).module)
    kw = {"scale": 4, "data_range": 1.0, "scorers": 2, "queued": 8}
    fit = estimate_eval(estimator, (600, 800), CPU, tile=None, **kw)
    assert fit is not None and fit.output == 3 * 2400 * 3200 * 4
    assert fit.total == fit.forward + 2 * fit.scoring + 8 * fit.output  # CPU: scoring overlaps the next forward
    on_gpu = estimate_eval(estimator, (600, 800), torch.device("cuda"), tile=None, **kw)
    assert on_gpu is not None and on_gpu.total == max(fit.forward, fit.scoring)  # scored between forwards
    free = fit.total - fit.forward + int(fit.forward * 0.9)  # everything but the untiled forward fits
    monkeypatch.setattr(memcheck, "free_bytes", lambda device: free)
    kw |= {"overlap": 32, "model": "tiny", "image": "huge"}
    with pytest.raises(DeviceError, match=r"tiny needs about [\d.]+ GiB of CPU memory for huge \(LR 600x800; "
                                          r"scoring one SR image takes [\d.]+ GiB\) and [\d.]+ GiB is free: "
                                          r"rerun with --tile (\d+) \(about") as info:
        check_eval_fits(estimator, (600, 800), CPU, tile=None, **kw)
    tile = int(str(info.value).split("--tile ")[1].split()[0])
    assert tile % 8 == 0 and 32 < tile < 800
    check_eval_fits(estimator, (600, 800), CPU, tile=tile, **kw)  # the suggestion fits
    monkeypatch.setattr(memcheck, "free_bytes", lambda device: fit.scoring)
    with pytest.raises(DeviceError, match=r"no --tile above --tile-overlap 32 fits: use a machine with more memory"):
        check_eval_fits(estimator, (600, 800), CPU, tile=None, **kw)
    monkeypatch.setattr(memcheck, "free_bytes", lambda device: None)  # the device does not say: no check
    check_eval_fits(estimator, (600, 800), CPU, tile=None, **kw)


def test_free_memory_comes_from_the_device() -> None:
    free = memcheck.free_bytes(CPU)
    assert free is not None and free > 0
    assert memcheck.free_bytes(torch.device("meta")) is None


def test_profile_size_too_large_is_an_error_before_any_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = resolve_model(TINY)
    calls = []
    loaded.module.register_forward_hook(lambda m, i, o: calls.append((i[0].device.type, i[0].shape[-1])))
    monkeypatch.setattr(memcheck, "free_bytes", lambda device: 64 * 1024**2)
    request = ProfileRequest(device=CPU, size=(2000, 2000), runtime=False, threads=1)
    with pytest.raises(DeviceError, match=r"TinyNet needs about [\d.]+ GiB for one forward on 1x3x2000x2000 and the "
                                          r"CPU has 0.1 GiB free: use a smaller --size \((\d+)x\1 fits\)"):
        run_profile(loaded, request)
    assert [c for c in calls if c[0] == "cpu"] == [("cpu", 24)]  # the tiny shape check only; the estimate ran on meta
    estimator = MemoryEstimator(loaded.module)
    with pytest.raises(DeviceError) as info:
        check_profile_fits(estimator, (1, 3, 2000, 2000), CPU, model="tiny")
    side = int(str(info.value).split("(")[1].split("x")[0])
    assert (estimator.forward_bytes((1, 3, side, side)) or 0) <= 64 * 1024**2


# ------------------------------------------------------------------------- item 2: non-finite weights


@pytest.mark.parametrize("poison", ["all", "one"])
def test_a_checkpoint_with_non_finite_weights_is_a_warning_naming_the_tensor(tmp_path: Path, poison: str) -> None:
    state = resolve_model(TINY).module.state_dict()
    if poison == "all":
        state = {k: torch.full_like(v, float("nan")) for k, v in state.items()}
    else:
        state["tail.bias"][5] = float("inf")
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    loaded = resolve_model(TINY, weights=path, require_weights=True)
    first, count = ("head.weight", "432 NaN/Inf value(s) of 432 (and 3 more tensors)") if poison == "all" else \
        ("tail.bias", "1 NaN/Inf value(s) of 48;")
    assert len(loaded.warnings) == 1
    assert f"bad.pth has non-finite weights: {first} holds {count}" in loaded.warnings[0]


# --------------------------------------------------------------------------- issue 14 item 8: 16-bit


@pytest.mark.parametrize(("bit_depth", "color_type", "sixteen"), [(16, 0, True), (16, 2, True), (16, 4, True),
                                                                  (16, 6, True), (8, 2, False), (8, 0, False)])
def test_sixteen_bit_files_are_recognised(tmp_path: Path, bit_depth: int, color_type: int, sixteen: bool) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(_png(4, 4, bit_depth=bit_depth, color_type=color_type))
    with Image.open(path) as im:
        assert is_sixteen_bit(im) is sixteen


def test_a_dataset_with_sixteen_bit_images_gets_one_warning(tmp_path: Path) -> None:
    hr = tmp_path / "hr"
    hr.mkdir()
    for name, depth in (("a", 16), ("b", 8), ("c", 16)):
        (hr / f"{name}.png").write_bytes(_png(32, 32, bit_depth=depth))
    checked, _ = check_pairs(custom_dataset(hr, None, 4).pairs, 4)
    assert [c.sixteen_bit for c in checked] == [True, False, True]
    assert sixteen_bit_warning(checked, "custom") == (
        "2 image(s) of custom are 16-bit (a, c): srbench reads the high byte of each sample; the official reader "
        "would keep uint16 and scale it as 8-bit, so no official number exists for them"
    )
    assert sixteen_bit_warning([c for c in checked if not c.sixteen_bit], "custom") is None


# --------------------------------------------------------------------- item 2: non-finite model outputs


class NanOnButterfly(torch.nn.Module):
    """A fine x4 net except on one image (butterfly, the only 64x64 LR of Set5), where it returns NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.up = torch.nn.Upsample(scale_factor=4, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.up(x)
        return out * float("nan") if x.shape[-2:] == (64, 64) else out


def _eval_options(tmp_path: Path, **kw: object) -> EvalOptions:
    return EvalOptions(results_dir=tmp_path / "results", exec="eager", threads=1, protocol="ntire2023", **kw)


@pytest.mark.parametrize(("poison", "count"), [("all", "786,432 of 786,432"), ("one", "16,384 of 786,432")])
def test_non_finite_weights_stop_the_eval_naming_image_and_model(tmp_path: Path, data_dir: Path, poison: str,
                                                                  count: str) -> None:
    state = resolve_model(TINY).module.state_dict()
    if poison == "all":
        state = {k: torch.full_like(v, float("nan")) for k, v in state.items()}
    else:
        state["tail.bias"][5] = float("nan")  # one of the 48 pre-shuffle channels: 1/48 of the SR values
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    loaded = resolve_model(TINY, weights=path, require_weights=True)
    with pytest.raises(NonFiniteOutputError, match=rf"user_net\.py:TinyNet gave a non-finite output for baby: {count} values "
                                                   r"are NaN/Inf .*; fix the model, or rerun with --skip-bad"):
        evaluate(loaded, resolve_dataset("set5", data_dir, 4), CPU, _eval_options(tmp_path, limit=2))
    assert not list((tmp_path / "results").glob("eval/*.json"))  # no record with a normal-looking PSNR


def test_a_model_returning_nan_fails_that_image_like_a_bad_one(tmp_path: Path, data_dir: Path) -> None:
    spec = ModelSpec(name="nanny", builder=lambda scale, **kw: NanOnButterfly(), scales=(4,), data_range=1.0)
    loaded = LoadedModel(NanOnButterfly().eval(), spec, 4, 1.0, CheckpointInfo(None, None, None))
    ds = resolve_dataset("set5", data_dir, 4)
    with pytest.raises(NonFiniteOutputError, match=r"nanny gave a non-finite output for butterfly: 196,608 of 196,608"):
        evaluate(loaded, ds, CPU, _eval_options(tmp_path))
    record = evaluate(loaded, ds, CPU, _eval_options(tmp_path, skip_bad=True)).record
    assert [r["name"] for r in record["images"]] == ["baby", "bird", "head", "woman"]
    assert record["skipped"] == [{"name": "butterfly", "path": str(ds.pairs[2].hr_path), "error": (
        "nanny gave a non-finite output for butterfly: 196,608 of 196,608 values are NaN/Inf (broken weights, or an "
        "overflow in reduced precision)")}]
    assert all(np.isfinite(r["psnr_rgb"]) for r in record["images"])


NAN_ON_BUTTERFLY = """
import torch
from torch import nn


class NanOnButterfly(nn.Module):
    def __init__(self, scale=4):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.up = nn.Upsample(scale_factor=scale, mode="nearest")

    def forward(self, x):
        out = self.up(self.conv(x))
        return out * float("nan") if x.shape[-2:] == (64, 64) else out
"""


def test_a_skipped_nan_image_is_warned_once_with_its_reason(tmp_path: Path, data_dir: Path) -> None:
    """--skip-bad names the real reason while the run goes on (not 'unreadable'), and the summary does not repeat it."""
    (tmp_path / "um.py").write_text(NAN_ON_BUTTERFLY)
    model = f"{tmp_path / 'um.py'}:NanOnButterfly"
    torch.save(resolve_model(model).module.state_dict(), tmp_path / "w.pth")
    result = run("eval", "--model", model, "--weights", tmp_path / "w.pth", "--dataset", "set5", "--data-root",
                 data_dir, "--device", "cpu", "--threads", "1", "--skip-bad", "--results", tmp_path / "results")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert warnings == [f"Warning: skipped butterfly: {model} gave a non-finite output for butterfly: 196,608 of "
                        "196,608 values are NaN/Inf (broken weights, or an overflow in reduced precision)"]


def test_eval_cli_with_nan_weights_is_one_line(tmp_path: Path, data_dir: Path) -> None:
    state = {k: torch.full_like(v, float("nan")) for k, v in resolve_model(TINY).module.state_dict().items()}
    torch.save(state, tmp_path / "nan.pth")
    result = run("eval", "--model", TINY, "--weights", tmp_path / "nan.pth", "--dataset", "set5", "--data-root",
                 data_dir, "--device", "cpu", "--threads", "1", "--limit", "1", "--results", tmp_path / "results")
    assert result.exit_code == 1 and "Traceback" not in result.output and "bug in srbench" not in result.output
    lines = result.stderr.strip().splitlines()
    assert "nan.pth has non-finite weights: head.weight holds 432 NaN/Inf" in lines[0]  # the load warning first
    assert lines[-1].startswith("Error: ") and "TinyNet gave a non-finite output for baby: 786,432 of" in lines[-1]
