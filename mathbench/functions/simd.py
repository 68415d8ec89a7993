"""Accurate, vectorizable exp, tanh, sigmoid and softplus for Numba loops (``numba_simd``).

Numba >= 0.62 has no SVML, so ``math.exp``/``math.tanh`` in a loop are scalar libm calls and the
loop cannot vectorize. These functions use only operations LLVM vectorizes (add, mul, FMA via
``contract``, div, compare/select, integer shifts on the float's bits), so a loop over them
compiles to packed SIMD code with no call in it:

* ``exp``: Cody-Waite range reduction x = k ln2 + r, |r| <= ln2/2, with ln2 split in a short
  ``hi`` part (k*hi is exact) and a ``lo`` correction; e^r = 1 + r + r^2 P(r) with a minimax P;
  2^k built from exponent bits in two halves, so subnormal results and overflow to inf come
  from one correctly rounded multiply.
* ``tanh``: x + x^3 Q(x^2) below |x| = 1 (float32; 0.625 for float64), and (1 - e)/(1 + e) = 1 - 2e/(1 + e) with
  e = exp(-2|x|) above (no cancellation there: tanh >= 0.55), sign restored with copysign.
* ``sigmoid``: e = exp(-|x|), then e/(1+e) or 1/(1+e): one division, no cancellation, and a
  correction for the rounding of 1 + e.
* ``softplus``: max(x, 0) + log1p(exp(-|x|)), log1p on (0, 1] from fdlibm's reduction
  log(1+f) = f - (f^2/2 - s (f^2/2 + R(s^2))), s = f/(2+f), plus the exact rounding error of 1+u.

Polynomial coefficients were fitted with mpmath's Chebyshev fit (scripts in the docstring of
``_fit``) and are stored per dtype: float32 kernels compute in float32 only.
Every function returns NaN for NaN, the limits at +-inf, keeps the sign of -0.0, and never
overflows internally (inputs are clamped before the exponent arithmetic).
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from ..core.jit import JIT_OPTIONS

# --------------------------------------------------------------------------------------------
# dtype-dependent constants and polynomials


def k(x, v32, v64):  # pragma: no cover - replaced by the overload inside jitted code
    """A constant of x's float type: ``v32`` for float32, ``v64`` for float64."""
    return np.float32(v32) if np.asarray(x).dtype == np.float32 else np.float64(v64)


@overload(k, inline="always")
def _k_overload(x, v32, v64):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x, v32, v64: np.float32(v32)
    return lambda x, v32, v64: np.float64(v64)


def _horner(c32, c64):
    """``P(z) = c[0] + z*(c[1] + z*(...))`` with the coefficient set of z's dtype, written out as
    straight-line code (Numba then emits one FMA chain; no loop, no double in float32 code)."""

    def build(coeffs, ctor):
        expr = f"{ctor}({coeffs[-1]!r})"
        for cf in reversed(coeffs[:-1]):
            expr = f"z * ({expr}) + {ctor}({cf!r})"
        ns = {"np": np}
        exec(f"def poly(z):\n    return {expr}\n", ns)  # noqa: S102 - our own constants
        return ns["poly"]

    f32, f64 = build(c32, "np.float32"), build(c64, "np.float64")

    def poly(z):  # pragma: no cover - replaced by the overload
        return (f32 if np.asarray(z).dtype == np.float32 else f64)(z)

    @overload(poly, inline="always")
    def _poly_overload(z):
        return f32 if isinstance(z, types.Float) and z.bitwidth == 32 else f64

    return poly


# e^r = 1 + r + r^2 P(r), |r| <= ln2/2 (Chebyshev fit of (e^r - 1 - r)/r^2; degree 4 / 10)
_EXP_P = _horner(
    [0.5, 0.1666657702559799, 0.041666554662050534, 0.008363173074513711, 0.001392617611993558],
    [0.5, 0.1666666666666667, 0.04166666666666667, 0.008333333333326141, 0.0013888888888883752,
     0.00019841269874800493, 2.4801587325533363e-05, 2.7557255425746435e-06, 2.7557273661348637e-07,
     2.510520637395701e-08, 2.0914679376583935e-09])
# tanh(x) = x + x^3 Q(x^2) (fit of (tanh(t) - t)/t^3 in z = t^2): float32 on |x| <= 1 (degree 7),
# float64 on |x| <= 0.625 (degree 11). Every float32 in [0.3, 9.1] checked: the split at 0.625
# with degree 5 gave 1.46 ulp (the exp branch just above it), at 1.0 with degree 7 1.13 ulp.
_TANH_Q = _horner(
    [-0.3333333315672231, 0.133333106555451, -0.05396341475443884, 0.02182954884305937,
     -0.008697847592814879, 0.003206803386846565, -0.0009235008463481761, 0.00014279318799621565],
    [-0.3333333333333333, 0.13333333333333042, -0.05396825396789699, 0.021869488519008305,
     -0.008863235103240878, 0.0035921217511549622, -0.0014557754120478055, 0.0005896606577757043,
     -0.0002375906496055562, 9.257116129556769e-05, -3.12011014257974e-05, 6.485163482793113e-06])
