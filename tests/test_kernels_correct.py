"""Correctness of every kernel (issue 2): each Numba kernel (serial and parallel) and each NumPy
implementation, every form and dtype, against the mpmath reference built from the registry's
SymPy expressions, within the Bound the registry declares for it.

Also: property-based tests over the whole float range for the core functions; derivative
kernels against central differences and the backprop form against the derivative, with
tolerances derived from the error bounds; exact answers at special values; no floating-point
warnings from softplus and sigmoid.
"""
import math
import warnings

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mathbench.accuracy import measure as accuracy, symbolic
from mathbench.functions import kernels, registry

FORMS = registry.FORMS
DTYPES = registry.DTYPES


def _cases(backends=("numba", "numpy"), parallel=(False, True), functions=None):
    out = []
    for name, act in registry.REGISTRY.items():
        if functions and name not in functions:
            continue
        for impl in act.impls.values():
            if impl.backend not in backends:
                continue
            for form in FORMS:
                if impl.fn(form) is None or symbolic.form_expr(act, form)[0] is None:
                    continue
                for dtype in DTYPES:
                    for par in parallel:
                        if par and impl.backend != "numba":
                            continue
                        out.append(pytest.param(name, impl.name, form, dtype, par,
                                                id=f"{name}-{impl.name}-{form}-{dtype}{'-par' if par else ''}"))
    return out


def _run(k, x):
    out = np.empty_like(x)
    with np.errstate(all="ignore"):
        k.call(np.ascontiguousarray(x), k.param, out)
    return out


def _describe(m):
    return (f"max {m['ulp_beyond_abs']:.3g} ulp (beyond abs) / {m['max_abs']:.3g} abs vs bound "
            f"{m['bound_ulp']:g} ulp | {m['bound_abs']:.3g}; {m['n_fail']} of {m['n_points']} points fail; "
            f"worst x={m['worst_x']!r}: got {m['worst_out']!r}, want {m['worst_ref']!r}")


# --------------------------------------------------------------------------------------------
# every kernel on the dense grid + special values


@pytest.mark.parametrize("function,impl,form,dtype,parallel", _cases())
def test_kernel_within_declared_bound(function, impl, form, dtype, parallel):
    k = kernels.get(function, impl, form, dtype, parallel)
    m = accuracy.measure(k)
    assert m["n_points"] > 1500
    assert m["within_bound"], _describe(m)


@pytest.mark.parametrize("function,impl,form,dtype,parallel", _cases(backends=("torch",), parallel=(False,)))
def test_torch_within_declared_bound(function, impl, form, dtype, parallel):
    pytest.importorskip("torch")
    m = accuracy.measure(kernels.get(function, impl, form, dtype))
    assert m["within_bound"], _describe(m)


# --------------------------------------------------------------------------------------------
# property-based, over the whole float range, for the four core functions


def _core_impls():
    return [pytest.param(n, i.name, d, id=f"{n}-{i.name}-{d}")
            for n in registry.CORE for i in registry.get(n).impls.values() if i.backend in ("numba", "numpy")
            for d in DTYPES]


@pytest.mark.parametrize("function,impl,dtype", _core_impls())
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_core_property_whole_float_range(function, impl, dtype, data):
    act = registry.get(function)
    im = act.impl(impl)
    width = 32 if dtype == "float32" else 64
    xs = data.draw(st.lists(st.floats(width=width, allow_nan=True, allow_infinity=True, allow_subnormal=True),
                            min_size=1, max_size=16), label="x")
    lo, hi = accuracy.range_ends(act, dtype)
    ys = data.draw(st.lists(st.floats(min_value=lo, max_value=hi, width=width, allow_subnormal=True),
                            min_size=1, max_size=16), label="y")
    for form, pts in (("forward", xs), ("dfdx", xs), ("dfdy", ys)):
        k = kernels.get(function, impl, form, dtype)
        x = np.asarray(pts, dtype=dtype)
        ref = accuracy.reference_values(act, form, dtype, x)
        m = accuracy.summarize(x, _run(k, x), ref, im.bound(form, dtype))
        assert m["within_bound"], f"{form}: {_describe(m)}"


