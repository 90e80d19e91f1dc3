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
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.80
# Method names as the report and comparisons.csv print them (the Methods section spells them out).
EXACT = "exact McNemar"  # with its exact conditional interval
CROSSED = "crossed random-effects t"  # images x seeds, Satterthwaite df
SEED = "seed-level t"  # the seeds' mean differences, S - 1 df
SEEDS = "crossed and seed-level t"  # several seeds: the larger p of the two (`seeds_t`)
SIGN = "exact sign test"  # over images, on seed-averaged differences (no variance to estimate)
CORRECTED = "corrected repeated k-fold t"  # cross-validation cells, Nadeau-Bengio variance factor
T_METHODS = (CROSSED, SEED, CORRECTED)  # a t with a standard error and df (TOST, power)
MAX_SEEDS = 20  # "what would decide it" counts seeds up to this many


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


def compare_cells(cells: Sequence[Cell], confidence: float = CONFIDENCE) -> Test:
    """A vs B over cross-validation cells: Δ = mean over cells of acc(A) − acc(B)."""
    return corrected_t([_cell_mean(c.a) - _cell_mean(c.b) for c in cells],
                       _n_test(cells), _n_train(cells), confidence)


def accuracy_cells(cells: Sequence[Cell], confidence: float = CONFIDENCE
                   ) -> tuple[float, float, float, str]:
    """One model's mean accuracy over cross-validation cells with its interval (the method of
    `compare_cells`, on the accuracies instead of their differences), clipped to [0, 1]."""
    t = corrected_t([_cell_mean(c.a) for c in cells], _n_test(cells), _n_train(cells),
                    confidence)
    return t.delta, max(0.0, t.low), min(1.0, t.high), t.method


def corrected_t(x: Sequence[float], n_test: float, n_train: float,
                confidence: float = CONFIDENCE) -> Test:
    """The corrected repeated k-fold t (Nadeau & Bengio 2003; Bouckaert & Frank 2004) on the J
    per-cell values x: Var(mean) = (1/J + n_test/n_train) s², J − 1 df. The second term stands
    for the correlation of cells whose training sets overlap. A zero spread is read as the
    smallest the counts can show (one image of n_test in one cell), as `seed_fit` does."""
    x = np.asarray(x, dtype=float)
    j = x.size
    if j < 2:
        raise ValueError("the corrected k-fold t needs at least two cells")
    var = max(float(x.var(ddof=1)), 1.0 / (n_test * n_test * j))
    se = math.sqrt((1.0 / j + n_test / n_train) * var)
    return _t_test(float(x.mean()), se, j - 1, CORRECTED, confidence)


def _cell_mean(outcomes) -> float:
    return float(_outcomes(outcomes).mean())


def _n_test(cells: Sequence[Cell]) -> float:
    return float(np.mean([np.size(c.a) for c in cells]))


def _n_train(cells: Sequence[Cell]) -> float:
    return float(np.mean([c.n_train for c in cells]))


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
    """Minimal detectable difference: the |Δ| found with 80% power by a two-sided test at the
    Holm-corrected level alpha/m (the level the smallest p must pass), given the test's spread.

    Exact McNemar (one seed): (z_a + z_b) sqrt(r / n) at the observed discordance rate r, and at
    least (z_a + z_b)^2 / n, since a difference of Δ needs at least Δ n discordant images.
    A t: (t_a + t_b) se with its df. Several seeds: the larger of its two tests' (both must
    reject). Capped at 1 (100 points): a comparison that cannot detect even that detects nothing.
    """
    level = ALPHA / max(m, 1)
    if test.parts:
        return max(mde(t, m) for t in test.parts)
    if test.method in T_METHODS:
        return float(min(_t_gap(test.se, test.df, level / 2), 1.0))
    b, c, n = test.counts
    if not n:
        return float("nan")
    z = stats.norm.ppf(1 - level / 2) + stats.norm.ppf(POWER)
    return float(min(max(z * math.sqrt((b + c) / n / n), z * z / n), 1.0))


def images_needed(delta: float, margin: float, discordance: float, m: int) -> tuple[int, int]:
    """One seed, at this discordance rate: (images to detect a difference of |Δ| with 80% power at
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

    @classmethod
    def of(cls, d: np.ndarray) -> Components:
        s, n = np.shape(d)
        ms_img, ms_seed, ms_res = (float(x) for x in crossed_fit(d)[3])
        return cls(max(0.0, (ms_img - ms_res) / s), max(0.0, (ms_seed - ms_res) / n), ms_res)

    def decides(self, gap: float, seeds: int, images: float, level: float) -> bool:
        """Whether `seeds_t` at this many seeds and images reaches 80% power for a true distance
        `gap` from its bound, one-sided at `level` (both of its tests must)."""
        if gap <= 0:
            return False
        ms_img, ms_seed = self.res + seeds * self.img, self.res + images * self.seed
        num, df = _satterthwaite(ms_img, ms_seed, self.res, images, seeds)
        crossed = _t_gap(math.sqrt(num / (images * seeds)), float(df), level)
        seed = _t_gap(math.sqrt((self.seed + self.res / images) / seeds), seeds - 1, level)
        return max(crossed, seed) <= gap

    def seeds(self, delta: float, margin: float, m: int, images: int, start: int = 2,
              limit: int = MAX_SEEDS) -> tuple[int, int]:
        """(seeds to detect |Δ| with 80% power at alpha/m, seeds to show equivalence by TOST at
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
    one class for >= 90% of the images when that class is < 90% of the true labels."""
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
    quantile, detects with 80% power: the noncentrality (scipy's noncentral t) times se. The
    normal approximation (t_level + t_power) se promises 80% where a t on 2-4 df reaches 50-70%:
    it forgets that se itself is estimated."""
    return float(_ncp(round(float(df), 1) if df < 1e4 else math.inf, level) * se)


@functools.lru_cache(maxsize=4096)
def _ncp(df: float, level: float) -> float:
    """The noncentrality at which a one-sided t at `level` on `df` df rejects with 80%
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
