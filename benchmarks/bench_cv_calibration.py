"""Calibration and power of the cross-validated comparison (`report.stats.compare_cells`, the
crossed CV t) against the alternatives, under two generative models of per-image outcomes.

- `learner`: real learners on ELPV trained on a study's own folds
  (`depthbench.testing.calibration.LearnerStudy`: the learner and why A and B are equally good).
- `irt_cv`: the item-response model of `depthbench.testing.calibration.irt_model` extended to
  folds: a run-to-run shift of the logit per (repeat, fold, seed) cell (sd `shift`).

The report's test is compared with the naive t over the cells' differences (J - 1 df), McNemar's
test on the pooled predictions, and the corrected repeated k-fold t (Nadeau & Bengio's variance
factor 1/J + n_test/n_train, J - 1 df). The power table sets the single split (the quick study's
test images) against cross-validation at equal runs. The suite runs a small version
(tests/test_cv_stats.py); BENCHMARKS.md quotes this module's figures
(`python -m benchmarks --only bench_cv_calibration`).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from depthbench.data.folds import make_folds
from depthbench.report import stats as S
from depthbench.testing.calibration import (
    CV_METHODS,
    N_IMAGES,
    VAL,
    LearnerStudy,
    cv_reject,
    elpv_features,
    irt_model,
    sufficient,
)

HOLM_M = 21  # the quick study's family of comparisons
ELPV_CLASSES = (1508, 295, 106, 715)  # images per class on ELPV
DESIGNS = ((5, 1), (5, 2), (10, 1), (10, 3))  # folds x repeats
SEEDS = (1, 3)
# each grid is trained once per simulated study; the designs above are its leading repeats/seeds
GRIDS = ((5, 2, 3), (10, 3, 3))


# ------------------------------------------------------------------------------------ learner
def learner(sims: int, n_images: int = 0, jitters=(0.0,), split_seeds: int = 0,
            grids=GRIDS, first: int = 0):
    """Simulated learner studies: {grid: (d[jitter, sim, r, s, i], fold[sim, r, i])} and, with
    `split_seeds`, the single split's d[jitter, sim, s, i]."""
    feats = elpv_features()
    cv = {g: ([], []) for g in grids}
    split = []
    for i in range(first, first + sims):
        study = LearnerStudy(i, feats, n_images, jitters)
        for g in grids:
            d, fold = study.cv(*g)
            cv[g][0].append(d)
            cv[g][1].append(fold)
        if split_seeds:
            split.append(study.split(split_seeds))
    out = {g: (np.stack(ds, axis=1), np.stack(fs)) for g, (ds, fs) in cv.items()}
    return out, (np.stack(split, axis=1) if split_seeds else None)


# -------------------------------------------------------------------------------- item response
def class_labels(counts=ELPV_CLASSES) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


