"""Reading images like the official OpenCV pipeline, atomic PNG writes, modcrop, and the tensor conversions."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import require_file
from sr_bench.errors import DatasetError, ResultsError
from sr_bench.images import modcrop, read_rgb_u8, to_input, to_uint8, write_png

# 16-bit samples where keeping the high byte (OpenCV) and round(v / 257) disagree: 255 -> 0 vs 1, 65280 -> 255 vs 254
SIXTEEN = np.array([0, 255, 256, 32767, 32768, 65279, 65280, 65535], dtype=np.uint16)


def _raw_png(pixels: np.ndarray, color_type: int, bit_depth: int) -> bytes:
    """A minimal PNG (filter 0, one IDAT), so 16-bit colour files can be made without an encoder that has them."""
    h, w = pixels.shape[:2]
    sample = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + pixels[y].astype(sample).tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_reads_rgb_png(data_dir: Path) -> None:
    path = require_file(data_dir / "Set5" / "HR" / "woman.png")
    img = read_rgb_u8(path)
    assert img.dtype == np.uint8 and img.shape == (344, 228, 3)
    assert img.flags.writeable and img.flags.c_contiguous
    assert np.array_equal(img, np.array(Image.open(path)))


def test_grayscale_becomes_three_equal_channels(data_dir: Path) -> None:
    path = require_file(data_dir / "Set14" / "HR" / "bridge.png")
    img = read_rgb_u8(path)
    gray = np.array(Image.open(path))
    assert gray.ndim == 2
    assert img.shape == gray.shape + (3,)
    for c in range(3):
        assert np.array_equal(img[:, :, c], gray)


def test_alpha_is_dropped_not_composited(tmp_path: Path) -> None:
    rgba = np.array([[[10, 20, 30, 0], [200, 100, 50, 128], [1, 2, 3, 255]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(read_rgb_u8(tmp_path / "rgba.png"), rgba[:, :, :3])
    la = np.array([[[77, 0], [150, 255]]], dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert read_rgb_u8(tmp_path / "la.png").tolist() == [[[77, 77, 77], [150, 150, 150]]]


def test_palette_is_expanded(tmp_path: Path) -> None:
    im = Image.fromarray(np.array([[0, 1], [1, 2]], dtype=np.uint8), "P")
    im.putpalette([255, 0, 0, 0, 128, 64, 9, 8, 7] + [0] * (3 * 253))
    im.info["transparency"] = 0  # a tRNS entry must not change the colour either
    im.save(tmp_path / "pal.png", transparency=0)
    img = read_rgb_u8(tmp_path / "pal.png")
    assert img.tolist() == [[[255, 0, 0], [0, 128, 64]], [[0, 128, 64], [9, 8, 7]]]


@pytest.mark.parametrize(("color_type", "channels"), [(0, 1), (2, 3), (4, 2), (6, 4)])
def test_sixteen_bit_keeps_high_byte(tmp_path: Path, color_type: int, channels: int) -> None:
    """16-bit gray / RGB / gray+alpha / RGBA reduce like cv2.imread(IMREAD_COLOR): v >> 8 (libpng strip_16)."""
    pixels = np.stack([SIXTEEN] * channels, axis=-1)[None] if channels > 1 else SIXTEEN[None]
    path = tmp_path / "deep.png"
    path.write_bytes(_raw_png(pixels, color_type, 16))
    img = read_rgb_u8(path)
    expected = (SIXTEEN >> 8).astype(np.uint8)
    assert img.dtype == np.uint8 and img.shape == (1, len(SIXTEEN), 3)
    for c in range(3):
        assert np.array_equal(img[0, :, c], expected)
    assert not np.array_equal(expected, np.round(SIXTEEN / 257).astype(np.uint8))


def test_truncated_png_names_the_file(tmp_path: Path, data_dir: Path) -> None:
    data = require_file(data_dir / "Set5" / "HR" / "bird.png").read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cannot read image .*cut\.png"):
        read_rgb_u8(path)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_corrupt_files_raise_dataset_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=r"bad\.png"):
        read_rgb_u8(path)


@pytest.mark.parametrize(("mode", "dtype"), [("F", np.float32), ("I", np.int32)])
def test_wide_pixel_formats_are_rejected(tmp_path: Path, mode: str, dtype: type) -> None:
    path = tmp_path / "wide.tif"
    Image.fromarray(np.zeros((2, 2), dtype=dtype), mode).save(path)
    with pytest.raises(DatasetError, match=r"wide\.tif: 32-bit .* convert it to an 8-bit PNG"):
        read_rgb_u8(path)


def test_missing_file_raises_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"cannot read image .*nope\.png: No such file"):
        read_rgb_u8(tmp_path / "nope.png")


def test_write_png_round_trip_leaves_no_temp_files(tmp_path: Path) -> None:
    img = np.random.default_rng(0).integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    path = tmp_path / "out" / "sr.png"
    write_png(path, img)
    write_png(path, img[::-1].copy())  # overwriting an existing file is a plain rename too
    assert np.array_equal(read_rgb_u8(path), img[::-1])
    assert [p.name for p in path.parent.iterdir()] == ["sr.png"]


def test_write_png_is_fast_and_lossless(tmp_path: Path, data_dir: Path) -> None:
    """zlib level 1 (the stream header says "fastest"), and a photo plus noise decode back bit for bit."""
    photo = read_rgb_u8(require_file(data_dir / "Set5" / "HR" / "baby.png"))
    noise = np.random.default_rng(1).integers(0, 256, size=(33, 65, 3), dtype=np.uint8)
    for i, img in enumerate((photo, noise)):
        path = tmp_path / f"{i}.png"
        write_png(path, img)
        assert np.array_equal(read_rgb_u8(path), img) and np.array_equal(np.array(Image.open(path)), img)
        data = path.read_bytes()
        idat = data.index(b"IDAT") + 4
        assert data[idat] == 0x78 and data[idat + 1] >> 6 == 0  # deflate, FLEVEL 0: the fastest level


def test_write_png_failure_raises_results_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ResultsError, match="cannot write .*; check the folder's permissions and free space"):
        write_png(blocker / "sr.png", np.zeros((2, 2, 3), dtype=np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_write_png_rejects_non_rgb_u8(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"\(H, W, 3\) uint8"):
        write_png(tmp_path / "x.png", np.zeros((2, 2), dtype=np.uint8))


def test_modcrop_is_top_left_anchored() -> None:
    img = np.arange(11 * 6 * 3, dtype=np.uint8).reshape(11, 6, 3)
    out = modcrop(img, 4)
    assert out.shape == (8, 4, 3)
    assert np.array_equal(out, img[:8, :4])
    assert modcrop(img, 1).shape == img.shape


def _official_input(img: np.ndarray, data_range: float) -> torch.Tensor:
    """KAIR ``uint2tensor4`` as used by the official harness."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255.0 / data_range).unsqueeze(0)


