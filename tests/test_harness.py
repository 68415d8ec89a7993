"""Harness tests driven by a fake clock: time advances only when a fake
candidate runs, by a scripted cost. No wall-clock assertions anywhere.

Costs and sample times are powers of two so every float sum is exact and
samples can be compared with ==.
"""
import math

import numpy as np
import pytest

from mathbench.core import stats
from mathbench.core.harness import Candidate, Measurement, measure_interleaved, ratio

NS = 2.0 ** -30  # ~0.93 ns, exactly representable


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.log = []  # ("call", key) or ("clock",) events, in order
        self.calls = {}

    def __call__(self):
        self.log.append(("clock",))
        return self.now

    def candidate(self, key, cost, elements=1):
        """cost: seconds per call, or f(n) -> seconds for the n-th call (0-based)."""
        cost_fn = cost if callable(cost) else (lambda n: cost)
        self.calls[key] = 0

        def run():
            self.log.append(("call", key))
            self.now += cost_fn(self.calls[key])
            self.calls[key] += 1
        return Candidate(key, run, elements)

    def timed_batches(self):
        """Calls grouped between consecutive clock reads (empty groups dropped)."""
        groups, cur, started = [], [], False
        for ev in self.log:
            if ev[0] == "clock":
                if started and cur:
                    groups.append(cur)
                cur, started = [], True
            elif started:
                cur.append(ev[1])
        return groups


def test_calibration_tiny_and_huge():
    clk = FakeClock()
    st = 2.0 ** -17  # ~7.6 us
    cands = [clk.candidate("tiny", NS), clk.candidate("huge", 1.0)]
    m = measure_interleaved(cands, sample_time=st, samples=3, clock=clk)
    assert m["tiny"].repeats == math.ceil(st / NS) == 2 ** 13   # batched
    assert m["huge"].repeats == 1                                # one call per sample
    # tiny: batches 1, 2, ..., 2048 (2048 ns-calls = st/4), +1 warm-up call
    assert m["tiny"].calibration_calls == (2 ** 12 - 1) + 1
    assert m["huge"].calibration_calls == 1 + 1
    # samples are seconds per call, exactly the scripted cost
    assert np.all(m["tiny"].samples == NS) and m["tiny"].median == NS
    assert np.all(m["huge"].samples == 1.0)
    assert m["tiny"].lo == m["tiny"].hi == NS
    assert m["tiny"].rounds == m["huge"].rounds == 3


def test_default_sample_time():
    clk = FakeClock()
    cost = 2.0 ** -20  # ~1 us
    m = measure_interleaved([clk.candidate("a", cost)], clock=clk)["a"]
    assert m.repeats == math.ceil(2e-3 / cost)
    assert m.rounds == 7 and np.all(m.samples == cost)


def test_rounds_interleave_with_rotation():
    clk = FakeClock()
    st = 2.0 ** -10
    keys = ["a", "b", "c"]
    costs = {"a": 2.0 ** -12, "b": 2.0 ** -11, "c": 2.0 ** -10}  # repeats 4, 2, 1
    m = measure_interleaved([clk.candidate(k, costs[k]) for k in keys],
                            sample_time=st, samples=5, warmup=0, clock=clk)
    reps = {k: m[k].repeats for k in keys}
    assert reps == {"a": 4, "b": 2, "c": 1}
    n_cal = sum(m[k].calibration_calls for k in keys)
    batches = clk.timed_batches()
    n_cal_batches = 0
    while sum(map(len, batches[:n_cal_batches])) < n_cal:
        n_cal_batches += 1
    rounds = batches[n_cal_batches:]
    # every timed batch is one candidate's `repeats` calls, contiguous between clock reads
    expected = []
    for r in range(5):
        order = keys[r % 3:] + keys[:r % 3]  # rotate by one each round
        expected += [[k] * reps[k] for k in order]
    assert rounds == expected
    assert sum(map(len, batches)) == sum(clk.calls.values())  # nothing untimed after calibration


