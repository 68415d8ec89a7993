"""Intervals match their labels: simulated runs with log-normal effects between processes and noise
within them, at the process and round counts the kernel benchmark uses, check the coverage each
interval method claims. The naive bootstrap within one process is run through the same check and
fails it, so the check can fail."""
import numpy as np
import pytest

from mathbench import bench, cli
from mathbench.core import stats

RUNS = 2000
BETWEEN, WITHIN = 0.10, 0.05  # sd of log time: ~10% from process to process, ~5% from round to round
TRUE = 1.7  # the true median ratio (or time); process effects have median 1


def simulate(processes: int, rounds: int, seed: int) -> np.ndarray:
    """RUNS simulated runs: samples[run, process, round] of one row's per-round ratio."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(0, BETWEEN, (RUNS, processes, 1))
    return TRUE * np.exp(effect + rng.normal(0, WITHIN, (RUNS, processes, rounds)))


def coverage(samples: np.ndarray, method) -> float:
    hits = [lo <= TRUE <= hi for lo, hi in (method(list(run)) for run in samples)]
    return float(np.mean(hits))


def combined(per_process):
    r = stats.combine(per_process)
    return r.lo, r.hi


def _default_counts():
    plan = bench.process_plan(cli.make_plan(cli.build_parser().parse_args([])))
    # rounds per process: the floor (1e6 and 1e7 groups), the full count, and one between
    return plan.processes, sorted({plan.min_samples, 3, plan.samples})


PROCESSES, ROUNDS = _default_counts()


@pytest.mark.parametrize("rounds", ROUNDS)
def test_t_interval_across_processes_has_its_coverage(rounds):
    assert PROCESSES == 3
    samples = simulate(PROCESSES, rounds, seed=rounds)
    assert stats.combine(list(samples[0])).method == stats.T_PROCESSES
    cov = coverage(samples, combined)
    assert 0.93 <= cov <= 0.975, cov  # 95%: neither short nor wastefully wide


def test_naive_bootstrap_within_one_process_fails_the_same_check():
    # the old method: one process, 3 rounds (the 1e7 groups), percentile bootstrap of the median
    samples = simulate(1, 3, seed=1)
    boot = coverage(samples, lambda p: stats.bootstrap_ci(p[0], n_boot=200))
    assert boot < 0.5, boot  # far below 95% of the run-to-run truth
    # even of its own process's median it covers only ~75% ([min, max] of 3: 1 - 2 * 1/8)
    rounds = np.exp(np.random.default_rng(2).normal(0, WITHIN, (RUNS, 3)))  # that process's median is 1
    own = np.mean([lo <= 1 <= hi for lo, hi in (stats.bootstrap_ci(r, n_boot=200) for r in rounds)])
    assert 0.70 <= own <= 0.80, own


@pytest.mark.parametrize("rounds", [3, 5, 6, 7, 9, 20])
def test_within_process_interval_is_called_95_only_when_it_covers_95(rounds):
    """With one process the target is that process's own median (no run-to-run spread)."""
    rng = np.random.default_rng(rounds)
    x = np.exp(rng.normal(0, WITHIN, (RUNS, rounds)))  # the process median is 1
    results = [stats.within_process(r) for r in x]
    cov = np.mean([r.lo <= 1 <= r.hi for r in results])
    method = results[0].method
    if rounds < 6:
        assert method == stats.RANGE_ROUNDS and cov < 0.95  # labelled a range, never 95%
        assert cov == pytest.approx(1 - 2.0 ** (1 - rounds), abs=0.03)
    else:
        assert method == stats.ORDER_ROUNDS and cov >= 0.94, cov


# --------------------------------------------------------------------------------------------
# the LSTM sweep's rule (stats.median_interval / ratio_interval): one process's samples, n from
# MIN_CI_SAMPLES on labelled "95% CI"


def _sweep_coverage(method, n: int, trials: int = 3000, seed: int = 5) -> float:
    """How often ``method`` (samples -> (median, lo, hi)) covers the true median 1.0 of log-normal
    samples of size n."""
    rng = np.random.default_rng(seed)
    x = np.exp(rng.normal(0.0, 0.3, (trials, n)))
    return float(np.mean([lo <= 1.0 <= hi for _, lo, hi in map(method, x)]))


@pytest.mark.parametrize("n", [stats.MIN_CI_SAMPLES, 12, 13])
def test_sweep_interval_labelled_95_covers_95(n):
    assert stats.interval_kind(n) == stats.CI
    assert _sweep_coverage(stats.median_interval, n) >= 0.945  # 3000 trials: sd of the estimate 0.4%
    # paired ratios: the same rule on base/cand
    assert _sweep_coverage(lambda r: stats.ratio_interval(r, np.ones_like(r)), n) >= 0.945


def test_percentile_bootstrap_of_a_median_fails_that_check():
    """The rule the sweep used before (a percentile bootstrap of the median) undercovers at 13
    samples, so the check above can fail."""
    def bootstrap(x):
        r = stats.summarize(x)
        return r.median, r.lo, r.hi
    assert _sweep_coverage(bootstrap, 13, trials=1500) < 0.935
