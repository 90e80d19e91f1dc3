"""The report's statistics on hand-made predictions, against scipy, small cases worked by hand, and
simulations under two generative models that show the tests keep their false-positive rate
(numpy/scipy only, a few seconds)."""

import math

import numpy as np
import pytest
from scipy import stats

from depthbench.report import stats as S
from depthbench.testing.calibration import irt_model, paired_p_values, reject_rate, suite_model


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


def test_mcnemar_rejects_unpaired_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        S.mcnemar_exact([1, 0], [1, 0, 1])


@pytest.mark.parametrize("b,c,n", [(5, 45, 400), (0, 5, 400), (12, 3, 150), (7, 7, 100)])
def test_exact_paired_is_scipy_binomtest_and_clopper_pearson(b, c, n):
    t = S.exact_paired(b, c, n)
    res = stats.binomtest(b, b + c, 0.5)
    ci = res.proportion_ci(0.95, method="exact")
    assert t.p == pytest.approx(res.pvalue, rel=1e-12)
    assert t.delta == pytest.approx((b - c) / n)
    k = b + c
    assert (t.low, t.high) == pytest.approx((k / n * (2 * ci.low - 1), k / n * (2 * ci.high - 1)))
    assert t.low <= t.delta <= t.high


def test_vectorised_mcnemar_p_is_scipy_binomtest():
    b, c = np.meshgrid(np.arange(25), np.arange(25))
    ref = [[stats.binomtest(int(x), int(x + y)).pvalue if x + y else 1.0 for x, y in zip(rb, rc)]
           for rb, rc in zip(b, c)]
    assert S.mcnemar_p(b, c) == pytest.approx(np.array(ref), rel=1e-9)


def test_exact_interval_and_test_agree_by_construction():
    """The interval excludes 0 exactly when p < 0.05, for every split of 1, 6, ..., 56 discordant."""
    for k in range(1, 61, 5):
        for b in range(k + 1):
            t = S.exact_paired(b, k - b, 400)
            assert (t.p < 0.05) == (t.low > 0 or t.high < 0), (b, k - b, t)


def test_hand_made_b0_c5_is_not_significant_and_b5_c45_survives_holm_over_15():
    t = S.exact_paired(0, 5, 400)
    assert t.p == pytest.approx(0.0625) and t.low < 0 < t.high
    t = S.exact_paired(5, 45, 400)
    adjusted = S.holm([t.p] + [0.5] * 14)[0]
    assert adjusted == pytest.approx(15 * stats.binomtest(5, 50).pvalue)
    assert adjusted < 0.05 and t.high < 0


def test_no_discordant_image_falls_back_to_a_bound_on_the_discordance():
    t = S.exact_paired(0, 0, 400)
    upper = stats.binomtest(0, 400).proportion_ci(0.95, method="exact").high
    assert t.p == 1.0 and t.delta == 0.0
    assert (t.low, t.high) == pytest.approx((-upper, upper))


