"""One table row: the raw values read from the records selection.py chose for it, and the notes on that choice.

Values are read defensively (``number``): a field that is absent or not a number becomes ``None``, an empty
cell, never a made-up value.
"""

from __future__ import annotations

from typing import Any

from sr_bench.report.selection import choose_eval, coverage_text, newest, row_key
from sr_bench.report.table import FLOPS_CONVENTIONS, SETUP_HEADERS, SPLITS
from sr_bench.results import EvalRecord, ProfileRecord, gpu_warnings, is_partial


def build_row(key: tuple, evals: list[EvalRecord], profiles: list[ProfileRecord], val: str | None, test: str | None,
              flops: str, allow_partial: bool) -> tuple[dict, list[str]]:
    """One table row and the notes about how its records were chosen."""
    mine = [r for r in evals if row_key(r) == key]
    row: dict[str, Any] = {"model": key[0], **dict(zip(SETUP_HEADERS, key[1:]))}
    notes, flags, warned = [], [], []
    for split, dataset in zip(SPLITS, (val, test)):
        candidates = [r for r in mine if r["dataset"] == dataset]
        record, note = choose_eval(candidates, allow_partial)
        row.update(_split_values(split, record))
        # only partial records, not allowed: the coverage of the newest, so a score can say why the cell is empty
        row[f"{split}_partial_left_out"] = coverage_text(newest(candidates)) if record is None and candidates else None
        warned += gpu_warnings(record) if record is not None else []
        row[f"{split}_tile"] = _tile_text(record)
        row[f"{split}_coverage"] = coverage_text(record) if record is not None and is_partial(record) else None
        mixed = ((record or {}).get("sharding") or {}).get("runtime_not_comparable")
        row[f"{split}_runtime_mixed"] = "ranks on different devices" if mixed else None
        flags += [f"{split} {row[f'{split}_{k}']}" for k in ("coverage", "tile") if row[f"{split}_{k}"]]
        flags += [f"{split} runtime not comparable"] if mixed else []
        if note:
            notes.append(f"{key[0]}: {note} on {dataset}")
        if mixed:  # a torchrun eval over different device models: its time cell is empty on purpose
            notes.append(f"{key[0]}: no {split} time on {dataset}: {mixed}")
        if split == "val":
            row["mem_mib"] = number(record.get("memory_mib")) if record else None
    row["notes"] = "; ".join(flags) or None
    row["ave_time_ms"] = _mean_or_none(row["val_time_ms"], row["test_time_ms"])
    row["gpu_warning"] = warned[0] if warned else None
    profile = newest(r for r in profiles if (r["model"], r["scale"]) == key[:2])
    row.update(_complexity_values(profile, flops))
    return row, notes


def number(value: Any) -> float | None:
    """A measurement as a float, or None when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _tile_text(record: EvalRecord | None) -> str | None:
    tile = record.get("tile") if record else None
    return f"tiled {tile['size']}, overlap {tile.get('overlap', 0)}" if tile else None


def _split_values(prefix: str, record: EvalRecord | None) -> dict[str, Any]:
    """Quality and runtime of one eval record; the runtime is the mean per-image time."""
    mean = _dict(record, "mean")
    stats = _dict(record, "runtime_ms")
    time = number(mean.get("runtime_ms"))
    return {
        f"{prefix}_psnr": number(mean.get("psnr_rgb")),
        f"{prefix}_ssim": number(mean.get("ssim_rgb")),
        f"{prefix}_psnr_y": number(mean.get("psnr_y")),
        f"{prefix}_ssim_y": number(mean.get("ssim_y")),
        f"{prefix}_time_ms": time if time is not None else number(stats.get("mean")),
        f"{prefix}_time_median_ms": number(stats.get("median")),
        f"{prefix}_time_std_ms": number(stats.get("std")),
    }


def _complexity_values(profile: ProfileRecord | None, flops: str) -> dict[str, Any]:
    counts = _dict(profile, "flops")
    values = {f"flops_{c}_g": _scaled(counts.get(c), 1e9) for c in FLOPS_CONVENTIONS}
    values["flops_g"] = values[f"flops_{flops}_g"]
    values["params_m"] = _scaled(profile.get("params"), 1e6) if profile else None
    values["acts_m"] = _scaled(profile.get("activations"), 1e6) if profile else None
    conv = number(profile.get("num_conv")) if profile else None
    values["conv"] = int(conv) if conv is not None and conv == int(conv) else None
    return values


def _scaled(value: Any, unit: float) -> float | None:
    measured = number(value)
    return None if measured is None else measured / unit


def _dict(record: dict | None, key: str) -> dict:
    value = record.get(key) if record else None
    return value if isinstance(value, dict) else {}


def _mean_or_none(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (a + b) / 2