# 2 atanh(s) = 2s + s R(z), R(z) = z L(z), z = s^2 <= ((sqrt2-1)/(sqrt2+1))^2 (degree 3 / 6)
_LOG_L = _horner(
    [0.6666666655449709, 0.40000121839806124, 0.28550820815960665, 0.23330467216303835],
    [0.666666666666667, 0.39999999999899505, 0.28571428625975487, 0.2222221113479508,
     0.18182889125261723, 0.15331721600556042, 0.14616449685043406])



# --------------------------------------------------------------------------------------------
# 2^k from exponent bits


def _pow2_intrinsic(split: bool):
    """An intrinsic ``f(x, kf)`` = x * 2^k for an integer-valued float ``kf``, 2^k built from the
    exponent bits (pure integer and float IR: vectorizes). ``split``: as x * 2^(k>>1) *
    2^(k - (k>>1)), whose factors are normal for k in [-252, 254] (float32), so results that are
    subnormal or overflow are rounded once, by the last multiply; else one multiply, for k whose
    2^k is normal."""

    def typer(typingctx, x, kf):
        if not (isinstance(x, types.Float) and x == kf):
            return None

        def codegen(context, builder, sig, args):
            xv, kv = args
            fty = xv.type
            bits, mant, bias = (32, 23, 127) if isinstance(fty, ir.FloatType) else (64, 52, 1023)
            ity = ir.IntType(bits)

            def pow2(kk):
                return builder.bitcast(builder.shl(builder.add(kk, ity(bias)), ity(mant)), fty)

            ki = builder.fptosi(kv, ity)
            if not split:
                return builder.fmul(xv, pow2(ki))
            k1 = builder.ashr(ki, ity(1))
            return builder.fmul(builder.fmul(xv, pow2(k1)), pow2(builder.sub(ki, k1)))

        return x(x, kf), codegen

    typer.__name__ = "_scale_pow2" if split else "_pow2_mul"
    return intrinsic(typer)


_scale_pow2 = _pow2_intrinsic(split=True)
_pow2_mul = _pow2_intrinsic(split=False)


# --------------------------------------------------------------------------------------------
# the shared pieces (inlined into every kernel)

# FMA contraction only (NaN/inf rules kept); inlined at Numba IR level: LLVM's inliner declines
# functions this size, and a call per element would stop the loop from vectorizing
_FAST = {**JIT_OPTIONS, "fastmath": {"contract"}, "inline": "always"}


@njit(**_FAST)
def _reduce(x):
    """(kf, r) with x = kf*ln2 + r, kf integer-valued, |r| <= ln2/2 (x already clamped)."""
    shifter = k(x, 12582912.0, 6755399441055744.0)  # 1.5 * 2^mantissa: adding it rounds to int
    kf = (x * k(x, 1.44269504088896341, 1.44269504088896341) + shifter) - shifter
    r = x - kf * k(x, 0.693359375, 6.93147180369123816490e-01)
    r = r - kf * k(x, -2.12194440e-4, 1.90821492927058770002e-10)
    return kf, r


@njit(**_FAST)
def exp_core(x):
    """e^x for every input: 0 below the subnormal range, inf above the float max, NaN for NaN."""
    lo, hi = k(x, -104.0, -746.0), k(x, 89.0, 710.0)
    xc = x if x > lo else lo  # NaN -> lo: keeps the integer conversion defined
    xc = xc if xc < hi else hi
    kf, r = _reduce(xc)
    p = k(x, 1.0, 1.0) + (r + r * r * _EXP_P(r))
    e = _scale_pow2(p, kf)
    return e if x == x else x


@njit(**_FAST)
def _exp_moderate(v):
    """e^v for v in [-40, 0] (NaN gives a finite value: callers select NaN themselves): no
    subnormal or overflow handling, one exponent-bits scaling. tanh needs no more: its
    exp branch only matters where tanh < 1, |x| < 10."""
    vc = v if v > k(v, -40.0, -40.0) else k(v, -40.0, -40.0)
    kf, r = _reduce(vc)
    p = k(v, 1.0, 1.0) + (r + r * r * _EXP_P(r))
    return _pow2_mul(p, kf)


@njit(**_FAST)
def expm1_neg(u):
    """e^u - 1 for u <= 0 (accurate for small |u|): 2^k (e^r - 1) + (2^k - 1), both exact
    scalings but the last addition."""
    uc = u if u > k(u, -80.0, -700.0) else k(u, -80.0, -700.0)  # e^u - 1 == -1 below; 2^k stays normal
    kf, r = _reduce(uc)
    em = r + r * r * _EXP_P(r)
    s = _scale_pow2(k(u, 1.0, 1.0), kf)
    v = s * em + (s - k(u, 1.0, 1.0))
    return v if u == u else u


