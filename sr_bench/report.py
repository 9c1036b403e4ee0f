"""Challenge tables built from run records, rendered the way NTIRE's ``results.txt`` is (and as md/csv/json/rich).

How records become rows:

- A row is one (model, scale, protocol, device, exec): runtimes measured under different protocols, on different
  devices or in different execution modes (``exec.label``, e.g. ``eager``, ``bf16+channels_last``) are never mixed
  in one row. A setup value shared by every row is named once in the caption; one that differs gets a column
  (``Scale``/``Protocol``/``Device``/``Exec``) after ``Model``.
- Per row and split (val, test), the newest *complete, untiled* eval record is used; failing that the newest
  complete tiled one (its tiling named in the Notes column and the caption). A partial record (``--limit``,
  skipped images, a half-downloaded set) is used only with ``allow_partial=True``, and is then named the same
  way; without it the cells stay empty and a note says why. Mem is the val record's peak memory, as in the
  challenge.
- Params, FLOPs, Acts and Conv come from the newest profile record of the same (model, scale) at the table's
  input size (``size``, 256x256 by default as the challenge counts, batch 1); complexity does not depend on
  device, protocol or execution mode but does on the input size, so profiles of other sizes are left out
  with a note naming them (report them with another ``size``).
- A cell with no measurement behind it is ``None`` in the table and ``-`` when rendered; nothing is invented.
- A row whose runtimes were measured under a fair-timing warning (``gpu_conditions.warnings`` in its eval record,
  or any rank's ``shards[].gpu_conditions.warnings`` in a torchrun eval: clocks dropped, thermal/power throttling,
  another process on the GPU, not in P0) gets ``GPU_MARK`` after the model name and a note naming the warning;
  csv/json get a ``GPU warning`` column.
- Rows are ordered by when the model was first recorded (``order="created"``), which is how the official
  ``results.json`` orders its models (insertion order of their first run); ``name``, ``psnr``, ``time`` and
  ``score`` orders are available too.
- The table keeps raw floats (already in the column's unit: M, G, ms, MiB); only renderers round.

Example::

    records, warnings = load_records(Path("results"))
    table = build_table(records, val="div2k-valid", test=None, flops="ntire2023")
    print(render(table, "txt"), end="")
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from sr_bench.errors import ResultsError, UsageError
from sr_bench.results import (
    EvalRecord,
    ProfileRecord,
    Record,
    eval_coverage,
    gpu_warnings,
    is_partial,
    load_records,
    record_time,
)
from sr_bench.sizes import size_text

MISSING = "-"
GPU_MARK = " (!)"  # after the model name: its runtime was measured under a GPU warning
FLOPS_CONVENTIONS = ("ntire2023", "fvcore", "full")
FLOPS_DESCRIPTIONS = {
    "ntire2023": "module hooks as in NTIRE 2022/2023",
    "fvcore": "fvcore as in NTIRE 2024+",
    "full": "srbench: fvcore plus the ops it leaves at 0",
}
EXTRAS = ("ssim", "y", "runtime-stats", "flops-all")
FORMATS = ("txt", "md", "csv", "json")
ORDERS = ("created", "name", "psnr", "time", "score")
SUFFIX_FORMATS = {".txt": "txt", ".md": "md", ".csv": "csv", ".json": "json"}
# What must match for two runtimes to be comparable; each is a row key beside the model.
SETUP_HEADERS = {"scale": "Scale", "protocol": "Protocol", "device": "Device", "exec": "Exec"}
CHALLENGE_SIZE = (256, 256)  # the LR input size NTIRE counts complexity at
SPLITS = ("val", "test")


@dataclass(frozen=True)
class ScoreRule:
    """One year's NTIRE ESR ranking formula: weights of exp(2·x/x_baseline) for runtime, FLOPs, params."""

    year: int
    runtime: float
    flops: float
    params: float
    official_baseline: str
    gate_val: float = 26.90  # dB on the valid split; below it a model is not ranked
    gate_test: float = 26.99  # dB on the test split


