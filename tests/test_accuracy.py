"""The accuracy machinery itself: rounding, ULP/abs errors, the adaptive-precision reference,
the grids, measure() and the reference cache."""
import dataclasses
import math

import mpmath
import numpy as np
import pytest
import scipy.special
import sympy as sp

from mathbench.accuracy import measure as accuracy
from mathbench.functions import kernels, registry
from mathbench.core.jit import jit

F32, F64 = "float32", "float64"


# --------------------------------------------------------------------------------------------
# rounding an mpf to a dtype


def _hp(make):
    with mpmath.workprec(200):
        return make()


@pytest.mark.parametrize("value,dtype,want", [
    (mpmath.mpf(1) / 3, F32, float(np.float32(1 / 3))),
    (mpmath.mpf(1) / 3, F64, 1 / 3),
    (1 + mpmath.mpf(2) ** -24, F32, 1.0),  # tie: to even
    (1 + 3 * mpmath.mpf(2) ** -24, F32, 1 + 2.0 ** -22),  # tie: to even (up)
    (_hp(lambda: 1 + mpmath.mpf(2) ** -24 + mpmath.mpf(2) ** -80), F32, 1 + 2.0 ** -23),  # just above the tie
    (mpmath.mpf(2) ** -149, F32, 2.0 ** -149),  # smallest subnormal
    (mpmath.mpf(2) ** -150, F32, 0.0),  # half of it: tie to even (0)
    (mpmath.mpf(2) ** -150 * 1.5, F32, 2.0 ** -149),
    (mpmath.mpf(2) ** -1074 * mpmath.mpf(2.5), F64, 2 * 2.0 ** -1074),  # subnormal tie to even
    (mpmath.mpf("3.5e38"), F32, math.inf),  # overflow
    (-mpmath.mpf("1e309"), F64, -math.inf),
    (mpmath.mpf(float(np.finfo(np.float32).max)), F32, float(np.finfo(np.float32).max)),
    (mpmath.mpf(0), F64, 0.0),
])
def test_round_to(value, dtype, want):
    assert accuracy.round_to(value, dtype) == want


def test_round_to_special():
    assert math.isnan(accuracy.round_to(mpmath.mpf("nan"), F32))
    assert accuracy.round_to(mpmath.inf, F64) == math.inf
    assert accuracy.round_to(-mpmath.inf, F32) == -math.inf


# --------------------------------------------------------------------------------------------
# errors


def _ref(values, dtype, resid=None):
    v = np.asarray(values, dtype=np.float64)
    return accuracy.Reference(v.astype(dtype), v, np.zeros_like(v) if resid is None else np.asarray(resid), dtype)


def test_ulp_and_abs_errors_including_special_values():
    eps = np.finfo(np.float64).eps
    ref = _ref([np.nan, np.inf, -np.inf, 1.0, 0.0, 1.0, 1.0, np.inf, 2.0], F64,
               resid=[0, 0, 0, 0, 0, eps / 4, 0, 0, 0])
    r = np.array([np.nan, np.inf, np.inf, 1.0 + eps, 5e-324, 1.0, np.nan, 1e308, 2.0])
    ulp, absd = accuracy.errors(r, ref)
    assert ulp[0] == 0 and absd[0] == 0  # NaN vs NaN
    assert ulp[1] == 0 and absd[1] == 0  # inf vs inf
    assert ulp[2] == np.inf and absd[2] == np.inf  # -inf wanted, inf given
    assert ulp[3] == pytest.approx(1.0) and absd[3] == eps  # one ulp of 1 (spacing above)
    assert ulp[4] == pytest.approx(1.0)  # R == 0: the smallest subnormal is the unit
    assert ulp[5] == pytest.approx(0.25)  # R = 1 + eps/4 is kept exactly (resid), r = 1
    assert ulp[6] == np.inf and absd[6] == np.inf  # NaN for a number
    assert absd[7] == np.inf  # finite for inf
    assert ulp[8] == 0


def test_ulp_of_uses_the_dtype_spacing():
    assert accuracy.ulp_of(np.array([1.0]), F32)[0] == 2.0 ** -23
    assert accuracy.ulp_of(np.array([0.0]), F32)[0] == 2.0 ** -149
    assert accuracy.ulp_of(np.array([0.0]), F64)[0] == 5e-324
    mx = float(np.finfo(np.float32).max)
    assert accuracy.ulp_of(np.array([mx]), F32)[0] == 2.0 ** 104  # not inf


def test_passes_semantics():
    b = registry.Bound(ulp=2, abs_eps=1)
    ulp = np.array([1.0, 3.0, 3.0, np.inf])
    absd = np.array([1.0, 1e-20, 1e-10, np.inf])
    assert accuracy.passes(b, F64, ulp, absd).tolist() == [True, True, False, False]
    # ulp = inf is "no ULP promise": only the absolute limit counts, and a special-value
    # mismatch (infinite abs error) never passes
    b = registry.Bound(ulp=math.inf, abs=1e-6)
    assert accuracy.passes(b, F64, np.array([1e30, 1.0, 0.0]), np.array([1e-7, 1e-5, np.inf])).tolist() == [
        True, False, False]


