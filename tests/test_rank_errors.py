"""``sr_bench.cli.rank_errors``: which rank prints a failure under torchrun, played by threads over an in-memory
store (the real store and ranks: ``test_sharded_eval``)."""

from __future__ import annotations

import threading

import pytest

from sr_bench.cli.rank_errors import report

WHERE = ("rank 0/2 (cpu)", "rank 1/2 (cpu)")


class FakeStore:
    """The three calls of ``torch.distributed.Store`` that ``report`` uses, shared by the "ranks" (threads)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.lock = threading.Lock()

    def set(self, key: str, value: str) -> None:
        with self.lock:
            self.data[key] = value.encode()

    def get(self, key: str) -> bytes:
        with self.lock:
            return self.data[key]

    def check(self, keys: list[str]) -> bool:
        with self.lock:
            return all(k in self.data for k in keys)


def _ranks(failures: dict[int, tuple[str, str | None]], connect=None) -> tuple[list[tuple[int, str]], dict[int, int]]:
    """Run ``report`` for each failing rank of a 2-rank launch at once; (lines shown with their rank, silent exits)."""
    store = FakeStore()
    shown: list[tuple[int, str]] = []
    exits: dict[int, int] = {}

    def one(rank: int, message: str, where: str | None) -> None:
        report(message, 2, where, show=lambda line: shown.append((rank, line)),
               environ={"RANK": str(rank), "WORLD_SIZE": "2"}, connect=connect or (lambda: store), wait_s=0.3,
               exit_now=lambda code: exits.__setitem__(rank, code))

    threads = [threading.Thread(target=one, args=(rank, *failure)) for rank, failure in failures.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return shown, exits


def test_a_failure_every_rank_shares_is_printed_once_by_rank_0_without_the_rank() -> None:
    shown, exits = _ranks({0: ("unknown dataset 'x'", WHERE[0]), 1: ("unknown dataset 'x'", WHERE[1])})
    assert shown == [(0, "unknown dataset 'x'")]
    assert exits == {0: 2, 1: 2}  # both leave at once, with the code


def test_a_command_line_error_is_printed_by_rank_0_at_once() -> None:
    shown, exits = _ranks({0: ("bad --limit", None), 1: ("bad --limit", None)})
    assert shown == [(0, "bad --limit")] and exits == {0: 2, 1: 2}


def test_a_ranks_own_failure_is_printed_by_that_rank() -> None:
    stopped = "rank 0/2 (cpu) stopped: another rank failed"
    shown, exits = _ranks({0: (stopped, None), 1: ("NaN in the output", WHERE[1])})
    assert sorted(shown) == [(0, stopped), (1, "rank 1/2 (cpu): NaN in the output")]
    assert exits == {}


@pytest.mark.parametrize("rank", [0, 1])
def test_a_rank_failing_alone_names_itself(rank: int) -> None:
    shown, exits = _ranks({rank: ("out of memory", WHERE[rank])})  # the other rank posts nothing
    assert shown == [(rank, f"{WHERE[rank]}: out of memory")] and exits == {}


def test_without_a_store_every_rank_speaks() -> None:
    def unreachable():
        raise ConnectionError("no agent")

    shown, exits = _ranks({0: ("same", WHERE[0]), 1: ("same", WHERE[1])}, connect=unreachable)
    assert sorted(shown) == [(0, f"{WHERE[0]}: same"), (1, f"{WHERE[1]}: same")] and exits == {}


def test_outside_torchrun_the_line_is_printed_whole() -> None:
    shown: list[str] = []
    report("boom", 1, "rank 3/4 (cpu)", show=shown.append, environ={})
    report("boom", 1, show=shown.append, environ={"WORLD_SIZE": "1", "RANK": "0"})
    assert shown == ["rank 3/4 (cpu): boom", "boom"]
