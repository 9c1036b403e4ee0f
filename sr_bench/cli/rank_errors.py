"""One ``Error:`` line per torchrun launch for a failure every rank shares, not one per rank.

Under torchrun every rank runs the same command, so a bad option or an unknown dataset fails on all of them with
the same message, which printed by each would show N times. But a failure may also be a rank's own (its GPU,
its images), so the ranks compare messages through the key-value store torchrun's agent already runs for the
launch (``MASTER_ADDR:MASTER_PORT``, the one ``init_process_group`` uses):

* A failing rank other than 0 posts its message (without its rank prefix, :attr:`SrBenchError.where`) and waits
  for rank 0's: when rank 0 says the same, it exits silently with its code; otherwise the failure is its own and
  it prints its line, naming its rank.
* Rank 0 prints a message that names no rank at once. One that does (``where``) waits (at most ``ECHO_WAIT_S``)
  for the others' messages: when every rank posted the same, it is printed once without the rank prefix, else
  with it. Then rank 0 posts its own and waits for the ranks that had posted to be done.

Ordering matters because torchrun stops every rank (SIGTERM) as soon as one exits with an error: rank 0 prints
before it lets a silent rank exit, and the silent ranks and rank 0 then exit together at once (``os._exit``:
the failure has unwound everything already), so torchrun's report shows their codes rather than SIGTERMs.
Outside torchrun, or when the store cannot be reached, every process prints its own line: a duplicate line is
better than a failure nobody reports. A rank's own failure is printed up to ``2 * ECHO_WAIT_S`` late (it waits
to learn that rank 0 does not say the same).
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from sr_bench.cli import output

ECHO_WAIT_S = 3.0  # how long rank 0 waits for the other ranks' messages (the others wait twice as long for its)
POLL_S = 0.005  # fine: the ranks that fail alike should exit within one look of torchrun (0.1 s)


class Store(Protocol):
    """The part of ``torch.distributed.Store`` used here."""

    def set(self, key: str, value: str) -> None: ...
    def get(self, key: str) -> bytes: ...
    def check(self, keys: list[str]) -> bool: ...


def _exit_now(code: int) -> None:
    """Exit before torchrun, seeing rank 0 gone, stops this rank with SIGTERM (it would report that instead)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def report(message: str, code: int, where: str | None = None, *, show: Callable[[str], None] = output.error,
           environ: Mapping[str, str] | None = None, connect: Callable[[], Store] | None = None,
           wait_s: float = ECHO_WAIT_S, exit_now: Callable[[int], None] = _exit_now) -> None:
    """Show the ``Error:`` line of a failure as this process should (``where``: its rank prefix, if any).

    Returns after showing it, or after deciding to stay silent when ``exit_now`` returns (tests); a silent rank
    normally leaves here through ``exit_now(code)``.
    """
    full = f"{where}: {message}" if where else message
    env: Mapping[str, str] = os.environ if environ is None else environ
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    except (KeyError, ValueError):
        rank, world = 0, 1  # not under torchrun
    if world <= 1:
        show(full)
        return
    shown: list[str] = []

    def say(line: str) -> None:
        show(line)
        shown.append(line)

    if rank == 0 and where is None:
        say(full)  # nothing to decide: at once, before any silent rank may exit (torchrun then stops this one)
    try:
        store = (connect or (lambda: _agent_store(env)))()
        if rank == 0:
            _lead(store, message, full, where is not None, world, code, say, wait_s, exit_now)
        else:
            _follow(store, rank, message, full, code, say, wait_s, exit_now)
    except Exception:  # noqa: BLE001  (no store, a closed agent, a timeout: this rank reports for itself)
        if not shown:
            show(full)


def _said(rank: int) -> str:
    return f"said/{rank}"


def _done(rank: int) -> str:
    return f"done/{rank}"


def _lead(store: Store, message: str, full: str, ranked: bool, world: int, code: int, say: Callable[[str], None],
          wait_s: float, exit_now: Callable[[int], None]) -> None:
    others = range(1, world)
    _posted(store, [_said(r) for r in others], wait_s)
    posted = [r for r in others if store.check([_said(r)])]
    silent = [r for r in posted if store.get(_said(r)) == message.encode()]
    if ranked:
        say(message if len(silent) == len(others) else full)
    store.set(_said(0), message)
    _posted(store, [_done(r) for r in posted], wait_s)
    if silent:
        exit_now(code)  # together with the silent ranks, before torchrun's next look: it reports every code


def _follow(store: Store, rank: int, message: str, full: str, code: int, say: Callable[[str], None],
            wait_s: float, exit_now: Callable[[int], None]) -> None:
    store.set(_said(rank), message)
    if _posted(store, [_said(0)], 2 * wait_s) and store.get(_said(0)) == message.encode():
        store.set(_done(rank), "")
        exit_now(code)  # rank 0 has printed it
        return
    say(full)
    store.set(_done(rank), "")


def _posted(store: Store, keys: list[str], wait_s: float) -> bool:
    """Whether every key is in the store within ``wait_s`` (polled: ``Store.wait`` logs each timeout)."""
    deadline = time.monotonic() + wait_s
    while keys and not store.check(keys):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def _agent_store(env: Mapping[str, str]) -> Store:
    """A client of the launch's store, with this attempt's keys apart (``--max-restarts`` reruns the ranks)."""
    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=ECHO_WAIT_S)
    store = dist.TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), is_master=False, timeout=timeout)
    return dist.PrefixStore(f"srbench-errors/{env.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)
