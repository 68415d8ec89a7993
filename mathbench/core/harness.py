"""Interleaved, calibrated timing of several candidates.

Design choices (why):
- Candidates run round-robin and the order rotates every round, so slow drift
  (thermal, turbo, background load) hits every candidate alike and no candidate
  always runs first/last. Samples pair up by round, which makes ratios tight.
- Tiny kernels are batched (``repeats`` calls per sample) so clock resolution
  and read overhead are negligible; big ones run once per sample.
- Compilation is the caller's job; here we only warm up (caches, allocator).
- ``clock`` is injectable so tests can drive a fake, deterministic clock.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from itertools import repeat
from typing import Callable, Hashable, Iterable

import numpy as np

from . import stats

# Calibration stops doubling once a batch takes this fraction of sample_time.
_CALIBRATION_FRACTION = 0.25
# Guard against a clock that never advances (would otherwise loop forever).
_MAX_CALIBRATION_BATCH = 1 << 20


@dataclass
class Candidate:
    key: Hashable                  # any hashable id chosen by the caller
    run: Callable[[], object]      # one call of the work
    elements: int = 1              # elements processed per call (ns/element)

    def __post_init__(self):
        if not callable(self.run):
            raise ValueError(f"candidate {self.key!r}: run must be callable")
        if int(self.elements) != self.elements or self.elements < 1:
            raise ValueError(f"candidate {self.key!r}: elements must be an int >= 1, "
                             f"got {self.elements!r}")


@dataclass(frozen=True, eq=False)
class Measurement:
    key: Hashable
    repeats: int            # calls per sample (calibrated)
    samples: np.ndarray     # seconds per call, one per round, in round order
    median: float           # seconds per call
    lo: float               # bootstrap CI of the median, seconds per call
    hi: float
    calibration_calls: int  # warm-up + calibration calls (never timed in samples)
    elements: int = 1

    @property
    def rounds(self) -> int:
        return int(self.samples.size)

    @property
    def per_element(self) -> stats.Summary:
        """Median and CI in nanoseconds per element."""
        k = 1e9 / self.elements
        return stats.Summary(self.median * k, self.lo * k, self.hi * k, self.rounds)


def _time_batch(run: Callable[[], object], n: int, clock: Callable[[], float]) -> float:
    """Total clock time of ``n`` back-to-back calls (same loop for calibration and rounds)."""
    t0 = clock()
    for _ in repeat(None, n):
        run()
    return clock() - t0


def _calibrate(run, sample_time: float, clock) -> tuple[int, float, int]:
    """Double the batch until it takes >= sample_time/4; return (repeats, per_call, calls)."""
    batch, calls = 1, 0
    while True:
        dt = _time_batch(run, batch, clock)
        calls += batch
        if dt >= sample_time * _CALIBRATION_FRACTION or batch >= _MAX_CALIBRATION_BATCH:
            break
        batch *= 2
    if dt <= 0:
        raise RuntimeError(f"clock did not advance over {batch} calls; "
                           "cannot calibrate (clock too coarse or broken?)")
    per_call = dt / batch
    return max(1, math.ceil(sample_time / per_call)), per_call, calls


def _validate(cands: list, sample_time, samples, min_samples, max_time, warmup) -> None:
    if not cands:
        raise ValueError("candidates must not be empty")
    for c in cands:
        if not isinstance(c, Candidate):
            raise ValueError(f"expected Candidate, got {type(c).__name__}")
    keys = [c.key for c in cands]
    dupes = sorted({repr(k) for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate candidate keys: {', '.join(dupes)}")
    if not sample_time > 0:  # also rejects NaN
        raise ValueError(f"sample_time must be > 0 seconds, got {sample_time!r}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples!r}")
    if min_samples < 1:
        raise ValueError(f"min_samples must be >= 1, got {min_samples!r}")
    if max_time is not None and not max_time > 0:
        raise ValueError(f"max_time must be > 0 seconds or None, got {max_time!r}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup!r}")


def measure_interleaved(candidates: Iterable[Candidate], *, sample_time: float = 2e-3,
                        samples: int = 7, min_samples: int = 3,
                        max_time: float | None = None, warmup: int = 1,
                        clock: Callable[[], float] = time.perf_counter,
                        seed: int = 0, level: float = 0.95,
                        known_repeats: dict | None = None) -> dict[Hashable, Measurement]:
    """Time candidates in rotating round-robin rounds; return {key: Measurement}.

    ``max_time`` budgets the timed rounds only (warm-up/calibration excluded):
    rounds are cut to fit, but never below ``min(min_samples, samples)``.
    ``known_repeats`` ({key: repeats}) skips calibrating those candidates (e.g. calls known to
    take longer than ``sample_time``, where calibration would only cost one more slow call).
    """
    cands = list(candidates)
    _validate(cands, sample_time, samples, min_samples, max_time, warmup)

    # 1. Warm-up: everything before the first clock read, never timed.
    for c in cands:
        for _ in range(warmup):
            c.run()

    # 2. Calibration, per candidate.
    known = dict(known_repeats or {})
    repeats, cal_calls = {}, {}
    for c in cands:
        if c.key in known:
            repeats[c.key], cal_calls[c.key] = int(known[c.key]), warmup
        else:
            repeats[c.key], _, n = _calibrate(c.run, sample_time, clock)
            cal_calls[c.key] = warmup + n

    # 3. Rounds, rotated by one each round so positions even out. max_time cuts them once the
    # next round (as long as the mean so far) would not fit, never below the floor: budgeting on
    # measured rounds rather than on the calibration keeps a calibration batch that was preempted
    # (a loaded machine) from cutting every round but the first.
    times = {c.key: np.empty(samples) for c in cands}
    floor, elapsed, n_rounds = min(min_samples, samples), 0.0, samples
    for r in range(samples):
        if max_time is not None and r >= floor and elapsed * (r + 1) / r > max_time:
            n_rounds = r
            break
        for i in range(len(cands)):
            c = cands[(r + i) % len(cands)]
            n = repeats[c.key]
            dt = _time_batch(c.run, n, clock)
            times[c.key][r] = dt / n
            elapsed += dt
    times = {key: t[:n_rounds] for key, t in times.items()}

    out = {}
    for c in cands:
        s = stats.summarize(times[c.key], level=level, seed=seed)
        out[c.key] = Measurement(c.key, repeats[c.key], times[c.key], s.median, s.lo, s.hi,
                                 cal_calls[c.key], int(c.elements))
    return out


def ratio(base: Measurement, cand: Measurement, *, level: float = 0.95,
          n_boot: int = 2000, seed: int = 0) -> stats.Ratio:
    """Speedup of ``cand`` over ``base``, paired by round (base.samples[i] / cand.samples[i])."""
    if base.samples.shape != cand.samples.shape:
        raise ValueError(f"measurements have different round counts "
                         f"({base.rounds} vs {cand.rounds}); measure them together")
    return stats.paired_ratio(base.samples, cand.samples, level=level, n_boot=n_boot, seed=seed)