SCORES = {
    2024: ScoreRule(2024, 0.7, 0.15, 0.15, "RLFN"),
    2025: ScoreRule(2025, 0.7, 0.15, 0.15, "EFDN"),
    2026: ScoreRule(2026, 0.8, 0.1, 0.1, "SPAN"),
}


@dataclass(frozen=True)
class Column:
    """One table column: the row key holding its raw value, the header, and how renderers format it."""

    key: str
    header: str
    spec: str = "2.2f"  # format spec for a present value (the official results.txt specs)
    width: int = 10  # txt field width: the official file pads every field to it, then adds a tab

    def text(self, value: Any) -> str:
        """The rendered cell: ``-`` when there is no value, ``pass``/``fail`` for a gate."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING
        if isinstance(value, bool):
            return "pass" if value else "fail"
        return format(value, self.spec)


@dataclass
class ChallengeTable:
    """Rows of raw values keyed by column key, plus what a reader needs to interpret them."""

    columns: list[Column]
    rows: list[dict[str, Any]]
    val: str | None
    test: str | None
    flops: str
    setups: dict[str, list]  # distinct values of each setup key over the rows (None left out)
    size: tuple[int, int] = CHALLENGE_SIZE  # input size of the profiles behind the complexity columns
    score: ScoreRule | None = None
    baseline: str | None = None
    notes: list[str] = field(default_factory=list)  # non-fatal problems met while building

    @property
    def has_test(self) -> bool:
        return any(c.key == "test_psnr" for c in self.columns)

    @property
    def runtime_key(self) -> str:
        """The runtime the score uses: Ave Time when a test split exists, else Val Time."""
        return "ave_time_ms" if self.has_test else "val_time_ms"

    def caption(self) -> str:
        """One line naming everything the numbers depend on."""
        scales, execs = self.setups["scale"], self.setups["exec"]
        parts = [
            "x" + "/".join(str(s) for s in scales) if scales else None,
            f"val: {self.val}" if self.val else None,
            f"test: {self.test}" if self.has_test else None,
            f"FLOPs: {self.flops} ({FLOPS_DESCRIPTIONS[self.flops]}; 1 MAC = 1 FLOP) at {size_text(self.size)} input",
            f"protocol: {self._setup_text('protocol')}",
            f"device: {self._setup_text('device')}",
            f"exec: {self._setup_text('exec')}" if execs else None,
            *self._eval_marks(),
        ]
        if self.score is not None:
            s = self.score
            runtime = "Ave Time" if self.has_test else "Val Time"
            parts.append(
                f"score {s.year} vs {self.baseline}: {s.runtime:g}·runtime ({runtime}) + {s.flops:g}·FLOPs"
                f" + {s.params:g}·params, each exp(2·x/x_baseline); lower is better"
            )
        return "; ".join(p for p in parts if p)

    def _eval_marks(self) -> list[str]:
        """Caption parts naming every row whose eval was tiled or partial (the Notes column says which)."""
        marks = []
        for key, what in (("tile", "tiled eval"), ("coverage", "partial eval (--allow-partial)"),
                          ("runtime_mixed", "runtime not comparable, time left empty")):
            used = [f"{row['model']} {split} ({row[f'{split}_{key}']})" for row in self.rows for split in SPLITS
                    if row.get(f"{split}_{key}")]
            if used:
                marks.append(f"{what}: {', '.join(used)}")
        return marks

    def _setup_text(self, key: str) -> str:
        if any(c.key == key for c in self.columns):
            return "per row"
        return ", ".join(map(str, self.setups[key])) or "unknown"


def load_table(results_dir: Path, **options: Any) -> tuple[ChallengeTable, list[str]]:
    """Load the records below ``results_dir`` and build the table; returns it with every warning.

    ``options`` are those of :func:`build_table`.
    """
    records, warnings = load_records(results_dir)
    if not records:
        more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
        raise ResultsError(f"no usable records in {results_dir}: {warnings[0]}{more}")
    table = build_table(records, **options)
    return table, warnings + table.notes


def build_table(
    records: Sequence[Record],
    *,
    val: str | None = "ntire-valid",
    test: str | None = "ntire-test",
    flops: str = "fvcore",
    extras: Iterable[str] = (),
    score: int | None = None,
    baseline: str | None = None,
    order: str = "created",
    size: tuple[int, int] = CHALLENGE_SIZE,
    allow_partial: bool = False,
) -> ChallengeTable:
    """Build the challenge table from profile and eval records (see the module docstring for the rules)."""
    extras = _check_options(flops, extras, score, baseline, order)
    evals: list[EvalRecord] = [r for r in records if r["kind"] == "eval" and r["dataset"] in (val, test)]
    all_profiles: list[ProfileRecord] = [r for r in records if r["kind"] == "profile"]
    profiles = [r for r in all_profiles if _profile_size(r) == (1, *size)]
    notes = _missing_dataset_notes(records, val, test) + _other_size_notes(all_profiles, size)
    has_test = test is not None and any(r["dataset"] == test for r in evals)

    keys = _row_keys(evals, profiles)
    rows = []
    for key in keys:
        row, row_notes = _row(key, evals, profiles, val, test, flops, allow_partial)
        rows.append(row)
        notes += row_notes
    notes += [f"{row['model']}: runtime measured under a GPU warning, marked '{GPU_MARK.strip()}': {row['gpu_warning']}"
              for row in rows if row["gpu_warning"]]
    setups = {k: _distinct(r[k] for r in rows) for k in SETUP_HEADERS}
    # A setup gets a column when measured rows differ in it ("no exec recorded" vs "bf16" counts as differing).
    measured = {_row_key(r)[1:] for r in evals}
    varying = [k for i, k in enumerate(SETUP_HEADERS) if len({key[i] for key in measured}) > 1]
    identity = [_setup_column(k, setups[k]) for k in varying]
    rule = SCORES[score] if score is not None else None
    columns = _columns(identity, has_test, extras, flops, rule is not None)
    if any(row["notes"] for row in rows):
        columns.append(Column("notes", "Notes", "s", max(len("Notes"), *(len(row["notes"] or "") for row in rows))))
    table = ChallengeTable(columns, rows, val, test, flops, setups, size, rule, baseline, notes)
    if rule is not None:
        _add_scores(table, rule, baseline)
    table.rows = _ordered(table, order, records)
    return table


def format_for_path(path: Path) -> str:
    """The output format implied by a file's suffix (``.txt``, ``.md``, ``.csv``, ``.json``)."""
    fmt = SUFFIX_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot tell the format from {path}: use a .txt/.md/.csv/.json name or pass --format")
    return fmt