def test_warmup_runs_first_and_is_not_counted():
    clk = FakeClock()
    cold = lambda n: 1.0 if n == 0 else 2.0 ** -12  # first call is very slow (cold cache)
    cands = [clk.candidate("a", cold), clk.candidate("b", cold)]
    m = measure_interleaved(cands, sample_time=2.0 ** -10, samples=3, warmup=2, clock=clk)
    first_clock = clk.log.index(("clock",))
    assert clk.log[:first_clock] == [("call", "a")] * 2 + [("call", "b")] * 2
    for k in "ab":
        assert m[k].repeats == 4                  # calibration not fooled by the cold call
        assert np.all(m[k].samples == 2.0 ** -12)  # samples not polluted by warm-up
        assert m[k].calibration_calls == 2 + 1  # warm-up + one batch of 1 (>= st/4)
    # warmup=0: the cold call lands in calibration instead, still not in samples
    clk = FakeClock()
    m = measure_interleaved([clk.candidate("a", cold)], sample_time=2.0 ** -10,
                            samples=3, warmup=0, clock=clk)
    assert clk.log[0] == ("clock",) and m["a"].repeats == 1
    assert np.all(m["a"].samples == 2.0 ** -12)


@pytest.mark.parametrize("max_time, rounds", [
    (None, 10), (1.0, 10), (5 * 2.0 ** -7, 5), (5.5 * 2.0 ** -7, 5), (2.0 ** -7, 3), (1e-9, 3),
])
def test_max_time_caps_rounds_but_not_below_min_samples(max_time, rounds):
    clk = FakeClock()
    cands = [clk.candidate("a", 2.0 ** -10), clk.candidate("b", 2.0 ** -10)]
    # repeats 4 each -> one round costs 2 * 4 * 2^-10 = 2^-7 s
    m = measure_interleaved(cands, sample_time=2.0 ** -8, samples=10, min_samples=3,
                            max_time=max_time, clock=clk)
    assert m["a"].rounds == m["b"].rounds == rounds
    assert clk.calls["a"] == m["a"].calibration_calls + rounds * m["a"].repeats


@pytest.mark.parametrize("max_time, rounds", [(None, 10), (1.0, 10), (5 * 2.0 ** -7, 5), (1e-9, 1)])
def test_known_repeats_skip_calibration_and_budget_from_the_first_round(max_time, rounds):
    clk = FakeClock()
    cands = [clk.candidate("slow", 2.0 ** -8), clk.candidate("fast", 2.0 ** -10)]
    # slow: known 1 repeat, never calibrated; fast calibrates to 4 -> a round costs 2^-8 + 4 * 2^-10 = 2^-7 s
    m = measure_interleaved(cands, sample_time=2.0 ** -8, samples=10, min_samples=1, max_time=max_time,
                            warmup=0, clock=clk, known_repeats={"slow": 1, "absent": 3})
    assert (m["slow"].repeats, m["slow"].calibration_calls) == (1, 0)
    assert m["fast"].repeats == 4 and m["fast"].calibration_calls > 0
    assert m["slow"].rounds == m["fast"].rounds == rounds
    assert clk.calls["slow"] == rounds and (m["slow"].samples == 2.0 ** -8).all()
    assert clk.log[:2] == [("clock",), ("call", "fast")]  # calibration: the fast kernel only


def test_min_samples_above_samples_is_capped():
    clk = FakeClock()
    m = measure_interleaved([clk.candidate("a", 2.0 ** -10)], sample_time=2.0 ** -10,
                            samples=2, min_samples=3, max_time=1e-12, clock=clk)
    assert m["a"].rounds == 2


