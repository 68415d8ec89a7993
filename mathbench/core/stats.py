"""Small, dependency-light statistics for benchmark samples (numpy; SciPy only for the t and
binomial quantiles of the labelled intervals, imported when needed)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Median of plain samples with a bootstrap confidence interval."""
    median: float
    lo: float
    hi: float
    n: int


@dataclass(frozen=True)
class Ratio:
    """Median of per-pair ratios base[i] / cand[i] with a bootstrap CI.

    For times, > 1 means the candidate is faster than the base.
    """
    median: float
    lo: float
    hi: float


def _as_samples(a, name: str = "samples") -> np.ndarray:
    x = np.asarray(a, dtype=float).ravel()
    if x.size == 0:
        raise ValueError(f"{name} must contain at least one value")
    # A NaN/inf would silently poison every quantile; fail loudly instead.
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite (no NaN/inf)")
    return x


def median(a) -> float:
    return float(np.median(_as_samples(a)))


def bootstrap_ci(samples, stat: Callable = np.median, level: float = 0.95,
                 n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat``; deterministic for a given seed.

    ``stat`` should accept ``axis=`` (numpy reductions do); otherwise it is
    applied row by row, which is slower but correct.
    """
    x = _as_samples(samples)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    if x.size == 1:  # nothing to resample: the interval collapses to the value
        v = float(stat(x))
        return v, v
    rng = np.random.default_rng(seed)
    # One index matrix -> all resamples at once (row b is bootstrap replicate b).
    resamples = x[rng.integers(0, x.size, size=(n_boot, x.size))]
    try:
        boot = np.asarray(stat(resamples, axis=1), dtype=float)
    except TypeError:
        boot = np.apply_along_axis(stat, 1, resamples).astype(float)
    alpha = 1.0 - level
    lo, hi = np.quantile(boot, [alpha / 2, 1.0 - alpha / 2])
    return float(lo), float(hi)


def summarize(samples, level: float = 0.95, n_boot: int = 2000,
              seed: int = 0) -> Summary:
    x = _as_samples(samples)
    lo, hi = bootstrap_ci(x, np.median, level, n_boot, seed)
    return Summary(float(np.median(x)), lo, hi, int(x.size))


def paired_ratio(base, cand, level: float = 0.95, n_boot: int = 2000,
                 seed: int = 0) -> Ratio:
    """Speedup of ``cand`` over ``base`` from samples paired by round.

    Dividing within a pair cancels noise both shared (machine load, thermal
    drift during that round), so the CI is much tighter than comparing two
    independent medians. Resampling the ratios == resampling the pairs.
    """
    r = pair_ratios(base, cand)
    lo, hi = bootstrap_ci(r, np.median, level, n_boot, seed)
    return Ratio(float(np.median(r)), lo, hi)


def pair_ratios(base, cand) -> np.ndarray:
    """base[i] / cand[i] for samples paired by round."""
    b = _as_samples(base, "base")
    c = _as_samples(cand, "cand")
    if b.shape != c.shape:
        raise ValueError(f"base and cand must pair up: {b.size} vs {c.size} samples")
    if np.any(c == 0):
        raise ValueError("cand contains zero; ratio base/cand is undefined")
    return b / c


def intervals_overlap(a_lo: float, a_hi: float, b_lo: float, b_hi: float) -> bool:
    """True if closed intervals [a_lo, a_hi] and [b_lo, b_hi] share a point."""
    return a_lo <= b_hi and b_lo <= a_hi


# --------------------------------------------------------------------------------------------
# Intervals whose label matches their coverage (the kernel benchmark's rows)
#
# A timing varies between processes (code and data layout, frequency state, what else runs) far
# more than between rounds of one process, so an interval built from one process's rounds says
# nothing about the next run. With several processes the interval is over the processes; with one
# it is labelled as within one process, and it is only called 95% where its method has that
# coverage at its sample count.

LEVEL = 0.95  # the level every labelled interval below is built for (the labels say 95%)
#: ``method`` values (the results' ``interval_method`` column)
T_PROCESSES = "t95-processes"  # Student-t 95% on the log of each process's median
ORDER_ROUNDS = "order95-rounds"  # distribution-free 95% for the median, from one process's rounds
RANGE_ROUNDS = "range-rounds"  # [min, max] of too few rounds for a 95% interval


@dataclass(frozen=True)
class Interval:
    value: float
    lo: float
    hi: float
    method: str


def order_rank(n: int, level: float = LEVEL) -> int:
    """Largest k with P(x_(k) <= median <= x_(n+1-k)) >= level for n iid continuous samples
    (the binomial, distribution-free interval for a median); 0 if even [min, max] falls short
    (n < 6 at 95%: [min, max] then covers 1 - 2**(1 - n), 75% at n = 3)."""
    from scipy.stats import binom

    k = 0
    while k + 1 <= (n + 1) // 2 and 1 - 2 * binom.cdf(k, n, 0.5) >= level:
        k += 1
    return k


def within_process(x) -> Interval:
    """Median of one process's rounds with the order-statistic interval, or the range when the
    rounds are too few for 95%. Either way it covers the median of *this* process's
    distribution only: run-to-run spread is not in it."""
    x = np.sort(_as_samples(x))
    k = order_rank(x.size)
    if k == 0:
        return Interval(float(np.median(x)), float(x[0]), float(x[-1]), RANGE_ROUNDS)
    return Interval(float(np.median(x)), float(x[k - 1]), float(x[x.size - k]), ORDER_ROUNDS)


def across_processes(medians) -> Interval:
    """Geometric mean of per-process medians with a Student-t interval on their logs: exact for
    log-normal process effects at any count >= 2 (timings and ratios are positive and their
    between-process effects multiplicative; the coverage test simulates this)."""
    from scipy.stats import t

    logs = np.log(_as_samples(medians, "medians"))
    if logs.size < 2:
        raise ValueError("an interval across processes needs at least 2 processes")
    mid = float(logs.mean())
    half = float(t.ppf(0.5 + LEVEL / 2, logs.size - 1) * logs.std(ddof=1) / np.sqrt(logs.size))
    return Interval(float(np.exp(mid)), float(np.exp(mid - half)), float(np.exp(mid + half)), T_PROCESSES)


def combine(per_process: list) -> Interval:
    """One row's value and interval from each process's samples (times, or paired ratios): across
    processes when there are several, else within the one process."""
    if len(per_process) == 1:
        return within_process(per_process[0])
    return across_processes([np.median(_as_samples(x)) for x in per_process])


def describe(method: str | None, processes: int, rounds: int) -> str:
    """What an interval is, in words (report headers); None: a run from before these methods."""
    if method == T_PROCESSES:
        return f"Student-t 95% across {processes} processes"
    if method == ORDER_ROUNDS:
        return f"order-statistic 95% of {rounds} rounds in 1 process (no run-to-run spread)"
    if method == RANGE_ROUNDS:
        return f"range [min, max] of {rounds} rounds in 1 process (not 95%; no run-to-run spread)"
    return "bootstrap of one process's rounds (older run: not a 95% interval of run-to-run spread)"


# --------------------------------------------------------------------------------------------
# Intervals of the LSTM sweep's rows (a median of a few to a few dozen samples)

#: Fewer samples than this get no "95%" interval, just min..max and n. From this count on the
#: interval is the distribution-free order-statistic interval of the median (``order_rank``): at
#: least 95% coverage for independent samples of any continuous distribution. (A percentile
#: bootstrap of the median, used before, covers only 91-94% at 10-15 samples.)
MIN_CI_SAMPLES = 10
CI, RANGE = "95% CI", "range"
CI_METHOD = "order-statistic"  # the sweep rows' interval_method (rows without it: bootstrap)


def _sweep_interval(x: np.ndarray) -> tuple:
    """(median, lo, hi) of usable values: their range below MIN_CI_SAMPLES, else the
    order-statistic interval (``within_process``: from 10 samples it is never the range)."""
    if x.size == 0:
        return (np.nan, np.nan, np.nan)
    if x.size < MIN_CI_SAMPLES:
        return (float(np.median(x)), float(x.min()), float(x.max()))
    iv = within_process(x)
    return (iv.value, iv.lo, iv.hi)


def interval_kind(n: int) -> str:
    """What (lo, hi) of a median from ``n`` samples is: a 95% CI, or min..max."""
    return CI if n >= MIN_CI_SAMPLES else RANGE


def median_interval(values) -> tuple:
    """(median, lo, hi) of the finite values: the order-statistic 95% interval of the median
    from >= MIN_CI_SAMPLES of them, else their range (interval_kind says which); NaNs when none
    is finite."""
    x = np.asarray(values, dtype=float)
    return _sweep_interval(x[np.isfinite(x)])


def ratio_interval(base, cand) -> tuple:
    """Paired ratios base/cand (> 1: the candidate is faster): their median with the
    order-statistic 95% interval, or with their range below MIN_CI_SAMPLES pairs; NaNs when no
    pair is usable."""
    b = np.asarray(base, dtype=float)
    c = np.asarray(cand, dtype=float)
    ok = np.isfinite(b) & np.isfinite(c) & (c > 0)
    return _sweep_interval(b[ok] / c[ok])