def render(table: ChallengeTable, fmt: str) -> str:
    """Render as ``txt`` (the official results.txt), ``md``, ``csv`` or ``json``."""
    renderers = {"txt": render_txt, "md": render_md, "csv": render_csv, "json": render_json}
    if fmt not in renderers:
        raise UsageError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    return renderers[fmt](table)


def render_txt(table: ChallengeTable) -> str:
    """The official ``results.txt``: each field padded to its width, followed by a tab; one line per row."""
    lines = ["".join(f"{c.header:{c.width}s}\t" for c in table.columns)]
    lines += ["".join(f"{_cell(c, row):{c.width}s}\t" for c in table.columns) for row in table.rows]
    return "".join(line[:-1] + "\n" for line in lines)


def render_md(table: ChallengeTable) -> str:
    """A GitHub table under a caption line (FLOPs convention, protocol, device, datasets)."""
    cols = table.columns
    lines = [f"*{table.caption()}*", "", "| " + " | ".join(c.header for c in cols) + " |"]
    lines.append("|" + "|".join(":---" if c.spec == "s" else "---:" for c in cols) + "|")
    lines += ["| " + " | ".join(_cell(c, row).strip() for c in cols) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def render_csv(table: ChallengeTable) -> str:
    """CSV of the raw (unrounded) values with the table's headers; identity columns always included.

    Each value is written as itself: integers stay integers (``64``, not ``64.0``, even when another row has no
    value there), floats keep every digit (``repr``), a missing value is an empty field.
    """
    cols = _machine_columns(table)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.header for c in cols])
    writer.writerows([["" if row.get(c.key) is None else row.get(c.key) for c in cols] for row in table.rows])
    return buf.getvalue()


