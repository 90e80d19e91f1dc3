"""The statistics the report uses: small functions over per-image outcomes.

An outcome array holds one entry per test image, 1 where a model was right and 0 where it was
wrong, in the split manifest's order, so two runs of one study pair image by image. Accuracies and
differences are fractions here; the report turns them into percentage points.

A comparison of A and B uses one method for both its interval and its test, so the two agree:
- one seed: the exact McNemar test and the exact conditional interval (`exact_paired`);
- several seeds (`seeds_t`): two t tests on the per-image, per-seed differences d[s, i], and the
  larger of their p-values (the wider of their intervals, both centred on the mean difference):
  the crossed random-effects model d = mu + image_i + seed_s + e with a Satterthwaite t
  (`crossed_t`), and the seed-level t over the seeds' mean differences on S - 1 df (`seed_t`).
  The crossed t alone rejects too often with two and three seeds when run-to-run shifts are
  large (BENCHMARKS.md, "Calibration of the paired tests"): its seed term rests on S - 1 degrees
  of freedom, and when that term happens to come out small the Satterthwaite df grows just as
  the variance is underestimated. The seed-level t is exact for that term but ignores the
  images shared by every seed. A difference both tests call real is real under either source of
  noise, and the pair never rejects more often than the better-calibrated of the two.
- cross-validation (`compare_cells`, the crossed CV t): A and B paired within each (repeat,
  fold, seed) cell, Δ over every test prediction, and the crossed model of the per-image
  differences with an image term (one image, the same in every repeat), a training-set term
  (shared by a fold's seeds), a seed term and a residual (`cv_fit`, `cv_se_df`). The fold
  results are correlated: a repeat's training sets overlap, and every repeat tests the same
  images. A t over the cells' differences ignores the second and McNemar on the pooled
  predictions ignores both; the corrected repeated k-fold t (`corrected_t`) covers them by
  inflating every term, the image term included, and rests on J - 1 df. The crossed model
  estimates the image term from all N images and the run terms from the cells, so it needs no
  inflation where the runs' overlap adds no shared shift, which real learners trained on the
  study's own folds show (BENCHMARKS.md, "Calibration of the cross-validated comparison").

The same standard error and df give the interval, TOST (`Test.tost_p`), Holm's adjusted p and the
detectable difference (`mde`). `detectable` gives the detectable difference of any design from a
comparison's components (`Components` for a single split, `CVComponents` for cross-validation;
measured or stated), and `CVComponents.smallest` the cheapest design with more seeds, repeats or
folds that would decide an open comparison: the report's "what would decide it" and the planner
call the same functions, and at the design a study ran they give its test's numbers exactly.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from scipy import optimize, stats

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.80
# "Calibrated": with no true difference, at most this share of simulated studies rejects at ALPHA
CALIBRATED_RATE = 0.07
# Method names as the report and comparisons.csv print them (the Methods section spells them out).
EXACT = "exact McNemar"  # with its exact conditional interval
CROSSED = "crossed random-effects t"  # images x seeds, Satterthwaite df
SEED = "seed-level t"  # the seeds' mean differences, S - 1 df
SEEDS = "crossed and seed-level t"  # several seeds: the larger p of the two (`seeds_t`)
SIGN = "exact sign test"  # over images, on seed-averaged differences (no variance to estimate)
CORRECTED = "corrected repeated k-fold t"  # Nadeau-Bengio variance factor (compared, not used)
CROSSED_CV = "crossed CV t"  # cross-validation: images x training sets x seeds, Satterthwaite df
T_METHODS = (CROSSED, SEED, CORRECTED, CROSSED_CV)  # a t with a standard error and df (TOST, power)
MAX_SEEDS = 20  # "what would decide it" counts seeds up to this many
# The Methods line for a cross-validated study (the design is named beside it: `Design.describe`).
CV_METHOD = (
    "Cross-validated comparisons: A and B are paired within each (repeat, fold, seed) cell (the "
    "same training and test images); Δ is the difference of their accuracies over every test "
    "prediction, and its standard error comes from a crossed random-effects model of the "
    "per-image differences, d = μ + image + training set + seed + ε, the image term shared by "
    "an image's tests in every repeat and the training-set term by a fold's seeds (method of "
    "moments, negative components set to zero, Satterthwaite degrees of freedom: the crossed CV "
    "t); the same standard error and degrees of freedom give the interval, the equivalence test, "
    "Holm's correction, the detectable difference and each model's accuracy interval.")


def wilson_ci(correct: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for `correct` out of `total` (nan, nan when total is 0)."""
    if total <= 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(int(correct), int(total)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def discordant(a_correct, b_correct) -> tuple[int, int]:
    """(b, c): images A got right and B wrong, and the reverse."""
    a, b = _outcomes(a_correct), _outcomes(b_correct)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes differ in length: {a.size} vs {b.size}")
    return int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1)))


def mcnemar_exact(a_correct, b_correct) -> tuple[int, int, float]:
    """McNemar's exact test of two models on the same images: (b, c, two-sided p)."""
    b, c = discordant(a_correct, b_correct)
    return b, c, exact_paired(b, c, len(_outcomes(a_correct))).p


def mcnemar_p(b, c):
    """Exact two-sided McNemar p for discordant counts (arrays welcome): under the null b is
    Bin(b + c, 1/2), symmetric, so the p-value is twice the smaller tail (scipy's binomtest(b,
    b + c, 0.5).pvalue, vectorised); 1 when b + c = 0."""
    b, c = np.asarray(b), np.asarray(c)
    return np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(b, c), b + c, 0.5))


@dataclass
class Test:
    """Δ = A − B with its interval and two-sided p from one method, and what the equivalence test
    and the power calculation need."""

    delta: float
    low: float
    high: float
    p: float
    method: str
    df: float = math.inf  # degrees of freedom of the t (crossed model)
    se: float = float("nan")  # standard error of Δ (crossed model)
    counts: tuple[int, int, int] = (0, 0, 0)  # (b, c, n) behind an exact method
    note: str = ""  # why a fallback was used
    parts: tuple[Test, ...] = ()  # the tests a combined method (SEEDS) takes the larger p of

    def tost_p(self, margin: float) -> float:
        """p-value of the equivalence test (TOST) that |Δ| < margin: the larger one-sided p (of
        every part, for a combined method)."""
        if self.parts:
            return max(t.tost_p(margin) for t in self.parts)
        if self.method in T_METHODS:
            lo = stats.t.sf((self.delta + margin) / self.se, self.df)
            hi = stats.t.cdf((self.delta - margin) / self.se, self.df)
            return float(max(lo, hi))
        return _box_tost_p(*self.counts, margin)