def irt_cv(rng, sims: int, folds: int, repeats: int, seeds: int, shift: float = 1.0,
           logit_delta: float = 0.0, fixed: float = 0.7, interaction: float = 1.0,
           labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(d[sim, repeat, seed, image], fold[sim, repeat, image]) under the item-response model, with
    each (repeat, fold, seed) cell's runs shifted by their own draw; `logit_delta` adds to A's
    logit (a true difference on the images that are not fixed)."""
    labels = class_labels() if labels is None else labels
    n = labels.size
    fold = np.stack([make_folds(labels, None, folds, repeats, seed=int(rng.integers(1 << 30)))
                     for _ in range(sims)])
    idx = np.broadcast_to(fold[:, :, None, :], (sims, repeats, seeds, n))
    kind = rng.random((sims, 1, 1, n))
    theta = np.where(kind < 0.8 * fixed, 8.0, np.where(kind < fixed, -8.0,
                                                        rng.normal(0, 1, (sims, 1, 1, n))))
    right = []
    for delta in (logit_delta, 0.0):  # A, then B
        cell = rng.normal(0, shift, (sims, repeats, folds, seeds))
        shifts = np.take_along_axis(np.swapaxes(cell, 2, 3), idx, axis=3)
        logit = theta + rng.normal(0, interaction, (sims, 1, 1, n)) + shifts + delta
        right.append(rng.random(logit.shape) < 1 / (1 + np.exp(-logit)))
    return right[0].astype(np.int8) - right[1], fold


def irt_split(rng, sims: int, seeds: int, shift: float = 1.0, logit_delta: float = 0.0,
              n: int = N_IMAGES) -> np.ndarray:
    """d[sim, seed, image] of the single split under the same model (`n` test images)."""
    a, b = irt_model(rng, sims, seeds, shift=shift, logit_delta=logit_delta, n=n)
    return a.astype(np.int8) - b


# ------------------------------------------------------------------------------------- tests
def cv_tests(d: np.ndarray, fold: np.ndarray, folds: int):
    """Per study: (Δ, se, df, components) of the report's test."""
    return S.cv_batch(*sufficient(d, fold, folds))


def mde_cv(d, fold, folds, m=HOLM_M) -> tuple[np.ndarray, np.ndarray]:
    """Per study: the report's detectable difference and its test's df."""
    _, se, df, _ = cv_tests(d, fold, folds)
    return np.array([S.mde(S.Test(0, 0, 0, 1, S.CROSSED_CV, df=f, se=s), m)
                     for s, f in zip(se, df)]), df


def mde_corrected(d, fold, folds, m=HOLM_M) -> np.ndarray:
    """Per study: the detectable difference the corrected repeated k-fold t would give."""
    total, _, sizes, _ = sufficient(d, fold, folds)
    x = (total / sizes[..., None]).reshape(len(d), -1)
    n_test = sizes.mean(axis=(1, 2))
    tests = [S.corrected_t(v, n, (d.shape[-1] - n) * (1 - VAL)) for v, n in zip(x, n_test)]
    return np.array([S.mde(t, m) for t in tests])


def mde_split(d, m=HOLM_M) -> np.ndarray:
    return np.array([S.mde(S.seeds_t(x), m) for x in d])


def run_sd(d: np.ndarray, fold: np.ndarray, folds: int) -> float:
    """Run-to-run sd of a cell's Δ in points: between the seeds of one (repeat, fold)."""
    total, _, sizes, _ = sufficient(d, fold, folds)
    return float(100 * np.sqrt(np.mean(np.var(total / sizes[..., None], axis=-1, ddof=1))))


# ------------------------------------------------------------------------------------- tables
def generators(sims: int, quick: bool):
    """[(name, {(folds, repeats, seeds): (d, fold)}, single split d[sim, s, i] or None,
    run-to-run sd in points, the model's power-check effect)]."""
    out = []
    n_small = 400 if quick else 800
    t0 = time.perf_counter()
    full, split = learner(sims, jitters=(0.0, 0.15), split_seeds=10)
    print(f"_learner, 2,624 images: {time.perf_counter() - t0:.0f} s_\n", flush=True)
    small, _ = learner(sims, n_small, jitters=(0.0,), first=50_000)
    for j, name in enumerate(("learner, ELPV (2,624 images)",
                              "learner, ELPV, large run-to-run shifts")):
        out.append((name, {g: (d[j], f) for g, (d, f) in full.items()}, split[j]))
    out.append((f"learner, ELPV sample ({n_small} images)",
                {g: (d[0], f) for g, (d, f) in small.items()}, None))
    for shift in (0.3, 0.7, 1.0):
        rng = np.random.default_rng([int(10 * shift)])
        grids = {g: irt_cv(rng, sims, *g, shift=shift) for g in GRIDS}
        out.append((f"item response, shift {shift}", grids, irt_split(rng, sims, 10, shift)))
    return out


def calibration_table(gens) -> None:
    print("| generative model | a cell's Δ, run-to-run sd (points) | design | seeds | "
          "false positives: naive t over cells | McNemar, pooled | corrected repeated k-fold t "
          "| **report's test (crossed CV t)** | Var(Δ) across studies / report's mean SE² |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, grids, _ in gens:
        sd = run_sd(grids[GRIDS[0]][0][:, :1], grids[GRIDS[0]][1][:, :1], GRIDS[0][0])
        for folds, repeats in DESIGNS:
            grid = next(g for g in GRIDS if g[0] == folds)
            d, fold = grids[grid]
            for seeds in SEEDS:
                x, f = d[:, :repeats, :seeds], fold[:, :repeats]
                rates = [100 * cv_reject(x, f, folds, m) for m in CV_METHODS]
                mean, se, _, _ = cv_tests(x, f, folds)
                print(f"| {name} | {sd:.1f} | {folds}-fold x {repeats} | {seeds} | "
                      + " | ".join(f"{r:.1f}%" for r in rates[:-1]) + f" | **{rates[-1]:.1f}%** "
                      f"| {mean.var() / np.mean(se ** 2):.2f} |", flush=True)


def shares(comp: S.CVComponents, design: S.Design) -> str:
    """The image, run and residual terms' shares of the variance at `design`, in percent."""
    parts = []
    for keep in ((1, 0, 0, 0), (0, 1, 1, 0), (0, 0, 0, 1)):
        c = S.CVComponents(*(comp.as_array() * keep))
        parts.append(c.se_df(design)[0] ** 2 if design.folds else _split_var(c.split(), design))
    total = sum(parts)
    return " / ".join(f"{100 * p / total:.0f}" for p in parts)


def _split_var(comp: S.Components, design: S.Design) -> float:
    n, s = design.images, design.seeds
    return comp.img / n + comp.seed / s + comp.res / (n * s)


def with_split(gens):
    """[(name, d and fold of the 5-fold grid, the single split's d, the components 5-fold x 2
    with one seed measured, averaged over the simulations)] of the models with a single split."""
    out = []
    for name, grids, split in gens:
        if split is not None:
            d, fold = grids[(5, 2, 3)]
            theta = cv_tests(d[:, :2, :1], fold[:, :2], 5)[3]
            out.append((name, d, fold, split, S.CVComponents(*np.mean(theta, axis=0))))
    return out


def power_table(gens) -> None:
    print("| generative model | design (runs of each model) | median detectable Δ, points | "
          "median df | variance: image / run / residual (%) | CV / single split | "
          "the corrected k-fold t's detectable Δ instead |")
    print("|---|---|---|---|---|---|---|")
    for name, d, fold, split, comp in with_split(gens):
        for runs, repeats in ((5, 1), (10, 2)):
            x, f = d[:, :repeats, :1], fold[:, :repeats]
            cv_mde, df = mde_cv(x, f, 5)
            cv_mde, sp_mde = float(np.median(cv_mde)), float(np.median(mde_split(split[:, :runs])))
            corrected = float(np.median(mde_corrected(x, f, 5)))
            print(f"| {name} | single split, {runs} seeds ({runs}) | {100 * sp_mde:.1f} | – | "
                  f"{shares(comp, S.Design(split.shape[-1], runs))} | | |")
            print(f"| {name} | 5-fold x {repeats} ({runs}) | {100 * cv_mde:.1f} | "
                  f"{np.median(df):.0f} | {shares(comp, S.Design(d.shape[-1], 1, 5, repeats))} | "
                  f"{cv_mde / sp_mde:.2f} | {100 * corrected:.1f} |", flush=True)


def gain_table(gens) -> None:
    """Where the gain appears: the planner's detectable Δ at equal runs (single split with S
    seeds against 5-fold x S/5 and 10-fold x S/10), from the measured components."""
    print("| generative model | runs of each model | single split | 5-fold | 10-fold | "
          "5-fold / single split |")
    print("|---|---|---|---|---|---|")
    for name, d, _, split, comp in with_split(gens):
        n_all, n_test = d.shape[-1], split.shape[-1]
        for runs in (5, 10, 20, 30, 50, 100):
            sp = S.detectable(comp, S.Design(n_test, runs), HOLM_M)
            five = S.detectable(comp, S.Design(n_all, 1, 5, runs // 5), HOLM_M)
            ten = (f"{100 * S.detectable(comp, S.Design(n_all, 1, 10, runs // 10), HOLM_M):.1f}"
                   if runs >= 10 else "–")
            print(f"| {name} | {runs} | {100 * sp:.1f} | {100 * five:.1f} | {ten} | "
                  f"{five / sp:.2f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_cv_calibration", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="60 simulated studies per model")
    p.add_argument("--sims", type=int, default=1000)
    args = p.parse_args(argv)
    sims = 60 if args.quick else args.sims
    t0 = time.perf_counter()
    gens = generators(sims, args.quick)
    print("\n## Calibration of the cross-validated comparison (false positives at nominal 5%, "
          "null true)\n")
    print(f"{sims} simulated studies per model. Command: `python -m benchmarks --only "
          "bench_cv_calibration`.\n")
    calibration_table(gens)
    print("\n### Power at equal runs (detectable Δ at 80% power, Holm level for "
          f"{HOLM_M} comparisons)\n")
    power_table(gens)
    print("\n### Where the gain appears (the planner's detectable Δ from the measured "
          "components)\n")
    gain_table(gens)
    print(f"\n_{time.perf_counter() - t0:.0f} s_\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