def render_json(table: ChallengeTable) -> str:
    """JSON of the raw values plus the facts in the caption, for other tools."""
    cols = _machine_columns(table)
    doc = {
        "val": table.val,
        "test": table.test if table.has_test else None,
        "flops": table.flops,
        "score": table.score.year if table.score else None,
        "baseline": table.baseline,
        "caption": table.caption(),
        "columns": {c.key: c.header for c in cols},
        "rows": [{c.key: row.get(c.key) for c in cols} for row in table.rows],
    }
    return json.dumps(doc, indent=2) + "\n"


def to_rich(table: ChallengeTable) -> RichTable:
    """A rich table for the console: same cells as txt, the baseline in bold, failed gates in red."""
    out = RichTable(caption=table.caption(), caption_justify="left", header_style="bold", box=box.SIMPLE_HEAD,
                    pad_edge=False)
    cells = [[_rich_cell(col, row) for col in table.columns] for row in table.rows]
    for i, col in enumerate(table.columns):
        # One header word per line keeps columns as narrow as their values.
        header = col.header.replace(" ", "\n")
        widest = max([len(line[i].plain) for line in cells] + [len(w) for w in header.split()])
        out.add_column(Text(header), justify="left" if col.spec == "s" else "right", vertical="bottom",
                       no_wrap=True, min_width=widest)
    for row, line in zip(table.rows, cells):
        style = "bold" if table.baseline is not None and row["model"] == table.baseline else None
        out.add_row(*line, style=style)
    # Rich squeezes a table to the console and drops columns that no longer fit; a fixed natural width keeps
    # every value whole (a cut number is a wrong number). Print it with crop=False on a narrow console.
    out.width = Console(width=10**6).measure(out).maximum
    return out


# ---------------------------------------------------------------- building


def _check_options(flops: str, extras: Iterable[str], score: int | None, baseline: str | None, order: str) -> set[str]:
    if flops not in FLOPS_CONVENTIONS:
        raise UsageError(f"unknown FLOPs convention {flops!r}: use one of {', '.join(FLOPS_CONVENTIONS)}")
    chosen = set(extras)
    if unknown := sorted(chosen - set(EXTRAS)):
        raise UsageError(f"unknown extra column(s) {', '.join(unknown)}: use any of {', '.join(EXTRAS)}")
    if score is not None and score not in SCORES:
        raise UsageError(f"unknown score year {score}: use one of {', '.join(map(str, SCORES))}")
    if score is not None and not baseline:
        official = SCORES[score].official_baseline
        raise UsageError(f"a score needs a baseline: pass --baseline MODEL ({score} used {official})")
    if baseline and score is None:
        raise UsageError("--baseline only matters with --score 2024|2025|2026 or --plot")
    if order not in ORDERS:
        raise UsageError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
    if order == "score" and score is None:
        raise UsageError("ordering by score needs --score and --baseline")
    return chosen


def _missing_dataset_notes(records: Sequence[Record], val: str | None, test: str | None) -> list[str]:
    """Point at the dataset names that do exist when a requested split has no eval record at all."""
    present = sorted({r["dataset"] for r in records if r["kind"] == "eval"})
    have = f"records have: {', '.join(present)}" if present else "there are no eval records"
    notes = []
    for name, fix in ((val, "--val NAME"), (test, "--test NAME, or --test none")):
        if name is not None and name not in present:
            notes.append(f"no eval record on dataset '{name}' ({have}); choose one with {fix}")
    return notes


def _profile_size(record: ProfileRecord) -> tuple[int, ...] | None:
    """(batch, H, W) of a profile's input, or None when the record does not say."""
    size = record.get("input_size")
    return (record.get("batch", 1), *size) if size and len(size) == 2 else None


