"""The accurate vectorizable kernels (numba_simd), ISRU through rsqrt, and their references.

Each new kernel is checked on whole float32 sub-ranges (every bit pattern of a 2^24 chunk)
against its float64 reference within the bound the registry declares, on special values, and
its derivative forms against finite differences and against g(f(x)); the float64 references
themselves are checked against mpmath."""
import math
import warnings

import mpmath
import numpy as np
import pytest

from mathbench.accuracy import exhaustive
from mathbench.functions import kernels, ref64, registry

SIMD = [(f, form) for f in ("tanh", "sigmoid", "softplus", "exp") for form in registry.FORMS]
NEW = [(f, "numba_simd", form) for f, form in SIMD] + [("isru", "numba_rsqrt", "forward"),
                                                       ("isru", "numba_rsqrt", "dfdx")]
# chunk c holds the bit patterns [c * 2^24, (c+1) * 2^24): 0 = +0, subnormals and tiny; 63 =
# [0.5, 2) and 64 = [2, 8) (the polynomial/exp splits, exp's range reduction); 191 = [-2, -0.5).
# The whole range is the committed exhaustive run's job; NaN and inf are in test_special_values.
CHUNKS = (0, 63, 64, 191)


@pytest.mark.parametrize("function,impl,form", NEW, ids=["-".join(t) for t in NEW])
def test_float32_sub_ranges_within_declared_bound(function, impl, form):
    n = 0
    for c in CHUNKS:
        r = exhaustive.check(function, impl, form, "float32", chunks=range(c, c + 1), workers=2)
        assert r["within_bound"], (c, r)
        assert r["n_special_mismatch"] == 0, (c, r)
        n += r["n_inputs"]
    assert n >= 1 << 24  # every pattern of the chunks (for g(y): those inside the range of f)


def test_exhaustive_finds_the_rational_tanh_worst_case():
    # every float32 in [2, 8): the 9/8 rational's worst error, 5.11 ulp at x = 7.0374, which a
    # sampled grid missed (it quoted 4.54)
    r = exhaustive.check("tanh", "numba_rational", "forward", "float32", chunks=range(64, 65))
    assert 5.0 < r["max_ulp"] < 5.2
    assert r["worst_x"] == pytest.approx(7.0374489, abs=1e-6)
    assert r["n_inputs"] == 1 << 24


def test_exhaustive_counts_a_known_error_exactly(monkeypatch):
    # a fake tanh one float32 step above the correctly rounded value everywhere: >= 0.5 ulp and
    # <= 1.5 ulp at every input, NaN kept
    act = registry.get("tanh")
    real = exhaustive._evaluate

    def off_by_one(call, x, p):
        with np.errstate(all="ignore"):
            t = np.tanh(x.astype(np.float64)).astype(np.float32)
            return np.nextafter(t, np.float32(np.inf))

    monkeypatch.setattr(exhaustive, "_evaluate", off_by_one)
    r = exhaustive.check("tanh", "numba_simd", "forward", "float32", chunks=range(63, 64))
    monkeypatch.setattr(exhaustive, "_evaluate", real)
    assert 0.5 <= r["max_ulp"] <= 1.5
    hist = r["hist"]
    assert hist[0] + hist[1] + hist[2] == r["n_inputs"] and hist[0] < r["n_inputs"]
    assert act.ref64["forward"] is ref64.tanh


def test_float64_grid_within_bound_and_covers_boundaries():
    act = registry.get("exp")
    g = exhaustive.f64_grid(act, 40_000)
    ln2 = math.log(2)
    b = 5.5 * ln2
    assert np.any(g == b) and np.any(g == np.nextafter(b, 0)) and np.any(g == np.nextafter(b, 1e9))
    assert np.isnan(g).any() and np.isinf(g).any() and np.any(g == 5e-324)
    for f, form in SIMD:
        r = exhaustive.check(f, "numba_simd", form, "float64", f64_points=200_000)
        assert r["within_bound"], r
        assert r["n_special_mismatch"] == 0


def _kernel(function, impl, form, dtype):
    k = kernels.get(function, impl, form, dtype)

    def run(x):
        x = np.ascontiguousarray(x, dtype=dtype)
        out = np.empty_like(x)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            k.call(x, k.param, out)
        return out

    return run


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("function", ["tanh", "sigmoid", "softplus", "exp"])
def test_special_values(function, dtype):
    f = _kernel(function, "numba_simd", "forward", dtype)
    fi = np.finfo(dtype)
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, fi.smallest_subnormal, -fi.smallest_subnormal,
                  fi.tiny, fi.max, -fi.max, 1e-30, -1e-30], dtype=dtype)
    y = f(x)
    assert np.isnan(y[0])
    expect_inf = {"tanh": (1, -1), "sigmoid": (1, 0), "softplus": (np.inf, 0), "exp": (np.inf, 0)}[function]
    assert (y[1], y[2]) == expect_inf
    assert not np.isnan(y[1:]).any()
    if function == "tanh":
        # odd, exact sign of zero, tanh(x) == x for tiny x (subnormals included), saturation
        assert np.signbit(y[4]) and not np.signbit(y[3])
        assert y[5] == x[5] and y[6] == x[6] and y[7] == x[7] and y[10] == x[10]
        assert y[8] == 1 and y[9] == -1
    if function == "sigmoid":
        assert y[3] == 0.5 and y[4] == 0.5 and y[8] == 1 and y[9] == 0
    if function == "exp":
        assert y[3] == 1 and y[5] == 1 and y[8] == np.inf and y[9] == 0
    if function == "softplus":
        assert y[8] == x[8] and y[9] == 0 and abs(y[3] - math.log(2)) <= float(fi.eps)