def test_crossed_t_with_identical_seeds_is_the_paired_t_over_images():
    rng = np.random.default_rng(0)
    x = rng.integers(-1, 2, size=200).astype(float)
    t = S.crossed_t(np.tile(x, (3, 1)))
    ref = stats.ttest_1samp(x, 0.0)
    assert t.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert t.df == pytest.approx(199)
    ci = ref.confidence_interval(0.95)
    assert (t.low, t.high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_crossed_t_matches_the_mean_squares_worked_by_hand():
    d = np.array([[1.0, 0.0, 1.0, -1.0], [1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]])
    s, n = d.shape
    mu = d.mean()
    ms_img = s * sum((d[:, i].mean() - mu) ** 2 for i in range(n)) / (n - 1)
    ms_seed = n * sum((d[j].mean() - mu) ** 2 for j in range(s)) / (s - 1)
    ms_res = sum((d[j, i] - d[:, i].mean() - d[j].mean() + mu) ** 2
                 for j in range(s) for i in range(n)) / ((n - 1) * (s - 1))
    num = ms_img + max(ms_seed - ms_res, 0.0)
    df = num ** 2 / (ms_img ** 2 / (n - 1) + ms_seed ** 2 / (s - 1)
                     + ms_res ** 2 / ((n - 1) * (s - 1)))
    se = math.sqrt(num / (n * s))
    t = S.crossed_t(d)
    assert t.se == pytest.approx(se) and t.df == pytest.approx(df)
    assert t.p == pytest.approx(2 * stats.t.sf(mu / se, df))
    q = stats.t.ppf(0.975, df)
    assert (t.low, t.high) == pytest.approx((max(mu - q * se, -1), min(mu + q * se, 1)))


def test_crossed_t_without_variance_falls_back_to_the_sign_test():
    t = S.crossed_t(np.ones((3, 12)))
    assert t.method == S.SIGN and t.p == pytest.approx(stats.binomtest(12, 12).pvalue)
    assert t.low > 0


def test_tost_on_the_t_is_two_one_sided_tests():
    rng = np.random.default_rng(4)
    d = (rng.random((3, 300)) < 0.1).astype(float) - (rng.random((3, 300)) < 0.1)
    t = S.crossed_t(d)
    lo = stats.t.sf((t.delta + 0.05) / t.se, t.df)
    hi = stats.t.cdf((t.delta - 0.05) / t.se, t.df)
    assert t.tost_p(0.05) == pytest.approx(max(lo, hi))


def test_tost_one_seed_needs_enough_images():
    """Identical predictions prove equivalence only when the images bound the disagreement."""
    assert S.exact_paired(0, 0, 2000).tost_p(0.02) < 1e-10
    assert S.exact_paired(0, 0, 50).tost_p(0.02) == 1.0
    # few discordant images on a small set: the conditional interval alone would call it
    # equivalent; the exact bound on the disagreement rate does not
    assert S.exact_paired(0, 5, 400).tost_p(0.02) > 0.05
    assert S.exact_paired(10, 10, 2000).tost_p(0.02) < 0.05


def test_holm_known_case_and_order():
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert S.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert S.holm([]) == []


def test_mde_one_seed_has_80_percent_power_by_simulation():
    n, r, m = 400, 0.2, 15
    mde = S.mde(S.exact_paired(40, 40, n), m)
    rng = np.random.default_rng(7)
    counts = rng.multinomial(n, [(r + mde) / 2, (r - mde) / 2, 1 - r], size=2000)
    p = S.mcnemar_p(counts[:, 0], counts[:, 1])
    power = np.mean(p < 0.05 / m)
    assert 0.72 < power < 0.88, power


def test_class_metrics_and_degenerate_worked_by_hand():
    t = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    p = [0, 0, 0, 1, 1, 0, 2, 2, 0, 0]
    m = S.class_metrics(t, p, 4)
    assert m["recall"] == pytest.approx([0.75, 0.5, 0.5, None]) or m["recall"][:3] == \
        pytest.approx([0.75, 0.5, 0.5])
    assert m["recall"][3] is None
    assert m["balanced_accuracy"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    f1 = [2 * 3 / (4 + 6), 2 * 1 / (2 + 2), 2 * 2 / (4 + 2)]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert S.degenerate([0, 1, 2, 3] * 5, [1] * 19 + [0]) == (True, 1, 0.95)
    assert not S.degenerate([0] * 19 + [1], [0] * 20)[0]  # the data is that class
    assert not S.degenerate([0, 1] * 10, [0] * 17 + [1] * 3)[0]  # 85%


# --------------------------------------------------------------------------------- calibration
# Two generative models (depthbench.testing.calibration; benchmarks/bench_calibration.py runs
# more simulations of them): the suite's own, with a small run-to-run shift and a strong image x
# architecture interaction, and an item-response one, where most images are always right or
# always wrong and runs shift by several points.
MODELS = {"suite": (suite_model, {}), "item response": (irt_model, {"shift": 1.0})}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_calibrated_under_the_null(model, seeds, record_property):
    """Null true (same expected accuracy), with seed variance and image x architecture
    interaction: at most 7% of 1500 simulated studies reject at nominal 5%."""
    make, kw = MODELS[model]
    a, b = make(np.random.default_rng([seeds, len(model)]), 1500, seeds, **kw)
    rate = reject_rate(a, b)
    record_property(f"false_positive_rate_{model}_S{seeds}", rate)
    print(f"{model}, {seeds} seeds: false-positive rate {rate:.3f}")
    assert rate <= 0.07


def test_one_seed_is_calibrated_for_the_two_runs_it_compares():
    """One seed cannot separate an architecture from its run: McNemar tests the two trained runs,
    so it is checked with small run-to-run shifts (sd 0.03, about 1 point)."""
    a, b = suite_model(np.random.default_rng(101), 1500, 1, seed_sd=0.03)
    assert reject_rate(a, b) <= 0.07


def test_the_crossed_t_alone_is_not_calibrated_with_two_seeds():
    """Why the seed-level t is there: with runs shifting by several points, the crossed t alone
    rejects too often with two seeds."""
    a, b = irt_model(np.random.default_rng([2, 13]), 1500, 2, shift=1.0)
    assert reject_rate(a, b, "crossed") > 0.08 >= 0.07 >= reject_rate(a, b)


def test_vectorised_p_is_the_reports_own_test():
    a, b = irt_model(np.random.default_rng(5), 40, 3, shift=0.7)
    p = paired_p_values(a, b)
    assert p == pytest.approx([S.compare_outcomes(list(x), list(y))[0].p for x, y in zip(a, b)])


def test_power_for_a_true_8_point_difference(record_property):
    power = {}
    for seeds in (3, 5):
        a, b = suite_model(np.random.default_rng(8), 1000, seeds, delta=0.08)
        power[seeds] = reject_rate(a, b)
        record_property(f"power_8pts_392_images_{seeds}_seeds", power[seeds])
    print(f"power for a true 8-point difference, 392 images: {power}")
    assert power[5] >= 0.8 and power[3] >= 0.4


def test_seeds_t_takes_the_larger_p_and_the_wider_interval():
    rng = np.random.default_rng(2)
    for _ in range(20):
        d = (rng.random((3, 120)) < 0.2).astype(float) - (rng.random((3, 120)) < 0.15)
        t = S.seeds_t(d)
        crossed, seed = S.crossed_t(d), S.seed_t(d)
        assert t.p == max(crossed.p, seed.p) and t.method == S.SEEDS
        assert (t.low, t.high) == (min(crossed.low, seed.low), max(crossed.high, seed.high))
        assert (t.p < 0.05) == (t.low > 0 or t.high < 0)
        assert t.tost_p(0.05) == max(crossed.tost_p(0.05), seed.tost_p(0.05))


def test_seed_t_is_the_one_sample_t_over_the_seeds_mean_differences():
    d = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    ref = stats.ttest_1samp(d.mean(axis=1), 0.0)
    t = S.seed_t(d)
    assert t.p == pytest.approx(ref.pvalue) and t.df == 2
    # seeds that agree exactly: the spread of one image in one seed, not certainty
    same = S.seed_t(np.tile(d[0], (2, 1)))
    assert same.se == pytest.approx(math.sqrt(1 / (16 * 2) / 2)) and same.p > 0


def test_seeds_needed_reaches_80_percent_power_by_simulation():
    """Normal data with known components: at the seed count the components give, `seeds_t`
    detects the difference about 80% of the time at the Holm level; one seed fewer, less often;
    and at that seed count about this many images are needed."""
    n, delta, m, img, seed, res = 300, 0.04, 3, 0.15, 0.02, 0.3
    comp = S.Components(img ** 2, seed ** 2, res ** 2)
    k = comp.seeds(delta, 0.02, m, n)[0]
    assert 3 <= k <= S.MAX_SEEDS
    rng = np.random.default_rng(9)

    def power(seeds):
        d = (delta + rng.normal(0, img, (1000, 1, n)) + rng.normal(0, seed, (1000, seeds, 1))
             + rng.normal(0, res, (1000, seeds, n)))
        return np.mean(S.seeds_p(d) < 0.05 / m)

    assert power(k - 1) < power(k) and 0.72 < power(k) < 0.9, k
    assert comp.images(delta, 0.02, m, seeds=k)[0] in range(n - 30, n + 1)
    assert comp.images(delta, 0.02, m, seeds=k - 1)[0] > n
    # equivalence within 2 points cannot be shown when the true difference is 4
    assert comp.seeds(delta, 0.02, m, n)[1] == 0 and comp.images(delta, 0.02, m, k)[1] == 0
    # a run-to-run term alone too large for any test set at 2 seeds: no image count decides it
    assert S.Components(0.0, 0.01, 0.1).images(delta, 0.02, m, seeds=2)[0] == 0
