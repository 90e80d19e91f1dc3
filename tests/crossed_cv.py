"""The cross-validated comparison's test (the crossed CV t) computed apart from
`depthbench.report.stats`, as a general linear model: the mean squares as quadratic forms of
projections onto indicator matrices, their expectations as traces, the moment equations solved by
scipy, negative components set to zero, Var(mean) from the covariance, Satterthwaite df on the
fitted mean squares, scipy's t.

Two ways in: the cells' per-image outcomes (`from_cells`), or what a comparisons.csv row carries
(`from_csv`: its `cells` field and `image_sq`). From the file, the quadratic forms come from the
cells' sums (a projection onto indicator columns replaces each value by its level's mean, so
y'Py is the sum over levels of total² / size), and the indicator matrices from the folds' sizes,
with each repeat's folds laid over the images in order: the traces count how the levels of two
nested partitions meet, which the sizes alone fix.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg, stats


def _indicator(levels: np.ndarray) -> np.ndarray:
    return (levels[:, None] == np.unique(levels)[None, :]).astype(float)


def _projection(x: np.ndarray) -> np.ndarray:
    return x @ np.linalg.pinv(x)


def _indicators(image, train, cell) -> dict[str, np.ndarray]:
    """Each observation's image, training set (repeat, fold) and cell (repeat, fold, seed)."""
    return {"image": _indicator(image), "train": _indicator(train), "seed": _indicator(cell),
            "res": np.eye(len(image))}


def _fit(z: dict[str, np.ndarray], quad: dict[str, float], mean: float
         ) -> tuple[float, float, float, float]:
    """(mean, se, df, two-sided p) from the indicators and the quadratic forms y'Py of the
    projections onto the constant (`one`) and onto each indicator."""
    n_obs = len(z["res"])
    proj = {"one": np.full((n_obs, n_obs), 1.0 / n_obs),
            **{t: _projection(z[t]) for t in ("image", "train", "seed")}, "res": np.eye(n_obs)}
    # the four mean squares: images, training sets, seeds within a training set, within cells
    forms = {"img": ("image", "one"), "fold": ("train", "one"), "seed": ("seed", "train"),
             "w": ("res", "seed")}
    matrices = {r: proj[hi] - proj[lo] for r, (hi, lo) in forms.items()}
    sums = {r: quad[hi] - quad[lo] for r, (hi, lo) in forms.items()}
    covs = {t: m @ m.T for t, m in z.items()}
    seeds_per_fold = z["seed"].shape[1] // z["train"].shape[1]
    tests = n_obs // z["image"].shape[1]
    terms = [t for t in covs if not (t == "seed" and seeds_per_fold == 1)
             and not (t == "res" and tests == 1)]
    if seeds_per_fold == 1:  # a fold's one run: the training-set and seed terms are one
        covs["train"] = covs["train"] + covs["seed"]
    if tests == 1:  # one test per image: the image and residual terms are one
        covs["image"] = covs["image"] + covs["res"]
    rows = [r for r in forms if round(np.trace(matrices[r])) > 0
            and not (r == "img" and tests == 1)]
    dfs = np.array([np.trace(matrices[r]) for r in rows])
    ms = np.array([sums[r] for r in rows]) / dfs
    # tr(F Z Z') as an elementwise sum: both are symmetric
    a = np.array([[np.sum(matrices[r] * covs[t]) for t in terms] for r in rows]) / dfs[:, None]
    theta = np.maximum(linalg.solve(a, ms), 0.0)
    c = np.array([covs[t].sum() for t in terms]) / n_obs ** 2
    var = max(float(c @ theta), 1.0 / n_obs ** 2)
    w = linalg.solve(a.T, c * (theta > 0))
    df = var ** 2 / np.sum((w * (a @ theta)) ** 2 / dfs)
    return mean, math.sqrt(var), df, 2 * stats.t.sf(abs(mean) / math.sqrt(var), df)


def from_cells(cells) -> tuple[float, float, float, float]:
    """(mean, se, df, p) from `stats.Cell`s' per-image outcomes (A right minus B right)."""
    ids = np.unique(np.concatenate([c.images for c in cells]))
    y = np.concatenate([c.a - c.b for c in cells]).astype(float)
    image = np.concatenate([np.searchsorted(ids, c.images) for c in cells])
    folds = sorted({(c.repeat, c.fold) for c in cells})
    train = np.concatenate([np.full(c.a.size, folds.index((c.repeat, c.fold))) for c in cells])
    cell = np.concatenate([np.full(c.a.size, i) for i, c in enumerate(cells)])
    z = _indicators(image, train, cell)
    quad = {"one": y.sum() ** 2 / y.size, "res": float(y @ y),
            **{t: float(y @ _projection(z[t]) @ y) for t in ("image", "train", "seed")}}
    return _fit(z, quad, float(y.mean()))


def from_csv(cells_field: str, image_sq: int) -> tuple[float, float, float, float]:
    """(mean, se, df, p) from a comparisons.csv row's `cells`
    (`repeat:fold:seed:a_only:b_only:n_test:n_train` joined by `;`) and `image_sq`."""
    rows = [tuple(int(x) for x in part.split(":")) for part in cells_field.split(";")]
    by_fold: dict[tuple[int, int], list[tuple[int, int]]] = {}
    size: dict[tuple[int, int], int] = {}
    for r, k, _, a_only, b_only, n_test, _ in rows:
        by_fold.setdefault((r, k), []).append((a_only - b_only, a_only + b_only))
        size[r, k] = n_test
    image, train, cell = [], [], []
    start: dict[int, int] = {}
    folds = sorted(by_fold)
    for g, (r, k) in enumerate(folds):
        first = start.get(r, 0)
        start[r] = first + size[r, k]
        for _ in by_fold[r, k]:
            image.append(np.arange(first, first + size[r, k]))
            train.append(np.full(size[r, k], g))
            cell.append(np.full(size[r, k], len(cell)))
    z = _indicators(np.concatenate(image), np.concatenate(train), np.concatenate(cell))
    n_obs = len(z["res"])
    totals = [(total, sq, size[f]) for f in folds for total, sq in by_fold[f]]
    grand = sum(t for t, _, _ in totals)
    seeds = len(by_fold[folds[0]])
    quad = {"one": grand ** 2 / n_obs, "image": image_sq / (n_obs // z["image"].shape[1]),
            "train": sum(sum(t for t, _ in by_fold[f]) ** 2 / (seeds * size[f]) for f in folds),
            "seed": sum(t ** 2 / n for t, _, n in totals), "res": sum(sq for _, sq, _ in totals)}
    return _fit(z, quad, grand / n_obs)
