"""Work split across the processes of a ``torchrun`` launch (``torch.distributed``: gloo on CPU, NCCL on GPU).

srbench schedules nothing itself: ``torchrun`` starts the ranks (one machine with ``--standalone``, several with
``--nnodes`` and ``--rdzv-endpoint``), watches them and stops them all when one fails. This module only

* reads the launch from the environment torchrun sets (:func:`from_env`),
* places each rank on its own device (``cuda:LOCAL_RANK``, or the CPU with the cores divided between the ranks
  of one machine: :meth:`Ranks.device`, :meth:`Ranks.cpu_threads`),
* splits work items deterministically and balanced by cost (:func:`balanced_split`, :func:`my_share`), so a rerun
  with the same number of ranks gives every rank the same share (its run log then resumes),
* gathers each rank's result on rank 0 (:meth:`Group.gather`), or on every rank for a shared decision
  (:meth:`Group.all_gather`), and
* turns torchrun's stop signal (SIGTERM, sent when another rank failed) into :class:`RankStopped`.

Any unit of work fits: images of a dataset for ``srbench eval``, teams for a challenge replay::

    ranks = from_env()                        # None: not under torchrun (or one rank)
    with Group(ranks, ranks.device("auto")) as group:
        mine = my_share(teams, cost=lambda t: t.images, ranks=ranks)
        results = group.gather([run(t) for t in mine])   # rank 0: one list per rank; others: None
"""

from __future__ import annotations

import datetime
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import TypeVar

import torch

from sr_bench.env import logical_cores
from sr_bench.errors import SrBenchError, UsageError
from sr_bench.timing import resolve_device

T = TypeVar("T")
GATHER_TIMEOUT = datetime.timedelta(hours=24)  # ranks that finish early wait for the slowest at the gather


class RankStopped(KeyboardInterrupt):
    """torchrun stopped this rank (SIGTERM) because another one failed or was killed.

    A KeyboardInterrupt, so the eval loop stops the way it does on Ctrl-C: finished images stay in the run log.
    """


@dataclass(frozen=True)
class Ranks:
    """This process's place in the launch."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    def device(self, requested: str) -> torch.device:
        """``cuda:LOCAL_RANK`` when ``requested`` is auto/cuda and this machine has a GPU per local rank, else CPU.

        A given index (``cuda:1``) is refused: each rank picks its own GPU.
        """
        if requested not in ("auto", "cpu", "cuda"):
            raise UsageError(f"--device {requested} under torchrun: use auto, cuda or cpu (each rank takes cuda:LOCAL_RANK)")
        if requested == "cpu" or resolve_device(requested).type != "cuda":
            return torch.device("cpu")
        if self.local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"{self.local_world_size} ranks per machine but {torch.cuda.device_count()} GPU(s) here: "
                "use --nproc-per-node <= the GPU count"
            )
        return torch.device("cuda", self.local_rank)

    def cpu_threads(self) -> int:
        """This rank's share of the machine's cores (at least one)."""
        return max(1, logical_cores() // self.local_world_size)

    def __str__(self) -> str:
        return f"rank {self.rank}/{self.world_size}"


def from_env(environ: dict[str, str] | None = None) -> Ranks | None:
    """The launch torchrun describes in ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``/``LOCAL_WORLD_SIZE``; None for a
    plain process (or a launch of one rank, which needs no group)."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        return Ranks(int(env["RANK"]), world, int(env.get("LOCAL_RANK", env["RANK"])),
                     int(env.get("LOCAL_WORLD_SIZE", str(world))))
    except (KeyError, ValueError) as exc:
        raise UsageError(f"incomplete torchrun environment ({exc}): launch with torchrun --nproc-per-node N") from None


def balanced_split(costs: Sequence[float], parts: int) -> list[list[int]]:
    """Indices of ``costs`` in ``parts`` groups of near-equal total cost, each group in ascending index order.

    Largest item first to the least loaded group (ties: the lower group), which is deterministic and within the
    largest single item of the best split. Item order breaks cost ties, so the split depends only on the list.
    """
    order = sorted(range(len(costs)), key=lambda i: (-costs[i], i))
    loads = [0.0] * parts
    groups: list[list[int]] = [[] for _ in range(parts)]
    for i in order:
        target = min(range(parts), key=lambda g: (loads[g], g))
        groups[target].append(i)
        loads[target] += costs[i]
    return [sorted(g) for g in groups]


def my_share(items: Sequence[T], cost: Callable[[T], float], ranks: Ranks) -> list[T]:
    """The items this rank works on, in their original order."""
    return [items[i] for i in balanced_split([cost(x) for x in items], ranks.world_size)[ranks.rank]]


class Group:
    """The process group of the launch, for the duration of the block: gloo for CPU ranks, NCCL for GPU ranks.

    While the block runs, SIGTERM raises :class:`RankStopped` (torchrun sends it to every rank when one fails).
    """

    def __init__(self, ranks: Ranks, device: torch.device) -> None:
        self.ranks = ranks
        self.device = device
        self._old_handler: object = None

    def __enter__(self) -> Group:
        import torch.distributed as dist

        if not dist.is_available():
            raise SrBenchError("this torch build has no torch.distributed: run without torchrun")
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dist.init_process_group(backend, timeout=GATHER_TIMEOUT)
        self._old_handler = signal.signal(signal.SIGTERM, self._stopped)
        return self

    def _stopped(self, signum: int, frame: FrameType | None) -> None:
        raise RankStopped(f"{self.ranks} stopped by torchrun")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        import torch.distributed as dist

        signal.signal(signal.SIGTERM, self._old_handler)  # type: ignore[arg-type]
        if exc is None:
            dist.destroy_process_group()  # after a failure the peers may be gone: leave the group to the exit

    def gather(self, value: T) -> list[T] | None:
        """Every rank's ``value`` on rank 0 (in rank order); None on the other ranks.

        A peer that died makes this raise :class:`RankStopped` here rather than hang.
        """
        import torch.distributed as dist

        out: list[T] | None = [None] * self.ranks.world_size if self.ranks.rank == 0 else None  # type: ignore[list-item]
        try:
            dist.gather_object(value, out, dst=0)
        except RuntimeError as exc:  # gloo/NCCL: a peer closed its connection (killed) or timed out
            raise self._peer_gone(exc) from None
        return out

    def all_gather(self, value: T) -> list[T]:
        """Every rank's ``value`` on every rank (in rank order), for a decision all ranks must share."""
        import torch.distributed as dist

        out: list[T] = [None] * self.ranks.world_size  # type: ignore[list-item]
        try:
            dist.all_gather_object(out, value)
        except RuntimeError as exc:
            raise self._peer_gone(exc) from None
        return out

    def _peer_gone(self, exc: RuntimeError) -> RankStopped:
        return RankStopped(f"{self.ranks}: another rank is gone ({str(exc).splitlines()[0][:120]})")
