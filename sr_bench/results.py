"""Run records: their schema (one typed definition per record kind) and their storage on disk.

Schema: :class:`ProfileRecord` and :class:`EvalRecord` (TypedDicts, so a record stays the plain JSON dict
that other tools read) are the only definition of what a record holds; ``docs/RECORDS.md`` documents every
field. Builders construct them through these types and readers index them through these types. Loading
upgrades an older schema version (:func:`upgrade`) and then checks every declared field's type
(:func:`validate`), so a hand-edited or foreign record is skipped with a warning naming its file instead of
crashing a reader. Keys a type does not declare are kept and not checked.

Adding an optional field: declare it in the TypedDict it belongs to (``name: FieldType``; every class is
``total=False``, so it is optional unless wrapped in ``Required[...]``), document it in ``docs/RECORDS.md``,
and build it where the record is built. Validation picks the declaration up by itself. Renaming, moving or
retyping a field needs a new ``SCHEMA_VERSION`` and a step in :func:`upgrade`.

Layout: ``<results>/<kind>/<model>-x<scale>[-<dataset>]-<timestamp>-<id8>.json`` where ``kind`` is
``profile`` or ``eval``. One file per run (never a shared, rewritten file) means concurrent runs cannot
clobber each other, and an atomic rename means a reader never sees half a record. Other files under the
results folder (eval's per-image ``*.jsonl`` logs, notes, plots) are ignored by the loader.

Example::

    path = write_record(ProfileRecord(kind="profile", model="lgvan", scale=4, ...), Path("results"))
    records, warnings = load_records(Path("results"))
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import types
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from collections.abc import Callable
from typing import Any, Literal, NotRequired, Required, TypedDict, Union, get_args, get_origin, get_type_hints

from sr_bench import __version__
from sr_bench.errors import ResultsError
from sr_bench.files import default_file_mode

# 1: the first release. 2: one memory block (``memory``) for both kinds, ``runtime_ms`` without memory keys,
# ``exec.probe`` for both kinds (eval wrote ``exec.auto_probe``), ``exec.threads_requested``.
SCHEMA_VERSION = 2
OLDEST_READABLE = 1

KINDS = ("profile", "eval")

Number = Union[int, float]  # a JSON number; counts are ints in records srbench writes
MemoryKind = Literal["cuda_max_allocated", "cpu_rss_peak"]
MEMORY_KINDS: dict[str, str] = {  # what each ``memory.kind`` measures, as tables label it
    "cuda_max_allocated": "torch.cuda.max_memory_allocated",
    "cpu_rss_peak": "process RSS peak (CPU)",
}

# ---------------------------------------------------------------------------------------------------------
# Record types (documented field by field in docs/RECORDS.md)


class RuntimeStats(TypedDict, total=False):
    """Runtime of the measured forwards in ms: raw samples plus statistics (unrounded)."""

    mean: Number
    median: Number
    std: Number
    min: Number
    max: Number
    p90: Number
    iqr: Number
    n: int
    samples: list[Number]
    warmup_samples: list[Number]
    clock: str
    warnings: list[str]


class MemoryInfo(TypedDict, total=False):
    """Peak memory of the measured forwards and how it was read."""

    peak_mib: Number | None
    baseline_mib: Number | None  # held just before the measured forwards
    kind: MemoryKind
    method: str
    peak_source: str  # eval: where the peak comes from (one process, max over run-log segments or ranks)
    segments: list[dict[str, Any]]  # eval: the run log's segments (pid, forwards, complete, peak_memory_mib)


class ExecInfo(TypedDict, total=False):
    """The execution mode that produced the numbers (``label`` names it in tables)."""

    label: Required[str]
    memory_format: str
    dtype: str
    dtype_method: str | None
    compile: bool
    threads: int | None  # the threads that ran
    threads_requested: int | None  # --threads as given (None: the default, all cores)
    retain_heap: bool
    probe: dict[str, Any] | None  # the --exec auto probe (max_abs_diff, chosen, reason)


class CheckpointFacts(TypedDict, total=False):
    path: str | None
    sha256: str | None
    verified: bool | None  # the file's sha256 is the official file's (which entry was loaded: key vs official_key)
    key: str | None
    official_key: str | None  # the entry the spec names as the official weights (None: it names none)
    load: dict[str, Any] | None  # strict, missing, unexpected, first_missing, first_unexpected (None: nothing loaded)
    after_load: dict[str, int]  # --after-load method -> submodules it ran on


class ShimFacts(TypedDict, total=False):
    """What the CPU stand-ins for ``.cuda()`` did while the model's code ran (sr_bench.user_code)."""

    active: bool
    cuda_calls: int
    loads_mapped: int
    calls: dict[str, int]


