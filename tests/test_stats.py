import numpy as np
import pytest

from mathbench.core import stats


def test_median_matches_numpy_and_is_float():
    a = [3.0, 1.0, 2.0, 10.0]
    assert stats.median(a) == 2.5
    assert type(stats.median(a)) is float
    with pytest.raises(ValueError):
        stats.median([])


def test_ci_contains_median_and_is_not_degenerate():
    x = np.random.default_rng(1).lognormal(0.0, 0.3, size=25)
    lo, hi = stats.bootstrap_ci(x)
    assert lo < np.median(x) < hi


def test_ci_of_mean_matches_normal_theory():
    # For the mean, the bootstrap CI should be ~ mean +- 1.96 * s / sqrt(n).
    x = np.random.default_rng(10).normal(size=500)
    lo, hi = stats.bootstrap_ci(x, stat=np.mean)
    half = 1.96 * x.std() / np.sqrt(x.size)
    assert lo == pytest.approx(x.mean() - half, abs=0.1 * half)
    assert hi == pytest.approx(x.mean() + half, abs=0.1 * half)


def test_ci_deterministic_under_seed():
    x = np.random.default_rng(2).normal(size=40)
    assert stats.bootstrap_ci(x, seed=7) == stats.bootstrap_ci(x, seed=7)
    # bootstrap medians are discrete (order statistics), so compare seeds on the mean
    assert stats.bootstrap_ci(x, np.mean, seed=7) != stats.bootstrap_ci(x, np.mean, seed=8)


def test_ci_narrows_with_more_samples():
    rng = np.random.default_rng(3)
    lo_s, hi_s = stats.bootstrap_ci(rng.normal(size=20))
    lo_l, hi_l = stats.bootstrap_ci(rng.normal(size=500))
    assert (hi_l - lo_l) < 0.5 * (hi_s - lo_s)


def test_ci_narrows_with_lower_level():
    x = np.random.default_rng(4).normal(size=60)
    lo95, hi95 = stats.bootstrap_ci(x, level=0.95)
    lo50, hi50 = stats.bootstrap_ci(x, level=0.50)
    assert lo95 < lo50 < hi50 < hi95


def test_ci_coverage_of_true_median_is_roughly_nominal():
    # 200 simulated N(0, 1) datasets: the 95% CI should contain the true median 0
    # in roughly 95% of them (percentile bootstrap of a median runs a bit loose/tight).
    rng = np.random.default_rng(5)
    hits = 0
    for i in range(200):
        lo, hi = stats.bootstrap_ci(rng.normal(size=31), n_boot=400, seed=i)
        hits += lo <= 0.0 <= hi
    assert 0.85 <= hits / 200 <= 1.0
    # and a 50% interval must cover far less often, so this is not a trivially wide CI
    hits50 = sum(
        lo <= 0.0 <= hi
        for lo, hi in (stats.bootstrap_ci(rng.normal(size=31), level=0.5, n_boot=400, seed=i)
                       for i in range(200)))
    assert 0.3 <= hits50 / 200 <= 0.7


def test_one_sample_ci_is_the_value():
    assert stats.bootstrap_ci([3.5]) == (3.5, 3.5)
    assert stats.summarize([3.5]) == stats.Summary(3.5, 3.5, 3.5, 1)


def test_ci_other_stat_and_stat_without_axis():
    x = np.random.default_rng(6).normal(size=30)
    lo, hi = stats.bootstrap_ci(x, stat=np.mean)
    assert lo < x.mean() < hi
    # a stat without an axis= parameter falls back to row-wise application
    assert stats.bootstrap_ci(x, stat=lambda v: float(np.mean(v))) == (lo, hi)


@pytest.mark.parametrize("bad, kw", [
    ([], {}), ([1.0, np.nan], {}), ([1.0, np.inf], {}),
    ([1.0, 2.0], {"level": 1.0}), ([1.0, 2.0], {"level": 0.0}), ([1.0, 2.0], {"n_boot": 0}),
])
def test_ci_rejects_bad_input(bad, kw):
    with pytest.raises(ValueError):
        stats.bootstrap_ci(bad, **kw)


