"""Image files and the uint8 <-> tensor conversions of the official NTIRE ESR pipeline.

The official harness reads with OpenCV (``cv2.imread(path, IMREAD_UNCHANGED)`` then BGR->RGB, grayscale -> three
equal channels), feeds ``uint8 / (255 / data_range)`` as float32, and turns the output back into uint8 with
``np.uint8((clamp(sr, 0, data_range) * 255.0 / data_range).round())`` on float32 numpy. srbench reads with Pillow
(no OpenCV dependency) and reproduces those values bit for bit for 8-bit files:

* 8-bit gray, RGB, RGBA, gray+alpha, palette: alpha dropped without compositing, palette expanded, gray
  replicated -- what OpenCV's PNG reader gives with ``IMREAD_COLOR`` (libpng ``strip_alpha``, ``palette_to_rgb``,
  ``gray_to_rgb``).
* 16-bit PNG: **a deliberate deviation.** The official reader keeps the uint16 values (``IMREAD_UNCHANGED``) and
  then divides them by 255 like 8-bit ones, feeding the model values up to 257 times too large and scoring
  against a uint16 HR: its numbers for such a file are meaningless. srbench reduces to 8 bits by keeping the
  high byte (``v >> 8``), as OpenCV's ``IMREAD_COLOR`` does (libpng ``png_set_strip_16``), not
  ``round(v / 257)`` (the two differ for about half of the high values). ``is_sixteen_bit`` tells callers, so an
  evaluation warns once per dataset that met one.
* EXIF orientation is ignored, as the official ``IMREAD_UNCHANGED`` read ignores it.

Example::

    hr = modcrop(read_rgb_u8("Set5/HR/baby.png"), 4)
    lr = to_input(read_rgb_u8("Set5/LR_bicubic/X4/babyx4.png"), data_range=1.0, device="cpu")
    sr_u8 = to_uint8(model(lr), data_range=1.0)     # (3, H, W) uint8 tensor
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sr_bench.errors import DatasetError, NonFiniteOutputError
from sr_bench.results import atomic_write_bytes

_SIXTEEN_BIT_GRAY = {"I;16", "I;16B", "I;16L"}
READ_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)  # what a bad file raises in Pillow

# srbench decides itself what is too large: above Pillow's hard limit a file is a bad image (``read_failure``),
# below it the memory check (``memcheck``) decides. Pillow's softer warning band would only leak a stray line.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def read_rgb_u8(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, exactly as the official pipeline sees it.

    Raises ``DatasetError`` naming the file when it is missing, truncated, corrupt or of an unsupported kind.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            return _to_rgb_u8(im, path)
    except READ_ERRORS as exc:
        raise DatasetError(f"cannot read image {path}: {read_failure(exc)}; replace or re-download the file") from exc


def read_failure(exc: BaseException) -> str:
    """Why Pillow could not open or decode a file, in words (the middle of a 'cannot read image' line).

    A decompression bomb (more pixels than twice ``Image.MAX_IMAGE_PIXELS``, about 179 megapixels by default)
    is named as one: it is a bad image, skippable with ``--skip-bad``, not a failure of srbench.
    """
    if isinstance(exc, Image.DecompressionBombError):  # Pillow: "Image size (N pixels) exceeds limit of M pixels, ..."
        return f"a possible decompression bomb: {str(exc).split(', could')[0].replace('Image size', 'its size')}"
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def is_sixteen_bit(im: Image.Image) -> bool:
    """Whether an opened, not yet loaded, image stores 16 bits per sample (gray, gray+alpha, RGB or RGBA PNG)."""
    if im.mode in _SIXTEEN_BIT_GRAY:
        return True
    raw = [t.args if isinstance(t.args, str) else (t.args or ("",))[0] for t in im.tile]
    return any(isinstance(r, str) and ";16" in r for r in raw)


def _to_rgb_u8(im: Image.Image, path: Path) -> np.ndarray:
    """Convert a loaded Pillow image to (H, W, 3) uint8 with OpenCV's ``IMREAD_COLOR`` semantics."""
    # Pillow 10+ opens 16-bit gray PNGs as I;16, older ones as 32-bit I; colour 16-bit PNGs already arrive as
    # 8-bit high bytes (Pillow unpacks them the way libpng's strip_16 does).
    if im.mode in _SIXTEEN_BIT_GRAY or (im.mode == "I" and im.format == "PNG"):
        gray = (np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode in ("I", "F"):
        raise DatasetError(
            f"cannot read image {path}: 32-bit {'integer' if im.mode == 'I' else 'float'} pixels are not an "
            "8- or 16-bit image; convert it to an 8-bit PNG"
        )
    return np.array(im.convert("RGB"), dtype=np.uint8)


PNG_ENCODING = {"zlib_level": 1, "zlib_strategy": "Z_RLE"}  # what every PNG srbench writes uses (records say so)
_PILLOW_PNG = {"compress_level": 1, "compress_type": 3}  # zlib.Z_RLE == 3


def write_png(path: str | os.PathLike[str], rgb_u8: np.ndarray) -> None:
    """Write (H, W, 3) uint8 RGB as PNG atomically (``results.atomic_write_bytes``: temp file, fsync, rename).

    Encoded with zlib level 1 and the run-length strategy (``PNG_ENCODING``): about 4x faster than Pillow's
    default level 6 for files ~6% larger, and as lossless as any PNG (the pixels decode bit for bit). A crash or
    a full disk never leaves a half-written PNG under the final name (an evaluation that resumes would otherwise
    trust it). Raises ``ResultsError`` when the file cannot be written.
    """
    if rgb_u8.dtype != np.uint8 or rgb_u8.ndim != 3 or rgb_u8.shape[2] != 3:
        raise TypeError(f"write_png expects an (H, W, 3) uint8 array, got {rgb_u8.dtype} {rgb_u8.shape}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb_u8)).save(buffer, format="PNG", **_PILLOW_PNG)
    atomic_write_bytes(Path(path), buffer.getvalue())


def modcrop(rgb_u8: np.ndarray, scale: int) -> np.ndarray:
    """Crop (H, W, ...) to multiples of ``scale``, keeping the top-left corner (the official ``modcrop``)."""
    if scale < 1:
        raise ValueError(f"modcrop scale must be >= 1, got {scale}")
    h, w = rgb_u8.shape[:2]
    return rgb_u8[: h - h % scale, : w - w % scale]


def to_input(
    rgb_u8: np.ndarray, data_range: float, device: str | torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) model input holding ``u8 / (255 / data_range)``.

    Bit-identical to the official ``uint2tensor4`` (float32 division by float32(255 / data_range)) on any device:
    the division runs in float64 and is rounded once to float32, which equals the correctly rounded float32
    quotient (GPU kernels may otherwise multiply by a reciprocal and differ in the last bit).
    """
    divisor = float(np.float32(255.0 / data_range))
    u8 = torch.from_numpy(np.array(rgb_u8, dtype=np.uint8, order="C")).to(device)  # a copy: inputs may be read-only
    x = (u8.permute(2, 0, 1).unsqueeze(0).to(torch.float64) / divisor).to(torch.float32)
    return x.to(dtype).contiguous()


NON_FINITE_ADVICE = "fix the model, or rerun with --skip-bad to score the other images"  # eval's; upscale has its own


def check_finite(sr: torch.Tensor, model: str, image: str, advice: str = NON_FINITE_ADVICE) -> None:
    """Raise ``NonFiniteOutputError`` when a raw model output holds NaN or Inf.

    ``to_uint8`` clamps, so NaN would become ordinary pixels (a normal-looking PSNR, or a plausible PNG from
    ``upscale``); this check runs on the raw output first.
    """
    if bool(torch.isfinite(sr).all()):
        return
    bad = int(sr.numel() - torch.isfinite(sr).sum())
    raise NonFiniteOutputError(
        f"{model} gave a non-finite output for {image}: {bad:,} of {sr.numel():,} values are NaN/Inf (broken "
        "weights, or an overflow in reduced precision)",
        advice,
    )


def to_uint8(sr: torch.Tensor, data_range: float) -> torch.Tensor:
    """Model output (1, 3, H, W) or (3, H, W) -> (3, H, W) uint8 on the same device, as the official harness.

    Official: ``np.uint8((sr.float().clamp(0, data_range) * 255.0 / data_range).round())`` in float32 numpy,
    i.e. two float32 roundings, then round half to even. Each float32 step here is computed in float64 and
    rounded to float32, which gives the correctly rounded float32 result, so the bytes match on every device.
    With ``data_range`` 1 the division is skipped: dividing by 1 changes nothing.
    """
    if sr.dim() == 4:
        if sr.shape[0] != 1:
            raise ValueError(f"to_uint8 expects one image, got a batch of {sr.shape[0]}")
        sr = sr[0]
    if sr.dim() != 3 or sr.shape[0] != 3:
        raise ValueError(f"to_uint8 expects (1, 3, H, W) or (3, H, W), got {tuple(sr.shape)}")
    x = sr.detach().float().clamp(0, data_range)
    scaled = (x.double() * 255.0).float()
    divisor = float(np.float32(data_range))
    if divisor != 1.0:
        scaled = (scaled.double() / divisor).float()
    return torch.round(scaled).to(torch.uint8)
