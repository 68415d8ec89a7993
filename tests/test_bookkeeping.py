"""Every reported ratio uses its intended baseline and direction: kernels and LSTM engines are
fakes whose calls advance a fake clock by a known cost, so each ratio has an exact expected value,
written out by hand in the tables below (not recomputed by the rule under test).

Costs are powers of two (multiples of U) so every sum and ratio is exact and compared with ==.
"""
from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest

from lstm_numba import data as D
from lstm_numba import sweep
from mathbench import bench
from mathbench.core import harness

U = 2.0 ** -12  # one cost unit, seconds (~0.24 ms of fake time)


class Clock:
    """Time moves only when a fake runs, by its scripted cost."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def spend(self, units):
        self.now += units * U


@pytest.fixture
def clock(monkeypatch):
    clk = Clock()
    monkeypatch.setattr(harness, "measure_interleaved", functools.partial(harness.measure_interleaved, clock=clk))
    return clk


# --------------------------------------------------------------------------------------------
# mathbench: one (dtype, size) group

# (function, form, impl, parallel): cost in U per call
KERNEL_COSTS = {
    ("copy", "forward", "numba", False): 2, ("plus", "forward", "numba", False): 4,
    ("tanh", "forward", "numba", False): 64, ("tanh", "dfdy", "numba", False): 16,
    ("isru", "forward", "numba", False): 8, ("isru", "dfdy", "numba", False): 32,
    ("tanh", "forward", "numpy", False): 32, ("tanh", "dfdy", "numpy", False): 8,
    ("isru", "forward", "numpy", False): 128, ("isru", "dfdy", "numpy", False): 16,
    ("copy", "forward", "numba", True): 1, ("plus", "forward", "numba", True): 2,
    ("tanh", "forward", "numba", True): 16, ("tanh", "dfdy", "numba", True): 8,
    ("isru", "forward", "numba", True): 4, ("isru", "dfdy", "numba", True): 64,
    # sigmoid's NumPy baseline is the registry's numpy_baseline, 1/(1+np.exp(-x)), not the stable form
    ("sigmoid", "forward", "numba", False): 8, ("sigmoid", "forward", "numpy", False): 64,
    ("sigmoid", "forward", "numpy_expr", False): 16,
}

RATIOS = ["speedup_vs_tanh", "speedup_vs_np_tanh", "speedup_vs_numpy", "speedup_vs_serial", "cost_vs_plus",
          "roof_fraction"]
# speedups: time(baseline) / time(row) -- tanh's Numba kernel of the same form and threading, np.tanh of
# the same form, the same function's NumPy code (Numba rows only), the serial kernel (parallel rows only);
# cost_vs_plus: time(row) / time(plus, same threading); roof: time(copy, same threading) / time(row)
EXPECTED = {
    ("copy", "forward", "numba", False): (32, 16, None, None, 0.5, 1),
    ("plus", "forward", "numba", False): (16, 8, None, None, 1, 0.5),
    ("tanh", "forward", "numba", False): (1, 0.5, 0.5, None, 16, 1 / 32),
    ("tanh", "dfdy", "numba", False): (1, 0.5, 0.5, None, 4, 1 / 8),
    ("isru", "forward", "numba", False): (8, 4, 16, None, 2, 1 / 4),
    ("isru", "dfdy", "numba", False): (0.5, 0.25, 0.5, None, 8, 1 / 16),
    ("tanh", "forward", "numpy", False): (2, 1, None, None, 8, 1 / 16),
    ("tanh", "dfdy", "numpy", False): (2, 1, None, None, 2, 1 / 4),
    ("isru", "forward", "numpy", False): (0.5, 0.25, None, None, 32, 1 / 64),
    ("isru", "dfdy", "numpy", False): (1, 0.5, None, None, 4, 1 / 8),
    ("copy", "forward", "numba", True): (16, 32, None, 2, 0.5, 1),
    ("plus", "forward", "numba", True): (8, 16, None, 2, 1, 0.5),
    ("tanh", "forward", "numba", True): (1, 2, 2, 4, 8, 1 / 16),
    ("tanh", "dfdy", "numba", True): (1, 1, 1, 2, 4, 1 / 8),
    ("isru", "forward", "numba", True): (4, 8, 32, 2, 2, 1 / 4),
    ("isru", "dfdy", "numba", True): (0.125, 0.125, 0.25, 0.5, 32, 1 / 64),
    ("sigmoid", "forward", "numba", False): (8, 4, 2, None, 2, 1 / 4),
    ("sigmoid", "forward", "numpy", False): (1, 0.5, None, None, 16, 1 / 32),
    ("sigmoid", "forward", "numpy_expr", False): (4, 2, None, None, 4, 1 / 8),
}


def _fake_kernel(clk, function, form, impl, parallel):
    cost = KERNEL_COSTS[(function, form, impl, parallel)]
    return SimpleNamespace(function=function, form=form, impl=impl, parallel=parallel, dtype="float32",
                           backend="numpy" if impl.startswith("numpy") else "numba", libm=None, param=1.0,
                           call=lambda x, p, out: clk.spend(cost), vectorized=None, simd_bits=None,
                           libm_calls=None, compile_seconds=0.0, cache_hit=True, note=None)


@pytest.fixture
def group_rows(clock, monkeypatch):
    # inputs are irrelevant to fakes; dfdy inputs would otherwise compile a real forward kernel
    monkeypatch.setattr(bench, "make_input", lambda act, form, n, dtype, *a: np.zeros(n, dtype))
    monkeypatch.setattr(bench.kernels, "get", lambda *a, **kw: None)
    plan = bench.Plan(functions=["tanh", "isru"], impls=None, forms=["forward", "dfdy"], dtypes=["float32"],
                      sizes=[1024], serial=True, parallel_threads=2, budget=0.05, samples=3)
    group = [_fake_kernel(clock, *k) for k in KERNEL_COSTS]
    rows = bench.measure_group(plan, group, "float32", 1024, np.random.default_rng(0))
    return {(r["function"], r["form"], r["impl"], r["parallel"]): r for r in rows}


@pytest.mark.parametrize("key", list(EXPECTED), ids=["-".join(map(str, k)) for k in EXPECTED])
def test_kernel_ratios_use_the_intended_baseline_and_direction(group_rows, key):
    row = group_rows[key]
    assert row["ns_per_element"] == KERNEL_COSTS[key] * U * 1e9 / 1024
    assert row["threads"] == (2 if key[3] else 1)
    for col, want in zip(RATIOS, EXPECTED[key]):
        prefix = "roof" if col == "roof_fraction" else col
        got = (row.get(col), row.get(f"{prefix}_lo"), row.get(f"{prefix}_hi"))
        # identical samples every round: the paired interval collapses onto the ratio itself
        assert got == ((None,) * 3 if want is None else (want,) * 3), col


# --------------------------------------------------------------------------------------------
# lstm_numba: one configuration of the sweep

TANH, ISRU, TORCH = (sweep.Variant("numba", "tanh", "sigmoid"), sweep.Variant("numba", "isru", "sigmoid"),
                     sweep.Variant("torch", "tanh", "sigmoid"))
# per variant: training step (forward, backward, optimizer), predict at batch 1, predict at the
# eval batch (all in U), held-out loss
ENGINE = {TANH: ((4, 8, 4), 4, 16, 2.0), ISRU: ((2, 4, 2), 1, 8, 2.5), TORCH: ((16, 16, 0), 8, 64, 1.5)}

LSTM_RATIOS = ["speedup_train", "speedup_latency", "speedup_throughput", "vs_torch_train", "vs_torch_latency"]
# speedup_*: time(Numba tanh/sigmoid) / time(row); vs_torch_*: time(torch) / time(row), Numba rows only
LSTM_EXPECTED = {
    TANH: (1, 1, 1, 2, 2),
    ISRU: (2, 4, 2, 4, 8),
    TORCH: (0.5, 0.5, 0.25, None, None),
}


class FakeEngine:
    def __init__(self, clk, v):
        self.clk, self.cost = clk, ENGINE[v]
        self.model = SimpleNamespace(params=SimpleNamespace(tensors=lambda: {"w": np.zeros(3)}))

    def train_step(self, x, y):
        f, b, o = self.cost[0]
        return f * U, b * U, o * U, 1.0

    def predict(self, x):
        self.clk.spend(self.cost[1] if x.shape[1] == 1 else self.cost[2])

    def evaluate(self, x, y):
        return self.cost[3], np.zeros_like(y)


@pytest.fixture(scope="module")
def text():
    return D.default_text()


@pytest.fixture
def lstm_rows(clock, monkeypatch, text):
    monkeypatch.setattr(sweep, "make_engine", lambda c, v, *a, **kw: FakeEngine(clock, v))
    s = sweep.Settings(tasks=["lm"], layers=[1], hidden=[4], threads=[1], iterations=4, repeats=2, chunks=2,
                       seq_len=8, batch=2, eval_batch=4, latency_rounds=3, prediction_time=0.01, eval_chars=64,
                       peers="off")
    c = sweep.Config("lm", 1, 4, "float32", 1)
    rows = sweep.measure_config(s, c, text, [TANH, ISRU, TORCH], {})
    return {r["variant"]: r for r in rows}


@pytest.mark.parametrize("v", list(LSTM_EXPECTED), ids=lambda v: v.label)
def test_lstm_ratios_use_the_intended_baseline_and_direction(lstm_rows, v):
    row = lstm_rows[v.label]
    (f, b, o), lat, thr, loss = ENGINE[v]
    assert (row["train_step_s"], row["forward_s"], row["backward_s"]) == ((f + b + o) * U, f * U, b * U)
    assert (row["latency_s"], row["throughput_seq_per_s"]) == (lat * U, 4 / (thr * U))
    for col, want in zip(LSTM_RATIOS, LSTM_EXPECTED[v]):
        got = (row.get(col), row.get(f"{col}_lo"), row.get(f"{col}_hi"))
        assert got == ((None,) * 3 if want is None else (want,) * 3), col
    # quality differences: this variant minus the Numba baseline, paired by seed
    assert row.get("loss_diff") == (None if v == TANH else loss - 2.0)