def exact_paired(b: int, c: int, n: int, confidence: float = CONFIDENCE) -> Test:
    """One seed: exact McNemar p = binomtest(b, b + c, 0.5) and the exact conditional interval.

    Given k = b + c discordant images, Δ = k/n (2π − 1) with π = P(A right | discordant); the
    Clopper–Pearson interval for π = b/k, mapped to Δ, contains 0 exactly when p ≥ 1 − confidence
    (the null π = 1/2 is symmetric, so the two-sided exact p is twice the smaller tail).
    """
    k = b + c
    if k == 0:
        # No discordant image: the conditional interval is the point 0, which reads as certainty;
        # report instead ± the exact upper bound of the discordance rate, which bounds |Δ|.
        hi = _cp(0, n, confidence)[1]
        return Test(0.0, -hi, hi, 1.0, EXACT, counts=(0, 0, n),
                    note="no discordant image: the interval is ± the bound on the discordance")
    lo, hi = _cp(b, k, confidence)
    low, high = k / n * (2 * lo - 1), k / n * (2 * hi - 1)
    return Test((b - c) / n, low, high, float(mcnemar_p(b, c)), EXACT, counts=(b, c, n))


def crossed_fit(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The crossed random-effects fit of d[..., s, i] (seeds x images, any leading batch axes):
    (mean, variance numerator nS Var(mean), Satterthwaite df, MS_img/MS_seed/MS_res stacked).

    d = mu + image_i + seed_s + e; with the two-way mean squares, Var(mu_hat) = (MS_img + MS_seed
    − MS_res) / (n S). A negative seed-variance estimate (MS_seed < MS_res) is set to zero, the
    usual truncation, which only widens the interval; the df keeps all three mean squares.
    """
    d = np.asarray(d, dtype=float)
    s, n = d.shape[-2:]
    mu = d.mean(axis=(-2, -1))
    img, seed = d.mean(axis=-2), d.mean(axis=-1)
    ms_img = s * np.sum((img - mu[..., None]) ** 2, axis=-1) / (n - 1)
    ms_seed = n * np.sum((seed - mu[..., None]) ** 2, axis=-1) / (s - 1)
    resid = d - img[..., None, :] - seed[..., :, None] + mu[..., None, None]
    ms_res = np.sum(resid ** 2, axis=(-2, -1)) / ((n - 1) * (s - 1))
    num, df = _satterthwaite(ms_img, ms_seed, ms_res, n, s)
    return mu, num, df, np.stack([ms_img, ms_seed, ms_res])


def _satterthwaite(ms_img, ms_seed, ms_res, n, s):
    """(nS Var(mu_hat), Satterthwaite df) from the three mean squares (arrays welcome)."""
    num = ms_img + np.maximum(ms_seed - ms_res, 0.0)
    den = ms_img ** 2 / (n - 1) + ms_seed ** 2 / (s - 1) + ms_res ** 2 / ((n - 1) * (s - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(den > 0, num ** 2 / np.where(den > 0, den, 1.0), np.inf)
    return num, df


def seed_fit(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The seed-level fit of d[..., s, i]: (mean, Var(mean)) from the S per-seed mean differences,
    on S − 1 df. A zero spread is read as the smallest the counts can show (one image of n in one
    seed: variance 1/(n² S)), so that seeds agreeing exactly do not make the test certain."""
    d = np.asarray(d, dtype=float)
    s, n = d.shape[-2:]
    m = d.mean(axis=-1)
    return m.mean(axis=-1), np.maximum(m.var(axis=-1, ddof=1), 1.0 / (n * n * s)) / s


def crossed_p(d: np.ndarray) -> np.ndarray:
    """Two-sided p of the crossed t for a batch d[..., s, i] (nan where there is no variance)."""
    s, n = np.shape(d)[-2:]
    mu, num, df, _ = crossed_fit(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mu / np.sqrt(num / (n * s))
    return np.where(num > 0, 2 * stats.t.sf(np.abs(t), df), np.nan)


def seed_p(d: np.ndarray) -> np.ndarray:
    """Two-sided p of the seed-level t for a batch d[..., s, i]."""
    s = np.shape(d)[-2]
    mu, var = seed_fit(d)
    return 2 * stats.t.sf(np.abs(mu) / np.sqrt(var), s - 1)


def seeds_p(d: np.ndarray) -> np.ndarray:
    """Two-sided p of `seeds_t` for a batch d[..., s, i], vectorised for the simulations (where
    the crossed t has no variance, 1 instead of `seeds_t`'s sign test: rare, and conservative)."""
    return np.maximum(np.nan_to_num(crossed_p(d), nan=1.0), seed_p(d))


def crossed_t(d: np.ndarray, confidence: float = CONFIDENCE) -> Test:
    """The crossed random-effects t on d[s, i] (seeds x images), Satterthwaite df (`crossed_fit`).
    scipy and statsmodels have no crossed random-effects t, hence these few lines."""
    d = _seeds_by_images(d)
    s, n = d.shape
    mu, num, df, _ = crossed_fit(d)
    mu, num, df = float(mu), float(num), float(df)
    if num <= 1e-12:
        # No image-level spread to estimate a variance from (e.g. every difference equal): test
        # the seed-averaged differences image by image with the exact sign test instead.
        return _sign_test(d.mean(axis=0), confidence)
    return _t_test(mu, math.sqrt(num / (n * s)), df, CROSSED, confidence)


def seed_t(d: np.ndarray, confidence: float = CONFIDENCE) -> Test:
    """The seed-level t on d[s, i]: the S per-seed mean differences, S − 1 df (`seed_fit`)."""
    d = _seeds_by_images(d)
    mu, var = seed_fit(d)
    return _t_test(float(mu), math.sqrt(float(var)), d.shape[0] - 1, SEED, confidence)


def seeds_t(d: np.ndarray, confidence: float = CONFIDENCE) -> Test:
    """Several seeds: the crossed t and the seed-level t on d[s, i], the larger p and the wider
    interval (both are centred on the mean difference, so the interval excludes 0 exactly when
    p < 1 − confidence). Why both: the module's docstring."""
    parts = (crossed_t(d, confidence), seed_t(d, confidence))
    c, s = parts
    return Test(s.delta, min(c.low, s.low), max(c.high, s.high), max(c.p, s.p), SEEDS,
                df=min(c.df, s.df), se=max(c.se, s.se) if c.method == CROSSED else s.se,
                note=c.note, parts=parts)


def compare_outcomes(a_by_seed: Sequence, b_by_seed: Sequence) -> tuple[Test, int, int, int]:
    """A vs B over the seeds both ran: (test, b summed over seeds, c summed, images per seed)."""
    if len(a_by_seed) != len(b_by_seed) or not a_by_seed:
        raise ValueError("a_by_seed and b_by_seed need one entry per seed each")
    pairs = [(_outcomes(a), _outcomes(b)) for a, b in zip(a_by_seed, b_by_seed, strict=True)]
    n = pairs[0][0].size
    if any(a.size != n or b.size != n for a, b in pairs):
        raise ValueError("paired outcomes differ in length")
    counts = [discordant(a, b) for a, b in pairs]
    b_sum, c_sum = sum(x for x, _ in counts), sum(y for _, y in counts)
    if len(pairs) == 1:
        return exact_paired(b_sum, c_sum, n), b_sum, c_sum, n
    d = np.stack([a - b for a, b in pairs])
    return seeds_t(d), b_sum, c_sum, n


def mean_ci(outcomes_by_seed: Sequence, confidence: float = CONFIDENCE
            ) -> tuple[float, float, float, str]:
    """Mean accuracy over seeds with its interval: Wilson for one seed, `seeds_t` for several
    (the same tests as the comparisons, on the outcomes instead of their differences)."""
    ys = [_outcomes(y) for y in outcomes_by_seed]
    if len(ys) == 1:
        k, n = int(ys[0].sum()), ys[0].size
        return (k / n, *wilson_ci(k, n, confidence), "Wilson") if n else (
            float("nan"), float("nan"), float("nan"), "")
    t = seeds_t(np.stack(ys), confidence)
    if t.parts[0].method != CROSSED:  # every image has the same mean (e.g. all right): no spread
        n = ys[0].size
        return (t.delta, *wilson_ci(round(t.delta * n), n, confidence), "Wilson")
    return t.delta, max(0.0, t.low), min(1.0, t.high), t.method


# ---------------------------------------------------------------------------- cross-validation
# A cross-validated comparison's per-image differences d, one for every (repeat, fold, seed) cell
# and each of the fold's test images, follow the crossed model
#     d = mu + image_i + train_(repeat, fold) + seed_(repeat, fold, seed) + e,
# where the image term is the image x architecture interaction (the same image in every repeat),
# the training-set term is shared by a fold's seeds (the same training images) and the seed term
# is a run's own. Every repeat tests every image once, so the image term shrinks with all N
# images, not with one split's; it and the two run terms are estimated from four mean squares
# (images, training sets, seeds within a training set, within cells) by the method of moments,
# negative estimates set to zero, with Satterthwaite degrees of freedom.
CV_TERMS = ("image", "train", "seed", "res")
MAX_REPEATS = 10  # "what would decide it" counts repeats up to this many...
MAX_RUNS = 100  # ... and designs up to this many runs of each model
FOLD_CHOICES = (5, 10)  # the fold counts it suggests besides the study's own


@dataclass(frozen=True)
class Cell:
    """One (repeat, fold, seed) cell of a cross-validated study: A and B trained on the same
    images and tested on the same fold. For one model's accuracy, `b` is None."""

    repeat: int
    fold: int
    seed: int
    images: np.ndarray  # study-wide ids of the fold's test images, in outcome order
    a: np.ndarray  # A's 1/0 outcomes on them
    b: np.ndarray | None  # B's
    n_train: int  # training images of the cell


@dataclass(frozen=True)
class CellCounts:
    """One cell as a comparison's row of comparisons.csv carries it (`format_cells`): the images
    A got right and B wrong (`a_only`), the reverse (`b_only`), the fold's test images and the
    cell's training images. For one model's accuracy, `a_only` counts its right answers and
    `b_only` is 0."""

    repeat: int
    fold: int
    seed: int
    a_only: int
    b_only: int
    n_test: int
    n_train: int


@dataclass(frozen=True)
class Design:
    """A design as the planner counts it. A single split (`folds` 0): `images` test images and
    `seeds` runs of each model. Cross-validation: `images` in all, `folds` x `repeats` partitions
    and `seeds` runs per (repeat, fold); `fold_sq` is the sum over (repeat, fold) of the fold's
    test images squared as a study's folds came out (0: folds of equal size)."""

    images: int
    seeds: int = 1
    folds: int = 0
    repeats: int = 1
    fold_sq: float = 0.0

    @property
    def runs(self) -> int:
        """Runs of each model."""
        return self.seeds * (self.folds * self.repeats if self.folds else 1)

    @property
    def tests(self) -> int:
        """How often each image is tested (cross-validation: repeats x seeds)."""
        return self.repeats * self.seeds

    def square_sizes(self) -> float:
        return self.fold_sq or self.repeats * self.images ** 2 / self.folds

    @property
    def name(self) -> str:
        """The design in short, e.g. "5-fold x 2 repeats, 3 seeds per fold" (cross-validation)
        or "single split, 3 seeds"."""
        if not self.folds:
            return f"single split, {self._seeds}"
        per = "" if self.seeds == 1 else f", {self._seeds} per fold"
        return f"{self.folds}-fold x {self.repeats} repeat{'' if self.repeats == 1 else 's'}{per}"

    @property
    def _seeds(self) -> str:
        return f"{self.seeds} seed{'' if self.seeds == 1 else 's'}"

    def describe(self) -> str:
        """The design in words, e.g. "5-fold x 2 repeats: every image tested twice"."""
        if not self.folds:
            return f"single split: {self.images} test images, {self._seeds}"
        times = {1: "once", 2: "twice"}.get(self.tests, f"{self.tests} times")
        return f"{self.name}: every image tested {times}"


def cv_fit(total, sq, sizes, image_sq) -> tuple[np.ndarray, np.ndarray]:
    """The crossed fit of cross-validation cells from their sufficient statistics, with any
    leading batch axes: total[..., r, k, s] = the cell's sum of d, sq[..., r, k, s] its sum of
    d², sizes[..., r, k] the fold's test images, image_sq[...] = the sum over images of the
    square of each image's total d over its R x S cells. Returns (mean d, components[..., 4] in
    `CV_TERMS` order, each >= 0; merged as `CVComponents` says when the design cannot tell two
    apart). scipy and statsmodels have no crossed model of this layout, hence these lines."""
    total, sq = np.asarray(total, dtype=float), np.asarray(sq, dtype=float)
    sizes, image_sq = np.asarray(sizes, dtype=float), np.asarray(image_sq, dtype=float)
    r, k, s = total.shape[-3:]
    n = sizes[..., 0, :].sum(axis=-1)
    np_ = n * r * s
    grand = total.sum(axis=(-3, -2, -1))
    c0 = grand ** 2 / np_
    cells = np.sum(total ** 2 / sizes[..., None], axis=(-3, -2, -1))
    folds = np.sum(total.sum(axis=-1) ** 2 / (s * sizes), axis=(-2, -1))
    ss = {"img": image_sq / (r * s) - c0, "fold": folds - c0, "seed": cells - folds,
          "w": sq.sum(axis=(-3, -2, -1)) - cells}
    a, _, dfs, rows, cols = _cv_system(n, k, r, s, np.sum(sizes ** 2, axis=(-2, -1)))
    ms = np.stack([ss[row] for row in rows], axis=-1) / dfs
    fitted = np.linalg.solve(a, ms[..., None])[..., 0]
    return grand / np_, _spread(np.maximum(fitted, 0.0), cols)


def cv_se_df(components, design: Design, measured: bool = False
             ) -> tuple[np.ndarray, np.ndarray]:
    """(standard error, Satterthwaite df) of the mean difference at `design` (cross-validation),
    given components[..., 4] in `CV_TERMS` order (arrays welcome: the simulations' batches).

    Var(mean) = sum of each component times its weight at the design; its df come from the mean
    squares the components imply at the design, weighted as the estimate weighs them. `measured`:
    the design the components were measured at, where the test drops the components it set to
    zero (the mean squares implied are then those observed, wherever no component was set to
    zero): the report's test and the planner at that design are one computation. Elsewhere every
    component is estimated, as a new study would (its estimates fall on either side of zero)."""
    return _se_df(components, design.images, design.folds, design.repeats, design.seeds,
                  design.square_sizes(), measured)


def cv_batch(total, sq, sizes, image_sq) -> tuple[np.ndarray, ...]:
    """`compare_cells` for a batch of studies (`cv_fit`'s arrays, vectorised for the
    simulations): (mean difference, standard error, df, components)."""
    mean, theta = cv_fit(total, sq, sizes, image_sq)
    r, k, s = np.shape(total)[-3:]
    sizes = np.asarray(sizes, dtype=float)
    se, df = _se_df(theta, sizes[..., 0, :].sum(axis=-1), k, r, s,
                    np.sum(sizes ** 2, axis=(-2, -1)), measured=True)
    return mean, se, df, theta


def cv_p(total, sq, sizes, image_sq) -> np.ndarray:
    """Two-sided p of `compare_cells` for a batch of studies (`cv_fit`'s arrays)."""
    mean, se, df, _ = cv_batch(total, sq, sizes, image_sq)
    return 2 * stats.t.sf(np.abs(mean) / se, df)


def _se_df(components, n, k: int, r: int, s: int, fold_sq, measured: bool
           ) -> tuple[np.ndarray, np.ndarray]:
    """`cv_se_df` on arrays: n and fold_sq may vary along the batch."""
    theta = np.asarray(components, dtype=float)
    n = np.broadcast_to(np.asarray(n, dtype=float), theta.shape[:-1])
    a, c, dfs, _, cols = _cv_system(n, k, r, s, np.broadcast_to(fold_sq, n.shape))
    th = _merge(theta, cols, r * s)
    kept = th > 0 if measured else np.ones_like(th, dtype=bool)
    w = np.linalg.solve(np.swapaxes(a, -1, -2), (c * kept)[..., None])[..., 0]
    terms = w * (a @ th[..., None])[..., 0]
    var = np.maximum(np.sum(c * th, axis=-1), 1.0 / (n * r * s) ** 2)
    den = np.sum(terms ** 2 / dfs, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(den > 0, var ** 2 / np.where(den > 0, den, 1.0), np.inf)
    return np.sqrt(var), np.maximum(df, 1.0)


def _cv_system(n, k: int, r: int, s: int, fold_sq):
    """For N = `n` images, k folds x r repeats x s seeds: the expected mean squares per unit of
    each component (a[..., row, col]), each component's weight in Var(mean) (c[..., col]), the
    rows' df, the rows (mean squares) and the columns (components, as `CV_TERMS` indices) the
    design can tell apart. One seed: the training-set and seed terms are one column; one test
    per image (r = s = 1): the image and residual terms are one, and the image mean square is
    the sum of the other two.

    Each expectation is sum over blocks B of sum over a term's levels z of |B and z|² / |B|,
    between nested partitions of the image-tests: images, (repeat, fold), cells, single tests."""
    n, q = np.asarray(n, dtype=float), np.asarray(fold_sq, dtype=float)
    p, g, j = r * s, r * k, r * k * s
    tests = n * p
    one, zero = np.ones_like(n), np.zeros_like(n)
    fg, fc = s * s * q / tests, s * q / tests  # the whole set's blocks against folds and cells
    rows = {"img": ([tests - p, n * s - fg, n - fc, n - 1], n - 1),
            "fold": ([(j - p) * one, tests - fg, n * r - fc, (g - 1) * one], (g - 1) * one),
            "seed": ([zero, zero, tests - n * r, (j - g) * one], (j - g) * one),
            "w": ([tests - j, zero, zero, tests - j], tests - j)}
    weight = [p * one / tests, fg / tests, fc / tests, one / tests]
    keep_rows = [x for x in rows if not (x == "seed" and s == 1) and not (x == "img" and p == 1)]
    cols = [i for i in range(4) if not (i == 2 and s == 1) and not (i == 3 and p == 1)]
    dfs = np.stack([rows[x][1] for x in keep_rows], axis=-1)
    a = np.stack([np.stack([rows[x][0][i] / rows[x][1] for i in cols], axis=-1)
                  for x in keep_rows], axis=-2)
    return a, np.stack([weight[i] for i in cols], axis=-1), dfs, keep_rows, cols


def _merge(theta, cols, tests):
    """The four components as the design's columns: a merged column carries both terms."""
    th = np.array(theta, dtype=float, copy=True)
    if 2 not in cols:
        th[..., 1] += th[..., 2]
    if tests == 1:
        th[..., 0] += th[..., 3]
    return th[..., cols]


def _spread(fitted, cols):
    """The design's columns back as four components (a merged column in `train` or `image`)."""
    out = np.zeros(fitted.shape[:-1] + (4,))
    out[..., cols] = fitted
    return out


@dataclass(frozen=True)
class CVComponents:
    """The crossed model's components of a cross-validated comparison, per image-test (`cv_fit`),
    and what they say about other designs. With one seed per (repeat, fold) the two run terms
    are one, kept in `train` (more repeats shrink it, more seeds alone would not); with one test
    per image the image and residual terms are one, kept in `image` (more tests would not shrink
    it). Both choices err towards asking for more."""

    image: float  # image x architecture interaction: shrinks only with more images
    train: float  # a (repeat, fold)'s shift, shared by its seeds (its training images)
    seed: float  # a run's own shift
    res: float  # per-run, per-image disagreement
    measured: Design | None = None  # the design they were measured at (`cv_components`)

    def as_array(self) -> np.ndarray:
        return np.array([self.image, self.train, self.seed, self.res])

    def se_df(self, design: Design) -> tuple[float, float]:
        """(standard error, df) of the crossed CV t at `design` (cross-validation)."""
        design = self.at(design)
        se, df = cv_se_df(self.as_array(), design, measured=design == self.measured)
        return float(se), float(df)

    def gap(self, design: Design, level: float) -> float:
        """The true distance from a bound that the test at `design` finds with POWER,
        one-sided at `level`."""
        if not design.folds:
            return self.split().gap(design, level)
        return _t_gap(*self.se_df(design), level)

    def smallest(self, delta: float, margin: float, m: int, design: Design
                 ) -> tuple[Design | None, Design | None]:
        """(the cheapest design with more seeds, repeats or folds than `design` that detects |Δ|
        with POWER at alpha/m, the cheapest that shows equivalence by TOST at alpha/m if the
        true Δ is the observed one); None where none up to `MAX_RUNS` runs would."""
        level = ALPHA / max(m, 1)
        options = sorted(_more(design), key=lambda d: (d.runs, d.seeds, d.folds))

        def first(gap, one_sided):
            return next((d for d in options if self.gap(d, one_sided) <= gap), None)

        return (first(abs(delta), level / 2) if delta else None,
                first(margin - abs(delta), level) if abs(delta) < margin else None)

    def split(self) -> Components:
        """The single split's components: its run term is the training-set and seed terms."""
        return Components(self.image, self.train + self.seed, self.res)

    def at(self, design: Design) -> Design:
        """`design`, or the measured design itself where it is the same study (its folds' own
        sizes, so that the planner gives the report's numbers)."""
        m = self.measured
        same = m is not None and (design.images, design.seeds, design.folds,
                                  design.repeats) == (m.images, m.seeds, m.folds, m.repeats)
        return m if same else design


def _more(design: Design) -> list[Design]:
    """Cross-validation designs with at least the seeds, repeats and folds of `design`, more of
    one of them, up to `MAX_RUNS` runs of each model."""
    folds = sorted({design.folds, *(k for k in FOLD_CHOICES if k > design.folds)})
    return [Design(design.images, s, k, r) for k in folds for r in range(
        design.repeats, MAX_REPEATS + 1) for s in range(design.seeds, MAX_SEEDS + 1)
        if k * r * s <= MAX_RUNS and (k, r, s) != (design.folds, design.repeats, design.seeds)]


def cell_grid(cells: Sequence[Cell]) -> tuple[list[Cell], int]:
    """The cells of the largest complete grid of repeats x seeds (every fold of every kept
    (repeat, seed) present), and how many cells it leaves out: the crossed fit needs each kept
    repeat to test every image once per seed."""
    folds = sorted({c.fold for c in cells})
    have = {(c.repeat, c.seed, c.fold) for c in cells}
    full = {(r, s) for r, s, _ in have if all((r, s, k) in have for k in folds)}
    repeats, seeds = sorted({r for r, _ in full}), sorted({s for _, s in full})
    best: tuple[int, list, list] = (0, [], [])
    for r0 in repeats:  # candidate seed sets: those complete in one repeat; keep the largest grid
        ss = [s for s in seeds if (r0, s) in full]
        rr = [r for r in repeats if all((r, s) in full for s in ss)]
        if len(rr) * len(ss) > best[0]:
            best = (len(rr) * len(ss), rr, ss)
    keep = {(r, s) for r in best[1] for s in best[2]}
    kept = [c for c in cells if (c.repeat, c.seed) in keep]
    return kept, len(cells) - len(kept)


def cell_counts(cells: Sequence[Cell]) -> tuple[list[CellCounts], int]:
    """What a comparison's row of comparisons.csv carries (`cv_test` recomputes its test from
    it): each cell's counts, and image_sq, the sum over images of the square of each image's
    total difference (A right minus B right) over its cells. For one model (`b` None): its
    right answers, and image_sq of its per-image totals."""
    ids = np.unique(np.concatenate([np.asarray(c.images) for c in cells]))
    tested: dict[tuple[int, int], list] = {}
    for c in cells:
        tested.setdefault((c.repeat, c.seed), []).append(np.asarray(c.images))
    for (r, s), parts in tested.items():
        if not np.array_equal(np.sort(np.concatenate(parts)), ids):
            raise ValueError(f"repeat {r}, seed {s}: its folds do not partition the same images "
                             "as the other cells")
    totals = np.zeros(ids.size)
    counts = []
    for c in cells:
        a = _outcomes(c.a)
        b = np.zeros_like(a) if c.b is None else _outcomes(c.b)
        if a.shape != b.shape or a.size != np.size(c.images):
            raise ValueError(f"cell (repeat {c.repeat}, fold {c.fold}, seed {c.seed}): outcomes "
                             "and images differ in length")
        np.add.at(totals, np.searchsorted(ids, np.asarray(c.images)), a - b)
        counts.append(CellCounts(c.repeat, c.fold, c.seed, int(np.sum((a == 1) & (b == 0))),
                                 int(np.sum((a == 0) & (b == 1))), a.size, int(c.n_train)))
    return counts, int(round(float(np.sum(totals ** 2))))


def cv_components(counts: Sequence[CellCounts], image_sq: int
                  ) -> tuple[float, CVComponents, Design]:
    """(mean difference, components, design) of a cross-validated comparison from its cells'
    counts (a complete grid of repeats x folds x seeds: `cell_grid`)."""
    repeats = sorted({c.repeat for c in counts})
    folds = sorted({c.fold for c in counts})
    seeds = sorted({c.seed for c in counts})
    grid = {(c.repeat, c.fold, c.seed): c for c in counts}
    if len(grid) != len(counts) or len(grid) != len(repeats) * len(folds) * len(seeds):
        raise ValueError("cross-validation cells must form a complete grid of repeats x folds x "
                         "seeds, each cell once (cell_grid keeps the largest one)")
    if len(folds) < 2:
        raise ValueError("cross-validation needs at least two folds")
    shape = (len(repeats), len(folds), len(seeds))
    total, sq, sizes = np.zeros(shape), np.zeros(shape), np.zeros(shape[:2])
    for (i, r), (j, k), (h, s) in itertools.product(*map(enumerate, (repeats, folds, seeds))):
        c = grid[r, k, s]
        total[i, j, h], sq[i, j, h] = c.a_only - c.b_only, c.a_only + c.b_only
        if h and sizes[i, j] != c.n_test:
            raise ValueError(f"repeat {r}, fold {k}: the seeds' cells hold different images")
        sizes[i, j] = c.n_test
    if len({int(x) for x in sizes.sum(axis=1)}) != 1:
        raise ValueError("every repeat must partition the same images")
    mean, theta = cv_fit(total, sq, sizes, image_sq)
    design = Design(int(sizes[0].sum()), len(seeds), len(folds), len(repeats),
                    float(np.sum(sizes ** 2)))
    return float(mean), CVComponents(*(float(x) for x in theta), measured=design), design


def cv_test(counts: Sequence[CellCounts], image_sq: int, confidence: float = CONFIDENCE
            ) -> Test:
    """The crossed CV t from a comparison's cell counts and image_sq (what comparisons.csv
    carries): Δ = (A only − B only) / image-tests, its standard error and df from `cv_se_df` at
    the design the cells make."""
    mean, comp, design = cv_components(counts, image_sq)
    se, df = comp.se_df(design)
    t = _t_test(mean, se, df, CROSSED_CV, confidence)
    t.counts = (sum(c.a_only for c in counts), sum(c.b_only for c in counts),
                design.images * design.tests)
    return t


def compare_cells(cells: Sequence[Cell], confidence: float = CONFIDENCE) -> Test:
    """A vs B over cross-validation cells: Δ = A's accuracy minus B's over every image-test, with
    the crossed CV t (`cv_test`) on the largest complete grid of cells (`cell_grid`)."""
    kept, left = cell_grid(cells)
    if not kept:
        raise ValueError("no (repeat, seed) has all its folds")
    t = cv_test(*cell_counts(kept), confidence)
    if left:
        t.note = (f"{left} cell{'' if left == 1 else 's'} outside the complete grid of repeats "
                  "x folds x seeds left out")
    return t


def accuracy_cells(cells: Sequence[Cell], confidence: float = CONFIDENCE
                   ) -> tuple[float, float, float, str]:
    """One model's accuracy over every image-test of cross-validation cells with its interval:
    the crossed CV t of `compare_cells` on the outcomes instead of their differences, clipped to
    [0, 1]."""
    kept, _ = cell_grid([Cell(c.repeat, c.fold, c.seed, c.images, c.a, None, c.n_train)
                         for c in cells])
    t = cv_test(*cell_counts(kept), confidence)
    return t.delta, max(0.0, t.low), min(1.0, t.high), t.method


def format_cells(counts: Sequence[CellCounts]) -> str:
    """A comparison's cells as one comparisons.csv field: `repeat:fold:seed:a_only:b_only:n_test:
    n_train` per cell, cells joined by `;` (`parse_cells` reads it back)."""
    return ";".join(":".join(str(int(getattr(c, f.name))) for f in fields(CellCounts))
                    for c in counts)


def parse_cells(text: str) -> list[CellCounts]:
    """The cells of a comparisons.csv field written by `format_cells`."""
    try:
        return [CellCounts(*(int(x) for x in part.split(":"))) for part in text.split(";")
                if part.strip()]
    except (TypeError, ValueError):
        raise ValueError(f"not a list of repeat:fold:seed:a_only:b_only:n_test:n_train cells: "
                         f"{text[:60]!r}") from None


def corrected_t(x: Sequence[float], n_test: float, n_train: float,
                confidence: float = CONFIDENCE) -> Test:
    """The corrected repeated k-fold t (Nadeau & Bengio 2003; Bouckaert & Frank 2004) on the J
    per-cell values x: Var(mean) = (1/J + n_test/n_train) s², J − 1 df. The second term stands
    for the correlation of cells whose training sets overlap. A zero spread is read as the
    smallest the counts can show (one image of n_test in one cell), as `seed_fit` does. Not the
    report's method (`compare_cells`): the calibration benchmark compares the two."""
    x = np.asarray(x, dtype=float)
    j = x.size
    if j < 2:
        raise ValueError("the corrected k-fold t needs at least two cells")
    var = max(float(x.var(ddof=1)), 1.0 / (n_test * n_test * j))
    se = math.sqrt((1.0 / j + n_test / n_train) * var)
    return _t_test(float(x.mean()), se, j - 1, CORRECTED, confidence)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (scipy has only BH/BY)."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return [float(x) for x in adjusted]


def mde(test: Test, m: int) -> float:
    """Minimal detectable difference: the |Δ| found with POWER by a two-sided test at the
    Holm-corrected level alpha/m (the level the smallest p must pass), given the test's spread.

    Exact McNemar (one seed): (z_a + z_b) sqrt(r / n) at the observed discordance rate r, and at
    least (z_a + z_b)^2 / n, since a difference of Δ needs at least Δ n discordant images.
    A t: (t_a + t_b) se with its df. Several seeds: the larger of its two tests' (both must
    reject). Capped at 1 (100 points): a comparison that cannot detect even that detects nothing.
    """
    return float(min(power_gap(test, ALPHA / max(m, 1) / 2), 1.0))


def power_gap(test: Test, level: float) -> float:
    """The true distance from a bound that `test`'s method, with its spread, finds with POWER,
    one-sided at `level` (uncapped; nan for an exact test without images): the larger of a
    combined method's parts (all must reject), a t's noncentrality times its se, or the exact
    McNemar's (z_level + z_power) sqrt(discordant / n²), at least (z_level + z_power)² / n."""
    if test.parts:
        return max(power_gap(t, level) for t in test.parts)
    if test.method in T_METHODS:
        return _t_gap(test.se, test.df, level)
    b, c, n = test.counts
    if not n:
        return float("nan")
    z = stats.norm.ppf(1 - level) + stats.norm.ppf(POWER)
    return float(max(z * math.sqrt((b + c) / n / n), z * z / n))


def detectable(components: Components | CVComponents, design: Design, m: int) -> float:
    """The |Δ| the report's test finds with POWER at the Holm level alpha/m at `design`,
    from a comparison's components (measured, or stated): `mde` of that design's test, capped at
    1 likewise. For the design a cross-validated study ran, it is that study's `mde` exactly."""
    return float(min(components.gap(design, ALPHA / max(m, 1) / 2), 1.0))


def images_needed(delta: float, margin: float, discordance: float, m: int) -> tuple[int, int]:
    """One seed, at this discordance rate: (images to detect a difference of |Δ| with POWER at
    alpha/m, images for TOST at alpha/m to show equivalence when the true Δ is the observed one);
    0 where no number of images would (Δ = 0 for the first, |Δ| >= margin for the second)."""
    r = max(discordance, abs(delta), 1e-9)
    level = ALPHA / max(m, 1)
    z_d = stats.norm.ppf(1 - level / 2) + stats.norm.ppf(POWER)
    z_e = stats.norm.ppf(1 - level) + stats.norm.ppf(POWER)
    n_diff = math.ceil(r * (z_d / abs(delta)) ** 2) if delta else 0
    room = margin - abs(delta)
    # with no disagreement at all, the exact bound on the disagreement rate still needs
    # log(alpha / 2m) / log(1 - room) images to fall inside the margin
    n_eq = max(math.ceil(r * (z_e / room) ** 2),
               math.ceil(math.log(level / 2) / math.log(1 - room))) if room > 0 else 0
    return n_diff, n_eq


@dataclass
class Components:
    """The crossed model's variance components of one comparison (per image and seed), and what
    they say `seeds_t` would decide with more seeds or images."""

    img: float  # image x architecture interaction: the part seeds do not shrink
    seed: float  # run-to-run shift of a seed's mean difference
    res: float  # per-run, per-image disagreement
    # where measured (`of`): (seeds, images, the report's test), so that at the measured design
    # the planner gives that test, which uses the observed mean squares where a component was
    # set to zero (and the sign test where no image-level spread was left)
    measured: tuple[int, int, Test] | None = None

    @classmethod
    def of(cls, d: np.ndarray) -> Components:
        s, n = np.shape(d)
        ms_img, ms_seed, ms_res = (float(x) for x in crossed_fit(d)[3])
        return cls(max(0.0, (ms_img - ms_res) / s), max(0.0, (ms_seed - ms_res) / n), ms_res,
                   (s, n, seeds_t(d)))

    def decides(self, gap: float, seeds: int, images: float, level: float) -> bool:
        """Whether `seeds_t` at this many seeds and images reaches POWER for a true distance
        `gap` from its bound, one-sided at `level` (both of its tests must)."""
        return gap > 0 and max(self._gaps(seeds, images, level)) <= gap

    def _gaps(self, seeds: int, images: float, level: float) -> tuple[float, float]:
        """The distances `seeds_t`'s crossed and seed-level tests find with POWER."""
        if self.measured and self.measured[:2] == (seeds, images):
            crossed, seed = self.measured[2].parts
            return power_gap(crossed, level), power_gap(seed, level)
        ms_img, ms_seed = self.res + seeds * self.img, self.res + images * self.seed
        num, df = _satterthwaite(ms_img, ms_seed, self.res, images, seeds)
        crossed = _t_gap(math.sqrt(num / (images * seeds)), float(df), level)
        seed = _t_gap(math.sqrt((self.seed + self.res / images) / seeds), seeds - 1, level)
        return crossed, seed

    def gap(self, design: Design, level: float) -> float:
        """The true distance from a bound that the report's test at `design` finds with POWER
        power, one-sided at `level`: one seed, McNemar's at the discordance the components
        imply (img + seed + res); several, the larger of `seeds_t`'s two; cross-validation, the
        crossed CV t (`cv`)."""
        if design.folds:
            return self.cv().gap(design, level)
        if design.seeds == 1:
            z = stats.norm.ppf(1 - level) + stats.norm.ppf(POWER)
            n = design.images
            return float(max(z * math.sqrt((self.img + self.seed + self.res) / n), z * z / n))
        return max(self._gaps(design.seeds, design.images, level))

    def cv(self) -> CVComponents:
        """The cross-validated components: the run term as the training-set term."""
        return CVComponents(self.img, self.seed, 0.0, self.res)

    def seeds(self, delta: float, margin: float, m: int, images: int, start: int = 2,
              limit: int = MAX_SEEDS) -> tuple[int, int]:
        """(seeds to detect |Δ| with POWER at alpha/m, seeds to show equivalence by TOST at
        alpha/m if the true Δ is the observed one) at this many images, counting from `start`
        (more than a study has, when it did not decide); 0 where `limit` would not do."""
        level = ALPHA / max(m, 1)

        def smallest(gap, one_sided):
            return next((k for k in range(max(start, 2), limit + 1)
                         if self.decides(gap, k, images, one_sided)), 0)

        return (smallest(abs(delta), level / 2) if delta else 0,
                smallest(margin - abs(delta), level))

    def images(self, delta: float, margin: float, m: int, seeds: int) -> tuple[int, int]:
        """As `seeds`, in test images at `seeds` seeds; 0 where no number of images would do
        (the run-to-run term alone is too large at that many seeds)."""
        level = ALPHA / max(m, 1)

        def smallest(gap, one_sided):
            if not self.decides(gap, seeds, 1e12, one_sided):
                return 0
            lo, hi = 2, 2
            while not self.decides(gap, seeds, hi, one_sided):
                lo, hi = hi, hi * 2
            while hi - lo > 1:  # bisect: the smallest count that decides lies in (lo, hi]
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if self.decides(gap, seeds, mid, one_sided) else (mid, hi)
            return hi

        return (smallest(abs(delta), level / 2) if delta else 0,
                smallest(margin - abs(delta), level))


def seeds_needed(d: np.ndarray, delta: float, margin: float, m: int) -> tuple[int, int]:
    """Several seeds, at this test-set size: `Components.seeds` from d[s, i]'s components, more
    than d has."""
    s, n = np.shape(d)
    return Components.of(d).seeds(delta, margin, m, n, start=s + 1)


def class_metrics(targets, predictions, k: int) -> dict:
    """Per-class recall, balanced accuracy (mean recall over classes present in the targets) and
    macro-F1 (mean over classes present in targets or predictions; F1 = 0 where undefined), the
    definitions scikit-learn uses; a few lines of numpy rather than a dependency for them."""
    t, p = np.asarray(targets, dtype=int), np.asarray(predictions, dtype=int)
    k = max(k, int(t.max(initial=-1)) + 1, int(p.max(initial=-1)) + 1)
    conf = np.zeros((k, k), dtype=int)
    np.add.at(conf, (t, p), 1)
    support, predicted, hit = conf.sum(axis=1), conf.sum(axis=0), np.diag(conf)
    recall = np.divide(hit, support, out=np.full(k, np.nan), where=support > 0)
    denom = support + predicted
    f1 = np.divide(2 * hit, denom, out=np.zeros(k), where=denom > 0)
    present = support > 0
    return {"recall": [None if np.isnan(x) else float(x) for x in recall],
            "balanced_accuracy": float(np.mean(recall[present])) if present.any() else None,
            "macro_f1": float(np.mean(f1[denom > 0])) if (denom > 0).any() else None}


DEGENERATE_SHARE = 0.90


def degenerate(targets, predictions) -> tuple[bool, int | None, float]:
    """(is degenerate, the dominant predicted class, its share of predictions): a run predicting
    one class for >= DEGENERATE_SHARE of the images when that class is < DEGENERATE_SHARE of the
    true labels."""
    t, p = np.asarray(targets, dtype=int), np.asarray(predictions, dtype=int)
    if p.size == 0:
        return False, None, float("nan")
    counts = np.bincount(p)
    top = int(counts.argmax())
    share = counts[top] / p.size
    true_share = float(np.mean(t == top)) if t.size else 0.0
    return bool(share >= DEGENERATE_SHARE and true_share < DEGENERATE_SHARE), top, float(share)


def majority(targets) -> tuple[int, int, int]:
    """(the most frequent true class, its count, the images): the majority-class baseline of a
    split, always guessing that class (the lowest index on a tie)."""
    counts = np.bincount(np.asarray(targets, dtype=int))
    top = int(counts.argmax())
    return top, int(counts[top]), int(counts.sum())


def beats_majority(correct: int, total: int, targets) -> bool:
    """Whether a run learned: the Wilson interval of its accuracy (`correct` of `total`) lies
    above the majority-class rate of the same images' true labels `targets`."""
    _, top, n = majority(targets)
    return wilson_ci(correct, total)[0] > top / n


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; nan with fewer than two values)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")


# ----------------------------------------------------------------------------------- helpers
def _cp(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Clopper–Pearson interval for k of n (0, 1 when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    ci = stats.binomtest(k, n).proportion_ci(confidence, method="exact")
    return float(ci.low), float(ci.high)


def _box_interval(b: int, k: int, n: int, confidence: float) -> tuple[float, float]:
    """An exact, unconditional bound for Δ = r (2π − 1), r the discordance rate, π = b / k: the
    extremes of Δ over the Clopper–Pearson boxes for r and π, each at half the error (Bonferroni).

    The equivalence test uses it because the conditional interval's width shrinks with k: two
    models disagreeing on few images would otherwise always look equivalent.
    """
    half = 1 - (1 - confidence) / 2
    r_lo, r_hi = _cp(k, n, half)
    p_lo, p_hi = _cp(b, k, half) if k else (0.0, 1.0)
    lo_slope, hi_slope = 2 * p_lo - 1, 2 * p_hi - 1
    low = r_hi * lo_slope if lo_slope < 0 else r_lo * lo_slope
    high = r_hi * hi_slope if hi_slope > 0 else r_lo * hi_slope
    return float(low), float(high)


def _box_tost_p(b: int, c: int, n: int, margin: float) -> float:
    """TOST p-value on the box bound: the smallest alpha whose (1 - 2 alpha) bound lies inside
    (-margin, margin), found by bisection (the bound narrows as alpha grows); 1 if none does."""
    def inside(alpha):
        low, high = _box_interval(b, b + c, n, 1 - 2 * alpha)
        return -margin < low and high < margin

    lo, hi = 1e-12, 0.4999
    if not inside(hi):
        return 1.0
    if inside(lo):
        return lo
    for _ in range(40):
        mid = math.sqrt(lo * hi)  # geometric: p-values span orders of magnitude
        lo, hi = (lo, mid) if inside(mid) else (mid, hi)
    return float(hi)


def _sign_test(img_means: np.ndarray, confidence: float) -> Test:
    t = exact_paired(int(np.sum(img_means > 0)), int(np.sum(img_means < 0)), img_means.size,
                     confidence)
    t.delta = float(img_means.mean())
    t.method = SIGN
    t.note = "no image-level variance to estimate (e.g. every difference equal)"
    return t


def _t_gap(se: float, df: float, level: float) -> float:
    """The true distance from a bound that a t test on `df` df, critical value its 1 − `level`
    quantile, detects with POWER: the noncentrality (scipy's noncentral t) times se. The
    normal approximation (t_level + t_power) se promises POWER where a t on few df reaches much less:
    it forgets that se itself is estimated."""
    return float(_ncp(round(float(df), 1) if df < 1e4 else math.inf, level) * se)


@functools.lru_cache(maxsize=4096)
def _ncp(df: float, level: float) -> float:
    """The noncentrality at which a one-sided t at `level` on `df` df rejects with POWER
    probability (cached: the planners ask for the same few df again and again)."""
    if not math.isfinite(df):
        return float(stats.norm.ppf(1 - level) + stats.norm.ppf(POWER))
    crit = stats.t.ppf(1 - level, df)
    start = crit + stats.norm.ppf(POWER)
    return float(optimize.brentq(lambda x: stats.nct.sf(crit, df, x) - POWER, start / 2,
                                 start * 4 + 10))


def _t_test(mu: float, se: float, df: float, method: str, confidence: float) -> Test:
    p = float(2 * stats.t.sf(abs(mu / se), df))
    q = stats.t.ppf(0.5 + confidence / 2, df)
    # a difference of accuracies lies in [-1, 1]: clipping there never moves 0 in or out
    return Test(mu, float(max(mu - q * se, -1.0)), float(min(mu + q * se, 1.0)), p, method,
                df=float(df), se=se)


def _seeds_by_images(d) -> np.ndarray:
    d = np.asarray(d, dtype=float)
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 2:
        raise ValueError("several seeds need a (seeds >= 2) x (images >= 2) array")
    return d


def _outcomes(x) -> np.ndarray:
    return np.asarray(x, dtype=float).ravel()
