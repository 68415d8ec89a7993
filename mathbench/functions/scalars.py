"""Numba scalar implementations of every activation, its derivative in x, and its backprop form.

Each function has the signature ``f(x, p)`` where ``p`` is the entry's parameter (ISRU's alpha,
the leaky slope, ...; ignored by parameterless functions), so one kernel template serves all.
Constants are written ``c(x, v)`` so float32 code stays float32 (see ``mathbench.core.jit``).

Special values are part of the contract: NaN propagates, +-inf gives the limit, and nothing
overflows for |x| up to the float max. Comparisons are written so that NaN falls through to
the branch that returns x (``a if x > k else x``): NaN compares false.
"""
import math

from numba import njit

from ..core.jit import JIT_OPTIONS, c, jit
from .simd import k

# --------------------------------------------------------------------------------------------
# shared pieces


@jit
def step(x, below, above):
    """``above`` for x > 0, ``below`` for x <= 0, NaN for NaN (a derivative of a kink)."""
    return above if x > c(x, 0.0) else (below if x <= c(x, 0.0) else x)


@jit
def clamp(x, lo, hi):
    """Clamp that lets NaN through (min/max would swallow it)."""
    x = hi if x > hi else x
    return lo if x < lo else x


# --------------------------------------------------------------------------------------------
# tanh


@jit
def tanh_libm(x, p):
    return math.tanh(x)


@jit
def tanh_libm_dx(x, p):
    t = math.tanh(x)
    return c(x, 1.0) - t * t


@jit
def tanh_dy(y, p):
    return c(y, 1.0) - y * y


@njit(**{**JIT_OPTIONS, "fastmath": {"contract"}})
def tanh_rational(x, p):
    # Eigen's ptanh_float (rminimax 9/8 odd/even rational, float32 coefficients):
    # tanh(x) ~ (x + x^3 P(x^2)) / Q(x^2). Only mul/add/div/select, so the loop vectorizes
    # without a vector libm. "contract" lets LLVM fuse the Horner steps into FMAs where the
    # CPU has them (as Eigen's pmadd does); it changes rounding only, never NaN/inf handling.
    # Beyond |x| = 7.9074 (Eigen's clamp) it returns exactly +-1: 2.7e-7 (4.5 float32 ulp) from
    # tanh there, the largest error of this implementation.
    lim = c(x, 7.90738964080810547)
    xc = clamp(x, -lim, lim)
    x2 = xc * xc
    num = c(x, 1.394553628e-8)
    num = x2 * num + c(x, 2.102733560e-5)
    num = x2 * num + c(x, 3.520756727e-3)
    num = x2 * num + c(x, 1.340216100e-1)
    num = (x2 * xc) * num + xc
    den = c(x, 8.015776984e-7)
    den = x2 * den + c(x, 3.326951409e-4)
    den = x2 * den + c(x, 2.597254514e-2)
    den = x2 * den + c(x, 4.673548340e-1)
    den = x2 * den + c(x, 1.0)
    r = num / den
    return r if abs(x) < lim else (math.copysign(c(x, 1.0), x) if abs(x) >= lim else x)


@jit
def tanh_rational_dx(x, p):
    t = tanh_rational(x, p)
    return c(x, 1.0) - t * t


# --------------------------------------------------------------------------------------------
# ISRU  x / sqrt(1 + a x^2)
# Beyond |x| = 2^30/sqrt(a) ISRU equals its limit to double precision, so clamping there keeps
# a*x^2 finite (no 0 from x/sqrt(inf), no NaN from inf/inf) at the cost of two selects.


@jit
def isru(x, a):
    lim = c(x, 1073741824.0) / math.sqrt(a)
    xc = clamp(x, -lim, lim)
    return xc / math.sqrt(c(x, 1.0) + a * xc * xc)


@jit
def isru_dx(x, a):
    # (1 + a x^2)^(-3/2) as r*r*r with r = 1/sqrt(.): sqrt and div vectorize, pow does not.
    r = c(x, 1.0) / math.sqrt(c(x, 1.0) + a * x * x)
    return r * r * r