def _other_size_notes(profiles: list[ProfileRecord], size: tuple[int, int]) -> list[str]:
    """Name the profiles left out because they were measured at another input size (or batch)."""
    others: dict[tuple, set[str]] = {}
    for r in profiles:
        if (shape := _profile_size(r)) != (1, *size):
            others.setdefault((r["model"], r["scale"]), set()).add(size_text(shape))
    return [
        f"{model} x{scale}: profile(s) at {', '.join(sorted(sizes))} left out (the table uses {size_text(size)}"
        f" input); report them with --size, or run 'srbench profile --model {model}' at {size_text(size)}"
        for (model, scale), sizes in others.items()
    ]


def _row_key(record: Record) -> tuple:
    """(model, scale, protocol, device, exec label): the runs one row may combine."""
    mode = record.get("exec")
    label = mode.get("label") if mode else None
    return record["model"], record["scale"], *(_text(v) for v in (record.get("protocol"), record.get("device"), label))


def _row_keys(evals: list[EvalRecord], profiles: list[ProfileRecord]) -> list[tuple]:
    """Every row's key; a model with only profile records gets a row with no measured setup."""
    keys = {_row_key(r) for r in evals}
    measured = {k[:2] for k in keys}
    keys |= {(r["model"], r["scale"], None, None, None) for r in profiles if (r["model"], r["scale"]) not in measured}
    return sorted(keys, key=str)


def _row(key: tuple, evals: list[EvalRecord], profiles: list[ProfileRecord], val: str | None, test: str | None,
         flops: str, allow_partial: bool) -> tuple[dict, list[str]]:
    """One table row and the notes about how its records were chosen."""
    mine = [r for r in evals if _row_key(r) == key]
    row: dict[str, Any] = {"model": key[0], **dict(zip(SETUP_HEADERS, key[1:]))}
    notes, flags, warned = [], [], []
    for split, dataset in zip(SPLITS, (val, test)):
        record, note = _choose_eval([r for r in mine if r["dataset"] == dataset], allow_partial)
        row.update(_split_values(split, record))
        warned += gpu_warnings(record) if record is not None else []
        row[f"{split}_tile"] = _tile_text(record)
        row[f"{split}_coverage"] = _coverage_text(record) if record is not None and is_partial(record) else None
        mixed = ((record or {}).get("sharding") or {}).get("runtime_not_comparable")
        row[f"{split}_runtime_mixed"] = "ranks on different devices" if mixed else None
        flags += [f"{split} {row[f'{split}_{k}']}" for k in ("coverage", "tile") if row[f"{split}_{k}"]]
        flags += [f"{split} runtime not comparable"] if mixed else []
        if note:
            notes.append(f"{key[0]}: {note} on {dataset}")
        if mixed:  # a torchrun eval over different device models: its time cell is empty on purpose
            notes.append(f"{key[0]}: no {split} time on {dataset}: {mixed}")
        if split == "val":
            row["mem_mib"] = _num(record.get("memory_mib")) if record else None
    row["notes"] = "; ".join(flags) or None
    row["ave_time_ms"] = _mean_or_none(row["val_time_ms"], row["test_time_ms"])
    row["gpu_warning"] = warned[0] if warned else None
    profile = _newest(r for r in profiles if (r["model"], r["scale"]) == key[:2])
    row.update(_complexity_values(profile, flops))
    return row, notes


def _choose_eval(records: list[EvalRecord], allow_partial: bool) -> tuple[EvalRecord | None, str | None]:
    """The record a split's cells come from, and a note when the choice needs one.

    Preference: complete and untiled, then complete and tiled; partial ones only when allowed.
    """
    complete = [r for r in records if not is_partial(r)]
    chosen = _newest(r for r in complete if not r.get("tile")) or _newest(complete)
    if chosen is not None:
        passed = [r for r in records if record_time(r) > record_time(chosen)]
        if not passed:
            return chosen, None
        kinds = sorted({"partial" if is_partial(r) else "tiled" for r in passed})
        return chosen, f"{len(passed)} newer {'/'.join(kinds)} eval record(s) left out for a complete untiled one"
    if not records:
        return None, None
    newest = _newest(records)
    assert newest is not None
    coverage = _coverage_text(newest)
    if allow_partial:
        return newest, f"using a partial eval record ({coverage}; --allow-partial)"
    return None, (f"only partial eval records (newest: {coverage}), cells left empty; re-run eval on the whole set, "
                  "or pass --allow-partial to use it")


