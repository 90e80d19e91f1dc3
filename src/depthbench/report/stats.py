"""The statistics the report uses: small functions over per-image outcomes.

An outcome array holds one entry per test image, 1 where a model was right and 0 where it was
wrong, in the split manifest's order, so two runs of one study pair image by image. Accuracies and
differences are fractions here; the report turns them into percentage points.

A comparison of A and B uses one method for both its interval and its test, so the two agree:
- one seed: the exact McNemar test and the exact conditional interval (`exact_paired`);
- several seeds: the crossed random-effects model on per-image, per-seed differences,
  d[s, i] = mu + image_i + seed_s + e, with a Satterthwaite t (`crossed_t`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.80
# Method names as the report and comparisons.csv print them (the Methods section spells them out).
EXACT = "exact McNemar"  # with its exact conditional interval
CROSSED = "crossed random-effects t"  # images x seeds, Satterthwaite df
SIGN = "exact sign test"  # over images, on seed-averaged differences (no variance to estimate)


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

    def tost_p(self, margin: float) -> float:
        """p-value of the equivalence test (TOST) that |Δ| < margin: the larger one-sided p."""
        if self.method == CROSSED:
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
    usual truncation, which only widens the interval; the df keeps all three mean squares (fewer
    df, a little conservative), which keeps two seeds calibrated when seed variance is large.
    """
    d = np.asarray(d, dtype=float)
    s, n = d.shape[-2:]
    mu = d.mean(axis=(-2, -1))
    img, seed = d.mean(axis=-2), d.mean(axis=-1)
    ms_img = s * np.sum((img - mu[..., None]) ** 2, axis=-1) / (n - 1)
    ms_seed = n * np.sum((seed - mu[..., None]) ** 2, axis=-1) / (s - 1)
    resid = d - img[..., None, :] - seed[..., :, None] + mu[..., None, None]
    ms_res = np.sum(resid ** 2, axis=(-2, -1)) / ((n - 1) * (s - 1))
    num = ms_img + np.maximum(ms_seed - ms_res, 0.0)
    den = ms_img ** 2 / (n - 1) + ms_seed ** 2 / (s - 1) + ms_res ** 2 / ((n - 1) * (s - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(den > 0, num ** 2 / den, np.inf)
    return mu, num, df, np.stack([ms_img, ms_seed, ms_res])


def crossed_p(d: np.ndarray) -> np.ndarray:
    """Two-sided p of the crossed t for a batch d[..., s, i] (nan where there is no variance)."""
    s, n = np.shape(d)[-2:]
    mu, num, df, _ = crossed_fit(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mu / np.sqrt(num / (n * s))
    return np.where(num > 0, 2 * stats.t.sf(np.abs(t), df), np.nan)


def crossed_t(d: np.ndarray, confidence: float = CONFIDENCE) -> Test:
    """Several seeds: the mean of d[s, i] (seeds x images) with a Satterthwaite t (`crossed_fit`).
    scipy and statsmodels have no crossed random-effects t, hence these few lines."""
    d = np.asarray(d, dtype=float)
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 2:
        raise ValueError("crossed_t needs a (seeds >= 2) x (images >= 2) array")
    s, n = d.shape
    mu, num, df, _ = crossed_fit(d)
    mu, num, df = float(mu), float(num), float(df)
    if num <= 1e-12:
        # No image-level spread to estimate a variance from (e.g. every difference equal): test
        # the seed-averaged differences image by image with the exact sign test instead.
        return _sign_test(d.mean(axis=0), confidence)
    se = math.sqrt(num / (n * s))
    p = float(2 * stats.t.sf(abs(mu / se), df))
    q = stats.t.ppf(0.5 + confidence / 2, df)
    # a difference of accuracies lies in [-1, 1]: clipping there never moves 0 in or out
    return Test(mu, float(max(mu - q * se, -1.0)), float(min(mu + q * se, 1.0)), p, CROSSED,
                df=df, se=se)


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
    return crossed_t(d), b_sum, c_sum, n


def mean_ci(outcomes_by_seed: Sequence, confidence: float = CONFIDENCE
            ) -> tuple[float, float, float, str]:
    """Mean accuracy over seeds with its interval: Wilson for one seed, the crossed t for several
    (the same model as the comparisons, on the outcomes instead of their differences)."""
    ys = [_outcomes(y) for y in outcomes_by_seed]
    if len(ys) == 1:
        k, n = int(ys[0].sum()), ys[0].size
        return (k / n, *wilson_ci(k, n, confidence), "Wilson") if n else (
            float("nan"), float("nan"), float("nan"), "")
    t = crossed_t(np.stack(ys), confidence)
    if t.method != CROSSED:  # every image has the same mean (e.g. all right): no spread to use
        n = ys[0].size
        return (t.delta, *wilson_ci(round(t.delta * n), n, confidence), "Wilson")
    return t.delta, max(0.0, t.low), min(1.0, t.high), t.method


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


def mde(test: Test, n: int, seeds: int, discordance: float, m: int) -> float:
    """Minimal detectable difference: the |Δ| found with 80% power by a two-sided test at the
    Holm-corrected level alpha/m (the level the smallest p must pass), given the test's spread.

    One seed: (z_a + z_b) sqrt(r / n) at the observed discordance rate r, and at least
    (z_a + z_b)^2 / n, since a difference of Δ needs at least Δ n discordant images.
    Several seeds: (t_a + t_b) se with the crossed model's df and standard error.
    Capped at 1 (100 points): a comparison that cannot detect even that detects nothing.
    """
    level = ALPHA / max(m, 1)
    if seeds > 1 and test.method == CROSSED:
        q = stats.t.ppf(1 - level / 2, test.df) + stats.t.ppf(POWER, test.df)
        return float(min(q * test.se, 1.0))
    z = stats.norm.ppf(1 - level / 2) + stats.norm.ppf(POWER)
    return float(min(max(z * math.sqrt(discordance / n), z * z / n), 1.0)) if n else float("nan")


def images_needed(delta: float, margin: float, discordance: float, m: int) -> tuple[int, int]:
    """One seed, at this discordance rate: (images to detect a difference of |Δ| with 80% power at
    alpha/m, images for TOST at alpha to show equivalence when the true Δ is the observed one);
    0 where no number of images would (Δ = 0 for the first, |Δ| >= margin for the second)."""
    r = max(discordance, abs(delta), 1e-9)
    z_d = stats.norm.ppf(1 - ALPHA / max(m, 1) / 2) + stats.norm.ppf(POWER)
    z_e = stats.norm.ppf(1 - ALPHA) + stats.norm.ppf(POWER)
    n_diff = math.ceil(r * (z_d / abs(delta)) ** 2) if delta else 0
    room = margin - abs(delta)
    # with no disagreement at all, the exact bound on the disagreement rate still needs
    # log(alpha / 2m) / log(1 - room) images to fall inside the margin
    n_eq = max(math.ceil(r * (z_e / room) ** 2),
               math.ceil(math.log(ALPHA / max(m, 1) / 2) / math.log(1 - room))) if room > 0 else 0
    return n_diff, n_eq


def seeds_needed(d: np.ndarray, delta: float, margin: float, m: int,
                 limit: int = 100) -> tuple[int, int]:
    """Several seeds, at this test-set size: (seeds to detect |Δ| with 80% power at alpha/m, seeds
    for TOST to show equivalence if the true Δ is the observed one), from the crossed model's
    variance components; 0 where more seeds alone would not do (the image term dominates)."""
    s, n = np.shape(d)
    ms_img, ms_seed, ms_res = crossed_fit(d)[3]
    v_img = max(0.0, (ms_img - ms_res) / s) / n  # the part of Var(mu_hat) seeds do not shrink
    v_per_seed = max(0.0, (ms_seed - ms_res) / n) + ms_res / n

    def smallest(target_se):
        for k in range(2, limit + 1):
            if v_img + v_per_seed / k <= target_se ** 2:
                return k
        return 0

    z_d = stats.norm.ppf(1 - ALPHA / max(m, 1) / 2) + stats.norm.ppf(POWER)
    z_e = stats.norm.ppf(1 - ALPHA) + stats.norm.ppf(POWER)
    return (smallest(abs(delta) / z_d) if delta else 0,
            smallest((margin - abs(delta)) / z_e) if abs(delta) < margin else 0)


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


def _outcomes(x) -> np.ndarray:
    return np.asarray(x, dtype=float).ravel()
