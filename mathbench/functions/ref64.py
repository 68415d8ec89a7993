"""Wide-precision references for exhaustive accuracy checks: each form written stably in NumPy.

``python -m mathbench accuracy --exhaustive`` compares a float32 kernel with one of these at all
2^32 inputs, evaluated in float64 (2^29 times finer than a float32 ulp), and a float64 kernel at
1e8 grid points, evaluated in ``np.longdouble`` (x87 extended: 11 more bits than float64). mpmath
is far too slow for that many points, so these formulas avoid every cancellation and overflow a
naive one would hit (``1 - tanh^2`` at large |x|, ``log(1 + exp(x))`` below -37); the tests check
each against mpmath, including the tails. Only NumPy ufuncs are used, so the same code runs in
float64 and longdouble.
"""
from __future__ import annotations

import numpy as np


def _e(x):
    return np.exp(-np.abs(x))  # in [0, 1]: never overflows


def tanh(x, a):
    return np.tanh(x)


def tanh_dx(x, a):
    return 1 / np.cosh(x) ** 2  # 1 - tanh^2 would cancel to 0 where the true value is 1e-30


def tanh_dy(y, a):
    return (1 - y) * (1 + y)


def sigmoid(x, a):
    e = _e(x)
    return np.where(x < 0, e, 1) / (1 + e)


def sigmoid_dx(x, a):
    e = _e(x)
    return e / (1 + e) ** 2


def sigmoid_dy(y, a):
    return y * (1 - y)


def softplus(x, a):
    return np.maximum(x, 0) + np.log1p(_e(x))


def softplus_dy(y, a):
    return -np.expm1(-y)


def exp(x, a):
    return np.exp(x)


def identity(y, a):
    return y


def isru(x, a):
    # beyond 1e150 a*x*x overflows float64; the value there is the limit to every precision
    lim = 1 / np.sqrt(a)
    big = np.abs(x) > 1e150
    xs = np.where(big, 0, x)
    return np.where(big, np.copysign(lim, x), xs / np.sqrt(1 + a * xs * xs))


def isru_dx(x, a):
    xs = np.where(np.abs(x) > 1e150, 1e150, x)
    return (1 + a * xs * xs) ** -1.5


def isru_dy(y, a):
    s = np.sqrt(a)
    return ((1 - s * y) * (1 + s * y)) ** 1.5  # 1 - a y^2 would cancel near |y| = 1/sqrt(a)


def isru_sigmoid(x, a):
    # (s + x)/(2s), s = sqrt(4 + a x^2); below 0 the numerator s + x = (4 + (a-1) x^2)/(s - x)
    # (1/2 + isru(x/2)/2 would cancel to a relative error of 1e-4 at x = -1e6)
    s = np.sqrt(4 + a * x * x)
    num = np.where(x < 0, (4 + (a - 1) * x * x) / (s - x), s + x)
    return np.where(np.isinf(x), (x > 0) * 1.0, num / (2 * s))


def isru_sigmoid_dx(x, a):
    return 0.25 * isru_dx(0.5 * x, a)


def isru_sigmoid_dy(y, a):
    # 1 - a (2y - 1)^2 = (1 - a) + 4a y (1 - y): no cancellation near the ends of the range
    return 0.25 * ((1 - a) + 4 * a * y * (1 - y)) ** 1.5