@jit
def isru_dy(y, a):
    # (1 - a y^2)^(3/2) as t*sqrt(t): equal for t >= 0, and vectorizable.
    t = c(y, 1.0) - a * y * y
    return t * math.sqrt(t)


# The same with the hardware reciprocal square root: arcp/afn on 1/sqrt let LLVM emit the estimate
# (vrsqrtps; vrsqrt14ps with AVX-512) plus one Newton step instead of sqrt and a division. That
# step, rounded in float32, leaves ISRU about 3 ulp from exact; one more correction with the
# residual h = 1 - d r^2 (multiplies and FMAs only) brings it under 2.
_RSQRT = {**JIT_OPTIONS, "fastmath": {"arcp", "afn", "contract"}}


@njit(**_RSQRT)
def rsqrt(d):
    r = c(d, 1.0) / math.sqrt(d)
    h = c(d, 1.0) - d * (r * r)
    return r + r * (c(d, 0.5) * h)


@njit(**_RSQRT)
def isru_rsqrt(x, a):
    lim = c(x, 1073741824.0) / math.sqrt(a)
    xc = clamp(x, -lim, lim)
    d = c(x, 1.0) + a * xc * xc
    r = c(x, 1.0) / math.sqrt(d)
    # correct the product x r itself: the rounding of x r is then corrected along with r's error
    y = xc * r
    h = c(x, 1.0) - (d * r) * r
    return y + y * (c(x, 0.5) * h)


@njit(**_RSQRT)
def isru_rsqrt_dx(x, a):
    # clamped: the Newton step turns rsqrt(inf) = 0 into inf * 0 = NaN. At 2^60 (float32) or
    # 2^500 (float64) 1 + a x^2 is still finite and r^3 underflows to 0, the limit at +-inf.
    lim = k(x, 1.152921504606846976e18, 3.273390607896141870e150) / math.sqrt(a)
    xc = clamp(x, -lim, lim)
    r = rsqrt(c(x, 1.0) + a * xc * xc)
    return r * r * r


@jit
def isru_pow_dx(x, a):
    return (c(x, 1.0) + a * x * x) ** c(x, -1.5)


@jit
def isru_pow_dy(y, a):
    return (c(y, 1.0) - a * y * y) ** c(y, 1.5)


# --------------------------------------------------------------------------------------------
# sigmoid, softplus


@jit
def sigmoid_exp(x, p):
    # exp(-|x|) never overflows; the two branches are the same function, stable on each side.
    e = math.exp(-abs(x))
    r = c(x, 1.0) / (c(x, 1.0) + e)
    return r if x >= c(x, 0.0) else (e * r if x < c(x, 0.0) else x)


@jit
def sigmoid_exp_dx(x, p):
    e = math.exp(-abs(x))
    d = c(x, 1.0) + e
    return e / (d * d)


@jit
def sigmoid_dy(y, p):
    return y * (c(y, 1.0) - y)


@jit
def sigmoid_rational(x, p):
    h = c(x, 0.5)
    return h + h * tanh_rational(h * x, p)


@jit
def sigmoid_rational_dx(x, p):
    s = sigmoid_rational(x, p)
    return s * (c(x, 1.0) - s)


@jit
def softplus(x, p):
    # max(x, 0) + log1p(exp(-|x|)): no overflow, and exact limits at +-inf.
    m = x if x > c(x, 0.0) else c(x, 0.0)
    return m + math.log1p(math.exp(-abs(x)))


@jit
def softplus_dy(y, p):
    # softplus' = sigmoid(x) = 1 - exp(-y); expm1 keeps it accurate for small y.
    return -math.expm1(-y)


# --------------------------------------------------------------------------------------------
# the seed project's comparison set


@jit
def plus(x, p):
    return x + p


@jit
def minus(x, p):
    return x - p


@jit
def mult(x, p):
    return x * p


