"""Will one image fit in memory? An estimate made before the first forward, so that a huge image stops with a
one-line error suggesting a ``--tile`` that fits, instead of a machine swapping itself to death or an OOM kill.

How: the model runs once on the **meta** device (shapes and dtypes only: no memory, no arithmetic, and the real
device is never touched, so an official protocol's first timed forward still pays the start-up), while a
dispatch mode adds up the bytes of the tensors alive at each moment. The peak is the tensor memory of the
forward at the real image size -- input, activations and output, quadratic attention included -- with no
scaling from a probe. Scoring (``to_uint8`` and the metrics) is estimated the same way, with host reads of a
scalar (``float(t)``) answered by a stand-in value. The estimate leaves out what is not a tensor: allocator
slack and library workspaces (oneDNN, cuDNN). A model that cannot run on meta (data-dependent shapes, host
copies, an op without a meta kernel) is not checked, and the run goes ahead as before.

Free memory: available RAM (``psutil``) on CPU; on CUDA the driver's free memory plus what torch's caching
allocator holds unused (``torch.cuda.mem_get_info``, guarded: no answer means no check).

Example::

    estimator = MemoryEstimator(model)
    estimator.forward_bytes((1, 3, 3000, 3000))   # tensor bytes at the forward's peak, or None
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace

import psutil
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from sr_bench.errors import DeviceError
from sr_bench.images import to_uint8
from sr_bench.metrics import image_metrics

_GIB = 1024**3
TILE_STEP = 8  # a suggested --tile is a multiple of this many LR pixels
PROBE_TILE = 64  # LR side of the first tile tried when looking for a --tile that fits


_SCALAR_READS = (torch.ops.aten.item.default, torch.ops.aten._local_scalar_dense.default)


class _LiveTensorBytes(TorchDispatchMode):
    """Counts the storage bytes of every tensor an op creates, until the last tensor viewing it is freed.

    Views share a storage and count once; the peak is the most bytes alive at any moment. Reads of a scalar
    on the host (``.item()``, ``float(t)``) get ``1.0``, so scoring code that branches on a value still runs.
    """

    def __init__(self, start_bytes: int) -> None:
        super().__init__()
        self.live = start_bytes
        self.peak = start_bytes
        self._views: dict[int, int] = {}  # storage id -> live tensors viewing it

    def _release(self, key: int, nbytes: int) -> None:
        self._views[key] -= 1
        if self._views[key] == 0:
            del self._views[key]
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func in _SCALAR_READS:
            return 1.0
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, Tensor):
                storage = t.untyped_storage()
                key, nbytes = storage._cdata, storage.nbytes()
                if key not in self._views:
                    self._views[key] = 0
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                self._views[key] += 1
                weakref.finalize(t, self._release, key, nbytes)
        return out


def peak_tensor_bytes(fn: Callable[..., object], *inputs: Tensor) -> int | None:
    """Most tensor bytes alive while ``fn(*inputs)`` runs on meta ``inputs`` (which count from the start),
    or None when ``fn`` cannot run on the meta device."""
    start = sum(x.untyped_storage().nbytes() for x in inputs)
    try:
        with torch.inference_mode(), _LiveTensorBytes(start) as mode:
            fn(*inputs)
    except (Exception, SystemExit):  # noqa: BLE001 - meta cannot run it: no estimate; the real forward reports
        return None  # a model's own failure (sys.exit included) at its user-code boundary
    return mode.peak


def _meta(shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


class MemoryEstimator:
    """Tensor-memory estimates for one model, from forwards of a meta copy (the caller's model is untouched)."""

    def __init__(self, model: nn.Module) -> None:
        try:
            self._model: nn.Module | None = copy.deepcopy(model).to("meta")
        except Exception:  # noqa: BLE001 - a model that cannot be copied to meta is not checked
            self._model = None
        floats = [p.dtype for p in model.parameters() if p.is_floating_point()]
        self.dtype = floats[0] if floats else torch.float32  # weight-cast execution modes run in this dtype

    def forward_bytes(self, shape: tuple[int, ...]) -> int | None:
        """Peak tensor bytes of one forward on an input of ``shape`` (N, C, H, W), input and output included."""
        if self._model is None:
            return None
        return peak_tensor_bytes(self._model, _meta(shape, self.dtype))

    @staticmethod
    def scoring_bytes(sr_shape: tuple[int, ...], data_range: float, crop_border: int) -> int | None:
        """Peak tensor bytes of scoring one fp32 SR output of ``sr_shape`` (``to_uint8``, then the four metrics
        against its uint8 HR), the output included."""
        def score(sr: Tensor, hr: Tensor) -> object:
            return image_metrics(to_uint8(sr, data_range), hr, crop_border=crop_border)

        return peak_tensor_bytes(score, _meta(sr_shape, torch.float32), _meta(tuple(sr_shape[-3:]), torch.uint8))


def free_bytes(device: torch.device) -> int | None:
    """Memory a forward can still take on ``device``, or None when the device does not say."""
    if device.type == "cpu":
        return int(psutil.virtual_memory().available)
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
            cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        except Exception:  # noqa: BLE001 - no driver answer: no check
            return None
        return int(free + cached)
    return None


def _gib(nbytes: int) -> str:
    return f"{nbytes / _GIB:.1f} GiB"


@dataclass(frozen=True)
class EvalFit:
    """What evaluating one image needs at its worst moment, in bytes.

    CUDA scores on the GPU between forwards, so the peak is the larger of the two. On CPU the finisher's
    ``scorers`` threads score earlier outputs while the next forward runs, and up to ``queued`` raw outputs wait
    for them: all of that can be alive at once.
    """

    forward: int  # one forward, tiled or not
    scoring: int  # converting and scoring one output
    output: int  # one raw fp32 output
    scorers: int = 0  # 0: scored on the device between forwards
    queued: int = 0

    @property
    def total(self) -> int:
        if not self.scorers:
            return max(self.forward, self.scoring)
        return self.forward + self.scorers * self.scoring + self.queued * self.output

    def tiled(self, forward: int) -> EvalFit:
        return replace(self, forward=forward)


def estimate_eval(estimator: MemoryEstimator, lr_size: tuple[int, int], device: torch.device, *, scale: int,
                  data_range: float, tile: int | None, scorers: int, queued: int) -> EvalFit | None:
    """The memory of one image with LR ``lr_size`` (``scorers``/``queued``: see :class:`EvalFit`, CPU only)."""
    h, w = lr_size
    scoring = estimator.scoring_bytes((1, 3, h * scale, w * scale), data_range, scale)
    forward = _tiled_bytes(estimator, lr_size, scale, tile) if tile else estimator.forward_bytes((1, 3, h, w))
    if scoring is None or forward is None:
        return None
    on_cpu = device.type == "cpu"
    return EvalFit(forward, scoring, 3 * h * w * scale * scale * 4, scorers if on_cpu else 0, queued if on_cpu else 0)


def check_eval_fits(estimator: MemoryEstimator, lr_size: tuple[int, int], device: torch.device, *, scale: int,
                    data_range: float, tile: int | None, overlap: int, scorers: int, queued: int, model: str,
                    image: str) -> None:
    """Raise ``DeviceError`` when evaluating an image with LR ``lr_size`` (the largest of the set) would not fit
    in the free memory of ``device``, suggesting a ``--tile`` that fits; do nothing when nothing can be said."""
    free = free_bytes(device)
    fit = estimate_eval(estimator, lr_size, device, scale=scale, data_range=data_range, tile=tile, scorers=scorers,
                        queued=queued)
    if free is None or fit is None or fit.total <= free:
        return
    tiling = f", --tile {tile}" if tile else ""
    what = (f"{model} needs about {_gib(fit.total)} of {device.type.upper()} memory for {image} (LR "
            f"{lr_size[0]}x{lr_size[1]}{tiling}; scoring one SR image takes {_gib(fit.scoring)}) and {_gib(free)} "
            "is free")
    suggestion = _fitting_tile(estimator, lr_size, scale, overlap, free, fit)
    if suggestion is None:
        raise DeviceError(f"{what}; no --tile above --tile-overlap {overlap} fits: use a machine with more memory "
                          "or smaller images")
    n, need = suggestion
    raise DeviceError(f"{what}: rerun with --tile {n} (about {_gib(need)})")


def _tiled_bytes(estimator: MemoryEstimator, lr_size: tuple[int, int], scale: int, tile: int) -> int | None:
    """A tiled forward: the whole input and the stitched output, plus one tile's forward at a time."""
    h, w = lr_size
    one = estimator.forward_bytes((1, 3, min(tile, h), min(tile, w)))
    return None if one is None else _stitch_bytes(estimator, lr_size, scale) + one


def _stitch_bytes(estimator: MemoryEstimator, lr_size: tuple[int, int], scale: int) -> int:
    """The whole LR input and the fp32 SR output that tiles are stitched into."""
    pixels = lr_size[0] * lr_size[1]
    return 3 * pixels * torch.empty((), dtype=estimator.dtype).element_size() + 3 * pixels * scale * scale * 4


def _fitting_tile(estimator: MemoryEstimator, lr_size: tuple[int, int], scale: int, overlap: int, free: int,
                  fit: EvalFit) -> tuple[int, int] | None:
    """The largest multiple of ``TILE_STEP`` above ``overlap`` whose tiled run fits, with its need in bytes.

    Two meta forwards (``PROBE_TILE`` and twice that) give the bytes per tile pixel; the guess from them is
    checked with a forward at that size and shrunk by 20% until it fits.
    """
    floor = (overlap // TILE_STEP + 1) * TILE_STEP
    small = estimator.forward_bytes((1, 3, PROBE_TILE, PROBE_TILE))
    large = estimator.forward_bytes((1, 3, 2 * PROBE_TILE, 2 * PROBE_TILE))
    if small is None or large is None:
        return None
    per_pixel = max(large - small, 1) / (3 * PROBE_TILE**2)
    stitch = _stitch_bytes(estimator, lr_size, scale)
    if fit.tiled(stitch).total > free:  # scoring and the stitched output alone do not fit: no tile can help
        return None
    room = free - stitch - (fit.total - fit.forward if fit.scorers else 0)
    n = int(math.sqrt(max(room, 0) / per_pixel)) // TILE_STEP * TILE_STEP
    n = min(n, max(lr_size) // TILE_STEP * TILE_STEP)
    while n >= floor:
        forward = _tiled_bytes(estimator, lr_size, scale, n)
        if forward is None:
            return None
        need = fit.tiled(forward).total
        if need <= free:
            return n, need
        n = int(n * 0.8) // TILE_STEP * TILE_STEP
    return None


def check_profile_fits(estimator: MemoryEstimator, shape: tuple[int, ...], device: torch.device, *,
                       model: str) -> None:
    """Raise ``DeviceError`` when one forward on ``shape`` would not fit, naming the largest square --size that
    does; do nothing when nothing can be said."""
    free = free_bytes(device)
    need = estimator.forward_bytes(shape)
    if free is None or need is None or need <= free:
        return
    pixels = shape[-2] * shape[-1]
    side = int(math.sqrt(pixels * free / need)) // TILE_STEP * TILE_STEP  # the forward grows with the pixels
    while side >= TILE_STEP and (estimator.forward_bytes((*shape[:-2], side, side)) or 0) > free:
        side = int(side * 0.8) // TILE_STEP * TILE_STEP
    hint = f"a smaller --size ({side}x{side} fits)" if side >= TILE_STEP else "a machine with more memory"
    raise DeviceError(f"{model} needs about {_gib(need)} for one forward on {'x'.join(map(str, shape))} and the "
                      f"{device.type.upper()} has {_gib(free)} free: use {hint}")
