"""A reduced-precision eval (``--exec bf16``/``fp16``) against fp32: its per-image PSNR change.

Such a record carries ``fp32_reference``: the change against the newest fp32 record of the same model, checkpoint
and images in the same results folder (see :func:`fp32_reference`), or None plus a notice saying how to get one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sr_bench.errors import ResultsError
from sr_bench.results import EvalRecord, Record, load_records


def stored_records(results_dir: Path) -> list[Record]:
    """The records already in the results folder (none when it is new: that is not an error here)."""
    try:
        records, _ = load_records(results_dir)  # unusable files are the report command's business, not eval's
    except ResultsError:
        return []
    return records


def _same_run_inputs(record: EvalRecord, candidate: Record) -> bool:
    """Whether ``candidate`` scored the same images with the same weights, so only the precision differs."""
    data, other = record["data"], candidate.get("data") or {}
    sha = record["checkpoint"]["sha256"]  # None: random weights, which differ from run to run
    return (
        sha is not None
        and candidate.get("kind") == "eval"
        and all(candidate.get(k) == record[k] for k in ("model", "scale", "dataset", "data_range", "tile"))
        and (candidate.get("checkpoint") or {}).get("sha256") == sha
        and all(_resolved(other.get(k)) == _resolved(data[k]) for k in ("hr_dir", "lr_dir"))
        and (candidate.get("exec") or {}).get("dtype") == "fp32"
    )


def _resolved(folder: str | None) -> str | None:
    return None if folder is None else str(Path(folder).resolve())


def fp32_reference(record: EvalRecord, stored: list[Record]) -> dict | None:
    """The PSNR change of a reduced-precision eval ``record`` against the newest matching fp32 record in ``stored``
    (oldest first, as ``load_records`` returns them), or None when there is none.

    A match has the same model, scale, dataset folders, checkpoint (sha256), data range and tiling, runs in fp32
    (any memory format, compile, protocol or device: those move PSNR by ~1e-5 dB, bf16 by ~1e-2), and scored every
    image this run scored, so a longer fp32 run (a larger ``--limit``) serves too. Deltas are reduced - fp32 in
    dB, over the images where both PSNRs are finite.
    """
    names = {row["name"] for row in record["images"]}
    for candidate in reversed(stored):
        if not _same_run_inputs(record, candidate):
            continue
        reference = {row.get("name"): row for row in candidate.get("images") or []
                     if all(isinstance(row.get(k), (int, float)) for k in ("psnr_rgb", "psnr_y"))}
        if not names <= reference.keys():
            continue
        rgb = np.array([row["psnr_rgb"] - reference[row["name"]]["psnr_rgb"] for row in record["images"]])
        y = np.array([row["psnr_y"] - reference[row["name"]]["psnr_y"] for row in record["images"]])
        finite = np.isfinite(rgb) & np.isfinite(y)  # an infinite PSNR (an exact image) on either side has no delta
        rgb, y = rgb[finite], y[finite]
        return {
            "record_id": candidate.get("id"),
            "created": candidate.get("created"),
            "exec": candidate["exec"].get("label"),
            "device": candidate.get("device"),
            "images_compared": int(finite.sum()),
            "psnr_rgb_delta_mean": float(rgb.mean()) if rgb.size else None,
            "psnr_rgb_delta_max_abs": float(np.abs(rgb).max()) if rgb.size else None,
            "psnr_y_delta_mean": float(y.mean()) if y.size else None,
            "psnr_y_delta_max_abs": float(np.abs(y).max()) if y.size else None,
        }
    return None


def reference_notice(record: EvalRecord) -> str:
    """One line for the user: the PSNR change against fp32, or how to get an fp32 record to compare with."""
    label, reference = record["exec"]["label"], record["fp32_reference"]
    if reference is None:
        return (
            f"no fp32 eval of {record['model']} x{record['scale']} on {record['dataset']} (same checkpoint and images) "
            f"in this results folder, so the PSNR change of {label} is unknown: run the same eval with --exec auto "
            "(or eager) first, then this one again"
        )
    if reference["psnr_rgb_delta_mean"] is None:
        return f"{label} vs fp32 record {reference['record_id']}: no image with a finite PSNR on both sides to compare"
    return (
        f"{label} changes PSNR RGB by {reference['psnr_rgb_delta_mean']:+.4f} dB on average (max |change| "
        f"{reference['psnr_rgb_delta_max_abs']:.4f} dB over {reference['images_compared']} images) against fp32 "
        f"record {reference['record_id']} ({reference['exec']})"
    )
