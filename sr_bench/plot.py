"""The PSNR-vs-runtime figure of efficient-SR papers, drawn from a challenge table.

Runtime on a log axis (efficient models span one to two orders of magnitude), PSNR up, marker *area*
proportional to FLOPs (so a model with twice the FLOPs covers twice the ink), every model labelled, the baseline
drawn in a second colour with dashed guides through it. matplotlib is optional and imported only here, on the
non-interactive Agg canvas (no display, no pyplot global state).

Example::

    warnings = plot_psnr_runtime(table, Path("psnr_runtime.png"), baseline="rfdn")
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from sr_bench.errors import SrBenchError, UsageError
from sr_bench.report import FLOPS_DESCRIPTIONS, ChallengeTable
from sr_bench.results import atomic_write_bytes

MAX_AREA = 900.0  # points² of the model with the most FLOPs (about 34 pt across)
NO_FLOPS_AREA = 30.0  # hollow marker for a model whose FLOPs are unknown
COLOR = "#3b6ea5"
BASELINE_COLOR = "#c0392b"
STYLE = {
    "font.size": 8,
    "axes.labelsize": 9,
    "axes.titlesize": 9,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
}


def plot_psnr_runtime(
    table: ChallengeTable,
    path: Path,
    baseline: str | None = None,
    *,
    split: str = "val",
    title: str | None = None,
    dpi: int = 200,
) -> list[str]:
    """Save the figure to ``path`` (format from the suffix: png, pdf, svg); returns warnings for left-out models.

    ``baseline`` defaults to the table's score baseline; ``split`` picks the val or test PSNR/runtime pair.
    """
    fmt = _format(path)
    if split not in ("val", "test") or (split == "test" and not table.has_test):
        has = "val and test" if table.has_test else "only val"
        raise UsageError(f"cannot plot split {split!r}: the table has {has}")
    baseline = baseline or table.baseline
    points, warnings = _points(table, split)
    if not points:
        raise UsageError(f"nothing to plot: no model has both PSNR and runtime on the {split} split")
    if baseline is not None and not any(p["model"] == baseline for p in points):
        warnings.append(f"baseline '{baseline}' has no {split} PSNR and runtime; plotted without it")
    mpl, Figure, FigureCanvasAgg = _matplotlib()
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(5.6, 3.8), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        _draw(ax, points, baseline)
        _size_legend(ax, points)
        dataset = table.val if split == "val" else table.test
        ax.set_xlabel(f"Runtime per image [ms] on {dataset} (log scale)")
        ax.set_ylabel(f"PSNR (RGB) on {dataset} [dB]")
        if title:
            ax.set_title(title)
        fig.text(0.0, -0.01, _caption(table), ha="left", va="top", fontsize=6.5, color="0.35", wrap=True)
        # Labels are placed in screen space, so the layout must be final (and frozen) before placing them.
        fig.canvas.draw()
        fig.set_layout_engine("none")
        _place_labels(fig, ax, points, baseline)
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())
    return warnings


def _matplotlib() -> tuple[Any, Any, Any]:
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise SrBenchError("plotting needs matplotlib: pip install 'srbench[plot]'") from e
    return matplotlib, Figure, FigureCanvasAgg


def _format(path: Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ("png", "pdf", "svg"):
        raise UsageError(f"cannot plot to {path}: use a .png, .pdf or .svg name")
    return suffix


def _points(table: ChallengeTable, split: str) -> tuple[list[dict], list[str]]:
    """One point per row with PSNR and runtime; rows lacking either become a warning."""
    points, warnings = [], []
    for row in table.rows:
        psnr, ms = row.get(f"{split}_psnr"), row.get(f"{split}_time_ms")
        if psnr is None or ms is None or ms <= 0 or not math.isfinite(psnr):
            warnings.append(f"{row['model']}: no {split} PSNR and runtime; left out of the plot")
            continue
        points.append({"model": _label(row, table), "key": row["model"], "psnr": psnr, "ms": ms,
                       "flops": row.get("flops_g")})
    top = max((p["flops"] for p in points if p["flops"]), default=None)
    for p in points:
        p["area"] = MAX_AREA * p["flops"] / top if p["flops"] and top else NO_FLOPS_AREA
        if not p["flops"]:
            warnings.append(f"{p['key']}: no FLOPs ({table.flops}); drawn as a hollow marker")
    return points, warnings


def _label(row: dict, table: ChallengeTable) -> str:
    """The model name, plus the setup values the table mixes (else two points would share one label)."""
    extra = [str(row[k]) for k in ("protocol", "device", "exec") if len(table.setups[k]) > 1 and row[k] is not None]
    return f"{row['model']} ({', '.join(extra)})" if extra else row["model"]


def _draw(ax: Any, points: list[dict], baseline: str | None) -> None:
    for p in points:
        is_base = p["key"] == baseline
        color = BASELINE_COLOR if is_base else COLOR
        filled = p["flops"] is not None and p["flops"] > 0
        ax.scatter(p["ms"], p["psnr"], s=p["area"], facecolors=color if filled else "none", alpha=0.55 if filled else 1,
                   edgecolors=color, linewidths=1.0, zorder=3)
        ax.scatter(p["ms"], p["psnr"], s=4, color=color, zorder=4)  # exact position inside a large marker
        if is_base:
            ax.axhline(p["psnr"], color=BASELINE_COLOR, lw=0.7, ls="--", alpha=0.6, zorder=1)
            ax.axvline(p["ms"], color=BASELINE_COLOR, lw=0.7, ls="--", alpha=0.6, zorder=1)
    _log_axis(ax, [p["ms"] for p in points])
    psnrs = [p["psnr"] for p in points]
    pad = 0.2 * max(max(psnrs) - min(psnrs), 0.1)  # room for the largest markers at the edges
    ax.set_ylim(min(psnrs) - pad, max(psnrs) + pad)
    ax.grid(True, which="major", color="0.88", lw=0.6)
    ax.grid(True, which="minor", axis="x", color="0.94", lw=0.4)
    ax.set_axisbelow(True)


def _log_axis(ax: Any, runtimes: list[float]) -> None:
    """Log x with plain-number ticks (5, 10, 20, 50 ms, or every 10 ms within a decade), padded for the markers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = min(runtimes), max(runtimes)
    span = max(math.log10(hi / lo), 0.3)
    ax.set_xscale("log")
    ax.set_xlim(lo / 10 ** (0.18 * span), hi * 10 ** (0.18 * span))
    # within a decade 1-2-5 ticks leave a single label; then tick every integer multiple (60, 70, 80, ...)
    subs = (1.0, 2.0, 5.0) if span >= 1 else tuple(float(k) for k in range(1, 10))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _place_labels(fig: Any, ax: Any, points: list[dict], baseline: str | None) -> None:
    """Greedy label placement: each label takes the spot around its marker that overlaps least with the
    markers and the labels placed so far (and stays inside the axes)."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    markers = [_marker_box(ax, p, fig.dpi) for p in points]
    placed: list[Any] = []
    for p in sorted(points, key=lambda q: -q["area"]):
        radius = math.sqrt(p["area"]) / 2 + 2.5
        best, best_cost = None, math.inf
        for dx, dy, ha, va in _candidates(radius):
            text = ax.annotate(
                p["model"] + (" (baseline)" if p["key"] == baseline else ""), (p["ms"], p["psnr"]),
                xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=7,
                color=BASELINE_COLOR if p["key"] == baseline else "0.15", zorder=5,
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75},
            )
            box = text.get_window_extent(renderer)
            cost = sum(_overlap(box, other) for other in placed + markers) + 50 * _outside(box, frame)
            if cost < best_cost:
                if best is not None:
                    best.remove()
                best, best_cost = text, cost
            else:
                text.remove()
            if cost == 0:
                break
        placed.append(best.get_window_extent(renderer))


def _candidates(r: float) -> list[tuple[float, float, str, str]]:
    """Offsets (points) and alignments around a marker of radius ``r``: right first, as readers expect."""
    d = r / math.sqrt(2)
    return [(r, 0, "left", "center"), (d, d, "left", "bottom"), (d, -d, "left", "top"), (-r, 0, "right", "center"),
            (-d, d, "right", "bottom"), (-d, -d, "right", "top"), (0, r, "center", "bottom"), (0, -r, "center", "top")]


def _marker_box(ax: Any, p: dict, dpi: float) -> Any:
    from matplotlib.transforms import Bbox

    x, y = ax.transData.transform((p["ms"], p["psnr"]))
    half = math.sqrt(p["area"]) / 2 * dpi / 72 * 0.8  # a little under the radius: touching a circle is fine
    return Bbox.from_extents(x - half, y - half, x + half, y + half)


def _overlap(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _outside(box: Any, frame: Any) -> float:
    return box.width * box.height - _overlap(box, frame)


def _size_legend(ax: Any, points: list[dict]) -> None:
    """Reference circles for marker area at round FLOPs values (1-2-5 steps) inside the plotted range."""
    flops = [p["flops"] for p in points if p["flops"]]
    if not flops:
        return
    top = max(flops)
    values = _nice_values(min(flops), top)
    handles = [
        ax.scatter([], [], s=MAX_AREA * v / top, facecolors=COLOR, alpha=0.55, edgecolors=COLOR, linewidths=1.0)
        for v in values
    ]
    # Spacing in font-size units, so the largest reference circle does not run into its neighbours.
    biggest = math.sqrt(MAX_AREA * values[-1] / top) / 7
    ax.legend(handles, [f"{v:g}" for v in values], title="FLOPs [G]", loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False, labelspacing=0.6 + 0.7 * biggest, borderpad=0.4 + 0.5 * biggest,
              handletextpad=0.3 + 0.5 * biggest, scatterpoints=1)


def _nice_values(lo: float, hi: float) -> list[float]:
    """Up to three 1-2-5 values in [lo, hi] (smallest, middle, largest); ``hi`` itself when none fits."""
    steps = [m * 10.0**e for e in range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1) for m in (1, 2, 5)]
    inside = [v for v in steps if lo <= v <= hi]
    if not inside:
        return [_round_2sig(hi)]
    return sorted({inside[0], inside[len(inside) // 2], inside[-1]})


def _round_2sig(value: float) -> float:
    return float(f"{value:.2g}")


def _caption(table: ChallengeTable) -> str:
    protocol, device = (", ".join(table.setups[k]) or "unknown" for k in ("protocol", "device"))
    return (f"Marker area ∝ FLOPs ({table.flops}: {FLOPS_DESCRIPTIONS[table.flops]}; 1 MAC = 1 FLOP). "
            f"Runtime: mean per image, protocol {protocol}, device {device}.")