def test_drift_cancels_in_paired_ratio():
    st, ca, cb = 2.0 ** -8, 2.0 ** -10, 2.0 ** -11  # b is exactly 2x faster; repeats 4, 8

    def run(drift):
        clk = FakeClock()
        cal = drift or {}

        def cost(key, c):
            # cost grows with the round index (same factor for everyone in a round);
            # calibration/warm-up calls stay at the base cost
            def f(n):
                if key not in cal:
                    return c
                rnd = (n - cal[key][0]) // cal[key][1]
                return c * (1 + 0.25 * max(rnd, 0))
            return f
        cands = [clk.candidate("a", cost("a", ca)), clk.candidate("b", cost("b", cb))]
        return measure_interleaved(cands, sample_time=st, samples=7, clock=clk)

    steady = run(None)
    cal = {k: (steady[k].calibration_calls, steady[k].repeats) for k in "ab"}
    m = run(cal)
    factors = 1 + 0.25 * np.arange(7)
    assert np.array_equal(m["a"].samples, ca * factors)
    assert np.array_equal(m["b"].samples, cb * factors)
    assert m["a"].median == ca * factors[3] != steady["a"].median  # medians moved
    assert ratio(steady["a"], steady["b"]) == stats.Ratio(2.0, 2.0, 2.0)
    assert ratio(m["a"], m["b"]) == stats.Ratio(2.0, 2.0, 2.0)   # paired ratio exact


def test_per_element_and_ci_fields():
    clk = FakeClock()
    noisy = lambda n: 2.0 ** -10 * (1 + 0.5 * (n % 3))  # varies call to call
    m = measure_interleaved([clk.candidate("a", noisy, elements=1024)], sample_time=2.0 ** -10,
                            samples=9, warmup=0, clock=clk)["a"]
    assert isinstance(m, Measurement)
    assert m.median == np.median(m.samples)
    assert (m.lo, m.hi) == stats.bootstrap_ci(m.samples)
    pe = m.per_element
    assert pe.median == pytest.approx(m.median * 1e9 / 1024)
    assert pe.lo == pytest.approx(m.lo * 1e9 / 1024) and pe.hi == pytest.approx(m.hi * 1e9 / 1024)
    assert pe.n == 9


def test_deterministic():
    def go():
        clk = FakeClock()
        cost = lambda n: 2.0 ** -12 * (1 + (n * 7919 % 13) / 16)
        return measure_interleaved([clk.candidate("x", cost), clk.candidate("y", cost)],
                                   sample_time=2.0 ** -9, samples=5, clock=clk)
    a, b = go(), go()
    for k in "xy":
        assert np.array_equal(a[k].samples, b[k].samples) and (a[k].lo, a[k].hi) == (b[k].lo, b[k].hi)


def _ok(key="a"):
    return Candidate(key, lambda: None)


@pytest.mark.parametrize("cands, kw, msg", [
    ([], {}, "empty"),
    ([_ok("a"), _ok("a")], {}, "duplicate"),
    ([_ok()], {"samples": 0}, "samples"),
    ([_ok()], {"sample_time": 0.0}, "sample_time"),
    ([_ok()], {"sample_time": -1e-3}, "sample_time"),
    ([_ok()], {"sample_time": float("nan")}, "sample_time"),
    ([_ok()], {"min_samples": 0}, "min_samples"),
    ([_ok()], {"max_time": 0.0}, "max_time"),
    ([_ok()], {"warmup": -1}, "warmup"),
    (["not a candidate"], {}, "Candidate"),
])
def test_validation(cands, kw, msg):
    with pytest.raises(ValueError, match=msg):
        measure_interleaved(cands, clock=FakeClock(), **kw)


def test_candidate_validation_and_ratio_mismatch():
    with pytest.raises(ValueError, match="elements"):
        Candidate("a", lambda: None, elements=0)
    with pytest.raises(ValueError, match="callable"):
        Candidate("a", None)
    s = stats.Summary(1.0, 1.0, 1.0, 1)
    a = Measurement("a", 1, np.ones(3), s.median, s.lo, s.hi, 0)
    b = Measurement("b", 1, np.ones(4), s.median, s.lo, s.hi, 0)
    with pytest.raises(ValueError, match="round"):
        ratio(a, b)


def test_clock_that_never_advances_raises():
    with pytest.raises(RuntimeError, match="clock"):
        measure_interleaved([Candidate("a", lambda: None)], clock=lambda: 0.0)