def _coverage_text(record: EvalRecord) -> str:
    done, total = eval_coverage(record)
    return f"{done}/{total} images"


def _tile_text(record: EvalRecord | None) -> str | None:
    tile = record.get("tile") if record else None
    return f"tiled {tile['size']}, overlap {tile.get('overlap', 0)}" if tile else None


def _split_values(prefix: str, record: EvalRecord | None) -> dict[str, Any]:
    """Quality and runtime of one eval record; the runtime is the mean per-image time."""
    mean = _dict(record, "mean")
    stats = _dict(record, "runtime_ms")
    time = _num(mean.get("runtime_ms"))
    return {
        f"{prefix}_psnr": _num(mean.get("psnr_rgb")),
        f"{prefix}_ssim": _num(mean.get("ssim_rgb")),
        f"{prefix}_psnr_y": _num(mean.get("psnr_y")),
        f"{prefix}_ssim_y": _num(mean.get("ssim_y")),
        f"{prefix}_time_ms": time if time is not None else _num(stats.get("mean")),
        f"{prefix}_time_median_ms": _num(stats.get("median")),
        f"{prefix}_time_std_ms": _num(stats.get("std")),
    }


def _complexity_values(profile: ProfileRecord | None, flops: str) -> dict[str, Any]:
    counts = _dict(profile, "flops")
    values = {f"flops_{c}_g": _scaled(counts.get(c), 1e9) for c in FLOPS_CONVENTIONS}
    values["flops_g"] = values[f"flops_{flops}_g"]
    values["params_m"] = _scaled(profile.get("params"), 1e6) if profile else None
    values["acts_m"] = _scaled(profile.get("activations"), 1e6) if profile else None
    conv = _num(profile.get("num_conv")) if profile else None
    values["conv"] = int(conv) if conv is not None and conv == int(conv) else None
    return values


def _columns(identity: list[Column], has_test: bool, extras: set[str], flops: str, scored: bool) -> list[Column]:
    """Columns in the official order; extras sit beside the column they refine."""
    splits = ["val", "test"] if has_test else ["val"]
    names = {"val": "Val", "test": "Test"}
    cols = [Column("model", "Model", "s", 20), *identity]
    for s in splits:
        cols.append(Column(f"{s}_psnr", f"{names[s]} PSNR"))
        if "ssim" in extras:
            cols.append(Column(f"{s}_ssim", f"{names[s]} SSIM", ".4f"))
        if "y" in extras:
            cols += [Column(f"{s}_psnr_y", f"{names[s]} PSNR-Y"), Column(f"{s}_ssim_y", f"{names[s]} SSIM-Y", ".4f")]
    for s in splits:
        cols.append(Column(f"{s}_time_ms", f"{names[s]} Time [ms]", "3.2f", 14))
        if "runtime-stats" in extras:
            cols += [
                Column(f"{s}_time_median_ms", f"{names[s]} Median [ms]", "3.2f", 16),
                Column(f"{s}_time_std_ms", f"{names[s]} Std [ms]", "3.2f", 14),
            ]
    if has_test:
        cols.append(Column("ave_time_ms", "Ave Time [ms]", "3.2f", 14))
    cols += [Column("params_m", "Params [M]", "2.3f"), Column("flops_g", "FLOPs [G]")]
    if "flops-all" in extras:
        others = [c for c in FLOPS_CONVENTIONS if c != flops]
        cols += [Column(f"flops_{c}_g", f"FLOPs {c} [G]", "2.2f", len(f"FLOPs {c} [G]")) for c in others]
    cols += [
        Column("acts_m", "Acts [M]", "2.2f", 8),
        Column("mem_mib", "Mem [M]", "2.2f", 8),
        Column("conv", "Conv", "4d", 8),
    ]
    if scored:
        cols += [
            Column("score_runtime", "Score Time", ".4f"),
            Column("score_flops", "Score FLOPs", ".4f", 11),
            Column("score_params", "Score Params", ".4f", 12),
            Column("score", "Score", ".4f"),
            Column("psnr_gate", "PSNR Gate", "s"),
        ]
    return cols


