"""Run records on disk: one JSON file per run, written atomically, read back with warnings.

Layout: ``<results>/<kind>/<model>-x<scale>[-<dataset>]-<timestamp>-<id8>.json`` where ``kind`` is
``profile`` or ``eval``. One file per run (never a shared, rewritten file) means concurrent runs cannot
clobber each other, and an atomic rename means a reader never sees half a record. Other files under the
results folder (eval's per-image ``*.jsonl`` logs, notes, plots) are ignored by the loader.

Example::

    path = write_record({"kind": "profile", "model": "lgvan", "scale": 4, ...}, Path("results"))
    records, warnings = load_records(Path("results"))
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sr_bench import __version__
from sr_bench.errors import ResultsError
from sr_bench.files import default_file_mode

SCHEMA_VERSION = 1

KINDS = ("profile", "eval")

# Keys a record must carry to be usable in a table; anything else is optional.
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "profile": ("model", "scale", "params", "flops"),
    "eval": ("model", "scale", "dataset", "mean"),
}

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_HOW_TO_RECORD = "run 'srbench profile --model NAME' or 'srbench eval ...' first"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` holds either the old content or all of the new, never a part.

    The temp file lives in the target folder (``os.replace`` is atomic only within one file system) and
    does not end in ``.json``, so a concurrent :func:`load_records` never picks it up.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, default_file_mode())  # mkstemp makes 0600; honour the umask like open() does
        os.replace(tmp_name, path)
    except BaseException as exc:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from None
        raise
    _fsync_dir(path.parent)


def _write_error(path: Path, exc: OSError) -> ResultsError:
    return ResultsError(f"cannot write {path}: {exc.strerror or exc}; check the folder's permissions and free space")


def atomic_write_text(path: Path, text: str) -> None:
    """Atomically write ``text`` as UTF-8, byte for byte (no newline translation, so tabs and ``\\n`` stay)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (numpy scalars and paths converted, ``inf`` allowed).

    ``inf`` stays representable because PSNR of an exact reconstruction is infinite; Python's json
    reads the ``Infinity`` token back.
    """
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def stamp(record: dict) -> dict:
    """A copy of ``record`` with ``schema_version``, ``srbench_version``, ``created`` (ISO-8601, UTC) and ``id``
    (uuid4 hex) added unless present: what :func:`write_record` stores, so a ``--json`` copy can be identical."""
    full = dict(record)
    full.setdefault("schema_version", SCHEMA_VERSION)
    full.setdefault("srbench_version", __version__)
    full.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="microseconds"))
    full.setdefault("id", uuid.uuid4().hex)
    return full


def write_record(record: dict, results_dir: Path) -> Path:
    """Store one run record (stamped as :func:`stamp` does) and return its path; the caller's dict is not modified."""
    kind = record.get("kind")
    if kind not in KINDS:
        raise ResultsError(f"cannot store a record of kind {kind!r}: expected one of {', '.join(KINDS)}")
    full = stamp(record)
    path = Path(results_dir) / kind / _record_filename(full)
    atomic_write_json(path, full)
    return path


def load_records(results_dir: Path) -> tuple[list[dict], list[str]]:
    """Read every record below ``results_dir``, oldest first; unusable files become warnings.

    Raises:
        ResultsError: the folder is missing or holds no record files at all.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ResultsError(f"results folder {root} does not exist: {_HOW_TO_RECORD}")
    paths = sorted(p for p in root.rglob("*.json") if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise ResultsError(f"no records in {root}: {_HOW_TO_RECORD}")
    records: list[dict] = []
    warnings: list[str] = []
    for path in paths:
        record, problem = _read_record(path)
        if problem is not None:
            warnings.append(f"skipped {_display(path, root)}: {problem}")
        else:
            records.append(record)
    records.sort(key=record_time)
    return records, warnings


def record_time(record: dict) -> datetime:
    """When a record was made (its ``created`` field); unparseable or missing sorts first."""
    try:
        created = datetime.fromisoformat(str(record.get("created")))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return created if created.tzinfo else created.replace(tzinfo=timezone.utc)


def _read_record(path: Path) -> tuple[dict, str | None]:
    """Parse and check one file; the second item says why it cannot be used (None when it can)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        return {}, f"cannot be read ({e.strerror or e})"
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return {}, f"corrupt JSON ({e}); delete it or re-run the command that made it"
    if not isinstance(record, dict) or "schema_version" not in record:
        return {}, "not an srbench record (no schema_version)"
    version = record["schema_version"]
    if version != SCHEMA_VERSION:
        fix = "upgrade srbench" if isinstance(version, int) and version > SCHEMA_VERSION else "re-run to rewrite it"
        return {}, f"schema version {version!r} is incompatible (this srbench reads {SCHEMA_VERSION}): {fix}"
    kind = record.get("kind")
    if kind not in KINDS:
        return {}, f"unknown record kind {kind!r} (expected one of {', '.join(KINDS)})"
    missing = [k for k in REQUIRED_KEYS[kind] if record.get(k) is None]
    if missing:
        return {}, f"{kind} record is missing {', '.join(missing)}"
    return record, None


def _record_filename(record: dict) -> str:
    parts = [f"{_safe(str(record.get('model', 'model')))}-x{_safe(str(record.get('scale', '')))}"]
    if record.get("dataset"):
        parts.append(_safe(str(record["dataset"])))
    try:
        stamp = datetime.fromisoformat(str(record["created"])).strftime("%Y%m%dT%H%M%S")
    except ValueError as e:
        raise ResultsError(f"record 'created' is not an ISO-8601 time: {record['created']!r}") from e
    parts += [stamp, _safe(str(record["id"]))[:8]]
    return "-".join(parts) + ".json"


def _safe(name: str) -> str:
    """A file-name-safe form of a user-supplied name (model paths like ``net.py:Net`` included)."""
    return _UNSAFE.sub("_", name).strip("._") or "_"


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _json_default(obj: Any) -> Any:
    """Convert the non-JSON types measurement code tends to produce (numpy scalars, paths)."""
    if isinstance(obj, Path):
        return str(obj)
    if callable(getattr(obj, "tolist", None)):  # numpy scalars/arrays, torch tensors
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the OS allows syncing a directory (not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