# --------------------------------------------------------------------------------------------
# derivatives against central differences (float64, smooth points)

H = 2.0 ** -17  # ~ cbrt(eps): balances truncation h^2 f'''/6 against rounding eps*f/h
# A rational approximation t_r of tanh has t_r' != 1 - t_r^2: the difference is the slope of its
# approximation error (max 2.7e-7, oscillating with period ~1), measured at 2.7e-8 relative.
APPROX_SLOPE = 1e-7


def _smooth_points(act):
    if act.domain == "positive":
        x = np.linspace(0.05, 6.0, 1001)
    else:
        x = np.linspace(-6.0, 6.0, 2001)
    for k in act.kinks:  # the registry's; a missing kink shows as a failed difference there
        x = x[np.abs(x - k) > 1e-3]
    return x


def _abs_err(bound, dtype, v):
    """The absolute error the bound allows at output v (elementwise)."""
    ulp = bound.ulp if math.isfinite(bound.ulp) else 0.0
    return np.maximum(ulp * accuracy.ulp_of(v, dtype), bound.abs_limit(dtype))


def _np_fn(act, expr, var):
    """expr as a float64 NumPy function (DiracDelta terms dropped: only smooth points are used)."""
    expr = expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    fn = sp.lambdify((var, *symbolic.param_symbols(act)), expr, modules="numpy")
    args = (act.param_default,) if act.param else ()

    def call(v):
        with np.errstate(all="ignore"):  # np.select evaluates every branch everywhere
            return np.broadcast_to(np.asarray(fn(v, *args), dtype=np.float64), np.shape(v))

    return call


def _fd_cases():
    return [pytest.param(n, i.name, id=f"{n}-{i.name}") for n, a in registry.REGISTRY.items()
            for i in a.impls.values() if i.backend in ("numba", "numpy")]


@pytest.mark.parametrize("function,impl", _fd_cases())
def test_dfdx_matches_central_difference(function, impl):
    act = registry.get(function)
    im = act.impl(impl)
    x = _smooth_points(act)
    kf = kernels.get(function, impl, "forward", "float64")
    kd = kernels.get(function, impl, "dfdx", "float64")
    f, d = _run(kf, x), _run(kd, x)
    xp, xm = x + H, x - H
    fd = (_run(kf, xp) - _run(kf, xm)) / (xp - xm)  # the step actually taken (exact difference)
    f3 = np.abs(_np_fn(act, sp.diff(act.f, registry.x, 3), registry.x)(x))
    fwd = im.bound("forward", "float64")
    # rounding noise in the forward values: the declared bound; for an approximation (no ULP
    # promise) its error is smooth, and only a few ulps of rounding are noise
    noise = (_abs_err(fwd, "float64", f) if math.isfinite(fwd.ulp)
             else np.maximum(4 * accuracy.ulp_of(f, "float64"), 4 * np.finfo(np.float64).eps))
    tol = (2 * H * H / 6 * f3  # truncation, with a factor 2 for f''' varying over [x-h, x+h]
           + noise / H  # rounding of f(x +- h), amplified by 1/(2h), twice
           + _abs_err(im.bound("dfdx", "float64"), "float64", d)  # the derivative kernel's own error
           + (APPROX_SLOPE * (1 + np.abs(d)) if not math.isfinite(fwd.ulp) else 0.0))
    bad = np.abs(fd - d) > tol
    i = int(np.argmax(np.abs(fd - d) / tol))
    assert not bad.any(), f"{bad.sum()} points; worst x={x[i]}: dfdx {d[i]!r}, central difference {fd[i]!r}, tol {tol[i]:.3g}"


# --------------------------------------------------------------------------------------------
# backprop form: g(f(x)) == f'(x), within the error the conditioning allows


def _dy_cases():
    return [pytest.param(n, i.name, d, id=f"{n}-{i.name}-{d}") for n, a in registry.REGISTRY.items()
            if a.dfdy is not None for i in a.impls.values()
            if i.backend in ("numba", "numpy") and i.dfdy is not None for d in DTYPES]


