"""``srbench eval`` under ``torchrun``: each dataset's images shared between ranks, one record per dataset.

Each rank loads the model on its own device (:mod:`sr_bench.sharding`), checks the whole set (so every rank agrees
on the images), takes rank 0's execution mode before any image runs (:func:`agree_on_mode`), runs its share
(balanced by LR pixel count) through the ordinary loop (:func:`sr_bench.evaluate.run_share`) into a run log of its
own (``...-rank<R>of<N>.jsonl``: ``--resume`` with the same N continues every rank), and sends what it finished to
rank 0, which writes one record: rows in dataset order, each with its ``rank`` and ``device``; ``shards`` with
every rank's runtime summary, peak memory and GPU conditions (the fair-timing guard watched each rank's own device,
so each rank keeps its own block and the record's warnings name the rank).

Runtime is never pooled across device models: when the ranks ran on different CPUs/GPUs the record's
``runtime_ms`` is None (and ``mean`` has no runtime), ``sharding.runtime_not_comparable`` says why, and only the
per-rank summaries hold numbers.
A rank that fails prints its error (``rank R/N (device): ...``); torchrun then stops the others, which say so in
one line each; every rank's finished images stay in its run log. An error every rank hits alike (an unknown
dataset) is printed once, by rank 0 (:mod:`sr_bench.cli.rank_errors`): errors raised here carry the rank in
``SrBenchError.where``, apart from the message the ranks compare.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from sr_bench.datasets import BadImage, CheckedPair, Dataset
from sr_bench.env import environment
from sr_bench.errors import SrBenchError
from sr_bench.eval_all import models_and_sets
from sr_bench.eval_config import EvalConfig, EvalOptions
from sr_bench.eval_record import eval_record, runtime_summary
from sr_bench.evaluate import EvalEvent, EvalResult, PreparedRun, ProgressFn, Share, run_share, store
from sr_bench.execution import prepare, threads_notice
from sr_bench.models import LoadedModel
from sr_bench.results import EvalRecord, MemoryInfo, ShardInfo, ShardingInfo, gpu_warnings
from sr_bench.sharding import Group, Ranks, RankStopped, my_share

@dataclass(frozen=True)
class RankResult:
    """What one rank sends to rank 0 for one dataset."""

    rank: int
    device: str
    device_model: str | None  # GPU or CPU model: runtimes of different models are never pooled
    share: Share


def evaluate_sharded(config: EvalConfig, ranks: Ranks, progress: ProgressFn | None = None) -> list[EvalResult]:
    """Every model on every dataset of ``config``, each dataset split between the ranks of this launch."""
    device = ranks.device(config.device)
    options = config.options
    if device.type == "cpu" and options.threads is None:  # the machine's cores, divided between its ranks
        options = replace(options, threads=ranks.cpu_threads())
    config = replace(config, options=options)
    notify = (progress or (lambda event: None)) if ranks.rank == 0 else (lambda event: None)
    results = []
    with Group(ranks, device) as group:
        try:
            for loaded, own_run, sets in models_and_sets(config, device, notify):
                run = agree_on_mode(group, loaded, own_run, device, notify)
                for dataset, checked in sets:
                    result = _one_dataset(group, loaded, dataset, checked, run, device, options, notify)
                    if result is not None:
                        results.append(result)
        except RankStopped:
            raise SrBenchError(
                f"{ranks} ({device}) stopped: another rank failed or was killed (its error is above); finished "
                "images are kept in every rank's run log: fix the cause and rerun the same command with --resume"
            ) from None
        except SrBenchError as exc:
            exc.where = f"{ranks} ({device})"
            raise
    return results


def agree_on_mode(group: Group, loaded: LoadedModel, run: PreparedRun, device: torch.device,
                  notify: ProgressFn) -> PreparedRun:
    """Rank 0's execution mode (and its probe facts) on every rank, settled before any image runs.

    A merged record has one mode, but ``--exec auto`` probes on each rank, and ranks can resolve differently
    (other CPUs, a first-call effect in one rank's probe): rather than finding out at the merge, after all the
    work, every rank runs rank 0's mode with its own thread count, and rank 0 names the ranks that resolved
    otherwise. An explicit ``--exec`` gives every rank the same mode, so there this only confirms it.
    """
    choices = group.all_gather((run.mode, run.probe))
    leader, probe = choices[0]
    others = [f"rank {r}: {mode.label}" for r, (mode, _) in enumerate(choices) if mode.label != leader.label]
    if others:
        notify(EvalEvent("notice", loaded.name, message=(
            f"--exec resolved to {leader.label} on rank 0 but otherwise on {len(others)} rank(s) "
            f"({'; '.join(others)}): every rank runs {leader.label}")))
    mode = replace(leader, threads=run.mode.threads)
    if mode == run.mode:
        return replace(run, probe=probe)
    return PreparedRun(mode, probe, prepare(loaded.module, mode, device, loaded.name))


def _device_model(device: torch.device) -> str | None:
    env = environment(device)
    return env.get("gpu_name") if device.type == "cuda" else env.get("cpu_model")


def _one_dataset(group: Group, loaded: LoadedModel, dataset: Dataset,
                 checked: tuple[list[CheckedPair], list[BadImage]], run: PreparedRun, device: torch.device,
                 options: EvalOptions, notify: ProgressFn) -> EvalResult | None:
    """This rank's share of one dataset; on rank 0 also the merged record, stored."""
    ranks = group.ranks
    pairs, bad = checked
    mine = my_share(pairs, cost=lambda c: c.lr_size[0] * c.lr_size[1], ranks=ranks)
    share = run_share(loaded, dataset, device, options, (mine, bad), run, notify,
                      log_name=f"-rank{ranks.rank}of{ranks.world_size}")
    gathered = group.gather(RankResult(ranks.rank, str(device), _device_model(device), share))
    if gathered is None:
        return None
    record = merged_record(loaded, dataset, checked, options, gathered, device)
    for message in guard_notices(gathered):
        notify(EvalEvent("notice", loaded.name, dataset.name, message=message))
    return store(record, options, notify, total=len(pairs))


def guard_notices(gathered: list[RankResult]) -> list[str]:
    """One line per rank whose CUDA timing could not be watched (NVML unavailable there), naming the rank."""
    return [f"rank {g.rank} ({g.device}): {g.share.guard.notice}" for g in gathered if g.share.guard.notice]


def merged_record(loaded: LoadedModel, dataset: Dataset, checked: tuple[list[CheckedPair], list[BadImage]],
                  options: EvalOptions, gathered: list[RankResult], device: torch.device) -> EvalRecord:
    """One record from every rank's share: rows in dataset order with ``rank`` and ``device``, per-rank summaries."""
    pairs, bad = checked
    by_name = {row["name"]: row | {"rank": g.rank, "device": g.device} for g in gathered for row in g.share.rows}
    rows = [by_name[c.pair.name] for c in pairs if c.pair.name in by_name]
    if not rows:
        raise SrBenchError(f"no image of {dataset.name} could be evaluated on any rank")
    order = {c.pair.name: i for i, c in enumerate(pairs)}
    late_bad = sorted((b for g in gathered for b in g.share.bad[len(bad):]), key=lambda b: order.get(b.name, 0))
    peaks = [g.share.memory for g in gathered]
    top = max(peaks, key=lambda m: m["peak_mib"] if m["peak_mib"] is not None else -1.0)
    memory = MemoryInfo(peak_mib=top["peak_mib"], baseline_mib=top["baseline_mib"], kind=top["kind"],
                        method=top["method"], peak_source=f"max over the {len(gathered)} ranks (each rank's in shards)")
    warmup = [ms for g in gathered for ms in g.share.warmup_ms]
    record = eval_record(loaded, dataset, device, options, gathered[0].share.exec_info, rows, [*bad, *late_bad],
                         warmup, memory, gathered[0].share.run_log, any(g.share.resumed for g in gathered))
    if message := threads_notice(options.threads, gathered[0].share.mode):
        record["notices"].append(message)
    record["pipeline"] = gathered[0].share.pipeline
    record["sr_png"] = gathered[0].share.sr_png
    record["warnings"] += sorted({w for g in gathered for w in g.share.warnings})
    models = sorted({str(g.device_model) for g in gathered})
    comparable = len(models) == 1 and len({torch.device(g.device).type for g in gathered}) == 1
    record["shards"] = [
        ShardInfo(
            rank=g.rank,
            device=g.device,
            device_model=g.device_model,
            images=len(g.share.rows),
            runtime_ms=runtime_summary(g.share.rows, g.share.warmup_ms, torch.device(g.device)) if g.share.rows else None,
            memory=g.share.memory,
            run_log=str(g.share.run_log),
            resumed=g.share.resumed,
            **g.share.guard.record_fields(),
        )
        for g in gathered
    ]
    record["gpu_conditions"] = None  # no one split: each rank timed its images on its own device
    record["gpu_conditions_reason"] = "torchrun eval: each rank's own block is in shards[].gpu_conditions"
    record["warnings"] += gpu_warnings(record)  # every rank's, named by its rank
    record["notices"] += guard_notices(gathered)
    record["sharding"] = ShardingInfo(world_size=len(gathered), split="balanced by LR pixel count",
                                      runtime_comparable=comparable)
    if not comparable:
        reason = f"ranks ran on different devices ({'; '.join(models)}): see shards[].runtime_ms"
        record["runtime_ms"] = None
        record["mean"].pop("runtime_ms")
        record["sharding"]["runtime_not_comparable"] = reason
        record["notices"].append(f"runtime not pooled: {reason}")
    return record