def test_summarize():
    x = np.random.default_rng(7).normal(10.0, 1.0, size=15)
    s = stats.summarize(x, seed=3)
    assert s.n == 15 and s.median == np.median(x)
    assert (s.lo, s.hi) == stats.bootstrap_ci(x, seed=3)


def test_paired_ratio_exact_with_shared_round_noise():
    # Each round has its own (large) machine noise shared by both candidates;
    # cand is always exactly 2x faster -> paired ratio is exactly 2 with zero width.
    noise = np.random.default_rng(8).lognormal(0.0, 0.5, size=15)
    base, cand = 2.0 * noise, noise
    r = stats.paired_ratio(base, cand)
    assert r == stats.Ratio(2.0, 2.0, 2.0)


def test_pairing_beats_unpaired():
    rng = np.random.default_rng(9)
    shared = rng.lognormal(0.0, 0.3, size=21)               # per-round drift/noise
    base = 2.0 * shared * (1 + 0.01 * rng.standard_normal(21))
    cand = shared * (1 + 0.01 * rng.standard_normal(21))
    paired = stats.paired_ratio(base, cand)
    assert paired.lo <= 2.0 <= paired.hi
    assert paired.lo <= paired.median <= paired.hi
    # Shuffling destroys the pairing: same data, far wider interval.
    unpaired = stats.paired_ratio(base, rng.permutation(cand))
    assert (unpaired.hi - unpaired.lo) > 5 * (paired.hi - paired.lo)


def test_paired_ratio_direction_and_validation():
    # base slower than cand -> ratio > 1 (cand is faster)
    assert stats.paired_ratio([4.0, 4.0], [1.0, 1.0]).median == 4.0
    with pytest.raises(ValueError, match="pair"):
        stats.paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        stats.paired_ratio([1.0], [0.0])


@pytest.mark.parametrize("a, b, expected", [
    ((0, 1), (2, 3), False), ((2, 3), (0, 1), False),
    ((0, 2), (1, 3), True), ((1, 3), (0, 2), True),
    ((0, 3), (1, 2), True), ((0, 1), (1, 2), True),  # nested; touching endpoints
])
def test_intervals_overlap(a, b, expected):
    assert stats.intervals_overlap(*a, *b) is expected


@pytest.mark.parametrize("n,k", [(1, 0), (3, 0), (5, 0), (6, 1), (8, 1), (9, 2), (12, 3), (30, 10)])
def test_order_rank_is_the_largest_rank_with_95_percent(n, k):
    from scipy.stats import binom

    assert stats.order_rank(n) == k
    if k:
        assert 1 - 2 * binom.cdf(k - 1, n, 0.5) >= 0.95 > 1 - 2 * binom.cdf(k, n, 0.5)


def test_within_and_across_processes():
    r = stats.within_process([5.0, 1.0, 3.0])
    assert (r.value, r.lo, r.hi, r.method) == (3.0, 1.0, 5.0, stats.RANGE_ROUNDS)
    r = stats.within_process(np.arange(1.0, 10.0))  # 9 rounds: 2nd and 8th order statistics
    assert (r.value, r.lo, r.hi, r.method) == (5.0, 2.0, 8.0, stats.ORDER_ROUNDS)
    r = stats.across_processes([1.0, 4.0])  # geometric mean 2; t(0.975, 1) = 12.706 on log values
    half = 12.706204736174698 * np.log(4.0) / np.sqrt(2) / np.sqrt(2)
    assert (r.value, r.lo, r.hi) == pytest.approx((2.0, 2 * np.exp(-half), 2 * np.exp(half)))
    assert r.method == stats.T_PROCESSES
    assert stats.combine([[1.0, 9.0, 2.0], [4.0, 4.0]]).value == pytest.approx(np.sqrt(2.0 * 4.0))
    with pytest.raises(ValueError, match="at least 2"):
        stats.across_processes([1.0])
