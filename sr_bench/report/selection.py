"""Which records feed which row: row keys, the eval record chosen per split, profiles at the table's size.

Choosing is kept apart from reading values (rows.py) because the choice is where the rules live
(newest complete untiled first, partial only when allowed) and every choice that needs explaining returns
the note that explains it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sr_bench.results import EvalRecord, ProfileRecord, Record, eval_coverage, is_partial, record_time
from sr_bench.sizes import size_text


def row_key(record: Record) -> tuple:
    """(model, scale, protocol, device, exec label): the runs one row may combine."""
    mode = record.get("exec")
    label = mode.get("label") if mode else None
    return record["model"], record["scale"], *(_text(v) for v in (record.get("protocol"), record.get("device"), label))


def row_keys(evals: list[EvalRecord], profiles: list[ProfileRecord]) -> list[tuple]:
    """Every row's key; a model with only profile records gets a row with no measured setup."""
    keys = {row_key(r) for r in evals}
    measured = {k[:2] for k in keys}
    keys |= {(r["model"], r["scale"], None, None, None) for r in profiles if (r["model"], r["scale"]) not in measured}
    return sorted(keys, key=str)


def choose_eval(records: list[EvalRecord], allow_partial: bool) -> tuple[EvalRecord | None, str | None]:
    """The record a split's cells come from, and a note when the choice needs one.

    Preference: complete and untiled, then complete and tiled; partial ones only when allowed.
    """
    complete = [r for r in records if not is_partial(r)]
    chosen = newest(r for r in complete if not r.get("tile")) or newest(complete)
    if chosen is not None:
        passed = [r for r in records if record_time(r) > record_time(chosen)]
        if not passed:
            return chosen, None
        kinds = sorted({"partial" if is_partial(r) else "tiled" for r in passed})
        return chosen, f"{len(passed)} newer {'/'.join(kinds)} eval record(s) left out for a complete untiled one"
    if not records:
        return None, None
    latest = newest(records)
    assert latest is not None
    coverage = coverage_text(latest)
    if allow_partial:
        return latest, f"using a partial eval record ({coverage}; --allow-partial)"
    return None, (f"only partial eval records (newest: {coverage}), cells left empty; re-run eval on the whole set, "
                  "or pass --allow-partial to use it")


def newest(records: Iterable[Any]) -> Any:
    """The most recently created record (the last written wins a tie)."""
    ordered = sorted(records, key=record_time)
    return ordered[-1] if ordered else None


def coverage_text(record: EvalRecord) -> str:
    done, total = eval_coverage(record)
    return f"{done}/{total} images"


def profile_size(record: ProfileRecord) -> tuple[int, ...] | None:
    """(batch, H, W) of a profile's input, or None when the record does not say."""
    size = record.get("input_size")
    return (record.get("batch", 1), *size) if size and len(size) == 2 else None


def other_size_notes(profiles: list[ProfileRecord], size: tuple[int, int]) -> list[str]:
    """Name the profiles left out because they were measured at another input size (or batch)."""
    others: dict[tuple, set[str]] = {}
    for r in profiles:
        if (shape := profile_size(r)) != (1, *size):
            others.setdefault((r["model"], r["scale"]), set()).add(size_text(shape))
    return [
        f"{model} x{scale}: profile(s) at {', '.join(sorted(sizes))} left out (the table uses {size_text(size)}"
        f" input); report them with --size, or run 'srbench profile --model {model}' at {size_text(size)}"
        for (model, scale), sizes in others.items()
    ]


def missing_dataset_notes(records: Sequence[Record], val: str | None, test: str | None) -> list[str]:
    """Point at the dataset names that do exist when a requested split has no eval record at all."""
    present = sorted({r["dataset"] for r in records if r["kind"] == "eval"})
    have = f"records have: {', '.join(present)}" if present else "there are no eval records"
    notes = []
    for name, fix in ((val, "--val NAME"), (test, "--test NAME, or --test none")):
        if name is not None and name not in present:
            notes.append(f"no eval record on dataset '{name}' ({have}); choose one with {fix}")
    return notes


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
