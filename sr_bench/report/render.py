"""A :class:`ChallengeTable` as text: the official ``results.txt`` (txt), md, csv, json, or a rich table.

Rounding happens only here (each column's format spec); csv and json keep the raw values so other tools
get every digit.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from sr_bench.errors import UsageError
from sr_bench.report.table import GPU_MARK, MISSING, SETUP_HEADERS, ChallengeTable, Column

FORMATS = ("txt", "md", "csv", "json")
SUFFIX_FORMATS = {".txt": "txt", ".md": "md", ".csv": "csv", ".json": "json"}


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
