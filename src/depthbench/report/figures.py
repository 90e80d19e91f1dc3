"""The report's figures: PNG files drawn with matplotlib's Agg canvas (no display, no pyplot state).

Every axis reads as printed: no offset or power of ten beside the ticks (`_save` turns them off
for every figure, the "Inside the networks" ones too), a cost axis labelled "log scale" is one,
and an interval wider than the forest plot's axis ends in an arrow."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import (
    FixedFormatter,
    FixedLocator,
    MaxNLocator,
    NullLocator,
    ScalarFormatter,
)

from depthbench._io import atomic_write_bytes
from depthbench.report.stats import CONFIDENCE

# The verdict figure's colours, one per verdict, and the equivalence band's (a colour no other
# figure uses, so a screenshot test can find the figure on the page).
VERDICT_COLOURS = {"a_better": "#1f5fa8", "b_better": "#1f5fa8", "equivalent": "#2e8b3e",
                   "inconclusive": "#8a8a8a", "not_testable": "#c0392b"}
MARGIN_BAND = "#f2dfb4"
# GMACs on the cost axis are rounded to this many significant figures, and each model is drawn at
# its rounded value: models of equal cost (ResNet-18's 1.814 and SE-ResNet-18's 1.816) share a
# position, and a position is the number its tick prints.
GMACS_DIGITS = 2
COST_MARKERS = "osD^vP"  # models sharing a cost position differ in marker as well as colour
# The forest plot holds every interval unless that would widen its axis more than this many times
# over the one most rows need; the intervals past it end in an arrow and print their end.
FOREST_STRETCH = 2.0


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    _plain_ticks(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())


def _plain_ticks(fig: Figure) -> None:
    """Turn off the offset and the power of ten a linear axis may print apart from its ticks
    ("1e-5+1.813"): a reader would have to apply them to every tick label."""
    for ax in fig.get_axes():
        for axis in (ax.xaxis, ax.yaxis):
            fmt = axis.get_major_formatter()
            if isinstance(fmt, ScalarFormatter):
                fmt.set_useOffset(False)
                fmt.set_scientific(False)


def cost_position(gmacs: float) -> float:
    """Where a model sits on the cost axis: its GMACs to `GMACS_DIGITS` significant figures."""
    return float(f"{gmacs:.{GMACS_DIGITS}g}")


def learning_curves(series: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]],
                    title: str, path: Path) -> None:
    """`series[label]` = [(epochs, train_loss, val_acc) per seed]: mean line, min-max band."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for i, (label, runs) in enumerate(series.items()):
        color = f"C{i}"
        for ax, k in ((ax_loss, 1), (ax_acc, 2)):
            epochs, mean, low, high = _align(runs, k)
            if epochs.size == 0:
                continue
            ax.plot(epochs, mean, color=color, label=f"{label} (n={len(runs)})", marker="." if
                    epochs.size < 15 else None)
            if len(runs) > 1:
                ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)
    ax_loss.set(title="train loss (epoch mean)", xlabel="epoch", ylabel="loss")
    ax_acc.set(title="validation accuracy", xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    _save(fig, path)


def _align(runs, k: int):
    """Mean and min/max over seeds at each epoch that at least one seed reached."""
    by_epoch: dict[int, list[float]] = {}
    for run in runs:
        for e, v in zip(run[0], run[k]):
            if np.isfinite(v):
                by_epoch.setdefault(int(e), []).append(float(v))
    epochs = np.array(sorted(by_epoch), dtype=int)
    vals = [by_epoch[e] for e in epochs]
    return (epochs, np.array([np.mean(v) for v in vals]), np.array([np.min(v) for v in vals]),
            np.array([np.max(v) for v in vals]))


def confusion_matrix(matrix: np.ndarray, classes: list[str], title: str, path: Path) -> None:
    """Counts in each cell; colour is the row-normalised rate (recall along the diagonal)."""
    m = np.asarray(matrix, dtype=float)
    rates = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    size = max(3.5, 0.6 * n + 2)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(n), labels=classes, rotation=45, ha="right")
    ax.set_yticks(range(n), labels=classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    _save(fig, path)


def accuracy_vs_cost(points: list[tuple[str, float, float, float, float]], path: Path,
                     ylabel: str, xlabel: str = "GMACs per image") -> None:
    """`points` = (label, GMACs, mean accuracy %, low %, high %): one dot per model, at its
    `cost_position` on a logarithmic axis whose ticks are those positions."""
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    shared: dict[float, int] = {}  # models drawn so far at each position
    for i, (label, gmacs, acc, low, high) in enumerate(points):
        x = cost_position(gmacs)
        marker = COST_MARKERS[shared.get(x, 0) % len(COST_MARKERS)]
        shared[x] = shared.get(x, 0) + 1
        yerr = None
        if np.isfinite(low) and np.isfinite(high):
            yerr = [[max(acc - low, 0)], [max(high - acc, 0)]]
        ax.errorbar([x], [acc], yerr=yerr, fmt=marker, color=f"C{i % 10}", capsize=3,
                    label=label, alpha=0.85)
    ax.set_xscale("log")
    ticks = sorted(shared)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{x:g}" for x in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    pad = 1.3  # a factor: the same room on both sides of a log axis
    ax.set_xlim(ticks[0] / pad, ticks[-1] * pad)
    ax.set(xlabel=f"{xlabel} (log scale)", ylabel=ylabel,
           title=f"accuracy against compute ({CONFIDENCE:.0%} CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _save(fig, path)


@dataclass
class VerdictRow:
    """One comparison in the verdict figure: Δ = A − B with its interval and detectable
    difference, in points, and its verdict (a key of `VERDICT_COLOURS`)."""

    label: str
    delta: float
    low: float
    high: float
    mde: float
    verdict: str
    word: str


def verdict_forest(groups: list[tuple[str, list[VerdictRow]]], margin_pts: float,
                   path: Path) -> int:
    """A forest plot, one row per comparison under its question's heading: Δ and its CONFIDENCE interval,
    the ±margin band, the detectable difference (grey ticks at ±Δ detectable) and the verdict's
    colour and word. Returns the rows drawn.

    The axis holds every Δ and every interval, unless one interval would widen it more than
    `FOREST_STRETCH` times over what most rows need (a ±100-point interval would squash the
    rest): then the ends past it are drawn as arrows at the axis edge, with their value."""
    rows = [r for _, rs in groups for r in rs]
    lines = len(rows) + len(groups)
    fig = Figure(figsize=(9.0, 1.0 + 0.26 * lines), layout="constrained")
    ax = fig.subplots()
    deltas = [abs(r.delta) for r in rows if np.isfinite(r.delta)]
    ends = [abs(x) for r in rows for x in (r.low, r.high, r.mde) if np.isfinite(x)]
    most = max(2.5 * margin_pts, 1.15 * max(deltas, default=0),
               1.05 * (np.percentile(ends, 85) if ends else 1))
    every = 1.05 * max([abs(x) for r in rows for x in (r.low, r.high) if np.isfinite(x)],
                       default=0)
    lim = min(100.0, every if most < every <= FOREST_STRETCH * most else most)
    ax.axvspan(-margin_pts, margin_pts, color=MARGIN_BAND, zorder=0)
    ax.axvline(0, color="#444", linewidth=0.8, zorder=1)
    y, ticks, labels = lines, [], []
    for question, rs in groups:
        y -= 1
        ax.text(-lim, y, question, fontsize=8.5, fontweight="bold", va="center", ha="left")
        for r in rs:
            y -= 1
            _verdict_row(ax, r, y, lim)
            ticks.append(y)
            labels.append(r.label)
    ax.set_yticks(ticks, labels=labels, fontsize=8)
    ax.set_ylim(-0.7, lines - 0.3)
    ax.set_xlim(-lim, lim)
    ax.set_xlabel(f"Δ = A − B (accuracy points), {CONFIDENCE:.0%} CI", fontsize=8.5)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=[
        Line2D([], [], color=VERDICT_COLOURS["a_better"], marker="o", label="real difference"),
        Line2D([], [], color=VERDICT_COLOURS["equivalent"], marker="o", label="equivalent"),
        Line2D([], [], color=VERDICT_COLOURS["inconclusive"], marker="o", label="inconclusive"),
        Line2D([], [], color=VERDICT_COLOURS["not_testable"], marker="x", linestyle="",
               label="not testable"),
        Line2D([], [], color="#555", marker="|", linestyle="", markersize=9,
               label="±detectable Δ"),
        Patch(color=MARGIN_BAND, label=f"±{margin_pts:g} points (equivalence margin)")],
        fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, frameon=False)
    _save(fig, path)
    return len(rows)


def _verdict_row(ax, r: VerdictRow, y: float, lim: float) -> None:
    colour = VERDICT_COLOURS[r.verdict]
    if np.isfinite(r.low) and np.isfinite(r.high):
        lo, hi = max(r.low, -lim), min(r.high, lim)
        ax.plot([lo, hi], [y, y], color=colour, linewidth=2, solid_capstyle="butt", zorder=2)
        for end, value, mark, side in ((-lim, r.low, "<", 1), (lim, r.high, ">", -1)):
            if abs(value) > lim:  # clipped: an arrow at the edge, and where the interval ends
                ax.plot([end], [y], marker=mark, color=colour, markersize=9, zorder=5,
                        clip_on=False)
                ax.annotate(f"{value:+.1f}", xy=(end, y), xytext=(side * 7, 4),
                            textcoords="offset points", fontsize=7, color=colour,
                            ha="left" if side > 0 else "right", va="bottom")
    if np.isfinite(r.mde) and r.mde < lim:
        ax.plot([-r.mde, r.mde], [y, y], linestyle="", marker="|", color="#555", markersize=9,
                zorder=2)
    if np.isfinite(r.delta):
        ax.plot([r.delta], [y], marker="x" if r.verdict == "not_testable" else "o",
                color=colour, markersize=6, zorder=4)
    ax.annotate(r.word, xy=(1.02, y), xycoords=("axes fraction", "data"), fontsize=8,
                color=colour, va="center", annotation_clip=False)
