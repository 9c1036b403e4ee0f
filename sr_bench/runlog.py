"""The per-image JSONL run log of an eval: what is finished, so an interrupted run can ``--resume``.

A log lives at ``<results>/runs/<key>.jsonl``. The key (:func:`run_key`) is a readable prefix plus a digest of
the run's identity (:func:`run_identity`): everything that changes a number (model, checkpoint sha256 and the entry
loaded from it, strict or not, after-load methods, model arguments and the user's model file, scale, data range,
dataset folders and image list, exec mode and threads, protocol, tile, device type), so two runs that would compute
different numbers never share a log. While a run owns its log it holds an exclusive lock
(``fcntl.flock`` on ``<key>.lock``, which names the owner's pid), so a second run with the same key stops at
once instead of interleaving its rows with the first one's.

The first line is a header (``kind: eval-log``), then one self-contained JSON object per finished image, so
other tools can tail it, and one ``eval-segment`` line per process that worked on the log (its pid, how many
images it finished and its peak memory: a resumed run's peak is the max over its segments).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
from pathlib import Path
from typing import TextIO

import torch

import sr_bench
from sr_bench.datasets import Dataset
from sr_bench.errors import ResultsError, SrBenchError
from sr_bench.execution import ExecMode
from sr_bench.models import LoadedModel
from sr_bench.results import atomic_write_text

METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")
LOG_KIND = "eval-log"  # first line of a JSONL run log
SEGMENT_KIND = "eval-segment"  # one line per process that worked on the log, after its rows


class RunLog:
    """The per-image JSONL log of one run, owned (locked) by this process until :meth:`close`.

    Appends are flushed and fsynced, so a crash loses at most the line being written; a torn last line is
    dropped when the log is read back.
    """

    def __init__(self, path: Path, lock: TextIO, rows: dict[str, dict], segments: list[dict]) -> None:
        self.path = path
        self._lock = lock
        self.rows = rows  # finished images of earlier segments (resume), by name
        self.segments = segments  # the earlier segments' lines, oldest first

    @classmethod
    def open(cls, path: Path, header: dict, resume: bool) -> RunLog:
        """Lock the log, then start it afresh or (``resume``) reload the rows and segments of the same run."""
        lock = _acquire(path)
        try:
            rows: dict[str, dict] = {}
            segments: list[dict] = []
            if resume and path.is_file():
                old_header, rows, segments = _read_log(path)
                if old_header is not None and old_header.get("identity") != header.get("identity"):
                    raise ResultsError(
                        f"cannot resume from {path}: its header describes another run (model, checkpoint, loading, "
                        "data, exec mode or tiling); drop --resume to start over"
                    )
            lines = [header, *segments, *rows.values()]
            try:
                atomic_write_text(path, "".join(_json_line(x) for x in lines))
            except OSError as exc:
                raise write_error(exc, path, "run log") from None
        except BaseException:
            lock.close()
            raise
        return cls(path, lock, rows, segments)

    def append(self, row: dict) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(_json_line(row))
            f.flush()
            os.fsync(f.fileno())

    def end_segment(self, segment: dict) -> None:
        """Append this process's segment line (pid, images finished, peak memory)."""
        self.append({"kind": SEGMENT_KIND, **segment})

    def close(self) -> None:
        """Give up ownership: another run with the same key may now open the log."""
        self._lock.close()  # closing the descriptor releases the flock

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _acquire(path: Path) -> TextIO:
    """Take the exclusive lock of ``path``'s run, or fail at once naming the process that holds it.

    The lock file is left in place (removing it would let a third run lock a fresh file while the second still
    holds the old one); it holds the owner's pid.
    """
    lock_path = path.with_suffix(".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = lock_path.open("a+", encoding="utf-8")
    except OSError as exc:
        raise write_error(exc, lock_path, "run-log lock") from None
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        lock.seek(0)
        owner = lock.read().strip() or "unknown"
        lock.close()
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise write_error(exc, lock_path, "run-log lock") from None
        raise ResultsError(
            f"another srbench run (pid {owner}) is evaluating the same model, checkpoint, data and settings into "
            f"{path}: wait for it to finish (or stop it), or use another --results folder"
        ) from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def _json_line(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str) + "\n"


def _read_log(path: Path) -> tuple[dict | None, dict[str, dict], list[dict]]:
    header: dict | None = None
    rows: dict[str, dict] = {}
    segments: list[dict] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line from a crash: that image is simply run again
        if not isinstance(obj, dict):
            continue
        if obj.get("kind") == LOG_KIND:
            header = obj
        elif obj.get("kind") == SEGMENT_KIND:
            segments.append(obj)
        elif isinstance(obj.get("name"), str) and all(k in obj for k in (*METRICS, "runtime_ms")):
            rows[obj["name"]] = obj
    return header, rows, segments


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


def run_identity(loaded: LoadedModel, dataset: Dataset, protocol: str, mode: ExecMode, device: torch.device,
                 tile: int | None, overlap: int) -> dict:
    """Everything that changes a number of this run; two runs share a log (and may resume) only when it matches.

    The image list is the set's pairs (names, files, sizes) before ``--limit``, so a longer run resumes a shorter
    one, but a file that was replaced, added or removed starts a new log. The weights are the checkpoint file's
    sha256 plus how they went in: the entry actually loaded (``--checkpoint-key``), strict or not, the
    ``--after-load`` methods in order. The network is the zoo model's name (its code is srbench's own) or, for
    ``file.py:Class``, the sha256 of that file and the canonical ``--model-args`` (modules the file imports are not
    hashed). srbench's own version is part of it too: its metrics, pipeline or zoo code may change between
    versions, so an upgraded srbench starts a new log instead of finishing an older version's run.
    """
    return {
        "srbench": sr_bench.__version__,
        "model": loaded.name,
        "model_file_sha256": loaded.model_file_sha256,
        "model_args": loaded.model_args_json,
        "checkpoint_sha256": loaded.checkpoint.sha256,
        "checkpoint_key": loaded.checkpoint.key,
        "strict": loaded.load.strict,
        "after_load": list(loaded.load.after_load),
        "scale": loaded.scale,
        "data_range": loaded.data_range,
        "dataset": dataset.name,
        "hr_dir": str(dataset.hr_dir.resolve()),
        "lr_dir": str(dataset.lr_dir.resolve()) if dataset.lr_dir else None,
        "images": _image_list_digest(dataset),
        "exec": mode.label,
        "threads": mode.threads,
        "protocol": protocol,
        "tile": [tile, overlap] if tile is not None else None,
        "device": device.type,
    }


def _image_list_digest(dataset: Dataset) -> str:
    h = hashlib.sha256()
    for pair in dataset.pairs:
        for path in (pair.hr_path, pair.lr_path):
            size = path.stat().st_size if path is not None and path.is_file() else None
            h.update(json.dumps([pair.name, str(path), size]).encode())
    return h.hexdigest()


def run_key(identity: dict) -> str:
    """The name of a run's log: readable fields, then a digest of the whole identity."""
    parts = [identity["model"], f"x{identity['scale']}", identity["dataset"], identity["protocol"], identity["exec"],
             identity["device"]]
    if identity["tile"] is not None:
        parts.append("tile{}o{}".format(*identity["tile"]))
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", "-".join([*parts, digest]))


def log_header(identity: dict, key: str, loaded: LoadedModel, dataset: Dataset) -> dict:
    """The header line: the run's identity, checked again on ``--resume``."""
    return {
        "kind": LOG_KIND,
        "key": key,
        "model": loaded.name,
        "scale": loaded.scale,
        "dataset": dataset.name,
        "identity": identity,
    }
