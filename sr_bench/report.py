"""Challenge tables built from run records, rendered the way NTIRE's ``results.txt`` is (and as md/csv/json/rich).

How records become rows:

- A row is one (model, scale, protocol, device, exec): runtimes measured under different protocols, on different
  devices or in different execution modes (``exec.label``, e.g. ``eager``, ``bf16+channels_last``) are never mixed
  in one row. A setup value shared by every row is named once in the caption; one that differs gets a column
  (``Scale``/``Protocol``/``Device``/``Exec``) after ``Model``.
- Per row, the newest eval record on the val dataset and the newest on the test dataset are used; Params, FLOPs,
  Acts and Conv come from the newest profile record of the same (model, scale) (complexity does not depend on
  device, protocol or execution mode). Mem is the val record's peak memory, as in the challenge.
- A cell with no measurement behind it is ``None`` in the table and ``-`` when rendered; nothing is invented.
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
from sr_bench.results import load_records, record_time

MISSING = "-"
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
            f"FLOPs: {self.flops} ({FLOPS_DESCRIPTIONS[self.flops]}; 1 MAC = 1 FLOP)",
            f"protocol: {self._setup_text('protocol')}",
            f"device: {self._setup_text('device')}",
            f"exec: {self._setup_text('exec')}" if execs else None,
        ]
        if self.score is not None:
            s = self.score
            runtime = "Ave Time" if self.has_test else "Val Time"
            parts.append(
                f"score {s.year} vs {self.baseline}: {s.runtime:g}·runtime ({runtime}) + {s.flops:g}·FLOPs"
                f" + {s.params:g}·params, each exp(2·x/x_baseline); lower is better"
            )
        return "; ".join(p for p in parts if p)

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
    records: Sequence[dict],
    *,
    val: str | None = "ntire-valid",
    test: str | None = "ntire-test",
    flops: str = "fvcore",
    extras: Iterable[str] = (),
    score: int | None = None,
    baseline: str | None = None,
    order: str = "created",
) -> ChallengeTable:
    """Build the challenge table from profile and eval records (see the module docstring for the rules)."""
    extras = _check_options(flops, extras, score, baseline, order)
    evals = [r for r in records if r.get("kind") == "eval" and r.get("dataset") in (val, test)]
    profiles = [r for r in records if r.get("kind") == "profile"]
    notes = _missing_dataset_notes(records, val, test)
    has_test = test is not None and any(r["dataset"] == test for r in evals)

    keys = _row_keys(evals, profiles)
    rows = [_row(key, evals, profiles, val, test, flops) for key in keys]
    notes += [note for key in keys for note in _partial_notes(key, evals, val, test)]
    setups = {k: _distinct(r[k] for r in rows) for k in SETUP_HEADERS}
    # A setup gets a column when measured rows differ in it ("no exec recorded" vs "bf16" counts as differing).
    measured = {_row_key(r)[1:] for r in evals}
    varying = [k for i, k in enumerate(SETUP_HEADERS) if len({key[i] for key in measured}) > 1]
    identity = [_setup_column(k, setups[k]) for k in varying]
    rule = SCORES[score] if score is not None else None
    columns = _columns(identity, has_test, extras, flops, rule is not None)
    table = ChallengeTable(columns, rows, val, test, flops, setups, rule, baseline, notes)
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
    lines += ["".join(f"{c.text(row.get(c.key)):{c.width}s}\t" for c in table.columns) for row in table.rows]
    return "".join(line[:-1] + "\n" for line in lines)


def render_md(table: ChallengeTable) -> str:
    """A GitHub table under a caption line (FLOPs convention, protocol, device, datasets)."""
    cols = table.columns
    lines = [f"*{table.caption()}*", "", "| " + " | ".join(c.header for c in cols) + " |"]
    lines.append("|" + "|".join(":---" if c.spec == "s" else "---:" for c in cols) + "|")
    lines += ["| " + " | ".join(c.text(row.get(c.key)).strip() for c in cols) + " |" for row in table.rows]
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
    cells = [[_rich_cell(col, row.get(col.key)) for col in table.columns] for row in table.rows]
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


def _missing_dataset_notes(records: Sequence[dict], val: str | None, test: str | None) -> list[str]:
    """Point at the dataset names that do exist when a requested split has no eval record at all."""
    present = sorted({str(r.get("dataset")) for r in records if r.get("kind") == "eval"})
    have = f"records have: {', '.join(present)}" if present else "there are no eval records"
    notes = []
    for name, fix in ((val, "--val NAME"), (test, "--test NAME, or --test none")):
        if name is not None and name not in present:
            notes.append(f"no eval record on dataset '{name}' ({have}); choose one with {fix}")
    return notes


def _row_key(record: dict) -> tuple:
    """(model, scale, protocol, device, exec label): the runs one row may combine."""
    mode = record.get("exec")
    label = mode.get("label") if isinstance(mode, dict) else mode
    return record["model"], record["scale"], *(_text(v) for v in (record.get("protocol"), record.get("device"), label))


def _row_keys(evals: list[dict], profiles: list[dict]) -> list[tuple]:
    """Every row's key; a model with only profile records gets a row with no measured setup."""
    keys = {_row_key(r) for r in evals}
    measured = {k[:2] for k in keys}
    keys |= {(r["model"], r["scale"], None, None, None) for r in profiles if (r["model"], r["scale"]) not in measured}
    return sorted(keys, key=str)