def _add_scores(table: ChallengeTable, rule: ScoreRule, baseline: str) -> None:
    """Score each row against the baseline row measured the same way (same scale, protocol, device, exec)."""
    bases = [r for r in table.rows if r["model"] == baseline]
    if not bases:
        models = ", ".join(sorted({r["model"] for r in table.rows}))
        raise ResultsError(
            f"baseline '{baseline}' is not in the records (models: {models}); pass one of them to --baseline"
        )
    parts = (("score_runtime", table.runtime_key, rule.runtime), ("score_flops", "flops_g", rule.flops),
             ("score_params", "params_m", rule.params))
    for base in bases:
        for _, key, _ in parts:
            if not base.get(key):
                raise ResultsError(f"baseline '{baseline}' has no {key} to score against: record it first")
    for row in table.rows:
        base = next((b for b in bases if _same_setup(b, row)), None)
        if base is None:
            table.notes.append(
                f"{row['model']}: not scored: no '{baseline}' record with the same scale, protocol, device and exec"
            )
        for name, key, _ in parts:
            value = row.get(key)
            row[name] = math.exp(2 * value / base[key]) if base is not None and value is not None else None
        scores = [(row[name], weight) for name, _, weight in parts]
        row["score"] = None if any(v is None for v, _ in scores) else sum(v * w for v, w in scores)
        row["psnr_gate"] = _gate(row, rule, table.has_test)


def _gate(row: dict, rule: ScoreRule, has_test: bool) -> bool | None:
    """False if any known PSNR is below its gate, True if all are known and pass, else unknown."""
    checks = [(row["val_psnr"], rule.gate_val)] + ([(row["test_psnr"], rule.gate_test)] if has_test else [])
    if any(v is not None and v < limit for v, limit in checks):
        return False
    return True if all(v is not None for v, _ in checks) else None


def _ordered(table: ChallengeTable, order: str, records: Sequence[Record]) -> list[dict]:
    rows = table.rows
    if order == "created":
        first = _first_seen(records)
        return sorted(rows, key=lambda r: (first[(r["model"], r["scale"])], r["model"]))
    if order == "name":
        return sorted(rows, key=lambda r: (r["model"], r["scale"]))
    key = {"psnr": "val_psnr", "time": table.runtime_key, "score": "score"}[order]
    sign = -1 if order == "psnr" else 1
    return sorted(rows, key=lambda r: (r.get(key) is None, sign * (r.get(key) or 0.0)))


def _first_seen(records: Sequence[Record]) -> dict[tuple, str]:
    """When each (model, scale) was first recorded, as a sortable UTC ISO string."""
    first: dict[tuple, str] = {}
    for r in records:
        key = (r["model"], r["scale"])
        when = record_time(r).isoformat()
        if key not in first or when < first[key]:
            first[key] = when
    return first


# ---------------------------------------------------------------- small helpers


def _newest(records: Iterable[Any]) -> Any:
    """The most recently created record (the last written wins a tie)."""
    ordered = sorted(records, key=record_time)
    return ordered[-1] if ordered else None