class ChallengeFacts(TypedDict, total=False):
    """Which team of which challenge repository a record measures (``srbench challenge``)."""

    repo: Required[str]
    year: int | None
    team_id: Required[int]
    name: Required[str]
    data_range: Number
    tile: int | None
    shims: ShimFacts | None
    module: str | None
    model_class: str
    state_sha256: str


class _Record(TypedDict, total=False):
    """Fields both kinds share."""

    kind: Required[Literal["profile", "eval"]]
    schema_version: Required[int]
    srbench_version: str
    created: str  # ISO-8601, UTC
    id: str  # uuid4 hex
    model: Required[str]
    model_args: dict[str, Any]  # --model-args of a user model ({} for zoo models)
    model_file_sha256: str | None  # the user's model file (file.py:Class); None for zoo and plugin models
    scale: Required[int]
    data_range: Number
    device: str
    protocol: str
    exec: ExecInfo
    checkpoint: CheckpointFacts
    runtime_ms: RuntimeStats | None
    memory_mib: Number | None  # = memory.peak_mib (the field tables read)
    memory: MemoryInfo | None
    env: dict[str, Any]
    gpu_conditions: dict[str, Any] | None  # the fair-timing guard (sr_bench.gpu_conditions); None on CPU / no NVML
    gpu_conditions_reason: str | None  # why gpu_conditions is None
    warnings: list[str]
    notices: list[str]
    shims: ShimFacts | None  # None: no stand-in was needed
    challenge: ChallengeFacts  # only in records made by `srbench challenge`


class ProfileRecord(_Record, total=False):
    """``srbench profile``: complexity, runtime and memory on a synthetic input."""

    input_size: list[int]  # [H, W] of the LR input
    batch: int
    input_shape: list[int]  # [N, C, H, W]
    protocol_description: str
    flops_headline: str
    params: Required[Number]
    flops: Required[dict[str, Number | None]]  # convention -> FLOPs (None: not counted)
    activations: Number
    num_conv: Number
    unsupported_ops: dict[str, dict[str, int]]
    flops_by_operator: dict[str, dict[str, Number]]
    by_layer: list[dict[str, Any]] | None
    forward_passes: int
    traced: bool
    input_dependent: dict[str, Any] | None  # both seeded inputs' counts when they differ (seeds, flops, ...)
    published: dict[str, dict[str, Any]] | None
    profile_timings_s: dict[str, Number]


class ImageRow(TypedDict, total=False):
    """One evaluated image."""

    name: Required[str]
    lr_size: list[int]
    hr_size: list[int]
    psnr_rgb: Number
    ssim_rgb: Number
    psnr_y: Number
    ssim_y: Number
    runtime_ms: Number
    rank: int  # torchrun evals: the rank that ran this image
    device: str  # ... and its device


class MeanMetrics(TypedDict, total=False):
    psnr_rgb: Number
    ssim_rgb: Number
    psnr_y: Number
    ssim_y: Number
    runtime_ms: Number


class DataInfo(TypedDict, total=False):
    """Where the images came from and how many of the set the run covered."""

    hr_dir: str
    lr_dir: str | None
    lr_source: str
    images_in_set: int  # pairs found in the folder
    expected: int | None  # images the named set has (None: custom folders)
    limit: int | None


class TileInfo(TypedDict, total=False):
    size: Required[int]
    overlap: int


class PipelineInfo(TypedDict, total=False):
    workers: int  # threads in each of the decode and finish pools (``pipeline.worker_count``)


class SrPngInfo(TypedDict, total=False):
    dir: Required[str]  # where --save-sr wrote the PNGs
    zlib_level: int
    zlib_strategy: str


class SkippedImage(TypedDict, total=False):
    name: Required[str]
    path: str
    error: str


class ShardInfo(TypedDict, total=False):
    """One rank of a torchrun eval: what it ran and measured."""

    rank: Required[int]
    device: str
    device_model: str | None
    images: int
    runtime_ms: RuntimeStats | None  # None: the rank had no image
    memory: MemoryInfo
    run_log: str
    resumed: bool
    gpu_conditions: dict[str, Any] | None  # this rank's fair-timing guard over its timed images (None: CPU / no NVML)
    gpu_conditions_reason: str | None  # why gpu_conditions is None


