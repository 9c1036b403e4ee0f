"""The per-image JSONL run log of an eval: what is finished, so an interrupted run can ``--resume``.

A log lives at ``<results>/runs/<key>.jsonl``; the key (:func:`run_key`) names what must match for a resume to
continue it. The first line is a header (``kind: eval-log``), then one self-contained JSON object per finished
image, so other tools can tail it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from pathlib import Path

import torch

from sr_bench.datasets import Dataset
from sr_bench.errors import ResultsError, SrBenchError
from sr_bench.models import LoadedModel
from sr_bench.results import atomic_write_text

METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")
LOG_KIND = "eval-log"  # first line of a JSONL run log


class RunLog:
    """The per-image JSONL log of one run: a header line, then one line per finished image.

    Appends are flushed and fsynced, so a crash loses at most the line being written; a torn last line is
    dropped when the log is read back.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def open(cls, path: Path, header: dict, resume: bool) -> tuple[RunLog, dict[str, dict]]:
        """Start a fresh log, or (``resume``) reload the finished rows of a log with the same header."""
        rows: dict[str, dict] = {}
        if resume and path.is_file():
            old_header, rows = _read_log(path)
            if old_header is not None and _identity(old_header) != _identity(header):
                raise ResultsError(
                    f"cannot resume from {path}: it was made with another checkpoint or dataset folder; "
                    "drop --resume to start over"
                )
        lines = [header, *rows.values()]
        try:
            atomic_write_text(path, "".join(_json_line(x) for x in lines))
        except OSError as exc:
            raise write_error(exc, path, "run log") from None
        return cls(path), rows

    def append(self, row: dict) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(_json_line(row))
            f.flush()
            os.fsync(f.fileno())


def _identity(header: dict) -> tuple:
    return tuple(header.get(k) for k in ("key", "checkpoint_sha256", "hr_dir", "lr_dir"))


def _json_line(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str) + "\n"


def _read_log(path: Path) -> tuple[dict | None, dict[str, dict]]:
    header: dict | None = None
    rows: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line from a crash: that image is simply run again
        if not isinstance(obj, dict):
            continue
        if obj.get("kind") == LOG_KIND:
            header = obj
        elif isinstance(obj.get("name"), str) and all(k in obj for k in (*METRICS, "runtime_ms")):
            rows[obj["name"]] = obj
    return header, rows


def write_error(exc: BaseException, path: Path, what: str) -> ResultsError:
    """The one-line error for a failed write of ``what`` at ``path``: a full disk says to free space and resume."""
    cause = exc.__cause__ if isinstance(exc, SrBenchError) and exc.__cause__ else exc
    if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
        return ResultsError(
            f"disk full while writing {what} {path}: free space (or pick another folder) and rerun with --resume; "
            "finished images are kept in the run log"
        )
    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
    return ResultsError(f"cannot write {what} {path}: {reason}; fix the folder and rerun with --resume")


def run_key(model: str, scale: int, dataset: Dataset, protocol: str, exec_label: str, device: torch.device,
            tile: int | None, overlap: int) -> str:
    """The name of a run's log: what must match for ``--resume`` to continue it."""
    name = dataset.name
    if dataset.spec is None:  # custom folders: the folder identifies the set
        name += "-" + hashlib.sha256(str(dataset.hr_dir.resolve()).encode()).hexdigest()[:10]
    parts = [model, f"x{scale}", name, protocol, exec_label, device.type]
    if tile is not None:
        parts.append(f"tile{tile}o{overlap}")
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", "-".join(parts))


def log_header(key: str, loaded: LoadedModel, dataset: Dataset) -> dict:
    """The header line: the run's identity, checked on ``--resume``."""
    return {
        "kind": LOG_KIND,
        "key": key,
        "model": loaded.name,
        "scale": loaded.scale,
        "dataset": dataset.name,
        "checkpoint_sha256": loaded.checkpoint.sha256,
        "hr_dir": str(dataset.hr_dir.resolve()),
        "lr_dir": str(dataset.lr_dir.resolve()) if dataset.lr_dir else None,
    }