def _num(value: Any) -> float | None:
    """A measurement as a float, or None when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _scaled(value: Any, unit: float) -> float | None:
    number = _num(value)
    return None if number is None else number / unit


def _dict(record: dict | None, key: str) -> dict:
    value = record.get(key) if record else None
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _mean_or_none(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (a + b) / 2


def _distinct(values: Iterable[Any]) -> list:
    return sorted({v for v in values if v is not None}, key=str)


def _setup_column(key: str, values: list[Any]) -> Column:
    """A column for a setup value that differs between rows, wide enough for txt to stay aligned."""
    header = SETUP_HEADERS[key]
    width = max([len(header)] + [len(str(v)) for v in values])
    return Column(key, header, "" if key == "scale" else "s", width)


def _same_setup(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] for k in SETUP_HEADERS)


def _machine_columns(table: ChallengeTable) -> list[Column]:
    """The shown columns, with every setup key present (machines should not have to read the caption)."""
    shown = {c.key for c in table.columns}
    identity = [Column(k, header, "") for k, header in SETUP_HEADERS.items() if k not in shown]
    warned = [Column("gpu_warning", "GPU warning", "s")] if any(row.get("gpu_warning") for row in table.rows) else []
    return table.columns[:1] + identity + table.columns[1:] + warned


def _cell(col: Column, row: dict) -> str:
    """A rendered cell; the model name carries ``GPU_MARK`` when the row's runtime was measured under a warning."""
    text = col.text(row.get(col.key))
    return text + GPU_MARK if col.key == "model" and row.get("gpu_warning") else text


def _rich_cell(col: Column, row: dict) -> Text:
    """A cell as rich ``Text`` (never markup, so names like ``[x]`` print as they are)."""
    value = row.get(col.key)
    text = _cell(col, row).strip()
    style = "dim" if text == MISSING else "red" if value is False else ""
    return Text(text, style=style)


# ------------------------------------------------------------------------------------ official results.json

# table column -> key in the official harness's results.json (test_demo.py writes it per model, 2024+)
OFFICIAL_KEYS = {
    "val_psnr": "valid_ave_psnr",
    "test_psnr": "test_ave_psnr",
    "val_time_ms": "valid_ave_runtime",
    "test_time_ms": "test_ave_runtime",
    "params_m": "num_parameters",
    "flops_g": "flops",
    "acts_m": "activations",
    "mem_mib": "valid_memory",
    "conv": "num_conv",
}


@dataclass(frozen=True)
class OfficialDiff:
    """One (model, column) cell: the official value, srbench's, and srbench minus official."""

    model: str
    column: str
    official: float | None
    srbench: float | None

    @property
    def difference(self) -> float | None:
        return None if self.official is None or self.srbench is None else self.srbench - self.official


def read_official(path: Path) -> dict[str, dict]:
    """The official ``results.json``: model name -> its numbers (the units of the table: M, G, ms, MiB)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path} is not JSON ({exc}); pass the repository's results.json") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ResultsError(f"{path} is not an official results.json (expected {{model name: {{numbers}}}})")
    return data


def compare_official(table: ChallengeTable, official: dict[str, dict]) -> tuple[list[OfficialDiff], list[str]]:
    """Per model present in both, per column of the table that the official file has: the two values.

    Returns the cells and notes naming the models found on one side only.
    """
    headers = {c.key: c.header for c in table.columns}
    ours = {row["model"]: row for row in table.rows}
    cells = []
    for model in (m for m in official if m in ours):
        for key, official_key in OFFICIAL_KEYS.items():
            if key in headers and official_key in official[model]:
                cells.append(OfficialDiff(model, headers[key], _num(official[model][official_key]),
                                          _num(ours[model].get(key))))
    notes = [f"{m}: in the official file only" for m in official if m not in ours]
    notes += [f"{m}: measured by srbench only" for m in ours if m not in official]
    return cells, notes


def render_comparison(cells: Sequence[OfficialDiff]) -> str:
    """Tab-separated lines: model, column, official, srbench, difference (``-`` where a side has no value)."""
    def text(value: float | None) -> str:
        return MISSING if value is None else f"{value:.4f}"

    lines = ["Model\tColumn\tOfficial\tsrbench\tDiff"]
    lines += [f"{c.model}\t{c.column}\t{text(c.official)}\t{text(c.srbench)}\t"
              f"{MISSING if c.difference is None else f'{c.difference:+.4f}'}" for c in cells]
    return "\n".join(lines) + "\n"
