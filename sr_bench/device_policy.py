"""Where an eval does what, per device: building the model input, scoring the output, reading peak memory.

* CPU: the prefetch thread builds the model input, the finisher thread converts the output to uint8 and scores
  it (overlapping the next forward), and peak memory is the process's peak RSS over the dataset (``peak_memory``'s
  reader; prefetch buffers are part of it).
* CUDA: the main thread copies the input to the GPU and scores on the GPU between forwards (fast, and nothing
  may share the GPU with a timed forward), handing the finisher a host copy only for saving. Peak memory is
  ``max_memory_allocated`` read after each forward and reset after scoring, so metrics on the GPU (which the
  official harness computes on the CPU) never count. Official protocols never reset between datasets: their
  figure is the max over every forward since the process started, as the challenge reads it.

    >>> policy = policy_for(torch.device("cpu"), data_range=1.0, crop_border=4, reset_peak=True)
    >>> with policy.track():
    ...     sr = model(policy.model_input(policy.prefetch_input(lr)))
    ...     policy.after_forward()
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import numpy as np
import torch

from sr_bench.errors import DeviceError
from sr_bench.images import to_input, to_uint8
from sr_bench.metrics import image_metrics
from sr_bench.peak_memory import MemoryKind, track_peak_memory
from sr_bench.pipeline import Scored, Unscored
from sr_bench.timing import is_out_of_memory

_MIB = 1024**2


class DevicePolicy(ABC):
    """What differs between a CPU and a CUDA eval; one object per (model, dataset) run."""

    kind: MemoryKind

    def __init__(self, device: torch.device, data_range: float, crop_border: int, reset_peak: bool) -> None:
        self.device = device
        self.data_range = data_range
        self.crop_border = crop_border
        self.reset_peak = reset_peak
        self.peak_mib: float | None = None
        self.baseline_mib: float | None = None
        self.method = ""

    def score(self, sr: torch.Tensor, hr: np.ndarray) -> tuple[torch.Tensor, dict]:
        """The uint8 SR image and its PSNR/SSIM against ``hr`` (H, W, 3 uint8), on ``sr``'s device."""
        sr_u8 = to_uint8(sr, self.data_range)
        hr_t = torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1).to(sr_u8.device)
        return sr_u8, image_metrics(sr_u8, hr_t, crop_border=self.crop_border)

    @abstractmethod
    def prefetch_input(self, lr: np.ndarray) -> np.ndarray | torch.Tensor:
        """What the prefetch thread hands over for one LR image."""

    @abstractmethod
    def model_input(self, lr: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The model input on the main thread, from what ``prefetch_input`` returned."""

    @abstractmethod
    def hand_over(self, row: dict, sr: torch.Tensor, hr: np.ndarray, keep_sr: bool) -> Scored | Unscored:
        """The finisher's work item for one forward's output (``keep_sr``: the SR image will be saved)."""

    @abstractmethod
    def track(self) -> AbstractContextManager[DevicePolicy]:
        """Peak memory over the dataset's forwards: ``peak_mib`` is final when the block ends."""

    def after_forward(self) -> None:
        """Called after each timed forward."""

    def after_hand_over(self) -> None:
        """Called once the caller dropped its last reference to the forward's output."""

    def _release(self) -> None:
        """Give cached memory back before reporting an out-of-memory error."""

    @contextmanager
    def out_of_memory(self, name: str, shape: tuple[int, ...], tile: int | None) -> Iterator[None]:
        """Turn an out-of-memory error in the block into one line that suggests tiling and ``--resume``."""
        try:
            yield
        except RuntimeError as exc:  # torch.OutOfMemoryError is one
            if not is_out_of_memory(exc):
                raise
            self._release()
            hint = f"a smaller --tile than {tile}" if tile else "--tile 256 (smaller if needed)"
            raise DeviceError(
                f"{self.device.type.upper()} out of memory on {name} (LR {shape[-2]}x{shape[-1]}): "
                f"rerun with {hint} and --resume"
            ) from None


class CpuPolicy(DevicePolicy):
    """Input built and output scored off the model's thread; peak RSS over the dataset."""

    kind: MemoryKind = "cpu_rss_peak"

    def prefetch_input(self, lr: np.ndarray) -> torch.Tensor:
        return to_input(lr, self.data_range, self.device)

    def model_input(self, lr: np.ndarray | torch.Tensor) -> torch.Tensor:
        assert isinstance(lr, torch.Tensor)
        return lr

    def hand_over(self, row: dict, sr: torch.Tensor, hr: np.ndarray, keep_sr: bool) -> Unscored:
        return Unscored(row, sr, hr)

    @contextmanager
    def track(self) -> Iterator[DevicePolicy]:
        memory = None
        try:
            with track_peak_memory(self.device, reset=True) as memory:
                yield self
        finally:  # an interrupted run still knows its peak, for its run-log segment
            if memory is not None:
                self.peak_mib, self.baseline_mib, self.method = memory.peak_mib, memory.baseline_mib, memory.method


class CudaPolicy(DevicePolicy):
    """Input copied and output scored on the main thread, on the GPU; peak allocated memory of the forwards."""

    kind: MemoryKind = "cuda_max_allocated"
    _process_peak: dict[str, float] = {}  # official protocols: the never-reset peak per CUDA device

    def __init__(self, device: torch.device, data_range: float, crop_border: int, reset_peak: bool) -> None:
        super().__init__(device, data_range, crop_border, reset_peak)
        self.method = "torch.cuda.max_memory_allocated after each forward (metrics excluded)"

    def prefetch_input(self, lr: np.ndarray) -> np.ndarray:
        return lr  # no copy to the GPU may overlap a timed forward

    def model_input(self, lr: np.ndarray | torch.Tensor) -> torch.Tensor:
        assert isinstance(lr, np.ndarray)
        return to_input(lr, self.data_range, self.device)

    def hand_over(self, row: dict, sr: torch.Tensor, hr: np.ndarray, keep_sr: bool) -> Scored:
        sr_u8, metrics = self.score(sr, hr)
        row.update(metrics)
        return Scored(row, sr_u8.cpu() if keep_sr else None)

    @contextmanager
    def track(self) -> Iterator[DevicePolicy]:
        if self.reset_peak:
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak_mib = self._process_peak.get(str(self.device))
        self.baseline_mib = torch.cuda.memory_allocated(self.device) / _MIB
        yield self

    def after_forward(self) -> None:
        now = torch.cuda.max_memory_allocated(self.device) / _MIB
        self.peak_mib = max(self.peak_mib or 0.0, now)
        if not self.reset_peak:
            self._process_peak[str(self.device)] = self.peak_mib

    def after_hand_over(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)  # nothing of this image is left on the GPU now

    def _release(self) -> None:
        torch.cuda.empty_cache()


def policy_for(device: torch.device, data_range: float, crop_border: int, reset_peak: bool) -> DevicePolicy:
    """The policy for ``device``: CUDA, or CPU for everything else."""
    cls = CudaPolicy if device.type == "cuda" else CpuPolicy
    return cls(device, data_range, crop_border, reset_peak)