# --------------------------------------------------------------------------------------------
# the reference


def _value(name, form, xv, dtype=F64, param=None):
    act = registry.get(name)
    return accuracy.reference_values(act, form, dtype, [xv], param=param)


def _exact(name, form, xv, dtype=F64, param=None):
    r = _value(name, form, xv, dtype, param)
    return r.value[0] + r.resid[0]


def test_reference_survives_cancellation():
    # log(1 + exp(-700)) is exactly 0 at 40 digits but 9.86e-305 in float64
    assert _exact("softplus", "forward", -700.0) == pytest.approx(math.exp(-700), rel=1e-14)
    # 1 - exp(-y) for tiny y
    assert _exact("softplus", "dfdy", 1e-300) == pytest.approx(1e-300, rel=1e-14)
    assert _value("softplus", "dfdy", 5e-324).value[0] == 5e-324
    # 1 - tanh(x)^2 at x = 370: 4 exp(-740), a float64 subnormal, by 1070 bits of cancellation
    assert _value("tanh", "dfdx", 370.0).value[0] == pytest.approx(4 * math.exp(-740), rel=0.05)
    assert _value("tanh", "dfdx", 370.0).value[0] > 0
    assert _value("tanh", "dfdx", 400.0).value[0] == 0.0  # below the subnormal range


def test_reference_special_inputs():
    nan, inf = math.nan, math.inf
    assert math.isnan(_value("tanh", "forward", nan).value[0])
    assert math.isnan(_value("relu", "dfdx", nan).value[0])  # NaN in, NaN out, even for Piecewise
    assert _value("tanh", "forward", inf).value[0] == 1.0
    assert _value("tanh", "forward", -inf).value[0] == -1.0
    assert _value("softplus", "forward", inf).value[0] == inf
    assert _value("softplus", "forward", -inf).value[0] == 0.0
    assert _value("sigmoid", "dfdx", inf).value[0] == 0.0
    assert _value("isru", "forward", inf, param=4.0).value[0] == 0.5
    assert _value("hard_tanh", "forward", -inf).value[0] == -1.0  # Piecewise limit
    assert _value("elu", "forward", -inf).value[0] == -1.0
    assert _value("log", "forward", inf).value[0] == inf
    assert _value("sqrt", "dfdy", 0.0).value[0] == inf  # 1/(2y) at the range end, from inside
    assert _value("softplus", "forward", 1e30).value[0] == 1e30
    assert _value("isru", "forward", 1e30).value[0] == 1.0
    d = float(np.finfo(np.float32).smallest_subnormal)
    assert _value("tanh", "forward", d, F32).value[0] == d
    assert _value("sigmoid", "forward", -d, F32).value[0] == 0.5


def test_reference_uses_the_parameter_the_kernel_receives():
    # leaky_relu's 0.01 is not a float32: the reference uses float32(0.01) exactly
    v = _value("leaky_relu", "forward", -1.0, F32)
    assert v.value[0] == float(np.float32(-0.01)) and v.resid[0] == 0.0
    assert _value("isru", "forward", 1.0, param=3.0).value[0] == pytest.approx(0.5)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_reference_agrees_with_independent_float64_formulas(dtype):
    x = np.linspace(-30, 30, 241).astype(dtype)
    tol = 1 if dtype == F32 else 2  # correctly rounded vs SciPy/NumPy's own (<= 1-2 ulp)
    for name, form, fn in [("tanh", "forward", np.tanh), ("sigmoid", "forward", scipy.special.expit),
                           ("softplus", "forward", lambda v: np.logaddexp(0, v)),
                           ("softplus", "dfdx", scipy.special.expit)]:
        ref = accuracy.reference(name, form, dtype, xs=x)
        want = fn(x.astype(np.float64)).astype(dtype)
        ulp, _ = accuracy.errors(want, ref)
        assert ulp.max() <= tol, (name, form, x[np.argmax(ulp)])


# --------------------------------------------------------------------------------------------
# grids


@pytest.mark.parametrize("dtype", [F32, F64])
def test_x_grid_contents(dtype):
    g = accuracy.grid("tanh", "forward", dtype)
    fi = np.finfo(dtype)
    assert g.dtype == np.dtype(dtype) and 2500 < len(g) < 6000
    assert np.isnan(g).sum() == 1
    for v in [np.inf, -np.inf, fi.max, -fi.max, fi.smallest_subnormal, -fi.smallest_subnormal, fi.tiny, 1e30,
              -1e30, 0.5, -9.99]:
        assert np.any(g == np.asarray(v, dtype=dtype)), v
    zeros = g[g == 0]
    assert np.signbit(zeros).any() and (~np.signbit(zeros)).any()  # both +0 and -0
    t = np.dtype(dtype).type
    clamp = t(7.90738964080810547)  # the rational tanh's clamp and its neighbours
    for v in (clamp, np.nextafter(clamp, t(0)), np.nextafter(clamp, t(np.inf))):
        assert np.any(g == v) and np.any(g == -v)
    # linear part on [-10, 10] and log-spaced magnitudes over the whole range
    assert np.sum((g >= -10) & (g <= 10)) > 2000
    assert np.sum((np.abs(g) > 0) & (np.abs(g) < 1e-30)) > 200
    isru = accuracy.grid("isru", "forward", dtype)
    assert np.any(isru == np.asarray(2.0 ** 30, dtype=dtype))
    assert np.any(isru == np.nextafter(t(2.0 ** 30), t(np.inf)))