@jit
def div(x, p):
    return x / p


@jit
def one(x, p):
    return c(x, 1.0) if x == x else x


@jit
def const_p(x, p):
    return p if x == x else x


@jit
def inv_p(x, p):
    return c(x, 1.0) / p if x == x else x


@jit
def sqrt(x, p):
    return math.sqrt(x)


@jit
def sqrt_dx(x, p):
    return c(x, 0.5) / math.sqrt(x)


@jit
def sqrt_dy(y, p):
    return c(y, 0.5) / y


@jit
def log(x, p):
    return math.log(x)


@jit
def inverse(x, p):
    return c(x, 1.0) / x


@jit
def exp(x, p):
    return math.exp(x)


@jit
def exp_neg(y, p):
    return math.exp(-y)


@jit
def identity(y, p):
    return y


@jit
def relu(x, p):
    return c(x, 0.0) if x < c(x, 0.0) else x


@jit
def relu_dx(x, p):
    return step(x, c(x, 0.0), c(x, 1.0))


@jit
def leaky_relu(x, s):
    return s * x if x < c(x, 0.0) else x


@jit
def leaky_relu_dx(x, s):
    return step(x, s, c(x, 1.0))


@jit
def elu(x, a):
    return x if x > c(x, 0.0) else a * math.expm1(x)


@jit
def elu_dx(x, a):
    return c(x, 1.0) if x > c(x, 0.0) else a * math.exp(x)


@jit
def elu_dy(y, a):
    return c(y, 1.0) if y > c(y, 0.0) else y + a


@jit
def softsign(x, p):
    # |x| clamped at 2^60, where x/(1+|x|) is +-1 in double: avoids inf/inf at infinity.
    xc = clamp(x, c(x, -1.152921504606846976e18), c(x, 1.152921504606846976e18))
    return xc / (c(x, 1.0) + abs(xc))


@jit
def softsign_dx(x, p):
    d = c(x, 1.0) + abs(x)
    return c(x, 1.0) / (d * d)


@jit
def softsign_dy(y, p):
    d = c(y, 1.0) - abs(y)
    return d * d


# --------------------------------------------------------------------------------------------
# cheap approximations


@jit
def hard_tanh(x, p):
    return clamp(x, c(x, -1.0), c(x, 1.0))


@jit
def hard_tanh_dx(x, p):
    ax = abs(x)
    return c(x, 1.0) if ax < c(x, 1.0) else (c(x, 0.0) if ax >= c(x, 1.0) else x)


@jit
def hard_sigmoid(x, p):
    # torch.nn.Hardsigmoid: relu6(x + 3) / 6
    return clamp(x * c(x, 1.0 / 6.0) + c(x, 0.5), c(x, 0.0), c(x, 1.0))


@jit
def hard_sigmoid_dx(x, p):
    ax = abs(x)
    return c(x, 1.0 / 6.0) if ax < c(x, 3.0) else (c(x, 0.0) if ax >= c(x, 3.0) else x)


@jit
def hard_sigmoid_dy(y, p):
    inside = y > c(y, 0.0) and y < c(y, 1.0)
    return c(y, 1.0 / 6.0) if inside else (c(y, 0.0) if y == y else y)


@jit
def isru_sigmoid(x, a):
    h = c(x, 0.5)
    return h + h * isru(h * x, a)


@jit
def isru_sigmoid_dx(x, a):
    return c(x, 0.25) * isru_dx(c(x, 0.5) * x, a)


@jit
def isru_sigmoid_dy(y, a):
    return c(y, 0.25) * isru_dy(c(y, 2.0) * y - c(y, 1.0), a)


@jit
def isrlu(x, a):
    return x if x >= c(x, 0.0) else isru(x, a)


@jit
def isrlu_dx(x, a):
    return c(x, 1.0) if x >= c(x, 0.0) else isru_dx(x, a)


@jit
def isrlu_dy(y, a):
    return c(y, 1.0) if y >= c(y, 0.0) else isru_dy(y, a)