def _official_uint8(sr: torch.Tensor, data_range: float) -> np.ndarray:
    """KAIR ``tensor2uint``: float32 numpy, clamp, * 255.0 / data_range, round half to even, uint8; HWC."""
    img = sr.squeeze().float().clamp(0, data_range).cpu().numpy()
    return np.uint8((np.transpose(img, (1, 2, 0)) * 255.0 / data_range).round())


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_to_input_matches_official(data_range: float) -> None:
    img = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    img[:, :, 1] = img[:, :, 1][::-1]
    ours = to_input(img, data_range, "cpu")
    assert ours.shape == (1, 3, 16, 16) and ours.dtype == torch.float32 and ours.is_contiguous()
    assert torch.equal(ours, _official_input(img, data_range))
    assert to_input(img, data_range, "cpu", dtype=torch.float16).dtype == torch.float16


def _tricky_outputs(data_range: float) -> torch.Tensor:
    """Exact halves (round-half-to-even cases), values one ulp either side, out-of-range values, random values."""
    halves = torch.arange(256, dtype=torch.float32) + 0.5
    base = halves if data_range == 255.0 else halves / 255.0
    values = torch.cat(
        [
            base,
            torch.nextafter(base, torch.full_like(base, 1e9)),
            torch.nextafter(base, torch.full_like(base, -1e9)),
            torch.tensor([-3.0, -1e-7, 0.0, data_range, data_range * 1.01, 1e6]),
            torch.rand(2000, generator=torch.Generator().manual_seed(0)) * data_range,
        ]
    )
    values = values[: (values.numel() // 6) * 6]
    return values.reshape(1, 3, -1, 2)


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_to_uint8_matches_official_bit_for_bit(data_range: float) -> None:
    sr = _tricky_outputs(data_range)
    ours = to_uint8(sr, data_range)
    assert ours.dtype == torch.uint8 and ours.shape == sr.shape[1:]
    assert np.array_equal(ours.permute(1, 2, 0).numpy(), _official_uint8(sr, data_range))
    assert torch.equal(to_uint8(sr[0], data_range), ours)


def test_to_uint8_rounds_half_to_even() -> None:
    out = to_uint8(torch.tensor([0.5, 1.5, 2.5, 254.5, -2.0, 300.0]).reshape(3, 1, 2), 255.0)
    assert out.flatten().tolist() == [0, 2, 2, 254, 0, 255]


def test_to_uint8_rejects_batches_and_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="batch of 2"):
        to_uint8(torch.zeros(2, 3, 4, 4), 1.0)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        to_uint8(torch.zeros(1, 4, 4), 1.0)