@pytest.mark.parametrize("function,impl,dtype", _dy_cases())
def test_dfdy_of_forward_matches_dfdx(function, impl, dtype):
    """|g(y~) - f'(x)| <= |g'(y)| dy + err_g + err_f', where y~ = f(x) as computed (off by at
    most the forward bound dy), err_g and err_f' the bounds of the two derivative kernels."""
    act = registry.get(function)
    im = act.impl(impl)
    x = _smooth_points(act).astype(dtype)
    y = _run(kernels.get(function, impl, "forward", dtype), x)
    g = _run(kernels.get(function, impl, "dfdy", dtype), y)
    d = _run(kernels.get(function, impl, "dfdx", dtype), x)
    gprime = np.abs(_np_fn(act, sp.diff(act.dfdy, registry.y), registry.y)(y.astype(np.float64)))
    dy = _abs_err(im.bound("forward", dtype), dtype, y)
    tol = (gprime * dy + _abs_err(im.bound("dfdy", dtype), dtype, g)
           + _abs_err(im.bound("dfdx", dtype), dtype, d))
    err = np.abs(g.astype(np.float64) - d.astype(np.float64))
    bad = err > tol
    i = int(np.argmax(err / tol))
    assert not bad.any(), f"{bad.sum()} points; worst x={x[i]}: g(f(x)) {g[i]!r}, f'(x) {d[i]!r}, tol {tol[i]:.3g}"


# --------------------------------------------------------------------------------------------
# special values, exactly


