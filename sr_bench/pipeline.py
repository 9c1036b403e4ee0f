"""The threads around the timed forward: decoding ahead of the model, and scoring/saving/logging behind it.

* :class:`Prefetcher` decodes the next pairs (and generates LR for sets that ship none) into a small queue,
  as :class:`Decoded` items, or :class:`Failed` ones for pairs it could not read (the loop decides whether that
  stops the run or is skipped).
* :class:`Finisher` takes each forward's output in order, as :class:`Unscored` (the raw output, converted and
  scored here: CPU) or :class:`Scored` (scored already: CUDA), saves the SR PNG (``--save-sr``) and appends the
  row to the run log. A row reaches the log only after its PNG is on disk, so the log is exactly what is
  finished.

Both threads are daemons running at the lowest priority, so on a busy CPU the model's thread wins and they take
only the cycles it leaves.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sr_bench.datasets import CheckedPair, load_pair
from sr_bench.errors import SrBenchError
from sr_bench.images import write_png
from sr_bench.runlog import RunLog, write_error

PREFETCH_DEPTH = 2  # decoded images waiting for the model (each DIV2K pair is ~10 MB)
WRITE_DEPTH = 8  # finished images waiting for the writer; the model only waits when the disk is far behind
BACKGROUND_NICE = 19  # background threads take only the cycles the timed model leaves (0 = normal, 19 = lowest)


@dataclass(frozen=True)
class Decoded:
    """A pair ready for the model: ``lr`` as the device policy's ``prefetch_input`` left it, ``hr`` uint8 HWC."""

    checked: CheckedPair
    lr: np.ndarray | torch.Tensor
    hr: np.ndarray


@dataclass(frozen=True)
class Failed:
    """A pair the prefetch thread could not decode, with the reason."""

    checked: CheckedPair
    error: Exception


@dataclass(frozen=True)
class Unscored:
    """A forward's raw output, to be converted to uint8 and scored against ``hr`` by the finisher."""

    row: dict
    sr: torch.Tensor
    hr: np.ndarray


@dataclass(frozen=True)
class Scored:
    """A row scored already; ``sr_u8`` (uint8 CHW on the host) is there only to be saved, else None."""

    row: dict
    sr_u8: torch.Tensor | None


Score = Callable[[torch.Tensor, np.ndarray], tuple[torch.Tensor, dict]]

_DONE = object()


def _lower_priority() -> None:
    """Make the calling thread nice (Linux applies niceness per thread), so that on a busy CPU the model's
    thread wins and decoding/metrics/saving take only the cycles it leaves: hidden, without inflating its time."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: background threads run at normal priority
        pass


class Prefetcher:
    """Decodes pairs (and generates LR) in a background thread, a few images ahead of the model.

    ``to_input`` turns each decoded LR image into what the model's thread wants (the device policy's
    ``prefetch_input``: the model input on CPU, the array itself on CUDA).
    """

    def __init__(self, pairs: list[CheckedPair], scale: int, cache_dir: Path,
                 to_input: Callable[[np.ndarray], np.ndarray | torch.Tensor]) -> None:
        self._pairs = pairs
        self._scale = scale
        self._cache = cache_dir
        self._to_input = to_input
        self._queue: queue.Queue = queue.Queue(maxsize=PREFETCH_DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="srbench-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        _lower_priority()
        for checked in self._pairs:
            try:
                lr, hr = load_pair(checked.pair, self._scale, self._cache)
                item: Decoded | Failed = Decoded(checked, self._to_input(lr), hr)
            except Exception as exc:  # noqa: BLE001 - handed to the main thread, which decides
                item = Failed(checked, exc)
            if not self._put(item):
                return
        self._put(_DONE)

    def __iter__(self) -> Iterator[Decoded | Failed]:
        while (item := self._queue.get()) is not _DONE:
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class Finisher:
    """Scores (when given :class:`Unscored`), saves and logs finished images in order, off the model's thread.

    The first failure stops it (later items are dropped, never logged) and is raised on the main thread, so the
    log never holds an image whose PNG is missing.
    """

    def __init__(self, log: RunLog, save_dir: Path | None, score: Score) -> None:
        self._log = log
        self._save_dir = save_dir
        self._score = score
        self._in: queue.Queue = queue.Queue(maxsize=WRITE_DEPTH)
        self._out: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="srbench-finisher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        _lower_priority()
        while (item := self._in.get()) is not _DONE:
            if self.error is None:
                try:
                    self._finish(item)
                except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
                    self.error = exc

    def _finish(self, item: Scored | Unscored) -> None:
        row = item.row
        if isinstance(item, Unscored):
            with torch.inference_mode():
                sr, metrics = self._score(item.sr, item.hr)
            row.update(metrics)
        else:
            sr = item.sr_u8
        if sr is not None and self._save_dir is not None:
            target = self._save_dir / f"{row['name']}.png"
            try:
                write_png(target, sr.permute(1, 2, 0).numpy())
            except (OSError, SrBenchError) as exc:
                raise write_error(exc, target, "SR image") from None
        try:
            self._log.append(row)
        except OSError as exc:
            raise write_error(exc, self._log.path, "run log") from None
        self._out.put(row)

    def submit(self, item: Scored | Unscored) -> None:
        """Queue one finished forward (raises the finisher's first failure, if any, instead)."""
        self.check()
        self._in.put(item)

    def finished(self) -> list[dict]:
        rows = []
        while True:
            try:
                rows.append(self._out.get_nowait())
            except queue.Empty:
                return rows

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def drain(self) -> None:
        """Finish everything queued and stop; runs after Ctrl-C too, so finished images stay logged."""
        self._in.put(_DONE)
        self._thread.join()
