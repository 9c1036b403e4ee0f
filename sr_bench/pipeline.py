"""The work around the timed forward: decoding ahead of the model, and scoring/saving/logging behind it.

* :class:`Prefetcher` decodes the next pairs (and generates LR for sets that ship none) in a small pool of worker
  threads and hands them to the model in dataset order, as :class:`Decoded` items, or :class:`Failed` ones for
  pairs it could not read (the loop decides whether that stops the run or is skipped).
* :class:`Finisher` takes each forward's output, as :class:`Unscored` (the raw output, converted and scored
  here: CPU) or :class:`Scored` (scored already: CUDA), and in its own pool saves the SR PNG (``--save-sr``) and
  appends the row to the run log. A row reaches the log only after its PNG is on disk, so the log is exactly
  what is finished; rows may be logged out of dataset order (the record puts them back in order).

Pool sizes come from :func:`worker_count`: the cores the model leaves free (at least one each), so on a GPU
run (where the model needs one CPU thread) decoding, PNG encoding and CPU scoring use the rest of the machine.
Every worker runs at the lowest priority, so on a busy CPU the model's thread wins and they take only the
cycles it leaves. Per-image numbers do not depend on the pool size: each image is scored by one thread, with
the same torch operations as before.

No worker may outlive the run: a thread still inside a torch op when the interpreter exits aborts the process
(``terminate called without an active exception``, exit 134). ``Thread.join`` (and so ``shutdown(wait=True)``)
cannot be trusted through Ctrl-C — in CPython 3.11 a KeyboardInterrupt inside ``join`` marks the thread as stopped
while it still runs — so stopping waits on the tasks' futures instead (:func:`_wait_all`), through Ctrl-C.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sr_bench.datasets import CheckedPair, load_pair
from sr_bench.errors import SrBenchError
from sr_bench.images import write_png
from sr_bench.runlog import RunLog, write_error

PREFETCH_DEPTH = 2  # decoded images waiting for the model beyond one per worker (each DIV2K pair is ~10 MB)
WRITE_DEPTH = 8  # finished images waiting for the finisher; the model only waits when the disk is far behind
MAX_WORKERS = 8  # per pool: more threads than this only add memory (queued images) on a PNG-bound run
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


def worker_count(device: torch.device, model_threads: int | None) -> int:
    """Threads per pool: the cores the model leaves free, at least 1 and at most ``MAX_WORKERS``.

    A CPU model takes ``model_threads`` cores (all of them when None); a GPU model takes one (the thread that
    drives it).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = (model_threads or cores) if device.type == "cpu" else 1
    return max(1, min(MAX_WORKERS, cores - busy))


def _lower_priority() -> None:
    """Make the calling thread nice (Linux applies niceness per thread), so that on a busy CPU the model's
    thread wins and decoding/metrics/saving take only the cycles it leaves: hidden, without inflating its time."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: background threads run at normal priority
        pass


def _pool(workers: int, name: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=_lower_priority)


def _wait_all(futures: list[Future], on_interrupt: Callable[[], None]) -> None:
    """Wait until every task has ended, also through Ctrl-C: the first Ctrl-C calls ``on_interrupt`` (which makes
    the remaining tasks return at once) and is re-raised once nothing runs any more."""
    interrupted: KeyboardInterrupt | None = None
    pending = set(futures)
    while pending:
        try:
            wait(pending, timeout=0.1)
        except KeyboardInterrupt as exc:
            interrupted = interrupted or exc
            on_interrupt()
        # done() also counts futures cancelled by shutdown(cancel_futures=True), which wait() never reports
        pending = {f for f in pending if not f.done()}
    if interrupted is not None:
        raise interrupted


class Prefetcher:
    """Decodes pairs (and generates LR) in ``workers`` background threads, a few images ahead of the model,
    and yields them in dataset order.

    ``to_input`` turns each decoded LR image into what the model's thread wants (the device policy's
    ``prefetch_input``: the model input on CPU, the array itself on CUDA). Decoding starts on construction, so
    the first images are read while the model warms up.
    """

    def __init__(self, pairs: list[CheckedPair], scale: int, cache_dir: Path,
                 to_input: Callable[[np.ndarray], np.ndarray | torch.Tensor], workers: int = 1) -> None:
        self._scale = scale
        self._cache = cache_dir
        self._to_input = to_input
        self._pending = iter(pairs)
        self._ahead: deque[Future[Decoded | Failed]] = deque()
        self._depth = workers + PREFETCH_DEPTH
        self._pool = _pool(workers, "srbench-decode")
        self._top_up()

    def _load(self, checked: CheckedPair) -> Decoded | Failed:
        try:
            lr, hr = load_pair(checked.pair, self._scale, self._cache)
            return Decoded(checked, self._to_input(lr), hr)
        except Exception as exc:  # noqa: BLE001 - handed to the main thread, which decides
            return Failed(checked, exc)

    def _top_up(self) -> None:
        while len(self._ahead) < self._depth and (checked := next(self._pending, None)) is not None:
            self._ahead.append(self._pool.submit(self._load, checked))

    def __iter__(self) -> Iterator[Decoded | Failed]:
        while self._ahead:
            item = self._ahead.popleft().result()
            self._top_up()
            yield item

    def close(self) -> None:
        """Stop decoding: queued pairs are dropped, the ones being decoded finish (they are short)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        _wait_all(list(self._ahead), lambda: None)
        self._ahead.clear()


class Finisher:
    """Scores (when given :class:`Unscored`), saves and logs finished images in ``workers`` threads.

    The first failure stops it (items not started yet are dropped, never logged) and is raised on the main
    thread, so the log never holds an image whose PNG is missing. At most ``WRITE_DEPTH`` images are queued or
    in progress; :meth:`submit` waits for a free slot beyond that.
    """

    def __init__(self, log: RunLog, save_dir: Path | None, score: Score, workers: int = 1) -> None:
        self._log = log
        self._save_dir = save_dir
        self._score = score
        self._pool = _pool(workers, "srbench-finish")
        self._slots = threading.Semaphore(WRITE_DEPTH)
        self._lock = threading.Lock()  # the run log and ``error``
        self._out: queue.Queue = queue.Queue()
        self._tasks: list[Future] = []
        self._abandon = threading.Event()  # Ctrl-C while draining: finish the images in progress, drop the rest
        self.error: BaseException | None = None

    def _run(self, item: Scored | Unscored) -> None:
        try:
            if self.error is None and not self._abandon.is_set():
                self._finish(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
            with self._lock:
                self.error = self.error or exc
        finally:
            self._slots.release()

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
        with self._lock:
            if self.error is not None:
                return  # another image failed first: the run stops, and this one is run again on --resume
            try:
                self._log.append(row)
            except OSError as exc:
                raise write_error(exc, self._log.path, "run log") from None
        self._out.put(row)

    def submit(self, item: Scored | Unscored) -> None:
        """Queue one finished forward (raises the finisher's first failure, if any, instead)."""
        self.check()
        self._slots.acquire()
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(self._pool.submit(self._run, item))

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
        """Finish everything queued and stop; runs after Ctrl-C too, so finished images stay logged. A Ctrl-C
        during the drain drops what is still queued (not logged: a resume runs it again) and still waits."""
        self._pool.shutdown(wait=False)
        _wait_all(self._tasks, self._abandon.set)
