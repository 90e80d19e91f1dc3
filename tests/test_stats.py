"""The report's statistics on hand-made predictions, against scipy and small cases worked by hand."""

import math

import numpy as np
import pytest
from scipy import stats

from depthbench.report import stats as S


def _wilson_by_hand(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(0, 10), (7, 10), (10, 10), (273, 364), (1, 3)])
def test_wilson_matches_formula_and_scipy(k, n):
    lo, hi = S.wilson_ci(k, n)
    assert (lo, hi) == pytest.approx(_wilson_by_hand(k, n), abs=1e-12)
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_empty_is_nan():
    assert all(math.isnan(x) for x in S.wilson_ci(0, 0))


def test_mcnemar_counts_discordant_pairs_and_exact_p():
    # A right / B wrong on 1 image, A wrong / B right on 9, 5 concordant: p = 2 * 11 / 2**10.
    a = np.array([1] * 1 + [0] * 9 + [1] * 3 + [0] * 2)
    b = np.array([0] * 1 + [1] * 9 + [1] * 3 + [0] * 2)
    n01, n10, p = S.mcnemar_exact(a, b)
    assert (n01, n10) == (1, 9)
    assert p == pytest.approx(22 / 1024, abs=1e-15)
    assert p == pytest.approx(stats.binomtest(1, 10, 0.5).pvalue)
    assert S.mcnemar_exact(b, a)[2] == pytest.approx(p)  # symmetric


def test_mcnemar_identical_models_p_is_one():
    a = np.array([1, 0, 1, 1])
    assert S.mcnemar_exact(a, a) == (0, 0, 1.0)


def test_mcnemar_rejects_unpaired_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        S.mcnemar_exact([1, 0], [1, 0, 1])


def _pair(n=300, pa=0.8, pb=0.7, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(n) < pa).astype(int), (rng.random(n) < pb).astype(int)


def test_paired_bootstrap_matches_scipy_bootstrap_of_differences():
    a, b = _pair()
    delta, lo, hi = S.paired_bootstrap_ci(a, b, n_boot=4000, seed=1)
    assert delta == pytest.approx(a.mean() - b.mean())
    ref = stats.bootstrap((a - b,), np.mean, n_resamples=4000, method="percentile",
                          random_state=np.random.default_rng(1)).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-12)
    # The normal approximation of a paired difference: se = sd(d) / sqrt(n).
    se = np.std(a - b, ddof=1) / np.sqrt(a.size)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert lo < delta < hi


def test_paired_bootstrap_without_spread_is_a_point():
    a = np.ones(20)
    assert S.paired_bootstrap_ci(a, a) == (0.0, 0.0, 0.0)


def test_hierarchical_bootstrap_one_seed_is_the_paired_bootstrap():
    a, b = _pair(n=400)
    d1, lo1, hi1 = S.hierarchical_bootstrap_ci([a], [b], n_boot=20000, seed=0)
    d2, lo2, hi2 = S.paired_bootstrap_ci(a, b, n_boot=20000, seed=0)
    assert d1 == pytest.approx(d2)
    assert (lo1, hi1) == pytest.approx((lo2, hi2), abs=0.006)


def test_hierarchical_bootstrap_matches_a_plain_loop():
    """The multinomial shortcut gives the same distribution as resampling indices in a loop."""
    rng = np.random.default_rng(3)
    a_by = [(rng.random(n) < p).astype(int) for n, p in [(120, 0.8), (120, 0.7), (120, 0.9)]]
    b_by = [(rng.random(120) < 0.6).astype(int) for _ in range(3)]
    est, lo, hi = S.hierarchical_bootstrap_ci(a_by, b_by, n_boot=20000, seed=5)
    assert est == pytest.approx(np.mean([a.mean() - b.mean() for a, b in zip(a_by, b_by)]))
    loop = []
    for _ in range(4000):
        seeds = rng.integers(0, 3, 3)
        per = []
        for s in seeds:
            idx = rng.integers(0, 120, 120)
            per.append(a_by[s][idx].mean() - b_by[s][idx].mean())
        loop.append(np.mean(per))
    ref_lo, ref_hi = np.quantile(loop, [0.025, 0.975])
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi), abs=0.015)
    assert lo < est < hi


def test_hierarchical_bootstrap_widens_with_seed_variance():
    rng = np.random.default_rng(0)
    same = [(rng.random(200) < 0.75).astype(int) for _ in range(3)]
    spread = [(rng.random(200) < p).astype(int) for p in (0.55, 0.75, 0.95)]
    _, lo1, hi1 = S.hierarchical_bootstrap_ci(same, n_boot=5000)
    _, lo2, hi2 = S.hierarchical_bootstrap_ci(spread, n_boot=5000)
    assert hi2 - lo2 > 1.5 * (hi1 - lo1)


def test_fisher_combine_matches_scipy_and_hand_value():
    p = [0.01, 0.2, 0.5]
    assert S.fisher_combine(p) == pytest.approx(stats.combine_pvalues(p, method="fisher").pvalue)
    # X = -2 sum ln p ~ chi2(2k); with k = 2 and p = (0.1, 0.1) the survival is e^{-x/2}(1 + x/2).
    x = -2 * 2 * math.log(0.1)
    assert S.fisher_combine([0.1, 0.1]) == pytest.approx(math.exp(-x / 2) * (1 + x / 2))
    assert S.fisher_combine([0.3]) == 0.3


def test_holm_known_case_and_order():
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert S.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert S.holm([]) == []


def test_mean_sd_sample_sd_and_single_value():
    m, sd = S.mean_sd([1.0, 2.0, 3.0])
    assert (m, sd) == pytest.approx((2.0, 1.0))
    m, sd = S.mean_sd([0.5])
    assert m == 0.5 and math.isnan(sd)