def _specials(dtype):
    fi = np.finfo(dtype)
    den = float(fi.smallest_subnormal)
    big = float(fi.max)
    t = math.tanh
    return {
        ("tanh", "forward"): [(0.0, 0.0), (-0.0, 0.0), (math.inf, 1.0), (-math.inf, -1.0), (math.nan, math.nan),
                              (1e30, 1.0), (-1e30, -1.0), (big, 1.0), (-big, -1.0), (den, den), (-den, -den),
                              (0.5, t(0.5))],
        ("tanh", "dfdx"): [(0.0, 1.0), (math.inf, 0.0), (-math.inf, 0.0), (math.nan, math.nan), (1e30, 0.0),
                           (-1e30, 0.0), (den, 1.0), (big, 0.0)],
        ("tanh", "dfdy"): [(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (-0.0, 1.0), (den, 1.0), (math.nan, math.nan)],
        ("isru", "forward"): [(0.0, 0.0), (math.inf, 1.0), (-math.inf, -1.0), (math.nan, math.nan), (1e30, 1.0),
                              (-1e30, -1.0), (big, 1.0), (-big, -1.0), (den, den), (-den, -den),
                              (1.0, 1 / math.sqrt(2))],
        ("isru", "dfdx"): [(0.0, 1.0), (math.inf, 0.0), (-math.inf, 0.0), (math.nan, math.nan), (den, 1.0),
                           (1e30, 1e-90 if dtype == np.float64 else 0.0), (big, 0.0), (1.0, 2 ** -1.5)],
        ("isru", "dfdy"): [(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (den, 1.0), (math.nan, math.nan)],
        ("softplus", "forward"): [(0.0, math.log(2)), (-0.0, math.log(2)), (math.inf, math.inf), (-math.inf, 0.0),
                                  (math.nan, math.nan), (1e30, 1e30), (-1e30, 0.0), (big, big), (-big, 0.0),
                                  (den, math.log(2)), (1000.0, 1000.0), (-1000.0, 0.0), (-60.0, math.exp(-60))],
        ("softplus", "dfdx"): [(0.0, 0.5), (math.inf, 1.0), (-math.inf, 0.0), (math.nan, math.nan), (1e30, 1.0),
                               (-1e30, 0.0), (big, 1.0), (-big, 0.0), (den, 0.5)],
        ("softplus", "dfdy"): [(0.0, 0.0), (math.inf, 1.0), (math.nan, math.nan), (1e30, 1.0), (big, 1.0),
                               (den, den), (1e-30, 1e-30)],
        ("sigmoid", "forward"): [(0.0, 0.5), (-0.0, 0.5), (math.inf, 1.0), (-math.inf, 0.0), (math.nan, math.nan),
                                 (1e30, 1.0), (-1e30, 0.0), (big, 1.0), (-big, 0.0), (den, 0.5), (-den, 0.5)],
        ("sigmoid", "dfdx"): [(0.0, 0.25), (math.inf, 0.0), (-math.inf, 0.0), (math.nan, math.nan), (1e30, 0.0),
                              (-1e30, 0.0), (big, 0.0), (-big, 0.0), (den, 0.25)],
        ("sigmoid", "dfdy"): [(0.0, 0.0), (1.0, 0.0), (0.5, 0.25), (math.nan, math.nan), (den, den)],
    }


def _special_cases():
    return [pytest.param(n, i.name, f, d, par, id=f"{n}-{i.name}-{f}-{d}{'-par' if par else ''}")
            for n in registry.CORE for i in registry.get(n).impls.values() if i.backend in ("numba", "numpy")
            for f in FORMS for d in DTYPES for par in ((False, True) if i.backend == "numba" else (False,))]


@pytest.mark.parametrize("function,impl,form,dtype,parallel", _special_cases())
def test_special_values(function, impl, form, dtype, parallel):
    dt = np.dtype(dtype).type
    cases = _specials(dt)[(function, form)]
    x = np.array([c[0] for c in cases], dtype=dtype)
    want = np.array([c[1] for c in cases], dtype=dtype)
    got = _run(kernels.get(function, impl, form, dtype, parallel), x)
    # exact for NaN / inf / 0 / +-1 patterns; otherwise within 1e-6 relative (the grid test
    # checks the declared bound; this one checks the answers themselves)
    exact = np.isnan(want) | np.isinf(want) | (want == 0) | (np.abs(want) == 1)
    ok = np.where(exact, (got == want) | (np.isnan(got) & np.isnan(want)),
                  np.isclose(got, want, rtol=1e-6, atol=float(np.finfo(dtype).smallest_subnormal)))
    assert ok.all(), f"x={x[~ok]}, got {got[~ok]}, want {want[~ok]}"


# --------------------------------------------------------------------------------------------
# softplus and sigmoid never overflow or warn


def _hostile(dtype):
    fi = np.finfo(dtype)
    v = [0.0, -0.0, 1.0, -1.0, 88.0, -88.0, 89.0, -89.0, 710.0, -710.0, 746.0, -746.0, 1000.0, -1000.0, 1e30,
         -1e30, float(fi.max), -float(fi.max), np.inf, -np.inf, np.nan, float(fi.smallest_subnormal),
         -float(fi.smallest_subnormal), float(fi.tiny)]
    with np.errstate(over="ignore"):
        return np.array(v, dtype=dtype)


@pytest.mark.parametrize("function", ["softplus", "sigmoid"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus_sigmoid_never_overflow_or_warn(function, dtype):
    """NumPy: no overflow/divide/invalid flag (underflow to a subnormal or 0 is the right answer
    for exp(-1000), and NumPy ignores it by default) and no warning. Numba: finite in, finite out,
    for the forward and dfdx forms; dfdy on its whole output range."""
    act = registry.get(function)
    x = _hostile(dtype)
    lo, hi = accuracy.range_ends(act, dtype)
    y = np.concatenate([x[(x >= lo) & (x <= hi)], np.array([lo, hi, np.nan], dtype=dtype)])
    for impl in act.impls.values():
        if impl.backend not in ("numba", "numpy"):
            continue
        for form, inp in (("forward", x), ("dfdx", x), ("dfdy", y)):
            k = kernels.get(function, impl.name, form, dtype)
            out = np.empty_like(inp)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
                    k.call(inp, k.param, out)
            fin = np.isfinite(inp)
            assert np.isfinite(out[fin]).all(), f"{impl.name} {form}: non-finite output for finite input {inp[fin][~np.isfinite(out[fin])]}"
            assert np.isnan(out[np.isnan(inp)]).all(), f"{impl.name} {form}: NaN not propagated"