class ShardingInfo(TypedDict, total=False):
    """How a torchrun eval shared the images."""

    world_size: Required[int]
    split: str
    runtime_comparable: bool  # every rank on the same device model: runtime_ms pools them
    runtime_not_comparable: str  # why runtime_ms is None


class EvalRecord(_Record, total=False):
    """``srbench eval``: per-image and mean quality and runtime of one model on one dataset."""

    dataset: Required[str]
    dataset_requested: str | None
    split: str | None
    images: list[ImageRow]
    mean: Required[MeanMetrics]
    crop_border: int
    data: DataInfo
    skipped: list[SkippedImage]
    tile: TileInfo | None
    pipeline: PipelineInfo
    sr_png: SrPngInfo | None
    run_log: str
    resumed: bool
    fp32_reference: dict[str, Any] | None
    shards: list[ShardInfo]  # torchrun evals only
    sharding: ShardingInfo


Record = Union[ProfileRecord, EvalRecord]
RECORD_TYPES: dict[str, type] = {"profile": ProfileRecord, "eval": EvalRecord}

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_HOW_TO_RECORD = "run 'srbench profile --model NAME' or 'srbench eval ...' first"

# ---------------------------------------------------------------------------------------------------------
# Building and reading


def split_measurement(measurement: dict[str, Any]) -> tuple[RuntimeStats, MemoryInfo]:
    """The runtime and memory blocks of a record from ``timing.Measurement.to_dict()``."""
    memory = MemoryInfo(peak_mib=measurement["peak_memory_mib"], baseline_mib=measurement["memory_baseline_mib"],
                        kind=measurement["memory_kind"], method=measurement["memory_method"])
    runtime: dict[str, Any] = {k: v for k, v in measurement.items() if k not in _V1_RUNTIME_MEMORY}
    return RuntimeStats(**runtime), memory


def eval_coverage(record: EvalRecord) -> tuple[int, int | None]:
    """(images scored, images the dataset has); the second is None when the record does not say.

    The dataset size is the larger of the pairs found and the named set's official count, so a run on a
    half-downloaded folder, with ``--limit`` or with skipped images counts as partial.
    """
    data = record.get("data") or {}
    sizes = [n for n in (data.get("images_in_set"), data.get("expected")) if isinstance(n, int) and n > 0]
    return len(record.get("images") or []), max(sizes) if sizes else None


def is_partial(record: EvalRecord) -> bool:
    """Whether an eval record scored fewer images than its dataset holds."""
    done, total = eval_coverage(record)
    return total is not None and done < total


def is_tiled(record: EvalRecord) -> bool:
    return bool(record.get("tile"))


def gpu_warnings(record: Record) -> list[str]:
    """The fair-timing guard's warnings over a record's timed forwards: its own ``gpu_conditions``, and in a
    torchrun eval every rank's (``shards[].gpu_conditions``, each named by its rank), since each rank timed its
    images on its own GPU."""
    warnings = list((record.get("gpu_conditions") or {}).get("warnings") or [])
    for shard in record.get("shards") or []:
        where = f"rank {shard.get('rank')} ({shard.get('device')})"
        warnings += [f"{where}: {w}" for w in (shard.get("gpu_conditions") or {}).get("warnings") or []]
    return warnings


# ---------------------------------------------------------------------------------------------------------
# Validation and upgrades


def validate(record: dict[str, Any]) -> str | None:
    """Why ``record`` (already upgraded) does not match its type, or None when it does."""
    kind = record.get("kind")
    if kind not in RECORD_TYPES:
        return f"unknown record kind {kind!r} (expected one of {', '.join(KINDS)})"
    missing = [k for k in _required(RECORD_TYPES[kind]) if record.get(k) is None]
    if missing:
        return f"{kind} record is missing {', '.join(missing)}"
    record_type = RECORD_TYPES[kind]
    if not _checker(record_type)(record):
        return _check(record, record_type, "")
    return _nan_metric(record) if kind == "eval" else None


_METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y", "runtime_ms")


