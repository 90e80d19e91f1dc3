"""The statistics the report uses (see shared/STATS.md): small functions over per-image outcomes.

An outcome array holds one entry per test image, 1 where a model was right and 0 where it was
wrong, in the split manifest's order, so two runs of one study pair image by image. Accuracies and
differences are fractions here; the report turns them into percentage points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_BOOT = 10_000


def wilson_ci(correct: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for `correct` out of `total` (nan, nan when total is 0)."""
    if total <= 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(int(correct), int(total)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar_exact(a_correct, b_correct) -> tuple[int, int, float]:
    """McNemar's exact test of two models on the same images: (b, c, two-sided p).

    b counts images A got right and B wrong, c the reverse; under "same accuracy" b ~ Bin(b+c, 1/2).
    """
    a, b = _outcomes(a_correct), _outcomes(b_correct)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes differ in length: {a.size} vs {b.size}")
    n01 = int(np.sum((a == 1) & (b == 0)))
    n10 = int(np.sum((a == 0) & (b == 1)))
    if n01 + n10 == 0:
        return n01, n10, 1.0
    return n01, n10, float(stats.binomtest(n01, n01 + n10, 0.5).pvalue)


def paired_bootstrap_ci(a_correct, b_correct, n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
                        seed: int = 0) -> tuple[float, float, float]:
    """Accuracy difference A - B with a percentile bootstrap CI over images (same indices for both).

    Returns (delta, low, high). Resampling paired images is resampling the per-image differences.
    """
    a, b = _outcomes(a_correct), _outcomes(b_correct)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes differ in length: {a.size} vs {b.size}")
    d = a - b
    delta = float(d.mean())
    if np.all(d == d[0]):  # no spread: every resample has the same mean
        return delta, delta, delta
    res = stats.bootstrap((d,), np.mean, n_resamples=n_boot, confidence_level=confidence,
                          method="percentile", batch=max(1, 4_000_000 // d.size),
                          random_state=np.random.default_rng(seed))
    return delta, float(res.confidence_interval.low), float(res.confidence_interval.high)


def hierarchical_bootstrap_ci(a_by_seed: Sequence, b_by_seed: Sequence | None = None,
                              n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
                              seed: int = 0) -> tuple[float, float, float]:
    """Mean over seeds of A - B (or of A alone when `b_by_seed` is None), with a two-level CI.

    Each replicate resamples the seeds with replacement, then the images within each drawn seed,
    and averages the per-seed means; the CI is the percentile interval of those averages.
    Returns (estimate, low, high). scipy has no hierarchical bootstrap, hence this function.
    """
    if b_by_seed is None:
        groups = [_outcomes(a) for a in a_by_seed]
    else:
        if len(a_by_seed) != len(b_by_seed):
            raise ValueError("a_by_seed and b_by_seed need one entry per seed each")
        groups = []
        for a, b in zip(a_by_seed, b_by_seed, strict=True):
            a, b = _outcomes(a), _outcomes(b)
            if a.shape != b.shape:
                raise ValueError(f"paired outcomes differ in length: {a.size} vs {b.size}")
            groups.append(a - b)
    if not groups or any(g.size == 0 for g in groups):
        raise ValueError("hierarchical bootstrap needs at least one seed with outcomes")
    estimate = float(np.mean([g.mean() for g in groups]))
    rng = np.random.default_rng(seed)
    # Outcomes take few distinct values (0/1, or -1/0/1 for differences), so resampling n images of
    # a seed is one multinomial draw of how often each value comes up: exact and memory-light.
    values, probs, sizes = [], [], []
    for g in groups:
        v, counts = np.unique(g, return_counts=True)
        values.append(v)
        probs.append(counts / g.size)
        sizes.append(g.size)
    n_seeds = len(groups)
    drawn = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    means = np.empty((n_boot, n_seeds))
    for s in range(n_seeds):
        where = drawn == s
        k = int(where.sum())
        if k:
            counts = rng.multinomial(sizes[s], probs[s], size=k)
            means[where] = counts @ values[s] / sizes[s]
    boot = means.mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return estimate, float(low), float(high)


def fisher_combine(pvalues: Sequence[float]) -> float:
    """Fisher's method over independent p-values (`scipy.stats.combine_pvalues`)."""
    p = np.asarray(pvalues, dtype=float)
    if p.size == 0:
        raise ValueError("fisher_combine needs at least one p-value")
    if p.size == 1:
        return float(p[0])
    return float(stats.combine_pvalues(p, method="fisher").pvalue)


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


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; nan with fewer than two values)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")


def _outcomes(x) -> np.ndarray:
    return np.asarray(x, dtype=float).ravel()
