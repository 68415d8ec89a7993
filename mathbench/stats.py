"""Small, dependency-light statistics for benchmark samples (numpy only)."""
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
    b = _as_samples(base, "base")
    c = _as_samples(cand, "cand")
    if b.shape != c.shape:
        raise ValueError(f"base and cand must pair up: {b.size} vs {c.size} samples")
    if np.any(c == 0):
        raise ValueError("cand contains zero; ratio base/cand is undefined")
    r = b / c
    lo, hi = bootstrap_ci(r, np.median, level, n_boot, seed)
    return Ratio(float(np.median(r)), lo, hi)


def intervals_overlap(a_lo: float, a_hi: float, b_lo: float, b_hi: float) -> bool:
    """True if closed intervals [a_lo, a_hi] and [b_lo, b_hi] share a point."""
    return a_lo <= b_hi and b_lo <= a_hi