def _nan_metric(record: dict[str, Any]) -> str | None:
    """An eval metric that is NaN, named: it comes from a model output nobody checked for NaN (srbench refuses
    those before scoring), and a report would otherwise show the empty cell of a run that never happened."""
    rows = [("mean", record["mean"]), *((f"images[{i}]", row) for i, row in enumerate(record.get("images") or []))]
    for where, row in rows:
        key = next((k for k in _METRICS if isinstance(row.get(k), float) and math.isnan(row[k])), None)
        if key is not None:
            return f"field '{where}.{key}' is NaN (the model's output was not finite)"
    return None


_V1_RUNTIME_MEMORY = ("peak_memory_mib", "memory_baseline_mib", "memory_kind", "memory_method")


def upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` in the current schema (records of version 1 and later are readable)."""
    full = dict(record)
    if full.get("schema_version") == 1:
        full = _v1_to_v2(full)
    return full


def _v1_to_v2(record: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept profile memory at the top level and inside ``runtime_ms``, eval memory under ``memory`` with
    ``memory_``-prefixed keys, and eval's auto probe as ``exec.auto_probe``; version 2 has one layout for both."""
    runtime = record.get("runtime_ms")
    old = record.get("memory") if record.get("kind") == "eval" else runtime
    if isinstance(old, dict):
        record["memory"] = {
            "peak_mib": old.get("peak_memory_mib", record.get("memory_mib")),
            "baseline_mib": old.get("memory_baseline_mib"),
            "kind": old.get("memory_kind", record.get("memory_kind")),
            "method": old.get("memory_method", ""),
        }
    elif record.get("kind") == "profile":
        record["memory"] = None
    if isinstance(runtime, dict):
        record["runtime_ms"] = {k: v for k, v in runtime.items() if k not in _V1_RUNTIME_MEMORY}
    record.pop("memory_kind", None)
    exec_info = record.get("exec")
    if isinstance(exec_info, dict) and "auto_probe" in exec_info:
        record["exec"] = {**{k: v for k, v in exec_info.items() if k != "auto_probe"}, "probe": exec_info["auto_probe"]}
    record["schema_version"] = 2
    return record


@lru_cache(maxsize=None)
def _fields(cls: type) -> dict[str, Any]:
    """A TypedDict's declared fields with their types (``Required`` unwrapped)."""
    return {k: _unwrap(v) for k, v in get_type_hints(cls, include_extras=True).items()}


@lru_cache(maxsize=None)
def _required(cls: type) -> tuple[str, ...]:
    # computed from the hints: with postponed annotations Python 3.11's __required_keys__ misses Required[...]
    return tuple(k for k, v in get_type_hints(cls, include_extras=True).items() if get_origin(v) is Required)


def _unwrap(hint: Any) -> Any:
    return get_args(hint)[0] if get_origin(hint) in (Required, NotRequired) else hint


def _is_typeddict(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__annotations__")


@lru_cache(maxsize=None)
def _checker(hint: Any) -> Callable[[Any], bool]:
    """A fast yes/no test for ``hint``, built once per type; :func:`_check` explains a no."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return lambda v: True
    if origin in (Union, types.UnionType):
        options = [_checker(a) for a in args]
        return lambda v: any(c(v) for c in options)
    if origin is Literal:
        return lambda v: v in args
    if _is_typeddict(hint):
        fields = {k: _checker(t) for k, t in _fields(hint).items()}
        required = _required(hint)
        return lambda v: (isinstance(v, dict) and all(k in v for k in required)
                          and all(c(v[k]) for k, c in fields.items() if k in v))
    if origin is list:
        item = _checker(args[0])
        return lambda v: isinstance(v, list) and all(map(item, v))
    if origin is dict:
        item = _checker(args[1])
        return lambda v: isinstance(v, dict) and all(map(item, v.values()))
    if hint is type(None):
        return lambda v: v is None
    if hint is float:
        return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if hint is int:
        return lambda v: isinstance(v, int) and not isinstance(v, bool)
    return lambda v: isinstance(v, hint)


def _check(value: Any, hint: Any, where: str) -> str | None:
    """Why ``value`` is not a ``hint`` (naming the field path), or None."""
    origin = get_origin(hint)
    if _checker(hint)(value):
        return None
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is not None and len(options) == 2 and type(None) in options:  # T | None: explain the T
            return _check(value, next(o for o in options if o is not type(None)), where)
        return _wrong(value, hint, where)
    if origin is Literal:
        return f"field '{where}' is {value!r}, expected one of {get_args(hint)}"
    if _is_typeddict(hint):
        if not isinstance(value, dict):
            return _wrong(value, hint, where)
        missing = [k for k in _required(hint) if k not in value]
        if missing:
            return f"field '{_join(where, missing[0])}' is missing"
        for key, field_type in _fields(hint).items():
            if key in value and (problem := _check(value[key], field_type, _join(where, key))):
                return problem
        return None
    if origin is list:
        if not isinstance(value, list):
            return _wrong(value, hint, where)
        (item,) = get_args(hint)
        return next((p for i, v in enumerate(value) if (p := _check(v, item, f"{where}[{i}]"))), None)
    if origin is dict:
        if not isinstance(value, dict):
            return _wrong(value, hint, where)
        _, item = get_args(hint)
        return next((p for k, v in value.items() if (p := _check(v, item, _join(where, str(k))))), None)
    return _wrong(value, hint, where)


def _wrong(value: Any, hint: Any, where: str) -> str:
    return f"field '{where}' is {_type_name(type(value))}, expected {_type_name(hint)}"


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    if get_origin(hint) in (Union, types.UnionType):
        options = [h for h in get_args(hint) if h is not int or float not in get_args(hint)]  # int | float: a number
        return " or ".join(_type_name(h) for h in options)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false", list: "a list", dict: "an object"}
    if get_origin(hint) in (list, dict):
        return names[get_origin(hint)]
    if isinstance(hint, type) and issubclass(hint, dict):
        return "an object"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


# ---------------------------------------------------------------------------------------------------------
# Storage


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


def stamp(record: Record) -> Record:
    """A copy of ``record`` with ``schema_version``, ``srbench_version``, ``created`` (ISO-8601, UTC) and ``id``
    (uuid4 hex) added unless present: what :func:`write_record` stores, so a ``--json`` copy can be identical."""
    full: Any = dict(record)
    full.setdefault("schema_version", SCHEMA_VERSION)
    full.setdefault("srbench_version", __version__)
    full.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="microseconds"))
    full.setdefault("id", uuid.uuid4().hex)
    return full


def write_record(record: Record, results_dir: Path) -> Path:
    """Store one run record (stamped as :func:`stamp` does) and return its path; the caller's dict is not modified."""
    kind = record.get("kind")
    if kind not in KINDS:
        raise ResultsError(f"cannot store a record of kind {kind!r}: expected one of {', '.join(KINDS)}")
    full = stamp(record)
    path = Path(results_dir) / kind / _record_filename(full)
    atomic_write_json(path, full)
    return path


def load_records(results_dir: Path) -> tuple[list[Record], list[str]]:
    """Read every record below ``results_dir``, oldest first, upgraded to the current schema and validated;
    unusable files (unreadable, corrupt JSON, wrong version, a field of the wrong type) become warnings.

    Raises:
        ResultsError: the folder is missing or holds no record files at all.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ResultsError(f"results folder {root} does not exist: {_HOW_TO_RECORD}")
    paths = sorted(p for p in root.rglob("*.json") if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise ResultsError(f"no records in {root}: {_HOW_TO_RECORD}")
    records: list[Record] = []
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


def _read_record(path: Path) -> tuple[Any, str | None]:
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
    if not isinstance(version, int) or isinstance(version, bool) or not OLDEST_READABLE <= version <= SCHEMA_VERSION:
        fix = "upgrade srbench" if isinstance(version, int) and version > SCHEMA_VERSION else "re-run to rewrite it"
        return {}, f"schema version {version!r} is incompatible (this srbench reads {OLDEST_READABLE} to {SCHEMA_VERSION}): {fix}"
    record = upgrade(record)
    problem = validate(record)
    if problem is not None:
        return {}, f"{problem}; fix or delete the file, or re-run the command that made it"
    return record, None


def _record_filename(record: dict) -> str:
    parts = [f"{safe_name(str(record.get('model', 'model')))}-x{safe_name(str(record.get('scale', '')))}"]
    if record.get("dataset"):
        parts.append(safe_name(str(record["dataset"])))
    try:
        stamp = datetime.fromisoformat(str(record["created"])).strftime("%Y%m%dT%H%M%S")
    except ValueError as e:
        raise ResultsError(f"record 'created' is not an ISO-8601 time: {record['created']!r}") from e
    parts += [stamp, safe_name(str(record["id"]))[:8]]
    return "-".join(parts) + ".json"


def safe_name(name: str) -> str:
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
