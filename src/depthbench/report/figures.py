"""The report's figures: PNG files drawn with matplotlib's Agg canvas (no display, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter

from depthbench._io import atomic_write_bytes


def _save(fig: Figure, path: Path) -> None:
    import io

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())


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
                     ylabel: str) -> None:
    """`points` = (label, GMACs, mean accuracy %, low %, high %): one dot per model."""
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for i, (label, gmacs, acc, low, high) in enumerate(points):
        yerr = None
        if np.isfinite(low) and np.isfinite(high):
            yerr = [[max(acc - low, 0)], [max(high - acc, 0)]]
        ax.errorbar([gmacs], [acc], yerr=yerr, fmt="o", color=f"C{i % 10}", capsize=3,
                    label=label)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="GMACs per image (log scale)", ylabel=ylabel,
           title="accuracy against compute (95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    _save(fig, path)
