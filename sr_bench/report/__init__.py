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
  or any rank's ``shards[].gpu_conditions.warnings`` in a torchrun eval:
  clocks dropped, thermal/power throttling, another process on the GPU, not in P0) gets ``GPU_MARK`` after the
  model name and a note naming the warning; csv/json get a ``GPU warning`` column.
- Rows are ordered by when the model was first recorded (``order="created"``), which is how the official
  ``results.json`` orders its models (insertion order of their first run); ``name``, ``psnr``, ``time`` and
  ``score`` orders are available too.
- The table keeps raw floats (already in the column's unit: M, G, ms, MiB); only renderers round.

Data flow, one module a step: ``selection`` (which records feed a row) -> ``rows`` (their raw values) ->
``columns`` (the layout) -> ``scores`` (the year's formula) -> ``build`` (runs the steps, orders the rows) ->
``render`` (txt/md/csv/json/rich); ``table`` holds the :class:`ChallengeTable` they pass along and
``official`` sets the official ``results.json`` beside it (``--compare-official``).

Example::

    from sr_bench.report import build_table, render
    from sr_bench.results import load_records

    records, warnings = load_records(Path("results"))
    table = build_table(records, val="div2k-valid", test=None, flops="ntire2023")
    print(render(table, "txt"), end="")
"""

from sr_bench.report.build import ORDERS, build_table, load_table
from sr_bench.report.columns import EXTRAS
from sr_bench.report.official import OFFICIAL_KEYS, OfficialDiff, compare_official, read_official, render_comparison
from sr_bench.report.render import (
    FORMATS,
    SUFFIX_FORMATS,
    format_for_path,
    render,
    render_csv,
    render_json,
    render_md,
    render_txt,
    to_rich,
)
from sr_bench.report.scores import SCORES, ScoreRule
from sr_bench.report.table import (
    CHALLENGE_SIZE,
    FLOPS_CONVENTIONS,
    FLOPS_DESCRIPTIONS,
    GPU_MARK,
    MISSING,
    SETUP_HEADERS,
    SPLITS,
    ChallengeTable,
    Column,
)

__all__ = [
    "CHALLENGE_SIZE",
    "EXTRAS",
    "FLOPS_CONVENTIONS",
    "FLOPS_DESCRIPTIONS",
    "FORMATS",
    "GPU_MARK",
    "MISSING",
    "OFFICIAL_KEYS",
    "ORDERS",
    "SCORES",
    "SETUP_HEADERS",
    "SPLITS",
    "SUFFIX_FORMATS",
    "ChallengeTable",
    "Column",
    "OfficialDiff",
    "ScoreRule",
    "build_table",
    "compare_official",
    "format_for_path",
    "load_table",
    "read_official",
    "render",
    "render_comparison",
    "render_csv",
    "render_json",
    "render_md",
    "render_txt",
    "to_rich",
]