def test_exp_subnormal_results_and_overflow_edge():
    f = _kernel("exp", "numba_simd", "forward", "float32")
    x = np.array([-103.0, -100.0, -90.0, 88.72283, 88.7229], dtype=np.float32)
    y = f(x).astype(np.float64)
    ref = np.exp(x.astype(np.float64))
    # subnormal outputs: within one subnormal step; the overflow edge: inf exactly where float32 is
    assert np.all(np.abs(y[:3] - ref[:3]) <= 2.0 ** -149)
    assert np.isfinite(y[3]) and y[4] == np.inf


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("function", ["tanh", "sigmoid", "softplus", "exp"])
def test_dfdx_matches_central_differences(function, dtype):
    # differences in float64 of the float64 kernel, compared with the kernel's dfdx of either dtype
    f64 = _kernel(function, "numba_simd", "forward", "float64")
    d = _kernel(function, "numba_simd", "dfdx", dtype)
    x = np.linspace(-12, 12, 2401)
    h = 1e-6
    fd = (f64(x + h) - f64(x - h)) / (2 * h)  # error about eps |f| / h + h^2 |f'''| / 6
    got = d(x).astype(np.float64)
    atol = 4 * np.finfo(np.float64).eps * np.abs(f64(x)) / h
    np.testing.assert_allclose(got, fd, rtol=2e-5 if dtype == "float32" else 1e-7, atol=float(atol.max()))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("function", ["tanh", "sigmoid", "softplus", "exp"])
def test_dfdy_of_f_equals_dfdx(function, dtype):
    f = _kernel(function, "numba_simd", "forward", dtype)
    dx = _kernel(function, "numba_simd", "dfdx", dtype)
    dy = _kernel(function, "numba_simd", "dfdy", dtype)
    x = np.linspace(-15, 15, 3001).astype(dtype)
    eps = float(np.finfo(dtype).eps)
    np.testing.assert_allclose(dy(f(x)), dx(x), rtol=64 * eps, atol=8 * eps)


@pytest.mark.parametrize("impl", ["numba_simd", "numba_rsqrt"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_new_kernels_vectorize_without_libm(impl, dtype):
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("assembly check is x86_64-only")
    for act in registry.REGISTRY.values():
        if impl not in act.impls:
            continue
        for form in registry.FORMS:
            fn = act.impls[impl].fn(form)
            if fn is None or fn.py_func.__name__ == "identity":
                continue  # exp's g(y) = y: a copy loop, which LLVM may turn into a memcpy call
            k = kernels.get(act.name, impl, form, dtype)
            assert k.vectorized is True and k.simd_bits >= 256 and k.libm_calls == "", (act.name, form, k)


def test_rsqrt_kernel_uses_the_estimate_instruction():
    import platform

    import numba

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("x86_64 only")
    disp = kernels.numba_dispatcher(registry.get("isru").impls["numba_rsqrt"].forward, False)
    twin = numba.njit(error_model="numpy", fastmath=disp.targetoptions["fastmath"])(disp.py_func)
    sig = (numba.types.float32[::1], numba.types.float32, numba.types.float32[::1])
    twin.compile(sig)
    asm = twin.inspect_asm(sig)
    assert "vrsqrt" in asm and "vsqrtps" not in asm


# --------------------------------------------------------------------------------------------
# the references themselves, against mpmath (including the tails a naive formula gets wrong)

_MP = {
    ("tanh", "forward"): lambda x: mpmath.tanh(x),
    ("tanh", "dfdx"): lambda x: mpmath.sech(x) ** 2,
    ("tanh", "dfdy"): lambda y: 1 - y * y,
    ("sigmoid", "forward"): lambda x: 1 / (1 + mpmath.exp(-x)),
    ("sigmoid", "dfdx"): lambda x: mpmath.exp(-x) / (1 + mpmath.exp(-x)) ** 2,
    ("sigmoid", "dfdy"): lambda y: y * (1 - y),
    ("softplus", "forward"): lambda x: mpmath.log1p(mpmath.exp(x)),
    ("softplus", "dfdx"): lambda x: 1 / (1 + mpmath.exp(-x)),
    ("softplus", "dfdy"): lambda y: 1 - mpmath.exp(-y),
    ("exp", "forward"): lambda x: mpmath.exp(x),
    ("isru", "forward"): lambda x: x / mpmath.sqrt(1 + x * x),
    ("isru", "dfdx"): lambda x: (1 + x * x) ** mpmath.mpf(-1.5),
    ("isru_sigmoid", "forward"): lambda x: mpmath.mpf(0.5) + x / (2 * mpmath.sqrt(4 + x * x)),
}


@pytest.mark.parametrize("key", sorted(_MP), ids=["-".join(k) for k in sorted(_MP)])
def test_references_match_mpmath(key):
    function, form = key
    ref = registry.get(function).ref64[form]
    if form == "dfdy":
        xs = np.concatenate([np.linspace(0.0, 1.0, 97)[1:-1], [1e-30, 1e-8, 0.999999]])
    else:
        xs = np.concatenate([np.linspace(-30, 30, 241), [-700.0, -100.0, -40.0, 1e-300, 40.0, 80.0]])
    got = ref(xs, 1.0)
    with mpmath.workdps(50):
        want = np.array([float(_MP[key](mpmath.mpf(float(v)))) for v in xs])
    # float64 reference: a few float64 ulp, i.e. 2^-29 of a float32 ulp
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