def test_positive_domain_grid():
    for form in ("forward", "dfdx"):
        g = accuracy.grid("log", form, F64)
        assert np.all((g > 0) | np.isnan(g)) and np.any(g == np.inf)


@pytest.mark.parametrize("name,lo,hi", [("tanh", -1, 1), ("sigmoid", 0, 1), ("softplus", 0, np.inf),
                                        ("isru", -1, 1)])
def test_dfdy_grid_is_the_output_range(name, lo, hi):
    for dtype in (F32, F64):
        g = accuracy.grid(name, "dfdy", dtype)
        fin = g[~np.isnan(g)]
        assert fin.min() == lo and fin.max() == hi  # the range ends themselves
        assert len(fin) > 1000
        assert np.isnan(g).sum() == 1


def test_unknown_form():
    with pytest.raises(ValueError, match="unknown form"):
        accuracy.grid("tanh", "d2fdx2", F64)


# --------------------------------------------------------------------------------------------
# measure


KEYS = {"max_ulp", "max_abs", "worst_x", "n_points", "bound_ulp", "bound_abs", "within_bound"}


def test_measure_real_kernel():
    k = kernels.get("tanh", "numba", "forward", F32)
    m = accuracy.measure(k)
    assert KEYS <= set(m)
    assert m["within_bound"] and m["n_points"] == len(accuracy.grid("tanh", "forward", F32))
    assert m["bound_ulp"] == 2.5 and 0 < m["max_ulp"] <= 2.5  # glibc tanhf: 2.19 ulp at worst (every float32)


def test_measure_numpy_kernel_and_other_form():
    k = kernels.get("sigmoid", "numpy", "dfdx", F64)
    assert accuracy.measure(k)["within_bound"]


@jit
def _tanh_3ulp_high(x, p):
    t = math.tanh(x)
    return t + 3 * (abs(t) * 1.1102230246251565e-16) if x == x else x


@jit
def _tanh_nan_at_inf(x, p):
    return math.tanh(x) if abs(x) < 1e300 else x - x


def _fake(act, name, forward):
    impl = dataclasses.replace(act.impl("numba"), name=name, forward=forward)
    return dataclasses.replace(act, impls={**act.impls, name: impl}), impl


def test_measure_catches_a_few_ulp_and_a_special_value_bug():
    act = registry.get("tanh")
    a2, impl = _fake(act, "fake", _tanh_3ulp_high)
    m = accuracy.measure_impl(a2, impl, "forward", F64)
    assert not m["within_bound"] and m["max_ulp"] > 2
    a3, impl = _fake(act, "fake", _tanh_nan_at_inf)
    m = accuracy.measure_impl(a3, impl, "forward", F64)
    assert not m["within_bound"] and m["n_special_mismatch"] == 2 and abs(m["worst_x"]) == math.inf


def test_mutated_formula_changes_the_reference():
    act = registry.get("sigmoid")
    wrong = dataclasses.replace(act, dfdy=registry.y * (1 + registry.y))
    assert not accuracy.measure_impl(wrong, "numba", "dfdy", F64)["within_bound"]
    assert accuracy.measure_impl(act, "numba", "dfdy", F64)["within_bound"]


# --------------------------------------------------------------------------------------------
# caching


def test_reference_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("MATHBENCH_CACHE_DIR", str(tmp_path))
    accuracy.clear_memory_cache()
    xs = np.linspace(-3, 3, 7)
    try:
        first = accuracy.reference("softsign", "forward", F64, xs=xs)
        files = list((tmp_path / "reference").glob("*.npz"))
        assert len(files) == 1
        accuracy.clear_memory_cache()

        def boom(*a, **k):
            raise AssertionError("recomputed instead of loading the cache")

        monkeypatch.setattr(accuracy.Evaluator, "value", boom)
        again = accuracy.reference("softsign", "forward", F64, xs=xs)
        assert np.array_equal(first.value, again.value) and np.array_equal(first.resid, again.resid)
        # another expression (a mutated registry entry) is another key
        monkeypatch.undo()
        monkeypatch.setenv("MATHBENCH_CACHE_DIR", str(tmp_path))
        act = dataclasses.replace(registry.get("softsign"), f=registry.x / (2 + sp.Abs(registry.x)))
        accuracy.reference(act, "forward", F64, xs=xs)
        assert len(list((tmp_path / "reference").glob("*.npz"))) == 2
    finally:
        accuracy.clear_memory_cache()