@njit(**_FAST)
def _tanh_parts(x):
    """(a = |x|, the polynomial value, e = exp(-2|x|)): tanh is the polynomial below the
    split, copysign((1 - e)/(1 + e), x) above it (>= 0.55 there: no cancellation)."""
    a = abs(x)
    z = x * x
    return a, x + x * z * _TANH_Q(z), _exp_moderate(k(x, -2.0, -2.0) * a)


@njit(**_FAST)
def _e_over_1pe_sq(e):
    """e / (1 + e)^2 for e in [0, 1] (and NaN): (1 + e)^2 from m = 1 + e and its exact rounding
    error c as m^2 + 2mc, so only e's own error and two roundings remain."""
    one = k(e, 1.0, 1.0)
    m = one + e
    c = e - (m - one)
    return e / (m * m + k(e, 2.0, 2.0) * m * c)


@njit(**_FAST)
def _log1p_unit(u):
    """log(1 + u) for u in [0, 1] (and NaN): 1 + u rounded to m, its exact error c, m reduced to
    [sqrt(1/2), sqrt(2)) by one halving, fdlibm's log1p on the fraction, plus c/m."""
    one = k(u, 1.0, 1.0)
    m = one + u
    c = u - (m - one)  # exact: the rounding error of 1 + u
    big = m > k(u, 1.41421356237309505, 1.41421356237309505)
    mm = m * k(u, 0.5, 0.5) if big else m
    kf = one if big else k(u, 0.0, 0.0)
    f = mm - one  # exact (Sterbenz)
    s = f / (k(u, 2.0, 2.0) + f)
    z = s * s
    hfsq = k(u, 0.5, 0.5) * f * f
    lg = f - (hfsq - s * (hfsq + z * _LOG_L(z)))
    lo = c / m + kf * k(u, -2.12194440e-4, 1.90821492927058770002e-10)
    return kf * k(u, 0.693359375, 6.93147180369123816490e-01) + (lg + lo)


# --------------------------------------------------------------------------------------------
# registry scalars: f(x, p) like every implementation in scalars.py (p is unused here)


@njit(**_FAST)
def exp(x, p):
    return exp_core(x)


@njit(**_FAST)
def tanh(x, p):
    a, small, e = _tanh_parts(x)
    one = k(x, 1.0, 1.0)
    v = small if a < k(x, 1.0, 0.625) else one - k(x, 2.0, 2.0) * e / (one + e)
    # the sign from x: also for -0.0, where x + x z Q(z) gives +0 (x z Q is +0 when Q < 0)
    return math.copysign(v, x) if x == x else x


@njit(**_FAST)
def tanh_dx(x, p):
    # 1 - t^2 where t <= tanh(0.625) (no cancellation), 4e/(1+e)^2 above: accurate where
    # 1 - t^2 would round t to 1 and return 0 (|x| > 9 in float32)
    a = abs(x)
    small = x + x * (x * x) * _TANH_Q(x * x)
    big = k(x, 4.0, 4.0) * _e_over_1pe_sq(exp_core(k(x, -2.0, -2.0) * a))  # subnormal e matters here
    return k(x, 1.0, 1.0) - small * small if a < k(x, 0.625, 0.625) else big


@njit(**_FAST)
def sigmoid(x, p):
    # e/(1+e) below 0, 1/(1+e) above, e = exp(-|x|). 1 + e rounds to m with the exact error c;
    # q = num/m is corrected to num/(m + c) ~ q - c q/m, and 1/m is q (x >= 0) or 1 - q (x < 0):
    # the float64 error drops from 2.3 to about 1.5 ulp at the cost of two FMAs, not a division.
    e = exp_core(-abs(x))
    one = k(x, 1.0, 1.0)
    m = one + e
    c = e - (m - one)
    neg = x < k(x, 0.0, 0.0)
    q = (e if neg else one) / m
    return q - c * q * (one - q if neg else q)


@njit(**_FAST)
def sigmoid_dx(x, p):
    return _e_over_1pe_sq(exp_core(-abs(x)))  # symmetric, no cancellation, 0 at +-inf


@njit(**_FAST)
def softplus(x, p):
    m = x if x > k(x, 0.0, 0.0) else k(x, 0.0, 0.0)
    v = m + _log1p_unit(exp_core(-abs(x)))
    return v if x == x else x


@njit(**_FAST)
def softplus_dy(y, p):
    # softplus'(x) = sigmoid(x) = 1 - e^-y for y = softplus(x) >= 0, as -expm1(-y)
    return -expm1_neg(-y)