def _row(key: tuple, evals: list[dict], profiles: list[dict], val: str | None, test: str | None, flops: str) -> dict:
    mine = [r for r in evals if _row_key(r) == key]
    val_rec = _newest(r for r in mine if r["dataset"] == val)
    test_rec = _newest(r for r in mine if r["dataset"] == test)
    profile = _newest(r for r in profiles if (r["model"], r["scale"]) == key[:2])
    row: dict[str, Any] = {"model": str(key[0]), **dict(zip(SETUP_HEADERS, key[1:]))}
    row.update(_split_values("val", val_rec))
    row.update(_split_values("test", test_rec))
    row["ave_time_ms"] = _mean_or_none(row["val_time_ms"], row["test_time_ms"])
    row["mem_mib"] = _num(val_rec.get("memory_mib")) if val_rec else None
    row.update(_complexity_values(profile, flops))
    return row


def _partial_notes(key: tuple, evals: list[dict], val: str | None, test: str | None) -> list[str]:
    """Flag a chosen eval record that covers only part of its dataset (--limit, unreadable images)."""
    notes = []
    for dataset in dict.fromkeys(d for d in (val, test) if d is not None):
        record = _newest(r for r in evals if _row_key(r) == key and r["dataset"] == dataset)
        if record is None:
            continue
        done, total = len(record.get("images") or []), _dict(record, "data").get("images_in_set")
        if isinstance(total, int) and 0 < done < total:
            notes.append(f"{key[0]}: the {dataset} record covers {done} of {total} images; re-run eval on the whole set")
    return notes


def _split_values(prefix: str, record: dict | None) -> dict[str, Any]:
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


def _complexity_values(profile: dict | None, flops: str) -> dict[str, Any]:
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


def _ordered(table: ChallengeTable, order: str, records: Sequence[dict]) -> list[dict]:
    rows = table.rows
    if order == "created":
        first = _first_seen(records)
        return sorted(rows, key=lambda r: (first[(r["model"], r["scale"])], r["model"]))
    if order == "name":
        return sorted(rows, key=lambda r: (r["model"], r["scale"]))
    key = {"psnr": "val_psnr", "time": table.runtime_key, "score": "score"}[order]
    sign = -1 if order == "psnr" else 1
    return sorted(rows, key=lambda r: (r.get(key) is None, sign * (r.get(key) or 0.0)))


def _first_seen(records: Sequence[dict]) -> dict[tuple, str]:
    """When each (model, scale) was first recorded, as a sortable UTC ISO string."""
    first: dict[tuple, str] = {}
    for r in records:
        key = (str(r.get("model")), r.get("scale"))
        when = record_time(r).isoformat()
        if key not in first or when < first[key]:
            first[key] = when
    return first


# ---------------------------------------------------------------- small helpers


def _newest(records: Iterable[dict]) -> dict | None:
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
    return table.columns[:1] + identity + table.columns[1:]


def _rich_cell(col: Column, value: Any) -> Text:
    """A cell as rich ``Text`` (never markup, so names like ``[x]`` print as they are)."""
    text = col.text(value).strip()
    style = "dim" if text == MISSING else "red" if value is False else ""
    return Text(text, style=style)
